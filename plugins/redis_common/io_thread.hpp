#pragma once
// A private io_context on its own thread, for a plugin's sockets and timers.
//
// Why: every plugin carries its own copy of Asio (hidden symbols, -Wl,--exclude-libs), and Asio keeps
// per-thread state (the call stack that tells a reactor which thread runs it) per copy. A socket of a
// plugin completing on the host's io_context finds no thread context of its copy and crashes in the
// reactor. So the redis plugins run their connections on an io_context their own code runs, and
// hand results to the host by posting to HostServices::executor(), which is type-erased and safe.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <future>
#include <thread>

namespace phasekit::redis_plugins {

class IoThread {
 public:
  IoThread() : guard_(ctx_.get_executor()), thread_([this] {
                 ctx_.run();
                 finished_.set_value();
               }) {}
  ~IoThread() { drain(); }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  [[nodiscard]] boost::asio::io_context::executor_type executor() noexcept { return ctx_.get_executor(); }

  /// Lets the handlers still pending run out (they release what they hold), for up to five seconds,
  /// then stops the io_context and joins the thread. Idempotent.
  void drain() {
    if (!thread_.joinable()) {
      return;
    }
    guard_.reset();
    if (done_.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      ctx_.stop();
    }
    thread_.join();
  }

 private:
  boost::asio::io_context ctx_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::promise<void> finished_;
  std::future<void> done_ = finished_.get_future();
  std::thread thread_;
};

}  // namespace phasekit::redis_plugins
