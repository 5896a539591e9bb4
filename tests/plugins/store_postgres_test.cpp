// store=postgres beyond the store contract (store_contract_test.cpp): a restart of PostgreSQL under load
// (the breaker opens, calls fail fast, the pool reconnects by itself, nothing acknowledged is lost), its
// pool figures in /metrics, a new instance beside a long transaction, the bound on calls waiting for a
// connection, and the URLs and servers it refuses.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "phasekit/resilience/asio_timers.hpp"
#include "phasekit/resilience/breaker_registry.hpp"
#include "support/postgres_server.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;

class PostgresStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::PostgresServer::available()) {
      GTEST_SKIP() << "PostgreSQL 15 is not installed (./scripts/setup.sh installs it)";
    }
    server_.emplace();
  }
  void TearDown() override { store_.reset(); }

  InstancePtr<plugin::StoreStrategy> open(const std::string& config) {
    return instantiate<plugin::StoreStrategy>(Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, "postgres"), host_,
                                              config);
  }
  std::string refusal(const std::string& config) {
    try {
      open(config);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(10ms);
    }
    return pred();
  }

  Status append(const std::string& id, std::string entry) {
    std::optional<Status> result;
    store_->append_conversation(id, std::move(entry), [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }

  std::set<std::string> stored(const std::string& id) {
    std::optional<plugin::ConversationPage> page;
    plugin::ConversationRange range;
    range.max_entries = 100000;
    range.max_bytes = 1 << 30;
    store_->read_conversation(id, range, [&](Status s, plugin::ConversationPage p) {
      EXPECT_TRUE(s.ok()) << s.message();
      page = std::move(p);
    });
    EXPECT_TRUE(run_until([&] { return page.has_value(); }));
    return page ? std::set<std::string>(page->entries.begin(), page->entries.end()) : std::set<std::string>{};
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  resilience::AsioTimers timers_{ioc_.get_executor()};
  resilience::BreakerRegistry breakers_{timers_, [] {
                                          resilience::BreakerOptions o;
                                          // Longer than the test: the store must find its server again
                                          // by itself, not wait for the breaker to probe.
                                          o.reset_timeout_ms = 120000;
                                          o.volume_threshold = 5;
                                          return o;
                                        }()};
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor(), nullptr, &breakers_};
  std::optional<test::PostgresServer> server_;
  InstancePtr<plugin::StoreStrategy> store_;
};

TEST_F(PostgresStore, ARestartUnderLoadOpensTheBreakerAndLosesNothingAcknowledged) {
  store_ = open(R"({"postgres_url": ")" + server_->url() + R"(", "pool_size": 4, "conversation_max_entries": 100000,
                   "conversation_max_bytes": 1099511627776})");
  std::map<std::string, Status> answers;  // entry → what its append said
  int sent = 0;
  const auto send = [&] {
    const std::string entry = "e" + std::to_string(sent++);
    store_->append_conversation("s1", entry, [&answers, entry](Status s) { answers[entry] = std::move(s); });
    return entry;
  };
  for (int i = 0; i < 50; ++i) {
    send();
  }
  ASSERT_TRUE(run_until([&] { return answers.size() == 50; }));
  for (const auto& [entry, status] : answers) {
    ASSERT_TRUE(status.ok()) << entry << ": " << status.message();
  }

  // The server goes away while calls keep coming: they fail, the breaker opens, and then calls fail
  // at once, without waiting for a connection.
  server_->stop();
  ASSERT_TRUE(run_until([&] {
    send();
    run_until([] { return false; }, 5ms);
    return breakers_.to_json().find(R"("postgres":{"state":"open")") != std::string::npos;
  })) << breakers_.to_json();
  // At once means the breaker refused it, with no attempt at the server: its message says so. (A bound
  // in milliseconds would measure the load on the machine, not the store.)
  const std::string while_open = send();
  ASSERT_TRUE(run_until([&] { return answers.count(while_open) == 1; }));
  EXPECT_EQ(answers[while_open].code(), Code::unavailable) << answers[while_open].message();
  EXPECT_NE(answers[while_open].message().find("circuit breaker postgres is open"), std::string::npos)
      << answers[while_open].message();

  EXPECT_FALSE(store_->reachable());

  // Back: the pool finds the server by itself (its housekeeper probes every second while the breaker
  // is open), well before the breaker's own reset timeout would let a call through.
  server_->restart();
  const auto restarted = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] {
    const std::string probe = send();
    run_until([&] { return answers.count(probe) == 1; });
    return answers.count(probe) == 1 && answers[probe].ok();
  }, 15s)) << "the store stayed away after its server came back\n" << server_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 10s);
  EXPECT_TRUE(store_->reachable());
  ASSERT_TRUE(run_until([&] { return static_cast<int>(answers.size()) == sent; }));

  // Every append that said OK is there; none that failed is.
  const std::set<std::string> kept = stored("s1");
  int acknowledged = 0;
  for (const auto& [entry, status] : answers) {
    if (status.ok()) {
      ++acknowledged;
      EXPECT_EQ(kept.count(entry), 1u) << entry << " was acknowledged and lost";
    } else {
      EXPECT_EQ(status.code(), Code::unavailable) << entry << ": " << status.message();
      EXPECT_EQ(kept.count(entry), 0u) << entry << " failed and was stored";
    }
  }
  EXPECT_GE(acknowledged, 51);
  EXPECT_LT(acknowledged, sent) << "no call failed while the server was down";
  const std::string metrics = metrics_.render();
  EXPECT_NE(metrics.find("phasekit_postgres_pool_connects_total"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("phasekit_postgres_pool_connect_failures_total"), std::string::npos);
}

