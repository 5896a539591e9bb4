#pragma once
// Validators of text settings: nullptr when the value is fine, else a phrase saying what is allowed.
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

namespace phasekit::config {

const char* check_ip_address(std::string_view value);
const char* check_absolute_path(std::string_view value);
/// ALLOWED_ORIGINS: empty, * alone, or comma-separated scheme://host[:port] (net::OriginPolicy's parser).
const char* check_allowed_origins(std::string_view value);
/// redis://[user:password@]host[:port][/db], rediss://… (TLS), unix:///path;
/// the empty string means "no redis".
const char* check_redis_url(std::string_view value);
/// AUTH_SECRET with AUTH_MODE=token: nullptr when fine, else what a usable secret is. Refused: fewer than
/// 32 bytes; a placeholder shipped in k8s/, deploy/ or the docs; a low-entropy one (fewer than 8 distinct
/// bytes, a shorter string repeated, or more than 3/4 of neighbouring bytes equal or consecutive, as in
/// "aaaa…" or "abcd…0123…"). openssl rand -base64 48 passes with certainty for practical purposes.
const char* check_auth_secret(std::string_view value);
/// A secret this repository ships as an example, or one that says it is a placeholder ("replace-me",
/// "changeme" …): refused for AUTH_SECRET and REDIS_PASSWORD.
bool is_placeholder_secret(std::string_view value);
/// AUTH_ISSUER / AUTH_AUDIENCE: empty (not checked), or 1..256 printable ASCII characters.
const char* check_claim_value(std::string_view value);
/// unix:///absolute/path (the docker backend speaks the Engine API over a unix socket only).
const char* check_docker_host(std::string_view value);
/// A decimal number of CPUs as `docker run --cpus` takes it: 0, 0.5, 2 … up to 1024, 3 decimals at most.
const char* check_cpus(std::string_view value);
/// check_cpus's value in billionths of a CPU (Docker's NanoCpus); -1 for anything check_cpus refuses.
long long nano_cpus(std::string_view value);

/// An autoscaling/v2 HorizontalPodAutoscalerBehavior object as the HPA API accepts it (unknown fields,
/// periodSeconds outside 1..1800, stabilizationWindowSeconds outside 0..3600, selectPolicy other than
/// Max|Min|Disabled, an empty policies list … are refused), read by the same code as the hpa plugin's
/// (phasekit/hpa_behavior.hpp). "" when fine, else "field: reason".
std::string check_hpa_behavior(const nlohmann::json& value);

}  // namespace phasekit::config
