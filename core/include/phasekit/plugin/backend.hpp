#pragma once
// Backends are isolated places where tools run (a sandboxed shell, a container). The host owns the
// drivers that make them; a pool strategy decides when to make, reuse and destroy them.
#include <functional>
#include <memory>
#include <string_view>

#include "phasekit/status.hpp"

namespace phasekit::plugin {

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual std::string_view id() const noexcept = 0;
  /// Cheap, synchronous: false once the backend is known to be dead.
  [[nodiscard]] virtual bool alive() const noexcept = 0;
};

/// OWNERSHIP: a Backend is shared between the pool and the session that leases it.
using BackendPtr = std::shared_ptr<Backend>;

class BackendDriver {
 public:
  virtual ~BackendDriver() = default;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;  // "process", "docker"
  /// Makes a fresh backend, ready to run tools.
  virtual void create(std::function<void(Status, BackendPtr)> done) noexcept = 0;
  /// Makes a used backend fit for another user: every process it started is gone, environment and
  /// working directory reset, workspace detached. A failure means: destroy it.
  virtual void reset(BackendPtr backend, std::function<void(Status)> done) noexcept = 0;
  /// Health check of an idle backend.
  virtual void check(BackendPtr backend, std::function<void(Status)> done) noexcept = 0;
  virtual void destroy(BackendPtr backend, std::function<void()> done) noexcept = 0;
};

}  // namespace phasekit::plugin
