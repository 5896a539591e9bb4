#include "phasekit/config/config.hpp"

#include "phasekit/config/checks.hpp"
#include "phasekit/redis/url.hpp"

#include "phasekit/plugin/log.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace phasekit::config {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool is_plugin_name(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

/// Whether `name` is one of the '|'-separated `names`.
bool names_include(std::string_view names, std::string_view name) {
  while (!names.empty()) {
    const std::size_t bar = names.find('|');
    if (names.substr(0, bar) == name) {
      return true;
    }
    names = bar == std::string_view::npos ? std::string_view() : names.substr(bar + 1);
  }
  return false;
}

bool has_control_char(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

/// The setting and value as the error line shows them; secrets never appear.
std::string shown(const Spec& spec, std::string_view raw) {
  if (spec.type == Type::secret) {
    return fmt::format("{}={}", spec.env, Secret::kMask);
  }
  if (spec.key == Key::redis_url) {
    return fmt::format("{}={}", spec.env, redact_url(raw));
  }
  std::string printable;
  for (const unsigned char c : raw) {
    if (c < 0x20 || c == 0x7f) {
      printable += fmt::format("\\x{:02x}", c);
    } else {
      printable += static_cast<char>(c);
    }
  }
  return fmt::format("{}={}", spec.env, printable);
}

[[noreturn]] void fail(const Spec& spec, std::string_view raw, std::string_view source, std::string_view what) {
  throw ConfigError(fmt::format("{} (from {}): expected {}", shown(spec, raw), source, what));
}

std::optional<bool> parse_bool(std::string_view raw) {
  const std::string v = lower(raw);
  if (v == "true" || v == "1" || v == "yes" || v == "on") {
    return true;
  }
  if (v == "false" || v == "0" || v == "no" || v == "off") {
    return false;
  }
  return std::nullopt;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

struct Raw {
  const Spec* spec;
  std::string value;
  Origin origin;
  std::string source;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(fmt::format("PHASEKIT_CONFIG={}: cannot read the config file: {}", path,
                                  std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    throw ConfigError(fmt::format("PHASEKIT_CONFIG={}: cannot read the config file", path));
  }
  return buffer.str();
}

std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t byte) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

std::vector<Raw> read_config_file(const std::string& path) {
  const std::string text = read_file(path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const auto [line, column] = line_and_column(text, e.byte == 0 ? 0 : e.byte - 1);
    throw ConfigError(fmt::format("config file {}: invalid JSON at line {}, column {}: expected a JSON object "
                                  "of settings",
                                  path, line, column));
  }
  if (!doc.is_object()) {
    throw ConfigError(fmt::format("config file {}: expected a JSON object of settings, found {}", path,
                                  doc.type_name()));
  }
  std::vector<Raw> out;
  for (const auto& [key, value] : doc.items()) {
    const Spec* spec = find_by_name(key);
    if (spec == nullptr) {
      const std::string_view hint = closest_name(key);
      throw ConfigError(fmt::format("config file {}: unknown key \"{}\"{}", path, key,
                                    hint.empty() ? std::string() : fmt::format(" (did you mean \"{}\"?)", hint)));
    }
    if (!spec->file_allowed) {
      throw ConfigError(
          fmt::format("config file {}: key \"{}\" cannot be set in a config file (use --{} or {})", path, key,
                      spec->flag, spec->env));
    }
    std::string raw;
    const std::string source = fmt::format("config file {} key \"{}\"", path, key);
    if (spec->type == Type::json && value.is_object()) {
      raw = value.dump();  // a JSON setting may hold the object itself
    } else if (value.is_string()) {
      raw = value.get<std::string>();
    } else if (value.is_boolean()) {
      raw = value.get<bool>() ? "true" : "false";
    } else if (value.is_number_integer()) {
      raw = value.dump();
    } else {
      throw ConfigError(fmt::format("{}={} (from {}): expected {}", spec->env, value.dump(), source,
                                    spec->type == Type::integer ? allowed_text(*spec)
                                    : spec->type == Type::json  ? "a JSON object, or a string holding one"
                                                                : "a string or boolean"));
    }
    out.push_back({spec, std::move(raw), Origin::file, source});
  }
  return out;
}

void check_cross_fields(const Config& c) {
  if (c.integer(Key::pool_min_size) > c.integer(Key::pool_max_size)) {
    throw ConfigError(fmt::format("POOL_MIN_SIZE={} POOL_MAX_SIZE={}: expected POOL_MIN_SIZE <= POOL_MAX_SIZE",
                                  c.integer(Key::pool_min_size), c.integer(Key::pool_max_size)));
  }
  if (c.integer(Key::autoscaler_min_replicas) > c.integer(Key::autoscaler_max_replicas)) {
    throw ConfigError(fmt::format(
        "AUTOSCALER_MIN_REPLICAS={} AUTOSCALER_MAX_REPLICAS={}: expected AUTOSCALER_MIN_REPLICAS <= "
        "AUTOSCALER_MAX_REPLICAS",
        c.integer(Key::autoscaler_min_replicas), c.integer(Key::autoscaler_max_replicas)));
  }
  // tmpfs pages count against the memory limit: a user who filled all three would leave the backend
  // none, and every later command of the session would be killed.
  const std::int64_t memory = c.integer(Key::backend_memory_bytes);
  if (memory > 0 && 3 * c.integer(Key::backend_tmpfs_bytes) >= memory) {
    throw ConfigError(fmt::format(
        "BACKEND_TMPFS_BYTES={} BACKEND_MEMORY_BYTES={}: expected the three tmpfs of a backend (/tmp, /var/tmp, "
        "/dev/shm) to fit in its memory with room to spare: 3 x BACKEND_TMPFS_BYTES < BACKEND_MEMORY_BYTES",
        c.integer(Key::backend_tmpfs_bytes), memory));
  }
  if (c.integer(Key::admin_port) != 0 && c.integer(Key::admin_port) == c.integer(Key::port)) {
    throw ConfigError(fmt::format("ADMIN_PORT={} PORT={}: expected ADMIN_PORT != PORT (the operations listener "
                                  "is a listener of its own)",
                                  c.integer(Key::admin_port), c.integer(Key::port)));
  }
  if (!c.text(Key::redis_password).empty()) {
    if (is_placeholder_secret(c.text(Key::redis_password))) {
      throw ConfigError(fmt::format("REDIS_PASSWORD={}: expected a password of your own, not a placeholder "
                                    "(openssl rand -hex 32)",
                                    Secret::kMask));
    }
    redis::Endpoint endpoint;
    if (redis::parse_url(c.text(Key::redis_url), endpoint).ok() && !endpoint.password.empty()) {
      throw ConfigError(fmt::format("REDIS_URL={} REDIS_PASSWORD={}: expected only one of them to carry the password",
                                    c.display(Key::redis_url), Secret::kMask));
    }
  }
  if (c.text(Key::auth_mode) == "token") {
    if (const char* expected = check_auth_secret(c.text(Key::auth_secret))) {
      throw ConfigError(fmt::format("AUTH_SECRET={} (AUTH_MODE=token): expected {}",
                                    c.text(Key::auth_secret).empty() ? "" : Secret::kMask, expected));
    }
  }
}

}  // namespace

std::string_view origin_name(Origin origin) noexcept {
  switch (origin) {
    case Origin::default_value: return "default";
    case Origin::phase_preset: return "phase preset";
    case Origin::file: return "file";
    case Origin::env: return "env";
    case Origin::flag: return "flag";
  }
  return "default";
}

Value parse_value(const Spec& spec, std::string_view raw, Origin origin, std::string_view source) {
  Value v;
  v.origin = origin;
  v.source = std::string(source);
  switch (spec.type) {
    case Type::boolean: {
      const auto b = parse_bool(raw);
      if (!b) {
        fail(spec, raw, source, allowed_text(spec));
      }
      v.boolean = *b;
      v.text = *b ? "true" : "false";
      break;
    }
    case Type::integer: {
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), n);
      if (raw.empty() || ec != std::errc() || end != raw.data() + raw.size() || n < spec.min || n > spec.max) {
        fail(spec, raw, source, allowed_text(spec));
      }
      v.integer = n;
      v.text = std::to_string(n);
      break;
    }
    case Type::choice: {
      const std::string wanted = lower(raw);
      if (!names_include(spec.choices, wanted)) {
        fail(spec, raw, source, allowed_text(spec));
      }
      v.text = wanted;
      break;
    }
    case Type::plugin:
      if (!is_plugin_name(raw)) {
        fail(spec, raw, source, allowed_text(spec));
      }
      v.text = std::string(raw);
      break;
    case Type::json: {
      // Empty is unset. Otherwise a JSON object (line breaks allowed: JSON white space), then the
      // setting's own check; errors name the setting and the field, never echo the whole value.
      if (raw.empty()) {
        break;
      }
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(raw);
      } catch (const nlohmann::json::parse_error& e) {
        std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 7: …"
        if (const auto at = what.find("] "); what.starts_with("[json.exception") && at != std::string::npos) {
          what.erase(0, at + 2);
        }
        throw ConfigError(fmt::format("{} (from {}): not valid JSON: {}", spec.env, source, what));
      }
      if (!doc.is_object()) {
        throw ConfigError(fmt::format("{} (from {}): expected a JSON object, found {}", spec.env, source,
                                      doc.type_name()));
      }
      if (spec.json_check != nullptr) {
        if (const std::string why = spec.json_check(doc); !why.empty()) {
          throw ConfigError(fmt::format("{} (from {}): {}", spec.env, source, why));
        }
      }
      v.text = doc.dump();
      break;
    }
    case Type::text:
    case Type::secret:
      if (has_control_char(raw)) {
        fail(spec, raw, source, "one line of text without control characters");
      }
      if (spec.check != nullptr) {
        if (const char* what = spec.check(raw)) {
          fail(spec, raw, source, what);
        }
      }
      v.text = std::string(raw);
      break;
  }
  return v;
}

