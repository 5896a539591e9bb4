#include "scenario.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace phasekit::load {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxArrivals = 50'000'000;

std::string type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return fmt::format("\"{}\"", j.get<std::string>());
    case json::value_t::array: return "a list";
    case json::value_t::object: return "a mapping";
    default: return j.dump();
  }
}

// Reads one document, remembering the path of what it reads so every error names it.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ScenarioError(fmt::format("{}: {}: {}", file_, path.empty() ? "(document)" : path, what));
  }

  void keys(const json& j, const std::string& path, std::initializer_list<std::string_view> allowed) const {
    if (!j.is_object()) {
      fail(path, fmt::format("expected a mapping, got {}", type_name(j)));
    }
    for (const auto& [key, value] : j.items()) {
      bool known = false;
      for (std::string_view a : allowed) {
        known = known || a == key;
      }
      if (!known) {
        std::string list;
        for (std::string_view a : allowed) {
          list += fmt::format("{}{}", list.empty() ? "" : ", ", a);
        }
        fail(join(path, key), fmt::format("unknown key (expected one of: {})", list));
      }
      (void)value;
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }
  static std::string at(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

  // Seconds: a number, or "500ms", "30s", "2m", "1h" (also sec, min).
  double seconds(const json& j, const std::string& path, double min_value) const {
    double v = -1;
    if (j.is_number()) {
      v = j.get<double>();
    } else if (j.is_string()) {
      std::string_view s = j.get_ref<const std::string&>();
      double scale = 1;
      static constexpr std::pair<std::string_view, double> kUnits[] = {
          {"ms", 0.001}, {"sec", 1}, {"s", 1}, {"min", 60}, {"m", 60}, {"h", 3600}};
      for (const auto& [unit, factor] : kUnits) {
        if (s.ends_with(unit)) {
          s.remove_suffix(unit.size());
          scale = factor;
          break;
        }
      }
      double n = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc() && end == s.data() + s.size()) {
        v = n * scale;
      } else {
        v = -1;
      }
    }
    if (!std::isfinite(v) || v < min_value) {
      fail(path, fmt::format("expected a duration of at least {} s (a number of seconds, or \"30s\", \"2m\"), got {}",
                             min_value, type_name(j)));
    }
    return v;
  }

  double number(const json& j, const std::string& path, double min_value, double max_value) const {
    if (!j.is_number() || !std::isfinite(j.get<double>()) || j.get<double>() < min_value ||
        j.get<double>() > max_value) {
      fail(path, fmt::format("expected a number in {}..{}, got {}", min_value, max_value, type_name(j)));
    }
    return j.get<double>();
  }

  std::uint64_t integer(const json& j, const std::string& path, std::uint64_t min_value, std::uint64_t max_value) const {
    if (!j.is_number_integer() || j.get<std::int64_t>() < 0 || j.get<std::uint64_t>() < min_value ||
        j.get<std::uint64_t>() > max_value) {
      fail(path, fmt::format("expected a whole number in {}..{}, got {}", min_value, max_value, type_name(j)));
    }
    return j.get<std::uint64_t>();
  }

  std::string text(const json& j, const std::string& path, bool allow_empty = false) const {
    if (!j.is_string() || (!allow_empty && j.get_ref<const std::string&>().empty())) {
      fail(path, fmt::format("expected a non-empty string, got {}", type_name(j)));
    }
    return j.get<std::string>();
  }

  // Every template in value must parse; its variable names are remembered for the final check.
  json templated(const json& value, const std::string& path) {
    try {
      for (std::string& ref : template_references(value)) {
        references_.emplace_back(std::move(ref), path);
      }
    } catch (const std::invalid_argument& e) {
      fail(path, e.what());
    }
    return value;
  }

  const std::vector<std::pair<std::string, std::string>>& references() const { return references_; }

 private:
  std::string file_;
  std::vector<std::pair<std::string, std::string>> references_;  // name, path
};

// Aliases let a few lines of YAML stand for millions of nodes ("billion laughs"): the conversion
// counts what it makes and stops at a bound far above any real scenario.
constexpr std::size_t kMaxDocumentNodes = 1'000'000;

