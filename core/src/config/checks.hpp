#pragma once
// Validators of text settings: nullptr when the value is fine, else a phrase saying what is allowed.
#include <string_view>

namespace phasekit::config {

const char* check_ip_address(std::string_view value);
const char* check_absolute_path(std::string_view value);
/// redis://[user:password@]host[:port][/db], rediss is refused (no TLS in hiredis 0.14), unix:///path;
/// the empty string means "no redis".
const char* check_redis_url(std::string_view value);

}  // namespace phasekit::config
