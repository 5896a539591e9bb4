#pragma once
// Structured logging across the whole tree and the plugin boundary. A Logger is handed to each
// component (never a global); lines are JSON objects. Secrets are wrapped in Secret and can only be
// written as "***": the logger has no way to print them.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace phasekit {

enum class LogLevel : std::uint8_t { trace, debug, info, warn, error, off };

/// A value that must never reach a log line, a config dump or an error message.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  [[nodiscard]] const std::string& reveal() const noexcept { return value_; }
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
  static constexpr std::string_view kMask = "***";

 private:
  std::string value_;
};

/// One key/value of a log line. Holds views: build it for the duration of the call only.
class LogField {
 public:
  enum class Type : std::uint8_t { integer, unsigned_integer, real, boolean, text, secret };

  LogField(std::string_view key, int v) noexcept : key_(key), type_(Type::integer), i_(v) {}
  LogField(std::string_view key, long v) noexcept : key_(key), type_(Type::integer), i_(v) {}
  LogField(std::string_view key, long long v) noexcept : key_(key), type_(Type::integer), i_(v) {}
  LogField(std::string_view key, unsigned v) noexcept : key_(key), type_(Type::unsigned_integer), u_(v) {}
  LogField(std::string_view key, unsigned long v) noexcept : key_(key), type_(Type::unsigned_integer), u_(v) {}
  LogField(std::string_view key, unsigned long long v) noexcept
      : key_(key), type_(Type::unsigned_integer), u_(v) {}
  LogField(std::string_view key, double v) noexcept : key_(key), type_(Type::real), d_(v) {}
  LogField(std::string_view key, bool v) noexcept : key_(key), type_(Type::boolean), b_(v) {}
  LogField(std::string_view key, std::string_view v) noexcept : key_(key), type_(Type::text), s_(v) {}
  LogField(std::string_view key, const char* v) noexcept : key_(key), type_(Type::text), s_(v) {}
  LogField(std::string_view key, const std::string& v) noexcept : key_(key), type_(Type::text), s_(v) {}
  LogField(std::string_view key, const Secret&) noexcept : key_(key), type_(Type::secret) {}

  [[nodiscard]] std::string_view key() const noexcept { return key_; }
  [[nodiscard]] Type type() const noexcept { return type_; }
  [[nodiscard]] long long integer() const noexcept { return i_; }
  [[nodiscard]] unsigned long long unsigned_integer() const noexcept { return u_; }
  [[nodiscard]] double real() const noexcept { return d_; }
  [[nodiscard]] bool boolean() const noexcept { return b_; }
  [[nodiscard]] std::string_view text() const noexcept { return type_ == Type::secret ? Secret::kMask : s_; }

 private:
  std::string_view key_;
  Type type_;
  union {
    long long i_ = 0;
    unsigned long long u_;
    double d_;
    bool b_;
  };
  std::string_view s_;
};

using LogFields = std::initializer_list<LogField>;

class Logger {
 public:
  virtual ~Logger() = default;
  [[nodiscard]] virtual bool enabled(LogLevel level) const noexcept = 0;
  /// Writes one line. Never throws; a line that cannot be written is dropped.
  virtual void write(LogLevel level, std::string_view msg, std::span<const LogField> fields) noexcept = 0;

  void log(LogLevel level, std::string_view msg, LogFields fields = {}) noexcept {
    if (enabled(level)) {
      write(level, msg, std::span<const LogField>(fields.begin(), fields.size()));
    }
  }
  void trace(std::string_view msg, LogFields fields = {}) noexcept { log(LogLevel::trace, msg, fields); }
  void debug(std::string_view msg, LogFields fields = {}) noexcept { log(LogLevel::debug, msg, fields); }
  void info(std::string_view msg, LogFields fields = {}) noexcept { log(LogLevel::info, msg, fields); }
  void warn(std::string_view msg, LogFields fields = {}) noexcept { log(LogLevel::warn, msg, fields); }
  void error(std::string_view msg, LogFields fields = {}) noexcept { log(LogLevel::error, msg, fields); }
};

}  // namespace phasekit
