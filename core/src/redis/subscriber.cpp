#include "phasekit/redis/subscriber.hpp"

#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "connection.hpp"

namespace phasekit::redis {
namespace detail {

namespace asio = boost::asio;

class SubscriberImpl final : public Connection {
 public:
  static constexpr std::size_t kBatch = 1000;  // channels per SUBSCRIBE command

  SubscriberImpl(asio::any_io_executor ex, ClientOptions options, Logger& log)
      : Connection(std::move(ex), std::move(options), log, "subscriber") {}

  void subscribe(std::string channel, Subscriber::Handler handler) {
    const std::lock_guard lock(mu_);
    if (stopped_locked()) {
      return;
    }
    auto h = std::make_shared<Subscriber::Handler>(std::move(handler));
    const auto [it, inserted] = channels_.insert_or_assign(std::move(channel), std::move(h));
    if (inserted) {
      changed_locked(it->first);
    }
  }

  void unsubscribe(const std::string& channel) {
    const std::lock_guard lock(mu_);
    if (channels_.erase(channel) > 0) {
      changed_locked(channel);
    }
  }

  [[nodiscard]] std::size_t channels() const {
    const std::lock_guard lock(mu_);
    return channels_.size();
  }

 private:
  using HandlerPtr = std::shared_ptr<Subscriber::Handler>;

  /// While ready, changes are collected and sent by one posted flush (so 10,000 subscribe() calls in a
  /// row become 10 SUBSCRIBE commands). While down they need nothing: on_ready sends every channel.
  void changed_locked(const std::string& channel) {
    if (!ready_locked()) {
      return;
    }
    dirty_.insert(channel);
    if (flush_posted_) {
      return;
    }
    flush_posted_ = true;
    asio::post(strand(), [self = std::static_pointer_cast<SubscriberImpl>(self()), gen = generation_locked()] {
      const std::lock_guard lock(self->mu_);
      if (gen != self->generation_locked()) {
        return;  // reconnected meanwhile: on_ready sent everything
      }
      self->flush_locked();
    });
  }

  void flush_locked() {
    flush_posted_ = false;
    std::vector<std::string> sub;
    std::vector<std::string> unsub;
    for (const std::string& ch : dirty_) {
      const bool want = channels_.contains(ch);
      const bool have = sent_.contains(ch);
      if (want && !have) {
        sub.push_back(ch);
        sent_.insert(ch);
      } else if (!want && have) {
        unsub.push_back(ch);
        sent_.erase(ch);
      }
    }
    dirty_.clear();
    send_batches_locked("SUBSCRIBE", std::move(sub));
    send_batches_locked("UNSUBSCRIBE", std::move(unsub));
  }

  void send_batches_locked(const char* verb, std::vector<std::string> names) {
    std::string encoded;
    std::vector<std::string> argv;
    for (std::size_t i = 0; i < names.size(); i += kBatch) {
      argv.clear();
      argv.emplace_back(verb);
      const std::size_t end = std::min(names.size(), i + kBatch);
      for (std::size_t j = i; j < end; ++j) {
        argv.push_back(std::move(names[j]));
      }
      encode_command(encoded, argv);
    }
    if (!encoded.empty()) {
      write_locked(encoded);
    }
  }

  void on_ready_locked() override {
    dirty_.clear();
    sent_.clear();
    flush_posted_ = false;
    if (channels_.empty()) {
      set_connected_locked();
      return;
    }
    std::vector<std::string> names;
    names.reserve(channels_.size());
    for (const auto& [name, handler] : channels_) {
      names.push_back(name);
      sent_.insert(name);
    }
    resubscribe_acks_left_ = names.size();
    send_batches_locked("SUBSCRIBE", std::move(names));
  }

  void on_reply_locked(Reply reply) override {
    if (!reply.is_array() || reply.elements().empty() || !reply.elements()[0].is_string()) {
      log_.warn("redis subscriber got an unexpected reply",
                {{"redis", options_.name}, {"type", Reply::type_name(reply.type())}, {"error", reply.str()}});
      if (resubscribe_acks_left_ > 0 && reply.is_error()) {
        fail_locked(Status(Code::unavailable, "redis refused SUBSCRIBE: " + reply.str()));
      }
      return;
    }
    auto& e = reply.elements();
    const std::string& kind = e[0].str();
    if (kind == "message" && e.size() == 3) {
      const auto it = channels_.find(e[1].str());
      if (it == channels_.end()) {
        return;  // unsubscribed meanwhile
      }
      post([handler = it->second, channel = e[1].take_str(), payload = e[2].take_str()]() mutable {
        (*handler)(std::move(channel), std::move(payload));
      });
      return;
    }
    if (kind == "subscribe") {
      if (resubscribe_acks_left_ > 0 && --resubscribe_acks_left_ == 0) {
        log_.info("redis subscriber subscribed", {{"redis", options_.name}, {"channels", sent_.size()}});
        set_connected_locked();
      }
      return;
    }
    // "unsubscribe" acks, "pong": nothing to do.
  }

  void on_down_locked(const Status&) override {
    dirty_.clear();
    sent_.clear();
    flush_posted_ = false;
    resubscribe_acks_left_ = 0;
  }

  std::unordered_map<std::string, HandlerPtr> channels_;  // what the user wants
  std::unordered_set<std::string> sent_;                    // what this connection has asked the server for
  std::unordered_set<std::string> dirty_;                   // changed since the last flush
  bool flush_posted_ = false;
  std::size_t resubscribe_acks_left_ = 0;
};

}  // namespace detail

Subscriber::Subscriber(std::shared_ptr<detail::SubscriberImpl> impl) : impl_(std::move(impl)) {}

Subscriber::~Subscriber() { impl_->stop(); }

std::shared_ptr<Subscriber> Subscriber::create(boost::asio::any_io_executor ex, ClientOptions options, Logger& log) {
  auto impl = std::make_shared<detail::SubscriberImpl>(std::move(ex), std::move(options), log);
  return std::shared_ptr<Subscriber>(new Subscriber(std::move(impl)));
}

void Subscriber::start() { impl_->start(); }
void Subscriber::stop() { impl_->stop(); }
void Subscriber::subscribe(std::string channel, Handler handler) {
  impl_->subscribe(std::move(channel), std::move(handler));
}
void Subscriber::unsubscribe(const std::string& channel) { impl_->unsubscribe(channel); }
void Subscriber::on_state(std::function<void(bool)> listener) { impl_->on_state(std::move(listener)); }
bool Subscriber::connected() const noexcept { return impl_->connected(); }
std::size_t Subscriber::channels() const { return impl_->channels(); }

}  // namespace phasekit::redis
