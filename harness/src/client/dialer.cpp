#include "client/dialer.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
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

}  // namespace phasekit::load
