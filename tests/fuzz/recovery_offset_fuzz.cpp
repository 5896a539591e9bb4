// libFuzzer target: a returning client's `auth.offset` (anything a client can send) and the
// conversation it is matched against. Nothing may throw or crash; an offset that parses formats back
// to the same text; the results chosen for replay are distinct tool entries with a string callId, in
// the order they are stored.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "phasekit/app/recovery.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using nlohmann::json;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\xff');
  const std::string_view offset_text = input.substr(0, split);
  const auto offset = phasekit::app::parse_offset(offset_text);
  if (!offset) {
    return 0;
  }
  if (phasekit::app::format_offset(*offset) != offset_text) {
    __builtin_trap();
  }
  std::vector<json> entries;
  std::string_view rest = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  while (!rest.empty() && entries.size() < 256) {
    const auto nl = rest.find('\n');
    json entry = json::parse(rest.substr(0, nl), nullptr, false);
    entries.push_back(entry.is_object() ? std::move(entry) : json::object());
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  std::vector<std::string> waiting;
  const auto replay = phasekit::app::results_to_replay(entries, *offset, waiting);
  std::set<std::string> seen;
  std::size_t last = 0;
  for (std::size_t n = 0; n < replay.size(); ++n) {
    const std::size_t i = replay[n];
    if (i >= entries.size() || (n > 0 && i <= last)) {
      __builtin_trap();
    }
    last = i;
    const json& e = entries[i];
    const auto role = e.find("role");
    const auto result = e.find("result");
    if (role == e.end() || *role != "tool" || result == e.end() || !result->is_object() ||
        !result->contains("callId") || !(*result)["callId"].is_string() ||
        !seen.insert((*result)["callId"].get<std::string>()).second) {
      __builtin_trap();
    }
  }
  return 0;
}
