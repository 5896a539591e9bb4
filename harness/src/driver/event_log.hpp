#pragma once
// --event-log FILE: every Socket.IO packet each virtual user sends and receives, one JSON line each,
// in the order this process saw them, so that what a run did can be checked call by call after it
// (the fault drills' checker reads it: which calls were sent, acknowledged and answered, and how often).
//
//   {"t":<unix ms>,"vu":<user>,"dir":"open","sid":"…"}                 the Engine.IO session is up
//   {"t":…,"vu":…,"dir":"out"|"in","type":"event"|"ack"|"connect"|"connect_error"|"disconnect",
//    "ns":"/","id":<ack id, when the packet has one>,"data":<its data>}
//   {"t":…,"vu":…,"dir":"end","code":"<how it ended>","detail":"…"}    the connection ended
//
// A CONNECT's auth is logged with its values redacted (its pid and offset kept); the file is the
// user's alone (mode 0600). Strings in `data` longer than 512 bytes are cut (at a character
// boundary) and end with "…(N bytes)"; binary attachments are {"binary": <bytes>}. Each line is written whole, under a lock,
// and reaches the file at once: a reader following the log during the run sees it, and a process
// killed outright loses nothing it logged.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace phasekit::load {

class EventLog {
 public:
  /// Opens (truncates) `path`; throws std::runtime_error naming it when it cannot.
  explicit EventLog(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// A packet: dir "out" or "in"; type its Socket.IO type's name; id its ack id, when it has one.
  void packet(std::uint64_t vu, std::string_view dir, std::string_view type, std::string_view ns,
              std::optional<std::uint64_t> id, const nlohmann::json& data);
  void opened(std::uint64_t vu, std::string_view sid);
  void ended(std::uint64_t vu, std::string_view code, std::string_view detail);

  /// `data` with long strings cut and binary values replaced by their size (what a line holds).
  static nlohmann::json bounded(const nlohmann::json& data);

 private:
  void write(nlohmann::json line);

  std::mutex mutex_;
  std::FILE* file_ = nullptr;
};

/// What a connection needs to log its packets: the run's log (null: none) and its user's id.
struct EventTap {
  EventLog* log = nullptr;
  std::uint64_t vu = 0;
};

}  // namespace phasekit::load
