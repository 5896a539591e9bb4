#pragma once
// How many of something (TCP connections, Engine.IO sessions) the server holds at once, in all and
// per client address (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS). A place is a Ticket: it is
// given back when the ticket is released or destroyed, on any thread, even after the limits object
// itself is gone (tickets share its state).
//
// An IPv6 client is counted by its /64: one host usually holds a whole /64, and counting single
// addresses would give it 2^64 quotas. An IPv4-mapped IPv6 address counts as its IPv4 address.
#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "phasekit/plugin/metrics.hpp"

namespace phasekit::net {

struct LimitsState;

enum class Admission : std::uint8_t {
  admitted,
  total_full,        // the limit in all is reached
  address_full,      // the limit of this client address is reached
};

class ConnectionLimits {
 public:
  /// 0 means no limit.
  ConnectionLimits(std::size_t max_total, std::size_t max_per_address);

  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }

    /// Gives the place back (once; later calls do nothing).
    void release() noexcept;
    [[nodiscard]] bool held() const noexcept { return state_ != nullptr; }

   private:
    friend class ConnectionLimits;
    std::shared_ptr<LimitsState> state_;
    std::array<std::uint8_t, 16> key_{};
  };

  /// A place for one more from `address`, when both limits allow it (the ticket is held only then).
  Admission admit(const boost::asio::ip::address& address, Ticket& ticket);

  [[nodiscard]] std::size_t total() const;
  [[nodiscard]] std::size_t from(const boost::asio::ip::address& address) const;

 private:
  std::shared_ptr<LimitsState> state_;
};

/// "total_full" → "max_connections", "address_full" → "max_connections_per_address" (metric labels).
const char* admission_label(Admission a) noexcept;

/// ConnectionLimits that count their refusals in phasekit_connections_refused_total{kind, reason}.
class CountedLimits {
 public:
  /// `kind`: "tcp" or "session" (a string literal: the metric keeps the view).
  CountedLimits(std::string_view kind, std::size_t max_total, std::size_t max_per_address, Metrics& metrics);

  Admission admit(const boost::asio::ip::address& address, ConnectionLimits::Ticket& ticket);
  [[nodiscard]] std::size_t total() const { return limits_.total(); }

 private:
  ConnectionLimits limits_;
  Counter& refused_total_;
  Counter& refused_address_;
};

}  // namespace phasekit::net
