#include "scenario.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "csv.hpp"
#include "phasekit/json_fields.hpp"

namespace phasekit::load {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxArrivals = 50'000'000;

namespace jf = json_fields;

// Reads one document with json_fields (the checks and their words are the same as everywhere), and
// throws each error as a ScenarioError that starts with the file and line of the field it names.
class Reader {
 public:
  Reader(std::string file, const SourceLines* lines) : file_(std::move(file)), lines_(lines) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const { fail(jf::FieldError(path, what)); }
  [[noreturn]] void fail(const jf::FieldError& e) const {
    throw ScenarioError(fmt::format("{}: {}", where(e.path()), e.what()));
  }
  /// `<path>: <the value>: expected <expected>`, as json_fields says it.
  [[noreturn]] void refuse(const json& j, const std::string& path, std::string_view expected) const {
    fail(path, jf::wrong(j, expected));
  }

  /// "file:line" for the value at path (or the nearest value around it that has a line), "file" for
  /// a JSON document.
  std::string where(const std::string& path) const {
    if (lines_ != nullptr) {
      std::string_view p = path;
      while (!p.empty()) {
        if (const auto it = lines_->find(p); it != lines_->end()) {
          return fmt::format("{}:{}", file_, it->second);
        }
        const auto cut = p.find_last_of(".[");
        p = p.substr(0, cut == std::string_view::npos ? 0 : cut);
      }
    }
    return file_;
  }

  const std::string& file() const { return file_; }

  void keys(const json& j, const std::string& path, std::initializer_list<std::string_view> allowed) const {
    checked([&] { jf::only_keys(j, path, allowed); });
  }

  /// The value of key, which must be there; what says what it is for.
  const json& required(const json& j, const std::string& path, std::string_view key, std::string_view what) const {
    return checked([&]() -> const json& { return jf::required(j, path, key, what); });
  }

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
      refuse(j, path, fmt::format("a duration of at least {} s (a number of seconds, or \"30s\", \"2m\")", min_value));
    }
    return v;
  }

  double number(const json& j, const std::string& path, double min_value, double max_value) const {
    return checked([&] { return jf::number(j, path, min_value, max_value); });
  }

  std::uint64_t integer(const json& j, const std::string& path, std::int64_t min_value, std::int64_t max_value) const {
    return static_cast<std::uint64_t>(checked([&] { return jf::integer(j, path, min_value, max_value); }));
  }

  std::string text(const json& j, const std::string& path, bool allow_empty = false) const {
    return checked([&] { return jf::text(j, path, allow_empty); });
  }

  bool boolean(const json& j, const std::string& path) const {
    return checked([&] { return jf::boolean(j, path); });
  }

  std::string one_of(const json& j, const std::string& path, std::initializer_list<std::string_view> allowed) const {
    return checked([&] { return jf::one_of(j, path, allowed); });
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

  /// A variable name that something at path reads (an ifTrue, a loop's over).
  void reference(std::string name, const std::string& path) { references_.emplace_back(std::move(name), path); }

  const std::vector<std::pair<std::string, std::string>>& references() const { return references_; }

 private:
  template <class Read>
  std::invoke_result_t<Read> checked(Read read) const {
    try {
      return read();
    } catch (const jf::FieldError& e) {
      fail(e);
    }
  }

  std::string file_;
  const SourceLines* lines_;
  std::vector<std::pair<std::string, std::string>> references_;  // name, path
};

// Aliases let a few lines of YAML stand for millions of nodes ("billion laughs"): the conversion
// counts what it makes and stops at a bound far above any real scenario.
constexpr std::size_t kMaxDocumentNodes = 1'000'000;

// What is wrong with a YAML document beyond its syntax, and on which line when there is one.
struct DocumentError {
  int line = 0;
  std::string what;
};

// Converts node, recording in lines (when given) where each value is, by the path errors name it with.
json yaml_to_json(const YAML::Node& node, std::size_t& budget, SourceLines* lines, const std::string& path) {
  if (budget == 0) {
    throw DocumentError{0, fmt::format("more than {} values (aliases expanding without end?)", kMaxDocumentNodes)};
  }
  --budget;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) {
        const std::string p = lines != nullptr ? jf::item(path, out.size()) : std::string();
        if (lines != nullptr && item.Mark().line >= 0) {
          lines->emplace(p, item.Mark().line + 1);
        }
        out.push_back(yaml_to_json(item, budget, lines, p));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.as<std::string>();
        if (out.contains(key)) {
          throw DocumentError{kv.first.Mark().line + 1, fmt::format("duplicate key \"{}\"", key)};
        }
        const std::string p = lines != nullptr ? jf::child(path, key) : std::string();
        if (lines != nullptr && kv.first.Mark().line >= 0) {
          lines->emplace(p, kv.first.Mark().line + 1);
        }
        out[key] = yaml_to_json(kv.second, budget, lines, p);
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
    item(j[i], jf::item(path, i));
  }
}

