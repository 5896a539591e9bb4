// queue=redis: the entry point and the factory that turns its JSON options into Options (the queue
// itself is redis_queue.cpp; scripts.hpp has the data layout).
#include <algorithm>
#include <cstdint>

#include "guarded.hpp"
#include "phasekit/plugin/export.hpp"
#include "phasekit/plugin_options.hpp"
#include "redis_queue.hpp"

namespace phasekit::queue_redis {
namespace {

struct Factory {
  static std::unique_ptr<plugin::QueueStrategy> create(plugin::HostServices& host, std::string_view config) {
    PluginOptions o(config);
    Options options;
    options.endpoint = redis_plugins::endpoint_of(o.text("redis_url", "redis://127.0.0.1:6379"),
                                                   o.text("redis_password", ""));
    options.prefix = o.text("prefix", "phasekit:");
    options.concurrency = static_cast<unsigned>(o.integer("concurrency", 10, 1, 10000));
    options.job_timeout_ms = o.integer("job_timeout_ms", 30000, 1, 86400000);
    options.max_attempts = o.integer("max_attempts", 3, 1, 100);
    options.lease = Ms(o.integer("lease_ms", 5000, 500, 600000));  // JOB_LEASE_MS's range (config/schema.cpp)
    options.heartbeat = Ms(o.integer("heartbeat_ms", std::max<std::int64_t>(50, options.lease.count() / 5), 50, 60000));
    options.block = Ms(o.integer("block_ms", 1000, 10, 60000));
    options.shutdown_grace = Ms(o.integer("shutdown_grace_ms", 10000, 0, 3600000));  // SHUTDOWN_GRACE_MS
    o.finish();
    return make_queue(host, std::move(options));
  }
};

}  // namespace
}  // namespace phasekit::queue_redis

PHASEKIT_PLUGIN(PHK_KIND_QUEUE, "redis", "1.0.0",
                "reliable redis queue for phasekit-workers: redelivery after a worker dies, one job per session at a time",
                phasekit::queue_redis::Factory)