Config Config::load(const Inputs& inputs) {
  // Explicit values, lowest layer first: file, env, flags.
  std::vector<Raw> env_values;
  for (const Spec& s : settings()) {
    if (const auto it = inputs.env.find(s.env); it != inputs.env.end()) {
      env_values.push_back({&s, it->second, Origin::env, "env"});
    }
  }
  std::vector<Raw> flag_values;
  for (const auto& [name, raw] : inputs.flags) {
    const Spec* s = find_by_name(name);
    if (s == nullptr) {
      throw ConfigError(fmt::format("unknown setting \"{}\"", name));
    }
    flag_values.push_back({s, raw, Origin::flag, fmt::format("--{}", s->flag)});
  }
  auto last_of = [](const std::vector<Raw>& layer, Key key) -> const Raw* {
    const Raw* found = nullptr;
    for (const Raw& r : layer) {
      if (r.spec->key == key) {
        found = &r;
      }
    }
    return found;
  };

  // The config file path is itself a setting (flag > env), never read from the file.
  std::vector<Raw> file_values;
  const Raw* path = last_of(flag_values, Key::config_file);
  if (path == nullptr) {
    path = last_of(env_values, Key::config_file);
  }
  if (path != nullptr && !path->value.empty()) {
    file_values = read_config_file(path->value);
  }

  // PHASE decides which preset layer applies: take it first (flag > env > file > default).
  const Spec& phase_spec = spec(Key::phase);
  Value phase = parse_value(phase_spec, phase_spec.default_value, Origin::default_value, "default");
  for (const auto* layer : {&file_values, &env_values, &flag_values}) {
    if (const Raw* r = last_of(*layer, Key::phase)) {
      phase = parse_value(phase_spec, r->value, r->origin, r->source);
    }
  }

  Config c;
  for (const Spec& s : settings()) {
    Value& v = c.values_[static_cast<std::size_t>(s.key)];
    v = parse_value(s, s.default_value, Origin::default_value, "default");
    const std::string_view preset = s.preset[static_cast<std::size_t>(phase.integer - 1)];
    if (preset != kNoPreset) {
      v = parse_value(s, preset, Origin::phase_preset, fmt::format("PHASE={} preset", phase.integer));
    }
  }
  for (const auto* layer : {&file_values, &env_values, &flag_values}) {
    for (const Raw& r : *layer) {
      c.values_[static_cast<std::size_t>(r.spec->key)] = parse_value(*r.spec, r.value, r.origin, r.source);
    }
  }

  check_cross_fields(c);

  for (const PluginSelection& sel : plugin_selections()) {
    const Value& chosen = c.value(sel.selection);
    const Value& feature = c.value(sel.feature);
    const Spec& feature_spec = spec(sel.feature);
    const bool feature_on = feature_spec.type == Type::boolean ? feature.boolean : !feature.text.empty();
    PluginChoice p;
    p.kind = std::string(sel.kind);
    if (!chosen.text.empty()) {
      p.name = chosen.text;
      p.origin = chosen.origin;
      const bool explicit_feature = feature.origin >= Origin::file;
      if (feature_spec.type == Type::boolean && explicit_feature && (p.name != sel.disabled_name) != feature_on) {
        throw ConfigError(fmt::format("{}={} {}={}: they contradict each other; expected only one of them, or {}={}",
                                      spec(sel.selection).env, p.name, feature_spec.env, feature.text,
                                      spec(sel.selection).env, feature_on ? sel.enabled_name : sel.disabled_name));
      }
    } else {
      p.name = std::string(feature_on ? sel.enabled_name : sel.disabled_name);
      p.origin = feature.origin;
      p.via = std::string(feature_spec.env);
    }
    c.plugins_.push_back(std::move(p));
  }
  // A plugin chosen without a setting it needs (plugin_keys()' required_by): stopped here, with the
  // other bad settings, rather than when the plugin loads.
  for (const PluginSelection& sel : plugin_selections()) {
    const PluginChoice& p = c.plugin(sel.kind);
    for (const PluginKey& k : plugin_keys()) {
      if (k.kind == sel.kind && names_include(k.required_by, p.name) && c.text(k.setting).empty()) {
        throw ConfigError(fmt::format("{}={}{}: expected {} to be set", spec(sel.selection).env, p.name,
                                      p.via.empty() ? std::string() : fmt::format(" (via {})", p.via),
                                      spec(k.setting).env));
      }
    }
  }
  return c;
}