TEST_F(PostgresStore, ConnectionsTheServerDroppedWhileTheySatInThePoolFailNoCall) {
  store_ = open(R"({"postgres_url": ")" + server_->url() + R"(", "pool_size": 4, "conversation_max_entries": 100000})");
  const auto burst = [&](const std::string& prefix) {
    std::vector<std::optional<Status>> answers(40);
    for (std::size_t i = 0; i < answers.size(); ++i) {
      store_->append_conversation("s1", prefix + std::to_string(i), [&answers, i](Status s) { answers[i] = std::move(s); });
    }
    EXPECT_TRUE(run_until([&] {
      return std::all_of(answers.begin(), answers.end(), [](const auto& a) { return a.has_value(); });
    }));
    std::vector<std::string> failed;
    for (const auto& a : answers) {
      if (a && !a->ok()) {
        failed.push_back(a->message());
      }
    }
    return failed;
  };
  ASSERT_EQ(burst("before-"), std::vector<std::string>{});  // every pooled thread holds a connection now
  // Restarted while nothing ran: every pooled connection is dead, and none of them knows it yet.
  server_->stop();
  server_->restart();
  EXPECT_EQ(burst("after-"), std::vector<std::string>{}) << "a call failed on a connection from before the restart";
  EXPECT_EQ(stored("s1").size(), 80u);
}

TEST_F(PostgresStore, AnInstanceStartingBesideALongTransactionWaitsForNoLock) {
  const std::string config = R"({"postgres_url": ")" + server_->url() + R"(", "pool_size": 2})";
  store_ = open(config);
  ASSERT_TRUE(append("s1", "from the first instance").ok());  // the schema is there now
  const auto first = std::move(store_);
  // Someone holds a transaction open on the audit log (a slow report, a client stuck mid-transaction).
  // The schema's DDL (CREATE INDEX IF NOT EXISTS takes SHARE on its table even when the index exists)
  // would queue behind it, and every later call behind the DDL: a new instance, or the pool's next
  // connection after a restart, must not run it when the schema is current.
  test::PostgresSession holder = server_->session();
  holder.sql("BEGIN; LOCK TABLE phasekit_audit IN ROW EXCLUSIVE MODE");
  store_ = open(config);
  std::optional<Status> result;
  store_->append_conversation("s2", "from the second", [&](Status s) { result = std::move(s); });
  const bool answered = run_until([&] { return result.has_value(); }, 5s);
  holder.sql("ROLLBACK");  // before the assertions: the store's threads must be able to finish
  ASSERT_TRUE(answered) << "the second instance's first call waited for the transaction on phasekit_audit";
  EXPECT_TRUE(result->ok()) << result->message();
}

