#include "phasekit/app/recovery.hpp"

#include <algorithm>
#include <unordered_set>

namespace phasekit::app {
namespace {

using json = nlohmann::json;

constexpr std::size_t kCallIdMost = 64;

bool is_call_id(std::string_view s) {
  return !s.empty() && s.size() <= kCallIdMost && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

/// The string at entry[key] (or entry[outer][key]), or nullptr.
const std::string* string_at(const json& entry, const char* key) {
  const auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

const std::string* role_of(const json& entry) { return entry.is_object() ? string_at(entry, "role") : nullptr; }

/// The callId a request entry (role user) asked under, or a tool result entry (role tool) answers.
const std::string* call_of(const json& entry, bool result) {
  const std::string* role = role_of(entry);
  if (role == nullptr || *role != (result ? "tool" : "user")) {
    return nullptr;
  }
  if (!result) {
    return string_at(entry, "callId");
  }
  const auto r = entry.find("result");
  return r != entry.end() && r->is_object() ? string_at(*r, "callId") : nullptr;
}

}  // namespace

std::string format_offset(const RecoveryOffset& offset) {
  std::string out;
  out.reserve(3 + offset.call_id.size() + offset.outstanding.size() * 40);
  out += offset.kind;
  out += ':';
  out += offset.call_id;
  out += ';';
  const std::size_t skip =
      offset.outstanding.size() > kOffsetOutstandingMost ? offset.outstanding.size() - kOffsetOutstandingMost : 0;
  for (std::size_t i = skip; i < offset.outstanding.size(); ++i) {
    if (i > skip) {
      out += ',';
    }
    out += offset.outstanding[i];
  }
  return out;
}

std::optional<RecoveryOffset> parse_offset(std::string_view text) {
  if (text.size() < 3 || text.size() > kOffsetBytesMost || (text[0] != 'q' && text[0] != 'r') || text[1] != ':') {
    return std::nullopt;
  }
  RecoveryOffset o;
  o.kind = text[0];
  text.remove_prefix(2);
  const auto semi = text.find(';');
  if (semi == std::string_view::npos || !is_call_id(text.substr(0, semi))) {
    return std::nullopt;
  }
  o.call_id = std::string(text.substr(0, semi));
  std::string_view rest = text.substr(semi + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view id = rest.substr(0, comma);
    if (!is_call_id(id) || o.outstanding.size() == kOffsetOutstandingMost) {
      return std::nullopt;
    }
    o.outstanding.emplace_back(id);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) {
      return std::nullopt;  // a trailing comma
    }
  }
  return o;
}

std::vector<std::size_t> results_to_replay(const std::vector<json>& entries, const RecoveryOffset& offset,
                                           std::vector<std::string>& waiting) {
  std::unordered_set<std::string> missing(offset.outstanding.begin(), offset.outstanding.end());
  std::vector<std::string> order(offset.outstanding.begin(), offset.outstanding.end());
  // The offset's own event: its position splits the calls the client knew of from those after.
  const bool result = offset.kind == 'r';
  std::size_t after = entries.size();
  for (std::size_t i = entries.size(); i-- > 0;) {
    const std::string* id = call_of(entries[i], result);
    if (id != nullptr && *id == offset.call_id) {
      after = i + 1;
      break;
    }
  }
  // Not found (older than the entries reach, or not this session's): only the outstanding calls are
  // known to be missing.
  for (std::size_t i = after; i < entries.size(); ++i) {
    if (const std::string* id = call_of(entries[i], false); id != nullptr && missing.insert(*id).second) {
      order.push_back(*id);
    }
  }
  std::vector<std::size_t> replay;
  std::unordered_set<std::string> found;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string* id = call_of(entries[i], true);
    if (id != nullptr && missing.contains(*id) && found.insert(*id).second) {
      replay.push_back(i);
    }
  }
  waiting.clear();
  for (const auto& id : order) {
    if (!found.contains(id)) {
      waiting.push_back(id);
    }
  }
  return replay;
}

}  // namespace phasekit::app
