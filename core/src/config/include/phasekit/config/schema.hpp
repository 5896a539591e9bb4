#pragma once
// The one table of settings. Every name, flag, environment variable, type, range, default and
// phase preset lives here and nowhere else: --help, --print-config, the JSON config file, the
// validation and docs/configuration.md are all generated from it.
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace phasekit::config {

enum class Type : std::uint8_t {
  boolean,   // true|false|1|0|yes|no|on|off
  integer,   // whole number in [min, max]
  text,      // free text (validated by `check` where it has one)
  choice,    // one of `choices` ("a|b|c")
  secret,    // text that is never printed or logged
  plugin,    // a plugin name ([a-z0-9_]+); empty = derived from its ENABLE_* flag
  json,      // a JSON object (empty = unset), checked by `json_check`; kept as its compact text
};

enum class Key : std::uint16_t {
  phase,
  config_file,
  port,
  bind_address,
  log_level,
  max_payload_bytes,
  ping_interval_ms,
  ping_timeout_ms,
  connect_timeout_ms,
  session_grace_ms,
  shutdown_grace_ms,
  allowed_origins,
  admin_port,
  admin_bind_address,
  max_connections,
  max_connections_per_address,
  reuse_port,
  io_threads,
  auth_mode,
  auth_secret,
  auth_issuer,
  auth_audience,
  auth_max_token_lifetime_s,
  auth_clock_leeway_s,
  plugin_path,
  pool,
  queue,
  store,
  compression,
  autoscaler,
  enable_container_pool,
  pool_min_size,
  pool_max_size,
  pool_idle_timeout_ms,
  pool_acquire_timeout_ms,
  pool_create_concurrency,
  backend,
  sandbox,
  backend_nice,
  workspace_root,
  docker_host,
  docker_image,
  docker_network,
  backend_memory_bytes,
  backend_cpus,
  backend_processes,
  backend_tmpfs_bytes,
  backend_file_bytes,
  backend_workspace_bytes,
  backend_open_files,
  max_requests_per_user,
  max_sessions_per_user,
  max_backends_per_user,
  history_max_entries,
  history_max_bytes,
  history_page_bytes,
  job_timeout_ms,
  max_output_bytes,
  stream_output_threshold_bytes,
  enable_worker_mode,
  worker_concurrency,
  job_max_attempts,
  job_lease_ms,
  redis_url,
  redis_password,
  session_ttl_ms,
  store_path,
  history_retention_days,
  postgres_url,
  postgres_pool_size,
  ready_requires_store,
  enable_conversation_compression,
  compression_format,
  compression_level,
  compression_max_entry_bytes,
  enable_autoscaler,
  autoscaler_interval_ms,
  autoscaler_min_replicas,
  autoscaler_max_replicas,
  autoscaler_target_sessions_per_replica,
  autoscaler_tolerance_percent,
  autoscaler_max_worker_concurrency,
  autoscaler_behavior,
  autoscaler_worker_behavior,
  circuit_breaker_timeout_ms,
  circuit_breaker_error_threshold_percentage,
  circuit_breaker_reset_timeout_ms,
  circuit_breaker_volume_threshold,
  count_,
};

inline constexpr std::size_t kSettingCount = static_cast<std::size_t>(Key::count_);
inline constexpr int kPhaseCount = 3;

/// Extra check of a text value; returns nullptr when fine, else what is allowed.
using TextCheck = const char* (*)(std::string_view value);
/// Check of a json value (already a JSON object); returns "" when fine, else one line naming the field
/// inside it and what is wrong ("scaleUp.policies[0].periodSeconds: 2000: expected an integer in 1..1800").
using JsonCheck = std::string (*)(const nlohmann::json& value);

struct Spec {
  Key key;
  std::string_view name;   // key in the JSON config file and in --print-config: "pool_min_size"
  std::string_view env;    // "POOL_MIN_SIZE"
  std::string_view flag;   // "pool-min-size" (for --pool-min-size)
  std::string_view group;  // section of --help and of docs/configuration.md
  Type type;
  std::int64_t min = 0;    // integer range
  std::int64_t max = 0;
  std::string_view choices;  // choice: "a|b|c"
  std::string_view default_value;
  std::array<std::string_view, kPhaseCount> preset;  // per PHASE 1..3; kNoPreset = none
  std::string_view doc;
  TextCheck check = nullptr;
  bool file_allowed = true;  // may be set in the JSON config file
  JsonCheck json_check = nullptr;
};

inline constexpr std::string_view kNoPreset = "\x01";

std::span<const Spec> settings() noexcept;
const Spec& spec(Key key) noexcept;
/// nullptr when no setting has that JSON name / env name / flag.
const Spec* find_by_name(std::string_view name) noexcept;
const Spec* find_by_env(std::string_view env) noexcept;
const Spec* find_by_flag(std::string_view flag) noexcept;

/// The plugin-selection settings and the flag each is derived from.
struct PluginSelection {
  Key selection;         // Key::pool
  std::string_view kind; // "pool"
  Key feature;           // Key::enable_container_pool (or redis_url for the store)
  std::string_view enabled_name;   // plugin chosen when the feature is on: "warm"
  std::string_view disabled_name;  // plugin chosen when off: "none"
};
std::span<const PluginSelection> plugin_selections() noexcept;

/// A setting a plugin of one kind is given, and its key in the plugin's JSON configuration
/// (plugin_host::plugin_config_json writes them): its range and default are the setting's. An integer
/// is multiplied by `scale` (days to milliseconds).
struct PluginKey {
  constexpr PluginKey(std::string_view kind_, Key setting_, std::string_view key_, std::int64_t scale_ = 1,
                      std::string_view required_by_ = {})
      : kind(kind_), setting(setting_), key(key_), scale(scale_), required_by(required_by_) {}
  std::string_view kind;         // "pool"
  Key setting;                   // Key::pool_min_size
  std::string_view key;          // "min_size"
  std::int64_t scale;            // integers are multiplied by it
  std::string_view required_by;  // plugins of the kind that need it set, "a|b" ("": none)
};
std::span<const PluginKey> plugin_keys() noexcept;

/// "an integer in 0..10000", "one of none|token", "true or false", …
std::string allowed_text(const Spec& s);

}  // namespace phasekit::config
