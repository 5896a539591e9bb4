#pragma once
// A load scenario in Artillery's format (YAML, or the same structure as JSON), validated into the
// form the runner executes. Everything a run would trip over later is refused here, with the file,
// the line (YAML), the path in it and what was expected: unknown keys, bad values, undefined
// template variables, unknown metrics in thresholds, CSV payloads that do not parse.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "template.hpp"
#include "thresholds.hpp"

namespace phasekit::load {

class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Capture {
  JsonPath path;
  std::string as;
};

struct Match {
  JsonPath path;
  nlohmann::json value;  // a template
};

/// What an emit waits for: an event from the server (response) or the ack of the emit.
struct Expectation {
  std::string channel;                 // response only; a template
  std::optional<nlohmann::json> data;  // deep-equal check (a template)
  std::vector<Capture> captures;
  std::vector<Match> matches;
};

struct Step {
  enum class Kind { emit, think, loop, log };
  Kind kind = Kind::emit;
  std::string where;  // "scenarios[0].flow[2]", for messages
  std::optional<Condition> if_true;  // ifTrue: the step runs only when it holds
  // emit
  std::string channel;                // a template
  std::vector<nlohmann::json> args;   // templates; emit.data is one argument
  std::string ns = "/";
  std::optional<Expectation> response;
  std::optional<Expectation> ack;
  // think
  double think_s = 0;
  // loop: count times, or once per element of a list (over), with $loopCount (from 0) and $loopElement
  std::uint64_t count = 1;
  std::optional<nlohmann::json> over;  // over: a list written in the scenario (its elements are templates)
  std::string over_variable;           // over: the variable holding the list
  std::uint64_t over_bound = 0;        // the longest that list can be, as far as the scenario says
  std::vector<Step> steps;
  // log
  std::string message;
};

struct SocketOptions {
  std::string path = "/socket.io/";
  bool polling = true;    // transports as socket.io-client: polling first, then upgrade
  bool websocket = true;
  // query, as socket.io-client takes it: text ("a=1&b={{ x }}", each part decoded and encoded again)
  // or a mapping of names to values; both are templates, rendered and encoded per user.
  std::optional<std::string> query_text;
  std::vector<std::pair<std::string, nlohmann::json>> query;
  std::map<std::string, std::string> headers;  // extraHeaders, templates: every HTTP request and the upgrade
  std::optional<nlohmann::json> auth;  // CONNECT payload, a template
  // reconnection: true: a user whose connection breaks connects again, asking the server to recover
  // its session (the pid and last offset in its CONNECT's auth), and goes on with its next flow.
  bool reconnection = false;
};

struct Flow {
  std::string name;
  double weight = 1;
  // engine: socketio-v3 hands a one-argument ack to capture/match as that argument ($.ok), where
  // Artillery's built-in engine hands the list of arguments ($.0.ok).
  bool v3_acks = false;
  // config.socketio with the scenario's own socketio over it (Artillery merges them key by key).
  // path and transports are the run's: every flow has the same.
  SocketOptions socket;
  std::vector<Step> steps;
};

/// config.payload: a CSV file whose rows give users variables, one row per user (order: random, or
/// sequence: row i for the i-th user, wrapping), or with loadAll the whole file as one list variable.
struct Payload {
  std::string file;                 // as read: the path relative to the scenario's directory resolved
  std::vector<std::string> fields;  // the variable each column sets
  bool sequence = false;
  std::vector<std::vector<nlohmann::json>> rows;  // not loadAll: a value per field (cast when asked)
  std::string name;                 // loadAll: the variable that holds every row
  nlohmann::json all;               // loadAll: the rows, objects by field (lists without fields)
};

struct Phase {
  std::string name;
  double duration_s = 0;
  double arrival_rate = 0;               // per second at the start
  std::optional<double> ramp_to;         // per second at the end
  std::optional<std::uint64_t> arrival_count;  // spread evenly over the duration
  bool pause = false;
  std::optional<std::uint64_t> max_vusers;
};

struct Target {
  std::string host;
  std::string port;
  std::string ns = "/";  // the path of the target URL, as socket.io-client reads it
  bool tls = false;      // https:// or wss://
  [[nodiscard]] std::string url() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" + port + (ns == "/" ? "" : ns);
  }
};

/// config.tls: how a TLS target's certificate is checked (the command line's --ca and --insecure win).
struct TlsOptions {
  std::string ca_file;    // config.tls.ca, relative to the scenario's directory; "": the system's CAs
  bool insecure = false;  // config.tls.insecure, or Artillery's rejectUnauthorized: false
};

struct Scenario {
  std::string file;
  Target target;
  std::vector<Phase> phases;
  std::map<std::string, std::vector<nlohmann::json>> variables;
  std::vector<Payload> payloads;
  Vars environment;      // $env.NAME values read when the scenario was loaded
  SocketOptions socket;  // config.socketio (the flows have theirs, with the same path and transports)
  TlsOptions tls;
  double timeout_s = 10;  // waiting for a response or an ack
  std::vector<Threshold> thresholds;
  std::vector<Flow> flows;
  std::optional<Flow> before;  // run once, as one user, before the phases; its variables go to every user
  std::optional<Flow> after;   // run once after every user ended, with the before flow's variables
  std::set<std::string> channels;  // literal emit channels (each has its response-time metric)

  [[nodiscard]] double duration_s() const;
  /// The longest a user can take for one flow: its think times plus a full timeout for every wait.
  [[nodiscard]] double flow_bound_s() const;
  /// The same for one flow (before and after have their own deadline).
  [[nodiscard]] double flow_bound_s(const Flow& flow) const;
  [[nodiscard]] MetricCatalog catalog() const { return MetricCatalog(channels); }
};

/// Parses "http://host:port/namespace" (ws:// is accepted as http://; https:// and wss:// are TLS,
/// port 443 by default). Throws ScenarioError.
Target parse_target(const std::string& url, const std::string& where);

/// Where each value of a YAML document is: its path as errors name it ("config.phases[0].duration",
/// "scenarios[1].flow[0].emit") → its line, 1-based (a mapping's entry: the line of its key).
using SourceLines = std::map<std::string, int, std::less<>>;

/// Reads a payload file named by a scenario; throws std::runtime_error with the reason.
using FileReader = std::function<std::string(const std::string& path)>;
/// The files a payload names are at most this big (and at most a million rows).
inline constexpr std::uintmax_t kMaxPayloadBytes = 64u << 20;
/// Reads a file from disk, refusing one over kMaxPayloadBytes.
std::string read_payload_file(const std::string& path);

/// YAML (.yml/.yaml) or JSON (.json) by extension, config.target replaced by target when it is not
/// empty; throws ScenarioError "<file>:<line>: <path>: <reason>" (no line for JSON).
Scenario load_scenario(const std::string& file, const std::string& target = "");
/// The document as JSON (YAML plain scalars typed by the YAML 1.2 core schema, as js-yaml does).
nlohmann::json read_document(const std::string& file, SourceLines* lines = nullptr);
/// The same from text already read: JSON when is_json, else YAML; errors name `file`.
nlohmann::json parse_document(const std::string& text, bool is_json, const std::string& file,
                              SourceLines* lines = nullptr);
/// Payload files are read with read (relative to the directory of file), read_payload_file by default.
Scenario parse_scenario(const nlohmann::json& document, const std::string& file, const SourceLines* lines = nullptr,
                        const FileReader& read = read_payload_file);

}  // namespace phasekit::load
