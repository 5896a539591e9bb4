#pragma once
// Engine.IO protocol v4: packets, WebSocket frames and HTTP long-polling payloads. Pure functions
// with size limits checked before any work.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/bytes.hpp"
#include "phasekit/protocol/result.hpp"

namespace phasekit::engineio {

using protocol::ParseError;
using protocol::Result;

enum class PacketType : std::uint8_t { open = 0, close, ping, pong, message, upgrade, noop };

struct Packet {
  PacketType type = PacketType::message;
  std::string data;
  bool binary = false;  // a binary message (WebSocket binary frame, or "b<base64>" in polling)

  friend bool operator==(const Packet&, const Packet&) = default;
};

struct Limits {
  std::size_t max_payload = 1000000;  // bytes of one polling body or frame (socket.io's maxHttpBufferSize)
  std::size_t max_packets = 10000;    // packets in one polling body
};

inline constexpr char kRecordSeparator = '\x1e';

/// "4hello" → {message, "hello"}. A text WebSocket frame or one record of a polling payload.
Result<Packet> decode_text(std::string_view text);
/// The text form of a non-binary packet ("<type><data>").
std::string encode_text(const Packet& packet);

/// A polling body: records separated by '\x1e', binary ones as "b<base64>".
Result<std::vector<Packet>> decode_payload(std::string_view body, const Limits& limits = {});
std::string encode_payload(const std::vector<Packet>& packets);

/// The JSON of the open packet's data.
std::string open_payload(std::string_view sid, const std::vector<std::string>& upgrades, std::int64_t ping_interval_ms,
                         std::int64_t ping_timeout_ms, std::size_t max_payload);

// Strict UTF-8 and base64 live in the lowest layer (phasekit/bytes.hpp); the codec uses them as its own.
using bytes::base64_decode;
using bytes::base64_encode;
using bytes::valid_utf8;

}  // namespace phasekit::engineio
