// store=sqlite beyond the store contract (store_contract_test.cpp): its TTLs on a clock the test moves,
// the files it refuses to open and why, and many calls at once committed together.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <unistd.h>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/audit_record.hpp"

namespace phasekit::plugin_host {
namespace {

using namespace std::chrono_literals;

/// The wall clock the store reads for its TTLs, moved by the test.
class ManualClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::steady_clock::time_point now() const noexcept override {
    return std::chrono::steady_clock::now();
  }
  [[nodiscard]] std::chrono::system_clock::time_point wall() const noexcept override {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms.load()));
  }
  std::atomic<std::int64_t> ms{1'765'000'000'000};
};

class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = std::filesystem::temp_directory_path() /
              ("phasekit-sqlite-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(folder_);
    std::filesystem::create_directories(folder_);
    path_ = folder_ / "store.db";
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(folder_);
  }

  [[nodiscard]] std::string options(const std::string& more = "") const {
    return R"({"store_path": ")" + path_.string() + R"(", "ttl_ms": 60000, "session_grace_ms": 0)" + more + "}";
  }
  InstancePtr<plugin::StoreStrategy> open(const std::string& config) {
    return instantiate<plugin::StoreStrategy>(Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, "sqlite"), host_,
                                              config);
  }
  /// The load error opening `config` gives ("" when it opened).
  std::string refusal(const std::string& config) {
    try {
      open(config);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
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

  Status put(const std::string& id, const std::string& status) {
    plugin::SessionRecord r;
    r.id = id;
    r.user_id = "u";
    r.status = status;
    std::optional<Status> result;
    store_->put_session(r, [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }
  Code get(const std::string& id) {
    std::optional<Status> result;
    store_->get_session(id, [&](Status s, plugin::SessionRecord) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer")).code();
  }
  Status append(const std::string& id, std::string entry) {
    std::optional<Status> result;
    store_->append_conversation(id, std::move(entry), [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }
  plugin::ConversationPage page(const std::string& id) {
    std::optional<plugin::ConversationPage> result;
    store_->read_conversation(id, {}, [&](Status s, plugin::ConversationPage p) {
      EXPECT_TRUE(s.ok()) << s.message();
      result = std::move(p);
    });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(plugin::ConversationPage{});
  }

  /// Rows of `table` in the file, read by a connection of the test's own (-1 when there is no such table).
  std::int64_t rows(const char* table) const {
    const std::string n = text(std::string("SELECT count(*) FROM ") + table);
    return n.empty() ? -1 : std::stoll(n);
  }

  /// `sql`'s first column of its first row, read by a connection of the test's own ("" when none).
  std::string text(const std::string& sql) const {
    sqlite3* db = nullptr;
    std::string out;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW &&
          sqlite3_column_text(stmt, 0) != nullptr) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close_v2(db);
    return out;
  }
  Status write_audit(std::vector<plugin::AuditRecord> records) {
    std::optional<Status> result;
    store_->append_audit(std::move(records), [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(run_until([&] { return result.has_value(); }));
    return result.value_or(Status(Code::timeout, "no answer"));
  }
  std::vector<plugin::AuditRecord> audit() {
    std::optional<std::pair<Status, plugin::AuditPage>> got;
    store_->read_audit({}, [&](Status s, plugin::AuditPage p) { got.emplace(std::move(s), std::move(p)); });
    EXPECT_TRUE(run_until([&] { return got.has_value(); }));
    if (!got) {
      return {};
    }
    EXPECT_TRUE(got->first.ok()) << got->first.message();
    return got->second.records;
  }
  static plugin::AuditRecord record(const std::string& session, const std::string& call, std::int64_t finished) {
    return test::audit_record(session, call, "alice", finished);
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  ManualClock clock_;
  boost::asio::io_context ioc_;
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor(), nullptr};
  std::filesystem::path folder_;
  std::filesystem::path path_;
  InstancePtr<plugin::StoreStrategy> store_;
};

TEST_F(SqliteStore, ExpiredSessionsAndConversationsReadAsGoneAndArePurgedFromTheFile) {
  store_ = open(options(R"(, "purge_interval_ms": 20)"));
  ASSERT_TRUE(put("active", "active").ok());
  ASSERT_TRUE(put("ended", "ended").ok());
  ASSERT_TRUE(append("active", "a").ok());
  ASSERT_TRUE(append("ended", "e").ok());
  // An ended session lasts the grace period (0 here) plus a minute; an active one SESSION_TTL_MS (a minute
  // here) after its last write, and its conversation as long.
  clock_.ms += 59'000;
  EXPECT_EQ(get("active"), Code::ok);
  EXPECT_EQ(get("ended"), Code::ok);
  ASSERT_TRUE(put("active", "active").ok());  // renews the session and its conversation
  clock_.ms += 2'000;
  EXPECT_EQ(get("ended"), Code::not_found);
  EXPECT_EQ(get("active"), Code::ok);
  EXPECT_EQ(page("active").entries.size(), 1u);
  ASSERT_TRUE(run_until([&] { return rows("sessions") == 1 && rows("entries") == 1; }))
      << "the purge left " << rows("sessions") << " sessions and " << rows("entries") << " entries";
  EXPECT_EQ(store_->stats().sessions, 1u);
  EXPECT_EQ(store_->stats().conversation_entries, 1u);
  clock_.ms += 61'000;
  EXPECT_EQ(get("active"), Code::not_found);
  EXPECT_TRUE(page("active").entries.empty());
  // A conversation appended to after it expired starts again from 0, as a new one.
  ASSERT_TRUE(append("active", "again").ok());
  const plugin::ConversationPage fresh = page("active");
  ASSERT_EQ(fresh.entries.size(), 1u);
  EXPECT_EQ(fresh.total, 1u);
  EXPECT_EQ(fresh.entries[0], "again");
}

TEST_F(SqliteStore, AFileThatIsNotADatabaseIsRefusedByNameAndLeftAsItWas) {
  const std::string garbage(4096, 'x');
  std::ofstream(path_, std::ios::binary) << garbage;
  const std::string why = refusal(options());
  EXPECT_NE(why.find(path_.string()), std::string::npos) << why;
  EXPECT_NE(why.find("not a database"), std::string::npos) << why;
  std::ifstream in(path_, std::ios::binary);
  const std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(now, garbage) << "the refused file was changed";
}

TEST_F(SqliteStore, APathItCannotOpenOrAnEmptyOneIsRefusedClearly) {
  path_ = folder_ / "no-such-folder" / "store.db";
  const std::string why = refusal(options());
  EXPECT_NE(why.find(path_.string()), std::string::npos) << why;
  EXPECT_NE(why.find("unable to open"), std::string::npos) << why;
  EXPECT_NE(refusal(R"({"store_path": ""})").find("store_path is empty"), std::string::npos);
  EXPECT_NE(refusal(R"({"store_path": 7})").find("expected a string"), std::string::npos);
  EXPECT_NE(refusal(options(R"(, "nonesuch": 1)")).find("nonesuch"), std::string::npos);
}

TEST_F(SqliteStore, AFileWrittenByANewerSchemaIsRefusedAndNotDowngraded) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const std::string why = refusal(options());
  EXPECT_NE(why.find("version 99"), std::string::npos) << why;
  EXPECT_EQ(rows("sessions"), -1) << "tables were made in a file of another schema";
}

TEST_F(SqliteStore, ManyCallsAtOnceAreCommittedTogetherAndEachIsAnsweredOnce) {
  store_ = open(options(R"(, "conversation_max_entries": 100000, "conversation_max_bytes": 1099511627776)"));
  constexpr int kCalls = 3000;
  int answered = 0;
  int failed = 0;
  for (int i = 0; i < kCalls; ++i) {
    store_->append_conversation("s" + std::to_string(i % 7), "entry " + std::to_string(i), [&](Status s) {
      ++answered;
      failed += s.ok() ? 0 : 1;
    });
  }
  ASSERT_TRUE(run_until([&] { return answered == kCalls; })) << answered;
  run_until([] { return false; }, 50ms);  // a second answer would show here
  EXPECT_EQ(answered, kCalls);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(rows("entries"), kCalls);
  EXPECT_EQ(store_->stats().conversation_entries, static_cast<std::uint64_t>(kCalls));
  const plugin::ConversationPage p = page("s3");
  EXPECT_EQ(p.total, static_cast<std::uint64_t>((kCalls + 3) / 7));
  EXPECT_EQ(p.entries.back(), "entry " + std::to_string(kCalls - 1)) << "appends went in out of order";
}

TEST_F(SqliteStore, WhileTheDiskIsHeldTheQueueRefusesWhatWouldPassItsBytesAndLosesNothingItTook) {
  store_ = open(options(R"(, "busy_timeout_ms": 20000, "queue_max_bytes": 1048576, )"
                        R"("conversation_max_entries": 100000, "conversation_max_bytes": 1099511627776)"));
  ASSERT_TRUE(append("s", "first").ok());  // the file and its tables exist
  // Another process holds the write lock: the writer waits for it, and calls queue up behind it.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  constexpr int kCalls = 64;  // 64 × 64 KiB: 4 MiB offered against a 1 MiB bound
  std::vector<std::optional<Status>> answers(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    store_->append_conversation("s", std::string(64 * 1024, static_cast<char>('a' + i % 26)),
                                [&answers, i](Status s) { answers[static_cast<std::size_t>(i)] = std::move(s); });
  }
  // The refusals come at once, while the lock is still held. The writer may have taken one batch
  // before it blocked (what was queued when it woke: within the bound itself), so at most 2 × 16 calls
  // of 64 KiB are taken.
  ASSERT_TRUE(run_until([&] {
    return std::count_if(answers.begin(), answers.end(), [](const auto& a) { return a.has_value(); }) >= kCalls - 32;
  })) << "the queue took more than its bytes while the disk was held";
  std::size_t refused = 0;
  for (const auto& a : answers) {
    if (a) {
      EXPECT_EQ(a->code(), Code::unavailable) << a->message();
      EXPECT_NE(a->message().find("1 MiB"), std::string::npos) << a->message();
      ++refused;
    }
  }
  EXPECT_GE(refused, static_cast<std::size_t>(kCalls - 32)) << "at most the writer's batch and 16 × 64 KiB wait";
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ASSERT_TRUE(run_until([&] {
    return std::all_of(answers.begin(), answers.end(), [](const auto& a) { return a.has_value(); });
  }));
  const auto took = std::count_if(answers.begin(), answers.end(), [](const auto& a) { return a->ok(); });
  EXPECT_GT(took, 0);
  EXPECT_EQ(rows("entries"), 1 + took) << "a call the queue took was lost, or a refused one was written";
}

TEST_F(SqliteStore, WhatWasQueuedWhenTheStoreIsDestroyedIsWrittenNotDropped) {
  store_ = open(options());
  int answered = 0;
  for (int i = 0; i < 200; ++i) {
    store_->append_conversation("s", "e" + std::to_string(i), [&](Status) { ++answered; });
  }
  store_.reset();  // at once, as a shutdown does after its last calls
  EXPECT_EQ(rows("entries"), 200);
}

TEST_F(SqliteStore, AuditRecordsPastTheRetentionArePurgedABatchAtATimeAndTheNewerStay) {
  store_ = open(options(R"(, "purge_interval_ms": 10, "audit_retention_ms": 3600000)"));
  const std::int64_t now = clock_.ms.load();
  std::vector<plugin::AuditRecord> old;
  for (int i = 0; i < 2500; ++i) {  // more than one purge pass takes (1,024)
    old.push_back(record("s" + std::to_string(i % 7), "c" + std::to_string(i), now - 7'200'000 + i));
  }
  ASSERT_TRUE(write_audit(std::move(old)).ok());
  ASSERT_TRUE(write_audit({record("s1", "fresh", now - 60'000), record("s2", "edge", now - 3'599'000)}).ok());
  ASSERT_TRUE(run_until([&] { return rows("audit") == 2; })) << rows("audit") << " records left";
  const auto left = audit();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].call_id, "edge");
  EXPECT_EQ(left[1].call_id, "fresh");
}

TEST_F(SqliteStore, AVersion1FileIsUpgradedInPlaceAndKeepsEveryAuditRecord) {
  // Version 1's tables as its build made them (the audit log a rowid table keyed by session and call).
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const char* v1 = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, status TEXT NOT NULL, cwd BLOB NOT NULL, env TEXT NOT NULL,
  backend TEXT NOT NULL, workspace BLOB NOT NULL, history TEXT NOT NULL, instance TEXT NOT NULL,
  updated INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE INDEX sessions_expires ON sessions (expires);
CREATE TABLE conversations (
  session TEXT PRIMARY KEY, total INTEGER NOT NULL, dropped INTEGER NOT NULL, bytes INTEGER NOT NULL,
  expires INTEGER NOT NULL);
CREATE INDEX conversations_expires ON conversations (expires);
CREATE TABLE entries (
  session TEXT NOT NULL, idx INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (session, idx));
CREATE TABLE audit (
  session TEXT NOT NULL, call TEXT NOT NULL, user TEXT NOT NULL, instance TEXT NOT NULL, tool TEXT NOT NULL,
  args BLOB NOT NULL, args_truncated INTEGER NOT NULL, approved INTEGER NOT NULL, outcome TEXT NOT NULL,
  exit_code INTEGER NOT NULL, duration_ms INTEGER NOT NULL, output_bytes INTEGER NOT NULL,
  attempt INTEGER NOT NULL, requested INTEGER NOT NULL, finished INTEGER NOT NULL, PRIMARY KEY (session, call));
CREATE INDEX audit_order ON audit (finished, session, call);
CREATE INDEX audit_user ON audit (user, finished, session, call);
INSERT INTO audit VALUES ('s1', 'c2', 'bob', 'i1', 'shell', x'7b7d', 0, 0, 'denied', -1, 0, 0, 1, 1765000000100,
                          1765000000200);
INSERT INTO audit VALUES ('s1', 'c1', 'alice', 'i1', 'shell', x'ff00', 1, 1, 'ok', 3, 40, 12, 2, 1765000000000,
                          1765000000050);
PRAGMA user_version=1;
)sql";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  store_ = open(options());
  EXPECT_EQ(text("PRAGMA user_version"), "2");
  EXPECT_NE(text("SELECT sql FROM sqlite_schema WHERE name = 'audit'").find("WITHOUT ROWID"), std::string::npos);
  EXPECT_EQ(text("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'audit_version%' OR name IN ('audit_order', 'audit_user')"), "0");
  const auto records = audit();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].call_id, "c1");  // in the order the calls finished
  EXPECT_EQ(records[0].user_id, "alice");
  EXPECT_EQ(records[0].args, std::string("\xff\0", 2));  // bytes, not text
  EXPECT_TRUE(records[0].args_truncated);
  EXPECT_EQ(records[0].exit_code, 3);
  EXPECT_EQ(records[0].output_bytes, 12u);
  EXPECT_EQ(records[0].attempt, 2);
  EXPECT_EQ(records[0].finished_unix_ms, 1765000000050);
  EXPECT_EQ(records[1].call_id, "c2");
  EXPECT_FALSE(records[1].approved);
  EXPECT_EQ(records[1].outcome, "denied");
  // The upgraded table still keeps one record per call: written again, it replaces the first.
  plugin::AuditRecord again = records[0];
  again.attempt = 3;
  again.finished_unix_ms = 1765000000300;
  ASSERT_TRUE(write_audit({again}).ok());
  const auto after = audit();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].call_id, "c2");
  EXPECT_EQ(after[1].call_id, "c1");
  EXPECT_EQ(after[1].attempt, 3);
  // Opened again, an upgraded file is left as it is.
  store_.reset();
  store_ = open(options());
  EXPECT_EQ(audit().size(), 2u);
}

TEST_F(SqliteStore, AUserFilterScansABoundedPartOfTheLogPerPageAndPagesOnToTheMatches) {
  store_ = open(options());
  const std::int64_t t0 = clock_.ms.load() - 100'000;
  std::vector<plugin::AuditRecord> records;
  for (int i = 0; i < 10'050; ++i) {  // more than one read scans (10,000)
    plugin::AuditRecord r = record("s" + std::to_string(i % 9), "b" + std::to_string(i), t0 + i);
    r.user_id = "bob";
    records.push_back(std::move(r));
  }
  for (int i = 0; i < 3; ++i) {
    records.push_back(record("s1", "a" + std::to_string(i), t0 + 20'000 + i));  // alice's, after bob's
  }
  ASSERT_TRUE(write_audit(std::move(records)).ok());
  plugin::AuditQuery q;
  q.user_id = "alice";
  std::vector<std::string> calls;
  int pages = 0;
  for (; pages < 5; ++pages) {
    std::optional<std::pair<Status, plugin::AuditPage>> got;
    store_->read_audit(q, [&](Status s, plugin::AuditPage p) { got.emplace(std::move(s), std::move(p)); });
    ASSERT_TRUE(run_until([&] { return got.has_value(); }));
    ASSERT_TRUE(got->first.ok()) << got->first.message();
    if (pages == 0) {
      EXPECT_TRUE(got->second.records.empty()) << "the first read scanned past its bound";
      EXPECT_FALSE(got->second.next.empty()) << "a read that stopped at its bound gave no cursor to go on from";
    }
    for (const auto& r : got->second.records) {
      EXPECT_EQ(r.user_id, "alice");
      calls.push_back(r.call_id);
    }
    if (got->second.next.empty()) {
      break;
    }
    q.cursor = got->second.next;
  }
  EXPECT_EQ(pages, 1) << "expected two reads: the bounded scan, then the rest";
  EXPECT_EQ(calls, (std::vector<std::string>{"a0", "a1", "a2"}));
}

TEST_F(SqliteStore, AScanThatEndsExactlyAtItsBoundIsTheLastPage) {
  store_ = open(options());
  const std::int64_t t0 = clock_.ms.load() - 100'000;
  std::vector<plugin::AuditRecord> records;
  for (int i = 0; i < 10'000; ++i) {  // exactly what one read scans
    records.push_back(record("s" + std::to_string(i % 9), "b" + std::to_string(i), t0 + i));
  }
  ASSERT_TRUE(write_audit(std::move(records)).ok());
  plugin::AuditQuery q;
  q.user_id = "nobody";
  std::optional<std::pair<Status, plugin::AuditPage>> got;
  store_->read_audit(q, [&](Status s, plugin::AuditPage p) { got.emplace(std::move(s), std::move(p)); });
  ASSERT_TRUE(run_until([&] { return got.has_value(); }));
  ASSERT_TRUE(got->first.ok()) << got->first.message();
  EXPECT_TRUE(got->second.records.empty());
  EXPECT_TRUE(got->second.next.empty()) << "a cursor to an empty page: the scan had read the whole log";
}

}  // namespace
}  // namespace phasekit::plugin_host
