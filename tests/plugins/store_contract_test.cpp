// What every store promises, run against store=memory, store=redis (a real redis-server on a free
// port), store=sqlite (a file in a temporary folder) and store=postgres (a real PostgreSQL 15 made with
// initdb, one for the suite, a database per test): a session's shell fields come back byte for byte whatever their bytes (issue 15, finding 3:
// `export X=$'\xff'` ended the process inside a noexcept function), and a conversation is kept within
// its caps and read back in pages bounded in bytes (finding 6).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <chrono>
#include <iterator>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/postgres_server.hpp"
#include "support/audit_record.hpp"
#include "support/redis_server.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;

struct StoreCase {
  const char* name;
};

class StoreContract : public ::testing::TestWithParam<StoreCase> {
 protected:
  void SetUp() override {
    options_ = R"({"conversation_max_entries": 8, "conversation_max_bytes": 4096)";
    if (std::string(GetParam().name) == "redis") {
      if (!test::RedisServer::available()) {
        GTEST_SKIP() << "redis-server is not installed (./scripts/setup.sh installs it)";
      }
      redis_.emplace();
      options_ += R"(, "redis_url": ")" + redis_->url() + "\"";
    }
    if (std::string(GetParam().name) == "postgres") {
      if (!test::PostgresServer::available()) {
        GTEST_SKIP() << "PostgreSQL 15 is not installed (./scripts/setup.sh installs it)";
      }
      // One server for the suite (initdb takes a second or two), a database of its own per test.
      static const auto server = std::make_unique<test::PostgresServer>();
      static int databases = 0;
      const std::string database = "contract" + std::to_string(++databases);
      server->create_database(database);
      options_ += R"(, "postgres_url": ")" + server->url(database) + R"(", "pool_size": 4)";
    }
    if (std::string(GetParam().name) == "sqlite") {
      folder_ = std::filesystem::temp_directory_path() /
                ("phasekit-store-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::filesystem::remove_all(folder_);
      std::filesystem::create_directories(folder_);
      options_ += R"(, "store_path": ")" + (folder_ / "store.db").string() + "\"";
    }
    options_ += "}";
    open_store();
  }

  void TearDown() override {
    store_.reset();
    if (!folder_.empty()) {
      std::filesystem::remove_all(folder_);
    }
  }

  /// A new instance of the store on the same options (and data, where it outlives an instance).
  void open_store() {
    store_.reset();
    store_ = instantiate<plugin::StoreStrategy>(Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, GetParam().name),
                                                host_, options_);
    // The redis client fails fast (UNAVAILABLE) until it has connected: wait for an answer.
    ASSERT_TRUE(run_until([&] {
      std::optional<Status> probe;
      store_->get_session("probe", [&](Status s, plugin::SessionRecord) { probe = std::move(s); });
      return run_until([&] { return probe.has_value(); }) && probe->code() != Code::unavailable;
    })) << "the store never answered";
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds deadline = 10s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      if (ioc_.stopped()) {
        ioc_.restart();
      }
      ioc_.run_one_for(10ms);
    }
    return pred();
  }

  Status put(const plugin::SessionRecord& record) {
    std::optional<Status> result;
    store_->put_session(record, [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }

  Status update(const std::string& id, const plugin::SessionUpdate& u) {
    std::optional<Status> result;
    store_->update_session(id, u, [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }

  std::pair<Status, plugin::SessionRecord> get(const std::string& id) {
    std::optional<std::pair<Status, plugin::SessionRecord>> result;
    store_->get_session(id, [&](Status s, plugin::SessionRecord r) { result.emplace(std::move(s), std::move(r)); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(std::pair{Status(Code::timeout, "no answer"), plugin::SessionRecord{}});
  }

  Status remove(const std::string& id) {
    std::optional<Status> result;
    store_->remove_session(id, [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }

  Status append(const std::string& session, std::string entry) {
    std::optional<Status> result;
    store_->append_conversation(session, std::move(entry), [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }

  plugin::ConversationPage page(const std::string& session, plugin::ConversationRange range) {
    std::optional<plugin::ConversationPage> result;
    store_->read_conversation(session, range, [&](Status s, plugin::ConversationPage p) {
      EXPECT_TRUE(s.ok()) << s.message();
      result = std::move(p);
    });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(plugin::ConversationPage{});
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor(), nullptr};
  std::optional<test::RedisServer> redis_;
  std::filesystem::path folder_;  // store=sqlite's
  std::string options_;
  InstancePtr<plugin::StoreStrategy> store_;
};

TEST_P(StoreContract, ShellFieldsThatAreNotUtf8ComeBackByteForByte) {
  plugin::SessionRecord record;
  record.id = "s1";
  record.user_id = "u1";
  record.status = "active";
  record.instance = "i1";
  std::optional<Status> put;
  store_->put_session(record, [&](Status s) { put = std::move(s); });
  ASSERT_TRUE(run_until([&] { return put.has_value(); }));
  ASSERT_TRUE(put->ok()) << put->message();

  // What a shell reports after `export X=$'\xff'; mkdir $'d\xfe'; cd $'d\xfe'`, and a valid UTF-8 value
  // that looks like the byte-safe form, which must not be mistaken for it.
  plugin::SessionUpdate update;
  update.shell = true;
  update.cwd = "d\xfe";
  update.env = {{"X", "\xff"}, {"Y", "caf\xc3\xa9"}, {"Z", R"({"base64":"/w=="})"}, {"W", std::string("a\0b", 3)}};
  update.history = {"export X=$'\\xff'", "echo \xfe\xfe"};
  update.workspace = "/ws/sessions/s1";
  update.updated_unix_ms = 7;
  std::optional<Status> updated;
  store_->update_session("s1", update, [&](Status s) { updated = std::move(s); });
  ASSERT_TRUE(run_until([&] { return updated.has_value(); }));
  ASSERT_TRUE(updated->ok()) << updated->message();

  std::optional<plugin::SessionRecord> got;
  store_->get_session("s1", [&](Status s, plugin::SessionRecord r) {
    EXPECT_TRUE(s.ok()) << s.message();
    got = std::move(r);
  });
  ASSERT_TRUE(run_until([&] { return got.has_value(); }));
  EXPECT_EQ(got->cwd, update.cwd);
  EXPECT_EQ(got->env, update.env);
  EXPECT_EQ(got->history, update.history);
  EXPECT_EQ(got->user_id, "u1");
}

TEST_P(StoreContract, ARecordWithEveryFieldSetComesBackAsItWasPutAndAnUpdateKeepsTheRest) {
  // Every field, strings past 127 bytes (two length bytes in the memory store's packing) and a NUL.
  plugin::SessionRecord record;
  record.id = "s-" + std::string(140, 'k');
  record.user_id = "u\xff" + std::string(300, 'u');
  record.status = "detached";
  record.cwd = std::string("a\0b", 3);
  record.env = {{"A", ""}, {"", "empty name"}, {"LONG", std::string(1000, 'v')}};
  record.backend = "b-1";
  record.workspace = "/ws/sessions/" + record.id;
  record.history = {"", "ls", std::string(200, 'h')};
  record.instance = "orchestrator-7";
  record.updated_unix_ms = 1'765'000'000'123;
  std::optional<Status> put;
  store_->put_session(record, [&](Status s) { put = std::move(s); });
  ASSERT_TRUE(run_until([&] { return put.has_value(); }));
  ASSERT_TRUE(put->ok()) << put->message();

  const auto get = [&](const std::string& id) {
    std::optional<plugin::SessionRecord> got;
    store_->get_session(id, [&](Status s, plugin::SessionRecord r) {
      EXPECT_TRUE(s.ok()) << s.message();
      got = std::move(r);
    });
    EXPECT_TRUE(run_until([&] { return got.has_value(); }));
    return got.value_or(plugin::SessionRecord{});
  };
  EXPECT_EQ(get(record.id), record);

  plugin::SessionUpdate update;
  update.status = "active";
  update.updated_unix_ms = 5;
  std::optional<Status> updated;
  store_->update_session(record.id, update, [&](Status s) { updated = std::move(s); });
  ASSERT_TRUE(run_until([&] { return updated.has_value(); }));
  ASSERT_TRUE(updated->ok()) << updated->message();
  plugin::SessionRecord expected = record;
  plugin::apply(expected, update);
  EXPECT_EQ(get(record.id), expected);
}

TEST_P(StoreContract, ConversationKeepsTheNewestWithinItsCapsAndCountsWhatItDropped) {
  // 40 entries of 1000 bytes into caps of 8 entries / 4096 bytes: 4 stay (4000 bytes).
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(append("s1", std::string(999, 'a') + static_cast<char>('A' + i % 26)).ok());
  }
  const plugin::ConversationPage newest = page("s1", {});
  EXPECT_EQ(newest.total, 40u);
  EXPECT_EQ(newest.dropped, 36u);
  EXPECT_EQ(newest.first, 36u);
  ASSERT_EQ(newest.entries.size(), 4u);
  EXPECT_EQ(newest.entries.back().back(), static_cast<char>('A' + 39 % 26));
  // By count: small entries, the entry cap binds.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(append("s2", "e" + std::to_string(i)).ok());
  }
  const plugin::ConversationPage small = page("s2", {});
  EXPECT_EQ(small.dropped, 12u);
  ASSERT_EQ(small.entries.size(), 8u);
  EXPECT_EQ(small.entries.front(), "e12");
  EXPECT_EQ(small.entries.back(), "e19");
  // One entry over the byte cap on its own is kept (the newest always stays), alone.
  ASSERT_TRUE(append("s3", "small").ok());
  ASSERT_TRUE(append("s3", std::string(10000, 'x')).ok());
  const plugin::ConversationPage big = page("s3", {});
  ASSERT_EQ(big.entries.size(), 1u);
  EXPECT_EQ(big.entries[0].size(), 10000u);
  EXPECT_EQ(big.dropped, 1u);
}

TEST_P(StoreContract, PagesWalkBackwardsWithinTheirBytesAndEntries) {
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(append("s1", std::to_string(i) + std::string(99, '.')).ok());  // 100 bytes each
  }
  plugin::ConversationRange range;
  range.max_bytes = 250;  // two entries a page
  plugin::ConversationPage p = page("s1", range);
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.first, 6u);
  EXPECT_EQ(p.entries[0][0], '6');
  EXPECT_EQ(p.entries[1][0], '7');
  std::string seen;
  while (p.first > p.dropped) {
    range.before = p.first;
    p = page("s1", range);
    ASSERT_FALSE(p.entries.empty());
    ASSERT_LE(p.entries.size(), 2u);
    for (auto it = p.entries.rbegin(); it != p.entries.rend(); ++it) {
      seen += (*it)[0];
    }
  }
  EXPECT_EQ(seen, "543210");
  range.before = 3;
  range.max_entries = 1;
  range.max_bytes = 1 << 20;
  p = page("s1", range);
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0][0], '2');
  EXPECT_EQ(p.first, 2u);
  range.max_bytes = 10;  // smaller than any entry: still one
  p = page("s1", range);
  ASSERT_EQ(p.entries.size(), 1u);
  // Unknown sessions and pages past the start are empty, not errors.
  EXPECT_TRUE(page("nobody", {}).entries.empty());
  range.before = 0;
  EXPECT_TRUE(page("s1", range).entries.empty());
}

TEST_P(StoreContract, AnUpdateOfAnUnknownSessionIsNotFoundAndARemoveTakesItsConversationWithIt) {
  plugin::SessionUpdate u;
  u.status = "active";
  EXPECT_EQ(update("nobody", u).code(), Code::not_found);
  EXPECT_EQ(get("nobody").first.code(), Code::not_found) << "an update created the session it did not find";

  plugin::SessionRecord record;
  record.id = "s1";
  record.user_id = "u1";
  record.status = "active";
  ASSERT_TRUE(put(record).ok());
  ASSERT_TRUE(append("s1", "one").ok());
  ASSERT_TRUE(append("s1", "two").ok());
  EXPECT_EQ(store_->stats().conversation_entries, 2u);
  ASSERT_TRUE(remove("s1").ok());
  EXPECT_EQ(get("s1").first.code(), Code::not_found);
  const plugin::ConversationPage after = page("s1", {});
  EXPECT_TRUE(after.entries.empty());
  EXPECT_EQ(after.total, 0u) << "the conversation outlived its session";
  EXPECT_TRUE(remove("s1").ok()) << "removing what is not there is not an error";
  // A session of the same id starts with no conversation.
  ASSERT_TRUE(put(record).ok());
  ASSERT_TRUE(append("s1", "three").ok());
  const plugin::ConversationPage again = page("s1", {});
  ASSERT_EQ(again.entries.size(), 1u);
  EXPECT_EQ(again.first, 0u);
}

TEST_P(StoreContract, AStoreThatOutlivesItsProcessGivesTheNextInstanceWhatTheLastWrote) {
  if (!store_->shared()) {
    GTEST_SKIP() << GetParam().name << " keeps nothing past its instance";
  }
  plugin::SessionRecord record;
  record.id = "s1";
  record.user_id = "u1";
  record.status = "detached";
  record.cwd = "d\xfe";
  record.env = {{"X", "\xff"}};
  record.history = {"cd d"};
  record.instance = "i1";
  record.updated_unix_ms = 42;
  ASSERT_TRUE(put(record).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(append("s1", "entry " + std::to_string(i)).ok());
  }
  open_store();  // as a restarted process does

  const auto [status, got] = get("s1");
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(got, record);
  const plugin::ConversationPage p = page("s1", {});
  EXPECT_EQ(p.total, 10u);
  EXPECT_EQ(p.dropped, 2u);
  ASSERT_EQ(p.entries.size(), 8u);
  EXPECT_EQ(p.entries.front(), "entry 2");
  EXPECT_EQ(p.entries.back(), "entry 9");
  ASSERT_TRUE(append("s1", "entry 10").ok());
  EXPECT_EQ(page("s1", {}).entries.back(), "entry 10") << "the numbering did not go on where it was";
}

using test::audit_record;

TEST_P(StoreContract, TheAuditLogKeepsOneRecordPerCallInOrderAndPagesThroughItsFilters) {
  const std::int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<plugin::AuditRecord> records;
  for (int i = 0; i < 30; ++i) {
    records.push_back(audit_record("s" + std::to_string(i % 3), "c" + std::to_string(i), i % 2 == 0 ? "alice" : "bob",
                                   t0 + i / 2));  // two calls in each millisecond
  }
  // Ids whose bytes could be mistaken for a store's separators: two calls, not one.
  records.push_back(audit_record(std::string("a\0b", 3), "c", "carol", t0 + 20));
  records.push_back(audit_record("a", std::string("b\0c", 3), "carol", t0 + 20));
  records.push_back(audit_record("a\x01", "c:d", "carol", t0 + 20));
  records[7].args = "\xff\xfe not UTF-8";
  records[7].approved = false;
  records[7].outcome = "denied";
  records[7].exit_code = -1;
  const auto write = [&](std::vector<plugin::AuditRecord> batch) {
    std::optional<Status> result;
    store_->append_audit(std::move(batch), [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  };
  // In two batches, the second first: the log's order is the calls' finish times, not the writes'.
  ASSERT_TRUE(write({records.begin() + 15, records.end()}).ok());  // the tricky ids among them
  ASSERT_TRUE(write({records.begin(), records.begin() + 15}).ok());
  // A record written again (a retry, a redelivered run) replaces the first: one per call.
  plugin::AuditRecord again = records[4];
  again.attempt = 2;
  again.exit_code = 9;
  ASSERT_TRUE(write({again}).ok());
  records[4] = again;

  const auto read_all = [&](plugin::AuditQuery q) {
    std::vector<plugin::AuditRecord> out;
    for (int pages = 0; pages < 100; ++pages) {
      std::optional<std::pair<Status, plugin::AuditPage>> got;
      store_->read_audit(q, [&](Status s, plugin::AuditPage p) { got.emplace(std::move(s), std::move(p)); });
      EXPECT_TRUE(run_until([&] { return got.has_value(); }));
      if (!got || !got->first.ok()) {
        ADD_FAILURE() << (got ? got->first.message() : "no answer");
        return out;
      }
      EXPECT_LE(got->second.records.size(), q.limit);
      out.insert(out.end(), got->second.records.begin(), got->second.records.end());
      if (got->second.next.empty()) {
        return out;
      }
      q.cursor = got->second.next;
    }
    ADD_FAILURE() << "the pages never ended";
    return out;
  };
  std::vector<plugin::AuditRecord> expected = records;
  std::sort(expected.begin(), expected.end(), plugin::audit_before);
  plugin::AuditQuery all;
  all.limit = 4;
  EXPECT_EQ(read_all(all), expected) << "every record, once, byte for byte, in the log's order";

  plugin::AuditQuery alice = all;
  alice.user_id = "alice";
  alice.session_id = "s1";
  alice.since_unix_ms = t0 + 2;
  alice.until_unix_ms = t0 + 12;
  std::vector<plugin::AuditRecord> wanted;
  std::copy_if(expected.begin(), expected.end(), std::back_inserter(wanted),
               [&](const plugin::AuditRecord& r) { return plugin::audit_matches(alice, r); });
  ASSERT_FALSE(wanted.empty());
  EXPECT_EQ(read_all(alice), wanted);
  plugin::AuditQuery session_a = all;
  session_a.session_id = "a";
  const auto in_a = read_all(session_a);
  ASSERT_EQ(in_a.size(), 1u) << "a session's filter took in another session whose id starts like it";
  EXPECT_EQ(in_a[0].call_id, std::string("b\0c", 3));

  plugin::AuditQuery bad;
  bad.cursor = "not a cursor";
  std::optional<Status> refused;
  store_->read_audit(bad, [&](Status s, plugin::AuditPage) { refused = std::move(s); });
  ASSERT_TRUE(run_until([&] { return refused.has_value(); }));
  EXPECT_EQ(refused->code(), Code::bad_request) << refused->message();
}

TEST_P(StoreContract, AResultWritesItsConversationEntryAndItsAuditRecordTogether) {
  const std::int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const std::uint64_t entries_before = store_->stats().conversation_entries;
  ASSERT_TRUE(append("r1", "first").ok());
  const auto result = [&](const std::string& entry, const plugin::AuditRecord& record) {
    std::optional<Status> done;
    store_->append_result("r1", entry, record, [&](Status s) { done = std::move(s); });
    EXPECT_TRUE(run_until([&] { return done.has_value(); }));
    return done.value_or(Status(Code::timeout, "no answer"));
  };
  plugin::AuditRecord one = audit_record("r1", "c1", "alice", t0);
  one.args = "\xff not UTF-8";
  ASSERT_TRUE(result(std::string("second\0", 7), one).ok());
  // Written again (a retry): a second entry, still one record.
  plugin::AuditRecord again = one;
  again.attempt = 2;
  ASSERT_TRUE(result("third", again).ok());

  const plugin::ConversationPage p = page("r1", plugin::ConversationRange{});
  EXPECT_EQ(p.entries, (std::vector<std::string>{"first", std::string("second\0", 7), "third"}));
  EXPECT_EQ(store_->stats().conversation_entries - entries_before, 3u);
  std::optional<std::pair<Status, plugin::AuditPage>> got;
  plugin::AuditQuery q;
  q.session_id = "r1";
  store_->read_audit(q, [&](Status s, plugin::AuditPage page) { got.emplace(std::move(s), std::move(page)); });
  ASSERT_TRUE(run_until([&] { return got.has_value(); }));
  ASSERT_TRUE(got->first.ok()) << got->first.message();
  EXPECT_EQ(got->second.records, (std::vector<plugin::AuditRecord>{again}));
}

TEST_P(StoreContract, ARedisThatForgotTheStoresScriptsIsSentThemOnceAndTheCallsGoOnBySha1) {
  if (std::string(GetParam().name) != "redis") {
    GTEST_SKIP() << "only store=redis runs scripts";
  }
  // calls=N of one command in INFO commandstats (0 when it never ran).
  const auto calls = [&](const std::string& command) {
    const std::string stats = redis_->cli({"INFO", "commandstats"});
    const auto at = stats.find("cmdstat_" + command + ":calls=");
    return at == std::string::npos ? 0L : std::stol(stats.substr(at + command.size() + 15));
  };
  const std::int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const auto result = [&](const std::string& call) {
    std::optional<Status> done;
    store_->append_result("f1", "entry " + call, audit_record("f1", call, "alice", t0), [&](Status s) { done = std::move(s); });
    EXPECT_TRUE(run_until([&] { return done.has_value(); }));
    return done.value_or(Status(Code::timeout, "no answer"));
  };
  ASSERT_TRUE(result("c1").ok());
  ASSERT_EQ(redis_->cli({"SCRIPT", "FLUSH"}), "OK\n");  // what a redis restart does to them too
  const long evals = calls("eval");
  const long by_sha1 = calls("evalsha");
  for (int i = 2; i <= 5; ++i) {
    ASSERT_TRUE(result("c" + std::to_string(i)).ok()) << "call " << i;
  }
  EXPECT_EQ(calls("eval") - evals, 1) << "the script went whole more than once after the flush";
  EXPECT_EQ(calls("evalsha") - by_sha1, 4) << "the calls did not go by the script's SHA-1";
  EXPECT_EQ(page("f1", plugin::ConversationRange{}).entries.size(), 5u);
}

TEST_P(StoreContract, RedisShedsAuditRecordsPastTheRetentionAsResultsComeRecordsAndHashesAlike) {
  if (std::string(GetParam().name) != "redis") {
    GTEST_SKIP() << "sqlite and postgres purge on a timer (their own tests)";
  }
  options_.back() = ' ';
  options_ += R"(, "audit_retention_ms": 3600000})";
  open_store();
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<plugin::AuditRecord> old;
  for (int i = 0; i < 2500; ++i) {  // a trim takes up to 1,000
    old.push_back(audit_record("o" + std::to_string(i % 7), "c" + std::to_string(i), "bob", now - 7'200'000 + i));
  }
  std::optional<Status> written;
  store_->append_audit(std::move(old), [&](Status s) { written = std::move(s); });
  ASSERT_TRUE(run_until([&] { return written.has_value(); }));
  ASSERT_TRUE(written->ok()) << written->message();
  for (int i = 0; i < 200; ++i) {  // results: a few of them trim
    std::optional<Status> done;
    store_->append_result("n1", "entry", audit_record("n1", "r" + std::to_string(i), "alice", now + i),
                          [&](Status s) { done = std::move(s); });
    ASSERT_TRUE(run_until([&] { return done.has_value(); }));
    ASSERT_TRUE(done->ok()) << done->message();
  }
  EXPECT_EQ(redis_->cli({"ZCARD", "phasekit:audit"}), "200\n");
  EXPECT_EQ(redis_->cli({"HLEN", "phasekit:audit:rec"}), "200\n");
  EXPECT_EQ(redis_->cli({"HLEN", "phasekit:audit:user"}), "200\n");
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract,
                         ::testing::Values(StoreCase{"memory"}, StoreCase{"redis"}, StoreCase{"sqlite"},
                                           StoreCase{"postgres"}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace phasekit::plugin_host
