#include "client/dialer.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/resource.h>

#include <algorithm>
#include <stdexcept>

namespace phasekit::load {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

std::int64_t raise_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return 1000;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<std::int64_t>(lim.rlim_cur) - 64;  // for the process's own files
}

/// The client side of a TLS target: TLS 1.2 or later; the peer's chain verified against ca_file, or
/// the system's CAs (/etc/ssl/certs), unless insecure.
asio::ssl::context make_tls_context(const ClientOptions& o) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                  ec);
  ctx.set_verify_mode(o.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer, ec);
  if (o.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(o.ca_file, ec);
  }
  if (ec) {
    throw std::runtime_error(fmt::format("target {}: cannot load the CA certificates {}: {}", o.target.url(),
                                         o.ca_file.empty() ? "of the system" : o.ca_file, ec.message()));
  }
  return ctx;
}

/// What a refused certificate's verify result means, in the words a person searches for.
std::string_view verify_reason(long result) {
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "unknown CA";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return "name mismatch";
    default: return "";  // OpenSSL's own words say it
  }
}

}  // namespace

Dialer::Dialer(ClientOptions options) : options_(std::move(options)) {
  const Target& target = options_.target;
  {
    asio::io_context resolver_ioc;
    tcp::resolver resolver(resolver_ioc);
    boost::system::error_code ec;
    std::vector<tcp::endpoint> endpoints;
    for (const auto& entry : resolver.resolve(target.host, target.port, ec)) {
      endpoints.push_back(entry.endpoint());
    }
    if (ec || endpoints.empty()) {
      throw std::runtime_error(
          fmt::format("target {}: cannot resolve {} ({})", target.url(), target.host, ec.message()));
    }
    // Prefer IPv4 for localhost, as the servers we test listen there.
    std::stable_partition(endpoints.begin(), endpoints.end(),
                          [](const tcp::endpoint& e) { return e.address().is_v4(); });
    endpoint_ = endpoints.front();
  }
  const asio::ip::address address = endpoint_.address();
  const bool loopback = address.is_loopback() || (address.is_v6() && address.to_v6().is_v4_mapped() &&
                                                  asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback());
  if (!loopback && !options_.allow_remote) {
    throw std::runtime_error(fmt::format(
        "target {} is {}, not a loopback address; pass --allow-remote to send load to another machine",
        target.url(), address.to_string()));
  }
  for (const std::string& s : options_.source_addresses) {
    boost::system::error_code ec;
    sources_.push_back(asio::ip::make_address(s, ec));
    if (ec) {
      throw std::runtime_error(fmt::format("--source-addresses: \"{}\" is not an IP address", s));
    }
  }
  if (sources_.empty() && options_.auto_source_addresses && address.is_v4() && address.is_loopback()) {
    // Each source address has its own 28k ephemeral ports towards the target.
    for (unsigned i = 1; i <= 8; ++i) {
      sources_.push_back(asio::ip::make_address_v4((127u << 24) | i));
    }
  }
  if (target.tls) {
    tls_.emplace(make_tls_context(options_));
  }
  max_sockets_ = raise_file_limit();
  const std::string host = target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host;
  host_header_ = fmt::format("{}:{}", host, target.port);
}

std::optional<ConnError> Dialer::open(tcp::socket& socket) {
  if (sockets_.fetch_add(1) >= max_sockets_) {
    sockets_.fetch_sub(1);
    return ConnError{ConnErrc::sockets_exhausted, "the open-file limit of this process is reached"};
  }
  boost::system::error_code ec;
  socket.open(endpoint_.protocol(), ec);
  if (!ec && !sources_.empty()) {
    const int one = 1;
    ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const auto& source = sources_[next_source_.fetch_add(1) % sources_.size()];
    socket.bind(tcp::endpoint(source, 0), ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    socket.close(ignored);
    sockets_.fetch_sub(1);
    return ConnError{ConnErrc::connect_failed, ec.message()};
  }
  return std::nullopt;
}

void Dialer::prepare_tls(SSL* ssl) const {
  const std::string& host = options_.target.host;
  boost::system::error_code not_an_address;
  asio::ip::make_address(host, not_an_address);
  if (not_an_address) {
    // SNI carries names only (RFC 6066). SSL_set_tlsext_host_name without the macro's C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str()));
  }
  if (options_.insecure) {
    return;
  }
  // OpenSSL checks the name itself during the handshake, so a mismatch is its verify result.
  if (not_an_address) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  }
}

std::string Dialer::tls_failure(SSL* ssl, const boost::system::error_code& ec) const {
  const long result = options_.insecure ? X509_V_OK : SSL_get_verify_result(ssl);
  if (result == X509_V_OK) {
    return fmt::format("TLS handshake with {}: {}", host_header_, ec.message());
  }
  const std::string_view reason = verify_reason(result);
  std::string hint;
  if (reason == "unknown CA") {
    hint = options_.ca_file.empty() ? "; pass --ca FILE with the CA that signed it (or --insecure)"
                                    : fmt::format("; it does not chain to a CA of {}", options_.ca_file);
  } else if (reason == "name mismatch") {
    hint = fmt::format("; it does not name {}", options_.target.host);
  }
  const char* openssl = X509_verify_cert_error_string(result);
  if (reason.empty()) {
    return fmt::format("TLS handshake with {}: certificate refused: {}", host_header_, openssl);
  }
  return fmt::format("TLS handshake with {}: certificate refused: {} ({}){}", host_header_, reason, openssl, hint);
}

}  // namespace phasekit::load