json yaml_to_json(const YAML::Node& node, std::size_t& budget) {
  if (budget == 0) {
    throw ScenarioError(fmt::format("more than {} values (aliases expanding without end?)", kMaxDocumentNodes));
  }
  --budget;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) {
        out.push_back(yaml_to_json(item, budget));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.as<std::string>();
        if (out.contains(key)) {
          throw ScenarioError(fmt::format("line {}: duplicate key \"{}\"", kv.first.Mark().line + 1, key));
        }
        out[key] = yaml_to_json(kv.second, budget);
      }
      return out;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = node.Scalar();
  if (node.Tag() != "?") {
    return s;  // quoted, or explicitly tagged: a string
  }
  // Plain scalars: the YAML 1.2 core schema (what js-yaml, and so Artillery, uses).
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  {
    std::int64_t i = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && end == s.data() + s.size()) {
      return i;
    }
  }
  if (s.find_first_not_of("+-.0123456789eE") == std::string::npos && s.find_first_of("0123456789") != std::string::npos) {
    double d = 0;
    const char* begin = s.data() + (s.front() == '+' ? 1 : 0);
    const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), d);
    if (ec == std::errc() && end == s.data() + s.size()) {
      return d;
    }
  }
  return s;
}

std::string read_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ScenarioError(fmt::format("{}: cannot open the file", file));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Artillery takes one mapping or a list of them: calls item(entry, its path) for each.
template <class Item>
void each_entry(const json& j, const std::string& path, Item item) {
  if (!j.is_array()) {
    item(j, path);
    return;
  }
  for (std::size_t i = 0; i < j.size(); ++i) {
    item(j[i], Reader::at(path, i));
  }
}

JsonPath read_path(Reader& r, const json& entry, const std::string& path) {
  const std::string p = Reader::join(path, "json");
  try {
    return JsonPath(r.text(entry["json"], p));
  } catch (const std::invalid_argument& e) {
    r.fail(p, e.what());
  }
}

std::vector<Capture> read_captures(Reader& r, const json& j, const std::string& path, std::set<std::string>& defined) {
  std::vector<Capture> out;
  each_entry(j, path, [&](const json& entry, const std::string& p) {
    r.keys(entry, p, {"json", "as"});
    if (!entry.contains("json") || !entry.contains("as")) {
      r.fail(p, "a capture needs both json (a JSON path such as $.callId) and as (the variable name)");
    }
    out.push_back(Capture{read_path(r, entry, p), r.text(entry["as"], Reader::join(p, "as"))});
    defined.insert(out.back().as);
  });
  return out;
}

std::vector<Match> read_matches(Reader& r, const json& j, const std::string& path) {
  std::vector<Match> out;
  each_entry(j, path, [&](const json& entry, const std::string& p) {
    r.keys(entry, p, {"json", "value"});
    if (!entry.contains("json") || !entry.contains("value")) {
      r.fail(p, "a match needs json (a JSON path) and value");
    }
    out.push_back(Match{read_path(r, entry, p), r.templated(entry["value"], Reader::join(p, "value"))});
  });
  return out;
}

Expectation read_expectation(Reader& r, const json& j, const std::string& path, bool response,
                             std::set<std::string>& defined) {
  if (response) {
    r.keys(j, path, {"channel", "data", "capture", "match"});
    if (!j.contains("channel")) {
      r.fail(path, "a response needs the channel of the server event to wait for");
    }
  } else {
    r.keys(j, path, {"data", "capture", "match"});
  }
  Expectation e;
  if (response) {
    e.channel = r.templated(r.text(j["channel"], Reader::join(path, "channel")), Reader::join(path, "channel"));
  }
  if (j.contains("data")) {
    e.data = r.templated(j["data"], Reader::join(path, "data"));
  }
  if (j.contains("capture")) {
    e.captures = read_captures(r, j["capture"], Reader::join(path, "capture"), defined);
  }
  if (j.contains("match")) {
    e.matches = read_matches(r, j["match"], Reader::join(path, "match"));
  }
  return e;
}

