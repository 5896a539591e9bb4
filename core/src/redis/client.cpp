#include "phasekit/redis/client.hpp"

#include <deque>

#include <fmt/format.h>

#include "connection.hpp"

namespace phasekit::redis {
namespace detail {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

class ClientImpl final : public Connection {
 public:
  ClientImpl(asio::any_io_executor ex, ClientOptions options, Logger& log)
      : Connection(std::move(ex), std::move(options), log, "client"), timer_(strand()) {}

  void command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, Client::Done done);
  void pipeline(std::vector<std::vector<std::string>> commands, Client::PipelineDone done);
  [[nodiscard]] std::chrono::milliseconds default_timeout() const noexcept { return options_.command_timeout; }
  [[nodiscard]] std::size_t pending() const {
    const std::lock_guard lock(mu_);
    return pending_.size();
  }

 private:
  struct Pipe {
    std::vector<Reply> replies;
    std::size_t left = 0;
    Client::PipelineDone done;
    bool finished = false;
  };
  struct Pending {
    Client::Done done;              // a single command, or
    std::shared_ptr<Pipe> pipe;     // one command of a pipeline
    std::size_t index = 0;
    Clock::time_point deadline;
    std::chrono::milliseconds timeout{0};
    std::string name;               // argv[0], for the timeout message
  };

  void on_ready_locked() override { set_connected_locked(); }
  void on_reply_locked(Reply reply) override;
  void on_down_locked(const Status& why) override;

  void complete_locked(Pending& p, Status status, Reply reply);
  [[nodiscard]] bool admit_locked(std::size_t n, Status& refusal) const;
  static Clock::time_point deadline_for(std::chrono::milliseconds timeout) {
    return timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
  }
  void arm_timer_locked(Clock::time_point at);
  void on_timer(std::uint64_t gen);

  std::deque<Pending> pending_;
  asio::steady_timer timer_;
  Clock::time_point timer_at_ = Clock::time_point::max();
};

bool ClientImpl::admit_locked(std::size_t n, Status& refusal) const {
  if (!usable_locked()) {
    refusal = Status(Code::unavailable, not_connected_message_locked());
    return false;
  }
  if (pending_.size() + n > options_.max_pending) {
    refusal = Status(Code::unavailable, fmt::format("redis client {} has {} commands pending (max_pending {})",
                                                    options_.name, pending_.size(), options_.max_pending));
    return false;
  }
  return true;
}

void ClientImpl::command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, Client::Done done) {
  if (argv.empty()) {
    post([done = std::move(done)] { done(Status(Code::bad_request, "empty redis command"), Reply{}); });
    return;
  }
  std::string encoded;
  encode_command(encoded, argv);  // outside the lock
  const std::lock_guard lock(mu_);
  Status refusal;
  if (!admit_locked(1, refusal)) {
    post([done = std::move(done), refusal = std::move(refusal)]() mutable { done(std::move(refusal), Reply{}); });
    return;
  }
  const auto deadline = deadline_for(timeout);
  pending_.push_back(Pending{std::move(done), nullptr, 0, deadline, timeout, argv.front()});
  write_locked(encoded);
  if (deadline < timer_at_) {
    arm_timer_locked(deadline);
  }
}

void ClientImpl::pipeline(std::vector<std::vector<std::string>> commands, Client::PipelineDone done) {
  if (commands.empty()) {
    post([done = std::move(done)] { done(Status(), {}); });
    return;
  }
  std::string encoded;
  for (const auto& argv : commands) {
    if (argv.empty()) {
      post([done = std::move(done)] { done(Status(Code::bad_request, "empty redis command in a pipeline"), {}); });
      return;
    }
    encode_command(encoded, argv);
  }
  const std::lock_guard lock(mu_);
  Status refusal;
  if (!admit_locked(commands.size(), refusal)) {
    post([done = std::move(done), refusal = std::move(refusal)]() mutable { done(std::move(refusal), {}); });
    return;
  }
  auto pipe = std::make_shared<Pipe>();
  pipe->replies.resize(commands.size());
  pipe->left = commands.size();
  pipe->done = std::move(done);
  const auto timeout = options_.command_timeout;
  const auto deadline = deadline_for(timeout);
  for (std::size_t i = 0; i < commands.size(); ++i) {
    pending_.push_back(Pending{nullptr, pipe, i, deadline, timeout, std::move(commands[i].front())});
  }
  write_locked(encoded);
  if (deadline < timer_at_) {
    arm_timer_locked(deadline);
  }
}

