#include "backend/shell_backend.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace phasekit::backend {
namespace {

constexpr std::chrono::seconds kWatchdogSlack{5};
constexpr std::chrono::seconds kStartTimeout{10};

}  // namespace

struct ShellBackend::Request {
  enum class Kind { run, ping, reset } kind = Kind::run;
  std::string id;
  std::string command;
  std::chrono::milliseconds timeout{0};
  std::size_t max_output = 0;
  OutputChunk on_chunk;
  RunDone on_run;
  std::function<void(Status)> on_simple;
  std::string new_nonce;
  RunResult result;
  std::chrono::steady_clock::time_point started;
  std::unique_ptr<boost::asio::steady_timer> watchdog;
};

ShellBackend::ShellBackend(Strand strand, std::string id, std::string workspace)
    : strand_(std::move(strand)), id_(std::move(id)), workspace_(std::move(workspace)), nonce_(make_nonce()) {}

ShellBackend::~ShellBackend() {
  if (channel_) {
    channel_->close();
  }
}

std::string ShellBackend::make_nonce() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

void ShellBackend::start(std::unique_ptr<SupervisorChannel> channel, std::function<void(Status)> done) {
  channel_ = std::move(channel);
  alive_ = true;
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    self->on_ready_ = std::move(done);
    // The nonce goes first, on stdin, so it never appears in the sandbox's command lines.
    self->channel_->async_write(std::make_shared<const std::string>(self->nonce_ + "\n"),
                                [](boost::system::error_code) {});
    auto timer = std::make_shared<boost::asio::steady_timer>(self->strand_, kStartTimeout);
    timer->async_wait([self, timer](boost::system::error_code ec) {
      if (!ec && self->on_ready_) {
        self->fail_all(Status(Code::unavailable, "backend did not become ready in time"));
      }
    });
    self->read_loop();
  });
}

void ShellBackend::run(std::string command, std::chrono::milliseconds timeout, std::size_t max_output,
                       OutputChunk on_chunk, RunDone done) {
  if (command.find('\0') != std::string::npos) {
    boost::asio::post(strand_, [done = std::move(done)] {
      done(Status(Code::bad_request, "a command line cannot contain a NUL byte"), RunResult{});
    });
    return;
  }
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::run;
  r->command = std::move(command);
  r->timeout = timeout;
  r->max_output = max_output;
  r->on_chunk = std::move(on_chunk);
  r->on_run = std::move(done);
  enqueue(std::move(r));
}

void ShellBackend::reset(std::function<void(Status)> done) {
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::reset;
  r->on_simple = std::move(done);
  r->timeout = std::chrono::seconds(10);
  enqueue(std::move(r));
}

void ShellBackend::ping(std::function<void(Status)> done) {
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::ping;
  r->on_simple = std::move(done);
  r->timeout = std::chrono::seconds(5);
  enqueue(std::move(r));
}

void ShellBackend::enqueue(std::shared_ptr<Request> r) {
  boost::asio::post(strand_, [self = shared_from_this(), r = std::move(r)] {
    self->queue_.push_back(r);
    self->send_next();
  });
}

void ShellBackend::stop() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    self->fail_all(Status(Code::unavailable, "backend stopped"));
  });
}

void ShellBackend::send_next() {
  if (current_ || queue_.empty() || on_ready_) {
    return;
  }
  if (!alive_) {
    fail_all(Status(Code::unavailable, "backend is not running"));
    return;
  }
  current_ = queue_.front();
  queue_.pop_front();
  Request& r = *current_;
  r.id = std::to_string(next_id_++);
  r.started = std::chrono::steady_clock::now();
  auto message = std::make_shared<std::string>();
  switch (r.kind) {
    case Request::Kind::run:
      *message = fmt::format("RUN {} {} {}\n{}", r.id, r.timeout.count(), r.command.size(), r.command);
      break;
    case Request::Kind::ping: *message = fmt::format("PING {} 0 0\n", r.id); break;
    case Request::Kind::reset:
      r.new_nonce = make_nonce();
      *message = fmt::format("RESET {} {} 0\n", r.id, r.new_nonce);
      break;
  }
  // The supervisor enforces the command's timeout; this watchdog only catches a wedged supervisor.
  r.watchdog = std::make_unique<boost::asio::steady_timer>(strand_, r.timeout + kWatchdogSlack);
  r.watchdog->async_wait([self = shared_from_this(), req = current_](boost::system::error_code ec) {
    if (!ec && self->current_ == req) {
      self->fail_all(Status(Code::timeout, "backend stopped answering"));
    }
  });
  channel_->async_write(std::move(message), [self = shared_from_this()](boost::system::error_code ec) {
    if (ec) {
      self->fail_all(Status(Code::unavailable, "backend closed its input: " + ec.message()));
    }
  });
}