std::string read_namespace(Reader& r, const json& j, const std::string& path) {
  std::string ns = r.text(j, path);
  if (ns.front() != '/') {
    r.fail(path, fmt::format("a namespace starts with /, got \"{}\"", ns));
  }
  return ns;
}

std::vector<Step> read_flow(Reader& r, const json& j, const std::string& path, std::set<std::string>& defined,
                            std::set<std::string>& channels, int depth);

Step read_step(Reader& r, const json& j, const std::string& path, std::set<std::string>& defined,
               std::set<std::string>& channels, int depth) {
  if (!j.is_object()) {
    r.fail(path, fmt::format("expected a step (emit, think, loop or log), got {}", type_name(j)));
  }
  Step s;
  s.where = path;
  if (j.contains("emit")) {
    r.keys(j, path, {"emit", "response", "acknowledge", "namespace"});
    const json& e = j["emit"];
    const std::string ep = Reader::join(path, "emit");
    if (e.is_array()) {  // the socketio-v3 engine form: [channel, arg, …]
      if (e.empty()) {
        r.fail(ep, "expected [channel, arguments…], got an empty list");
      }
      s.channel = r.text(e[0], Reader::at(ep, 0));
      for (std::size_t i = 1; i < e.size(); ++i) {
        s.args.push_back(r.templated(e[i], Reader::at(ep, i)));
      }
    } else {
      r.keys(e, ep, {"channel", "data", "response", "acknowledge", "namespace"});
      if (!e.contains("channel")) {
        r.fail(ep, "an emit needs a channel");
      }
      s.channel = r.text(e["channel"], Reader::join(ep, "channel"));
      if (e.contains("data")) {
        s.args.push_back(r.templated(e["data"], Reader::join(ep, "data")));
      }
    }
    r.templated(s.channel, Reader::join(ep, "channel"));
    if (s.channel.find("{{") == std::string::npos) {
      channels.insert(s.channel);
    }
    // Artillery has had response/acknowledge/namespace both inside emit and beside it.
    const auto option = [&](const char* key) -> std::pair<const json*, std::string> {
      if (j.contains(key)) {
        return {&j[key], Reader::join(path, key)};
      }
      if (e.is_object() && e.contains(key)) {
        return {&e[key], Reader::join(ep, key)};
      }
      return {nullptr, ""};
    };
    if (auto [v, p] = option("namespace"); v != nullptr) {
      s.ns = read_namespace(r, *v, p);
    }
    if (auto [v, p] = option("response"); v != nullptr) {
      s.response = read_expectation(r, *v, p, true, defined);
    }
    if (auto [v, p] = option("acknowledge"); v != nullptr) {
      if (v->is_boolean()) {  // acknowledge: true waits for the ack and checks nothing
        if (v->get<bool>()) {
          s.ack = Expectation{};
        }
      } else {
        s.ack = read_expectation(r, *v, p, false, defined);
      }
    }
  } else if (j.contains("think")) {
    r.keys(j, path, {"think"});
    s.kind = Step::Kind::think;
    s.think_s = r.seconds(j["think"], Reader::join(path, "think"), 0);
  } else if (j.contains("loop")) {
    r.keys(j, path, {"loop", "count"});
    if (depth >= 8) {
      r.fail(path, "loops nest at most 8 deep");
    }
    s.kind = Step::Kind::loop;
    if (!j.contains("count")) {
      r.fail(path, "a loop needs a count (loops without one would never end)");
    }
    s.count = r.integer(j["count"], Reader::join(path, "count"), 1, 1'000'000);
    s.steps = read_flow(r, j["loop"], Reader::join(path, "loop"), defined, channels, depth + 1);
  } else if (j.contains("log")) {
    r.keys(j, path, {"log"});
    s.kind = Step::Kind::log;
    s.message = r.templated(r.text(j["log"], Reader::join(path, "log"), true), Reader::join(path, "log"));
  } else {
    const std::string first = j.empty() ? std::string("(empty)") : j.begin().key();
    if (first == "function") {
      r.fail(path, "function steps run JavaScript processors, which phasekit-load does not run");
    }
    r.fail(Reader::join(path, first), "unknown step (expected emit, think, loop or log)");
  }
  return s;
}

