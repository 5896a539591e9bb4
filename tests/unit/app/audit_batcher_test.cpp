// AuditBatcher: records that come while a write of the audit log is in flight go together in the next
// write; each caller hears once, with the status of the write that carried its record. And records
// deferred while the store is away are written once it is back, within a bound.
#include "phasekit/app/audit_batcher.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"

namespace phasekit::app {
namespace {

/// A store whose audit writes complete only when the test says so.
class HeldStore final : public plugin::StoreStrategy {
 public:
  [[nodiscard]] bool shared() const noexcept override { return false; }
  [[nodiscard]] bool reachable() const noexcept override { return true; }
  void put_session(plugin::SessionRecord, std::function<void(Status)>) noexcept override {}
  void update_session(std::string, plugin::SessionUpdate, std::function<void(Status)>) noexcept override {}
  void get_session(std::string, std::function<void(Status, plugin::SessionRecord)>) noexcept override {}
  void remove_session(std::string, std::function<void(Status)>) noexcept override {}
  void append_conversation(std::string, std::string, std::function<void(Status)>) noexcept override {}
  void append_result(std::string, std::string, plugin::AuditRecord, std::function<void(Status)>) noexcept override {}
  void read_conversation(std::string, plugin::ConversationRange,
                         std::function<void(Status, plugin::ConversationPage)>) noexcept override {}
  void append_audit(std::vector<plugin::AuditRecord> records, std::function<void(Status)> done) noexcept override {
    batches.push_back(std::move(records));
    pending.push_back(std::move(done));
  }
  void read_audit(plugin::AuditQuery, std::function<void(Status, plugin::AuditPage)>) noexcept override {}
  [[nodiscard]] plugin::StoreStats stats() const noexcept override { return {}; }
  void async_shutdown(std::function<void()>) noexcept override {}

  /// Completes the oldest write still in flight.
  void complete(Status s = {}) {
    auto done = std::move(pending.front());
    pending.erase(pending.begin());
    done(std::move(s));
  }

  std::vector<std::vector<plugin::AuditRecord>> batches;
  std::vector<std::function<void(Status)>> pending;
};

plugin::AuditRecord record(int i) {
  plugin::AuditRecord r;
  r.call_id = "c" + std::to_string(i);
  return r;
}

TEST(AuditBatcher, RecordsThatComeWhileAWriteIsInFlightGoTogetherInTheNext) {
  HeldStore store;
  auto batcher = std::make_shared<AuditBatcher>(store, nullptr, 3);
  std::vector<Status> heard(6, Status(Code::internal, "not yet"));
  std::vector<int> times(6, 0);
  const auto add = [&](int i) {
    batcher->add(record(i), [&, i](Status s) {
      heard[i] = std::move(s);
      ++times[i];
    });
  };
  add(0);  // alone: written at once, no timer
  ASSERT_EQ(store.batches.size(), 1u);
  for (int i = 1; i < 6; ++i) {
    add(i);  // while the first write is in flight
  }
  EXPECT_EQ(store.batches.size(), 1u) << "a second write started before the first ended";
  store.complete();
  ASSERT_EQ(store.batches.size(), 2u);
  ASSERT_EQ(store.batches[1].size(), 3u) << "at most 3 a write";
  EXPECT_EQ(store.batches[1][0].call_id, "c1");
  store.complete(Status(Code::unavailable, "redis not connected"));
  ASSERT_EQ(store.batches.size(), 3u);
  EXPECT_EQ(store.batches[2].size(), 2u);
  store.complete();
  EXPECT_EQ(store.batches.size(), 3u) << "a write with nothing in it";
  EXPECT_EQ(batcher->writes(), 3u);
  EXPECT_EQ(times, std::vector<int>(6, 1)) << "every caller hears once";
  EXPECT_TRUE(heard[0].ok());
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(heard[i].code(), Code::unavailable) << "the status of the write that carried it: " << i;
  }
  EXPECT_TRUE(heard[4].ok());
  EXPECT_TRUE(heard[5].ok());
}

TEST(AuditBatcher, RecordsDeferredWhileTheStoreIsAwayAreWrittenOnceItIsBackAndNoMoreThanTheBoundWait) {
  using namespace std::chrono_literals;
  boost::asio::io_context ioc;
  std::vector<std::string> lines;
  observe::LogSink logs{[&lines](std::string_view line) { lines.emplace_back(line); }, LogLevel::info};
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor(), nullptr);
  HeldStore store;
  {
    auto batcher = std::make_shared<AuditBatcher>(store, &host, 3);
    for (int i = 0; i < 4; ++i) {
      batcher->defer(record(i));
    }
    EXPECT_TRUE(store.batches.empty()) << "a deferred record was written at once, not after the retry interval";
    EXPECT_EQ(batcher->deferred(), 4u);
    const auto run_until = [&](auto pred) {
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (!pred() && std::chrono::steady_clock::now() < until) {
        ioc.restart();
        ioc.run_for(10ms);
      }
      return pred();
    };
    // The first try finds the store still away: the records wait, in their order, for the next.
    ASSERT_TRUE(run_until([&] { return store.batches.size() == 1; }));
    ASSERT_EQ(store.batches[0].size(), 3u);
    store.complete(Status(Code::unavailable, "circuit breaker postgres is open"));
    EXPECT_EQ(batcher->deferred(), 4u);
    ASSERT_TRUE(run_until([&] { return store.batches.size() == 2; }));
    EXPECT_EQ(store.batches[1][0].call_id, "c0");
    store.complete();  // back: the rest goes at once
    ASSERT_TRUE(run_until([&] { return store.batches.size() == 3; }));
    ASSERT_EQ(store.batches[2].size(), 1u);
    EXPECT_EQ(store.batches[2][0].call_id, "c3");
    store.complete();
    EXPECT_EQ(batcher->deferred(), 0u);

    // Past the bound the oldest go, and say so.
    for (std::size_t i = 0; i < AuditBatcher::kDeferredMost + 5; ++i) {
      batcher->defer(record(static_cast<int>(i)));
    }
    EXPECT_EQ(batcher->deferred(), AuditBatcher::kDeferredMost);
    EXPECT_NE(metrics.render().find("phasekit_audit_dropped_total 5"), std::string::npos) << metrics.render();
    // And past its bytes: records with 4 KiB of arguments each (an outage of long command lines).
    for (int i = 0; i < 20000; ++i) {
      plugin::AuditRecord big = record(i);
      big.args.assign(plugin::kAuditArgsMost, 'x');
      batcher->defer(std::move(big));
    }
    EXPECT_LT(batcher->deferred() * plugin::kAuditArgsMost, AuditBatcher::kDeferredBytesMost)
        << "the records waiting hold more than the bound's bytes";
    EXPECT_GT(batcher->deferred(), AuditBatcher::kDeferredBytesMost / (plugin::kAuditArgsMost + 200));
  }
  // Gone with records still waiting: the gap in the log is said.
  bool said = false;
  for (const auto& line : lines) {
    said = said || line.find("audit.deferred_lost") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

}  // namespace
}  // namespace phasekit::app
