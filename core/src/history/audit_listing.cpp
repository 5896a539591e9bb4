#include "phasekit/history/audit_listing.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cstdint>
#include <chrono>
#include <ctime>
#include <optional>
#include <thread>
#include <ostream>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/bytes.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/loader.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::history {
namespace {

/// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// Reads exactly `width` digits at `pos` into `out`.
bool digits(std::string_view s, std::size_t pos, std::size_t width, unsigned& out) {
  if (pos + width > s.size()) {
    return false;
  }
  const auto r = std::from_chars(s.data() + pos, s.data() + pos + width, out);
  return r.ec == std::errc() && r.ptr == s.data() + pos + width;
}

bool parse_rfc3339(std::string_view s, std::int64_t& out) {
  unsigned y = 0;
  unsigned mo = 0;
  unsigned d = 0;
  unsigned h = 0;
  unsigned mi = 0;
  unsigned sec = 0;
  unsigned ms = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return false;
  }
  std::size_t pos = 10;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    if (!digits(s, pos + 1, 2, h) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, mi)) {
      return false;
    }
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!digits(s, pos + 1, 2, sec)) {
        return false;
      }
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        if (!digits(s, pos + 1, 3, ms)) {
          return false;
        }
        pos += 4;
      }
    }
  }
  if (pos < s.size() && s[pos] == 'Z') {
    ++pos;
  }
  static constexpr std::array<unsigned, 12> kDays{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (pos != s.size() || mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || h > 23 || mi > 59 || sec > 60) {
    return false;
  }
  out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + std::int64_t{sec} * 1000 + ms;
  return true;
}

}  // namespace

bool parse_time(std::string_view text, std::int64_t now_ms, std::int64_t& out, std::string& error) {
  if (!text.empty() && text.size() <= 20) {
    std::int64_t n = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), n);
    if (r.ec == std::errc() && n >= 0) {
      if (r.ptr == text.data() + text.size()) {
        out = n;  // milliseconds since the epoch
        return true;
      }
      if (r.ptr + 1 == text.data() + text.size() && n <= 100LL * 365 * 86400) {
        const char unit = *r.ptr;
        const std::int64_t scale = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : unit == 'd' ? 86400000 : 0;
        if (scale != 0) {
          out = now_ms - n * scale;
          return true;
        }
      }
    }
  }
  if (parse_rfc3339(text, out)) {
    return true;
  }
  error = fmt::format("\"{}\" is not a time: expected 2026-12-07, 2026-12-07T06:00:00Z (UTC), milliseconds since "
                      "the epoch, or a time ago such as 90s, 15m, 2h, 7d",
                      bytes::valid_utf8(text) ? text : std::string_view("(not UTF-8)"));
  return false;
}

