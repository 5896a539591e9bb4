#include "protocol/engineio.hpp"

#include <boost/throw_exception.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <stdexcept>

namespace phasekit::protocol {

void throw_exception_from_error(const ParseError& e, const boost::source_location& loc) {
  boost::throw_exception(std::invalid_argument(e.message), loc);
}

}  // namespace phasekit::protocol

namespace phasekit::engineio {
namespace {

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int, 256> make_decode_table() {
  std::array<int, 256> t{};
  for (auto& v : t) {
    v = -1;
  }
  for (std::size_t i = 0; i < kBase64.size(); ++i) {
    t[static_cast<unsigned char>(kBase64[i])] = static_cast<int>(i);
  }
  return t;
}
constexpr std::array<int, 256> kDecode = make_decode_table();

ParseError error(std::string message) { return ParseError{std::move(message)}; }

}  // namespace

Result<Packet> decode_text(std::string_view text) {
  if (text.empty()) {
    return error("empty packet");
  }
  const char t = text.front();
  if (t < '0' || t > '6') {
    return error(fmt::format("unknown packet type '{}'", t >= 0x20 && t < 0x7f ? std::string(1, t) : "\\x??"));
  }
  return Packet{static_cast<PacketType>(t - '0'), std::string(text.substr(1)), false};
}

std::string encode_text(const Packet& packet) {
  std::string out;
  out.reserve(packet.data.size() + 1);
  out += static_cast<char>('0' + static_cast<int>(packet.type));
  out += packet.data;
  return out;
}

Result<std::vector<Packet>> decode_payload(std::string_view body, const Limits& limits) {
  if (body.size() > limits.max_payload) {
    return error(fmt::format("payload of {} bytes exceeds maxPayload {}", body.size(), limits.max_payload));
  }
  if (body.empty()) {
    return error("empty payload");
  }
  std::vector<Packet> out;
  std::size_t start = 0;
  for (;;) {
    const auto end = body.find(kRecordSeparator, start);
    const std::string_view record = body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (out.size() >= limits.max_packets) {
      return error(fmt::format("more than {} packets in one payload", limits.max_packets));
    }
    if (!record.empty() && record.front() == 'b') {
      std::string bytes;
      if (!base64_decode(record.substr(1), bytes)) {
        return error("invalid base64 in a binary packet");
      }
      out.push_back(Packet{PacketType::message, std::move(bytes), true});
    } else {
      auto packet = decode_text(record);
      if (!packet) {
        return packet.error();
      }
      out.push_back(std::move(*packet));
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
}

std::string encode_payload(const std::vector<Packet>& packets) {
  std::string out;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (i > 0) {
      out += kRecordSeparator;
    }
    if (packets[i].binary) {
      out += 'b';
      out += base64_encode(packets[i].data);
    } else {
      out += encode_text(packets[i]);
    }
  }
  return out;
}

std::string open_payload(std::string_view sid, const std::vector<std::string>& upgrades, std::int64_t ping_interval_ms,
                         std::int64_t ping_timeout_ms, std::size_t max_payload) {
  return nlohmann::json{{"sid", sid},
                        {"upgrades", upgrades},
                        {"pingInterval", ping_interval_ms},
                        {"pingTimeout", ping_timeout_ms},
                        {"maxPayload", max_payload}}
      .dump();
}

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) | static_cast<unsigned char>(bytes[i + 2]);
    const char quad[4] = {kBase64[v >> 18], kBase64[(v >> 12) & 63], kBase64[(v >> 6) & 63], kBase64[v & 63]};
    out.append(quad, 4);
  }
  if (i + 1 == bytes.size()) {
    const std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    const char quad[4] = {kBase64[v >> 18], kBase64[(v >> 12) & 63], '=', '='};
    out.append(quad, 4);
  } else if (i + 2 == bytes.size()) {
    const std::uint32_t v =
        (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    const char quad[4] = {kBase64[v >> 18], kBase64[(v >> 12) & 63], kBase64[(v >> 6) & 63], '='};
    out.append(quad, 4);
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) {
    return false;
  }
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + static_cast<std::size_t>(k)];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) {
        return false;  // data after padding
      }
      v[k] = kDecode[static_cast<unsigned char>(c)];
      if (v[k] < 0) {
        return false;
      }
    }
    const std::uint32_t n = (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
                            (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
    // Canonical only: the bits that padding leaves unused must be zero ("42r=" is refused; found by
    // the fuzzer: it decoded, but re-encoded differently).
    if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) {
      return false;
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((n >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(n & 0xff);
    }
  }
  return true;
}

}  // namespace phasekit::engineio