JsonPath read_path(Reader& r, const json& entry, const std::string& path) {
  const std::string p = jf::child(path, "json");
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
    r.required(entry, p, "json", "a JSON path such as $.callId");
    const std::string as = r.text(r.required(entry, p, "as", "the variable name"), jf::child(p, "as"));
    out.push_back(Capture{read_path(r, entry, p), as});
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
    out.push_back(Match{read_path(r, entry, p), r.templated(entry["value"], jf::child(p, "value"))});
  });
  return out;
}

Expectation read_expectation(Reader& r, const json& j, const std::string& path, bool response,
                             std::set<std::string>& defined) {
  if (response) {
    r.keys(j, path, {"channel", "data", "capture", "match"});
    r.required(j, path, "channel", "the server event to wait for");
  } else {
    r.keys(j, path, {"data", "capture", "match"});
  }
  Expectation e;
  if (response) {
    e.channel = r.templated(r.text(j["channel"], jf::child(path, "channel")), jf::child(path, "channel"));
  }
  if (j.contains("data")) {
    e.data = r.templated(j["data"], jf::child(path, "data"));
  }
  if (j.contains("capture")) {
    e.captures = read_captures(r, j["capture"], jf::child(path, "capture"), defined);
  }
  if (j.contains("match")) {
    e.matches = read_matches(r, j["match"], jf::child(path, "match"));
  }
  return e;
}

std::string read_namespace(Reader& r, const json& j, const std::string& path) {
  std::string ns = r.text(j, path);
  if (ns.front() != '/') {
    r.refuse(j, path, "a namespace starting with /");
  }
  return ns;
}

// What reading a flow needs besides the reader: the names defined so far (captures add theirs), the
// literal emit channels, and how long a list each variable a loop can go over may be.
struct FlowContext {
  std::set<std::string>& defined;
  std::set<std::string>& channels;
  const std::map<std::string, std::uint64_t, std::less<>>& list_sizes;
};

// A loop over a list whose length the scenario does not say (a captured list) counts as this many
// iterations in the bound of a flow (the default drain period).
constexpr std::uint64_t kUnknownListLength = 100;

std::vector<Step> read_flow(Reader& r, const json& j, const std::string& path, FlowContext& c, int depth);

Condition read_condition(Reader& r, const json& j, const std::string& path) {
  if (!j.is_string()) {
    r.refuse(j, path, "an expression such as \"status == 200 and retries < 3\"");
  }
  try {
    Condition c(j.get_ref<const std::string&>());
    for (const std::string& name : c.names()) {
      if (auto why = check_expression(name)) {
        r.fail(path, *why);
      }
      r.reference(name, path);
    }
    return c;
  } catch (const std::invalid_argument& e) {
    r.fail(path, e.what());
  }
}

// loop's over: a list, or the name of a variable that holds one ("items" or "{{ items }}").
void read_over(Reader& r, const json& j, const std::string& path, FlowContext& c, Step& s) {
  if (j.is_array()) {
    s.over = r.templated(j, path);
    s.over_bound = j.size();
    return;
  }
  if (!j.is_string()) {
    r.refuse(j, path, "an array, or the name of a variable holding one");
  }
  std::string_view name = j.get_ref<const std::string&>();
  if (name.starts_with("{{") && name.ends_with("}}")) {
    name = name.substr(2, name.size() - 4);
  }
  while (!name.empty() && name.front() == ' ') {
    name.remove_prefix(1);
  }
  while (!name.empty() && name.back() == ' ') {
    name.remove_suffix(1);
  }
  const bool loop_element = name == "$loopElement" || name.starts_with("$loopElement.");
  if (check_expression(name) || (name.starts_with('$') && !loop_element)) {
    r.refuse(j, path, "an array, or the name of a variable holding one");
  }
  s.over_variable = std::string(name);
  r.reference(s.over_variable, path);
  const auto it = c.list_sizes.find(name);
  s.over_bound = it != c.list_sizes.end() ? it->second : kUnknownListLength;
}