std::string format_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000 - (unix_ms % 1000 < 0 ? 1 : 0));
  const auto ms = static_cast<int>(((unix_ms % 1000) + 1000) % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string json_line(const plugin::AuditRecord& r) {
  nlohmann::ordered_json j;
  j["finished"] = format_time(r.finished_unix_ms);
  j["requested"] = format_time(r.requested_unix_ms);
  j["user"] = bytes::to_json(r.user_id);
  j["session"] = bytes::to_json(r.session_id);
  j["callId"] = bytes::to_json(r.call_id);
  j["instance"] = bytes::to_json(r.instance);
  j["tool"] = bytes::to_json(r.tool);
  j["args"] = bytes::to_json(r.args);
  j["argsTruncated"] = r.args_truncated;
  j["approved"] = r.approved;
  j["outcome"] = bytes::to_json(r.outcome);
  j["exitCode"] = r.exit_code >= 0 ? nlohmann::ordered_json(r.exit_code) : nlohmann::ordered_json(nullptr);
  j["durationMs"] = r.duration_ms;
  j["outputBytes"] = r.output_bytes;
  j["attempt"] = r.attempt;
  // ASCII only: a user's arguments cannot reach the terminal or a line splitter as C1 controls,
  // bidi overrides or U+2028 (they come out as \uXXXX).
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

namespace {

/// Whether the character at s[i] (a valid sequence of n bytes) is one a terminal acts on or that
/// reorders or breaks the line: C0 and C1 controls, DEL, the bidi marks and overrides, and the line
/// and paragraph separators.
bool unsafe_on_a_terminal(std::string_view s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (n == 1) {
    return b(0) < 0x20 || b(0) == 0x7f;
  }
  if (n == 2) {
    return b(0) == 0xc2 && b(1) < 0xa0;  // U+0080..U+009F
  }
  if (n == 3 && b(0) == 0xe2 && b(1) == 0x80) {
    return b(2) == 0x8e || b(2) == 0x8f || (b(2) >= 0xa8 && b(2) <= 0xae);  // LRM RLM, U+2028..U+202E
  }
  if (n == 3 && b(0) == 0xe2 && b(1) == 0x81) {
    return b(2) >= 0xa6 && b(2) <= 0xa9;  // U+2066..U+2069
  }
  return n == 2 && b(0) == 0xd8 && b(1) == 0x9c;  // U+061C
}

/// A field for the table: what a terminal would act on, and bytes that are not UTF-8, shown as '?',
/// cut to `width` characters.
std::string cell(std::string_view s, std::size_t width) {
  std::string out;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < s.size() && shown < width;) {
    const std::size_t n = bytes::utf8_sequence(s, i);
    if (n == 0 || unsafe_on_a_terminal(s, i, n)) {
      out += '?';
      i += n == 0 ? 1 : n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
    ++shown;
  }
  if (shown == width && out.size() < s.size()) {
    out += "…";
  }
  return out;
}

}  // namespace

std::string table_header() {
  return fmt::format("{:<24}  {:<12}  {:<20}  {:<16}  {:<10}  {:<8}  {:>4}  {:>8}  {:>9}  {}", "finished", "user",
                     "session", "call", "tool", "outcome", "exit", "ms", "output", "args");
}

std::string table_row(const plugin::AuditRecord& r) {
  return fmt::format("{:<24}  {:<12}  {:<20}  {:<16}  {:<10}  {:<8}  {:>4}  {:>8}  {:>9}  {}",
                     format_time(r.finished_unix_ms), cell(r.user_id, 12), cell(r.session_id, 20),
                     cell(r.call_id, 16), cell(r.tool, 10), cell(r.outcome, 8),
                     r.exit_code >= 0 ? std::to_string(r.exit_code) : "-", r.duration_ms, r.output_bytes,
                     cell(r.args, 60) + (r.args_truncated ? " (cut)" : ""));
}

int print_history(const config::Config& config, const Listing& listing, std::ostream& out, std::ostream& err) {
  observe::LogSink logs([&err](std::string_view line) { err << line << '\n'; }, LogLevel::error);
  observe::MetricsRegistry metrics;
  plugin_host::SystemClock clock;
  boost::asio::io_context ioc;
  plugin_host::BasicHost host(logs, metrics, clock, ioc.get_executor(), nullptr);
  const plugin_host::Loader loader(plugin_host::Loader::search_path_from(config.text(config::Key::plugin_path)));
  const std::string name = config.plugin("store").name;
  // Read only: a mistyped STORE_PATH is an error, not a new empty file, and an operator who may only
  // read the store can run it.
  auto options = nlohmann::json::parse(plugin_host::plugin_config_json("store", config));
  options["read_only"] = true;
  auto store = plugin_host::instantiate<plugin::StoreStrategy>(loader.find(PHK_KIND_STORE, name), host, options.dump());
  const auto read = [&](const plugin::AuditQuery& q) {
    std::optional<std::pair<Status, plugin::AuditPage>> answer;
    store->read_audit(q, [&](Status s, plugin::AuditPage p) { answer.emplace(std::move(s), std::move(p)); });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!answer && std::chrono::steady_clock::now() < until) {
      if (ioc.stopped()) {
        ioc.restart();  // it ran out of work before the answer was posted
      }
      ioc.run_one_for(std::chrono::milliseconds(50));
    }
    return answer.value_or(std::pair{Status(Code::timeout, "the store did not answer in 30 s"), plugin::AuditPage{}});
  };
  plugin::AuditQuery q = listing.query;
  std::size_t printed = 0;
  if (!listing.json) {
    out << table_header() << '\n';
  }
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    auto [status, page] = read(q);
    // A remote store (redis) answers UNAVAILABLE until its connection is up: ask again for a while.
    if (status.code() == Code::unavailable && std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!status.ok()) {
      err << fmt::format("phasekit history: store={}: {}\n", name, status.message());
      return 1;
    }
    for (const auto& r : page.records) {
      if (printed == listing.most) {
        return 0;
      }
      out << (listing.json ? json_line(r) : table_row(r)) << '\n';
      ++printed;
    }
    if (page.next.empty() || printed == listing.most) {
      return 0;
    }
    q.cursor = std::move(page.next);
  }
}

}  // namespace phasekit::history
