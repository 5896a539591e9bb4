#include "phasekit/net/socketio_server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <vector>

#include "phasekit/random_id.hpp"

namespace phasekit::net {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using socketio::PacketType;

class Connection;

/// A socket's handle for its application: every call hops onto the connection's strand.
class Socket final : public SocketIoSocket, public std::enable_shared_from_this<Socket> {
 public:
  Socket(std::weak_ptr<Connection> connection, std::string nsp)
      : connection_(std::move(connection)), nsp_(std::move(nsp)) {}

  [[nodiscard]] const std::string& nsp() const override { return nsp_; }
  void emit(json args) override;
  void disconnect() override;
  void close_connection(std::string reason) override;

 private:
  template <class F>
  void on_strand(F f);

  std::weak_ptr<Connection> connection_;  // and its strand: a socket whose connection is gone does nothing
  std::string nsp_;
};

/// The Socket.IO side of one Engine.IO session: its namespaces, in the states socket.io's Client
/// keeps them (absent → connecting → connected), and the decoder of its packets.
class Connection final : public EngineHandler, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<const SocketIoNamespaces> namespaces, const SocketIoSettings& settings, Logger& log,
             const std::shared_ptr<EngineSession>& session)
      : namespaces_(std::move(namespaces)),
        log_(log),
        session_(session),
        strand_(session->strand()),
        decoder_(settings.limits) {}

  void start_connect_timer(std::chrono::milliseconds timeout) {
    connect_timer_ = std::make_unique<asio::steady_timer>(strand_, timeout);
    connect_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->joined_) {
        return;
      }
      self->close("connect timeout");
    });
  }

  [[nodiscard]] const IoStrand& strand() const noexcept { return strand_; }

  // ---- EngineHandler (on the strand) --------------------------------------------------------
  void on_message(engineio::Packet packet) override {
    auto decoded = packet.binary ? decoder_.feed_binary(std::move(packet.data)) : decoder_.feed(packet.data);
    if (!decoded) {
      log_.info("client.bad_packet", {{"sid", sid()}, {"error", decoded.error().message}});
      close("parse error");
      return;
    }
    // A binary packet for a namespace the client has not joined is refused at its first part:
    // its attachments are never buffered.
    if (const socketio::Packet* pending = decoder_.pending(); pending && !connected(pending->nsp)) {
      log_.info("client.packet_before_connect", {{"sid", sid()}, {"nsp", pending->nsp}});
      close("binary packet before CONNECT");
      return;
    }
    for (auto& p : *decoded) {
      if (closed_) {
        return;
      }
      on_packet(std::move(p));
    }
  }

  void on_close(std::string_view reason) override {
    closed_ = true;
    connect_timer_.reset();
    decoder_.reset();
    auto sockets = std::move(sockets_);
    sockets_.clear();
    for (auto& entry : sockets) {
      if (entry.handler) {
        entry.handler->on_disconnect(reason);
      }
    }
  }

  void on_shutdown(std::string_view reason) override {
    auto sockets = std::move(sockets_);
    sockets_.clear();
    for (auto& entry : sockets) {
      if (entry.handler) {
        entry.handler->on_disconnect(reason);
        send(socketio::Packet::disconnect(entry.socket->nsp()));
      }
    }
  }

  // ---- from Socket (on the strand) ----------------------------------------------------------
  void emit(const Socket* socket, json args) {
    auto* entry = find(socket);
    if (entry == nullptr) {
      return;
    }
    auto packet = socketio::Packet::event(socket->nsp(), std::move(args));
    if (!entry->handler) {
      entry->early.push_back(std::move(packet));  // emitted while connecting: sent after the CONNECT answer
      return;
    }
    send(packet);
  }

  void disconnect(const Socket* socket) {
    auto* entry = find(socket);
    if (entry == nullptr || !entry->handler) {
      return;
    }
    auto handler = std::move(entry->handler);
    erase(socket->nsp());
    send(socketio::Packet::disconnect(socket->nsp()));
    handler->on_disconnect("server namespace disconnect");
  }

  void close_connection(const Socket* socket, std::string reason) {
    if (find(socket) == nullptr) {
      return;
    }
    erase(socket->nsp());
    send(socketio::Packet::disconnect(socket->nsp()));
    if (auto s = session_.lock()) {
      s->close_after_flush(std::move(reason));
    }
  }

 private:
  struct Entry {
    std::shared_ptr<Socket> socket;
    std::unique_ptr<SocketIoHandler> handler;  // null while the CONNECT is being decided
    std::vector<socketio::Packet> early;
  };

  [[nodiscard]] bool connected(std::string_view nsp) const {
    const auto it = entry_of(nsp);
    return it != sockets_.end() && it->handler != nullptr;
  }

  std::vector<Entry>::iterator entry_of(std::string_view nsp) {
    return std::find_if(sockets_.begin(), sockets_.end(), [nsp](const Entry& e) { return e.socket->nsp() == nsp; });
  }
  [[nodiscard]] std::vector<Entry>::const_iterator entry_of(std::string_view nsp) const {
    return std::find_if(sockets_.begin(), sockets_.end(), [nsp](const Entry& e) { return e.socket->nsp() == nsp; });
  }
  void erase(std::string_view nsp) {
    if (const auto it = entry_of(nsp); it != sockets_.end()) {
      sockets_.erase(it);
    }
  }

  Entry* find(const Socket* socket) {
    if (closed_) {
      return nullptr;
    }
    const auto it = entry_of(socket->nsp());
    return it == sockets_.end() || it->socket.get() != socket ? nullptr : &*it;
  }

  /// The Engine.IO session's id (not kept here: 50 bytes of every connection); "" once it is gone.
  [[nodiscard]] std::string sid() const {
    const auto s = session_.lock();
    return s ? s->sid() : std::string();
  }

  void close(std::string_view reason) {
    if (auto s = session_.lock()) {
      s->close(reason);
    }
  }

  void send(const socketio::Packet& packet) {
    auto s = session_.lock();
    if (!s) {
      return;
    }
    for (auto& part : socketio::encode(packet)) {
      s->send(engineio::Packet{engineio::PacketType::message, std::move(part.data), part.binary});
    }
  }

  /// As socket.io's Client.ondecoded: CONNECT to a namespace not joined; anything else to a joined
  /// one; every other combination closes the connection ("invalid state").
  void on_packet(socketio::Packet p) {
    const auto it = entry_of(p.nsp);
    if (it == sockets_.end()) {
      if (p.type == PacketType::connect) {
        connect(std::move(p));
        return;
      }
      log_.info("client.packet_before_connect", {{"sid", sid()}, {"nsp", p.nsp}});
      close("packet before CONNECT");
      return;
    }
    if (!it->handler || p.type == PacketType::connect || p.type == PacketType::connect_error) {
      log_.info("client.invalid_state", {{"sid", sid()}, {"nsp", p.nsp}});
      close("invalid state");
      return;
    }
    switch (p.type) {
      case PacketType::disconnect: {
        auto handler = std::move(it->handler);
        sockets_.erase(it);
        handler->on_disconnect("client namespace disconnect");
        return;
      }
      case PacketType::event:
      case PacketType::binary_event: on_event(it->socket, *it->handler, std::move(p)); return;
      default: return;  // ACK: the server asks clients for none
    }
  }

  void connect(socketio::Packet p) {
    const auto ns = namespaces_->find(p.nsp);
    if (ns == namespaces_->end()) {
      send(socketio::Packet::connect_error(p.nsp, "Invalid namespace"));
      return;
    }
    auto socket = std::make_shared<Socket>(weak_from_this(), p.nsp);
    sockets_.push_back(Entry{socket, nullptr, {}});
    const json auth = p.has_data() && p.data.is_object() ? std::move(p.data) : json::object();
    ns->second->connect(auth, socket, sid(),
                        [weak = weak_from_this(), strand = strand_, socket](SocketIoConnectResult r) mutable {
                          asio::post(strand, [weak, socket, r = std::move(r)]() mutable {
                            if (auto self = weak.lock()) {
                              self->on_connect_result(socket, std::move(r));
                            } else if (r.handler) {
                              r.handler->on_disconnect("closed while connecting");
                            }
                          });
                        });
  }

  void on_connect_result(const std::shared_ptr<Socket>& socket, SocketIoConnectResult r) {
    Entry* entry = find(socket.get());
    if (entry == nullptr) {
      if (r.handler) {
        r.handler->on_disconnect("closed while connecting");
      }
      return;
    }
    if (!r.handler) {
      erase(socket->nsp());
      send(socketio::Packet::connect_error(socket->nsp(), r.error));
      return;
    }
    entry->handler = std::move(r.handler);
    joined_ = true;
    connect_timer_.reset();  // a joined connection holds no timer
    // The socket's id (from the CSPRNG) is the client's to know: the server needs it no more.
    send(socketio::Packet::connect_ok(socket->nsp(), random_url_id(), r.pid));
    for (const auto& early : std::exchange(entry->early, {})) {
      send(early);
    }
  }

  void on_event(std::shared_ptr<Socket> socket, SocketIoHandler& handler, socketio::Packet p) {
    json& name = p.data[0];
    std::string event = name.is_string() ? name.get<std::string>() : name.dump();
    json args = json::array();
    for (std::size_t i = 1; i < p.data.size(); ++i) {
      args.push_back(std::move(p.data[i]));
    }
    SocketIoAck ack;
    if (p.id) {
      ack = [weak = weak_from_this(), strand = strand_, socket, id = *p.id](json reply) {
        asio::post(strand, [weak, socket, id, reply = std::move(reply)]() mutable {
          auto self = weak.lock();
          if (self && self->find(socket.get()) != nullptr) {
            self->send(socketio::Packet::ack(socket->nsp(), id, std::move(reply)));
          }
        });
      };
    }
    handler.on_event(std::move(event), std::move(args), std::move(ack));
  }

  std::shared_ptr<const SocketIoNamespaces> namespaces_;
  Logger& log_;
  std::weak_ptr<EngineSession> session_;
  IoStrand strand_;
  socketio::Decoder decoder_;
  std::unique_ptr<asio::steady_timer> connect_timer_;  // until a namespace is joined
  // One per namespace joined or joining (a few at most: the server's namespaces), in a vector: a
  // map's node per connection cost 30 bytes more.
  std::vector<Entry> sockets_;
  bool joined_ = false;  // a namespace was joined once: the connect timeout is over
  bool closed_ = false;
};

