// The only translation unit with Beast in the backend library: Engine API calls over the unix socket.
#include "phasekit/backend/docker_backend.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

#include "phasekit/random_id.hpp"

namespace phasekit::backend {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Socket = asio::local::stream_protocol::socket;
using Json = nlohmann::json;

constexpr std::string_view kApi = "/v1.41";

struct Reply {
  unsigned status = 0;
  std::string body;
};

/// Closes the socket when the deadline passes, so whatever awaits on it fails.
class Deadline {
 public:
  Deadline(Socket& socket, std::chrono::milliseconds after) : timer_(socket.get_executor(), after) {
    timer_.async_wait([&socket](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        socket.close(ignored);
      }
    });
  }

 private:
  asio::steady_timer timer_;  // destroyed (so cancelled) with the coroutine frame
};

/// The message of an API error body ({"message": "..."}), else the body itself.
std::string api_message(const Reply& r) {
  const Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("message") && j["message"].is_string()) {
    return j["message"].get<std::string>();
  }
  return r.body.substr(0, 200);
}

http::request<http::string_body> make_request(http::verb verb, std::string_view target, std::string body) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "docker");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

asio::awaitable<Reply> api(std::string socket_path, http::verb verb, std::string target, std::string body,
                           std::chrono::milliseconds timeout) {
  Socket socket(co_await asio::this_coro::executor);
  const Deadline deadline(socket, timeout);
  co_await socket.async_connect(asio::local::stream_protocol::endpoint(socket_path), asio::use_awaitable);
  const auto req = make_request(verb, target, std::move(body));
  co_await http::async_write(socket, req, asio::use_awaitable);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(8 * 1024 * 1024);
  co_await http::async_read(socket, buffer, parser, asio::use_awaitable);
  co_return Reply{parser.get().result_int(), std::move(parser.get().body())};
}

/// The supervisor's stdio over a hijacked attach connection.
class DockerChannel final : public SupervisorChannel {
 public:
  DockerChannel(Socket socket, std::string_view early) : socket_(std::move(socket)) { demux_.feed(early, payload_); }
  ~DockerChannel() override { DockerChannel::close(); }

  void async_write(std::shared_ptr<const std::string> bytes, WriteDone done) override {
    asio::async_write(socket_, asio::buffer(*bytes),
                      [bytes, done = std::move(done)](boost::system::error_code ec, std::size_t) { done(ec); });
  }

  void async_read_some(asio::mutable_buffer into, ReadDone done) override {
    if (!payload_.empty()) {
      const std::size_t n = std::min(into.size(), payload_.size());
      std::memcpy(into.data(), payload_.data(), n);
      payload_.erase(0, n);
      asio::post(socket_.get_executor(), [done = std::move(done), n] { done({}, n); });
      return;
    }
    raw_.resize(16384);
    socket_.async_read_some(asio::buffer(raw_), [this, into, done = std::move(done)](boost::system::error_code ec,
                                                                                        std::size_t n) mutable {
      if (ec) {
        done(ec, 0);
        return;
      }
      demux_.feed(std::string_view(raw_.data(), n), payload_);
      async_read_some(into, std::move(done));  // a read that held only frame headers yields nothing yet
    });
  }

  void close() noexcept override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  Socket socket_;
  DockerDemuxer demux_;
  std::string raw_;
  std::string payload_;
};

asio::awaitable<std::unique_ptr<SupervisorChannel>> attach(std::string socket_path, std::string container,
                                                           std::chrono::milliseconds timeout) {
  Socket socket(co_await asio::this_coro::executor);
  {
    const Deadline deadline(socket, timeout);
    co_await socket.async_connect(asio::local::stream_protocol::endpoint(socket_path), asio::use_awaitable);
    auto req = make_request(http::verb::post,
                            fmt::format("{}/containers/{}/attach?stream=1&stdin=1&stdout=1&stderr=1", kApi, container),
                            "");
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, "tcp");
    co_await http::async_write(socket, req, asio::use_awaitable);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    co_await http::async_read_header(socket, buffer, parser, asio::use_awaitable);
    const unsigned status = parser.get().result_int();
    if (status != 101 && status != 200) {
      throw std::runtime_error(fmt::format("attach answered HTTP {}", status));
    }
    // Bytes read past the header already belong to the stream.
    co_return std::make_unique<DockerChannel>(std::move(socket), boost::beast::buffers_to_string(buffer.data()));
  }
}

constexpr std::string_view kSupervisorInContainer = "/.phasekit/sandbox";

