#pragma once
// The HostServices every binary hands its plugins: its log sink, metrics registry, clock, executor,
// backend driver and circuit breakers.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/resilience/breaker_registry.hpp"

namespace phasekit::plugin_host {

class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::steady_clock::time_point now() const noexcept override {
    return std::chrono::steady_clock::now();
  }
  [[nodiscard]] std::chrono::system_clock::time_point wall() const noexcept override {
    return std::chrono::system_clock::now();
  }
};

/// A plugin::Guard over one of the registry's breakers; without a registry (tests, simulators) calls
/// run unguarded, and state() says "none".
class RegistryGuard final : public plugin::Guard {
 public:
  RegistryGuard(std::shared_ptr<resilience::CircuitBreaker> breaker, boost::asio::any_io_executor executor)
      : breaker_(std::move(breaker)), executor_(std::move(executor)) {}
  void call(std::function<void(Settle)> action, std::function<void(Status)> done) noexcept override;
  [[nodiscard]] std::string_view state() const noexcept override;
  void recovered() noexcept override;

 private:
  std::shared_ptr<resilience::CircuitBreaker> breaker_;
  boost::asio::any_io_executor executor_;
};

class BasicHost final : public plugin::HostServices {
 public:
  BasicHost(observe::LogSink& logs, observe::MetricsRegistry& metrics, const Clock& clock,
            boost::asio::any_io_executor executor, plugin::BackendDriver* backends = nullptr,
            resilience::BreakerRegistry* breakers = nullptr)
      : logs_(logs),
        metrics_(metrics),
        clock_(clock),
        executor_(std::move(executor)),
        backends_(backends),
        breakers_(breakers) {}

  Logger& logger(std::string_view component) override { return logs_.logger(component); }
  Metrics& metrics() override { return metrics_; }
  [[nodiscard]] const Clock& clock() const override { return clock_; }
  boost::asio::any_io_executor executor() override { return executor_; }
  plugin::BackendDriver* backends() override { return backends_; }
  /// The driver, when it is made after the host (before the pool is loaded).
  void set_backends(plugin::BackendDriver* backends) noexcept { backends_ = backends; }
  plugin::Guard& breaker(std::string_view dependency) override;

 private:
  observe::LogSink& logs_;
  observe::MetricsRegistry& metrics_;
  const Clock& clock_;
  boost::asio::any_io_executor executor_;
  plugin::BackendDriver* backends_;
  resilience::BreakerRegistry* breakers_;
  std::mutex guards_mutex_;
  std::map<std::string, std::unique_ptr<RegistryGuard>, std::less<>> guards_;
};

}  // namespace phasekit::plugin_host
