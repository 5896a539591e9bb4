#pragma once
// `phasekit history`: the audit log of the configured store, read page by page and printed as a table
// or as JSON lines (one record per line, its strings byte-safe as phasekit/bytes.hpp writes them).
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "phasekit/config/config.hpp"
#include "phasekit/plugin/store.hpp"

namespace phasekit::history {

/// A time of --since/--until: RFC 3339 in UTC ("2026-12-07", "2026-12-07T06:00", "…T06:00:00Z",
/// "…T06:00:00.250Z"), milliseconds since the epoch ("1765090800000"), or a time ago from `now_ms`
/// ("90s", "15m", "2h", "7d"). False, with `error` saying what was expected, for anything else.
bool parse_time(std::string_view text, std::int64_t now_ms, std::int64_t& out, std::string& error);

/// "2026-12-07T06:00:00.250Z".
std::string format_time(std::int64_t unix_ms);

/// One record as a JSON line (no newline).
std::string json_line(const plugin::AuditRecord& r);

/// The table's header, and one record as a row of it.
std::string table_header();
std::string table_row(const plugin::AuditRecord& r);

struct Listing {
  plugin::AuditQuery query;  // its limit: records per page
  bool json = false;
  std::size_t most = SIZE_MAX;  // records printed at most (--limit)
};

/// Loads the store `config` names and prints what `listing` asks for to `out`; returns the exit code:
/// 0, or 1 with the reason on `err` when the store cannot be read. Throws plugin_host::LoadError when
/// the store plugin cannot load.
int print_history(const config::Config& config, const Listing& listing, std::ostream& out, std::ostream& err);

}  // namespace phasekit::history