Step read_step(Reader& r, const json& j, const std::string& path, FlowContext& c, int depth) {
  std::set<std::string>& defined = c.defined;
  std::set<std::string>& channels = c.channels;
  if (!j.is_object()) {
    r.refuse(j, path, "a step (emit, think, loop or log)");
  }
  Step s;
  s.where = path;
  if (j.contains("ifTrue")) {
    s.if_true = read_condition(r, j["ifTrue"], jf::child(path, "ifTrue"));
  }
  if (j.contains("emit")) {
    r.keys(j, path, {"emit", "response", "acknowledge", "namespace", "ifTrue"});
    const json& e = j["emit"];
    const std::string ep = jf::child(path, "emit");
    if (e.is_array()) {  // the socketio-v3 engine form: [channel, arg, …]
      if (e.empty()) {
        r.refuse(e, ep, "[channel, arguments…]");
      }
      s.channel = r.text(e[0], jf::item(ep, 0));
      for (std::size_t i = 1; i < e.size(); ++i) {
        s.args.push_back(r.templated(e[i], jf::item(ep, i)));
      }
    } else {
      r.keys(e, ep, {"channel", "data", "response", "acknowledge", "namespace"});
      s.channel = r.text(r.required(e, ep, "channel", "the event to emit"), jf::child(ep, "channel"));
      if (e.contains("data")) {
        s.args.push_back(r.templated(e["data"], jf::child(ep, "data")));
      }
    }
    r.templated(s.channel, jf::child(ep, "channel"));
    if (s.channel.find("{{") == std::string::npos) {
      channels.insert(s.channel);
    }
    // Artillery has had response/acknowledge/namespace both inside emit and beside it.
    const auto option = [&](const char* key) -> std::pair<const json*, std::string> {
      if (j.contains(key)) {
        return {&j[key], jf::child(path, key)};
      }
      if (e.is_object() && e.contains(key)) {
        return {&e[key], jf::child(ep, key)};
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
    r.keys(j, path, {"think", "ifTrue"});
    s.kind = Step::Kind::think;
    s.think_s = r.seconds(j["think"], jf::child(path, "think"), 0);
  } else if (j.contains("loop")) {
    r.keys(j, path, {"loop", "count", "over", "ifTrue", "whileTrue"});
    if (depth >= 8) {
      r.fail(path, "loops nest at most 8 deep");
    }
    s.kind = Step::Kind::loop;
    if (j.contains("whileTrue")) {
      r.fail(jf::child(path, "whileTrue"), "whileTrue names a JavaScript function, which phasekit-load does not run; "
                                              "loop with count or over");
    }
    if (j.contains("count") && j.contains("over")) {
      r.fail(path, "a loop takes count or over, not both");
    }
    if (j.contains("over")) {
      read_over(r, j["over"], jf::child(path, "over"), c, s);
    } else if (j.contains("count")) {
      s.count = r.integer(j["count"], jf::child(path, "count"), 1, 1'000'000);
    } else {
      r.fail(path, "a loop needs a count or an array to go over (loops without either would never end)");
    }
    s.steps = read_flow(r, j["loop"], jf::child(path, "loop"), c, depth + 1);
  } else if (j.contains("log")) {
    r.keys(j, path, {"log", "ifTrue"});
    s.kind = Step::Kind::log;
    s.message = r.templated(r.text(j["log"], jf::child(path, "log"), true), jf::child(path, "log"));
  } else {
    std::string first = j.empty() ? std::string("(empty)") : j.begin().key();
    if (first == "ifTrue" && j.size() > 1) {
      first = std::next(j.begin()).key();
    }
    if (first == "function") {
      r.fail(path, "function steps run JavaScript processors, which phasekit-load does not run");
    }
    r.fail(jf::child(path, first), "unknown step (expected " + jf::one_of_names({"emit", "think", "loop", "log"}) + ")");
  }
  return s;
}

std::vector<Step> read_flow(Reader& r, const json& j, const std::string& path, FlowContext& c, int depth) {
  if (!j.is_array() || j.empty()) {
    r.refuse(j, path, "a non-empty array of steps");
  }
  std::vector<Step> steps;
  for (std::size_t i = 0; i < j.size(); ++i) {
    steps.push_back(read_step(r, j[i], jf::item(path, i), c, depth));
  }
  return steps;
}

Phase read_phase(Reader& r, const json& j, const std::string& path) {
  r.keys(j, path, {"name", "duration", "arrivalRate", "rampTo", "arrivalCount", "pause", "maxVusers"});
  Phase p;
  if (j.contains("name")) {
    p.name = r.text(j["name"], jf::child(path, "name"));
  }
  if (j.contains("pause")) {
    if (j.size() > (j.contains("name") ? 2u : 1u)) {
      r.fail(path, "a pause phase has only pause (and name)");
    }
    p.pause = true;
    p.duration_s = r.seconds(j["pause"], jf::child(path, "pause"), 0);
    return p;
  }
  p.duration_s = r.seconds(r.required(j, path, "duration", "seconds"), jf::child(path, "duration"), 0.001);
  if (j.contains("arrivalCount")) {
    if (j.contains("arrivalRate") || j.contains("rampTo")) {
      r.fail(path, "arrivalCount cannot be combined with arrivalRate or rampTo");
    }
    p.arrival_count = r.integer(j["arrivalCount"], jf::child(path, "arrivalCount"), 0, kMaxArrivals);
  } else if (j.contains("arrivalRate") || j.contains("rampTo")) {
    if (j.contains("arrivalRate")) {
      p.arrival_rate = r.number(j["arrivalRate"], jf::child(path, "arrivalRate"), 0, 1e6);
    }
    if (j.contains("rampTo")) {
      p.ramp_to = r.number(j["rampTo"], jf::child(path, "rampTo"), 0, 1e6);
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
    p.max_vusers = r.integer(j["maxVusers"], jf::child(path, "maxVusers"), 1, 10'000'000);
  }
  return p;
}

// An extraHeaders name: an HTTP token, and none of the headers the client itself must write for the
// request to mean what it says (framing, the WebSocket handshake).
void check_header_name(Reader& r, const std::string& name, const std::string& path) {
  static constexpr std::string_view kTokenChars = "!#$%&'*+-.^_`|~";
  bool token = !name.empty();
  for (const char c : name) {
    token = token && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      kTokenChars.find(c) != std::string_view::npos);
  }
  if (!token) {
    r.fail(path, "not an HTTP header name");
  }
  std::string lower;
  for (const char c : name) {
    lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  for (std::string_view reserved : {"content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
                                    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                                    "sec-websocket-accept"}) {
    if (lower == reserved) {
      r.fail(path, "the client writes this header itself");
    }
  }
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
    const std::string path = jf::child("config.tls", key);
    const bool value = r.boolean(j[key], path);
    const bool this_insecure = std::string_view(key) == "insecure" ? value : !value;
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
  if (j.contains("query")) {  // replaces the query of config.socketio, as Artillery merges them
    const json& q = j["query"];
    const std::string qp = jf::child(path, "query");
    o.query_text.reset();
    o.query.clear();
    if (q.is_string()) {
      o.query_text = r.templated(q, qp).get<std::string>();
    } else if (q.is_object()) {
      for (const auto& [k, v] : q.items()) {
        if (k.empty()) {
          r.fail(qp, "a query parameter needs a name");
        }
        if (v.is_structured()) {
          r.refuse(v, jf::child(qp, k), "a string or a number");
        }
        o.query.emplace_back(k, r.templated(v, jf::child(qp, k)));
      }
    } else {
      r.refuse(q, qp, "a string (a=1&b=2) or an object");
    }
  }
  if (j.contains("path")) {
    o.path = r.text(j["path"], jf::child(path, "path"));
    if (o.path.front() != '/') {
      r.refuse(j["path"], jf::child(path, "path"), "a path starting with /");
    }
    if (o.path.back() != '/') {
      o.path += '/';
    }
  }
  if (j.contains("extraHeaders")) {
    const std::string hp = jf::child(path, "extraHeaders");
    if (!j["extraHeaders"].is_object()) {
      r.refuse(j["extraHeaders"], hp, "an object of header names to values");
    }
    o.headers.clear();  // replaces the headers of config.socketio, as Artillery merges them
    for (const auto& [k, v] : j["extraHeaders"].items()) {
      check_header_name(r, k, jf::child(hp, k));
      const json value = v.is_number() || v.is_boolean() ? json(v.dump()) : v;
      o.headers[k] = r.templated(r.text(value, jf::child(hp, k), true), jf::child(hp, k)).get<std::string>();
    }
  }
  if (j.contains("transports")) {
    const json& t = j["transports"];
    const std::string tp = jf::child(path, "transports");
    if (!t.is_array() || t.empty()) {
      r.refuse(t, tp, "a non-empty array of transports: websocket, polling");
    }
    o.polling = o.websocket = false;
    for (std::size_t i = 0; i < t.size(); ++i) {
      (r.one_of(t[i], jf::item(tp, i), {"websocket", "polling"}) == "polling" ? o.polling : o.websocket) = true;
    }
  }
  if (j.contains("upgrade")) {
    if (!r.boolean(j["upgrade"], jf::child(path, "upgrade")) && o.polling) {
      o.websocket = false;  // polling stays polling
    }
  }
  if (j.contains("auth")) {
    if (!j["auth"].is_object()) {
      r.refuse(j["auth"], jf::child(path, "auth"), "an object (the CONNECT auth payload, e.g. {token: ...})");
    }
    o.auth = r.templated(j["auth"], jf::child(path, "auth"));
  }
  if (j.contains("forceNew")) {
    r.boolean(j["forceNew"], jf::child(path, "forceNew"));
  }
  if (j.contains("reconnection")) {
    o.reconnection = r.boolean(j["reconnection"], jf::child(path, "reconnection"));
  }
  if (j.contains("timeout")) {
    r.number(j["timeout"], jf::child(path, "timeout"), 1, 3'600'000);
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
      const std::string p = jf::child("config.ensure", key);
      if (key == "conditions") {
        r.fail(p, "conditions (expressions) are not supported; use thresholds or config.thresholds");
      }
      if (key == "thresholds") {
        if (!value.is_array()) {
          r.refuse(value, p, "an array of {metric: value} (each passes when the metric is below the value)");
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
          const std::string tp = jf::item(p, i);
          if (!value[i].is_object() || value[i].size() != 1) {
            r.refuse(value[i], tp, "one {metric: value}");
          }
          const std::string metric = value[i].begin().key();
          const double v = r.number(value[i].begin().value(), jf::child(tp, metric), -1e18, 1e18);
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
      r.refuse(t, "config.thresholds", "an object of metric names to arrays of expressions (k6 form)");
    }
    for (const auto& [metric, list] : t.items()) {
      const std::string p = jf::child("config.thresholds", metric);
      if (!list.is_array()) {
        r.refuse(list, p, "an array of expressions such as \"p(95)<200\"");
      }
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string ip = jf::item(p, i);
        std::string expression;
        if (list[i].is_object()) {
          r.keys(list[i], ip, {"threshold"});
          expression = r.text(list[i].value("threshold", json()), jf::child(ip, "threshold"));
        } else {
          expression = r.text(list[i], ip);
        }
        add(ip, [&, &name = metric] { return parse_k6_threshold(name, expression, catalog); });
      }
    }
  }
}

// Payload files a scenario may name (each up to kMaxPayloadBytes).
constexpr std::size_t kMaxPayloads = 16;

// A CSV cell as Artillery's cast makes it: an unquoted number becomes a number, anything else stays
// text.
json cast_cell(const CsvField& f, bool cast) {
  const std::string& t = f.text;
  if (!cast || f.quoted || t.empty() || t.find_first_not_of("+-.0123456789eE") != std::string::npos ||
      t.find_first_of("0123456789") == std::string::npos) {
    return t;
  }
  const char* begin = t.data() + (t.front() == '+' ? 1 : 0);
  const char* end = t.data() + t.size();
  if (t.find_first_of(".eE") == std::string::npos) {
    std::int64_t i = 0;
    const auto [p, ec] = std::from_chars(begin, end, i);
    if (ec == std::errc() && p == end) {
      return i;
    }
  }
  double d = 0;
  const auto [p, ec] = std::from_chars(begin, end, d);
  return ec == std::errc() && p == end && std::isfinite(d) ? json(d) : json(t);
}

bool flag(Reader& r, const json& entry, const std::string& path, const char* key, bool fallback) {
  if (!entry.contains(key)) {
    return fallback;
  }
  return r.boolean(entry[key], jf::child(path, key));
}

// One config.payload entry: its CSV file read, parsed and checked against fields.
Payload read_payload(Reader& r, const json& entry, const std::string& path, const FileReader& read_file,
                     std::set<std::string>& defined) {
  r.keys(entry, path, {"path", "fields", "order", "skipHeader", "delimiter", "cast", "skipEmptyLines", "loadAll", "name"});
  r.required(entry, path, "path", "the CSV file, relative to this scenario");
  Payload p;
  const auto name_ok = [](std::string_view n) { return !n.empty() && !n.starts_with('$') && !check_expression(n); };
  if (entry.contains("fields")) {
    const json& f = entry["fields"];
    const std::string fp = jf::child(path, "fields");
    if (!f.is_array() || f.empty()) {
      r.refuse(f, fp, "a non-empty array of variable names, one per column");
    }
    for (std::size_t i = 0; i < f.size(); ++i) {
      const std::string name = r.text(f[i], jf::item(fp, i));
      if (!name_ok(name)) {
        r.fail(jf::item(fp, i), fmt::format("\"{}\" is not a variable name (letters, digits, _ - .)", name));
      }
      if (std::find(p.fields.begin(), p.fields.end(), name) != p.fields.end()) {
        r.fail(jf::item(fp, i), fmt::format("\"{}\" is named twice", name));
      }
      p.fields.push_back(name);
    }
  }
  const bool load_all = flag(r, entry, path, "loadAll", false);
  if (entry.contains("order")) {
    const std::string order = r.one_of(entry["order"], jf::child(path, "order"), {"random", "sequence"});
    if (load_all) {
      r.fail(jf::child(path, "order"), "loadAll gives every row to every user: order does not apply");
    }
    p.sequence = order == "sequence";
  }
  if (entry.contains("name") && !load_all) {
    r.fail(jf::child(path, "name"), "name goes with loadAll: true (the variable that holds every row)");
  }
  if (load_all) {
    if (!entry.contains("name")) {
      r.fail(path, "loadAll: true needs name (the variable that holds every row)");
    }
    p.name = r.text(entry["name"], jf::child(path, "name"));
    if (!name_ok(p.name)) {
      r.fail(jf::child(path, "name"), fmt::format("\"{}\" is not a variable name (letters, digits, _ - .)", p.name));
    }
  } else if (p.fields.empty()) {
    r.fail(path, "a payload needs fields (the variable each column sets), or loadAll: true with a name");
  }
  CsvOptions csv;
  csv.skip_header = flag(r, entry, path, "skipHeader", false);
  csv.skip_empty_lines = flag(r, entry, path, "skipEmptyLines", true);
  const bool cast = flag(r, entry, path, "cast", true);
  if (entry.contains("delimiter")) {
    const std::string d = r.text(entry["delimiter"], jf::child(path, "delimiter"));
    if (d.size() != 1 || d == "\"" || d == "\n" || d == "\r") {
      r.refuse(entry["delimiter"], jf::child(path, "delimiter"), "one character (not a quote or a line break)");
    }
    csv.delimiter = d.front();
  }

  const std::string pp = jf::child(path, "path");
  const std::string written = r.text(entry["path"], pp);
  const std::filesystem::path relative(written);
  p.file = relative.is_absolute() ? written : (std::filesystem::path(r.file()).parent_path() / relative).string();
  std::string text;
  try {
    text = read_file(p.file);
  } catch (const std::exception& e) {
    r.fail(pp, fmt::format("{}: {}", p.file, e.what()));
  }
  if (text.size() > kMaxPayloadBytes) {
    r.fail(pp, fmt::format("{}: larger than {} MiB", p.file, kMaxPayloadBytes >> 20));
  }
  std::vector<CsvRecord> records;
  try {
    records = parse_csv(text, csv);
  } catch (const CsvError& e) {
    r.fail(pp, fmt::format("{}:{}: {}", p.file, e.line(), e.what()));
  }
  if (records.empty()) {
    r.fail(pp, fmt::format("{}: no rows{}", p.file, csv.skip_header ? " after the header" : ""));
  }
  if (load_all) {
    p.all = json::array();
  } else {
    p.rows.reserve(records.size());
  }
  for (const CsvRecord& rec : records) {
    if (rec.fields.size() < p.fields.size()) {
      std::string names;
      for (const std::string& n : p.fields) {
        names += fmt::format("{}{}", names.empty() ? "" : ", ", n);
      }
      r.fail(pp, fmt::format("{}:{}: {} field(s), expected {} ({})", p.file, rec.line, rec.fields.size(), p.fields.size(),
                             names));
    }
    if (!load_all) {
      std::vector<json>& row = p.rows.emplace_back();
      row.reserve(p.fields.size());
      for (std::size_t i = 0; i < p.fields.size(); ++i) {
        row.push_back(cast_cell(rec.fields[i], cast));
      }
    } else if (p.fields.empty()) {
      json row = json::array();
      for (const CsvField& f : rec.fields) {
        row.push_back(cast_cell(f, cast));
      }
      p.all.push_back(std::move(row));
    } else {
      json row = json::object();
      for (std::size_t i = 0; i < p.fields.size(); ++i) {
        row[p.fields[i]] = cast_cell(rec.fields[i], cast);
      }
      p.all.push_back(std::move(row));
    }
  }
  if (load_all) {
    defined.insert(p.name);
  } else {
    defined.insert(p.fields.begin(), p.fields.end());
  }
  return p;
}

// One entry of scenarios (or before, after): its socketio over config's, its flow.
Flow read_flow_entry(Reader& r, const json& j, const std::string& path, const SocketOptions& base, FlowContext& c,
                     bool hook, std::string default_name) {
  if (hook) {
    r.keys(j, path, {"name", "engine", "flow", "socketio"});
  } else {
    r.keys(j, path, {"name", "engine", "weight", "flow", "socketio", "beforeScenario", "afterScenario",
                     "beforeRequest", "afterResponse"});
  }
  for (const char* processor_hook : {"beforeScenario", "afterScenario", "beforeRequest", "afterResponse"}) {
    if (j.contains(processor_hook)) {
      r.fail(jf::child(path, processor_hook), "names a JavaScript function, which phasekit-load does not run");
    }
  }
  Flow f;
  f.name = j.contains("name") ? r.text(j["name"], jf::child(path, "name")) : std::move(default_name);
  const std::string engine = j.contains("engine") ? r.text(j["engine"], jf::child(path, "engine")) : "http";
  if (engine != "socketio" && engine != "socketio-v3") {
    r.fail(jf::child(path, "engine"),
           fmt::format("engine \"{}\": phasekit-load runs Socket.IO scenarios (engine: socketio or socketio-v3)", engine));
  }
  f.v3_acks = engine == "socketio-v3";
  if (j.contains("weight")) {
    f.weight = r.number(j["weight"], jf::child(path, "weight"), 0, 1e6);
  }
  f.socket = base;
  if (j.contains("socketio")) {
    read_socket_options(r, j["socketio"], jf::child(path, "socketio"), f.socket);
  }
  f.steps = read_flow(r, r.required(j, path, "flow", "the array of steps"), jf::child(path, "flow"), c, 0);
  return f;
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
      case Step::Kind::loop: {
        const bool over = s.over || !s.over_variable.empty();
        total += static_cast<double>(over ? s.over_bound : s.count) * steps_bound(s.steps, timeout_s);
        break;
      }
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
    longest = std::max(longest, flow_bound_s(f));
  }
  return longest;
}

double Scenario::flow_bound_s(const Flow& flow) const { return steps_bound(flow.steps, timeout_s); }

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

std::string read_payload_file(const std::string& path) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) {
    throw std::runtime_error(ec.message());
  }
  if (size > kMaxPayloadBytes) {
    throw std::runtime_error(fmt::format("{} bytes, more than the {} MiB a payload file may have", size,
                                         kMaxPayloadBytes >> 20));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open the file");
  }
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

json read_document(const std::string& file, SourceLines* lines) {
  return parse_document(read_file(file), file.ends_with(".json"), file, lines);
}

json parse_document(const std::string& text, bool is_json, const std::string& file, SourceLines* lines) {
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
    return yaml_to_json(root, budget, lines, "");
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      throw ScenarioError(fmt::format("{}: YAML: {}", file, e.msg));
    }
    throw ScenarioError(fmt::format("{}:{}: YAML: {} (line {}, column {})", file, e.mark.line + 1, e.msg, e.mark.line + 1,
                                    e.mark.column + 1));
  } catch (const DocumentError& e) {
    throw ScenarioError(e.line > 0 ? fmt::format("{}:{}: {}", file, e.line, e.what) : fmt::format("{}: {}", file, e.what));
  }
}