std::vector<Step> read_flow(Reader& r, const json& j, const std::string& path, std::set<std::string>& defined,
                            std::set<std::string>& channels, int depth) {
  if (!j.is_array() || j.empty()) {
    r.fail(path, fmt::format("expected a non-empty list of steps, got {}", type_name(j)));
  }
  std::vector<Step> steps;
  for (std::size_t i = 0; i < j.size(); ++i) {
    steps.push_back(read_step(r, j[i], Reader::at(path, i), defined, channels, depth));
  }
  return steps;
}

Phase read_phase(Reader& r, const json& j, const std::string& path) {
  r.keys(j, path, {"name", "duration", "arrivalRate", "rampTo", "arrivalCount", "pause", "maxVusers"});
  Phase p;
  if (j.contains("name")) {
    p.name = r.text(j["name"], Reader::join(path, "name"));
  }
  if (j.contains("pause")) {
    if (j.size() > (j.contains("name") ? 2u : 1u)) {
      r.fail(path, "a pause phase has only pause (and name)");
    }
    p.pause = true;
    p.duration_s = r.seconds(j["pause"], Reader::join(path, "pause"), 0);
    return p;
  }
  if (!j.contains("duration")) {
    r.fail(path, "a phase needs a duration (seconds)");
  }
  p.duration_s = r.seconds(j["duration"], Reader::join(path, "duration"), 0.001);
  if (j.contains("arrivalCount")) {
    if (j.contains("arrivalRate") || j.contains("rampTo")) {
      r.fail(path, "arrivalCount cannot be combined with arrivalRate or rampTo");
    }
    p.arrival_count = r.integer(j["arrivalCount"], Reader::join(path, "arrivalCount"), 0, kMaxArrivals);
  } else if (j.contains("arrivalRate") || j.contains("rampTo")) {
    if (j.contains("arrivalRate")) {
      p.arrival_rate = r.number(j["arrivalRate"], Reader::join(path, "arrivalRate"), 0, 1e6);
    }
    if (j.contains("rampTo")) {
      p.ramp_to = r.number(j["rampTo"], Reader::join(path, "rampTo"), 0, 1e6);
    }
  } else {
    r.fail(path, "a phase needs arrivalRate, rampTo or arrivalCount (or is a pause)");
  }
  const double arrivals = p.arrival_count ? static_cast<double>(*p.arrival_count)
                                          : (p.arrival_rate + p.ramp_to.value_or(p.arrival_rate)) / 2 * p.duration_s;
  if (arrivals > static_cast<double>(kMaxArrivals)) {
    r.fail(path, fmt::format("{:.0f} arrivals in one phase; at most {}", arrivals, kMaxArrivals));
  }
  if (j.contains("maxVusers")) {
    p.max_vusers = r.integer(j["maxVusers"], Reader::join(path, "maxVusers"), 1, 10'000'000);
  }
  return p;
}

// config.tls: ca (a PEM file, relative to the scenario's directory), insecure, and Artillery's
// rejectUnauthorized (false is insecure).
TlsOptions read_tls_options(Reader& r, const json& j, const std::string& file) {
  r.keys(j, "config.tls", {"ca", "insecure", "rejectUnauthorized"});
  TlsOptions o;
  if (j.contains("ca")) {
    const std::filesystem::path ca = r.text(j["ca"], "config.tls.ca");
    o.ca_file = (ca.is_absolute() ? ca : std::filesystem::path(file).parent_path() / ca).string();
    if (!std::ifstream(o.ca_file)) {
      r.fail("config.tls.ca", fmt::format("cannot read {} (a PEM file of CA certificates, relative to the scenario)",
                                          o.ca_file));
    }
  }
  std::optional<bool> insecure;
  for (const char* key : {"insecure", "rejectUnauthorized"}) {
    if (!j.contains(key)) {
      continue;
    }
    const std::string path = Reader::join("config.tls", key);
    if (!j[key].is_boolean()) {
      r.fail(path, fmt::format("expected true or false, got {}", type_name(j[key])));
    }
    const bool this_insecure = std::string_view(key) == "insecure" ? j[key].get<bool>() : !j[key].get<bool>();
    if (insecure && *insecure != this_insecure) {
      r.fail(path, "contradicts config.tls.insecure (rejectUnauthorized: false is insecure: true)");
    }
    insecure = this_insecure;
  }
  o.insecure = insecure.value_or(false);
  return o;
}

