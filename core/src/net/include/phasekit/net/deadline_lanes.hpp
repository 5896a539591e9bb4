#pragma once
// Deadlines of a few fixed durations for many objects, on one timer (issue 16). Every Engine.IO
// session waits for its next ping and then for its pong; with a timer each, an idle connection held
// the timer (120 bytes) and its pending wait (about 130 more) for its whole life. Here a deadline is
// an entry of 32 bytes in its duration's lane.
//
// A lane holds the deadlines of one duration. Entries are added at now + duration, so a lane comes
// due in the order its entries were added: it is a FIFO, adding is O(1), and the timer waits for the
// earliest head. Nothing is cancelled: an entry carries the token its target had when it was added,
// and the target ignores a deadline whose token is no longer its own (or is gone: the entry holds it
// weakly). A stale entry stays until its own deadline, so a lane holds at most what was added within
// its duration.
//
// Thread-safe: add() from any thread; `fire` runs on a thread of the io_context, outside the lock,
// and should post to the target's strand.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace phasekit::net {

template <class Target>
class DeadlineLanes {
 public:
  using Clock = std::chrono::steady_clock;
  using Fire = std::function<void(std::shared_ptr<Target> target, std::size_t lane, std::uint32_t token)>;

  /// One lane per duration; lane i's deadlines come `durations[i]` after they are added.
  DeadlineLanes(boost::asio::io_context::executor_type executor, std::vector<Clock::duration> durations, Fire fire)
      : state_(std::make_shared<State>(executor, std::move(fire))) {
    for (const auto d : durations) {
      state_->lanes.push_back(Lane{d, {}});
    }
  }
  ~DeadlineLanes() { stop(); }
  DeadlineLanes(const DeadlineLanes&) = delete;
  DeadlineLanes& operator=(const DeadlineLanes&) = delete;

  /// `target` is due on `lane` one duration from now, under `token`.
  void add(std::size_t lane, std::weak_ptr<Target> target, std::uint32_t token) {
    State& s = *state_;
    const std::lock_guard lock(s.mutex);
    if (s.stopped) {
      return;
    }
    Lane& l = s.lanes.at(lane);
    const Clock::time_point due = Clock::now() + l.duration;
    l.entries.push_back(Entry{std::move(target), due, token});
    // Only an entry at the head of its lane can be due before what the timer waits for.
    if (l.entries.size() == 1 && (!s.armed || due < s.armed_at)) {
      arm(state_, due);
    }
  }

  /// Deadlines waiting, stale ones included.
  [[nodiscard]] std::size_t size() const {
    const std::lock_guard lock(state_->mutex);
    std::size_t n = 0;
    for (const Lane& l : state_->lanes) {
      n += l.entries.size();
    }
    return n;
  }

  /// Nothing fires after this; the entries are dropped.
  void stop() {
    const std::lock_guard lock(state_->mutex);
    state_->stopped = true;
    state_->armed = false;
    state_->timer.cancel();
    for (Lane& l : state_->lanes) {
      l.entries.clear();
    }
  }

 private:
  struct Entry {
    std::weak_ptr<Target> target;
    Clock::time_point due;
    std::uint32_t token;
  };
  struct Lane {
    Clock::duration duration;
    std::deque<Entry> entries;
  };
  struct State {
    State(boost::asio::io_context::executor_type executor, Fire f) : timer(executor), fire(std::move(f)) {}
    std::mutex mutex;  // everything below, the timer included
    boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>, boost::asio::io_context::executor_type>
        timer;
    Fire fire;
    std::vector<Lane> lanes;
    Clock::time_point armed_at{};
    std::uint64_t wait = 0;  // which wait is the current one: a replaced wait's handler does nothing
    bool armed = false;
    bool stopped = false;
  };

  /// Under the lock: the timer waits for `due` (replacing the wait it had).
  static void arm(const std::shared_ptr<State>& state, Clock::time_point due) {
    State& s = *state;
    s.armed = true;
    s.armed_at = due;
    const std::uint64_t wait = ++s.wait;
    s.timer.expires_at(due);
    s.timer.async_wait([weak = std::weak_ptr<State>(state), wait](const boost::system::error_code& ec) {
      if (!ec) {
        if (auto locked = weak.lock()) {
          on_timer(locked, wait);
        }
      }
    });
  }

  static void on_timer(const std::shared_ptr<State>& state, std::uint64_t wait) {
    State& s = *state;
    std::vector<Entry> due;
    std::vector<std::size_t> lanes;
    {
      const std::lock_guard lock(s.mutex);
      if (s.stopped || wait != s.wait) {
        return;
      }
      s.armed = false;
      const Clock::time_point now = Clock::now();
      Clock::time_point next = Clock::time_point::max();
      for (std::size_t i = 0; i < s.lanes.size(); ++i) {
        auto& entries = s.lanes[i].entries;
        while (!entries.empty() && entries.front().due <= now) {
          due.push_back(std::move(entries.front()));
          lanes.push_back(i);
          entries.pop_front();
        }
        if (!entries.empty()) {
          next = std::min(next, entries.front().due);
        }
      }
      if (next != Clock::time_point::max()) {
        arm(state, next);
      }
    }
    for (std::size_t i = 0; i < due.size(); ++i) {
      if (auto target = due[i].target.lock()) {
        s.fire(std::move(target), lanes[i], due[i].token);
      }
    }
  }

  // Shared with the timer's handler, which holds it weakly: the lanes can go while a wait is pending.
  std::shared_ptr<State> state_;
};

}  // namespace phasekit::net
