#pragma once
// What the host hands every plugin instance. OWNERSHIP: the HostServices object and everything it
// returns are owned by the host and outlive every plugin instance.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <string_view>

#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin/log.hpp"
#include "phasekit/plugin/metrics.hpp"
#include "phasekit/status.hpp"

namespace phasekit {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual std::chrono::steady_clock::time_point now() const noexcept = 0;
  [[nodiscard]] virtual std::chrono::system_clock::time_point wall() const noexcept = 0;
};

}  // namespace phasekit

namespace phasekit::plugin {

/// One of the host's circuit breakers (opossum semantics, core/src/resilience), one per external
/// dependency ("redis", "docker", "backend"); their states are in /api/circuit-breakers and /metrics.
/// A plugin puts every call to its dependency through one, so the whole process fails fast together
/// while the dependency is down.
class Guard {
 public:
  /// Settles the call: true when the breaker still waited for it, false when it had already given up
  /// (the call timed out): the caller then cleans up whatever the call produced. Call it once.
  using Settle = std::function<bool(Status)>;
  virtual ~Guard() = default;
  /// Runs `action` unless the breaker rejects the call. `done` (posted, never inline) gets OK, the
  /// error the action settled with, TIMEOUT when it ran past the breaker's timeout, or UNAVAILABLE
  /// ("circuit breaker <name> is open") when it was rejected. Only errors the action settles with
  /// count as failures: settle with OK for answers that are not the dependency's fault.
  virtual void call(std::function<void(Settle)> action, std::function<void(Status)> done) noexcept = 0;
  /// "closed", "open" or "halfOpen".
  [[nodiscard]] virtual std::string_view state() const noexcept = 0;
  /// The dependency answered by other means (a connection to it was made again): an open breaker
  /// lets its next call through as the probe now (halfOpen), not only after its reset timeout. A
  /// probe that fails opens it again. Thread-safe; nothing happens in any other state.
  virtual void recovered() noexcept = 0;
};

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
  /// The breaker for `dependency` (created on first use with the process's CIRCUIT_BREAKER_* options).
  virtual Guard& breaker(std::string_view dependency) = 0;
};

}  // namespace phasekit::plugin