template <class F>
void Socket::on_strand(F f) {
  // The Socket rides along: the Connection finds its entry by this pointer.
  const auto connection = connection_.lock();
  if (!connection) {
    return;
  }
  asio::post(connection->strand(), [weak = connection_, self = shared_from_this(), f = std::move(f)]() mutable {
    if (auto c = weak.lock()) {
      f(*c, self.get());
    }
  });
}

void Socket::emit(json args) {
  on_strand([args = std::move(args)](Connection& c, const Socket* s) mutable { c.emit(s, std::move(args)); });
}

void Socket::disconnect() {
  on_strand([](Connection& c, const Socket* s) { c.disconnect(s); });
}

void Socket::close_connection(std::string reason) {
  on_strand([reason = std::move(reason)](Connection& c, const Socket* s) mutable {
    c.close_connection(s, std::move(reason));
  });
}

}  // namespace

HandlerFactory socketio_handlers(SocketIoNamespaces namespaces, SocketIoSettings settings, Logger& log) {
  auto shared = std::make_shared<const SocketIoNamespaces>(std::move(namespaces));
  return [shared, settings, &log](const std::shared_ptr<EngineSession>& session) -> std::shared_ptr<EngineHandler> {
    auto connection = std::make_shared<Connection>(shared, settings, log, session);
    connection->start_connect_timer(settings.connect_timeout);
    return connection;
  };
}

}  // namespace phasekit::net