void read_socket_options(Reader& r, const json& j, const std::string& path, SocketOptions& o) {
  r.keys(j, path, {"query", "path", "extraHeaders", "transports", "auth", "upgrade", "reconnection", "forceNew",
                   "timeout"});
  if (j.contains("query")) {
    const json& q = j["query"];
    const std::string qp = Reader::join(path, "query");
    if (q.is_string()) {
      o.query = q.get<std::string>();
    } else if (q.is_object()) {
      o.query.clear();
      for (const auto& [k, v] : q.items()) {
        o.query += fmt::format("{}{}={}", o.query.empty() ? "" : "&", k,
                               v.is_string() ? v.get<std::string>() : v.dump());
      }
    } else {
      r.fail(qp, fmt::format("expected a string (a=1&b=2) or a mapping, got {}", type_name(q)));
    }
    r.templated(o.query, qp);
  }
  if (j.contains("path")) {
    o.path = r.text(j["path"], Reader::join(path, "path"));
    if (o.path.front() != '/') {
      r.fail(Reader::join(path, "path"), "expected a path starting with /");
    }
    if (o.path.back() != '/') {
      o.path += '/';
    }
  }
  if (j.contains("extraHeaders")) {
    const std::string hp = Reader::join(path, "extraHeaders");
    if (!j["extraHeaders"].is_object()) {
      r.fail(hp, "expected a mapping of header names to values");
    }
    for (const auto& [k, v] : j["extraHeaders"].items()) {
      o.headers[k] = r.templated(r.text(v, Reader::join(hp, k), true), Reader::join(hp, k)).get<std::string>();
    }
  }
  if (j.contains("transports")) {
    const json& t = j["transports"];
    const std::string tp = Reader::join(path, "transports");
    if (!t.is_array() || t.empty()) {
      r.fail(tp, "expected a list of transports: websocket, polling");
    }
    o.polling = o.websocket = false;
    for (std::size_t i = 0; i < t.size(); ++i) {
      const std::string name = r.text(t[i], Reader::at(tp, i));
      if (name == "polling") {
        o.polling = true;
      } else if (name == "websocket") {
        o.websocket = true;
      } else {
        r.fail(Reader::at(tp, i), fmt::format("unknown transport \"{}\" (expected websocket or polling)", name));
      }
    }
  }
  if (j.contains("upgrade")) {
    if (!j["upgrade"].is_boolean()) {
      r.fail(Reader::join(path, "upgrade"), "expected true or false");
    }
    if (!j["upgrade"].get<bool>() && o.polling) {
      o.websocket = false;  // polling stays polling
    }
  }
  if (j.contains("auth")) {
    if (!j["auth"].is_object()) {
      r.fail(Reader::join(path, "auth"), "expected a mapping (the CONNECT auth payload, e.g. {token: ...})");
    }
    o.auth = r.templated(j["auth"], Reader::join(path, "auth"));
  }
  for (const char* flag : {"reconnection", "forceNew"}) {
    if (j.contains(flag) && !j[flag].is_boolean()) {
      r.fail(Reader::join(path, flag), "expected true or false");
    }
  }
  if (j.contains("timeout")) {
    r.number(j["timeout"], Reader::join(path, "timeout"), 1, 3'600'000);
  }
}

