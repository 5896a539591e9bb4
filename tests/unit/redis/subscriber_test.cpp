#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include <boost/asio/post.hpp>

#include "phasekit/redis/subscriber.hpp"
#include "redis_test_util.hpp"

namespace phasekit::redis {
namespace {

using namespace std::chrono_literals;
using testing::CaptureLogger;
using testing::Result;
using testing::IoThreads;
using testing::options_for;
using testing::run;
using testing::wait_until;
using test::RedisServer;

/// Messages received, by channel.
struct Inbox {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> by_channel;
  std::atomic<int> count{0};
  Subscriber::Handler handler() {
    return [this](std::string channel, std::string payload) {
      {
        const std::lock_guard lock(mu);
        by_channel[channel].push_back(std::move(payload));
      }
      count++;
    };
  }
  std::vector<std::string> of(const std::string& channel) {
    const std::lock_guard lock(mu);
    return by_channel[channel];
  }
};

/// PUBLISH's reply: how many subscribers got it.
long long publish(Client& c, const std::string& channel, const std::string& payload) {
  return run(c, {"PUBLISH", channel, payload}).reply.integer();
}

TEST(RedisSubscriber, MessagesArriveOnTheirChannelsAndSubscriptionsMadeBeforeStartApply) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  Inbox inbox;
  auto sub = Subscriber::create(io.executor(), options_for(server.url(), "events"), log);
  std::atomic<int> ups{0};
  sub->on_state([&](bool up) { ups += up ? 1 : 0; });
  sub->subscribe("session:1", inbox.handler());  // before start: applied on connect
  sub->start();
  ASSERT_TRUE(wait_until([&] { return ups.load() == 1; }));
  EXPECT_TRUE(sub->connected());
  sub->subscribe("session:2", inbox.handler());
  EXPECT_EQ(sub->channels(), 2u);

  auto pub = testing::connected_client(io, options_for(server.url()), log);
  const std::string binary("r\0\n\xfe", 4);
  ASSERT_TRUE(wait_until([&] { return publish(*pub, "session:2", "probe") == 1; }));
  EXPECT_EQ(publish(*pub, "session:1", binary), 1);
  EXPECT_EQ(publish(*pub, "other", "nobody"), 0);
  ASSERT_TRUE(wait_until([&] { return inbox.count.load() == 2; }));
  EXPECT_EQ(inbox.of("session:1"), std::vector<std::string>{binary});
  EXPECT_EQ(inbox.of("session:2"), std::vector<std::string>{"probe"});

  // A second subscribe replaces the handler; unsubscribe stops delivery.
  std::atomic<int> replaced{0};
  sub->subscribe("session:1", [&](std::string, std::string) { replaced++; });
  EXPECT_EQ(sub->channels(), 2u);
  EXPECT_EQ(publish(*pub, "session:1", "x"), 1);
  ASSERT_TRUE(wait_until([&] { return replaced.load() == 1; }));
  sub->unsubscribe("session:1");
  EXPECT_EQ(sub->channels(), 1u);
  ASSERT_TRUE(wait_until([&] { return publish(*pub, "session:1", "gone") == 0; }));
  EXPECT_EQ(inbox.of("session:1").size(), 1u);
  sub->stop();
  pub->stop();
}

TEST(RedisSubscriber, TenThousandChannels) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  Inbox inbox;
  auto sub = Subscriber::create(io.executor(), options_for(server.url()), log);
  sub->start();
  ASSERT_TRUE(wait_until([&] { return sub->connected(); }));
  constexpr int kChannels = 10000;
  for (int i = 0; i < kChannels; ++i) {
    sub->subscribe("ch:" + std::to_string(i), inbox.handler());
  }
  EXPECT_EQ(sub->channels(), static_cast<std::size_t>(kChannels));

