#include "phasekit/backend/supervisor_protocol.hpp"

#include <cstring>

namespace phasekit::backend::wire {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
  }
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
  }
}

std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + static_cast<std::size_t>(i)])) << (8 * i);
  }
  return v;
}

std::uint64_t get_u64(std::string_view in, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + static_cast<std::size_t>(i)])) << (8 * i);
  }
  return v;
}

}  // namespace

std::string_view type_name(FrameType type) noexcept {
  switch (type) {
    case FrameType::run: return "RUN";
    case FrameType::reset: return "RESET";
    case FrameType::ping: return "PING";
    case FrameType::ready: return "READY";
    case FrameType::output: return "OUTPUT";
    case FrameType::done: return "DONE";
    case FrameType::reset_done: return "RESET_DONE";
    case FrameType::pong: return "PONG";
    case FrameType::fatal: return "FATAL";
  }
  return "?";
}

bool known_type(std::uint8_t type) noexcept {
  return (type >= 1 && type <= 3) || (type >= 16 && type <= 21);
}

void append_header(std::string& out, FrameType type, std::uint32_t payload_bytes) {
  out.push_back(static_cast<char>(type));
  out.append(3, '\0');
  put_u32(out, payload_bytes);
}

void append_frame(std::string& out, FrameType type, std::string_view payload) {
  append_header(out, type, static_cast<std::uint32_t>(payload.size()));
  out.append(payload);
}

void FrameReader::feed(std::string_view bytes) {
  if (!error_.empty()) {
    return;
  }
  if (pos_ > 0 && pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ > 65536 && pos_ * 2 > buffer_.size()) {
    buffer_.erase(0, pos_);  // keep the consumed prefix from growing without bound
    pos_ = 0;
  }
  buffer_.append(bytes);
}

FrameReader::Result FrameReader::next(FrameType& type, std::string_view& payload) {
  if (!error_.empty()) {
    return Result::error;
  }
  const std::string_view rest = std::string_view(buffer_).substr(pos_);
  if (rest.size() < kHeaderBytes) {
    return Result::need_more;
  }
  const auto raw_type = static_cast<std::uint8_t>(rest[0]);
  if (!known_type(raw_type) || rest[1] != '\0' || rest[2] != '\0' || rest[3] != '\0') {
    error_ = "unknown frame type " + std::to_string(raw_type);
    return Result::error;
  }
  const std::uint32_t length = get_u32(rest, 4);
  if (length > kMaxPayload) {
    error_ = "frame of " + std::to_string(length) + " bytes exceeds the limit";
    return Result::error;
  }
  if (rest.size() - kHeaderBytes < length) {
    return Result::need_more;
  }
  type = static_cast<FrameType>(raw_type);
  payload = rest.substr(kHeaderBytes, length);
  pos_ += kHeaderBytes + length;
  return Result::frame;
}

std::string encode_run(const RunRequest& request) {
  std::string out;
  out.reserve(8 + request.command.size());
  put_u32(out, request.timeout_ms);
  put_u32(out, request.max_output);
  out.append(request.command);
  return out;
}

bool decode_run(std::string_view payload, RunRequest& out) {
  if (payload.size() < 8) {
    return false;
  }
  out.timeout_ms = get_u32(payload, 0);
  out.max_output = get_u32(payload, 4);
  out.command.assign(payload.substr(8));
  return out.command.find('\0') == std::string::npos;
}

std::string encode_done(const RunDone& done) {
  std::string out;
  const bool state = (done.flags & kState) != 0;
  out.reserve(16 + (state ? 4 + done.cwd.size() + done.exports.size() : 0));
  put_u32(out, static_cast<std::uint32_t>(done.exit_code));
  put_u32(out, done.flags);
  put_u64(out, done.output_bytes);
  if (state) {
    put_u32(out, static_cast<std::uint32_t>(done.cwd.size()));
    out.append(done.cwd);
    out.append(done.exports);
  }
  return out;
}

bool decode_done(std::string_view payload, RunDone& out) {
  if (payload.size() < 16) {
    return false;
  }
  out.exit_code = static_cast<std::int32_t>(get_u32(payload, 0));
  out.flags = get_u32(payload, 4);
  out.output_bytes = get_u64(payload, 8);
  out.cwd.clear();
  out.exports.clear();
  if ((out.flags & kState) == 0) {
    return payload.size() == 16;
  }
  if (payload.size() < 20) {
    return false;
  }
  const std::uint32_t cwd_bytes = get_u32(payload, 16);
  if (cwd_bytes > payload.size() - 20) {
    return false;
  }
  out.cwd.assign(payload.substr(20, cwd_bytes));
  out.exports.assign(payload.substr(20 + cwd_bytes));
  return true;
}

}  // namespace phasekit::backend::wire