void read_thresholds(Reader& r, const json& config, Scenario& s, const MetricCatalog& catalog) {
  const auto add = [&](const std::string& path, auto make) {
    try {
      s.thresholds.push_back(make());
    } catch (const std::invalid_argument& e) {
      r.fail(path, e.what());
    }
  };
  if (config.contains("ensure")) {
    const json& e = config["ensure"];
    r.keys(e, "config.ensure",
           {"p50", "p75", "p90", "p95", "p99", "p999", "min", "max", "median", "mean", "maxErrorRate", "thresholds",
            "conditions"});
    for (const auto& [key, value] : e.items()) {
      const std::string p = Reader::join("config.ensure", key);
      if (key == "conditions") {
        r.fail(p, "conditions (expressions) are not supported; use thresholds or config.thresholds");
      }
      if (key == "thresholds") {
        if (!value.is_array()) {
          r.fail(p, "expected a list of {metric: value} (each passes when the metric is below the value)");
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
          const std::string tp = Reader::at(p, i);
          if (!value[i].is_object() || value[i].size() != 1) {
            r.fail(tp, "expected one {metric: value}");
          }
          const std::string metric = value[i].begin().key();
          const double v = r.number(value[i].begin().value(), Reader::join(tp, metric), -1e18, 1e18);
          add(tp, [&] { return make_threshold(metric, Op::lt, v, fmt::format("{} < {}", metric, v), catalog); });
        }
      } else if (key == "maxErrorRate") {
        const double v = r.number(value, p, 0, 100);
        add(p, [&] { return make_threshold(std::string(kErrorRate), Op::le, v, fmt::format("maxErrorRate {}%", v), catalog); });
      } else {
        const double v = r.number(value, p, 0, 1e12);
        const std::string metric = fmt::format("{}.{}", kResponseTime, key);
        const std::string label = fmt::format("{} < {} ms", key, v);
        add(p, [&] { return make_threshold(metric, Op::lt, v, label, catalog); });
      }
    }
  }
  if (config.contains("thresholds")) {
    const json& t = config["thresholds"];
    if (!t.is_object()) {
      r.fail("config.thresholds", "expected a mapping of metric names to lists of expressions (k6 form)");
    }
    for (const auto& [metric, list] : t.items()) {
      const std::string p = Reader::join("config.thresholds", metric);
      if (!list.is_array()) {
        r.fail(p, "expected a list of expressions such as \"p(95)<200\"");
      }
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string ip = Reader::at(p, i);
        std::string expression;
        if (list[i].is_object()) {
          r.keys(list[i], ip, {"threshold"});
          expression = r.text(list[i].value("threshold", json()), Reader::join(ip, "threshold"));
        } else {
          expression = r.text(list[i], ip);
        }
        add(ip, [&, &name = metric] { return parse_k6_threshold(name, expression, catalog); });
      }
    }
  }
}

}  // namespace

double Scenario::duration_s() const {
  double total = 0;
  for (const Phase& p : phases) {
    total += p.duration_s;
  }
  return total;
}

namespace {

double steps_bound(const std::vector<Step>& steps, double timeout_s) {
  double total = 0;
  for (const Step& s : steps) {
    switch (s.kind) {
      case Step::Kind::think: total += s.think_s; break;
      case Step::Kind::loop: total += static_cast<double>(s.count) * steps_bound(s.steps, timeout_s); break;
      case Step::Kind::emit: total += s.response || s.ack ? timeout_s : 0; break;
      case Step::Kind::log: break;
    }
  }
  return total;
}

}  // namespace

double Scenario::flow_bound_s() const {
  double longest = 0;
  for (const Flow& f : flows) {
    longest = std::max(longest, steps_bound(f.steps, timeout_s));
  }
  return longest;
}

