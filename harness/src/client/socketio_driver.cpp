#include "client/socketio_driver.hpp"

#include "client/dialer.hpp"
#include "client/socketio_connection.hpp"

namespace phasekit::load {
namespace {

class SocketioDriver final : public Driver {
 public:
  explicit SocketioDriver(const ClientOptions& options) : dialer_(options) {}

  ConnectionPtr new_connection(const boost::asio::any_io_executor& executor, MetricSink& metrics,
                               ConnectOptions options) override {
    return make_socketio_connection(executor, dialer_, metrics, std::move(options));
  }

 private:
  Dialer dialer_;
};

}  // namespace

DriverPtr make_socketio_driver(const ClientOptions& options) { return std::make_unique<SocketioDriver>(options); }

}  // namespace phasekit::load
