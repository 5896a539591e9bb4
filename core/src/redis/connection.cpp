#include "connection.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <new>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace phasekit::redis::detail {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

/// The client side of rediss://: TLS 1.2 or later; the server's chain verified against ssl_ca_certs (or
/// the system's CAs); a client certificate when the URL names one. "" when made, else why not.
std::string make_tls_context(const Endpoint& ep, std::optional<asio::ssl::context>& out) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                  ec);
  ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
  if (ep.tls_ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(ep.tls_ca_file, ec);
  }
  if (ec) {
    return fmt::format("cannot load the CA certificates {}: {}",
                       ep.tls_ca_file.empty() ? "of the system" : ep.tls_ca_file, ec.message());
  }
  if (!ep.tls_cert_file.empty()) {
    ctx.use_certificate_chain_file(ep.tls_cert_file, ec);
    if (ec) {
      return fmt::format("cannot load the client certificate {}: {}", ep.tls_cert_file, ec.message());
    }
    ctx.use_private_key_file(ep.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return fmt::format("cannot load the client key {}: {}", ep.tls_key_file, ec.message());
    }
  }
  out.emplace(std::move(ctx));
  return "";
}

}  // namespace

void encode_command(std::string& out, const std::vector<std::string>& argv) {
  thread_local std::vector<const char*> ptrs;
  thread_local std::vector<std::size_t> lens;
  ptrs.clear();
  lens.clear();
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  if (len < 0 || cmd == nullptr) {
    throw std::bad_alloc();
  }
  out.append(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
}

Connection::Connection(asio::any_io_executor ex, ClientOptions options, Logger& log, std::string_view role)
    : ex_(ex),
      strand_(asio::make_strand(ex)),
      options_(std::move(options)),
      log_(log),
      role_(role),
      where_(options_.endpoint.display()),
      socket_(strand_),
      resolver_(strand_),
      connect_timer_(strand_),
      backoff_timer_(strand_),
      rng_(std::random_device{}()),
      read_buf_(kReadChunk) {
  if (options_.endpoint.tls) {
    tls_setup_error_ = make_tls_context(options_.endpoint, tls_context_);
  }
}

Connection::~Connection() = default;

void Connection::start() {
  const std::lock_guard lock(mu_);
  if (state_ != State::idle) {
    return;
  }
  down_reason_ = "connecting";
  connect_locked();
}

void Connection::stop() {
  const std::lock_guard lock(mu_);
  if (state_ == State::stopped) {
    return;
  }
  const bool was_connected = connected_.exchange(false);
  state_ = State::stopped;
  ++gen_;
  close_transport_locked();
  resolver_.cancel();
  connect_timer_.cancel();
  backoff_timer_.cancel();
  out_.clear();
  write_in_flight_ = false;
  down_reason_ = "client stopped";
  on_down_locked(Status(Code::unavailable, "redis client stopped"));
  if (was_connected) {
    notify_locked(false);
  }
  log_.debug("redis client stopped", {{"redis", options_.name}, {"role", role_}, {"endpoint", where_}});
}

void Connection::on_state(std::function<void(bool)> listener) {
  const std::lock_guard lock(mu_);
  listeners_.push_back(std::make_shared<std::function<void(bool)>>(std::move(listener)));
}

void Connection::connect_locked() {
  ++gen_;
  state_ = State::connecting;
  endpoints_.clear();
  const auto gen = gen_;
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([self = self(), gen](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    const std::lock_guard lock(self->mu_);
    if (gen != self->gen_ || (self->state_ != State::connecting && self->state_ != State::handshaking)) {
      return;
    }
    self->fail_locked(Status(Code::unavailable, fmt::format("connecting to {} timed out after {} ms", self->where_,
                                                            self->options_.connect_timeout.count())));
  });

  if (!tls_setup_error_.empty()) {
    fail_locked(Status(Code::unavailable, fmt::format("TLS to {}: {}", where_, tls_setup_error_)));
    return;
  }
  const Endpoint& ep = options_.endpoint;
  if (ep.is_unix()) {
    endpoints_.emplace_back(asio::local::stream_protocol::endpoint(ep.unix_path));
    try_endpoint_locked(0);
    return;
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(ep.host, ec);
  if (!ec) {
    endpoints_.emplace_back(asio::ip::tcp::endpoint(address, ep.port));
    try_endpoint_locked(0);
    return;
  }
  resolver_.async_resolve(ep.host, std::to_string(ep.port),
                          [self = self(), gen](const boost::system::error_code& rec,
                                               const asio::ip::tcp::resolver::results_type& results) {
                            const std::lock_guard lock(self->mu_);
                            if (gen != self->gen_ || self->state_ != State::connecting) {
                              return;
                            }
                            if (rec || results.empty()) {
                              self->fail_locked(Status(Code::unavailable,
                                                       fmt::format("cannot resolve {}: {}", self->options_.endpoint.host,
                                                                   rec ? rec.message() : "no address")));
                              return;
                            }
                            for (const auto& entry : results) {
                              self->endpoints_.emplace_back(entry.endpoint());
                            }
                            self->try_endpoint_locked(0);
                          });
}

void Connection::try_endpoint_locked(std::size_t index) {
  close_transport_locked();
  const auto gen = gen_;
  socket_.async_connect(endpoints_[index], [self = self(), gen, index](const boost::system::error_code& ec) {
    const std::lock_guard lock(self->mu_);
    if (gen != self->gen_ || self->state_ != State::connecting) {
      return;
    }
    if (ec) {
      if (index + 1 < self->endpoints_.size()) {
        self->try_endpoint_locked(index + 1);
        return;
      }
      self->fail_locked(
          Status(Code::unavailable, fmt::format("cannot connect to {}: {}", self->where_, ec.message())));
      return;
    }
    boost::system::error_code ignored;
    if (!self->options_.endpoint.is_unix()) {
      self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
    self->socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    if (self->options_.endpoint.tls) {
      self->start_tls_locked();
    } else {
      self->on_transport_connected_locked();
    }
  });
}

void Connection::start_tls_locked() {
  // On the strand (the connect's handler): every operation on the stream runs there, as an SSL stream
  // needs — its reads and writes share one engine.
  auto tls = std::make_shared<TlsStream>(std::move(socket_), *tls_context_);
  tls_ = tls;
  const std::string& host = options_.endpoint.host;
  boost::system::error_code not_an_address;
  asio::ip::make_address(host, not_an_address);
  if (not_an_address) {
    SSL_set_tlsext_host_name(tls->native_handle(), host.c_str());  // SNI: names only (RFC 6066)
  }
  // The certificate must name the host of the URL (its DNS name, or its IP address).
  tls->set_verify_callback(asio::ssl::host_name_verification(host));
  const auto gen = gen_;
  tls->async_handshake(asio::ssl::stream_base::client, [self = self(), gen, tls](const boost::system::error_code& ec) {
    const std::lock_guard lock(self->mu_);
    if (gen != self->gen_ || self->state_ != State::connecting) {
      return;
    }
    if (ec) {
      self->fail_locked(
          Status(Code::unavailable, fmt::format("TLS handshake with {} failed: {}", self->where_, ec.message())));
      return;
    }
    self->on_transport_connected_locked();
  });
}

void Connection::close_transport_locked() {
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (tls_) {
    tls_->next_layer().close(ignored);  // operations still on it end with operation_aborted
    tls_.reset();
  }
}

void Connection::on_transport_connected_locked() {
  reader_ = std::make_unique<ReplyReader>();
  state_ = State::handshaking;

  const Endpoint& ep = options_.endpoint;
  std::string hello;
  handshake_left_ = 0;
  if (!ep.password.empty()) {
    if (ep.user.empty()) {
      encode_command(hello, {"AUTH", ep.password.reveal()});
    } else {
      encode_command(hello, {"AUTH", ep.user, ep.password.reveal()});
    }
    ++handshake_left_;
  }
  if (ep.db != 0) {
    encode_command(hello, {"SELECT", std::to_string(ep.db)});
    ++handshake_left_;
  }
  if (!options_.name.empty()) {
    encode_command(hello, {"CLIENT", "SETNAME", options_.name});
    ++handshake_left_;
  }
  if (handshake_left_ == 0) {  // still prove that the peer speaks RESP before calling it connected
    encode_command(hello, {"PING"});
    ++handshake_left_;
  }
  write_locked(hello);
  start_read_locked();
}

void Connection::write_locked(std::string_view encoded) {
  out_.append(encoded);
  start_write_locked();
}

void Connection::start_write_locked() {
  if (write_in_flight_ || out_.empty() || (state_ != State::handshaking && state_ != State::ready)) {
    return;
  }
  // The buffer belongs to the operation: a close (stop(), timeout) cannot free it under a write.
  auto buffer = std::make_shared<std::string>();
  buffer->swap(out_);
  write_in_flight_ = true;
  const auto gen = gen_;
  auto on_written = [self = self(), gen, buffer](const boost::system::error_code& ec, std::size_t) {
                      const std::lock_guard lock(self->mu_);
                      if (gen != self->gen_) {
                        return;
                      }
                      self->write_in_flight_ = false;
                      if (ec) {
                        self->fail_locked(Status(Code::unavailable,
                                                 fmt::format("writing to {} failed: {}", self->where_, ec.message())));
                        return;
                      }
                      self->start_write_locked();
  };
  if (tls_) {
    // Commands are written from any thread; an SSL stream is used from its strand only.
    asio::dispatch(strand_, [tls = tls_, buffer, on_written = std::move(on_written)]() mutable {
      asio::async_write(*tls, asio::buffer(*buffer),
                        [tls, on_written = std::move(on_written)](const boost::system::error_code& ec,
                                                                  std::size_t n) mutable { on_written(ec, n); });
    });
    return;
  }
  asio::async_write(socket_, asio::buffer(*buffer), std::move(on_written));
}

void Connection::start_read_locked() {
  const auto gen = gen_;
  if (tls_) {
    asio::dispatch(strand_, [self = self(), gen, tls = tls_] {
      tls->async_read_some(asio::buffer(self->read_buf_),
                           [self, gen, tls](const boost::system::error_code& ec, std::size_t n) {
                             self->on_read(gen, ec, n);
                           });
    });
    return;
  }
  socket_.async_read_some(asio::buffer(read_buf_),
                          [self = self(), gen](const boost::system::error_code& ec, std::size_t n) {
                            self->on_read(gen, ec, n);
                          });
}

void Connection::on_read(std::uint64_t gen, const boost::system::error_code& ec, std::size_t n) {
  const std::lock_guard lock(mu_);
  if (gen != gen_) {
    return;
  }
  if (ec) {
    fail_locked(Status(Code::unavailable, ec == asio::error::eof
                                              ? fmt::format("{} closed the connection", where_)
                                              : fmt::format("connection to {} lost: {}", where_, ec.message())));
    return;
  }
  auto protocol_error = [&](std::string_view what) {
    log_.error("redis protocol error, closing the connection",
               {{"redis", options_.name}, {"role", role_}, {"endpoint", where_}, {"error", what}});
    fail_locked(Status(Code::unavailable, fmt::format("redis protocol error from {}: {}", where_, what)));
  };
  if (Status fed = reader_->feed(std::string_view(read_buf_.data(), n)); !fed) {
    protocol_error(fed.message());
    return;
  }
  for (;;) {
    std::optional<Reply> reply;
    if (Status parsed = reader_->next(reply); !parsed) {
      protocol_error(parsed.message());
      return;
    }
    if (!reply) {
      break;
    }
    handle_reply_locked(std::move(*reply));
    if (gen != gen_) {
      return;  // the reply closed the connection (handshake refused, unexpected reply …)
    }
  }
  if (reader_->over_buffer_limit()) {
    protocol_error(fmt::format("a reply over {} bytes", kMaxBulkBytes));
    return;
  }
  start_read_locked();
}

void Connection::handle_reply_locked(Reply reply) {
  if (state_ == State::handshaking) {
    if (reply.is_error()) {
      // The server's text ("WRONGPASS invalid username-password pair …") never contains the password.
      Status refused(Code::unavailable, fmt::format("redis at {} refused the handshake: {}", where_, reply.str()));
      log_.log(refused.message() == down_reason_ ? LogLevel::debug : LogLevel::error, "redis handshake refused",
               {{"redis", options_.name}, {"role", role_}, {"endpoint", where_}, {"error", reply.str()}});
      fail_locked(refused);
      return;
    }
    if (--handshake_left_ > 0) {
      return;
    }
    state_ = State::ready;
    connect_timer_.cancel();
    attempt_ = 0;
    log_.info("redis connected", {{"redis", options_.name}, {"role", role_}, {"endpoint", where_}});
    on_ready_locked();
    return;
  }
  on_reply_locked(std::move(reply));
}

void Connection::fail_locked(const Status& why) {
  if (state_ == State::stopped || state_ == State::backoff || state_ == State::idle) {
    return;
  }
  const bool was_connected = connected_.exchange(false);
  ++gen_;
  close_transport_locked();
  resolver_.cancel();
  connect_timer_.cancel();
  out_.clear();
  write_in_flight_ = false;
  handshake_left_ = 0;
  state_ = State::backoff;
  // While redis stays down the same failure repeats every backoff period: warn once, then debug.
  const bool repeated = !was_connected && why.message() == down_reason_;
  down_reason_ = why.message();
  const auto delay = next_backoff_locked();
  log_.log(repeated ? LogLevel::debug : LogLevel::warn, was_connected ? "redis connection lost" : "redis connect failed",
           {{"redis", options_.name},
            {"role", role_},
            {"endpoint", where_},
            {"error", why.message()},
            {"retry_in_ms", static_cast<long long>(delay.count())}});
  on_down_locked(why);
  if (was_connected) {
    notify_locked(false);
  }
  const auto gen = gen_;
  backoff_timer_.expires_after(delay);
  backoff_timer_.async_wait([self = self(), gen](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    const std::lock_guard lock(self->mu_);
    if (gen != self->gen_ || self->state_ != State::backoff) {
      return;
    }
    self->connect_locked();
  });
}

std::chrono::milliseconds Connection::next_backoff_locked() {
  // Full jitter (AWS architecture blog): uniform in [0, min(max, initial * 2^attempt)].
  const auto initial = std::max<long long>(1, options_.backoff_initial.count());
  const auto cap_max = std::max<long long>(initial, options_.backoff_max.count());
  const long long cap = std::min<long long>(cap_max, initial << std::min(attempt_, 30));
  attempt_ = std::min(attempt_ + 1, 31);
  std::uniform_int_distribution<long long> pick(0, cap);
  return std::chrono::milliseconds(pick(rng_));
}

void Connection::set_connected_locked() {
  connected_.store(true, std::memory_order_release);
  down_reason_.clear();
  notify_locked(true);
}

void Connection::notify_locked(bool up) {
  for (const auto& listener : listeners_) {
    post([listener, up] { (*listener)(up); });
  }
}

std::string Connection::not_connected_message_locked() const {
  if (state_ == State::stopped) {
    return "redis client stopped";
  }
  if (state_ == State::idle) {
    return "redis not connected: client not started";
  }
  return "redis not connected: " + (down_reason_.empty() ? std::string("connecting") : down_reason_);
}

}  // namespace phasekit::redis::detail
