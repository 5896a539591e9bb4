#pragma once
// The shutdown of a builtin strategy that answers once nothing is in flight (pool=none: no backend
// being made; queue=inproc: no job running or left to run). Its owner keeps it under its own lock and
// says, each time something finishes, whether it is idle now.
#include <boost/asio/post.hpp>

#include <functional>
#include <mutex>
#include <utility>

namespace phasekit::builtin {

class IdleShutdown {
 public:
  /// Whether async_shutdown was called (under the owner's lock).
  [[nodiscard]] bool begun() const noexcept { return begun_; }

  /// Under the owner's lock: the answer to post once shutdown has begun and the owner is `idle`; it is
  /// given once.
  [[nodiscard]] std::function<void()> take_if(bool idle) {
    return begun_ && idle && done_ ? std::exchange(done_, nullptr) : nullptr;
  }

  /// The owner's async_shutdown: begins under `mutex`, and answers `done` at once when `idle()` (called
  /// under the lock) holds; otherwise a later take_if(true) gives the answer.
  template <class Executor, class Idle>
  void begin(std::mutex& mutex, const Executor& executor, std::function<void()> done, Idle idle) {
    std::function<void()> finished;
    {
      const std::lock_guard lock(mutex);
      begun_ = true;
      done_ = std::move(done);
      finished = take_if(idle());
    }
    post_if(executor, std::move(finished));
  }

  /// Posts what take_if gave, if anything, on `executor` (after the owner's lock is released).
  template <class Executor>
  static void post_if(const Executor& executor, std::function<void()> finished) {
    if (finished) {
      boost::asio::post(executor, std::move(finished));
    }
  }

 private:
  bool begun_ = false;
  std::function<void()> done_;
};

}  // namespace phasekit::builtin
