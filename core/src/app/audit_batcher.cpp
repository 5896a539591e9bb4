#include "phasekit/app/audit_batcher.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <iterator>
#include <utility>

namespace phasekit::app {
namespace {

/// A record's bytes as the deferral's bound counts them (its strings, and the rest as a fixed 64).
std::size_t bytes_of(const plugin::AuditRecord& r) {
  return r.call_id.size() + r.user_id.size() + r.session_id.size() + r.instance.size() + r.tool.size() +
         r.args.size() + r.outcome.size() + 64;
}

}  // namespace

AuditBatcher::AuditBatcher(plugin::StoreStrategy& store, plugin::HostServices* host, std::size_t most)
    : store_(store), host_(host), most_(most) {}

AuditBatcher::~AuditBatcher() {
  if (!deferred_.empty() && host_ != nullptr) {
    // The process ends with the store still away: these calls' results went out, and their records
    // are lost. Said, with the count, so an operator knows the log has a gap.
    host_->logger("audit").error("audit.deferred_lost", {{"records", deferred_.size()}});
  }
}

void AuditBatcher::add(plugin::AuditRecord record, std::function<void(Status)> done) {
  std::unique_lock lock(mutex_);
  records_.push_back(std::move(record));
  waiting_.push_back(std::move(done));
  if (!writing_) {
    write_locked(lock);
  }
}

std::size_t AuditBatcher::writes() const {
  const std::lock_guard lock(mutex_);
  return writes_;
}

std::size_t AuditBatcher::deferred() const {
  const std::lock_guard lock(mutex_);
  return deferred_.size();
}

void AuditBatcher::write_locked(std::unique_lock<std::mutex>& lock) {
  const std::size_t n = std::min(records_.size(), most_);
  std::vector<plugin::AuditRecord> batch(std::make_move_iterator(records_.begin()),
                                         std::make_move_iterator(records_.begin() + static_cast<std::ptrdiff_t>(n)));
  std::vector<std::function<void(Status)>> dones(std::make_move_iterator(waiting_.begin()),
                                                 std::make_move_iterator(waiting_.begin() + static_cast<std::ptrdiff_t>(n)));
  records_.erase(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(n));
  waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(n));
  writing_ = true;
  ++writes_;
  lock.unlock();
  store_.append_audit(std::move(batch), [self = shared_from_this(), dones = std::move(dones)](Status s) {
    for (const auto& done : dones) {
      done(s);
    }
    std::unique_lock relock(self->mutex_);
    self->writing_ = false;
    if (!self->records_.empty()) {
      self->write_locked(relock);
    }
  });
}

void AuditBatcher::defer(plugin::AuditRecord record) {
  if (host_ == nullptr) {
    return;
  }
  std::size_t dropped = 0;
  {
    const std::lock_guard lock(mutex_);
    const std::size_t size = bytes_of(record);
    while (!deferred_.empty() &&
           (deferred_.size() >= kDeferredMost || deferred_bytes_ + size > kDeferredBytesMost)) {
      deferred_bytes_ -= bytes_of(deferred_.front());
      deferred_.pop_front();
      ++dropped;
    }
    deferred_bytes_ += size;
    deferred_.push_back(std::move(record));
    host_->metrics()
        .gauge("phasekit_audit_deferred", "Audit records waiting for the store to take writes again.")
        .set(static_cast<double>(deferred_.size()));
    arm_locked();
  }
  if (dropped > 0) {
    host_->metrics()
        .counter("phasekit_audit_dropped_total", "Audit records dropped: more waited for the store than it keeps.")
        .inc(static_cast<double>(dropped));
    host_->logger("audit").error("audit.deferred_dropped", {{"records", dropped}, {"most", kDeferredMost}});
  }
}

void AuditBatcher::arm_locked() {
  if (armed_) {
    return;
  }
  if (!timer_) {
    timer_.emplace(host_->executor());
  }
  armed_ = true;
  timer_->expires_after(kDeferredRetry);
  timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) {
      self->retry_deferred();
    }
  });
}

void AuditBatcher::retry_deferred() {
  std::vector<plugin::AuditRecord> batch;
  {
    const std::lock_guard lock(mutex_);
    armed_ = false;
    const std::size_t n = std::min(deferred_.size(), most_);
    batch.assign(std::make_move_iterator(deferred_.begin()),
                 std::make_move_iterator(deferred_.begin() + static_cast<std::ptrdiff_t>(n)));
    deferred_.erase(deferred_.begin(), deferred_.begin() + static_cast<std::ptrdiff_t>(n));
    for (const auto& r : batch) {
      deferred_bytes_ -= bytes_of(r);
    }
  }
  if (batch.empty()) {
    return;
  }
  auto held = std::make_shared<std::vector<plugin::AuditRecord>>(std::move(batch));
  store_.append_audit(*held, [self = shared_from_this(), held](Status s) {
    const std::lock_guard lock(self->mutex_);
    if (s.ok()) {
      self->host_->logger("audit").info("audit.deferred_written", {{"records", held->size()}});
    } else {
      // Still away: back to the front, in their order, for the next try (the bound holds: what
      // arrived meanwhile counted these as gone).
      for (auto it = held->rbegin(); it != held->rend() && self->deferred_.size() < kDeferredMost &&
                                     self->deferred_bytes_ + bytes_of(*it) <= kDeferredBytesMost;
           ++it) {
        self->deferred_bytes_ += bytes_of(*it);
        self->deferred_.push_front(std::move(*it));
      }
    }
    self->host_->metrics()
        .gauge("phasekit_audit_deferred", "Audit records waiting for the store to take writes again.")
        .set(static_cast<double>(self->deferred_.size()));
    if (!self->deferred_.empty()) {
      if (s.ok()) {
        self->armed_ = true;  // more to write: at once, not after a retry interval
        boost::asio::post(self->host_->executor(), [self] { self->retry_deferred(); });
      } else {
        self->arm_locked();
      }
    }
  });
}

}  // namespace phasekit::app
