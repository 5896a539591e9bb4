// `phasekit history`: its time arguments (malformed ones refused with what was expected), its output,
// and the command itself reading the audit log a store=sqlite file holds.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "phasekit/history/audit_listing.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/run_process.hpp"

namespace phasekit::history {
namespace {

using namespace std::chrono_literals;

TEST(HistoryTime, ReadsDatesTimesMillisecondsAndTimesAgo) {
  const std::int64_t now = 1'765'090'800'000;  // 2025-12-07T07:00:00Z
  std::int64_t t = 0;
  std::string error;
  ASSERT_TRUE(parse_time("2025-12-07", now, t, error)) << error;
  EXPECT_EQ(t, 1'765'065'600'000);
  ASSERT_TRUE(parse_time("2025-12-07T07:00:00Z", now, t, error)) << error;
  EXPECT_EQ(t, now);
  ASSERT_TRUE(parse_time("2025-12-07T07:00", now, t, error)) << error;
  EXPECT_EQ(t, now);
  ASSERT_TRUE(parse_time("2025-12-07T07:00:00.250Z", now, t, error)) << error;
  EXPECT_EQ(t, now + 250);
  ASSERT_TRUE(parse_time("1970-01-01", now, t, error));
  EXPECT_EQ(t, 0);
  ASSERT_TRUE(parse_time("2024-02-29", now, t, error)) << "a leap day";
  ASSERT_TRUE(parse_time("1765090800000", now, t, error));
  EXPECT_EQ(t, now);
  ASSERT_TRUE(parse_time("90s", now, t, error));
  EXPECT_EQ(t, now - 90'000);
  ASSERT_TRUE(parse_time("15m", now, t, error));
  EXPECT_EQ(t, now - 900'000);
  ASSERT_TRUE(parse_time("2h", now, t, error));
  EXPECT_EQ(t, now - 7'200'000);
  ASSERT_TRUE(parse_time("7d", now, t, error));
  EXPECT_EQ(t, now - 7 * 86'400'000LL);
  EXPECT_EQ(format_time(now + 250), "2025-12-07T07:00:00.250Z");
  EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000Z");
}

TEST(HistoryTime, RefusesWhatIsNotATimeAndSaysWhatIs) {
  for (const std::string& bad : std::vector<std::string>{"", "yesterday", "2025-13-01", "2025-02-30", "2025-12-07T25:00", "2025-12-07T07",
                                "2025-12-07T07:00:00+01:00", "7w", "-5", "-5m", "1.5h", "2025-12-07 junk", "99999999999999999999999",
                                "9999999999999999d", std::string("2025-12-07\0", 11), "\xff\xfe"}) {
    std::int64_t t = 42;
    std::string error;
    EXPECT_FALSE(parse_time(bad, 0, t, error)) << bad;
    EXPECT_NE(error.find("expected 2026-12-07"), std::string::npos) << bad << ": " << error;
    EXPECT_TRUE(nlohmann::json::accept(nlohmann::json(error).dump())) << "the message is not printable text";
  }
}

TEST(HistoryOutput, AJsonLineSaysEverythingByteSafeAndARowStaysOnOneLine) {
  plugin::AuditRecord r;
  r.call_id = "call-1";
  r.user_id = "u\xff";
  r.session_id = "s1";
  r.instance = "orch-1";
  r.tool = "shell";
  r.args = "{\"command\":\"printf 'a\\nb'\"}\n\x1b[2J";
  r.approved = true;
  r.outcome = "ok";
  r.exit_code = 0;
  r.duration_ms = 5;
  r.output_bytes = 3;
  r.attempt = 2;
  r.requested_unix_ms = 1'765'090'800'000;
  r.finished_unix_ms = 1'765'090'800'005;
  const auto j = nlohmann::json::parse(json_line(r));
  EXPECT_EQ(j["user"]["base64"], "df8=");
  EXPECT_EQ(j["finished"], "2025-12-07T07:00:00.005Z");
  EXPECT_EQ(j["exitCode"], 0);
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["approved"], true);
  r.exit_code = -1;
  EXPECT_TRUE(nlohmann::json::parse(json_line(r))["exitCode"].is_null());
  const std::string row = table_row(r);
  EXPECT_EQ(row.find('\n'), std::string::npos) << row;
  EXPECT_EQ(row.find('\x1b'), std::string::npos) << "a terminal escape from the user's arguments reached the table";
  // 8-bit controls (CSI as U+009B moves the cursor on xterm: earlier rows could be erased), bidi
  // overrides and line separators, in the arguments and in an id: neither output carries them raw.
  r.args = "ls\u009b1A\u009b2K\u202e\u2066x\u2028y\u0085z";
  r.user_id = "\u009b2Jmallory";
  for (const std::string& out : {table_row(r), json_line(r)}) {
    for (const std::string raw : {"\u009b", "\u202e", "\u2066", "\u2028", "\u0085"}) {
      EXPECT_EQ(out.find(raw), std::string::npos) << "raw U+" << std::hex << static_cast<int>(raw.back()) << " in " << out;
    }
  }
  EXPECT_NE(table_row(r).find("ls?1A?2K"), std::string::npos) << table_row(r);
  EXPECT_EQ(nlohmann::json::parse(json_line(r))["args"], r.args) << "the JSON line still says it exactly";
}

/// The command against a sqlite file the store plugin wrote.
class HistoryCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = std::filesystem::temp_directory_path() / ("phasekit-history-" + std::to_string(::getpid()));
    std::filesystem::remove_all(folder_);
    std::filesystem::create_directories(folder_);
    path_ = (folder_ / "store.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }

  void write(std::vector<plugin::AuditRecord> records) {
    observe::LogSink logs([](std::string_view) {}, LogLevel::off);
    observe::MetricsRegistry metrics;
    plugin_host::SystemClock clock;
    boost::asio::io_context ioc;
    plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor(), nullptr);
    auto store = plugin_host::instantiate<plugin::StoreStrategy>(
        plugin_host::Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_STORE, "sqlite"), host,
        R"({"store_path": ")" + path_ + "\"}");
    std::optional<Status> done;
    store->append_audit(std::move(records), [&](Status s) { done = std::move(s); });
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < until) {
      if (ioc.stopped()) {
        ioc.restart();
      }
      ioc.run_one_for(10ms);
    }
    ASSERT_TRUE(done && done->ok());
  }

  test::ProcessResult history(std::vector<std::string> args) {
    args.insert(args.begin(), "history");
    return test::run_process(PHASEKIT_BIN, args,
                             {{"STORE_PLUGIN", "sqlite"}, {"STORE_PATH", path_}, {"PHASEKIT_PLUGIN_PATH", PHASEKIT_PLUGIN_DIR}});
  }

  std::filesystem::path folder_;
  std::string path_;
};

