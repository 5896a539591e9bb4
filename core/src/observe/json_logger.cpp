#include "phasekit/observe/json_logger.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>

#include "phasekit/bytes.hpp"

namespace phasekit::observe {
namespace {

void append_field_value(std::string& out, const LogField& f) {
  switch (f.type()) {
    case LogField::Type::integer: fmt::format_to(std::back_inserter(out), "{}", f.integer()); break;
    case LogField::Type::unsigned_integer: fmt::format_to(std::back_inserter(out), "{}", f.unsigned_integer()); break;
    case LogField::Type::real:
      if (std::isfinite(f.real())) {
        fmt::format_to(std::back_inserter(out), "{}", f.real());
      } else {
        out += "null";
      }
      break;
    case LogField::Type::boolean: out += f.boolean() ? "true" : "false"; break;
    case LogField::Type::text:
    case LogField::Type::secret:
      out += '"';
      append_json_escaped(out, f.text());
      out += '"';
      break;
  }
}

}  // namespace

LogLevel parse_level(std::string_view text) noexcept {
  if (text == "trace") return LogLevel::trace;
  if (text == "debug") return LogLevel::debug;
  if (text == "warn") return LogLevel::warn;
  if (text == "error") return LogLevel::error;
  if (text == "off") return LogLevel::off;
  return LogLevel::info;
}

std::string_view level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
  }
  return "info";
}

void append_json_escaped(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const std::size_t n = bytes::utf8_sequence(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
}

class LogSink::ComponentLogger final : public Logger {
 public:
  ComponentLogger(LogSink& sink, std::string component) : sink_(sink), component_(std::move(component)) {}

  [[nodiscard]] bool enabled(LogLevel level) const noexcept override {
    return level != LogLevel::off && level >= sink_.level_.load(std::memory_order_relaxed);
  }

  void write(LogLevel level, std::string_view msg, std::span<const LogField> fields) noexcept override {
    try {
      std::string line;
      line.reserve(128);
      const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
      const auto millis = now.time_since_epoch().count() % 1000;
      fmt::format_to(std::back_inserter(line), "{{\"time\":\"{:%Y-%m-%dT%H:%M:%S}.{:03}Z\",\"level\":\"{}\",\"msg\":\"",
                     std::chrono::time_point_cast<std::chrono::seconds>(now), millis, level_name(level));
      append_json_escaped(line, msg);
      line += '"';
      if (!component_.empty()) {
        line += ",\"component\":\"";
        append_json_escaped(line, component_);
        line += '"';
      }
      for (const LogField& f : fields) {
        line += ",\"";
        append_json_escaped(line, f.key());
        line += "\":";
        append_field_value(line, f);
      }
      line += "}\n";
      sink_.emit(line);
    } catch (...) {
      // Out of memory while formatting: the line is dropped, the caller goes on.
    }
  }

 private:
  LogSink& sink_;
  std::string component_;
};

LogSink::LogSink(int fd, LogLevel level)
    : writer_([fd](std::string_view line) {
        while (!line.empty()) {
          const ssize_t n = ::write(fd, line.data(), line.size());
          if (n < 0 && errno == EINTR) {
            continue;
          }
          if (n <= 0) {
            return;
          }
          line.remove_prefix(static_cast<std::size_t>(n));
        }
      }),
      level_(level) {}

LogSink::LogSink(Writer writer, LogLevel level) : writer_(std::move(writer)), level_(level) {}

LogSink::~LogSink() = default;

Logger& LogSink::logger(std::string_view component) {
  const std::lock_guard lock(mutex_);
  auto it = loggers_.find(component);
  if (it == loggers_.end()) {
    it = loggers_.emplace(std::string(component), std::make_unique<ComponentLogger>(*this, std::string(component)))
             .first;
  }
  return *it->second;
}

void LogSink::set_level(LogLevel level) noexcept { level_.store(level, std::memory_order_relaxed); }
LogLevel LogSink::level() const noexcept { return level_.load(std::memory_order_relaxed); }

void LogSink::emit(std::string_view line) noexcept {
  const std::lock_guard lock(mutex_);
  try {
    writer_(line);
  } catch (...) {
  }
}

}  // namespace phasekit::observe