  auto pub = testing::connected_client(io, options_for(server.url()), log);
  ASSERT_TRUE(wait_until([&] {
    const Result r = run(*pub, {"PUBSUB", "NUMSUB", "ch:0", "ch:9999"});
    return r.reply.elements().size() == 4 && r.reply.elements()[1].integer() == 1 &&
           r.reply.elements()[3].integer() == 1;
  }));
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < kChannels; ++i) {
    commands.push_back({"PUBLISH", "ch:" + std::to_string(i), std::to_string(i)});
  }
  std::promise<long long> receivers;
  pub->pipeline(commands, [&](Status s, std::vector<Reply> replies) {
    long long n = 0;
    for (const Reply& r : replies) {
      n += r.integer();
    }
    receivers.set_value(s.ok() ? n : -1);
  });
  EXPECT_EQ(receivers.get_future().get(), kChannels) << "every channel has its subscriber";
  ASSERT_TRUE(wait_until([&] { return inbox.count.load() == kChannels; })) << inbox.count.load();
  EXPECT_EQ(inbox.of("ch:4242"), std::vector<std::string>{"4242"});
  sub->stop();
  pub->stop();
}

TEST(RedisSubscriber, ResubscribesEveryChannelAfterARedisRestartThenReportsConnected) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  IoThreads io;
  CaptureLogger log;
  Inbox inbox;
  auto sub = Subscriber::create(io.executor(), options_for(server.url()), log);
  std::atomic<int> ups{0};
  std::atomic<int> downs{0};
  sub->on_state([&](bool up) { (up ? ups : downs)++; });
  constexpr int kChannels = 2500;  // three SUBSCRIBE batches
  for (int i = 0; i < kChannels; ++i) {
    sub->subscribe("r:" + std::to_string(i), inbox.handler());
  }
  sub->start();
  ASSERT_TRUE(wait_until([&] { return ups.load() == 1; }));

  server.restart();
  ASSERT_TRUE(wait_until([&] { return downs.load() == 1; }));
  ASSERT_TRUE(wait_until([&] { return ups.load() == 2; }, 10s)) << log.all();
  // listener(true) comes after the server acknowledged every channel: no wait needed before publishing.
  auto pub = testing::connected_client(io, options_for(server.url()), log);
  EXPECT_EQ(publish(*pub, "r:0", "a"), 1);
  EXPECT_EQ(publish(*pub, "r:2499", "b"), 1);
  ASSERT_TRUE(wait_until([&] { return inbox.count.load() == 2; }));
  EXPECT_EQ(inbox.of("r:2499"), std::vector<std::string>{"b"});
  sub->stop();
  pub->stop();
}

TEST(RedisSubscriber, NoHandlerIsPostedAfterStopReturns) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  CaptureLogger log;
  std::atomic<bool> stopped{false};
  std::atomic<int> late{0};
  std::atomic<int> received{0};
  // One io thread: handlers run in the order they were posted, so a marker posted right after stop()
  // returns separates "posted before" (allowed to run) from "posted after" (a bug).
  IoThreads io(1);
  IoThreads pub_io(1);
  auto sub = Subscriber::create(io.executor(), options_for(server.url()), log);
  sub->subscribe("flood", [&](std::string, std::string) {
    received++;
    if (stopped.load()) {
      late++;
    }
  });
  sub->start();
  ASSERT_TRUE(wait_until([&] { return sub->connected(); }));
  auto pub = testing::connected_client(pub_io, options_for(server.url()), log);
  std::atomic<bool> flooded{false};
  pub->pipeline(std::vector<std::vector<std::string>>(20000, {"PUBLISH", "flood", "m"}),
                [&](Status, std::vector<Reply>) { flooded = true; });
  ASSERT_TRUE(wait_until([&] { return received.load() > 0; }));
  sub->stop();
  boost::asio::post(io.executor(), [&] { stopped = true; });
  ASSERT_TRUE(wait_until([&] { return flooded.load() && stopped.load(); }));
  pub->stop();
  io.drain();
  EXPECT_EQ(late.load(), 0);
  EXPECT_FALSE(sub->connected());
}

}  // namespace
}  // namespace phasekit::redis