void ShellBackend::read_loop() {
  read_buffer_.resize(16384);
  channel_->async_read_some(boost::asio::buffer(read_buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              if (ec) {
                                // Whatever it printed last says why (bwrap and bash errors go to this stream).
                                std::string last = self->pending_.substr(0, 300);
                                std::replace(last.begin(), last.end(), '\n', ' ');
                                self->fail_all(Status(Code::unavailable,
                                                      last.empty() ? "backend exited" : "backend exited: " + last));
                                return;
                              }
                              self->on_output(std::string_view(self->read_buffer_.data(), n));
                              if (self->alive_) {
                                self->read_loop();
                              }
                            });
}
void ShellBackend::on_output(std::string_view bytes) {
  pending_.append(bytes);
  for (;;) {
    const std::string marker = "\x1e" + nonce_ + " ";
    const auto at = pending_.find(marker);
    const std::size_t plain = at == std::string::npos
                                  ? (pending_.size() > marker.size() ? pending_.size() - (marker.size() - 1) : 0)
                                  : at;
    if (plain > 0 && current_ && current_->kind == Request::Kind::run) {
      RunResult& res = current_->result;
      const std::string_view chunk(pending_.data(), plain);
      res.output_bytes += chunk.size();
      const std::size_t room = current_->max_output > res.output.size() ? current_->max_output - res.output.size() : 0;
      const std::string_view kept = chunk.substr(0, std::min(room, chunk.size()));
      if (kept.size() < chunk.size()) {
        res.truncated = true;
      }
      if (!kept.empty()) {
        res.output.append(kept);
        if (current_->on_chunk) {
          current_->on_chunk(kept);
        }
      }
    }
    pending_.erase(0, plain);
    if (at == std::string::npos) {
      return;
    }
    const auto eol = pending_.find('\n', marker.size());
    if (eol == std::string::npos) {
      return;  // the rest of the reply is still on its way
    }
    const std::string line = pending_.substr(marker.size(), eol - marker.size());
    pending_.erase(0, eol + 1);
    const auto s1 = line.find(' ');
    const auto s2 = line.find(' ', s1 == std::string::npos ? s1 : s1 + 1);
    if (s1 == std::string::npos || s2 == std::string::npos) {
      continue;
    }
    on_reply(std::string_view(line).substr(0, s1), std::string_view(line).substr(s1 + 1, s2 - s1 - 1),
             std::string_view(line).substr(s2 + 1));
  }
}

void ShellBackend::on_reply(std::string_view verb, std::string_view id, std::string_view value) {
  if (verb == "READY") {
    if (auto done = std::exchange(on_ready_, nullptr)) {
      done(Status());
    }
    send_next();
    return;
  }
  if (!current_ || id != current_->id) {
    return;
  }
  auto r = std::exchange(current_, nullptr);
  r->watchdog->cancel();
  if (verb == "DONE" && r->kind == Request::Kind::run) {
    int code = -1;
    std::from_chars(value.data(), value.data() + value.size(), code);
    r->result.exit_code = code;
    r->result.duration = std::chrono::steady_clock::now() - r->started;
    r->result.timed_out = (code == 124 || code == 137) && r->result.duration >= r->timeout;
    r->on_run(Status(), std::move(r->result));
  } else if (verb == "RESET" && r->kind == Request::Kind::reset) {
    nonce_ = r->new_nonce;
    r->on_simple(Status());
  } else if (verb == "PONG" && r->kind == Request::Kind::ping) {
    r->on_simple(Status());
  } else {
    fail_all(Status(Code::internal, fmt::format("unexpected backend reply {}", verb)));
    return;
  }
  send_next();
}

void ShellBackend::fail_all(const Status& status) {
  const bool was_alive = alive_.exchange(false);
  if (was_alive && channel_) {
    channel_->close();
  }
  if (auto ready = std::exchange(on_ready_, nullptr)) {
    ready(status);
  }
  auto fail = [&status](const std::shared_ptr<Request>& r) {
    if (r->watchdog) {
      r->watchdog->cancel();
    }
    if (r->on_run) {
      r->on_run(status, std::move(r->result));
    } else if (r->on_simple) {
      r->on_simple(status);
    }
  };
  if (auto r = std::exchange(current_, nullptr)) {
    fail(r);
  }
  while (!queue_.empty()) {
    auto r = queue_.front();
    queue_.pop_front();
    fail(r);
  }
}

void prepare_workspace_root(const std::string& root) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("WORKSPACE_ROOT={}: cannot create it: {}", root, ec.message()));
  }
  ::chmod(root.c_str(), 0711);
}

Status make_workspace(const std::string& root, const std::string& name, int uid, int gid, std::string& path) {
  path = (std::filesystem::path(root) / name).string();
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
  if (::mkdir(path.c_str(), 0700) != 0 ||
      (uid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)) {
    return Status(Code::unavailable, fmt::format("cannot create workspace {}: {}", path, std::strerror(errno)));
  }
  return Status();
}

}  // namespace phasekit::backend
