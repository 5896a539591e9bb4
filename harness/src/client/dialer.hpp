#pragma once
// What the connections of one run share: the target, resolved once and checked; the local
// addresses to spread them over; the process's budget of open files their sockets draw on; and for
// a TLS target, the TLS context (CAs, verification) every connection's TLS stream is made from.
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "driver/driver.hpp"

namespace phasekit::load {

class Dialer {
 public:
  /// Resolves the target, checks it may be loaded, reads the source addresses, raises the open-file
  /// limit and, for a TLS target, loads the CAs. Throws std::runtime_error (see DriverFactory).
  explicit Dialer(ClientOptions options);
  Dialer(const Dialer&) = delete;
  Dialer& operator=(const Dialer&) = delete;

  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }
  [[nodiscard]] const boost::asio::ip::tcp::endpoint& endpoint() const noexcept { return endpoint_; }
  /// "host:port" (an IPv6 host in brackets), for the Host header.
  [[nodiscard]] const std::string& host_header() const noexcept { return host_header_; }

  /// Opens socket on the next source address, counted against the budget: nullopt when it is open,
  /// and the caller gives it back with release() once closed.
  std::optional<ConnError> open(boost::asio::ip::tcp::socket& socket);
  void release(std::int64_t sockets) { sockets_.fetch_sub(sockets); }

  /// The TLS context of an https:// or wss:// target, shared by its connections; nullptr without TLS.
  [[nodiscard]] boost::asio::ssl::context* tls_context() noexcept { return tls_ ? &*tls_ : nullptr; }
  /// Prepares a new connection's TLS state before its handshake: SNI when the host is a name, and
  /// unless insecure, the name or address the certificate must carry.
  void prepare_tls(SSL* ssl) const;
  /// Why a TLS handshake failed, in one line: for a refused certificate, OpenSSL's verify result
  /// (expired, unknown CA, name mismatch) and what to do about it.
  [[nodiscard]] std::string tls_failure(SSL* ssl, const boost::system::error_code& ec) const;

 private:
  ClientOptions options_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::string host_header_;
  std::vector<boost::asio::ip::address> sources_;
  std::atomic<std::uint64_t> next_source_{0};
  std::atomic<std::int64_t> sockets_{0};
  std::int64_t max_sockets_ = 1000;
  std::optional<boost::asio::ssl::context> tls_;
};

}  // namespace phasekit::load
