#pragma once
// Redis calls of the redis plugins, through the host's "redis" circuit breaker (HostServices::breaker):
// transport failures (UNAVAILABLE, TIMEOUT) and error replies count as failures of the dependency, so
// while redis is down every caller in the process fails fast with UNAVAILABLE until a probe succeeds.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "phasekit/plugin/host.hpp"
#include "phasekit/redis/client.hpp"
#include "phasekit/redis/url.hpp"

namespace phasekit::redis_plugins {

/// done gets OK and the reply, or the failure (an error reply becomes INTERNAL "redis: <text>").
inline void guarded(plugin::Guard& guard, const std::shared_ptr<redis::Client>& client, std::vector<std::string> argv,
                    std::function<void(Status, redis::Reply)> done,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
  auto reply = std::make_shared<redis::Reply>();
  guard.call(
      [client, argv = std::move(argv), reply, timeout](plugin::Guard::Settle settle) mutable {
        auto on_reply = [reply, settle = std::move(settle)](Status s, redis::Reply r) {
          if (s.ok() && r.is_error()) {
            s = Status(Code::internal, fmt::format("redis: {}", r.str()));
          }
          *reply = std::move(r);
          settle(std::move(s));
        };
        if (timeout.count() > 0) {
          client->command(std::move(argv), timeout, std::move(on_reply));
        } else {
          client->command(std::move(argv), std::move(on_reply));
        }
      },
      [reply, done = std::move(done)](Status s) {
        // Only an OK outcome was settled by the reply, which therefore happened before this call.
        done(s, s.ok() ? std::move(*reply) : redis::Reply());
      });
}

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
