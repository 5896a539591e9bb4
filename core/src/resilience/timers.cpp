#include "phasekit/resilience/timers.hpp"

namespace phasekit::resilience {

std::int64_t VirtualTimers::now_ms() const noexcept {
  const std::lock_guard lock(mutex_);
  return now_;
}

TimerId VirtualTimers::schedule(Millis delay, std::function<void()> fn) {
  const std::lock_guard lock(mutex_);
  const TimerId id = next_id_++;
  const std::int64_t due = now_ + std::max<std::int64_t>(0, delay.count());
  queue_.emplace(std::make_pair(due, id), std::move(fn));
  due_of_.emplace(id, due);
  return id;
}

void VirtualTimers::cancel(TimerId id) noexcept {
  const std::lock_guard lock(mutex_);
  const auto it = due_of_.find(id);
  if (it != due_of_.end()) {
    queue_.erase({it->second, id});
    due_of_.erase(it);
  }
}

bool VirtualTimers::run_one_due_at_or_before(std::int64_t limit) {
  std::function<void()> fn;
  {
    const std::lock_guard lock(mutex_);
    if (queue_.empty() || queue_.begin()->first.first > limit) {
      return false;
    }
    auto node = queue_.extract(queue_.begin());
    now_ = std::max(now_, node.key().first);
    due_of_.erase(node.key().second);
    fn = std::move(node.mapped());
  }
  fn();  // outside the lock: it may schedule or cancel
  return true;
}

void VirtualTimers::run_due() {
  while (run_one_due_at_or_before(now_ms())) {
  }
}

void VirtualTimers::advance(Millis by) {
  const std::int64_t target = now_ms() + std::max<std::int64_t>(0, by.count());
  while (run_one_due_at_or_before(target)) {
  }
  const std::lock_guard lock(mutex_);
  now_ = target;
}

std::size_t VirtualTimers::pending() const {
  const std::lock_guard lock(mutex_);
  return queue_.size();
}

std::optional<std::int64_t> VirtualTimers::next_due() const {
  const std::lock_guard lock(mutex_);
  if (queue_.empty()) {
    return std::nullopt;
  }
  return queue_.begin()->first.first;
}

}  // namespace phasekit::resilience
