#pragma once
// A server WebSocket after its handshake, built to cost little while idle (issue 16): it holds no
// read buffer and no coroutine frame between messages. It waits for the socket to be readable, then
// reads into a buffer of the thread's and keeps only the bytes of a frame that has not all arrived
// (phasekit/protocol/websocket.hpp). Writes go out in order, one at a time, their buffer freed once written.
//
// Closing follows RFC 6455 §7.1.1: the server sends its close frame (or answers the client's),
// half-closes, and reads on until the client's FIN (at most kDrainBytes) before it closes the
// socket, so that unread bytes do not turn into a reset that destroys the close frame. All of it
// within kCloseTime of the close: a client that reads nothing cannot hold the connection open.
//
// What a client can make it hold: one pong (a ping's answer replaces one not yet written, as RFC
// 6455 §5.5.3 allows), an incomplete frame, and what the session queued (unsent_bytes(), counted in
// the session's outbox bound).
//
// Every member runs on the socket's executor (the session's strand); so do the handler's calls.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "phasekit/io_strand.hpp"
#include "phasekit/protocol/websocket.hpp"

namespace phasekit::net {

class WsConnection;

/// What a WebSocket tells its owner (the Engine.IO session), on the socket's executor.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  /// A whole message: text (UTF-8, checked) or binary.
  virtual void on_ws_message(const std::shared_ptr<WsConnection>& ws, bool text, std::string data) = 0;
  /// Everything given to send() so far is written: the owner may send more.
  virtual void on_ws_drained(const std::shared_ptr<WsConnection>& ws) = 0;
  /// The WebSocket ended: "transport close" (the client's close frame) or "transport error" (a read
  /// or write failed, the peer went away, or it broke the protocol). Not called after close().
  virtual void on_ws_lost(const std::shared_ptr<WsConnection>& ws, std::string_view reason) = 0;
};

class WsConnection final : public std::enable_shared_from_this<WsConnection> {
 public:
  /// A socket on the session's strand itself (not a type-erased executor: the socket and each of its
  /// pending waits are 24 bytes smaller).
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, IoStrand>;
  static constexpr std::chrono::seconds kCloseTime{5};
  static constexpr std::size_t kDrainBytes = std::size_t{4} << 20;

  /// `socket` is open, its handshake answered; `max_message` bounds one message (MAX_PAYLOAD_BYTES).
  /// `hold` is kept until the socket closes (the connection's place under the server's limits).
  WsConnection(Socket socket, std::size_t max_message, std::shared_ptr<void> hold);

  /// Starts reading; `handler` is held until the WebSocket ends or close() is called.
  void start(std::shared_ptr<WsHandler> handler);
  /// Queues a frame (text or binary) and writes it. Ignored once closing.
  void send(websocket::Opcode opcode, std::string_view payload) {
    queue(opcode, payload);
    flush();
  }
  /// Queues a frame to go out with the next write; flush() starts that write (with a pong that is
  /// due) unless one is in flight, whose completion writes what came meanwhile.
  void queue(websocket::Opcode opcode, std::string_view payload);
  void flush();
  /// True while a write is in flight (what send() queues now waits behind it).
  [[nodiscard]] bool writing() const noexcept { return writing_; }
  /// Sends a close frame after what is queued, then tears the connection down. The handler is
  /// released and hears nothing more.
  void close(websocket::CloseCode code, std::string_view reason);
  /// Closes the socket now, with no close frame, and releases the handler and `hold`. On the
  /// socket's strand, or when no thread runs the io_context (EngineServer::abandon_websockets).
  void abandon() {
    handler_.reset();
    finish();
  }
  /// Bytes given to send() or queue() and not yet written.
  [[nodiscard]] std::size_t unsent_bytes() const noexcept { return queued_.size() + writing_buffer_.size(); }

 private:
  void wait_readable();
  void on_readable();
  void dispatch(websocket::Event& e);
  void write_next();
  void fail(std::string_view reason, websocket::CloseCode code, std::string_view detail);
  /// Queues the close frame (after what is queued) and starts the kCloseTime deadline.
  void send_close(std::string payload);
  void begin_teardown();
  /// A read or write failed (a reset, the peer gone): the socket closes, the handler hears of it.
  void broken();
  /// Closes the socket; nothing is read, written or told after it.
  void finish();

  Socket socket_;
  websocket::Reader reader_;
  std::shared_ptr<void> hold_;
  std::shared_ptr<WsHandler> handler_;
  std::string queued_;          // frames not yet handed to the socket
  std::string writing_buffer_;  // the frames of the write in flight
  std::unique_ptr<std::string> pong_;  // the answer to the latest ping, due ahead of queued_ (rare: not inline)
  std::unique_ptr<boost::asio::steady_timer> close_timer_;  // only once closing
  std::size_t drained_ = 0;
  bool writing_ = false;
  bool reading_ = false;
  bool close_sent_ = false;     // our close frame is queued: nothing more is sent
  bool tearing_down_ = false;   // half-closed after the close frame, reading until FIN
  bool finished_ = false;       // the socket is closed
};

}  // namespace phasekit::net