void ClientImpl::complete_locked(Pending& p, Status status, Reply reply) {
  if (p.pipe) {
    Pipe& pipe = *p.pipe;
    if (pipe.finished) {
      return;
    }
    if (!status) {
      pipe.finished = true;
      post([done = std::move(pipe.done), status = std::move(status)]() mutable { done(std::move(status), {}); });
      return;
    }
    pipe.replies[p.index] = std::move(reply);
    if (--pipe.left == 0) {
      pipe.finished = true;
      post([done = std::move(pipe.done), replies = std::move(pipe.replies)]() mutable {
        done(Status(), std::move(replies));
      });
    }
    return;
  }
  post([done = std::move(p.done), status = std::move(status), reply = std::move(reply)]() mutable {
    done(std::move(status), std::move(reply));
  });
}

void ClientImpl::on_reply_locked(Reply reply) {
  if (pending_.empty()) {
    log_.error("redis sent a reply no command waits for, closing the connection",
               {{"redis", options_.name}, {"endpoint", where_}});
    fail_locked(Status(Code::unavailable, fmt::format("{} sent a reply no command waits for", where_)));
    return;
  }
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  complete_locked(p, Status(), std::move(reply));
}

void ClientImpl::on_down_locked(const Status& why) {
  timer_.cancel();
  timer_at_ = Clock::time_point::max();
  std::deque<Pending> failed;
  failed.swap(pending_);
  for (Pending& p : failed) {
    complete_locked(p, why, Reply{});
  }
}

void ClientImpl::arm_timer_locked(Clock::time_point at) {
  timer_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = std::static_pointer_cast<ClientImpl>(self()), gen = generation_locked()](
                        const boost::system::error_code& ec) {
    if (!ec) {
      self->on_timer(gen);
    }
  });
}

void ClientImpl::on_timer(std::uint64_t gen) {
  const std::lock_guard lock(mu_);
  if (gen != generation_locked() || !usable_locked()) {
    return;
  }
  // Deadlines are not in FIFO order (commands may have their own timeouts): scan. This runs about once
  // per timeout period, not per command.
  const auto now = Clock::now();
  timer_at_ = Clock::time_point::max();
  auto next = Clock::time_point::max();
  bool expired = false;
  for (const Pending& p : pending_) {
    if (p.deadline <= now) {
      expired = true;
    } else {
      next = std::min(next, p.deadline);
    }
  }
  if (!expired) {
    if (next != Clock::time_point::max()) {
      arm_timer_locked(next);
    }
    return;
  }
  std::deque<Pending> rest;
  std::string first;
  for (Pending& p : pending_) {
    if (p.deadline <= now) {
      if (first.empty()) {
        first = fmt::format("{} got no reply within {} ms", p.name, p.timeout.count());
      }
      complete_locked(p, Status(Code::timeout, fmt::format("redis {} got no reply within {} ms", p.name,
                                                           p.timeout.count())),
                      Reply{});
    } else {
      rest.push_back(std::move(p));
    }
  }
  pending_.swap(rest);
  // A late reply would be paired with the wrong command: the reply stream can no longer be trusted.
  fail_locked(Status(Code::unavailable, "redis connection reset: " + first));
}

}  // namespace detail

Client::Client(std::shared_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}

Client::~Client() { impl_->stop(); }

std::shared_ptr<Client> Client::create(boost::asio::any_io_executor ex, ClientOptions options, Logger& log) {
  auto impl = std::make_shared<detail::ClientImpl>(std::move(ex), std::move(options), log);
  return std::shared_ptr<Client>(new Client(std::move(impl)));
}

void Client::start() { impl_->start(); }
void Client::stop() { impl_->stop(); }
void Client::command(const std::vector<std::string>& argv, Done done) {
  impl_->command(argv, impl_->default_timeout(), std::move(done));
}
void Client::command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, Done done) {
  impl_->command(argv, timeout, std::move(done));
}
void Client::pipeline(std::vector<std::vector<std::string>> commands, PipelineDone done) {
  impl_->pipeline(std::move(commands), std::move(done));
}
bool Client::connected() const noexcept { return impl_->connected(); }
void Client::on_state(std::function<void(bool)> listener) { impl_->on_state(std::move(listener)); }
std::size_t Client::pending() const { return impl_->pending(); }

}  // namespace phasekit::redis