std::string create_body(const DockerOptions& o, const std::string& workspace) {
  const BackendLimits& l = o.limits;
  // The backend's user owns them: a tmpfs over a folder the image has takes that folder's mode
  // whatever mode= says (runc), and in Debian's images /run is root's 0755, where the user could make
  // nothing, not even the supervisor's folder.
  const std::string tmpfs =
      fmt::format("rw,nosuid,nodev,uid={},gid={},size={}", o.run_as_uid, o.run_as_gid, l.tmpfs_bytes);
  Json host{{"Binds", {workspace + ":" + workspace, fmt::format("{}:{}:ro", o.supervisor, kSupervisorInContainer)}},
            {"NetworkMode", o.network},
            {"ReadonlyRootfs", true},
            // /run holds the supervisor's folder; all of them are emptied between users.
            {"Tmpfs", {{"/tmp", tmpfs}, {"/var/tmp", tmpfs}, {"/run", tmpfs}}},
            {"ShmSize", l.tmpfs_bytes},
            {"AutoRemove", true},
            {"CapDrop", {"ALL"}},
            {"SecurityOpt", {"no-new-privileges"}},
            {"CpuShares", std::max<std::uint32_t>(2, nice_weight(l.nice))}};
  if (l.processes > 0) {
    host["PidsLimit"] = l.processes;
  }
  if (l.memory_bytes > 0) {
    host["Memory"] = l.memory_bytes;
    host["MemorySwap"] = l.memory_bytes;  // no swap beyond the limit
  }
  if (o.nano_cpus > 0) {
    host["NanoCpus"] = o.nano_cpus;
  }
  // The supervisor is the entry point whatever the image's own is, and the image's HEALTHCHECK does
  // not run: in every backend it would be an exec every few seconds (the phasekit image's curls a port
  // no backend serves), and on a small host those execs starved container creation.
  Json body{{"Image", o.image},
            {"Entrypoint", {std::string(kSupervisorInContainer)}},
            {"Cmd",
             {"container", "--workspace=" + workspace, fmt::format("--file-bytes={}", l.file_bytes),
              fmt::format("--open-files={}", l.open_files)}},
            {"Healthcheck", {{"Test", {"NONE"}}}},
            {"WorkingDir", workspace},
            {"Env", {"PATH=/usr/local/bin:/usr/bin:/bin"}},
            {"AttachStdin", true},
            {"AttachStdout", true},
            {"AttachStderr", true},
            {"OpenStdin", true},
            {"StdinOnce", true},  // our connection closing ends the supervisor, and AutoRemove the container
            {"Tty", false},
            {"NetworkDisabled", o.network == "none"},
            {"Labels", {{"io.phasekit.backend", "1"}}},
            {"HostConfig", std::move(host)}};
  body["User"] = fmt::format("{}:{}", o.run_as_uid, o.run_as_gid);
  return body.dump();
}

asio::awaitable<void> remove_container(std::string socket_path, std::string container,
                                       std::chrono::milliseconds timeout) {
  try {
    // 204 removed, 404 gone already, 409 being removed (AutoRemove): all fine here.
    co_await api(std::move(socket_path), http::verb::delete_,
                 fmt::format("{}/containers/{}?force=1&v=1", kApi, container), "", timeout);
  } catch (const std::exception&) {
    // dockerd unreachable: AutoRemove takes it once our attach connection is gone.
  }
}

asio::awaitable<void> create_container(DockerOptions o, std::shared_ptr<DockerBackend> b,
                                       std::function<void(Status, plugin::BackendPtr)> done) {
  std::string step = "create";
  bool created = false;
  try {
    const Reply made =
        co_await api(o.socket_path, http::verb::post, fmt::format("{}/containers/create?name={}", kApi, b->container()),
                     create_body(o, b->workspace()), o.api_timeout);
    if (made.status != 201) {
      throw std::runtime_error(fmt::format("HTTP {}: {}", made.status, api_message(made)));
    }
    created = true;
    step = "attach to";
    auto channel = co_await attach(o.socket_path, b->container(), o.api_timeout);
    step = "start";
    const Reply started = co_await api(o.socket_path, http::verb::post,
                                       fmt::format("{}/containers/{}/start", kApi, b->container()), "", o.api_timeout);
    if (started.status != 204 && started.status != 304) {
      throw std::runtime_error(fmt::format("HTTP {}: {}", started.status, api_message(started)));
    }
    b->start(std::move(channel), [o, b, done](Status s) {
      if (s.ok()) {
        done(Status(), b);
        return;
      }
      asio::co_spawn(b->strand(), remove_container(o.socket_path, b->container(), o.api_timeout), asio::detached);
      done(std::move(s), nullptr);
    });
    co_return;
  } catch (const std::exception& e) {
    done(Status(Code::unavailable, fmt::format("docker: cannot {} container {}: {}", step, b->container(), e.what())),
         nullptr);
  }
  if (created) {
    co_await remove_container(o.socket_path, b->container(), o.api_timeout);
  }
}