Target parse_target(const std::string& url, const std::string& where) {
  std::string_view rest = url;
  Target t;
  static constexpr std::pair<std::string_view, bool> kSchemes[] = {
      {"http://", false}, {"ws://", false}, {"https://", true}, {"wss://", true}};
  bool known = false;
  for (const auto& [scheme, tls] : kSchemes) {
    if (!known && rest.starts_with(scheme)) {
      rest.remove_prefix(scheme.size());
      t.tls = tls;
      known = true;
    }
  }
  if (!known) {
    throw ScenarioError(fmt::format("{}: \"{}\": expected a URL such as http://127.0.0.1:3000 (or https://)", where, url));
  }
  const std::string default_port = t.tls ? "443" : "80";
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view ns = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.starts_with('[')) {  // [::1]:3000
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      throw ScenarioError(fmt::format("{}: \"{}\": unclosed [ in the host", where, url));
    }
    t.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    t.port = authority.starts_with(':') ? std::string(authority.substr(1)) : default_port;
  } else {
    const auto colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    t.port = colon == std::string_view::npos ? default_port : std::string(authority.substr(colon + 1));
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(t.port.data(), t.port.data() + t.port.size(), port);
  if (t.host.empty() || ec != std::errc() || end != t.port.data() + t.port.size() || port == 0 || port > 65535) {
    throw ScenarioError(fmt::format("{}: \"{}\": expected http://host:port with a port in 1..65535", where, url));
  }
  if (ns.size() > 1 && ns.back() == '/') {
    ns.remove_suffix(1);
  }
  t.ns = std::string(ns);
  if (t.ns.find_first_of("?#") != std::string::npos) {
    throw ScenarioError(fmt::format("{}: \"{}\": put query parameters in config.socketio.query", where, url));
  }
  return t;
}

json read_document(const std::string& file) { return parse_document(read_file(file), file.ends_with(".json"), file); }

