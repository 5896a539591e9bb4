// pool=warm: the entry point and the factory that turns its JSON options into a WarmConfig.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "warm_pool.hpp"

namespace phasekit::pool_warm {
namespace {

struct Factory {
  static std::unique_ptr<plugin::PoolStrategy> create(plugin::HostServices& host, std::string_view json) {
    PluginOptions options(json);
    WarmConfig c;
    c.min_size = static_cast<std::uint64_t>(options.integer("min_size", 2, 0, 10000));
    c.max_size = static_cast<std::uint64_t>(options.integer("max_size", 1000, 1, 10000));
    c.idle_timeout = std::chrono::milliseconds(options.integer("idle_timeout_ms", 300000, 1, 86400000));
    c.acquire_timeout = std::chrono::milliseconds(options.integer("acquire_timeout_ms", 5000, 0, 600000));
    c.health_interval = std::chrono::milliseconds(options.integer("health_check_ms", 5000, 1, 86400000));
    // 0: twice the CPU cores (POOL_CREATE_CONCURRENCY's default). Making a sandbox is CPU work.
    const std::int64_t creates = options.integer("create_concurrency", 0, 0, 10000);
    c.create_concurrency = creates > 0 ? static_cast<std::uint64_t>(creates) : 2 * std::max(1u, std::thread::hardware_concurrency());
    options.finish();
    if (c.min_size > c.max_size) {
      throw std::invalid_argument(
          fmt::format("min_size={} exceeds max_size={}: expected min_size <= max_size", c.min_size, c.max_size));
    }
    if (host.backends() == nullptr) {
      throw std::invalid_argument("pool=warm needs a backend driver, and this process runs no backends");
    }
    return std::make_unique<WarmPool>(host, c);
  }
};

}  // namespace
}  // namespace phasekit::pool_warm

PHASEKIT_PLUGIN(PHK_KIND_POOL, "warm", "1.0.0",
                "pre-warmed backends: min idle, max in all, idle reaping, reset between users",
                phasekit::pool_warm::Factory)
