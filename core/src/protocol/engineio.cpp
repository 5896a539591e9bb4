#include "phasekit/protocol/engineio.hpp"

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

}  // namespace phasekit::engineio
