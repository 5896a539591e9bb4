#include "tool_namespace.hpp"

namespace phasekit::net {
namespace {

using json = nlohmann::json;

/// The ToolService's view of a socket.
class SocketChannel final : public app::ClientChannel {
 public:
  explicit SocketChannel(std::shared_ptr<SocketIoSocket> socket) : socket_(std::move(socket)) {}
  void emit(std::string event, json payload) override {
    socket_->emit(json::array({std::move(event), std::move(payload)}));
  }
  void emit_recoverable(std::string event, json payload, std::string offset) override {
    socket_->emit(json::array({std::move(event), std::move(payload), std::move(offset)}));
  }
  /// The application ended the session itself: DISCONNECT, then the connection closes.
  void close(std::string reason) override { socket_->close_connection(std::move(reason)); }

 private:
  std::shared_ptr<SocketIoSocket> socket_;
};

/// One connected socket's session.
class ToolSocket final : public SocketIoHandler {
 public:
  ToolSocket(std::shared_ptr<app::ToolService> service, app::SessionPtr session,
             std::shared_ptr<app::ClientChannel> channel)
      : service_(std::move(service)), session_(std::move(session)), channel_(std::move(channel)) {}

  void on_event(std::string name, json args, SocketIoAck ack) override {
    app::Ack reply;
    if (ack) {
      reply = [ack = std::move(ack)](json body) { ack(json::array({std::move(body)})); };
    }
    service_->on_event(session_, name, std::move(args), std::move(reply));
  }

  void on_disconnect(std::string_view reason) override { service_->on_disconnect(session_, channel_, reason); }

 private:
  std::shared_ptr<app::ToolService> service_;
  app::SessionPtr session_;
  std::shared_ptr<app::ClientChannel> channel_;  // this socket's: a session resumed since has another
};

class ToolNamespace final : public SocketIoNamespace {
 public:
  explicit ToolNamespace(std::shared_ptr<app::ToolService> service) : service_(std::move(service)) {}

  void connect(const json& auth, std::shared_ptr<SocketIoSocket> socket, std::string_view connection_id,
               std::function<void(SocketIoConnectResult)> done) override {
    auto channel = std::make_shared<SocketChannel>(std::move(socket));
    service_->connect(auth, connection_id, channel,
                      [service = service_, channel, done = std::move(done)](Status s, app::SessionPtr session) {
                        if (!s.ok()) {
                          done(SocketIoConnectResult{nullptr, s.message(), {}});
                          return;
                        }
                        std::string pid = app::session_id_of(session);
                        done(SocketIoConnectResult{std::make_unique<ToolSocket>(service, std::move(session), channel),
                                                   {}, std::move(pid)});
                      });
  }

 private:
  std::shared_ptr<app::ToolService> service_;
};

}  // namespace

std::shared_ptr<SocketIoNamespace> tool_namespace(std::shared_ptr<app::ToolService> service) {
  return std::make_shared<ToolNamespace>(std::move(service));
}

}  // namespace phasekit::net
