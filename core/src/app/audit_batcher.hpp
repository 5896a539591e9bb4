#pragma once
// Group commit for the audit log: the records of calls that end while a write of the log is in flight
// go together in the next write, so under load many calls cost one store write (one transaction for
// store=postgres, one EVAL for redis), and a call that ends alone waits for no timer.
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "phasekit/plugin/store.hpp"

namespace phasekit::app {

class AuditBatcher : public std::enable_shared_from_this<AuditBatcher> {
 public:
  /// `most`: records in one write at most (the rest wait for the next).
  explicit AuditBatcher(plugin::StoreStrategy& store, std::size_t most = 256) : store_(store), most_(most) {}

  /// Writes `record` with those that queue beside it; `done` gets the status of the write that carried
  /// it, from the store's completion (never inside this call).
  void add(plugin::AuditRecord record, std::function<void(Status)> done);

  /// Store writes made so far (for tests: fewer than the records under load).
  [[nodiscard]] std::size_t writes() const;

 private:
  /// Sends what is queued; called with the lock held and writing_ false.
  void write_locked(std::unique_lock<std::mutex>& lock);

  plugin::StoreStrategy& store_;
  const std::size_t most_;
  mutable std::mutex mutex_;
  bool writing_ = false;
  std::size_t writes_ = 0;
  std::vector<plugin::AuditRecord> records_;
  std::vector<std::function<void(Status)>> waiting_;
};

}  // namespace phasekit::app
