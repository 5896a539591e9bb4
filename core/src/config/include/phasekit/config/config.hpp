#pragma once
// Effective configuration: every setting of the table with its value and where the value came from.
// Layers, lowest first: built-in default < PHASE preset < --config file < environment < flag.
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "phasekit/config/schema.hpp"

namespace phasekit::config {

enum class Origin : std::uint8_t { default_value, phase_preset, file, env, flag };

/// "default", "phase preset", "file", "env", "flag".
std::string_view origin_name(Origin origin) noexcept;

/// A bad setting. what() is the one line printed before exit code 2, e.g.
/// "POOL_MIN_SIZE=ten (env): expected an integer in 0..10000".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Value {
  std::string text;          // normalised: "true"/"false", decimal integers, choice as given
  std::int64_t integer = 0;  // integer settings
  bool boolean = false;      // boolean settings
  Origin origin = Origin::default_value;
  std::string source;        // file path, env name or --flag the value came from (empty for default/preset)
};

struct PluginChoice {
  std::string kind;  // "pool"
  std::string name;  // "warm"
  Origin origin = Origin::default_value;
  std::string via;   // the setting it was derived from ("ENABLE_CONTAINER_POOL"), empty when set directly
};

/// Raw inputs, injected (tests never touch the real environment).
struct Inputs {
  std::map<std::string, std::string, std::less<>> env;            // the process environment
  std::vector<std::pair<std::string, std::string>> flags;          // setting name -> raw value, in order
};

class Config {
 public:
  /// Merges the layers and validates; throws ConfigError on the first bad value.
  static Config load(const Inputs& inputs);

  [[nodiscard]] const Value& value(Key key) const noexcept { return values_[static_cast<std::size_t>(key)]; }
  [[nodiscard]] std::int64_t integer(Key key) const noexcept { return value(key).integer; }
  [[nodiscard]] bool boolean(Key key) const noexcept { return value(key).boolean; }
  [[nodiscard]] const std::string& text(Key key) const noexcept { return value(key).text; }
  [[nodiscard]] int phase() const noexcept { return static_cast<int>(integer(Key::phase)); }

  /// The plugin of each kind, in the order pool, queue, store, compression, autoscaler.
  [[nodiscard]] const std::vector<PluginChoice>& plugins() const noexcept { return plugins_; }
  [[nodiscard]] const PluginChoice& plugin(std::string_view kind) const;

  /// The value as it may be shown: secrets as "***", the password of a redis URL masked.
  [[nodiscard]] std::string display(Key key) const;

 private:
  std::array<Value, kSettingCount> values_{};
  std::vector<PluginChoice> plugins_;
};

/// Parses one raw value of a setting; throws ConfigError naming `where` (e.g. "POOL_MIN_SIZE=ten (env)").
Value parse_value(const Spec& spec, std::string_view raw, Origin origin, std::string_view source);

/// Masks the password of redis://user:password@host.
std::string redact_url(std::string_view url);

/// Closest setting name within edit distance 3, for "did you mean" hints; empty when none is close.
std::string_view closest_name(std::string_view name);

}  // namespace phasekit::config