TEST_F(PostgresStore, CallsWaitingForAConnectionAreBoundedByTheBytesTheyCarry) {
  store_ = open(R"({"postgres_url": ")" + server_->url() + R"(", "pool_size": 1, "queue_max_bytes": 65536,
                   "conversation_max_entries": 100000, "conversation_max_bytes": 1099511627776})");
  for (int i = 0; i < 10; ++i) {  // the schema is made, and the breaker has seen calls succeed
    ASSERT_TRUE(append("s1", "small-" + std::to_string(i)).ok());
  }
  // The pool's one connection is held up: its next call waits for a lock someone else holds, and
  // what comes after waits in the queue, 10 KB each, until 64 KiB are waiting.
  test::PostgresSession holder = server_->session();
  holder.sql("BEGIN; LOCK TABLE phasekit_conversations IN ACCESS EXCLUSIVE MODE");
  const std::string big(10000, 'x');
  std::vector<std::optional<Status>> answers(10);
  for (std::size_t i = 0; i < answers.size(); ++i) {
    store_->append_conversation("s1", "big-" + std::to_string(i) + big, [&answers, i](Status s) { answers[i] = std::move(s); });
  }
  const auto refused = [&] {
    return std::count_if(answers.begin(), answers.end(), [](const auto& a) { return a && !a->ok(); });
  };
  // Refused at once, while the lock is still held: nothing waited for the disk or the server.
  const bool refused_at_once = run_until([&] { return refused() >= 3; }, 5s);
  holder.sql("ROLLBACK");
  ASSERT_TRUE(refused_at_once) << "nothing was refused while 100 KB waited behind a 64 KiB bound";
  ASSERT_TRUE(run_until([&] { return std::all_of(answers.begin(), answers.end(), [](const auto& a) { return a.has_value(); }); }));
  const std::set<std::string> kept = stored("s1");
  int accepted = 0;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const std::string entry = "big-" + std::to_string(i) + big;
    if (answers[i]->ok()) {
      ++accepted;
      EXPECT_EQ(kept.count(entry), 1u) << "big-" << i << " was acknowledged and lost";
    } else {
      EXPECT_EQ(answers[i]->code(), Code::unavailable);
      EXPECT_NE(answers[i]->message().find("MiB already wait"), std::string::npos) << answers[i]->message();
      EXPECT_EQ(kept.count(entry), 0u) << "big-" << i << " was refused and stored";
    }
  }
  EXPECT_GE(accepted, 6) << "the bound let less through than 64 KiB";
  EXPECT_LE(accepted, 7) << "the bound let more through than 64 KiB and the call running";
}

TEST_F(PostgresStore, AUrlThatIsNotPostgresOrAServerThatIsNotThereIsSaidClearly) {
  EXPECT_NE(refusal(R"({"postgres_url": ""})").find("expected postgres://"), std::string::npos);
  EXPECT_NE(refusal(R"({"postgres_url": "redis://127.0.0.1:6379"})").find("expected postgres://"), std::string::npos);
  EXPECT_NE(refusal(R"({"postgres_url": "postgres://x/y", "pool_size": 0})").find("pool_size"), std::string::npos);
  // A server that is not there is not a load error: calls fail with UNAVAILABLE, saying why.
  const int port = server_->port();
  server_->stop();
  store_ = open(R"({"postgres_url": "postgres://phasekit@127.0.0.1:)" + std::to_string(port) +
                R"(/postgres", "pool_size": 1})");
  std::optional<Status> result;
  store_->get_session("s", [&](Status s, plugin::SessionRecord) { result = std::move(s); });
  ASSERT_TRUE(run_until([&] { return result.has_value(); }));
  EXPECT_EQ(result->code(), Code::unavailable);
  EXPECT_NE(result->message().find("postgres:"), std::string::npos) << result->message();
}

}  // namespace
}  // namespace phasekit::plugin_host
