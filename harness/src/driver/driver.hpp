#pragma once
// The driver interface: what the runner's virtual users ask of a protocol client (connect, join a
// namespace, emit with or without an ack and an awaited event, idle, close), and what a client
// needs to make the connections of one run. The runner knows only this header; the Socket.IO
// client behind it (client/) is the only code that needs Beast.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driver/event_log.hpp"
#include "metrics.hpp"
#include "scenario.hpp"

namespace phasekit::load {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

inline SteadyClock::duration seconds(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

/// Why a connection failed or ended. A user stopped by one is counted as errors.<name>.
enum class ConnErrc : std::uint8_t {
  sockets_exhausted,  // the open-file limit of this process: the arrival counts as dropped
  connect_refused,
  connect_failed,
  connect_timeout,    // TCP connect, a handshake, or a namespace's CONNECT unanswered in time
  handshake_failed,   // an answer to a handshake the client cannot use (HTTP status, open packet)
  tls_failed,         // the TLS handshake failed: the certificate was refused (why: expired, unknown
                      // CA, name mismatch) or the server does not speak TLS
  connect_error,      // the server refused to let the user join a namespace
  upgrade_failed,
  transport_error,
  protocol_error,     // a frame or packet that does not decode
  response_timeout,   // an awaited event (or any HTTP answer) did not come in time
  ack_timeout,
  server_closed,      // Engine.IO close, or the WebSocket closed by the server
  server_disconnect,  // the server disconnected a namespace
  aborted,            // Connection::abort
  closed,             // Connection::close
};

/// The name of the report's errors.<name> counter.
constexpr std::string_view error_name(ConnErrc code) noexcept {
  switch (code) {
    case ConnErrc::sockets_exhausted: return "sockets_exhausted";
    case ConnErrc::connect_refused: return "connect_refused";
    case ConnErrc::connect_failed: return "connect_failed";
    case ConnErrc::connect_timeout: return "connect_timeout";
    case ConnErrc::handshake_failed: return "handshake_failed";
    case ConnErrc::tls_failed: return "tls_failed";
    case ConnErrc::connect_error: return "connect_error";
    case ConnErrc::upgrade_failed: return "upgrade_failed";
    case ConnErrc::transport_error: return "transport_error";
    case ConnErrc::protocol_error: return "protocol_error";
    case ConnErrc::response_timeout: return "response_timeout";
    case ConnErrc::ack_timeout: return "ack_timeout";
    case ConnErrc::server_closed: return "server_closed";
    case ConnErrc::server_disconnect: return "server_disconnect";
    case ConnErrc::aborted: return "aborted";
    case ConnErrc::closed: return "closed";
  }
  return "transport_error";
}

struct ConnError {
  ConnErrc code = ConnErrc::transport_error;
  std::string detail;  // for a person: what the peer said, the HTTP status
};

template <class T>
using ConnResult = boost::system::result<T, ConnError>;

[[noreturn]] void throw_exception_from_error(const ConnError& e, const boost::source_location& loc);

/// One emit, and what it waits for.
struct Emit {
  std::string ns;
  nlohmann::json args = nlohmann::json::array();  // [event name, arguments…]
  bool ack = false;                               // ask for an ack and wait for it
  std::optional<std::string> response;            // wait for this event from the server on ns
  // With both an ack and a response: called with the ack's arguments when it comes; true ends the
  // wait there (the ack says the response will not come), and the Reply has no response.
  std::function<bool(const nlohmann::json&)> ack_ends_wait;
};

/// What came back for an Emit: each one set when it was asked for.
struct Reply {
  std::optional<nlohmann::json> response;  // the event's first argument (null when it had none)
  std::optional<nlohmann::json> ack;       // the ack's arguments (an array)
};

/// One user's connection, used on its executor's thread only. Its user awaits one call at a time;
/// abort() may come while a call waits.
class Connection {
 public:
  virtual ~Connection() = default;

  /// Opens the connection, with a deadline for every step of it.
  virtual boost::asio::awaitable<ConnResult<void>> connect(TimePoint deadline) = 0;
  /// Joins namespace ns, sending auth in its CONNECT; returns at once when it is joined already.
  virtual boost::asio::awaitable<ConnResult<void>> join(std::string ns, std::optional<nlohmann::json> auth,
                                                        TimePoint deadline) = 0;
  /// Sends the event; when it asks for an ack or a response, waits for them until deadline. Events
  /// that arrive while nothing waits for them are counted, never kept.
  virtual boost::asio::awaitable<ConnResult<Reply>> emit(Emit request, TimePoint deadline) = 0;
  /// Returns at until, or as soon as the connection ends: a user thinking on a dead connection
  /// stops at once.
  virtual boost::asio::awaitable<void> idle(TimePoint until) = 0;
  /// Leaves the joined namespaces and closes; ended() is closed afterwards.
  virtual boost::asio::awaitable<void> close() = 0;
  /// Ends the connection at once (aborted): whatever waits on it returns.
  virtual void abort(std::string detail) = 0;
  /// How the connection ended; nullopt while it is up.
  [[nodiscard]] virtual const std::optional<ConnError>& ended() const = 0;
  /// Socket.IO's connection-state recovery: the session id (pid) the server gave namespace ns in its
  /// CONNECT answer, and the offset of the last event since (the last argument of an event, as
  /// socket.io-client keeps it). What a reconnecting client sends back in its CONNECT's auth; nullopt
  /// when the server offered no recovery.
  struct Recovery {
    std::string pid;
    std::optional<std::string> offset;
  };
  [[nodiscard]] virtual std::optional<Recovery> recovery(const std::string& ns) const {
    (void)ns;
    return std::nullopt;
  }
};
using ConnectionPtr = std::shared_ptr<Connection>;

/// What a connection sends that its user renders from the scenario's templates.
struct ConnectOptions {
  std::map<std::string, std::string> headers;
  std::string query;  // added to the handshake's query string: "a=1&b=2"
  EventTap tap;       // --event-log: where the connection logs its packets, and as which user
};

/// How the connections of one run reach the server: the scenario's target and transports and the
/// command line's network options.
struct ClientOptions {
  Target target;                      // config.target, parsed once
  std::string path = "/socket.io/";   // config.socketio.path
  bool polling = true;                // config.socketio.transports
  bool websocket = true;
  double connect_timeout_s = 10;      // the upgrade to WebSocket after connect() (which takes a deadline)
  double request_timeout_s = 10;      // a POST of the polling transport (the scenario's timeout)
  std::vector<std::string> source_addresses;  // local addresses to spread connections over
  bool auto_source_addresses = true;          // 127.0.0.1-8 for a loopback target
  bool allow_remote = false;                  // load only loopback targets unless told otherwise
  // TLS targets (https://, wss://): the server's certificate is verified against the system's CAs,
  // or those of ca_file, and must name the target's host; insecure verifies nothing.
  std::string ca_file;
  bool insecure = false;
  bool cookies = true;  // each connection keeps the cookies its server sets, as a browser does
};

/// Makes the connections of one run, and outlives them (run_scenario drops it after its workers).
class Driver {
 public:
  virtual ~Driver() = default;

  /// A connection, not connected yet, whose I/O runs on executor and which counts what it receives
  /// into metrics (both outlive it).
  virtual ConnectionPtr new_connection(const boost::asio::any_io_executor& executor, MetricSink& metrics,
                                       ConnectOptions options) = 0;
};
using DriverPtr = std::unique_ptr<Driver>;

/// Makes the driver of one run. Throws std::runtime_error for what stops a run before it starts:
/// the target does not resolve, is not loopback without allow_remote, a source address is invalid.
using DriverFactory = std::function<DriverPtr(const ClientOptions&)>;

}  // namespace phasekit::load
