#include "phasekit/protocol/websocket.hpp"

#include <openssl/evp.h>

#include <array>

#include "phasekit/bytes.hpp"

namespace phasekit::websocket {
namespace {

constexpr std::size_t kMostControl = 125;  // a control frame's payload (RFC 6455 5.5)

bool is_control(Opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

bool known(std::uint8_t op) noexcept { return op <= 2 || (op >= 8 && op <= 10); }

/// Codes a client may send: RFC 6455 7.4's 1000-1003 and 1007-1011, the IANA registry's 1012-1014
/// (service restart, try again later, bad gateway), and 3000-4999 for applications. 1004-1006 and
/// 1015 are reserved, never sent.
bool valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::optional<Violation> fail(CloseCode code, std::string message) { return Violation{code, std::move(message)}; }

}  // namespace

std::optional<Violation> Reader::feed(std::string_view bytes, std::vector<Event>& out) {
  // Frames that arrived whole are parsed where they lie; only a frame cut by a read is copied, and
  // the next read is appended to it.
  const bool joined = !partial_.empty();
  if (joined) {
    partial_.append(bytes);
  }
  const std::string_view in = joined ? std::string_view(partial_) : bytes;
  std::size_t at = 0;
  for (std::size_t used = 0;; at += used) {
    if (auto v = frame(in.substr(at), used, out)) {
      return v;
    }
    if (used == 0) {
      break;
    }
  }
  if (joined) {
    partial_.erase(0, at);
  } else {
    partial_.assign(in.substr(at));
  }
  if (partial_.empty()) {
    std::string().swap(partial_);  // an idle connection keeps no buffer
  }
  return std::nullopt;
}

std::optional<Violation> Reader::frame(std::string_view in, std::size_t& used, std::vector<Event>& out) {
  used = 0;
  if (in.size() < 2) {
    return std::nullopt;
  }
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto b1 = static_cast<std::uint8_t>(in[1]);
  const bool fin = (b0 & 0x80) != 0;
  if ((b0 & 0x70) != 0) {
    return fail(CloseCode::protocol_error, "reserved bits set without an extension");
  }
  if (!known(b0 & 0x0f)) {
    return fail(CloseCode::protocol_error, "unknown opcode");
  }
  const auto op = static_cast<Opcode>(b0 & 0x0f);
  if ((b1 & 0x80) == 0) {
    return fail(CloseCode::protocol_error, "a client frame is not masked");
  }
  std::uint64_t length = b1 & 0x7f;
  std::size_t header = 2;
  if (length == 126) {
    if (in.size() < 4) {
      return std::nullopt;
    }
    length = (static_cast<std::uint64_t>(static_cast<std::uint8_t>(in[2])) << 8) | static_cast<std::uint8_t>(in[3]);
    header = 4;
    if (length < 126) {
      return fail(CloseCode::protocol_error, "payload length not in its shortest form");
    }
  } else if (length == 127) {
    if (in.size() < 10) {
      return std::nullopt;
    }
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) {
      length = (length << 8) | static_cast<std::uint8_t>(in[i]);
    }
    header = 10;
    if ((length >> 63) != 0) {
      return fail(CloseCode::protocol_error, "payload length has its top bit set");
    }
    if (length <= 0xffff) {
      return fail(CloseCode::protocol_error, "payload length not in its shortest form");
    }
  }
  if (is_control(op)) {
    if (!fin) {
      return fail(CloseCode::protocol_error, "a fragmented control frame");
    }
    if (length > kMostControl) {
      return fail(CloseCode::protocol_error, "a control frame longer than 125 bytes");
    }
  } else {
    if (op == Opcode::continuation && message_opcode_ == Opcode::continuation) {
      return fail(CloseCode::protocol_error, "a continuation frame with no message to continue");
    }
    if (op != Opcode::continuation && message_opcode_ != Opcode::continuation) {
      return fail(CloseCode::protocol_error, "a new message before the last one ended");
    }
    // Checked on the header, before any of the payload is kept.
    if (length > max_message_ || message_.size() > max_message_ - length) {
      return fail(CloseCode::too_big, "message larger than the limit");
    }
  }
  header += 4;  // the mask
  if (in.size() < header || in.size() - header < length) {
    return std::nullopt;
  }
  const auto n = static_cast<std::size_t>(length);
  const char* mask = in.data() + header - 4;
  std::string payload(in.substr(header, n));
  for (std::size_t i = 0; i < n; ++i) {
    payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
  }
  used = header + n;

  if (is_control(op)) {
    Event e{op, {}, 0};
    if (op == Opcode::close) {
      if (n == 1) {
        return fail(CloseCode::protocol_error, "a close frame with a one-byte payload");
      }
      if (n >= 2) {
        e.close_code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                  static_cast<std::uint8_t>(payload[1]));
        if (!valid_close_code(e.close_code)) {
          return fail(CloseCode::protocol_error, "a close frame with an invalid code");
        }
        e.data = payload.substr(2);
        if (!bytes::valid_utf8(e.data)) {
          return fail(CloseCode::invalid_payload, "a close reason that is not UTF-8");
        }
      }
    } else {
      e.data = std::move(payload);
    }
    out.push_back(std::move(e));
    return std::nullopt;
  }
  if (op != Opcode::continuation) {
    message_opcode_ = op;
  }
  if (message_.empty() && fin) {
    message_ = std::move(payload);  // the usual case: one frame, no copy
  } else {
    message_.append(payload);
  }
  if (!fin) {
    return std::nullopt;
  }
  const Opcode kind = message_opcode_;
  message_opcode_ = Opcode::continuation;
  std::string data = std::move(message_);
  std::string().swap(message_);
  if (kind == Opcode::text && !bytes::valid_utf8(data)) {
    return fail(CloseCode::invalid_payload, "a text message that is not UTF-8");
  }
  out.push_back(Event{kind, std::move(data), 0});
  return std::nullopt;
}

void encode_into(std::string& out, Opcode opcode, std::string_view payload) {
  out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((n >> 8) & 0xff));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((n >> shift) & 0xff));
    }
  }
  out.append(payload);
}

std::string encode(Opcode opcode, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  encode_into(out, opcode, payload);
  return out;
}

std::string close_payload(CloseCode code, std::string_view reason) {
  std::string out;
  const auto c = static_cast<std::uint16_t>(code);
  out.push_back(static_cast<char>(c >> 8));
  out.push_back(static_cast<char>(c & 0xff));
  std::size_t n = std::min<std::size_t>(reason.size(), kMostControl - 2);
  // Cut on a UTF-8 boundary: never before a continuation byte.
  while (n > 0 && n < reason.size() && (static_cast<std::uint8_t>(reason[n]) & 0xc0) == 0x80) {
    --n;
  }
  out.append(reason.substr(0, n));
  return out;
}

bool valid_key(std::string_view key) {
  std::string decoded;
  return key.size() == 24 && bytes::base64_decode(key, decoded) && decoded.size() == 16;
}

std::string accept_key(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input.append(kGuid);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &size, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  return bytes::base64_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), size));
}

}  // namespace phasekit::websocket
