#include "app/audit_batcher.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace phasekit::app {

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

}  // namespace phasekit::app
