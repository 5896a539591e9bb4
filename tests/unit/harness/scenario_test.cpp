#include "scenario.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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
  EXPECT_EQ(s.socket.query, "room={{ user }}");
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

struct Bad {
  const char* name;
  const char* text;
  const char* expect;  // part of the one-line message
};

class MalformedScenario : public ScenarioFiles, public ::testing::WithParamInterface<Bad> {};

TEST_P(MalformedScenario, FailsWithTheFilePathAndReason) {
  const Bad& c = GetParam();
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

#define HEAD "config:\n  target: \"http://127.0.0.1:3000\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n"
#define FLOW "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n"

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedScenario,
    ::testing::Values(
        Bad{"yaml_syntax", "config:\n  target: [\n", "line "},
        Bad{"json_syntax", "{\"config\": ", "invalid JSON"},
        // nlohmann throws out_of_range, not parse_error, for a number past a double (found by the fuzzer)
        Bad{"json_number_overflow", "{\"config\": {\"timeout\": 1e999}}", "invalid JSON: "},
        Bad{"missing_target", "config:\n  phases:\n    - duration: 1\n      arrivalRate: 1\n" FLOW, "config.target: missing"},
        Bad{"negative_rate", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 1\n      arrivalRate: -5\n" FLOW,
            "config.phases[0].arrivalRate: expected a number in 0..1000000, got -5"},
        Bad{"unknown_step", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - jump: 3\n",
            "scenarios[0].flow[0].jump: unknown step (expected emit, think, loop or log)"},
        Bad{"unknown_key", HEAD "  rampup: 3\n" FLOW, "config.rampup: unknown key"},
        Bad{"undefined_variable", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ nope }}\" }\n",
            "nope is neither in config.variables nor captured"},
        Bad{"unknown_metric", HEAD "  ensure:\n    thresholds:\n      - socketio.latency.p95: 3\n" FLOW, "unknown metric \"socketio.latency.p95\""},
        Bad{"unknown_ensure", HEAD "  ensure:\n    p96: 3\n" FLOW, "config.ensure.p96: unknown key"},
        Bad{"k6_bad_aggregation", HEAD "  thresholds:\n    socketio.response_time: [\"p(42)<3\"]\n" FLOW, "percentile 42"},
        Bad{"processor", HEAD "  processor: \"./x.js\"\n" FLOW, "JavaScript processors are not supported"},
        Bad{"http_engine", HEAD "scenarios:\n  - flow:\n      - emit: { channel: \"a\" }\n", "engine \"http\""},
        Bad{"bad_transport", HEAD "  socketio:\n    transports: [\"carrier-pigeon\"]\n" FLOW, "unknown transport"},
        Bad{"capture_without_as", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n        response: { channel: \"b\", capture: { json: \"$.x\" } }\n",
            "needs both json"},
        Bad{"bad_json_path", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\" }\n        response: { channel: \"b\", capture: { json: \"x.y\", as: v } }\n",
            "must start with $"},
        Bad{"loop_without_count", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - loop:\n          - think: 1\n",
            "needs a count"},
        Bad{"tls_client_cert", HEAD "  tls:\n    cert: \"client.pem\"\n" FLOW,
            "config.tls.cert: unknown key (expected one of: ca, insecure, rejectUnauthorized)"},
        Bad{"tls_insecure_not_bool", HEAD "  tls:\n    insecure: \"yes\"\n" FLOW, "config.tls.insecure: expected true or false"},
        Bad{"tls_contradiction", HEAD "  tls:\n    insecure: true\n    rejectUnauthorized: true\n" FLOW,
            "config.tls.rejectUnauthorized: contradicts config.tls.insecure"},
        Bad{"tls_missing_ca", HEAD "  tls:\n    ca: \"no-such-ca.pem\"\n" FLOW, "config.tls.ca: cannot read "},
        Bad{"bad_port", "config:\n  target: \"http://127.0.0.1:99999\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n" FLOW, "port in 1..65535"},
        Bad{"duplicate_key", HEAD "  timeout: 1\n  timeout: 2\n" FLOW, "duplicate key"},
        Bad{"no_phases", "config:\n  target: \"http://127.0.0.1:1\"\n  phases: []\n" FLOW, "non-empty list of phases"},
        Bad{"bad_duration", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: soon\n      arrivalRate: 1\n" FLOW,
            "config.phases[0].duration: expected a duration"},
        Bad{"rate_and_count", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 1\n      arrivalRate: 1\n      arrivalCount: 3\n" FLOW,
            "cannot be combined"},
        Bad{"huge_phase", "config:\n  target: \"http://127.0.0.1:1\"\n  phases:\n    - duration: 100000\n      arrivalRate: 100000\n" FLOW,
            "arrivals in one phase"},
        Bad{"bad_template", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ $randomNumber(1) }}\" }\n",
            "$randomNumber takes two integers"},
        Bad{"unset_env", HEAD "scenarios:\n  - engine: socketio\n    flow:\n      - emit: { channel: \"a\", data: \"{{ $env.PHASEKIT_SURELY_UNSET_VAR }}\" }\n",
            "is not set"},
        Bad{"not_a_mapping", "- 1\n- 2\n", "expected a mapping"},
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
