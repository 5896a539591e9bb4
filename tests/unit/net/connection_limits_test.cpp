// MAX_CONNECTIONS and MAX_CONNECTIONS_PER_ADDRESS as counted by net::ConnectionLimits.
#include "phasekit/net/connection_limits.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace phasekit::net {
namespace {

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

TEST(ConnectionLimits, RefusesPastTheLimitOfAnAddressButNotOtherAddresses) {
  ConnectionLimits limits(100, 2);
  ConnectionLimits::Ticket a1, a2, a3, b1;
  EXPECT_EQ(limits.admit(ip("10.0.0.1"), a1), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("10.0.0.1"), a2), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("10.0.0.1"), a3), Admission::address_full);
  EXPECT_FALSE(a3.held());
  EXPECT_EQ(limits.admit(ip("10.0.0.2"), b1), Admission::admitted);
  EXPECT_EQ(limits.from(ip("10.0.0.1")), 2u);
  EXPECT_EQ(limits.total(), 3u);
}

TEST(ConnectionLimits, RefusesPastTheTotalAndAdmitsAgainOnceAPlaceIsGivenBack) {
  ConnectionLimits limits(2, 0);
  ConnectionLimits::Ticket t1, t2, t3;
  EXPECT_EQ(limits.admit(ip("10.0.0.1"), t1), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("10.0.0.2"), t2), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("10.0.0.3"), t3), Admission::total_full);
  t1.release();
  t1.release();  // twice gives back one place only
  EXPECT_EQ(limits.total(), 1u);
  EXPECT_EQ(limits.admit(ip("10.0.0.3"), t3), Admission::admitted);
}

TEST(ConnectionLimits, ATicketGivesItsPlaceBackWhenDestroyedOrMovedOver) {
  ConnectionLimits limits(10, 1);
  {
    ConnectionLimits::Ticket t;
    ASSERT_EQ(limits.admit(ip("10.0.0.1"), t), Admission::admitted);
    ConnectionLimits::Ticket moved = std::move(t);
    EXPECT_EQ(limits.total(), 1u);
    moved = ConnectionLimits::Ticket();
    EXPECT_EQ(limits.total(), 0u);
    ASSERT_EQ(limits.admit(ip("10.0.0.1"), t), Admission::admitted);
  }
  EXPECT_EQ(limits.total(), 0u);
  EXPECT_EQ(limits.from(ip("10.0.0.1")), 0u);
}

TEST(ConnectionLimits, ATicketMayOutliveItsLimits) {
  ConnectionLimits::Ticket t;
  {
    ConnectionLimits limits(10, 10);
    ASSERT_EQ(limits.admit(ip("10.0.0.1"), t), Admission::admitted);
  }
  t.release();  // no use after free (ASan would say)
  EXPECT_FALSE(t.held());
}

TEST(ConnectionLimits, AnIpv6ClientIsCountedByItsSlash64) {
  ConnectionLimits limits(100, 2);
  ConnectionLimits::Ticket t1, t2, t3, other;
  EXPECT_EQ(limits.admit(ip("2001:db8:1:2::1"), t1), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("2001:db8:1:2:ffff::9"), t2), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("2001:db8:1:2:1234:5678:9abc:def0"), t3), Admission::address_full);
  EXPECT_EQ(limits.admit(ip("2001:db8:1:3::1"), other), Admission::admitted);
}

TEST(ConnectionLimits, AMappedIpv4AddressIsThatIpv4Address) {
  ConnectionLimits limits(100, 1);
  ConnectionLimits::Ticket t1, t2, t3;
  EXPECT_EQ(limits.admit(ip("192.0.2.7"), t1), Admission::admitted);
  EXPECT_EQ(limits.admit(ip("::ffff:192.0.2.7"), t2), Admission::address_full);
  EXPECT_EQ(limits.admit(ip("::ffff:192.0.2.8"), t3), Admission::admitted) << "not cut to a /64";
}

TEST(ConnectionLimits, ZeroPerAddressMeansNoLimitThere) {
  ConnectionLimits limits(1000, 0);
  std::vector<ConnectionLimits::Ticket> tickets(500);
  for (auto& t : tickets) {
    ASSERT_EQ(limits.admit(ip("127.0.0.1"), t), Admission::admitted);
  }
}

TEST(ConnectionLimits, CountsStayExactUnderConcurrentAdmitsAndReleases) {
  ConnectionLimits limits(1000000, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&limits, i] {
      const auto address = ip(i % 2 == 0 ? "10.0.0.1" : "10.0.0.2");
      for (int n = 0; n < 10000; ++n) {
        ConnectionLimits::Ticket t;
        ASSERT_EQ(limits.admit(address, t), Admission::admitted);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(limits.total(), 0u);
  EXPECT_EQ(limits.from(ip("10.0.0.1")), 0u);
}

}  // namespace
}  // namespace phasekit::net
