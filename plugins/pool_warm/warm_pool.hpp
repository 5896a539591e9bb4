#pragma once
// pool=warm: keeps `min_size` idle backends ready and never more than `max_size` in all (idle,
// leased, being made, reset, checked or destroyed). A released backend is reset by the driver before
// anyone else gets it; one that died, fails its reset or its periodic health check is destroyed and
// replaced, never handed out. Idle backends above the minimum are reaped after `idle_timeout`. When
// every backend is leased, callers wait in order up to `acquire_timeout`, then get UNAVAILABLE.
#include <chrono>
#include <cstdint>
#include <memory>

#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/pool.hpp"

namespace phasekit::pool_warm {

struct WarmConfig {
  std::uint64_t min_size = 2;
  std::uint64_t max_size = 1000;
  std::chrono::milliseconds idle_timeout{300000};
  std::chrono::milliseconds acquire_timeout{5000};
  std::chrono::milliseconds health_interval{5000};  // how often an idle backend is checked
  std::uint64_t create_concurrency = 8;  // backends being made at once (the factory makes 0 twice the cores); the rest wait their turn
};

class WarmPool final : public plugin::PoolStrategy {
 public:
  WarmPool(plugin::HostServices& host, const WarmConfig& config);
  ~WarmPool() override;
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  void acquire(plugin::AcquireRequest request, AcquireHandler done) noexcept override;
  void release(plugin::BackendPtr backend, bool reusable) noexcept override;
  [[nodiscard]] plugin::PoolStats stats() const noexcept override;
  void resize(std::uint64_t min_size) noexcept override;
  void async_shutdown(std::function<void()> done) noexcept override;

 private:
  class Core;  // shared with the driver's and timers' completions, so none outlives its state
  std::shared_ptr<Core> core_;
};

}  // namespace phasekit::pool_warm
