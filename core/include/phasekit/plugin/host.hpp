#pragma once
// What the host hands every plugin instance. OWNERSHIP: the HostServices object and everything it
// returns are owned by the host and outlive every plugin instance.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <string_view>

#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin/log.hpp"
#include "phasekit/plugin/metrics.hpp"

namespace phasekit {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual std::chrono::steady_clock::time_point now() const noexcept = 0;
  [[nodiscard]] virtual std::chrono::system_clock::time_point wall() const noexcept = 0;
};

}  // namespace phasekit

namespace phasekit::plugin {

class HostServices {
 public:
  virtual ~HostServices() = default;
  /// A logger whose lines carry `"component": component` (e.g. "pool.warm").
  virtual Logger& logger(std::string_view component) = 0;
  virtual Metrics& metrics() = 0;
  [[nodiscard]] virtual const Clock& clock() const = 0;
  /// Where completions are posted. Strategies never invoke a completion inline from the initiating
  /// call: they post it here (Asio's rule), so callers never re-enter themselves.
  virtual boost::asio::any_io_executor executor() = 0;
  /// The backend driver of this process (process or docker); nullptr where it runs no backends.
  virtual BackendDriver* backends() = 0;
};

}  // namespace phasekit::plugin
