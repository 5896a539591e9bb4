#include "driver/event_log.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace phasekit::load {
namespace {

constexpr std::size_t kMostStringBytes = 512;

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

EventLog::EventLog(const std::string& path) {
  // Readable by this user only: what users exchange with a server is theirs.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  file_ = fd < 0 ? nullptr : ::fdopen(fd, "w");
  if (file_ == nullptr) {
    const int err = errno;
    if (fd >= 0) {
      ::close(fd);
    }
    throw std::runtime_error(fmt::format("--event-log {}: {}", path, std::strerror(err)));
  }
}

EventLog::~EventLog() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

nlohmann::json EventLog::bounded(const nlohmann::json& data) {
  switch (data.type()) {
    case nlohmann::json::value_t::string: {
      const auto& s = data.get_ref<const std::string&>();
      if (s.size() <= kMostStringBytes) {
        return data;
      }
      std::size_t cut = kMostStringBytes;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
        --cut;  // not inside a UTF-8 sequence
      }
      return s.substr(0, cut) + fmt::format("…({} bytes)", s.size());
    }
    case nlohmann::json::value_t::binary:
      return nlohmann::json{{"binary", data.get_binary().size()}};
    case nlohmann::json::value_t::array: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& v : data) {
        out.push_back(bounded(v));
      }
      return out;
    }
    case nlohmann::json::value_t::object: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [k, v] : data.items()) {
        out[k] = bounded(v);
      }
      return out;
    }
    default:
      return data;
  }
}

void EventLog::packet(std::uint64_t vu, std::string_view dir, std::string_view type, std::string_view ns,
                      std::optional<std::uint64_t> id, const nlohmann::json& data) {
  nlohmann::json line{{"t", unix_ms()}, {"vu", vu}, {"dir", dir}, {"type", type}, {"ns", ns}};
  if (id) {
    line["id"] = *id;
  }
  if (dir == "out" && type == "connect" && data.is_object()) {
    // The CONNECT's auth holds credentials: its names stay, its values do not (the recovery pid and
    // offset a reconnection adds are the server's own, and stay).
    nlohmann::json names = nlohmann::json::object();
    for (const auto& [k, v] : data.items()) {
      names[k] = k == "pid" || k == "offset" ? bounded(v) : nlohmann::json("<redacted>");
    }
    line["data"] = std::move(names);
  } else if (!data.is_discarded()) {
    line["data"] = bounded(data);
  }
  write(std::move(line));
}

void EventLog::opened(std::uint64_t vu, std::string_view sid) {
  write(nlohmann::json{{"t", unix_ms()}, {"vu", vu}, {"dir", "open"}, {"sid", sid}});
}

void EventLog::ended(std::uint64_t vu, std::string_view code, std::string_view detail) {
  write(nlohmann::json{{"t", unix_ms()}, {"vu", vu}, {"dir", "end"}, {"code", code}, {"detail", detail}});
}

void EventLog::write(nlohmann::json line) {
  // What a server sent may not be UTF-8: replaced, never a throw on a load thread.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  const std::lock_guard lock(mutex_);
  // Each line reaches the file as it happens: a reader following the log during the run (a drill
  // waiting for calls to succeed) sees it at once, and a killed process loses nothing written.
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace phasekit::load