TEST_F(HistoryCommand, PrintsTheCallsItIsAskedForOldestFirst) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<plugin::AuditRecord> records;
  for (int i = 0; i < 2500; ++i) {  // more than a page
    plugin::AuditRecord r;
    r.call_id = "call-" + std::to_string(i);
    r.user_id = i % 5 == 0 ? "alice" : "bob";
    r.session_id = "s" + std::to_string(i % 7);
    r.tool = "shell";
    r.args = R"({"command":"echo )" + std::to_string(i) + R"("})";
    r.approved = i % 11 != 0;
    r.outcome = r.approved ? "ok" : "denied";
    r.exit_code = r.approved ? i % 3 : -1;
    r.finished_unix_ms = now - 3'600'000 + i;
    r.requested_unix_ms = r.finished_unix_ms - 10;
    records.push_back(r);
  }
  write(records);

  const auto all = history({"--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::istringstream lines(all.out);
  std::string line;
  std::vector<nlohmann::json> got;
  while (std::getline(lines, line)) {
    got.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(got.size(), records.size());
  EXPECT_EQ(got.front()["callId"], "call-0");
  EXPECT_EQ(got.back()["callId"], "call-2499");
  EXPECT_EQ(got[11]["approved"], false);
  EXPECT_EQ(got[11]["outcome"], "denied");

  const auto alice = history({"--json", "--user", "alice", "--session", "s0", "--since", "2h", "--limit", "3"});
  ASSERT_EQ(alice.exit_code, 0) << alice.err;
  std::istringstream alice_lines(alice.out);
  std::vector<std::string> ids;
  while (std::getline(alice_lines, line)) {
    ids.push_back(nlohmann::json::parse(line)["callId"]);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"call-0", "call-35", "call-70"}));

  const auto table = history({"--until", std::to_string(now - 3'600'000 + 2)});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("finished"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("call-1 "), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("call-2 "), std::string::npos) << "--until is exclusive: " << table.out;
}

TEST_F(HistoryCommand, BadArgumentsAndAStoreItCannotOpenAreRefusedClearly) {
  const auto bad_time = history({"--since", "last tuesday"});
  EXPECT_EQ(bad_time.exit_code, 2);
  EXPECT_NE(bad_time.err.find("--since"), std::string::npos) << bad_time.err;
  const auto bad_limit = history({"--limit", "0"});
  EXPECT_EQ(bad_limit.exit_code, 2) << bad_limit.err;
  const auto extra = history({"everything"});
  EXPECT_EQ(extra.exit_code, 2) << extra.err;
  path_ = (folder_ / "missing" / "store.db").string();
  const auto missing = history({});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_NE(missing.err.find("unable to open"), std::string::npos) << missing.err;
  // A mistyped STORE_PATH in a folder that exists: an error, not a new empty store.
  path_ = (folder_ / "typo.db").string();
  const auto typo = history({});
  EXPECT_EQ(typo.exit_code, 3) << typo.err;
  EXPECT_FALSE(std::filesystem::exists(path_)) << "phasekit history made a store where there was none";
}

}  // namespace
}  // namespace phasekit::history
