#include "phasekit/config/schema.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "phasekit/config/checks.hpp"

namespace phasekit::config {
namespace {

constexpr std::string_view N = kNoPreset;

// clang-format off
constexpr std::array<Spec, kSettingCount> kSettings{{
  // key, name, env, flag, group, type, min, max, choices, default, {phase 1, 2, 3}, doc, check, file_allowed
  {Key::phase, "phase", "PHASE", "phase", "General", Type::integer, 1, 3, "", "1", {N, N, N},
   "Scalability phase whose presets fill every setting not given explicitly: 1 monolith, 2 pooled and "
   "horizontal, 3 queue and workers."},
  {Key::config_file, "config", "PHASEKIT_CONFIG", "config", "General", Type::text, 0, 0, "", "", {N, N, N},
   "JSON file of settings (an object keyed by the names in this table). A missing or malformed file, or an "
   "unknown key in it, stops the process.", nullptr, false},
  {Key::port, "port", "PORT", "port", "Server", Type::integer, 0, 65535, "", "3000", {N, N, N},
   "TCP port of the HTTP and Socket.IO listener (0: any free port, logged at start)."},
  {Key::bind_address, "bind_address", "BIND_ADDRESS", "bind-address", "Server", Type::text, 0, 0, "",
   "127.0.0.1", {N, N, N}, "IP address to listen on (0.0.0.0 or :: for all).", &check_ip_address},
  {Key::log_level, "log_level", "LOG_LEVEL", "log-level", "Server", Type::choice, 0, 0,
   "trace|debug|info|warn|error|off", "info", {N, N, N}, "Lowest level of the JSON log lines written."},
  {Key::max_payload_bytes, "max_payload_bytes", "MAX_PAYLOAD_BYTES", "max-payload-bytes", "Server", Type::integer,
   1024, 100000000, "", "1000000", {N, N, N},
   "Largest Engine.IO message or polling body accepted (socket.io's maxHttpBufferSize); larger ones close "
   "that connection."},
  {Key::ping_interval_ms, "ping_interval_ms", "PING_INTERVAL_MS", "ping-interval-ms", "Server", Type::integer,
   100, 3600000, "", "25000", {N, N, N}, "Engine.IO heartbeat interval."},
  {Key::ping_timeout_ms, "ping_timeout_ms", "PING_TIMEOUT_MS", "ping-timeout-ms", "Server", Type::integer, 100,
   3600000, "", "20000", {N, N, N}, "Time allowed for a pong before the connection is closed."},
  {Key::connect_timeout_ms, "connect_timeout_ms", "CONNECT_TIMEOUT_MS", "connect-timeout-ms", "Server",
   Type::integer, 100, 3600000, "", "45000", {N, N, N},
   "A connection that has joined no Socket.IO namespace this long after its Engine.IO handshake is closed "
   "(socket.io's connectTimeout): a client that answers pings but never CONNECTs holds no socket for long."},
  {Key::session_grace_ms, "session_grace_ms", "SESSION_GRACE_MS", "session-grace-ms", "Server", Type::integer, 0,
   86400000, "", "30000", {N, N, N},
   "How long a disconnected session keeps its backend for a reconnect before it is released."},
  {Key::shutdown_grace_ms, "shutdown_grace_ms", "SHUTDOWN_GRACE_MS", "shutdown-grace-ms", "Server",
   Type::integer, 0, 600000, "", "10000", {N, N, N},
   "On SIGTERM: how long work in flight may run on before clients are closed and the process exits."},
  {Key::allowed_origins, "allowed_origins", "ALLOWED_ORIGINS", "allowed-origins", "Server", Type::text, 0, 0, "",
   "", {N, N, N},
   "Web pages (origins) of other sites that may use the Socket.IO endpoint, comma-separated, each exactly "
   "scheme://host[:port] (https://app.example.com, http://localhost:5173): they get CORS answers with "
   "credentials, and their WebSocket upgrades are accepted. * alone: any site, without credentials. Empty: "
   "no other site; a request from one gets 403 (polling, preflight and WebSocket alike). Requests without "
   "an Origin header (non-browser clients) and same-origin pages are always allowed.",
   &check_allowed_origins},
  {Key::admin_port, "admin_port", "ADMIN_PORT", "admin-port", "Server", Type::integer, 0, 65535, "", "3001",
   {N, N, N},
   "TCP port of the operations listener: /metrics, /stats/pool, /api/* (and /health, /ready); PORT answers "
   "404 for these. 0: any free port, logged at start. Must differ from PORT."},
  {Key::admin_bind_address, "admin_bind_address", "ADMIN_BIND_ADDRESS", "admin-bind-address", "Server", Type::text,
   0, 0, "", "127.0.0.1", {N, N, N},
   "IP address of the operations listener. Keep it on loopback, or on an address only Prometheus and "
   "operators reach (never behind the public load balancer).", &check_ip_address},
  {Key::max_connections, "max_connections", "MAX_CONNECTIONS", "max-connections", "Server", Type::integer, 1,
   1000000, "", "20000", {N, N, N},
   "Most clients at once on PORT: open TCP connections, and Engine.IO sessions (a polling session holds "
   "none between requests), each counted up to this. A connection beyond it is closed at accept; a "
   "handshake beyond it gets 503 {\"code\":4,\"message\":\"server is full\"}."},
  {Key::max_connections_per_address, "max_connections_per_address", "MAX_CONNECTIONS_PER_ADDRESS",
   "max-connections-per-address", "Server", Type::integer, 0, 1000000, "", "256", {N, N, N},
   "The same for one client address (an IPv6 client by its /64): open TCP connections and Engine.IO "
   "sessions each. 0: no limit, for a server behind a load balancer (every client then has the balancer's "
   "address: limit clients at the balancer instead)."},
  {Key::reuse_port, "reuse_port", "REUSE_PORT", "reuse-port", "Server", Type::boolean, 0, 0, "", "false", {N, N, N},
   "Bind PORT with SO_REUSEPORT: several orchestrator processes on one host share the port, and the kernel "
   "spreads new connections over them (one process holds at most its open-file limit of clients). A "
   "client's next TCP connection may reach another process, which does not know its session: for "
   "WebSocket clients; polling clients need a balancer with sticky sessions in front of a port per process."},
  {Key::io_threads, "io_threads", "IO_THREADS", "io-threads", "Server", Type::integer, 0, 256, "", "0", {N, N, N},
   "Threads that run the process's connections and sessions. 0: one per CPU core. With several processes "
   "on one host (REUSE_PORT), their threads together should not outnumber the cores: e.g. one each."},
  {Key::auth_mode, "auth_mode", "AUTH_MODE", "auth-mode", "Auth", Type::choice, 0, 0, "none|token", "none",
   {N, N, N},
   "none: every connection is its own user (local runs); token: CONNECT must carry an HMAC-SHA256 signed "
   "token with the user id and expiry."},
  {Key::auth_secret, "auth_secret", "AUTH_SECRET", "auth-secret", "Auth", Type::secret, 0, 0, "", "", {N, N, N},
   "Key that signs tokens (AUTH_MODE=token): at least 32 bytes, random-looking (8 or more distinct bytes, no "
   "repeated string, not mostly runs or sequences), not a placeholder shipped in the examples. Never printed or "
   "logged."},
  {Key::auth_issuer, "auth_issuer", "AUTH_ISSUER", "auth-issuer", "Auth", Type::text, 0, 0, "", "", {N, N, N},
   "When set, a token's iss claim must equal it (tokens minted for another service are refused).",
   &check_claim_value},
  {Key::auth_audience, "auth_audience", "AUTH_AUDIENCE", "auth-audience", "Auth", Type::text, 0, 0, "", "",
   {N, N, N}, "When set, a token's aud claim (a string or an array of strings) must contain it.",
   &check_claim_value},
  {Key::auth_max_token_lifetime_s, "auth_max_token_lifetime_s", "AUTH_MAX_TOKEN_LIFETIME_S",
   "auth-max-token-lifetime-s", "Auth", Type::integer, 0, 31536000, "", "0", {N, N, N},
   "Longest a token may be valid: exp may be at most this far ahead of now (and of iat when present). "
   "0: no cap."},
  {Key::auth_clock_leeway_s, "auth_clock_leeway_s", "AUTH_CLOCK_LEEWAY_S", "auth-clock-leeway-s", "Auth",
   Type::integer, 0, 300, "", "0", {N, N, N},
   "Clock skew allowed between the token issuer and this server when exp, nbf and iat are checked."},
  {Key::plugin_path, "plugin_path", "PHASEKIT_PLUGIN_PATH", "plugin-path", "Plugins", Type::text, 0, 0, "", "",
   {N, N, N},
   "Folders searched for libphasekit_<kind>_<name>.so, separated by ':' (empty: <exe>/../lib/phasekit)."},
  {Key::pool, "pool", "POOL_PLUGIN", "pool", "Plugins", Type::plugin, 0, 0, "", "", {N, N, N},
   "Pool plugin. Empty: warm when ENABLE_CONTAINER_POOL is on, else none."},
  {Key::queue, "queue", "QUEUE_PLUGIN", "queue", "Plugins", Type::plugin, 0, 0, "", "", {N, N, N},
   "Queue plugin. Empty: redis when ENABLE_WORKER_MODE is on, else inproc."},
  {Key::store, "store", "STORE_PLUGIN", "store", "Plugins", Type::plugin, 0, 0, "", "", {N, N, N},
   "Store plugin: memory, redis, sqlite (STORE_PATH) or postgres (POSTGRES_URL). Empty: redis when REDIS_URL is "
   "set, else memory."},
  {Key::compression, "compression", "COMPRESSION_PLUGIN", "compression", "Plugins", Type::plugin, 0, 0, "", "",
   {N, N, N}, "Compression plugin. Empty: zlib when ENABLE_CONVERSATION_COMPRESSION is on, else none."},
  {Key::autoscaler, "autoscaler", "AUTOSCALER_PLUGIN", "autoscaler", "Plugins", Type::plugin, 0, 0, "", "",
   {N, N, N}, "Autoscaler plugin. Empty: hpa when ENABLE_AUTOSCALER is on, else none."},
  {Key::enable_container_pool, "enable_container_pool", "ENABLE_CONTAINER_POOL", "enable-container-pool", "Pool",
   Type::boolean, 0, 0, "", "false", {N, "true", "true"},
   "Keep pre-warmed backends (pool=warm) instead of a cold backend per session (pool=none)."},
  {Key::pool_min_size, "pool_min_size", "POOL_MIN_SIZE", "pool-min-size", "Pool", Type::integer, 0, 10000, "",
   "2", {N, "10", "20"}, "Idle backends the warm pool keeps ready."},
  {Key::pool_max_size, "pool_max_size", "POOL_MAX_SIZE", "pool-max-size", "Pool", Type::integer, 1, 10000, "",
   "1000", {N, "5000", "5000"}, "Most backends the pool holds in all (idle and leased)."},
  {Key::pool_idle_timeout_ms, "pool_idle_timeout_ms", "POOL_IDLE_TIMEOUT_MS", "pool-idle-timeout-ms", "Pool",
   Type::integer, 1000, 86400000, "", "300000", {N, N, N},
   "An idle backend above POOL_MIN_SIZE is reaped after this long."},
  {Key::pool_acquire_timeout_ms, "pool_acquire_timeout_ms", "POOL_ACQUIRE_TIMEOUT_MS", "pool-acquire-timeout-ms",
   "Pool", Type::integer, 0, 600000, "", "5000", {N, N, N},
   "How long an acquire waits for a backend when the pool is exhausted before it fails with UNAVAILABLE."},
  {Key::pool_create_concurrency, "pool_create_concurrency", "POOL_CREATE_CONCURRENCY", "pool-create-concurrency",
   "Pool", Type::integer, 0, 10000, "", "0", {N, N, N},
   "Backends the pool makes at once (filling up to POOL_MIN_SIZE, or for callers waiting); the rest wait their "
   "turn (pool=warm). Making a sandbox is CPU work, so more at once only makes each one slower. 0: twice the "
   "CPU cores."},
  {Key::backend, "backend", "BACKEND", "backend", "Backends", Type::choice, 0, 0, "process|docker", "process",
   {N, N, N}, "Backend driver: a sandboxed shell process, or a container through the Docker Engine API."},
  {Key::sandbox, "sandbox", "SANDBOX", "sandbox", "Backends", Type::choice, 0, 0, "namespaces|none",
   "namespaces", {N, N, N},
   "Isolation of process backends. namespaces: each backend is PID 1 of its own pid, mount, network, IPC and "
   "UTS namespaces, sees the host read-only but for its workspace and fresh tmpfs, runs its tools as nobody "
   "under seccomp; the process refuses to start where that cannot be made. none: plain processes with no "
   "isolation at all, for development only (warned at every start)."},
  {Key::backend_nice, "backend_nice", "BACKEND_NICE", "backend-nice", "Backends", Type::integer, 0, 19, "", "10",
   {N, N, N},
   "CPU niceness of process backends and every tool they run: when tools saturate the CPU, the "
   "orchestrator's event loop (and the acquisitions, heartbeats and results it serves) still runs first. "
   "0 gives tools the orchestrator's priority."},
  {Key::workspace_root, "workspace_root", "WORKSPACE_ROOT", "workspace-root", "Backends", Type::text, 0, 0, "",
   "/tmp/phasekit-workspaces", {N, N, N},
   "Folder under which each session gets its workspace (removed when the session ends).", &check_absolute_path},
  {Key::docker_host, "docker_host", "DOCKER_HOST", "docker-host", "Backends", Type::text, 0, 0, "",
   "unix:///var/run/docker.sock", {N, N, N},
   "Docker Engine API socket of the docker backend (BACKEND=docker).", &check_docker_host},
  {Key::docker_image, "docker_image", "DOCKER_IMAGE", "docker-image", "Backends", Type::text, 0, 0, "",
   "phasekit-backend:latest", {N, N, N},
   "Image of docker backends; it must hold bash, timeout and find (never pulled: build or load it first)."},
  {Key::docker_network, "docker_network", "DOCKER_NETWORK", "docker-network", "Backends", Type::text, 0, 0, "",
   "none", {N, N, N}, "Network of docker backends: none (no network at all), or a docker network name."},
  {Key::backend_memory_bytes, "backend_memory_bytes", "BACKEND_MEMORY_BYTES", "backend-memory-bytes", "Backends",
   Type::integer, 0, 1099511627776, "", "268435456", {N, N, N},
   "Memory of each backend, its tmpfs files and swap included (a cgroup where the machine offers one, else "
   "each process's address space; 0: no limit). A call that reaches it ends with RESOURCE_EXHAUSTED."},
  {Key::backend_cpus, "backend_cpus", "BACKEND_CPUS", "backend-cpus", "Backends", Type::text, 0, 0, "", "1",
   {N, N, N}, "CPU time each backend may use, in CPUs as docker run --cpus (0: no cap).", &check_cpus},
  {Key::backend_processes, "backend_processes", "BACKEND_PROCESSES", "backend-processes", "Backends",
   Type::integer, 0, 1000000, "", "256", {N, N, N},
   "Processes and threads each backend may hold at once (0: no limit). A fork bomb ends its call with "
   "RESOURCE_EXHAUSTED and every process of the backend is killed."},
  {Key::backend_tmpfs_bytes, "backend_tmpfs_bytes", "BACKEND_TMPFS_BYTES", "backend-tmpfs-bytes", "Backends",
   Type::integer, 4096, 1099511627776, "", "67108864", {N, N, N},
   "Size of each of a backend's /tmp, /var/tmp and /dev/shm (fresh tmpfs, emptied between users)."},
  {Key::backend_file_bytes, "backend_file_bytes", "BACKEND_FILE_BYTES", "backend-file-bytes", "Backends",
   Type::integer, 0, 1099511627776, "", "268435456", {N, N, N},
   "Largest file a tool may write (RLIMIT_FSIZE; a larger write fails with \"File too large\"; 0: no limit)."},
  {Key::backend_workspace_bytes, "backend_workspace_bytes", "BACKEND_WORKSPACE_BYTES", "backend-workspace-bytes",
   "Backends", Type::integer, 0, 1099511627776, "", "0", {N, N, N},
   "Most a backend's workspace may hold, files and folders together: each is a tmpfs of this size, so a user "
   "who fills theirs gets \"No space left on device\" and the volume other sessions share is untouched "
   "(0: no bound). Needs root (CAP_SYS_ADMIN) and process backends; elsewhere a warning says it is not in "
   "force. The pages count in the backend's memory."},
  {Key::backend_open_files, "backend_open_files", "BACKEND_OPEN_FILES", "backend-open-files", "Backends",
   Type::integer, 16, 1048576, "", "1024", {N, N, N}, "Open files per process in a backend (RLIMIT_NOFILE)."},
  {Key::max_requests_per_user, "max_requests_per_user", "MAX_REQUESTS_PER_USER", "max-requests-per-user",
   "Requests", Type::integer, 1, 10000, "", "5", {N, N, N},
   "Tool calls a user may have in flight across all their connections; the next gets TOO_MANY_REQUESTS."},
  {Key::max_sessions_per_user, "max_sessions_per_user", "MAX_SESSIONS_PER_USER", "max-sessions-per-user",
   "Requests", Type::integer, 1, 100000, "", "10", {N, N, N},
   "Sessions a user may hold on one instance at once, connected or within their grace period; the next "
   "connect is refused with RESOURCE_EXHAUSTED."},
  {Key::max_backends_per_user, "max_backends_per_user", "MAX_BACKENDS_PER_USER", "max-backends-per-user",
   "Requests", Type::integer, 1, 100000, "", "2", {N, N, N},
   "Backends a user's sessions may hold on one instance at once (a session keeps its backend between "
   "calls); a call that would take one more ends with RESOURCE_EXHAUSTED."},
  {Key::history_max_entries, "history_max_entries", "HISTORY_MAX_ENTRIES", "history-max-entries", "Requests",
   Type::integer, 1, 10000000, "", "1000", {N, N, N},
   "Conversation entries the store keeps per session; older ones are dropped (session:history reports how "
   "many)."},
  {Key::history_max_bytes, "history_max_bytes", "HISTORY_MAX_BYTES", "history-max-bytes", "Requests",
   Type::integer, 65536, 1073741824, "", "4194304", {N, N, N},
   "Bytes of conversation the store keeps per session (as stored, compressed when compression is on); "
   "older entries are dropped, the newest always stays."},
  {Key::history_page_bytes, "history_page_bytes", "HISTORY_PAGE_BYTES", "history-page-bytes", "Requests",
   Type::integer, 4096, 67108864, "", "524288", {N, N, N},
   "Largest session:history page (stored bytes of its entries); a page holds at least one entry."},
  {Key::job_timeout_ms, "job_timeout_ms", "JOB_TIMEOUT_MS", "job-timeout-ms", "Requests", Type::integer, 100,
   3600000, "", "30000", {N, N, N},
   "A tool call running longer is killed (the session's shell survives) and reported as TIMEOUT."},
  {Key::max_output_bytes, "max_output_bytes", "MAX_OUTPUT_BYTES", "max-output-bytes", "Requests", Type::integer,
   1024, 1073741824, "", "1048576", {N, N, N},
   "Output kept per tool call; beyond it the result says truncated: true."},
  {Key::stream_output_threshold_bytes, "stream_output_threshold_bytes", "STREAM_OUTPUT_THRESHOLD_BYTES",
   "stream-output-threshold-bytes", "Requests", Type::integer, 0, 1073741824, "", "65536", {N, N, "4096"},
   "Output larger than this is streamed as tool:output chunks before tool:result (0: always stream)."},
  {Key::enable_worker_mode, "enable_worker_mode", "ENABLE_WORKER_MODE", "enable-worker-mode", "Queue",
   Type::boolean, 0, 0, "", "false", {N, N, "true"},
   "Send jobs through the redis queue to phasekit-worker processes (queue=redis) instead of running them "
   "in process (queue=inproc)."},
  {Key::worker_concurrency, "worker_concurrency", "WORKER_CONCURRENCY", "worker-concurrency", "Queue",
   Type::integer, 1, 10000, "", "10", {N, N, N}, "Jobs one worker (or the in-process queue) runs at once."},
  {Key::job_max_attempts, "job_max_attempts", "JOB_MAX_ATTEMPTS", "job-max-attempts", "Queue", Type::integer, 1,
   100, "", "3", {N, N, N},
   "queue=redis: how many times a job is started when its workers keep dying under it; then it fails "
   "with UNAVAILABLE."},
  {Key::job_lease_ms, "job_lease_ms", "JOB_LEASE_MS", "job-lease-ms", "Queue", Type::integer, 500, 600000, "",
   "5000", {N, N, N},
   "queue=redis: a worker holds its jobs while it renews this lease (every lease/5); a worker silent for "
   "longer (dead, paused, cut off from redis) loses them: they are redelivered, and its late writes and "
   "result are refused."},
  {Key::redis_url, "redis_url", "REDIS_URL", "redis-url", "Store", Type::text, 0, 0, "", "",
   {N, "redis://127.0.0.1:6379", "redis://127.0.0.1:6379"},
   "redis://[user:password@]host[:port][/db], rediss://... (TLS: ?ssl_ca_certs=/ca.pem, and ssl_certfile + "
   "ssl_keyfile for a client certificate; the server's certificate and name are verified) or unix:///path. "
   "Set: sessions and conversations go to redis (store=redis). The password is never printed.", &check_redis_url},
  {Key::redis_password, "redis_password", "REDIS_PASSWORD", "redis-password", "Store", Type::secret, 0, 0, "", "",
   {N, N, N},
   "Password of REDIS_URL's server (AUTH, as its requirepass), kept out of the URL: for a Kubernetes Secret or "
   "a compose variable. An ACL user goes in the URL with its password (redis://user:password@host). Not both: "
   "a URL with a password and REDIS_PASSWORD are refused. Never printed or logged."},
  {Key::session_ttl_ms, "session_ttl_ms", "SESSION_TTL_MS", "session-ttl-ms", "Store", Type::integer, 1000,
   31536000000, "", "86400000", {N, N, N},
   "store=redis and store=sqlite: an active session's record and conversation expire this long after their "
   "last write (ended and detached ones after SESSION_GRACE_MS plus a minute)."},
  {Key::store_path, "store_path", "STORE_PATH", "store-path", "Store", Type::text, 0, 0, "", "phasekit.db",
   {N, N, N},
   "store=sqlite: the SQLite file sessions and conversations are kept in (created if missing; its folder must "
   "exist). Processes on one host may share it."},
  {Key::history_retention_days, "history_retention_days", "HISTORY_RETENTION_DAYS", "history-retention-days", "Store",
   Type::integer, 1, 3650, "", "30", {N, N, N},
   "Days the audit log (`phasekit history`) keeps a tool call's record; older records are purged by the store."},
  {Key::postgres_url, "postgres_url", "POSTGRES_URL", "postgres-url", "Store", Type::secret, 0, 0, "", "",
   {N, N, N},
   "store=postgres: postgres://[user[:password]@]host[:port]/database (libpq's URI, with its parameters such as "
   "?sslmode=verify-full). Never printed: it may hold a password."},
  {Key::postgres_pool_size, "postgres_pool_size", "POSTGRES_POOL_SIZE", "postgres-pool-size", "Store",
   Type::integer, 1, 1000, "", "20", {N, N, N},
   "store=postgres: connections the pool opens at most (each closed after 30 s idle, opened within 2 s)."},
  {Key::ready_requires_store, "ready_requires_store", "READY_REQUIRES_STORE", "ready-requires-store", "Store",
   Type::boolean, 0, 0, "", "false", {N, N, N},
   "/ready answers 503 while the store cannot be reached (store=redis or postgres with its circuit breaker "
   "open). Off by default: the store is shared, so every instance would turn unready at once and the "
   "balancer would have nowhere to send users. /ready's body says the store's state either way."},
  {Key::enable_conversation_compression, "enable_conversation_compression", "ENABLE_CONVERSATION_COMPRESSION",
   "enable-conversation-compression", "Store", Type::boolean, 0, 0, "", "false", {N, N, "true"},
   "Compress conversation history in the store (compression=zlib, see COMPRESSION_FORMAT); entries written "
   "before it was enabled stay readable."},
  {Key::compression_format, "compression_format", "COMPRESSION_FORMAT", "compression-format", "Store", Type::choice,
   0, 0, "deflate_dict|gzip", "deflate_dict", {N, N, N},
   "How compression=zlib writes an entry: deflate_dict (DEFLATE with a preset dictionary of conversation "
   "entries, 66 % smaller on the corpus of docs/capacity.md) or gzip (a gzip member, 53 % smaller). Both, "
   "and uncompressed entries, are always read."},
  {Key::compression_level, "compression_level", "COMPRESSION_LEVEL", "compression-level", "Store", Type::integer, 1,
   9, "", "6", {N, N, N}, "zlib level of compression=zlib: 1 fastest .. 9 smallest."},
  {Key::compression_max_entry_bytes, "compression_max_entry_bytes", "COMPRESSION_MAX_ENTRY_BYTES",
   "compression-max-entry-bytes", "Store", Type::integer, 1024, 1073741824, "", "16777216", {N, N, N},
   "Largest conversation entry compression=zlib writes or decodes; a stored entry that would decompress past "
   "it is refused as BAD_REQUEST instead of being inflated."},
  {Key::enable_autoscaler, "enable_autoscaler", "ENABLE_AUTOSCALER", "enable-autoscaler", "Autoscaler",
   Type::boolean, 0, 0, "", "false", {N, N, "true"},
   "Run the HPA-algorithm autoscaler (autoscaler=hpa) on the process's own metrics."},
  {Key::autoscaler_interval_ms, "autoscaler_interval_ms", "AUTOSCALER_INTERVAL_MS", "autoscaler-interval-ms",
   "Autoscaler", Type::integer, 1000, 3600000, "", "15000", {N, N, N},
   "How often the autoscaler evaluates (the HPA controller's --horizontal-pod-autoscaler-sync-period)."},
  {Key::autoscaler_min_replicas, "autoscaler_min_replicas", "AUTOSCALER_MIN_REPLICAS", "autoscaler-min-replicas",
   "Autoscaler", Type::integer, 1, 100000, "", "1", {N, N, N},
   "Fewest replicas (backends) the autoscaler recommends: the HPA's minReplicas."},
  {Key::autoscaler_max_replicas, "autoscaler_max_replicas", "AUTOSCALER_MAX_REPLICAS", "autoscaler-max-replicas",
   "Autoscaler", Type::integer, 1, 100000, "", "100", {N, N, N},
   "Most replicas (backends) the autoscaler recommends: the HPA's maxReplicas."},
  {Key::autoscaler_target_sessions_per_replica, "autoscaler_target_sessions_per_replica",
   "AUTOSCALER_TARGET_SESSIONS_PER_REPLICA", "autoscaler-target-sessions-per-replica", "Autoscaler",
   Type::integer, 1, 100000, "", "1", {N, N, N},
   "Sessions one replica should carry: the averageValue target of the External metric phasekit_sessions."},
  {Key::autoscaler_tolerance_percent, "autoscaler_tolerance_percent", "AUTOSCALER_TOLERANCE_PERCENT",
   "autoscaler-tolerance-percent", "Autoscaler", Type::integer, 0, 100, "", "10", {N, N, N},
   "No change while the metric is within this percentage of its target (--horizontal-pod-autoscaler-tolerance)."},
  {Key::autoscaler_max_worker_concurrency, "autoscaler_max_worker_concurrency", "AUTOSCALER_MAX_WORKER_CONCURRENCY",
   "autoscaler-max-worker-concurrency", "Autoscaler", Type::integer, 1, 10000, "", "100", {N, N, N},
   "phasekit-worker: most jobs the autoscaler lets one worker run at once (its maxReplicas of job slots; "
   "WORKER_CONCURRENCY is the floor)."},
  {Key::autoscaler_behavior, "autoscaler_behavior", "AUTOSCALER_BEHAVIOR", "autoscaler-behavior", "Autoscaler",
   Type::json, 0, 0, "", "", {N, N, N},
   "The orchestrator's HPA behavior: the autoscaling/v2 spec.behavior object, e.g. {\"scaleUp\": "
   "{\"stabilizationWindowSeconds\": 0, \"policies\": [{\"type\": \"Pods\", \"value\": 100, "
   "\"periodSeconds\": 15}], \"selectPolicy\": \"Max\"}, \"scaleDown\": {...}}; what it leaves out "
   "takes Kubernetes' defaults ({} is the default behavior). Empty: no behavior, Kubernetes' legacy rules "
   "(up at most max(2 x current, 4) per evaluation, down once the 300 s window has passed). In a config "
   "file, the object itself or a string.", nullptr, true, &check_hpa_behavior},
  {Key::autoscaler_worker_behavior, "autoscaler_worker_behavior", "AUTOSCALER_WORKER_BEHAVIOR",
   "autoscaler-worker-behavior", "Autoscaler", Type::json, 0, 0, "", "", {N, N, N},
   "phasekit-worker: the same for the spec over its job slots (AUTOSCALER_BEHAVIOR is the orchestrator's).",
   nullptr, true, &check_hpa_behavior},
  {Key::circuit_breaker_timeout_ms, "circuit_breaker_timeout_ms", "CIRCUIT_BREAKER_TIMEOUT_MS",
   "circuit-breaker-timeout-ms", "Circuit breakers", Type::integer, 0, 3600000, "", "3000", {N, N, N},
   "opossum timeout: a call to a backend (redis, docker) running longer fails as a timeout (0: never)."},
  {Key::circuit_breaker_error_threshold_percentage, "circuit_breaker_error_threshold_percentage",
   "CIRCUIT_BREAKER_ERROR_THRESHOLD_PERCENTAGE", "circuit-breaker-error-threshold-percentage", "Circuit breakers",
   Type::integer, 0, 100, "", "50", {N, N, N},
   "opossum errorThresholdPercentage: the breaker opens when failures exceed this share of the calls in its "
   "rolling 10 s window."},
  {Key::circuit_breaker_reset_timeout_ms, "circuit_breaker_reset_timeout_ms", "CIRCUIT_BREAKER_RESET_TIMEOUT_MS",
   "circuit-breaker-reset-timeout-ms", "Circuit breakers", Type::integer, 1, 3600000, "", "30000", {N, N, N},
   "opossum resetTimeout: how long an open breaker rejects calls before it lets one probe through (halfOpen)."},
  {Key::circuit_breaker_volume_threshold, "circuit_breaker_volume_threshold", "CIRCUIT_BREAKER_VOLUME_THRESHOLD",
   "circuit-breaker-volume-threshold", "Circuit breakers", Type::integer, 0, 1000000, "", "10", {N, N, N},
   "opossum volumeThreshold: calls the rolling window must hold before the breaker may open."},
}};
// clang-format on

constexpr bool table_is_in_key_order() {
  for (std::size_t i = 0; i < kSettings.size(); ++i) {
    if (static_cast<std::size_t>(kSettings[i].key) != i) {
      return false;
    }
  }
  return true;
}
static_assert(table_is_in_key_order(), "kSettings must list every Key once, in enum order");

constexpr std::array<PluginSelection, 5> kSelections{{
    {Key::pool, "pool", Key::enable_container_pool, "warm", "none"},
    {Key::queue, "queue", Key::enable_worker_mode, "redis", "inproc"},
    {Key::store, "store", Key::redis_url, "redis", "memory"},
    {Key::compression, "compression", Key::enable_conversation_compression, "zlib", "none"},
    {Key::autoscaler, "autoscaler", Key::enable_autoscaler, "hpa", "none"},
}};

// The settings above that plugins receive. Every plugin of a kind gets all of that kind's keys, and
// ignores (PluginOptions::ignore) the ones it has no use for. The autoscaler's configuration is an
// HPA spec built from its settings (plugin_host::hpa_config_json), not keys of this table.
constexpr std::array<PluginKey, 25> kPluginKeys{{
    {"pool", Key::pool_min_size, "min_size"},
    {"pool", Key::pool_max_size, "max_size"},
    {"pool", Key::pool_idle_timeout_ms, "idle_timeout_ms"},
    {"pool", Key::pool_acquire_timeout_ms, "acquire_timeout_ms"},
    {"pool", Key::pool_create_concurrency, "create_concurrency"},
    {"queue", Key::worker_concurrency, "concurrency"},
    {"queue", Key::job_timeout_ms, "job_timeout_ms"},
    {"queue", Key::redis_url, "redis_url", 1, "redis"},
    {"queue", Key::redis_password, "redis_password"},
    {"queue", Key::shutdown_grace_ms, "shutdown_grace_ms"},
    {"queue", Key::job_max_attempts, "max_attempts"},
    {"queue", Key::job_lease_ms, "lease_ms"},
    {"compression", Key::compression_format, "format"},
    {"compression", Key::compression_level, "level"},
    {"compression", Key::compression_max_entry_bytes, "max_entry_bytes"},
    {"store", Key::redis_url, "redis_url", 1, "redis"},
    {"store", Key::redis_password, "redis_password"},
    {"store", Key::session_grace_ms, "session_grace_ms"},
    {"store", Key::session_ttl_ms, "ttl_ms"},
    {"store", Key::store_path, "store_path"},
    {"store", Key::history_retention_days, "audit_retention_ms", 86400000},
    {"store", Key::postgres_url, "postgres_url", 1, "postgres"},
    {"store", Key::postgres_pool_size, "pool_size"},
    {"store", Key::history_max_entries, "conversation_max_entries"},
    {"store", Key::history_max_bytes, "conversation_max_bytes"},
}};

template <class Field>
const Spec* find_by(std::string_view wanted, Field field) noexcept {
  const auto it = std::find_if(kSettings.begin(), kSettings.end(),
                               [&](const Spec& s) { return s.*field == wanted; });
  return it == kSettings.end() ? nullptr : &*it;
}

}  // namespace

std::span<const Spec> settings() noexcept { return kSettings; }
const Spec& spec(Key key) noexcept { return kSettings[static_cast<std::size_t>(key)]; }
const Spec* find_by_name(std::string_view name) noexcept { return find_by(name, &Spec::name); }
const Spec* find_by_env(std::string_view env) noexcept { return find_by(env, &Spec::env); }
const Spec* find_by_flag(std::string_view flag) noexcept { return find_by(flag, &Spec::flag); }
std::span<const PluginSelection> plugin_selections() noexcept { return kSelections; }
std::span<const PluginKey> plugin_keys() noexcept { return kPluginKeys; }

std::string allowed_text(const Spec& s) {
  switch (s.type) {
    case Type::boolean: return "true or false";
    case Type::integer: return fmt::format("an integer in {}..{}", s.min, s.max);
    case Type::choice: return fmt::format("one of {}", s.choices);
    case Type::plugin: return "a plugin name of lower-case letters, digits and '_'";
    case Type::json: return "a JSON object";
    case Type::text:
    case Type::secret: return "text";
  }
  return "text";
}

}  // namespace phasekit::config