const PluginChoice& Config::plugin(std::string_view kind) const {
  for (const PluginChoice& p : plugins_) {
    if (p.kind == kind) {
      return p;
    }
  }
  throw std::out_of_range(fmt::format("no plugin kind \"{}\"", kind));
}

std::string Config::display(Key key) const {
  const Spec& s = spec(key);
  const std::string& t = text(key);
  if (s.type == Type::secret) {
    return t.empty() ? std::string() : std::string(Secret::kMask);
  }
  if (key == Key::redis_url) {
    return redact_url(t);
  }
  return t;
}

std::string redact_url(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return std::string(url);
  }
  const std::string_view rest = url.substr(scheme + 3);
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  const std::string_view userinfo = rest.substr(0, at);
  const auto colon = userinfo.find(':');
  const std::string_view user = colon == std::string_view::npos ? std::string_view() : userinfo.substr(0, colon);
  // "redis://secret@host" (password only) and "redis://user:secret@host" both hide the secret.
  return fmt::format("{}{}{}@{}", url.substr(0, scheme + 3), user.empty() ? "" : fmt::format("{}:", user),
                     Secret::kMask, rest.substr(at + 1));
}

std::string_view closest_name(std::string_view name) {
  std::string_view best;
  std::size_t best_distance = 4;
  for (const Spec& s : settings()) {
    const std::size_t d = edit_distance(lower(name), s.name);
    if (d < best_distance) {
      best_distance = d;
      best = s.name;
    }
  }
  return best;
}

}  // namespace phasekit::config