json parse_document(const std::string& text, bool is_json, const std::string& file) {
  if (is_json) {
    try {
      return json::parse(text);
    } catch (const json::parse_error& e) {
      throw ScenarioError(fmt::format("{}: invalid JSON at byte {}", file, e.byte));
    } catch (const json::exception& e) {  // a number out of range (406) and the like
      throw ScenarioError(fmt::format("{}: invalid JSON: {}", file, e.what()));
    }
  }
  try {
    const YAML::Node root = YAML::Load(text);
    std::size_t budget = kMaxDocumentNodes;
    return yaml_to_json(root, budget);
  } catch (const YAML::Exception& e) {
    throw ScenarioError(fmt::format("{}: line {}, column {}: YAML: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const ScenarioError& e) {
    throw ScenarioError(fmt::format("{}: {}", file, e.what()));
  }
}

Scenario load_scenario(const std::string& file) { return parse_scenario(read_document(file), file); }

Scenario parse_scenario(const json& doc, const std::string& file) {
  Reader r(file);
  r.keys(doc, "", {"config", "scenarios", "before", "after"});
  if (doc.contains("before") || doc.contains("after")) {
    r.fail(doc.contains("before") ? "before" : "after", "before/after flows are not supported");
  }
  if (!doc.contains("config")) {
    r.fail("config", "missing (it holds target and phases)");
  }
  const json& config = doc["config"];
  r.keys(config, "config",
         {"target", "phases", "variables", "socketio", "engines", "timeout", "ensure", "thresholds", "plugins",
          "processor", "environments", "payload", "http", "tls", "defaults"});
  for (const char* unsupported : {"processor", "environments", "payload", "http", "defaults"}) {
    if (config.contains(unsupported)) {
      r.fail(Reader::join("config", unsupported),
             std::string_view(unsupported) == "processor" ? "JavaScript processors are not supported"
             : std::string_view(unsupported) == "payload" ? "CSV payloads are not supported; use config.variables"
                                                          : "not supported by phasekit-load");
    }
  }
  Scenario s;
  s.file = file;
  if (!config.contains("target")) {
    r.fail("config.target", "missing (the server's URL, e.g. http://127.0.0.1:3000)");
  }
  s.target = parse_target(r.text(config["target"], "config.target"), fmt::format("{}: config.target", file));

  if (!config.contains("phases")) {
    r.fail("config.phases", "missing (a list of phases with duration and arrivalRate)");
  }
  if (!config["phases"].is_array() || config["phases"].empty()) {
    r.fail("config.phases", "expected a non-empty list of phases");
  }
  for (std::size_t i = 0; i < config["phases"].size(); ++i) {
    s.phases.push_back(read_phase(r, config["phases"][i], Reader::at("config.phases", i)));
  }

  std::set<std::string> defined{"$loopCount", "$loopElement", "$uuid"};
  if (config.contains("variables")) {
    const json& v = config["variables"];
    if (!v.is_object()) {
      r.fail("config.variables", "expected a mapping of names to values (or lists of values, one picked per user)");
    }
    for (const auto& [name, values] : v.items()) {
      if (values.is_array() && values.empty()) {
        r.fail(Reader::join("config.variables", name), "an empty list has no value to pick");
      }
      s.variables[name] = values.is_array() ? values.get<std::vector<json>>() : std::vector<json>{values};
      for (const json& one : s.variables[name]) {
        r.templated(one, Reader::join("config.variables", name));
      }
      defined.insert(name);
    }
  }
  if (config.contains("socketio")) {
    read_socket_options(r, config["socketio"], "config.socketio", s.socket);
  }
  if (config.contains("engines")) {
    r.keys(config["engines"], "config.engines", {"socketio", "socketio-v3"});
    for (const auto& [engine, options] : config["engines"].items()) {
      read_socket_options(r, options, Reader::join("config.engines", engine), s.socket);
    }
  }
  if (config.contains("tls")) {
    s.tls = read_tls_options(r, config["tls"], file);
  }
  if (config.contains("timeout")) {
    s.timeout_s = r.seconds(config["timeout"], "config.timeout", 0.001);
  }
  if (config.contains("plugins")) {
    r.keys(config["plugins"], "config.plugins", {"ensure", "metrics-by-endpoint"});
  }

  if (!doc.contains("scenarios")) {
    r.fail("scenarios", "missing (a list of scenarios, each with engine: socketio and a flow)");
  }
  const json& list = doc["scenarios"];
  if (!list.is_array() || list.empty()) {
    r.fail("scenarios", "expected a non-empty list of scenarios");
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string p = Reader::at("scenarios", i);
    r.keys(list[i], p, {"name", "engine", "weight", "flow", "socketio"});
    Flow f;
    f.name = list[i].contains("name") ? r.text(list[i]["name"], Reader::join(p, "name")) : fmt::format("scenario {}", i);
    const std::string engine = list[i].contains("engine") ? r.text(list[i]["engine"], Reader::join(p, "engine")) : "http";
    if (engine != "socketio" && engine != "socketio-v3") {
      r.fail(Reader::join(p, "engine"),
             fmt::format("engine \"{}\": phasekit-load runs Socket.IO scenarios (engine: socketio or socketio-v3)", engine));
    }
    f.v3_acks = engine == "socketio-v3";
    if (list[i].contains("weight")) {
      f.weight = r.number(list[i]["weight"], Reader::join(p, "weight"), 0, 1e6);
    }
    if (list[i].contains("socketio")) {
      read_socket_options(r, list[i]["socketio"], Reader::join(p, "socketio"), s.socket);
    }
    if (!list[i].contains("flow")) {
      r.fail(Reader::join(p, "flow"), "missing (the list of steps)");
    }
    f.steps = read_flow(r, list[i]["flow"], Reader::join(p, "flow"), defined, s.channels, 0);
    s.flows.push_back(std::move(f));
  }
  double weights = 0;
  for (const Flow& f : s.flows) {
    weights += f.weight;
  }
  if (weights <= 0) {
    r.fail("scenarios", "the weights add up to 0: no scenario would run");
  }

  for (const auto& [name, path] : r.references()) {
    if (name.starts_with("$env.")) {
      const char* value = std::getenv(name.substr(5).c_str());
      if (value == nullptr) {
        r.fail(path, fmt::format("\"{{{{ {} }}}}\": the environment variable {} is not set", name, name.substr(5)));
      }
      s.environment[name] = value;
    } else if (!name.starts_with('$') && defined.count(name) == 0) {
      r.fail(path, fmt::format("\"{{{{ {} }}}}\": {} is neither in config.variables nor captured by any step", name, name));
    }
  }
  read_thresholds(r, config, s, s.catalog());
  return s;
}

}  // namespace phasekit::load
