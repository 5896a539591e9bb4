#pragma once
// A dedicated Redis pub/sub connection. Channels are remembered: subscribe() while disconnected takes
// effect on connect, and after every reconnect all channels are subscribed again (SUBSCRIBE in batches
// of up to 1000 channels) before on_state listeners hear true. Thread-safe; handlers and listeners are
// posted to the executor given to create(). Messages published while the connection is down are lost
// (Redis pub/sub keeps nothing): on_state(true) is the moment to re-read any state the channels carry.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "phasekit/plugin/log.hpp"
#include "phasekit/redis/client.hpp"

namespace phasekit::redis {

namespace detail {
class SubscriberImpl;
}

class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  using Handler = std::function<void(std::string channel, std::string payload)>;

  /// options.command_timeout and max_pending are not used.
  static std::shared_ptr<Subscriber> create(boost::asio::any_io_executor ex, ClientOptions options, Logger& log);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void start();
  /// Closes; no handler or listener is posted after it returns. Idempotent.
  void stop();
  /// Idempotent per channel; a second call replaces the handler.
  void subscribe(std::string channel, Handler handler);
  void unsubscribe(const std::string& channel);
  /// Called on every connect (after all channels are subscribed again) and disconnect.
  void on_state(std::function<void(bool connected)> listener);
  [[nodiscard]] bool connected() const noexcept;
  /// Channels with a handler.
  [[nodiscard]] std::size_t channels() const;

 private:
  explicit Subscriber(std::shared_ptr<detail::SubscriberImpl> impl);
  std::shared_ptr<detail::SubscriberImpl> impl_;
};

}  // namespace phasekit::redis
