#include "scenario.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

namespace phasekit::load {
namespace {

namespace fs = std::filesystem;

class ScenarioFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("phasekit-scenario-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  fs::path dir_;
};

#define HEAD "config:\n  target: \"http://127.0.0.1:3000\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n"
#define FLOW "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n"

constexpr const char* kValid = R"(
config:
  target: "http://127.0.0.1:3000/chat"
  phases:
    - duration: 60
      arrivalRate: 5
      rampTo: 20
      name: "Warm up"
    - pause: 10
    - duration: "2m"
      arrivalCount: 100
      maxVusers: 50
  variables:
    greeting: ["hi", "hello"]
    user: "alice"
  socketio:
    transports: ["websocket"]
    query: { room: "{{ user }}" }
    auth: { token: "t-{{ user }}" }
  ensure:
    p95: 200
    maxErrorRate: 1
    thresholds:
      - "socketio.connect_time.p99": 500
  thresholds:
    socketio.response_time: ["p(99)<300", "avg<100"]
    vusers.failed: ["count<5"]
scenarios:
  - name: "chat"
    engine: socketio
    weight: 2
    flow:
      - emit:
          channel: "message"
          data: "{{ greeting }}"
          response:
            channel: "reply"
            capture: { json: "$.id", as: "id" }
      - emit: ["ack-me", "{{ id }}", 3]
        acknowledge:
          match: { json: "$.0.ok", value: true }
        namespace: "/admin"
      - think: 1.5
      - loop:
          - log: "turn {{ $loopCount }}"
        count: 2
)";

TEST_F(ScenarioFiles, ReadsEveryPartOfAnArtilleryScenario) {
  const Scenario s = load_scenario(write("ok.yml", kValid));
  EXPECT_EQ(s.target.host, "127.0.0.1");
  EXPECT_EQ(s.target.port, "3000");
  EXPECT_EQ(s.target.ns, "/chat");
  ASSERT_EQ(s.phases.size(), 3u);
  EXPECT_EQ(s.phases[0].ramp_to, 20.0);
  EXPECT_TRUE(s.phases[1].pause);
  EXPECT_DOUBLE_EQ(s.phases[2].duration_s, 120.0);
  EXPECT_EQ(s.phases[2].max_vusers, 50u);
  EXPECT_EQ(s.variables.at("greeting").size(), 2u);
  EXPECT_FALSE(s.socket.polling);
  ASSERT_EQ(s.socket.query.size(), 1u);
  EXPECT_EQ(s.socket.query[0].first, "room");
  EXPECT_EQ(s.socket.query[0].second, "{{ user }}");
  EXPECT_EQ(s.flows[0].socket.auth, s.socket.auth) << "a flow without socketio of its own has config's";
  ASSERT_EQ(s.flows.size(), 1u);
  const auto& steps = s.flows[0].steps;
  ASSERT_EQ(steps.size(), 4u);
  ASSERT_TRUE(steps[0].response.has_value());  // response inside emit, as the seed file writes it
  EXPECT_EQ(steps[0].response->captures.at(0).as, "id");
  EXPECT_EQ(steps[1].args.size(), 2u);  // the socketio-v3 array form
  EXPECT_EQ(steps[1].ns, "/admin");
  EXPECT_TRUE(steps[1].ack.has_value());
  EXPECT_EQ(steps[3].kind, Step::Kind::loop);
  EXPECT_EQ(s.thresholds.size(), 6u);
  EXPECT_EQ(s.channels, (std::set<std::string>{"ack-me", "message"}));
}

TEST_F(ScenarioFiles, TheSeedServicesFileValidates) {
  const char* src = std::getenv("PHASEKIT_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const fs::path file = fs::path(src) / "../shared/examples/load-test-phase2.yml";
  if (!fs::exists(file)) {
    GTEST_SKIP() << file << " is not beside this checkout";
  }
  const Scenario s = load_scenario(file.string());
  EXPECT_EQ(s.phases.size(), 2u);
  EXPECT_TRUE(s.socket.polling && s.socket.websocket);
}

TEST_F(ScenarioFiles, AcknowledgeTrueWaitsForTheAckAndV3FlowsSayTheirAckForm) {
  const Scenario s = load_scenario(write("ack.yml", R"(
config:
  target: "http://127.0.0.1:9"
  phases: [{ duration: 1, arrivalRate: 1 }]
scenarios:
  - engine: socketio-v3
    flow:
      - emit: ["a"]
        acknowledge: true
      - emit: ["b"]
        acknowledge: false
)"));
  ASSERT_EQ(s.flows.size(), 1u);
  EXPECT_TRUE(s.flows[0].v3_acks);
  EXPECT_TRUE(s.flows[0].steps[0].ack.has_value());
  EXPECT_FALSE(s.flows[0].steps[1].ack.has_value());
}

TEST_F(ScenarioFiles, JsonFormIsTheSameScenario) {
  const std::string json_text = R"({"config": {"target": "http://127.0.0.1:9", "phases": [{"duration": 1, "arrivalRate": 1}]},
    "scenarios": [{"engine": "socketio", "flow": [{"emit": {"channel": "a", "data": {"x": 1}}}]}]})";
  const Scenario s = load_scenario(write("s.json", json_text));
  EXPECT_EQ(s.flows[0].steps[0].args.at(0)["x"], 1);
}

TEST_F(ScenarioFiles, PayloadRowsAreReadRelativeToTheScenario) {
  fs::create_directories(dir_ / "data");
  write("data/users.csv", "name,password,token\nalice,\"p,w\",\"t \"\"1\"\"\"\nbob,007,\"42\"\n\ncarol,1.5,x\n");
  write("data/ids.csv", "1;one\n2;two\n");
  const Scenario s = load_scenario(write("payload.yml", R"(
config:
  target: "http://127.0.0.1:9"
  phases: [{ duration: 1, arrivalRate: 1 }]
  payload:
    - path: "data/users.csv"
      fields: ["name", "password", "token"]
      skipHeader: true
      order: sequence
    - path: "data/ids.csv"
      fields: ["id"]
      delimiter: ";"
      cast: false
scenarios:
  - engine: socketio
    flow:
      - emit: { channel: "login", data: { name: "{{ name }}", token: "{{ token }}", id: "{{ id }}" } }
)"));
  ASSERT_EQ(s.payloads.size(), 2u);
  const Payload& users = s.payloads[0];
  EXPECT_EQ(users.file, (dir_ / "data/users.csv").string());
  EXPECT_TRUE(users.sequence);
  ASSERT_EQ(users.rows.size(), 3u);
  EXPECT_EQ(users.rows[0], (std::vector<nlohmann::json>{"alice", "p,w", "t \"1\""}));
  EXPECT_EQ(users.rows[1][1], 7) << "an unquoted number is cast, as Artillery does";
  EXPECT_EQ(users.rows[1][2], "42") << "a quoted one stays text";
  EXPECT_EQ(users.rows[2][1], 1.5);
  const Payload& ids = s.payloads[1];
  EXPECT_FALSE(ids.sequence);
  EXPECT_EQ(ids.rows[1], (std::vector<nlohmann::json>{"2"})) << "cast: false keeps text; extra columns are ignored";
}

TEST_F(ScenarioFiles, LoadAllMakesOneListVariableAndLoopsGoOverIt) {
  write("rooms.csv", "lobby,10\nkitchen,20\n");
  const Scenario s = load_scenario(write("all.yml", R"(
config:
  target: "http://127.0.0.1:9"
  phases: [{ duration: 1, arrivalRate: 1 }]
  payload:
    path: "rooms.csv"
    fields: ["room", "size"]
    loadAll: true
    name: rooms
  variables:
    colours: [["red", "green", "blue"], ["black"]]
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit: ["join", "{{ $loopElement.room }}", "{{ $loopCount }}"]
        over: rooms
      - loop:
          - emit: ["paint", "{{ $loopElement }}"]
        over: "{{ colours }}"
      - loop:
          - emit: ["say", "{{ $loopElement }}"]
            ifTrue: "$loopCount > 0"
        over: ["hi", "{{ colours }}"]
)"));
  ASSERT_EQ(s.payloads.size(), 1u);
  EXPECT_EQ(s.payloads[0].name, "rooms");
  EXPECT_TRUE(s.payloads[0].rows.empty());
  EXPECT_EQ(s.payloads[0].all, nlohmann::json::parse(R"([{"room": "lobby", "size": 10}, {"room": "kitchen", "size": 20}])"));
  const auto& steps = s.flows[0].steps;
  EXPECT_EQ(steps[0].over_variable, "rooms");
  EXPECT_EQ(steps[0].over_bound, 2u);
  EXPECT_EQ(steps[1].over_variable, "colours");
  EXPECT_EQ(steps[1].over_bound, 3u) << "the longest list config.variables can pick";
  ASSERT_TRUE(steps[2].over.has_value());
  EXPECT_EQ(steps[2].over->size(), 2u);
  ASSERT_TRUE(steps[2].steps[0].if_true.has_value());
  EXPECT_EQ(steps[2].steps[0].if_true->text(), "$loopCount > 0");
}

TEST_F(ScenarioFiles, BeforeAndAfterAreFlowsWhoseCapturesEveryoneSees) {
  const Scenario s = load_scenario(write("hooks.yml", R"(
config:
  target: "http://127.0.0.1:9"
  phases: [{ duration: 1, arrivalRate: 1 }]
  socketio:
    extraHeaders: { x-run: "r1" }
    query: "a=1&b={{ $uuid }}"
before:
  engine: socketio
  flow:
    - emit: ["create-room"]
      acknowledge:
        capture: { json: "$.0.room", as: "room" }
scenarios:
  - engine: socketio
    socketio:
      extraHeaders: { x-user: "u" }
      auth: { token: "{{ room }}" }
    flow:
      - emit: ["join", "{{ room }}"]
after:
  engine: socketio
  flow:
    - emit: ["delete-room", "{{ room }}"]
)"));
  ASSERT_TRUE(s.before.has_value());
  ASSERT_TRUE(s.after.has_value());
  EXPECT_EQ(s.before->name, "before");
  EXPECT_EQ(s.before->socket.headers.at("x-run"), "r1") << "hooks use config.socketio";
  EXPECT_EQ(s.flows[0].socket.headers, (std::map<std::string, std::string>{{"x-user", "u"}}))
      << "a scenario's extraHeaders replace config's, as Artillery merges socketio key by key";
  EXPECT_EQ(s.flows[0].socket.query_text, "a=1&b={{ $uuid }}") << "what the scenario does not set is config's";
  ASSERT_TRUE(s.flows[0].socket.auth.has_value());
  EXPECT_FALSE(s.socket.auth.has_value());
  EXPECT_TRUE(s.channels.count("join") == 1 && s.channels.count("create-room") == 0)
      << "hooks' emits have no response-time metric of their own";
}

TEST_F(ScenarioFiles, ErrorsNameTheLineOfWhatIsWrong) {
  const std::string file = write("lines.yml", R"(config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 1
      arrivalRate: 1
scenarios:
  - engine: socketio
    flow:
      - think: 1
      - loop:
          - think: 1
        ifTrue: "n > 1 +"
)");
  try {
    (void)load_scenario(file);
    FAIL() << "accepted";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(file + ":12: scenarios[0].flow[1].ifTrue: ", 0), 0u) << e.what();
  }
  const std::string missing = write("missing.yml", "config:\n  phases:\n    - { duration: 1, arrivalRate: 1 }\n" FLOW);
  try {
    (void)load_scenario(missing);
    FAIL() << "accepted";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing + ":1: config.target: required", 0), 0u)
        << "a missing key: the line of the mapping it is missing from: " << e.what();
  }
}

TEST_F(ScenarioFiles, PayloadFilesAreReadThroughTheReaderGiven) {
  const std::string text = "config:\n  target: \"http://127.0.0.1:9\"\n  phases: [{ duration: 1, arrivalRate: 1 }]\n"
                           "  payload: { path: \"in-memory.csv\", fields: [a] }\n" FLOW;
  std::string asked;
  const Scenario s = parse_scenario(parse_document(text, false, "dir/x.yml"), "dir/x.yml", nullptr,
                                    [&](const std::string& path) {
                                      asked = path;
                                      return std::string("1\n2\n");
                                    });
  EXPECT_EQ(asked, "dir/in-memory.csv");
  EXPECT_EQ(s.payloads.at(0).rows.size(), 2u);
  EXPECT_THROW(parse_scenario(parse_document(text, false, "x.yml"), "x.yml", nullptr,
                              [](const std::string&) -> std::string { throw std::runtime_error("too big"); }),
               ScenarioError);
}

struct Bad {
  const char* name;
  const char* text;
  const char* expect;  // part of the one-line message
};

class MalformedScenario : public ScenarioFiles, public ::testing::WithParamInterface<Bad> {};

TEST_P(MalformedScenario, FailsWithTheFilePathAndReason) {
  const Bad& c = GetParam();
  write("users.csv", "alice,pw1,t1\nbob,pw2,t2\n");
  write("short.csv", "alice,pw1,t1\nbob,pw2,t2\ncarol,pw3\n");
  write("unclosed.csv", "alice,pw1,t1\n\"bob,pw2,t2\n");
  write("header_only.csv", "name,password,token\n");
  const std::string file = write(std::string(c.name) + (std::string(c.name).starts_with("json_") ? ".json" : ".yml"), c.text);
  try {
    (void)load_scenario(file);
    FAIL() << c.name << " was accepted";
  } catch (const ScenarioError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(file, 0), 0u) << what;  // starts with the file
    EXPECT_NE(what.find(c.expect), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedScenario,
    ::testing::Values(
        Bad{"yaml_syntax", "config:\n  target: [\n", "line "},
        Bad{"json_syntax", "{\"config\": ", "invalid JSON"},
        // nlohmann throws out_of_range, not parse_error, for a number past a double (found by the fuzzer)
        Bad{"json_number_overflow", "{\"config\": {\"timeout\": 1e999}}", "invalid JSON: "},
        Bad{"missing_target", "config:\n  phases:\n    - duration: 1\n      arrivalRate: 1\n" FLOW, "config.target: required (the server's URL"},
        Bad{"negative_rate", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 1\n      arrivalRate: -5\n" FLOW,
            "config.phases[0].arrivalRate: -5: expected a number in 0..1000000"},
        Bad{"unknown_step", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - jump: 3\n",
            "scenarios[0].flow[0].jump: unknown step (expected one of emit|think|loop|log)"},
        Bad{"unknown_key", HEAD "  rampup: 3\n" FLOW, "config.rampup: unknown key"},
        Bad{"undefined_variable", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ nope }}\" }\n",
            "nope is not in config.variables or config.payload, nor captured"},
        Bad{"unknown_metric", HEAD "  ensure:\n    thresholds:\n      - socketio.latency.p95: 3\n" FLOW, "unknown metric \"socketio.latency.p95\""},
        Bad{"unknown_ensure", HEAD "  ensure:\n    p96: 3\n" FLOW, "config.ensure.p96: unknown key"},
        Bad{"k6_bad_aggregation", HEAD "  thresholds:\n    socketio.response_time: [\"p(42)<3\"]\n" FLOW, "percentile 42"},
        Bad{"processor", HEAD "  processor: \"./x.js\"\n" FLOW, "JavaScript processors are not supported"},
        Bad{"http_engine", HEAD "scenarios:\n  - flow:\n      - emit: { channel: \"a\" }\n", "engine \"http\""},
        Bad{"bad_transport", HEAD "  socketio:\n    transports: [\"carrier-pigeon\"]\n" FLOW,
            "config.socketio.transports[0]: \"carrier-pigeon\": expected one of websocket|polling"},
        Bad{"capture_without_as", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n        response: { channel: \"b\", capture: { json: \"$.x\" } }\n",
            "capture.as: required (the variable name)"},
        Bad{"bad_json_path", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n        response: { channel: \"b\", capture: { json: \"x.y\", as: v } }\n",
            "must start with $"},
        Bad{"loop_without_count", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n",
            "needs a count"},
        Bad{"tls_client_cert", HEAD "  tls:\n    cert: \"client.pem\"\n" FLOW,
            "config.tls.cert: unknown key (expected one of ca|insecure|rejectUnauthorized)"},
        Bad{"tls_insecure_not_bool", HEAD "  tls:\n    insecure: \"yes\"\n" FLOW, "config.tls.insecure: \"yes\": expected true or false"},
        Bad{"tls_contradiction", HEAD "  tls:\n    insecure: true\n    rejectUnauthorized: true\n" FLOW,
            "config.tls.rejectUnauthorized: contradicts config.tls.insecure"},
        Bad{"tls_missing_ca", HEAD "  tls:\n    ca: \"no-such-ca.pem\"\n" FLOW, "config.tls.ca: cannot read "},
        Bad{"bad_port", "config:\n  target: \"http://127.0.0.1:99999\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n" FLOW, "port in 1..65535"},
        Bad{"duplicate_key", HEAD "  timeout: 1\n  timeout: 2\n" FLOW, "duplicate key"},
        Bad{"no_phases", "config:\n  target: \"http://127.0.0.1:1\"\n  phases: []\n" FLOW, "config.phases: []: expected a non-empty array of phases"},
        Bad{"bad_duration", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: soon\n      arrivalRate: 1\n" FLOW,
            "config.phases[0].duration: \"soon\": expected a duration"},
        Bad{"rate_and_count", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n      arrivalCount: 3\n" FLOW,
            "cannot be combined"},
        Bad{"huge_phase", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 100000\n      arrivalRate: 100000\n" FLOW,
            "arrivals in one phase"},
        Bad{"bad_template", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ $randomNumber(1) }}\" }\n",
            "$randomNumber takes two integers"},
        Bad{"unset_env", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ $env.PHASEKIT_SURELY_UNSET_VAR }}\" }\n",
            "is not set"},
        Bad{"not_a_mapping", "- 1\n- 2\n", "(document): [1,2]: expected an object"},
        Bad{"function_step", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - function: \"setToken\"\n",
            "function steps run JavaScript processors"},
        Bad{"processor_hook", HEAD "scenarios:\n  - engine: socketio\n    beforeScenario: \"setUp\"\n    flow:\n      - think: 1\n",
            "scenarios[0].beforeScenario: names a JavaScript function"},
        Bad{"payload_missing_file", HEAD "  payload:\n    path: \"nope.csv\"\n    fields: [a]\n" FLOW,
            "nope.csv: No such file or directory"},
        Bad{"payload_short_row", HEAD "  payload:\n    path: \"short.csv\"\n    fields: [a, b, c]\n" FLOW,
            "short.csv:3: 2 field(s), expected 3 (a, b, c)"},
        Bad{"payload_unclosed_quote", HEAD "  payload:\n    path: \"unclosed.csv\"\n    fields: [a, b, c]\n" FLOW,
            "unclosed.csv:2: a quoted field is never closed"},
        Bad{"payload_no_rows", HEAD "  payload:\n    path: \"header_only.csv\"\n    fields: [a]\n    skipHeader: true\n" FLOW,
            "no rows after the header"},
        Bad{"payload_without_fields", HEAD "  payload:\n    path: \"users.csv\"\n" FLOW, "needs fields"},
        Bad{"payload_bad_order", HEAD "  payload:\n    path: \"users.csv\"\n    fields: [a]\n    order: shuffled\n" FLOW,
            "config.payload.order: \"shuffled\": expected one of random|sequence"},
        Bad{"payload_load_all_without_name", HEAD "  payload:\n    path: \"users.csv\"\n    loadAll: true\n" FLOW,
            "needs name"},
        Bad{"payload_order_with_load_all", HEAD "  payload:\n    path: \"users.csv\"\n    loadAll: true\n    name: all\n    order: sequence\n" FLOW,
            "order does not apply"},
        Bad{"payload_name_without_load_all", HEAD "  payload:\n    path: \"users.csv\"\n    fields: [a]\n    name: all\n" FLOW,
            "name goes with loadAll"},
        Bad{"payload_bad_delimiter", HEAD "  payload:\n    path: \"users.csv\"\n    fields: [a]\n    delimiter: \"::\"\n" FLOW,
            "expected one character"},
        Bad{"payload_bad_field_name", HEAD "  payload:\n    path: \"users.csv\"\n    fields: [\"$x\"]\n" FLOW,
            "config.payload.fields[0]: \"$x\" is not a variable name"},
        Bad{"payload_list_entry", HEAD "  payload:\n    - path: \"users.csv\"\n      fields: [a]\n    - path: \"users.csv\"\n      fields: [b]\n      skipHeader: yes\n" FLOW,
            "config.payload[1].skipHeader: \"yes\": expected true or false"},
        Bad{"payload_too_many_files",
            HEAD "  payload:\n    - &u { path: \"users.csv\", fields: [a] }\n" "    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n"
                 "    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n    - *u\n" FLOW,
            "config.payload: 17 files; at most 16"},
        Bad{"loop_over_not_a_list", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n        over: 5\n",
            "over: 5: expected an array"},
        Bad{"loop_over_and_count", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n        over: [1]\n        count: 2\n",
            "count or over, not both"},
        Bad{"loop_over_undefined", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n        over: ghosts\n",
            "ghosts is not in config.variables"},
        Bad{"loop_while_true", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n        whileTrue: \"more\"\n",
            "whileTrue names a JavaScript function"},
        Bad{"if_true_syntax", HEAD "  variables: { n: 1 }\nscenarios:\n  - engine: socketio\n    flow:\n      - think: 1\n        ifTrue: \"n = 1\"\n",
            "scenarios[0].flow[0].ifTrue: ifTrue \"n = 1\": at 3: \"=\": compare with =="},
        Bad{"if_true_arithmetic", HEAD "  variables: { n: 1 }\nscenarios:\n  - engine: socketio\n    flow:\n      - think: 1\n        ifTrue: \"n * 2 > 1\"\n",
            "arithmetic is not supported"},
        Bad{"if_true_undefined", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - think: 1\n        ifTrue: \"ghost > 1\"\n",
            "ghost is not in config.variables"},
        Bad{"if_true_not_text", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - think: 1\n        ifTrue: [1]\n",
            "ifTrue: [1]: expected an expression"},
        Bad{"before_http_engine", HEAD "before:\n  flow:\n    - think: 1\n" FLOW, "before.engine: engine \"http\""},
        Bad{"after_weight", HEAD FLOW "after:\n  engine: socketio\n  weight: 2\n  flow:\n    - think: 1\n", "after.weight: unknown key"},
        Bad{"transports_differ", HEAD FLOW "  - engine: socketio\n    socketio: { transports: [polling] }\n    flow:\n      - think: 1\n",
            "scenarios[1].socketio: path and transports are the same for every user"},
        Bad{"reserved_header", HEAD "  socketio:\n    extraHeaders: { Content-Length: \"1\" }\n" FLOW, "writes this header itself"},
        Bad{"bad_header_name", HEAD "  socketio:\n    extraHeaders: { \"x y\": \"1\" }\n" FLOW, "not an HTTP header name"},
        Bad{"query_nested", HEAD "  socketio:\n    query: { a: { b: 1 } }\n" FLOW, "config.socketio.query.a: {\"b\":1}: expected a string or a number"},
        Bad{"billion_laughs",
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
            "config: *f\n",
            "more than 1000000 values"}),
    [](const ::testing::TestParamInfo<Bad>& param) { return std::string(param.param.name); });

