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

  /// Rows of `table` in the file, read by a connection of the test's own.
  std::int64_t rows(const char* table) const {
    sqlite3* db = nullptr;
    std::int64_t n = -1;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      const std::string sql = std::string("SELECT count(*) FROM ") + table;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        n = sqlite3_column_int64(stmt, 0);
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close_v2(db);
    return n;
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

}  // namespace
}  // namespace phasekit::plugin_host
