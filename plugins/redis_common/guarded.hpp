#pragma once
// Redis calls of the redis plugins, through the host's "redis" circuit breaker (HostServices::breaker):
// transport failures (UNAVAILABLE, TIMEOUT) and error replies count as failures of the dependency, so
// while redis is down every caller in the process fails fast with UNAVAILABLE until a probe succeeds.
#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "phasekit/plugin/host.hpp"
#include "phasekit/redis/client.hpp"
#include "phasekit/redis/url.hpp"

namespace phasekit::redis_plugins {

namespace detail {

/// A reply settles a guarded call: an error reply is a failure of redis (INTERNAL "redis: <text>").
/// The reply is kept in `kept` for the call's done.
inline void settle_reply(redis::Reply& kept, const plugin::Guard::Settle& settle, Status s, redis::Reply r) {
  if (s.ok() && r.is_error()) {
    s = Status(Code::internal, fmt::format("redis: {}", r.str()));
  }
  kept = std::move(r);
  settle(std::move(s));
}

/// A guarded call's done for the breaker: `done` with the kept reply when the outcome is OK. Only an OK
/// outcome was settled by the reply, which therefore happened before this call.
inline std::function<void(Status)> with_reply(std::shared_ptr<redis::Reply> kept,
                                              std::function<void(Status, redis::Reply)> done) {
  return [kept = std::move(kept), done = std::move(done)](Status s) {
    done(s, s.ok() ? std::move(*kept) : redis::Reply());
  };
}

}  // namespace detail

/// done gets OK and the reply, or the failure (an error reply becomes INTERNAL "redis: <text>").
inline void guarded(plugin::Guard& guard, const std::shared_ptr<redis::Client>& client, std::vector<std::string> argv,
                    std::function<void(Status, redis::Reply)> done,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
  auto reply = std::make_shared<redis::Reply>();
  guard.call(
      [client, argv = std::move(argv), reply, timeout](plugin::Guard::Settle settle) mutable {
        auto on_reply = [reply, settle = std::move(settle)](Status s, redis::Reply r) {
          detail::settle_reply(*reply, settle, std::move(s), std::move(r));
        };
        if (timeout.count() > 0) {
          client->command(argv, timeout, std::move(on_reply));
        } else {
          client->command(argv, std::move(on_reply));
        }
      },
      detail::with_reply(reply, std::move(done)));
}

/// A Lua script the redis plugins run by its SHA-1 (EVALSHA): a call sends 40 bytes where it sent the
/// script, and redis hashes nothing. Measured: EVAL of store=redis' result script cost redis 2.8 µs of
/// SHA-1 per call (perf, bench/audit_bench.cpp BM_ResultAlone/redis_together).
class Script {
 public:
  explicit Script(std::string body) : body_(std::move(body)), sha1_(hex_sha1(body_)) {}
  [[nodiscard]] const std::string& body() const noexcept { return body_; }
  [[nodiscard]] const std::string& sha1() const noexcept { return sha1_; }

 private:
  static std::string hex_sha1(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha1(), nullptr) != 1) {
      throw std::runtime_error("SHA-1 of a redis script failed");
    }
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out += fmt::format("{:02x}", digest[i]);
    }
    return out;
  }

  std::string body_;
  std::string sha1_;
};

/// guarded() of `argv`, an EVALSHA of `script` ({"EVALSHA", script.sha1(), numkeys, …}). A redis that
/// does not hold the script (it restarted, or SCRIPT FLUSH ran) answers NOSCRIPT: the call is then sent
/// once more as EVAL with the script, which loads it for the calls after. One outcome for the breaker.
/// `argv` is held (not copied) until the reply, for that second send; the plugins' scripts are
/// constants that outlive every call.
inline void guarded(plugin::Guard& guard, const std::shared_ptr<redis::Client>& client, const Script& script,
                    std::vector<std::string> argv, std::function<void(Status, redis::Reply)> done) {
  auto reply = std::make_shared<redis::Reply>();
  guard.call(
      [client, &script, argv = std::make_shared<std::vector<std::string>>(std::move(argv)),
       reply](plugin::Guard::Settle settle) mutable {
        // The reply's handler holds the client weakly: the client holds the handler until it runs.
        client->command(*argv, [weak = std::weak_ptr<redis::Client>(client), &script, argv, reply,
                                settle = std::move(settle)](Status s, redis::Reply r) mutable {
          const auto again = weak.lock();
          if (again && s.ok() && r.is_error() && r.str().starts_with("NOSCRIPT")) {
            (*argv)[0] = "EVAL";
            (*argv)[1] = script.body();
            again->command(*argv, [reply, settle = std::move(settle)](Status s2, redis::Reply r2) {
              detail::settle_reply(*reply, settle, std::move(s2), std::move(r2));
            });
            return;
          }
          detail::settle_reply(*reply, settle, std::move(s), std::move(r));
        });
      },
      detail::with_reply(reply, std::move(done)));
}
/// A script that is not a constant would be gone before its reply.
void guarded(plugin::Guard&, const std::shared_ptr<redis::Client>&, const Script&&, std::vector<std::string>,
             std::function<void(Status, redis::Reply)>) = delete;

/// The endpoint of the redis_url option, with the redis_password option (REDIS_PASSWORD) as its password
/// when set; throws std::invalid_argument naming the problem (the plugin's load error), never with the
/// password in it.
inline redis::Endpoint endpoint_of(const std::string& url, const std::string& password = {}) {
  redis::Endpoint endpoint;
  if (Status s = redis::parse_url(url, endpoint); !s.ok()) {
    throw std::invalid_argument(fmt::format("redis_url: {}", s.message()));
  }
  if (!password.empty()) {
    if (!endpoint.password.empty()) {
      throw std::invalid_argument("redis_url has a password and redis_password is set: expected only one of them");
    }
    endpoint.password = Secret(password);
  }
  return endpoint;
}

}  // namespace phasekit::redis_plugins