TEST_F(ScenarioFiles, TlsOptionsReadTheCaBesideTheScenarioAndArtillerysRejectUnauthorized) {
  write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::string head = "config:\n  target: \"wss://localhost:8443/chat\"\n  phases:\n    - duration: 1\n"
                           "      arrivalRate: 1\n";
  const Scenario a = load_scenario(write("a.yml", head + "  tls:\n    ca: \"ca.pem\"\n" FLOW));
  EXPECT_TRUE(a.target.tls);
  EXPECT_EQ(a.target.url(), "https://localhost:8443/chat");
  EXPECT_EQ(a.tls.ca_file, (dir_ / "ca.pem").string());
  EXPECT_FALSE(a.tls.insecure);
  const Scenario b = load_scenario(write("b.yml", head + "  tls:\n    rejectUnauthorized: false\n" FLOW));
  EXPECT_TRUE(b.tls.insecure);
  EXPECT_TRUE(b.tls.ca_file.empty());
  const Scenario c = load_scenario(write("c.yml", head + "  tls:\n    insecure: true\n    rejectUnauthorized: false\n" FLOW));
  EXPECT_TRUE(c.tls.insecure);
  const Scenario d = load_scenario(write("d.yml", head + "  tls:\n    rejectUnauthorized: true\n" FLOW));
  EXPECT_FALSE(d.tls.insecure);
}