Scenario load_scenario(const std::string& file, const std::string& target) {
  SourceLines lines;
  json doc = read_document(file, &lines);
  if (!target.empty() && doc.is_object() && doc.contains("config") && doc["config"].is_object()) {
    doc["config"]["target"] = target;
  }
  return parse_scenario(doc, file, &lines);
}

Scenario parse_scenario(const json& doc, const std::string& file, const SourceLines* lines, const FileReader& read) {
  Reader r(file, lines);
  r.keys(doc, "", {"config", "scenarios", "before", "after"});
  const json& config = r.required(doc, "", "config", "it holds target and phases");
  r.keys(config, "config",
         {"target", "phases", "variables", "payload", "socketio", "engines", "timeout", "ensure", "thresholds",
          "plugins", "processor", "environments", "http", "tls", "defaults"});
  for (const char* unsupported : {"processor", "environments", "http", "defaults"}) {
    if (config.contains(unsupported)) {
      r.fail(jf::child("config", unsupported), std::string_view(unsupported) == "processor"
                                                      ? "JavaScript processors are not supported"
                                                      : "not supported by phasekit-load");
    }
  }
  Scenario s;
  s.file = file;
  const json& target = r.required(config, "config", "target", "the server's URL, e.g. http://127.0.0.1:3000");
  s.target = parse_target(r.text(target, "config.target"), fmt::format("{}: config.target", r.where("config.target")));

  const json& phases = r.required(config, "config", "phases", "an array of phases with duration and arrivalRate");
  if (!phases.is_array() || phases.empty()) {
    r.refuse(phases, "config.phases", "a non-empty array of phases");
  }
  for (std::size_t i = 0; i < phases.size(); ++i) {
    s.phases.push_back(read_phase(r, phases[i], jf::item("config.phases", i)));
  }

  std::set<std::string> defined{"$loopCount", "$loopElement", "$uuid"};
  std::map<std::string, std::uint64_t, std::less<>> list_sizes;  // what a loop can go over, and how long
  if (config.contains("payload")) {
    if (config["payload"].is_array() && config["payload"].size() > kMaxPayloads) {
      r.fail("config.payload", fmt::format("{} files; at most {}", config["payload"].size(), kMaxPayloads));
    }
    each_entry(config["payload"], "config.payload", [&](const json& entry, const std::string& p) {
      s.payloads.push_back(read_payload(r, entry, p, read, defined));
      if (!s.payloads.back().name.empty()) {
        list_sizes[s.payloads.back().name] = s.payloads.back().all.size();
      }
    });
  }
  if (config.contains("variables")) {
    const json& v = config["variables"];
    if (!v.is_object()) {
      r.refuse(v, "config.variables", "an object of names to values (or arrays of values, one picked per user)");
    }
    for (const auto& [name, values] : v.items()) {
      if (values.is_array() && values.empty()) {
        r.fail(jf::child("config.variables", name), "an empty array has no value to pick");
      }
      s.variables[name] = values.is_array() ? values.get<std::vector<json>>() : std::vector<json>{values};
      std::uint64_t longest = 0;
      for (const json& one : s.variables[name]) {
        r.templated(one, jf::child("config.variables", name));
        longest = std::max<std::uint64_t>(longest, one.is_array() ? one.size() : 0);
      }
      list_sizes[name] = longest;
      defined.insert(name);
    }
  }
  if (config.contains("socketio")) {
    read_socket_options(r, config["socketio"], "config.socketio", s.socket);
  }
  if (config.contains("engines")) {
    r.keys(config["engines"], "config.engines", {"socketio", "socketio-v3"});
    for (const auto& [engine, options] : config["engines"].items()) {
      read_socket_options(r, options, jf::child("config.engines", engine), s.socket);
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

  std::set<std::string> hook_channels;  // a hook's emits have no metrics of their own
  FlowContext hooks{defined, hook_channels, list_sizes};
  if (doc.contains("before")) {
    s.before = read_flow_entry(r, doc["before"], "before", s.socket, hooks, true, "before");
  }
  const json& list = r.required(doc, "", "scenarios", "an array of scenarios, each with engine: socketio and a flow");
  if (!list.is_array() || list.empty()) {
    r.refuse(list, "scenarios", "a non-empty array of scenarios");
  }
  FlowContext users{defined, s.channels, list_sizes};
  for (std::size_t i = 0; i < list.size(); ++i) {
    s.flows.push_back(read_flow_entry(r, list[i], jf::item("scenarios", i), s.socket, users, false,
                                      fmt::format("scenario {}", i)));
  }
  if (doc.contains("after")) {
    s.after = read_flow_entry(r, doc["after"], "after", s.socket, hooks, true, "after");
  }
  double weights = 0;
  for (const Flow& f : s.flows) {
    weights += f.weight;
  }
  if (weights <= 0) {
    r.fail("scenarios", "the weights add up to 0: no scenario would run");
  }
  // path and transports belong to the run: a scenario's socketio may set them only as every other does.
  const Flow& first = s.flows.front();
  const auto same_client = [&](const Flow& f, const std::string& path) {
    if (f.socket.path != first.socket.path || f.socket.polling != first.socket.polling ||
        f.socket.websocket != first.socket.websocket) {
      r.fail(jf::child(path, "socketio"), "path and transports are the same for every user of a run: these differ "
                                             "from scenarios[0]'s (set them in config.socketio)");
    }
  };
  for (std::size_t i = 1; i < s.flows.size(); ++i) {
    same_client(s.flows[i], jf::item("scenarios", i));
  }
  if (s.before) {
    same_client(*s.before, "before");
  }
  if (s.after) {
    same_client(*s.after, "after");
  }
  s.socket.path = first.socket.path;
  s.socket.polling = first.socket.polling;
  s.socket.websocket = first.socket.websocket;

  for (const auto& [name, path] : r.references()) {
    if (name.starts_with("$env.")) {
      const char* value = std::getenv(name.substr(5).c_str());
      if (value == nullptr) {
        r.fail(path, fmt::format("\"{{{{ {} }}}}\": the environment variable {} is not set", name, name.substr(5)));
      }
      s.environment[name] = value;
    } else if (!name.starts_with('$') && defined.count(name) == 0 && defined.count(name.substr(0, name.find('.'))) == 0) {
      r.fail(path, fmt::format("\"{{{{ {} }}}}\": {} is not in config.variables or config.payload, nor captured by any "
                               "step", name, name));
    }
  }
  read_thresholds(r, config, s, s.catalog());
  return s;
}

}  // namespace phasekit::load
