#include "ws_connection.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include <vector>

namespace phasekit::net {
namespace asio = boost::asio;
using websocket::CloseCode;
using websocket::Opcode;

namespace {

/// What one readable socket is read into: the thread's, so an idle connection holds none.
constexpr std::size_t kScratchBytes = 64 * 1024;
/// Reads per readiness before the others on this thread get their turn.
constexpr int kReadsPerTurn = 16;

char* scratch() {
  thread_local const std::unique_ptr<char[]> buffer = std::make_unique<char[]>(kScratchBytes);
  return buffer.get();
}

}  // namespace

WsConnection::WsConnection(Socket socket, std::size_t max_message, std::shared_ptr<void> hold)
    : socket_(std::move(socket)), reader_(max_message), hold_(std::move(hold)) {}

void WsConnection::start(std::shared_ptr<WsHandler> handler) {
  handler_ = std::move(handler);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  if (ec) {
    fail("transport error", CloseCode::internal, "");
    return;
  }
  wait_readable();
}

void WsConnection::queue(Opcode opcode, std::string_view payload) {
  if (!close_sent_ && !finished_) {
    websocket::encode_into(queued_, opcode, payload);
  }
}

void WsConnection::flush() {
  if (!writing_ && (!queued_.empty() || pong_)) {
    write_next();
  }
}

void WsConnection::close(CloseCode code, std::string_view reason) {
  handler_.reset();
  send_close(websocket::close_payload(code, reason));
}

void WsConnection::send_close(std::string payload) {
  if (close_sent_ || finished_) {
    return;
  }
  websocket::encode_into(queued_, Opcode::close, payload);
  close_sent_ = true;
  pong_.reset();
  close_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor(), kCloseTime);
  close_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->finish();  // the client read nothing of it, or never closed its side
    }
  });
  flush();
}

void WsConnection::wait_readable() {
  if (reading_ || finished_) {
    return;
  }
  reading_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
    self->reading_ = false;
    if (self->finished_) {
      return;
    }
    if (ec) {
      self->broken();
      return;
    }
    self->on_readable();
  });
}

void WsConnection::on_readable() {
  char* buffer = scratch();
  std::vector<websocket::Event> events;
  for (int turn = 0; turn < kReadsPerTurn && !finished_; ++turn) {
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer, kScratchBytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      break;
    }
    if (ec) {
      // The peer's FIN or a reset. While tearing down that is the end we wait for.
      if (tearing_down_) {
        finish();
      } else {
        broken();
      }
      return;
    }
    if (close_sent_) {
      // Our close frame is out or on its way: what the client still sends is read and dropped.
      drained_ += n;
      if (drained_ >= kDrainBytes) {
        finish();
        return;
      }
    } else {
      events.clear();
      auto violation = reader_.feed(std::string_view(buffer, n), events);
      for (auto& e : events) {
        dispatch(e);
        if (close_sent_ || finished_) {
          break;
        }
      }
      if (violation && !close_sent_ && !finished_) {
        fail("transport error", violation->code, violation->message);
      }
    }
    if (n < kScratchBytes) {
      break;
    }
  }
  wait_readable();
}

void WsConnection::dispatch(websocket::Event& e) {
  auto self = shared_from_this();
  switch (e.opcode) {
    case Opcode::text:
    case Opcode::binary:
      // A copy: the handler may close this connection, releasing handler_, while it runs.
      if (auto h = handler_) {
        h->on_ws_message(self, e.opcode == Opcode::text, std::move(e.data));
      }
      return;
    case Opcode::ping:
      // One pong at most waits: a later ping's answer replaces it (RFC 6455 §5.5.3), so a client
      // that pings and never reads holds 125 bytes here, not a queue.
      pong_ = std::make_unique<std::string>(std::move(e.data));
      flush();
      return;
    case Opcode::close: {
      // The client's close: answered with its code (none when it sent none), and the session hears
      // of it. The server closes the TCP connection first once the answer is written (RFC 6455 §7.1.1).
      send_close(e.close_code == 0 ? std::string() : websocket::close_payload(static_cast<CloseCode>(e.close_code), ""));
      if (auto h = std::move(handler_)) {
        h->on_ws_lost(self, "transport close");
      }
      return;
    }
    default: return;  // pong, or what the reader never yields
  }
}

void WsConnection::fail(std::string_view reason, CloseCode code, std::string_view detail) {
  auto self = shared_from_this();
  send_close(websocket::close_payload(code, detail));
  if (auto h = std::move(handler_)) {
    h->on_ws_lost(self, reason);
  }
}

void WsConnection::write_next() {
  if (writing_ || finished_) {
    return;
  }
  if (queued_.empty() && !pong_) {
    if (close_sent_) {
      begin_teardown();
    } else if (auto h = handler_) {
      h->on_ws_drained(shared_from_this());
    }
    return;
  }
  writing_ = true;
  if (pong_) {
    websocket::encode_into(writing_buffer_, Opcode::pong, *pong_);  // between two frames: never inside one
    pong_.reset();
    writing_buffer_.append(queued_);
    std::string().swap(queued_);
  } else {
    writing_buffer_.swap(queued_);
  }
  asio::async_write(socket_, asio::buffer(writing_buffer_),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      self->writing_ = false;
                      std::string().swap(self->writing_buffer_);  // an idle connection keeps no buffer
                      if (self->finished_) {
                        return;
                      }
                      if (ec) {
                        self->broken();
                        return;
                      }
                      self->write_next();
                    });
}

void WsConnection::begin_teardown() {
  if (tearing_down_ || finished_) {
    return;
  }
  tearing_down_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_send, ignored);
  wait_readable();  // until the client's FIN, kDrainBytes, or the close deadline
}

void WsConnection::broken() {
  finish();
  if (auto h = std::move(handler_)) {
    h->on_ws_lost(shared_from_this(), "transport error");
  }
}

void WsConnection::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (close_timer_) {
    close_timer_->cancel();
  }
  std::string().swap(queued_);
  pong_.reset();
  hold_.reset();
}

}  // namespace phasekit::net
