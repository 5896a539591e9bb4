#pragma once
// WebSocket framing (RFC 6455) for a server: the client's frames read from a byte stream, and the
// server's frames written. Pure code, no I/O: net/ws_connection.hpp moves the bytes.
//
// The reader keeps nothing between reads but the bytes of a frame that has not all arrived and the
// fragments of a message that has not ended, so an idle connection holds no buffer. Every rule a
// server must enforce is checked before the payload is kept: a frame larger than the message limit
// fails at its header. No extension is negotiated (RSV bits must be 0).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::websocket {

enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

/// Close codes the server sends (RFC 6455 section 7.4.1).
enum class CloseCode : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  invalid_payload = 1007,  // a text message that is not UTF-8, or a close reason that is not
  policy = 1008,
  too_big = 1009,
  internal = 1011,
};

/// What the client sent, once whole: a message (its fragments joined), or a control frame.
struct Event {
  Opcode opcode = Opcode::text;  // text, binary, close, ping or pong
  std::string data;              // the message, the ping/pong payload, or the close reason
  std::uint16_t close_code = 0;  // a close frame's code; 0 when it had none (1005)
};

/// Why the connection must be failed: the close code to send, and one line for the log.
struct Violation {
  CloseCode code = CloseCode::protocol_error;
  std::string message;
};

/// Reads client frames. Not thread-safe; one per connection.
class Reader {
 public:
  /// `max_message`: most bytes of one message, its fragments together (Engine.IO's maxPayload).
  explicit Reader(std::size_t max_message) noexcept : max_message_(max_message) {}

  /// Takes the bytes that arrived and appends every event they complete to `out`. A violation
  /// ends the reading: the caller sends a close frame with its code and feeds nothing more.
  std::optional<Violation> feed(std::string_view bytes, std::vector<Event>& out);

  /// Bytes held between reads: an incomplete frame and the fragments of an unfinished message.
  [[nodiscard]] std::size_t held() const noexcept { return partial_.size() + message_.size(); }

 private:
  /// One frame from the front of `in`: its size when whole, 0 when more bytes are needed.
  std::optional<Violation> frame(std::string_view in, std::size_t& used, std::vector<Event>& out);

  std::size_t max_message_;
  std::string partial_;  // a frame that has not all arrived
  std::string message_;  // the fragments of a message not ended yet
  Opcode message_opcode_ = Opcode::continuation;  // text or binary while a message is open
};

/// A server frame (unmasked, FIN set): the header and the payload.
std::string encode(Opcode opcode, std::string_view payload);
/// Appends a server frame to `out`, for several frames in one write.
void encode_into(std::string& out, Opcode opcode, std::string_view payload);
/// A close frame's payload: the code, then the reason cut to what a control frame holds (123 bytes,
/// on a UTF-8 boundary).
std::string close_payload(CloseCode code, std::string_view reason);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string accept_key(std::string_view key);
/// Whether a Sec-WebSocket-Key is what RFC 6455 asks for: base64 of 16 bytes.
bool valid_key(std::string_view key);

}  // namespace phasekit::websocket
