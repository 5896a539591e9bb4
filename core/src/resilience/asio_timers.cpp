#include "phasekit/resilience/asio_timers.hpp"

#include <boost/asio/steady_timer.hpp>

namespace phasekit::resilience {

struct AsioTimers::State {
  boost::asio::any_io_executor executor;
  std::mutex mutex;
  TimerId next_id = 1;
  std::unordered_map<TimerId, std::shared_ptr<boost::asio::steady_timer>> timers;
};

AsioTimers::AsioTimers(boost::asio::any_io_executor executor) : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
}

AsioTimers::~AsioTimers() {
  const std::lock_guard lock(state_->mutex);
  for (auto& [id, timer] : state_->timers) {
    timer->cancel();
  }
  state_->timers.clear();
}

std::int64_t AsioTimers::now_ms() const noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TimerId AsioTimers::schedule(Millis delay, std::function<void()> fn) {
  auto timer = std::make_shared<boost::asio::steady_timer>(state_->executor, delay);
  TimerId id = 0;
  {
    const std::lock_guard lock(state_->mutex);
    id = state_->next_id++;
    state_->timers.emplace(id, timer);
  }
  timer->async_wait([weak = std::weak_ptr<State>(state_), id, timer, fn = std::move(fn)](
                        const boost::system::error_code& ec) {
    const auto state = weak.lock();
    if (!state) {
      return;
    }
    {
      const std::lock_guard lock(state->mutex);
      if (state->timers.erase(id) == 0 || ec) {
        return;  // cancelled
      }
    }
    fn();
  });
  return id;
}

void AsioTimers::cancel(TimerId id) noexcept {
  const std::lock_guard lock(state_->mutex);
  const auto it = state_->timers.find(id);
  if (it != state_->timers.end()) {
    it->second->cancel();
    state_->timers.erase(it);
  }
}

}  // namespace phasekit::resilience
