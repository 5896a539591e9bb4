#pragma once
// Group commit for the audit log: the records of calls that end while a write of the log is in flight
// go together in the next write, so under load many calls cost one store write (one transaction for
// store=postgres, one EVAL for redis), and a call that ends alone waits for no timer.
//
// And a write-behind for records whose writes ran out of time while the store was away (defer): the
// call's result has gone out, and its record is written once the store takes writes again, so a
// result a client saw still reaches the log unless this process ends first.
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/store.hpp"

namespace phasekit::app {

class AuditBatcher : public std::enable_shared_from_this<AuditBatcher> {
 public:
  /// `most`: records in one write at most (the rest wait for the next). `host`: where deferred records
  /// are retried from, logged and counted (nullptr: defer() is not used).
  explicit AuditBatcher(plugin::StoreStrategy& store, plugin::HostServices* host = nullptr, std::size_t most = 256);
  ~AuditBatcher();
  AuditBatcher(const AuditBatcher&) = delete;
  AuditBatcher& operator=(const AuditBatcher&) = delete;

  /// Writes `record` with those that queue beside it; `done` gets the status of the write that carried
  /// it, from the store's completion (never inside this call).
  void add(plugin::AuditRecord record, std::function<void(Status)> done);

  /// Keeps `record`, whose write failed for a while, and writes it when the store takes writes again
  /// (tried every kDeferredRetry). At most kDeferredMost records and kDeferredBytesMost bytes wait; past
  /// either the oldest are dropped, logged and counted (phasekit_audit_dropped_total).
  void defer(plugin::AuditRecord record);

  /// Store writes made so far (for tests: fewer than the records under load).
  [[nodiscard]] std::size_t writes() const;
  /// Records defer() holds now.
  [[nodiscard]] std::size_t deferred() const;

  static constexpr std::size_t kDeferredMost = 100000;
  static constexpr std::size_t kDeferredBytesMost = std::size_t{64} << 20;
  static constexpr std::chrono::milliseconds kDeferredRetry{1000};

 private:
  /// Sends what is queued; called with the lock held and writing_ false.
  void write_locked(std::unique_lock<std::mutex>& lock);
  /// Arms the retry timer unless it is armed; called with the lock held.
  void arm_locked();
  /// Writes a batch of the deferred records; those that fail wait for the next try.
  void retry_deferred();

  plugin::StoreStrategy& store_;
  plugin::HostServices* host_;
  const std::size_t most_;
  mutable std::mutex mutex_;
  bool writing_ = false;
  std::size_t writes_ = 0;
  std::vector<plugin::AuditRecord> records_;
  std::vector<std::function<void(Status)>> waiting_;
  std::deque<plugin::AuditRecord> deferred_;
  std::size_t deferred_bytes_ = 0;  // what deferred_ holds, as bytes_of() counts it
  std::optional<boost::asio::steady_timer> timer_;
  bool armed_ = false;
};

}  // namespace phasekit::app