asio::awaitable<void> destroy_container(DockerOptions o, std::shared_ptr<DockerBackend> b, std::function<void()> done) {
  co_await remove_container(o.socket_path, b->container(), o.api_timeout);
  std::error_code ignored;
  std::filesystem::remove_all(b->workspace(), ignored);
  done();
}

asio::awaitable<void> call_api(std::string socket_path, std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout, std::function<void(Status, unsigned, std::string)> done) {
  try {
    Reply r = co_await api(std::move(socket_path), http::string_to_verb(method), std::move(target), std::move(body),
                           timeout);
    done(Status(), r.status, std::move(r.body));
  } catch (const std::exception& e) {
    done(Status(Code::unavailable, fmt::format("docker: {}", e.what())), 0, {});
  }
}

}  // namespace

std::string docker_socket_path(std::string_view docker_host) {
  constexpr std::string_view kScheme = "unix://";
  if (docker_host.substr(0, kScheme.size()) != kScheme || docker_host.size() == kScheme.size() ||
      docker_host[kScheme.size()] != '/') {
    return {};
  }
  return std::string(docker_host.substr(kScheme.size()));
}

void DockerDemuxer::feed(std::string_view bytes, std::string& payload) {
  while (!bytes.empty()) {
    if (remaining_ == 0) {
      const std::size_t take = std::min(header_.size() - header_len_, bytes.size());
      std::memcpy(header_.data() + header_len_, bytes.data(), take);
      header_len_ += take;
      bytes.remove_prefix(take);
      if (header_len_ == header_.size()) {
        remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                     (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
        header_len_ = 0;
      }
      continue;
    }
    const std::size_t take = std::min<std::size_t>(remaining_, bytes.size());
    payload.append(bytes.substr(0, take));
    remaining_ -= static_cast<std::uint32_t>(take);
    bytes.remove_prefix(take);
  }
}

DockerBackend::DockerBackend(boost::asio::any_io_executor executor, std::string name, std::string workspace)
    : ShellBackend(boost::asio::make_strand(std::move(executor)), name, std::move(workspace)),
      container_(std::move(name)) {}

DockerDriver::DockerDriver(boost::asio::any_io_executor executor, DockerOptions options, Logger& log)
    : executor_(std::move(executor)), options_(std::move(options)), log_(log) {
  if (options_.run_as_uid <= 0 || options_.run_as_gid < 0) {
    throw std::runtime_error("docker backends run as a non-root user: set its uid and gid");
  }
  if (options_.supervisor.empty()) {
    throw std::runtime_error("docker backends need phasekit-sandbox on this host, to mount into each container");
  }
  prepare_workspace_root(options_.workspace_root);
  // The engine binds each workspace into its container: no other account of this host needs to enter.
  ::chmod(options_.workspace_root.c_str(), 0700);
}

void DockerDriver::create(std::function<void(Status, plugin::BackendPtr)> done) noexcept {
  // Unique in this process across drivers: a container of an earlier driver may still be going away.
  // The random tag: other processes (PID 1 in their containers too) may share WORKSPACE_ROOT and the engine.
  static std::atomic<std::uint64_t> next{1};
  static const std::string tag = random_tag();
  const std::string name = fmt::format("phasekit-{}-{}-{}", ::getpid(), tag, next.fetch_add(1));
  std::string ws;
  if (Status made = make_workspace(options_.workspace_root, name, options_.run_as_uid, options_.run_as_gid, ws);
      !made.ok()) {
    asio::post(executor_, [done = std::move(done), made = std::move(made)] { done(made, nullptr); });
    return;
  }
  auto backend = std::make_shared<DockerBackend>(executor_, name, ws);
  auto finish = [this, ws, done = std::move(done)](Status s, plugin::BackendPtr b) {
    if (!s.ok()) {
      log_.warn("backend.start_failed", {{"backend", "docker"}, {"error", s.message()}});
      std::error_code ignored;
      std::filesystem::remove_all(ws, ignored);
    }
    done(std::move(s), std::move(b));
  };
  asio::co_spawn(backend->strand(), create_container(options_, backend, std::move(finish)), asio::detached);
}

void DockerDriver::destroy(plugin::BackendPtr backend, std::function<void()> done) noexcept {
  auto docker = std::static_pointer_cast<DockerBackend>(backend);
  docker->stop();  // closes the attach connection: the supervisor reads EOF and the container ends
  asio::co_spawn(docker->strand(), destroy_container(options_, docker, std::move(done)), asio::detached);
}

void DockerDriver::call(std::string method, std::string target, std::string body,
                        std::function<void(Status, unsigned, std::string)> done) {
  asio::co_spawn(asio::make_strand(executor_),
                 call_api(options_.socket_path, std::move(method), std::move(target), std::move(body),
                          options_.api_timeout, std::move(done)),
                 asio::detached);
}

}  // namespace phasekit::backend
