#include "phasekit/net/connection_limits.hpp"

namespace phasekit::net {

struct LimitsState {
  std::mutex mutex;
  std::size_t max_total = 0;
  std::size_t max_per_address = 0;
  std::size_t total = 0;
  std::map<std::array<std::uint8_t, 16>, std::size_t> per_address;
};

namespace {

/// IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64.
std::array<std::uint8_t, 16> key_of(const boost::asio::ip::address& address) {
  boost::asio::ip::address_v6 v6;
  if (address.is_v4()) {
    v6 = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4());
  } else {
    v6 = address.to_v6();
  }
  std::array<std::uint8_t, 16> key = v6.to_bytes();
  if (!v6.is_v4_mapped()) {
    for (std::size_t i = 8; i < key.size(); ++i) {
      key[i] = 0;
    }
  }
  return key;
}

}  // namespace

ConnectionLimits::ConnectionLimits(std::size_t max_total, std::size_t max_per_address)
    : state_(std::make_shared<LimitsState>()) {
  state_->max_total = max_total;
  state_->max_per_address = max_per_address;
}

Admission ConnectionLimits::admit(const boost::asio::ip::address& address, Ticket& ticket) {
  ticket.release();
  const auto key = key_of(address);
  const std::lock_guard lock(state_->mutex);
  if (state_->max_total != 0 && state_->total >= state_->max_total) {
    return Admission::total_full;
  }
  std::size_t& mine = state_->per_address[key];
  if (state_->max_per_address != 0 && mine >= state_->max_per_address) {
    return Admission::address_full;  // mine > 0 here: the entry was there before
  }
  ++mine;
  ++state_->total;
  ticket.state_ = state_;
  ticket.key_ = key;
  return Admission::admitted;
}

std::size_t ConnectionLimits::total() const {
  const std::lock_guard lock(state_->mutex);
  return state_->total;
}

std::size_t ConnectionLimits::from(const boost::asio::ip::address& address) const {
  const std::lock_guard lock(state_->mutex);
  const auto it = state_->per_address.find(key_of(address));
  return it == state_->per_address.end() ? 0 : it->second;
}

ConnectionLimits::Ticket& ConnectionLimits::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    key_ = other.key_;
  }
  return *this;
}

void ConnectionLimits::Ticket::release() noexcept {
  if (!state_) {
    return;
  }
  {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->per_address.find(key_);
    if (it != state_->per_address.end() && --it->second == 0) {
      state_->per_address.erase(it);  // the map holds only addresses with something open
    }
    --state_->total;
  }
  state_.reset();
}

const char* admission_label(Admission a) noexcept {
  switch (a) {
    case Admission::admitted: return "admitted";
    case Admission::total_full: return "max_connections";
    case Admission::address_full: return "max_connections_per_address";
  }
  return "unknown";
}

namespace {

Counter& refused_counter(Metrics& metrics, std::string_view kind, Admission reason) {
  const std::array<Label, 2> labels{{{"kind", kind}, {"reason", admission_label(reason)}}};
  return metrics.counter("phasekit_connections_refused_total",
                         "TCP connections (closed at accept) and Engine.IO handshakes (503) refused by "
                         "MAX_CONNECTIONS or MAX_CONNECTIONS_PER_ADDRESS.",
                         labels);
}

}  // namespace

CountedLimits::CountedLimits(std::string_view kind, std::size_t max_total, std::size_t max_per_address,
                             Metrics& metrics)
    : limits_(max_total, max_per_address),
      refused_total_(refused_counter(metrics, kind, Admission::total_full)),
      refused_address_(refused_counter(metrics, kind, Admission::address_full)) {}

Admission CountedLimits::admit(const boost::asio::ip::address& address, ConnectionLimits::Ticket& ticket) {
  const Admission admission = limits_.admit(address, ticket);
  if (admission == Admission::total_full) {
    refused_total_.inc();
  } else if (admission == Admission::address_full) {
    refused_address_.inc();
  }
  return admission;
}

}  // namespace phasekit::net
