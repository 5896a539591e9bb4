#pragma once
// A load scenario in Artillery's format (YAML, or the same structure as JSON), validated into the
// form the runner executes. Everything a run would trip over later is refused here, with the file,
// the path in it and what was expected: unknown keys, bad values, undefined template variables,
// unknown metrics in thresholds.
#include <nlohmann/json.hpp>

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
  // emit
  std::string channel;                // a template
  std::vector<nlohmann::json> args;   // templates; emit.data is one argument
  std::string ns = "/";
  std::optional<Expectation> response;
  std::optional<Expectation> ack;
  // think
  double think_s = 0;
  // loop
  std::uint64_t count = 1;
  std::vector<Step> steps;
  // log
  std::string message;
};

struct Flow {
  std::string name;
  double weight = 1;
  // engine: socketio-v3 hands a one-argument ack to capture/match as that argument ($.ok), where
  // Artillery's built-in engine hands the list of arguments ($.0.ok).
  bool v3_acks = false;
  std::vector<Step> steps;
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

struct SocketOptions {
  std::string path = "/socket.io/";
  bool polling = true;    // transports as socket.io-client: polling first, then upgrade
  bool websocket = true;
  std::string query;      // "a=1&b=2", a template
  std::map<std::string, std::string> headers;  // templates
  std::optional<nlohmann::json> auth;  // CONNECT payload, a template
};

struct Scenario {
  std::string file;
  Target target;
  std::vector<Phase> phases;
  std::map<std::string, std::vector<nlohmann::json>> variables;
  Vars environment;      // $env.NAME values read when the scenario was loaded
  SocketOptions socket;
  TlsOptions tls;
  double timeout_s = 10;  // waiting for a response or an ack
  std::vector<Threshold> thresholds;
  std::vector<Flow> flows;
  std::set<std::string> channels;  // literal emit channels (each has its response-time metric)

  [[nodiscard]] double duration_s() const;
  /// The longest a user can take for one flow: its think times plus a full timeout for every wait.
  [[nodiscard]] double flow_bound_s() const;
  [[nodiscard]] MetricCatalog catalog() const { return MetricCatalog(channels); }
};

/// Parses "http://host:port/namespace" (ws:// is accepted as http://; https:// and wss:// are TLS,
/// port 443 by default). Throws ScenarioError.
Target parse_target(const std::string& url, const std::string& where);

/// YAML (.yml/.yaml) or JSON (.json) by extension; throws ScenarioError "<file>: <path>: <reason>".
Scenario load_scenario(const std::string& file);
/// The document as JSON (YAML plain scalars typed by the YAML 1.2 core schema, as js-yaml does).
nlohmann::json read_document(const std::string& file);
/// The same from text already read: JSON when is_json, else YAML; errors name `file`.
nlohmann::json parse_document(const std::string& text, bool is_json, const std::string& file);
Scenario parse_scenario(const nlohmann::json& document, const std::string& file);

}  // namespace phasekit::load
