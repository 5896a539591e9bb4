#pragma once
// queue=redis: the options the factory reads (plugin.cpp) and the queue they make (redis_queue.cpp).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/queue.hpp"
#include "phasekit/redis/url.hpp"

namespace phasekit::queue_redis {

using Ms = std::chrono::milliseconds;

struct Options {
  redis::Endpoint endpoint;
  std::string prefix = "phasekit:";
  unsigned concurrency = 10;
  std::int64_t job_timeout_ms = 30000;
  std::int64_t max_attempts = 3;
  Ms lease{5000};            // JOB_LEASE_MS: a worker that has not renewed it for this long loses its jobs
  Ms heartbeat{1000};        // how often the lease is renewed (lease / 5)
  Ms block{1000};            // BLMOVE block time
  Ms shutdown_grace{10000};  // jobs still running then are handed back (SHUTDOWN_GRACE_MS)
};

/// The queue=redis strategy: its own I/O thread, connected to `options.endpoint`, started.
std::unique_ptr<plugin::QueueStrategy> make_queue(plugin::HostServices& host, Options options);

}  // namespace phasekit::queue_redis
