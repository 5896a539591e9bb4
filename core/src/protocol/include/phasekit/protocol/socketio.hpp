#pragma once
// Socket.IO protocol v5 (socket.io v3/v4): packets with namespaces, ack ids and binary attachments.
// Binary data inside a packet is a nlohmann::json binary value; encode() turns each into a
// {"_placeholder":true,"num":N} and an attachment, and the Decoder puts them back.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/protocol/result.hpp"

namespace phasekit::socketio {

using protocol::ParseError;
using protocol::Result;

enum class PacketType : std::uint8_t { connect = 0, disconnect, event, ack, connect_error, binary_event, binary_ack };

struct Packet {
  PacketType type = PacketType::event;
  std::string nsp = "/";
  std::optional<std::uint64_t> id;
  nlohmann::json data;  // discarded (is_discarded()) when the packet has none
  std::size_t attachments = 0;  // binary types: how many attachments follow

  [[nodiscard]] bool has_data() const { return !data.is_discarded(); }

  /// CONNECT answer: {sid} and, when the server can resume the session later, {pid} (Socket.IO's
  /// connection-state-recovery id, which socket.io-client sends back in its auth on reconnect).
  static Packet connect_ok(std::string nsp, std::string_view sid, std::string_view pid = {});
  static Packet connect_error(std::string nsp, std::string_view message);
  static Packet disconnect(std::string nsp);
  static Packet event(std::string nsp, nlohmann::json args, std::optional<std::uint64_t> id = std::nullopt);
  static Packet ack(std::string nsp, std::uint64_t id, nlohmann::json args);
};

struct Part {
  std::string data;
  bool binary = false;
};

/// The Engine.IO messages of one packet: its text, then one binary message per attachment.
std::vector<Part> encode(const Packet& packet);

struct Limits {
  std::size_t max_attachments = 10;
  std::size_t max_depth = 64;          // JSON nesting
  std::size_t max_binary_bytes = 1000000;  // all attachments of one packet
};

/// Parses one text part; binary packets come back with their placeholders still in place.
Result<Packet> parse_text(std::string_view text, const Limits& limits = {});

/// Reassembles packets from Engine.IO messages: a binary packet is complete once all its
/// attachments have arrived. Its placeholders are checked when its text arrives: as many as it
/// announces attachments, each naming a different one, so an attachment is used exactly once and the
/// memory a packet takes is bounded by max_attachments and max_binary_bytes.
class Decoder {
 public:
  explicit Decoder(Limits limits = {}) : limits_(limits) {}
  Result<std::vector<Packet>> feed(std::string_view text);
  Result<std::vector<Packet>> feed_binary(std::string bytes);
  [[nodiscard]] bool awaiting_attachments() const noexcept { return pending_ != nullptr; }
  /// The binary packet whose attachments are awaited (placeholders in place), or null: lets the
  /// caller refuse it (e.g. before CONNECT) before any attachment is buffered.
  [[nodiscard]] const Packet* pending() const noexcept { return pending_ ? &*pending_ : nullptr; }
  /// Forgets a partly received binary packet.
  void reset() noexcept;

 private:
  Limits limits_;
  std::unique_ptr<Packet> pending_;  // a binary packet awaiting its attachments (rare: not held inline)
  std::vector<std::string> buffers_;
  std::size_t buffered_bytes_ = 0;
};

}  // namespace phasekit::socketio
