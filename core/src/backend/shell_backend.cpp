#include "phasekit/backend/shell_backend.hpp"

#include <fcntl.h>

#include "phasekit/backend/fd.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace phasekit::backend {
namespace {

constexpr std::chrono::seconds kWatchdogSlack{5};
constexpr std::chrono::seconds kStartTimeout{10};
constexpr std::chrono::seconds kResetTimeout{20};
constexpr std::chrono::seconds kPingTimeout{5};
constexpr std::size_t kReadChunk = 65536;

}  // namespace

struct ShellBackend::Request {
  enum class Kind { run, ping, reset } kind = Kind::run;
  std::string command;
  std::chrono::milliseconds timeout{0};
  std::size_t max_output = 0;
  OutputChunk on_chunk;
  RunDone on_run;
  std::function<void(Status)> on_simple;
  RunResult result;
  std::chrono::steady_clock::time_point started;
  std::unique_ptr<boost::asio::steady_timer> watchdog;
};

ShellBackend::ShellBackend(Strand strand, std::string id, std::string workspace)
    : strand_(std::move(strand)), id_(std::move(id)), workspace_(std::move(workspace)) {}

ShellBackend::~ShellBackend() {
  if (channel_) {
    channel_->close();
  }
}

void ShellBackend::start(std::unique_ptr<SupervisorChannel> channel, std::function<void(Status)> done) {
  channel_ = std::move(channel);
  alive_ = true;
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    self->on_ready_ = std::move(done);
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
  if (command.size() > wire::kMaxPayload - 64) {
    boost::asio::post(strand_, [done = std::move(done)] {
      done(Status(Code::bad_request, fmt::format("a command line is limited to {} bytes", wire::kMaxPayload - 64)),
           RunResult{});
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
  r->timeout = kResetTimeout;
  enqueue(std::move(r));
}

void ShellBackend::ping(std::function<void(Status)> done) {
  auto r = std::make_shared<Request>();
  r->kind = Request::Kind::ping;
  r->on_simple = std::move(done);
  r->timeout = kPingTimeout;
  enqueue(std::move(r));
}

void ShellBackend::snapshot(std::function<void(ShellSnapshot)> done) {
  boost::asio::post(strand_, [self = shared_from_this(), done = std::move(done)] { done(self->snapshot_); });
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
  r.started = std::chrono::steady_clock::now();
  auto message = std::make_shared<std::string>();
  switch (r.kind) {
    case Request::Kind::run: {
      const wire::RunRequest request{
          static_cast<std::uint32_t>(std::clamp<std::int64_t>(r.timeout.count(), 1, 0x7fffffff)),
          static_cast<std::uint32_t>(std::min<std::size_t>(r.max_output, 0xffffffffU)), std::move(r.command)};
      wire::append_frame(*message, wire::FrameType::run, wire::encode_run(request));
      break;
    }
    case Request::Kind::ping: wire::append_frame(*message, wire::FrameType::ping, {}); break;
    case Request::Kind::reset: wire::append_frame(*message, wire::FrameType::reset, {}); break;
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
  read_buffer_.resize(kReadChunk);
  channel_->async_read_some(boost::asio::buffer(read_buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              if (ec) {
                                self->fail_all(Status(Code::unavailable, "backend exited"));
                                return;
                              }
                              self->on_bytes(std::string_view(self->read_buffer_.data(), n));
                              if (self->alive_) {
                                self->read_loop();
                              }
                            });
}

void ShellBackend::on_bytes(std::string_view bytes) {
  reader_.feed(bytes);
  wire::FrameType type{};
  std::string_view payload;
  for (;;) {
    switch (reader_.next(type, payload)) {
      case wire::FrameReader::Result::need_more: return;
      case wire::FrameReader::Result::error:
        fail_all(Status(Code::internal, "backend spoke out of protocol: " + reader_.error()));
        return;
      case wire::FrameReader::Result::frame:
        on_frame(type, payload);
        if (!alive_) {
          return;
        }
        break;
    }
  }
}

void ShellBackend::on_frame(wire::FrameType type, std::string_view payload) {
  using wire::FrameType;
  switch (type) {
    case FrameType::ready:
      if (auto done = std::exchange(on_ready_, nullptr)) {
        done(Status());
      }
      send_next();
      return;
    case FrameType::fatal: {
      std::string why(payload.substr(0, 300));
      std::replace(why.begin(), why.end(), '\n', ' ');
      fail_all(Status(Code::unavailable, "backend failed: " + why));
      return;
    }
    case FrameType::output:
      if (current_ && current_->kind == Request::Kind::run) {
        RunResult& res = current_->result;
        const std::size_t room =
            current_->max_output > res.output.size() ? current_->max_output - res.output.size() : 0;
        const std::string_view kept = payload.substr(0, std::min(room, payload.size()));
        res.truncated = res.truncated || kept.size() < payload.size();
        if (!kept.empty()) {
          res.output.append(kept);
          if (current_->on_chunk) {
            current_->on_chunk(kept);
          }
        }
      }
      return;
    case FrameType::done: {
      wire::RunDone done;
      if (!current_ || current_->kind != Request::Kind::run || !wire::decode_done(payload, done)) {
        fail_all(Status(Code::internal, "backend sent an unexpected or malformed DONE"));
        return;
      }
      RunResult& res = current_->result;
      res.exit_code = done.exit_code;
      res.output_bytes = done.output_bytes;
      res.timed_out = (done.flags & wire::kTimedOut) != 0;
      res.truncated = res.truncated || (done.flags & wire::kTruncated) != 0;
      res.shell_restarted = (done.flags & wire::kShellRestarted) != 0;
      res.direct = (done.flags & wire::kDirect) != 0;
      res.limit = (done.flags & wire::kMemoryLimit) != 0    ? LimitHit::memory
                  : (done.flags & wire::kProcessLimit) != 0 ? LimitHit::processes
                                                            : LimitHit::none;
      if (res.limit != LimitHit::none) {
        spent_ = true;
      }
      if ((done.flags & wire::kState) != 0) {
        snapshot_ = ShellSnapshot{true, std::move(done.cwd), std::move(done.exports)};
      }
      complete(FrameType::done);
      return;
    }
    case FrameType::reset_done:
      snapshot_ = ShellSnapshot{};
      complete(FrameType::reset_done);
      return;
    case FrameType::pong: complete(FrameType::pong); return;
    default: fail_all(Status(Code::internal, "backend sent a request frame")); return;
  }
}

void ShellBackend::complete(wire::FrameType got) {
  const Request::Kind expected = got == wire::FrameType::done         ? Request::Kind::run
                                 : got == wire::FrameType::reset_done ? Request::Kind::reset
                                                                      : Request::Kind::ping;
  if (!current_ || current_->kind != expected) {
    fail_all(Status(Code::internal, fmt::format("unexpected backend reply {}", wire::type_name(got))));
    return;
  }
  auto r = std::exchange(current_, nullptr);
  r->watchdog->cancel();
  if (r->kind == Request::Kind::run) {
    r->result.duration = std::chrono::steady_clock::now() - r->started;
    r->on_run(Status(), std::move(r->result));
  } else {
    r->on_simple(Status());
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

void ShellDriver::reset(plugin::BackendPtr backend, std::function<void(Status)> done) noexcept {
  auto shell = std::static_pointer_cast<ShellBackend>(backend);
  if (shell->spent()) {
    boost::asio::post(shell->strand(), [done = std::move(done)] {
      done(Status(Code::unavailable, "the backend ran into a limit: it is replaced, not reused"));
    });
    return;
  }
  shell->reset(std::move(done));
}

namespace {

/// WORKSPACE_ROOT may be written by this process alone: whoever else could would swap a workspace for a
/// symlink to anywhere, and this process (often root) would read and write there for the user.
Status check_trusted_root(int fd, const std::string& root) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status(Code::unavailable, fmt::format("WORKSPACE_ROOT={}: {}", root, std::strerror(errno)));
  }
  if (st.st_uid != ::geteuid()) {
    return Status(Code::unavailable,
                  fmt::format("WORKSPACE_ROOT={}: owned by uid {}, not by this process (uid {}); expected a folder "
                              "of this user's that no other user can write",
                              root, st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status(Code::unavailable,
                  fmt::format("WORKSPACE_ROOT={}: writable by group or others (mode {:o}); expected chmod go-w", root,
                              st.st_mode & 07777));
  }
  return Status();
}

/// WORKSPACE_ROOT itself, not a symlink to it, checked by check_trusted_root.
Status open_trusted_root(const std::string& root, Fd& out) {
  Fd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) {
    return Status(Code::unavailable, fmt::format("WORKSPACE_ROOT={}: cannot open it as a folder (symlinks are "
                                                 "refused): {}",
                                                 root, std::strerror(errno)));
  }
  if (Status s = check_trusted_root(fd.get(), root); !s.ok()) {
    return s;
  }
  out = std::move(fd);
  return Status();
}

}  // namespace

void prepare_workspace_root(const std::string& root) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("WORKSPACE_ROOT={}: cannot create it: {}", root, ec.message()));
  }
  Fd fd;
  if (Status s = open_trusted_root(root, fd); !s.ok()) {
    throw std::runtime_error(s.message());
  }
  ::fchmod(fd.get(), 0711);
}

Status make_workspace(const std::string& root, const std::string& name, int uid, int gid, std::string& path) {
  path = (std::filesystem::path(root) / name).string();
  Fd dir;
  if (Status s = open_trusted_root(root, dir); !s.ok()) {
    return s;
  }
  // Whatever has the name goes first; a symlink is removed, never followed.
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
  if (::mkdirat(dir.get(), name.c_str(), 0700) != 0) {
    return Status(Code::unavailable, fmt::format("cannot create workspace {}: {}", path, std::strerror(errno)));
  }
  const Fd ws(::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!ws.ok() || (uid >= 0 && ::fchown(ws.get(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)) {
    return Status(Code::unavailable, fmt::format("cannot create workspace {}: {}", path, std::strerror(errno)));
  }
  return Status();
}

}  // namespace phasekit::backend
