#pragma once
// A session's exports and shell history as text, for the stores that keep them as one field each
// (redis, sqlite): a JSON array whose strings are byte-safe (phasekit/bytes.hpp), so
// `export X=$'\xff'` is stored and read back like any other value.
//
//   env      [[name, value], …]
//   history  [line, …]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "phasekit/bytes.hpp"
#include "phasekit/status.hpp"

namespace phasekit::store_common {

inline std::string env_text(const std::vector<std::pair<std::string, std::string>>& env) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, value] : env) {
    out.push_back(nlohmann::json::array({bytes::to_json(name), bytes::to_json(value)}));
  }
  return bytes::dump(out);
}

inline std::string history_text(const std::vector<std::string>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& line : history) {
    out.push_back(bytes::to_json(line));
  }
  return bytes::dump(out);
}

/// Reads env_text() back into `out`; INTERNAL naming the session when the text is not what it wrote
/// (a store someone edited by hand, or a bug).
inline Status parse_env(std::string_view session, std::string_view text,
                        std::vector<std::pair<std::string, std::string>>& out) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) {
    return Status(Code::internal, fmt::format("session {}: field env is not a JSON array", session));
  }
  for (const auto& item : j) {
    std::string name;
    std::string value;
    if (!item.is_array() || item.size() != 2 || !bytes::from_json(item[0], name) || !bytes::from_json(item[1], value)) {
      return Status(Code::internal, fmt::format("session {}: malformed env entry", session));
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return {};
}

/// Reads history_text() back into `out`, as parse_env does.
inline Status parse_history(std::string_view session, std::string_view text, std::vector<std::string>& out) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) {
    return Status(Code::internal, fmt::format("session {}: field history is not a JSON array", session));
  }
  for (const auto& item : j) {
    std::string line;
    if (!bytes::from_json(item, line)) {
      return Status(Code::internal, fmt::format("session {}: malformed history entry", session));
    }
    out.push_back(std::move(line));
  }
  return {};
}

}  // namespace phasekit::store_common
