#pragma once
// Validators of text settings: nullptr when the value is fine, else a phrase saying what is allowed.
#include <string_view>

namespace phasekit::config {

const char* check_ip_address(std::string_view value);
const char* check_absolute_path(std::string_view value);
/// redis://[user:password@]host[:port][/db], rediss is refused (no TLS in hiredis 0.14), unix:///path;
/// the empty string means "no redis".
const char* check_redis_url(std::string_view value);
/// unix:///absolute/path (the docker backend speaks the Engine API over a unix socket only).
const char* check_docker_host(std::string_view value);
/// A decimal number of CPUs as `docker run --cpus` takes it: 0, 0.5, 2 … up to 1024, 3 decimals at most.
const char* check_cpus(std::string_view value);
/// check_cpus's value in billionths of a CPU (Docker's NanoCpus); -1 for anything check_cpus refuses.
long long nano_cpus(std::string_view value);

}  // namespace phasekit::config