TEST(ScenarioTarget, HttpsAndWssAreTlsOnPort443ByDefault) {
  EXPECT_TRUE(parse_target("https://example.test", "t").tls);
  EXPECT_EQ(parse_target("https://example.test", "t").port, "443");
  EXPECT_EQ(parse_target("wss://example.test:8443/admin", "t").port, "8443");
  EXPECT_TRUE(parse_target("wss://example.test:8443/admin", "t").tls);
  EXPECT_FALSE(parse_target("ws://example.test", "t").tls);
  EXPECT_EQ(parse_target("https://[::1]:8443", "t").url(), "https://[::1]:8443");
  EXPECT_EQ(parse_target("http://127.0.0.1:3000/ns", "t").url(), "http://127.0.0.1:3000/ns");
}

TEST(Target, ParsesHostPortAndNamespace) {
  EXPECT_EQ(parse_target("http://localhost:3000", "t").ns, "/");
  EXPECT_EQ(parse_target("ws://[::1]:8080/admin/", "t").host, "::1");
  EXPECT_EQ(parse_target("ws://[::1]:8080/admin/", "t").ns, "/admin");
  EXPECT_EQ(parse_target("http://example.test", "t").port, "80");
  EXPECT_THROW(parse_target("ftp://x", "t"), ScenarioError);
  EXPECT_THROW(parse_target("http://x:1/ns?x=1", "t"), ScenarioError);
}

}  // namespace
}  // namespace phasekit::load
