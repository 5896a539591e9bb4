#pragma once
// The HostServices every binary hands its plugins: its log sink, metrics registry, clock, executor
// and backend driver.
#include "observe/json_logger.hpp"
#include "observe/metrics_registry.hpp"
#include "phasekit/plugin/host.hpp"

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

class BasicHost final : public plugin::HostServices {
 public:
  BasicHost(observe::LogSink& logs, observe::MetricsRegistry& metrics, const Clock& clock,
            boost::asio::any_io_executor executor, plugin::BackendDriver* backends = nullptr)
      : logs_(logs), metrics_(metrics), clock_(clock), executor_(std::move(executor)), backends_(backends) {}

  Logger& logger(std::string_view component) override { return logs_.logger(component); }
  Metrics& metrics() override { return metrics_; }
  [[nodiscard]] const Clock& clock() const override { return clock_; }
  boost::asio::any_io_executor executor() override { return executor_; }
  plugin::BackendDriver* backends() override { return backends_; }

 private:
  observe::LogSink& logs_;
  observe::MetricsRegistry& metrics_;
  const Clock& clock_;
  boost::asio::any_io_executor executor_;
  plugin::BackendDriver* backends_;
};

}  // namespace phasekit::plugin_host
