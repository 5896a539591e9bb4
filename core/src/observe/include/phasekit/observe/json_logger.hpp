#pragma once
// JSON-lines logging: one object per line, {"time","level","msg","component",…fields}. One LogSink per
// process hands out a Logger per component; all of them write whole lines under one lock.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "phasekit/plugin/log.hpp"

namespace phasekit::observe {

/// "trace" … "off"; std::nullopt-free: unknown text maps to info (the config table validates it first).
LogLevel parse_level(std::string_view text) noexcept;
std::string_view level_name(LogLevel level) noexcept;

/// Appends s to out as a JSON string body (no quotes): escapes, and replaces invalid UTF-8 with U+FFFD.
void append_json_escaped(std::string& out, std::string_view s);

class LogSink {
 public:
  using Writer = std::function<void(std::string_view line)>;
  /// Writes each line (with its '\n') to fd with one write(2).
  explicit LogSink(int fd, LogLevel level = LogLevel::info);
  /// Hands each line (with its '\n') to writer; for tests.
  LogSink(Writer writer, LogLevel level);
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  /// The logger of one component; references stay valid for the sink's lifetime.
  Logger& logger(std::string_view component);
  void set_level(LogLevel level) noexcept;
  [[nodiscard]] LogLevel level() const noexcept;

 private:
  class ComponentLogger;
  friend class ComponentLogger;
  void emit(std::string_view line) noexcept;

  Writer writer_;
  std::atomic<LogLevel> level_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<ComponentLogger>, std::less<>> loggers_;
};

}  // namespace phasekit::observe
