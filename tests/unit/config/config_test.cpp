#include "phasekit/config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "phasekit/config/print.hpp"

namespace phasekit::config {
namespace {

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    path_ = (std::filesystem::temp_directory_path() /
             ("phasekit-config-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".json"))
                .string();
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

Config load(std::map<std::string, std::string, std::less<>> env,
            std::vector<std::pair<std::string, std::string>> flags = {}) {
  return Config::load(Inputs{std::move(env), std::move(flags)});
}

std::string error_of(std::map<std::string, std::string, std::less<>> env,
                     std::vector<std::pair<std::string, std::string>> flags = {}) {
  try {
    load(std::move(env), std::move(flags));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, NothingSet_EveryValueIsItsDefault) {
  const Config c = load({});
  EXPECT_EQ(c.phase(), 1);
  for (const Spec& s : settings()) {
    EXPECT_EQ(c.value(s.key).origin, Origin::default_value) << s.name;
  }
  EXPECT_EQ(c.integer(Key::port), 3000);
  EXPECT_EQ(c.integer(Key::max_requests_per_user), 5);
  EXPECT_EQ(c.integer(Key::connect_timeout_ms), 45000);  // socket.io's connectTimeout
  // The exposure defaults: ops routes on loopback only, no other site, bounded connections.
  EXPECT_EQ(c.integer(Key::admin_port), 3001);
  EXPECT_EQ(c.text(Key::admin_bind_address), "127.0.0.1");
  EXPECT_EQ(c.text(Key::allowed_origins), "");
  EXPECT_EQ(c.integer(Key::max_connections), 20000);
  EXPECT_EQ(c.integer(Key::max_connections_per_address), 256);
  EXPECT_EQ(c.plugin("pool").name, "none");
  EXPECT_EQ(c.plugin("queue").name, "inproc");
  EXPECT_EQ(c.plugin("store").name, "memory");
  EXPECT_EQ(c.plugin("compression").name, "none");
  EXPECT_EQ(c.plugin("autoscaler").name, "none");
}

TEST(Config, Phase2_PresetsChooseWarmPoolAndRedisStore) {
  const Config c = load({{"PHASE", "2"}});
  EXPECT_EQ(c.plugin("pool").name, "warm");
  EXPECT_EQ(c.plugin("pool").origin, Origin::phase_preset);
  EXPECT_EQ(c.plugin("pool").via, "ENABLE_CONTAINER_POOL");
  EXPECT_EQ(c.plugin("store").name, "redis");
  EXPECT_EQ(c.plugin("queue").name, "inproc");
  EXPECT_EQ(c.integer(Key::pool_min_size), 10);
  EXPECT_EQ(c.value(Key::pool_min_size).origin, Origin::phase_preset);
}

TEST(Config, Phase3_PresetsTurnOnWorkersCompressionAndAutoscaler) {
  const Config c = load({{"PHASE", "3"}});
  EXPECT_EQ(c.plugin("queue").name, "redis");
  EXPECT_EQ(c.plugin("compression").name, "zlib");
  EXPECT_EQ(c.plugin("autoscaler").name, "hpa");
  EXPECT_EQ(c.integer(Key::stream_output_threshold_bytes), 4096);
}

TEST(Config, EnvOverridesPreset_PoolFollowsTheFlagsOrigin) {
  const Config c = load({{"PHASE", "2"}, {"ENABLE_CONTAINER_POOL", "false"}});
  EXPECT_EQ(c.plugin("pool").name, "none");
  EXPECT_EQ(c.plugin("pool").origin, Origin::env);
}

TEST(Config, Precedence_FlagOverEnvOverFileOverPresetOverDefault) {
  const TempFile file(R"({"pool_min_size": 3, "pool_max_size": 40, "port": 4000, "log_level": "debug"})");
  const Config c = load({{"PHASE", "2"}, {"PHASEKIT_CONFIG", file.path()}, {"POOL_MAX_SIZE", "50"}, {"PORT", "5000"}},
                        {{"port", "6000"}});
  EXPECT_EQ(c.integer(Key::port), 6000);
  EXPECT_EQ(c.value(Key::port).origin, Origin::flag);
  EXPECT_EQ(c.integer(Key::pool_max_size), 50);
  EXPECT_EQ(c.value(Key::pool_max_size).origin, Origin::env);
  EXPECT_EQ(c.integer(Key::pool_min_size), 3);
  EXPECT_EQ(c.value(Key::pool_min_size).origin, Origin::file);
  EXPECT_EQ(c.text(Key::log_level), "debug");
  EXPECT_EQ(c.integer(Key::pool_idle_timeout_ms), 300000);
  EXPECT_EQ(c.value(Key::pool_idle_timeout_ms).origin, Origin::default_value);
  EXPECT_EQ(c.value(Key::enable_container_pool).origin, Origin::phase_preset);
}

TEST(Config, PhaseFromTheFileSelectsThePresets) {
  const TempFile file(R"({"phase": 3})");
  const Config c = load({}, {{"config", file.path()}});
  EXPECT_EQ(c.phase(), 3);
  EXPECT_EQ(c.plugin("queue").name, "redis");
}

TEST(Config, BooleansAcceptTheUsualSpellings) {
  for (const char* yes : {"true", "TRUE", "1", "yes", "on", "On"}) {
    EXPECT_TRUE(load({{"ENABLE_CONTAINER_POOL", yes}}).boolean(Key::enable_container_pool)) << yes;
  }
  for (const char* no : {"false", "0", "no", "off", "OFF"}) {
    EXPECT_FALSE(load({{"ENABLE_CONTAINER_POOL", no}}).boolean(Key::enable_container_pool)) << no;
  }
}

TEST(Config, ExplicitPluginNameWinsOverItsFlagWhenTheFlagIsOnlyAPreset) {
  const Config c = load({{"PHASE", "2"}, {"POOL_PLUGIN", "none"}});
  EXPECT_EQ(c.plugin("pool").name, "none");
  EXPECT_EQ(c.plugin("pool").origin, Origin::env);
  EXPECT_TRUE(c.plugin("pool").via.empty());
}

struct BadCase {
  const char* what;
  std::map<std::string, std::string, std::less<>> env;
  std::vector<std::pair<std::string, std::string>> flags;
  std::string expected;  // the whole line
};

constexpr const char* kLowEntropy =
    "AUTH_SECRET=*** (AUTH_MODE=token): expected a random secret: at least 8 distinct bytes, not a shorter string "
    "repeated, not mostly runs or sequences (openssl rand -base64 48)";

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.what; }

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, StopWithOneLineNamingTheSettingAndWhatIsAllowed) {
  const BadCase& c = GetParam();
  const std::string message = error_of(c.env, c.flags);
  EXPECT_EQ(message, c.expected) << c.what;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrors,
    ::testing::Values(
        BadCase{"word for a number", {{"POOL_MIN_SIZE", "ten"}}, {},
                "POOL_MIN_SIZE=ten (from env): expected an integer in 0..10000"},
        BadCase{"min above max", {{"POOL_MIN_SIZE", "50"}, {"POOL_MAX_SIZE", "10"}}, {},
                "POOL_MIN_SIZE=50 POOL_MAX_SIZE=10: expected POOL_MIN_SIZE <= POOL_MAX_SIZE"},
        BadCase{"tmpfs that would fill the memory", {{"BACKEND_TMPFS_BYTES", "100000000"}}, {},
                "BACKEND_TMPFS_BYTES=100000000 BACKEND_MEMORY_BYTES=268435456: expected the three tmpfs of a backend "
                "(/tmp, /var/tmp, /dev/shm) to fit in its memory with room to spare: 3 x BACKEND_TMPFS_BYTES < "
                "BACKEND_MEMORY_BYTES"},
        BadCase{"a sandbox kind that fell back silently", {{"SANDBOX", "auto"}}, {},
                "SANDBOX=auto (from env): expected one of namespaces|none"},
        BadCase{"a limit that is no number", {{"BACKEND_PROCESSES", "many"}}, {},
                "BACKEND_PROCESSES=many (from env): expected an integer in 0..1000000"},
        BadCase{"cpus that are no number", {{"BACKEND_CPUS", "fast"}}, {},
                "BACKEND_CPUS=fast (from env): expected a number of CPUs such as 0.5, 1 or 2 (0: no limit; at most 1024)"},
        BadCase{"phase out of range", {{"PHASE", "7"}}, {}, "PHASE=7 (from env): expected an integer in 1..3"},
        BadCase{"more io threads than a process should run", {{"IO_THREADS", "1000"}}, {},
                "IO_THREADS=1000 (from env): expected an integer in 0..256"},
        BadCase{"connect timeout below its floor", {{"CONNECT_TIMEOUT_MS", "99"}}, {},
                "CONNECT_TIMEOUT_MS=99 (from env): expected an integer in 100..3600000"},
        BadCase{"connect timeout that is no number", {{"CONNECT_TIMEOUT_MS", "45s"}}, {},
                "CONNECT_TIMEOUT_MS=45s (from env): expected an integer in 100..3600000"},
        BadCase{"phase zero from a flag", {}, {{"phase", "0"}}, "PHASE=0 (from --phase): expected an integer in 1..3"},
        BadCase{"number with trailing text", {{"PORT", "80x"}}, {}, "PORT=80x (from env): expected an integer in 0..65535"},
        BadCase{"negative number", {{"MAX_REQUESTS_PER_USER", "-1"}}, {},
                "MAX_REQUESTS_PER_USER=-1 (from env): expected an integer in 1..10000"},
        BadCase{"no sessions per user", {{"MAX_SESSIONS_PER_USER", "0"}}, {},
                "MAX_SESSIONS_PER_USER=0 (from env): expected an integer in 1..100000"},
        BadCase{"backends per user as a word", {{"MAX_BACKENDS_PER_USER", "all"}}, {},
                "MAX_BACKENDS_PER_USER=all (from env): expected an integer in 1..100000"},
        BadCase{"no history entries", {{"HISTORY_MAX_ENTRIES", "0"}}, {},
                "HISTORY_MAX_ENTRIES=0 (from env): expected an integer in 1..10000000"},
        BadCase{"history bytes below a page", {{"HISTORY_MAX_BYTES", "1000"}}, {},
                "HISTORY_MAX_BYTES=1000 (from env): expected an integer in 65536..1073741824"},
        BadCase{"history page over the slow-client limit", {}, {{"history_page_bytes", "1000000000"}},
                "HISTORY_PAGE_BYTES=1000000000 (from --history-page-bytes): expected an integer in 4096..67108864"},
        BadCase{"empty number", {{"PORT", ""}}, {}, "PORT= (from env): expected an integer in 0..65535"},
        BadCase{"number overflowing int64", {{"PORT", "99999999999999999999"}}, {},
                "PORT=99999999999999999999 (from env): expected an integer in 0..65535"},
        BadCase{"bad boolean", {{"ENABLE_WORKER_MODE", "maybe"}}, {},
                "ENABLE_WORKER_MODE=maybe (from env): expected true or false"},
        BadCase{"bad choice", {{"LOG_LEVEL", "loud"}}, {},
                "LOG_LEVEL=loud (from env): expected one of trace|debug|info|warn|error|off"},
        BadCase{"bad address", {{"BIND_ADDRESS", "localhost"}}, {},
                "BIND_ADDRESS=localhost (from env): expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::"},
        BadCase{"admin address that is a name", {{"ADMIN_BIND_ADDRESS", "localhost"}}, {},
                "ADMIN_BIND_ADDRESS=localhost (from env): expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 "
                "or ::"},
        BadCase{"admin port on the public port", {{"PORT", "3000"}, {"ADMIN_PORT", "3000"}}, {},
                "ADMIN_PORT=3000 PORT=3000: expected ADMIN_PORT != PORT (the operations listener is a listener of its "
                "own)"},
        BadCase{"admin port out of range", {{"ADMIN_PORT", "70000"}}, {},
                "ADMIN_PORT=70000 (from env): expected an integer in 0..65535"},
        BadCase{"origin with a path", {{"ALLOWED_ORIGINS", "https://app.example.com/"}}, {},
                "ALLOWED_ORIGINS=https://app.example.com/ (from env): expected empty, * alone, or origins "
                "scheme://host[:port] separated by commas (no path, no trailing slash)"},
        BadCase{"star among origins", {{"ALLOWED_ORIGINS", "https://a.example,*"}}, {},
                "ALLOWED_ORIGINS=https://a.example,* (from env): expected empty, * alone, or origins "
                "scheme://host[:port] separated by commas (no path, no trailing slash)"},
        BadCase{"origin without a scheme", {{"ALLOWED_ORIGINS", "app.example.com"}}, {},
                "ALLOWED_ORIGINS=app.example.com (from env): expected empty, * alone, or origins "
                "scheme://host[:port] separated by commas (no path, no trailing slash)"},
        BadCase{"no connection at all", {{"MAX_CONNECTIONS", "0"}}, {},
                "MAX_CONNECTIONS=0 (from env): expected an integer in 1..1000000"},
        BadCase{"negative connections per address", {{"MAX_CONNECTIONS_PER_ADDRESS", "-1"}}, {},
                "MAX_CONNECTIONS_PER_ADDRESS=-1 (from env): expected an integer in 0..1000000"},
        BadCase{"bad redis url", {{"REDIS_URL", "http://x"}}, {},
                "REDIS_URL=http://x (from env): expected empty, redis://[user:password@]host[:port][/db], "
                "rediss://... (TLS) or unix:///path"},
        BadCase{"redis url with a bad port keeps its password hidden", {{"REDIS_URL", "redis://u:hunter2@h:99999"}}, {},
                "REDIS_URL=redis://u:***@h:99999 (from env): expected empty, redis://[user:password@]host[:port][/db], "
                "rediss://... (TLS) or unix:///path"},
        BadCase{"rediss url with an unknown parameter", {{"REDIS_URL", "rediss://h:6380?ssl_cert_reqs=none"}}, {},
                "REDIS_URL=rediss://h:6380?ssl_cert_reqs=none (from env): expected empty, "
                "redis://[user:password@]host[:port][/db], rediss://... (TLS) or unix:///path"},
        BadCase{"relative workspace", {{"WORKSPACE_ROOT", "ws"}}, {},
                "WORKSPACE_ROOT=ws (from env): expected an absolute path"},
        BadCase{"control character", {{"WORKSPACE_ROOT", "/a\nb"}}, {},
                "WORKSPACE_ROOT=/a\\x0ab (from env): expected one line of text without control characters"},
        BadCase{"bad plugin name", {{"POOL_PLUGIN", "Warm!"}}, {},
                "POOL_PLUGIN=Warm! (from env): expected a plugin name of lower-case letters, digits and '_'"},
        BadCase{"plugin contradicts its flag",
                {{"POOL_PLUGIN", "none"}, {"ENABLE_CONTAINER_POOL", "true"}},
                {},
                "POOL_PLUGIN=none ENABLE_CONTAINER_POOL=true: they contradict each other; expected only one of them, "
                "or POOL_PLUGIN=warm"},
        BadCase{"worker mode without redis", {{"ENABLE_WORKER_MODE", "true"}}, {},
                "QUEUE_PLUGIN=redis (via ENABLE_WORKER_MODE): expected REDIS_URL to be set"},
        BadCase{"phase 3 with redis switched off", {{"PHASE", "3"}, {"REDIS_URL", ""}}, {},
                "QUEUE_PLUGIN=redis (via ENABLE_WORKER_MODE): expected REDIS_URL to be set"},
        BadCase{"store=postgres without its server", {{"STORE_PLUGIN", "postgres"}}, {},
                "STORE_PLUGIN=postgres: expected POSTGRES_URL to be set"},
        BadCase{"store=redis without its server", {{"STORE_PLUGIN", "redis"}}, {},
                "STORE_PLUGIN=redis: expected REDIS_URL to be set"},
        BadCase{"token auth without a secret", {{"AUTH_MODE", "token"}}, {},
                "AUTH_SECRET= (AUTH_MODE=token): expected a secret of at least 32 bytes"},
        BadCase{"token auth with a short secret never shows it", {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "short"}},
                {}, "AUTH_SECRET=*** (AUTH_MODE=token): expected a secret of at least 32 bytes"},
        // Finding 7: the placeholder of k8s/base/secret.yaml was accepted, so a deployment that kept it
        // accepted tokens anyone could sign.
        BadCase{"token auth with the shipped k8s placeholder secret",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "replace-me-with-at-least-32-random-bytes-0123456789"}}, {},
                "AUTH_SECRET=*** (AUTH_MODE=token): expected a secret of your own, not a placeholder (openssl rand "
                "-base64 48)"},
        BadCase{"redis password twice",
                {{"REDIS_URL", "redis://:hunter2@h:6379"}, {"REDIS_PASSWORD", "hunter3"}}, {},
                "REDIS_URL=redis://***@h:6379 REDIS_PASSWORD=***: expected only one of them to carry the password"},
        BadCase{"the shipped k8s placeholder redis password",
                {{"REDIS_URL", "redis://redis:6379/0"}, {"REDIS_PASSWORD", "replace-me-with-a-random-redis-password"}},
                {}, "REDIS_PASSWORD=***: expected a password of your own, not a placeholder (openssl rand -hex 32)"},
        BadCase{"token auth with a changeme secret",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "ChangeMe-9f8e7d6c5b4a39281706f5e4d3c2b1a0"}}, {},
                "AUTH_SECRET=*** (AUTH_MODE=token): expected a secret of your own, not a placeholder (openssl rand "
                "-base64 48)"},
        BadCase{"token auth with one byte repeated",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", std::string(40, 'x')}}, {}, kLowEntropy},
        BadCase{"token auth with seven distinct bytes",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "a1b2c3da1c3b2dd3c2b1aab3c1d2a3b1"}}, {}, kLowEntropy},
        BadCase{"token auth with a sequence",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "abcdefghijklmnopqrstuvwxyz0123456789"}}, {}, kLowEntropy},
        BadCase{"token auth with a short string repeated",
                {{"AUTH_MODE", "token"}, {"AUTH_SECRET", "k3Q!z9vP_k3Q!z9vP_k3Q!z9vP_k3Q!z9vP_"}}, {}, kLowEntropy},
        BadCase{"auth issuer outside ASCII", {{"AUTH_ISSUER", "https://issuer.example/\xc3\xbc"}}, {},
                "AUTH_ISSUER=https://issuer.example/\xc3\xbc (from env): expected empty or 1..256 printable ASCII "
                "characters"},
        BadCase{"auth audience too long", {{"AUTH_AUDIENCE", std::string(257, 'a')}}, {},
                "AUTH_AUDIENCE=" + std::string(257, 'a') +
                    " (from env): expected empty or 1..256 printable ASCII characters"},
        BadCase{"negative token lifetime", {{"AUTH_MAX_TOKEN_LIFETIME_S", "-1"}}, {},
                "AUTH_MAX_TOKEN_LIFETIME_S=-1 (from env): expected an integer in 0..31536000"},
        BadCase{"token lifetime in words", {{"AUTH_MAX_TOKEN_LIFETIME_S", "1d"}}, {},
                "AUTH_MAX_TOKEN_LIFETIME_S=1d (from env): expected an integer in 0..31536000"},
        BadCase{"clock leeway over five minutes", {{"AUTH_CLOCK_LEEWAY_S", "301"}}, {},
                "AUTH_CLOCK_LEEWAY_S=301 (from env): expected an integer in 0..300"},
        BadCase{"missing config file", {{"PHASEKIT_CONFIG", "/nonexistent/phasekit.json"}}, {},
                "PHASEKIT_CONFIG=/nonexistent/phasekit.json: cannot read the config file: No such file or directory"}),
    [](const auto& p) {
      std::string name;
      for (const char ch : std::string(p.param.what)) {
        name += std::isalnum(static_cast<unsigned char>(ch)) != 0 ? ch : '_';
      }
      return name;
    });

struct FileCase {
  const char* what;
  const char* content;
  const char* expected_after_path;  // the message, after "config file <path>"
};

void PrintTo(const FileCase& c, std::ostream* os) { *os << c.what; }

class ConfigFileErrors : public ::testing::TestWithParam<FileCase> {};

TEST_P(ConfigFileErrors, NameTheFileAndTheProblem) {
  const TempFile file(GetParam().content);
  const std::string message = error_of({{"PHASEKIT_CONFIG", file.path()}});
  const std::string expected = GetParam().expected_after_path;
  EXPECT_NE(message.find(file.path()), std::string::npos) << message;
  EXPECT_NE(message.find(expected), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigFileErrors,
    ::testing::Values(
        FileCase{"unknown key", R"({"pool_minsize": 3})", ": unknown key \"pool_minsize\" (did you mean \"pool_min_size\"?)"},
        FileCase{"unknown key far from any", R"({"zzzzzzzzzzzz": 3})", ": unknown key \"zzzzzzzzzzzz\""},
        FileCase{"invalid JSON", "{\n  \"port\": 3000,\n  oops\n}", ": invalid JSON at line 3, column 3"},
        FileCase{"empty file", "", ": invalid JSON at line 1, column 1"},
        FileCase{"array instead of object", "[1,2]", ": expected a JSON object of settings, found array"},
        FileCase{"float for integer", R"({"port": 3000.5})", "PORT=3000.5 (from config file"},
        FileCase{"object value", R"({"log_level": {"a": 1}})", "LOG_LEVEL={\"a\":1} (from config file"},
        FileCase{"bad value names the key", R"({"pool_min_size": "ten"})",
                 "key \"pool_min_size\"): expected an integer in 0..10000"},
        FileCase{"config inside config", R"({"config": "/x.json"})",
                 ": key \"config\" cannot be set in a config file (use --config or PHASEKIT_CONFIG)"}),
    [](const auto& p) {
      std::string name;
      for (const char ch : std::string(p.param.what)) {
        name += std::isalnum(static_cast<unsigned char>(ch)) != 0 ? ch : '_';
      }
      return name;
    });

std::string bad_case_name(const ::testing::TestParamInfo<BadCase>& param) {
  std::string name;
  for (const char ch : std::string(param.param.what)) {
    name += std::isalnum(static_cast<unsigned char>(ch)) != 0 ? ch : '_';
  }
  return name;
}

// AUTOSCALER_BEHAVIOR / AUTOSCALER_WORKER_BEHAVIOR: the autoscaling/v2 behavior object, refused as the
// HPA API refuses it (validation.go validateScalingRules / validateScalingPolicy), each with one line
// naming the setting, where it came from, the field inside the object and the reason.
INSTANTIATE_TEST_SUITE_P(
    Behavior, ConfigErrors,
    ::testing::Values(
        BadCase{"behavior not JSON", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":)"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): not valid JSON: parse error at line 1, column 12: syntax error "
                "while parsing value - unexpected end of input; expected '[', '{', or a literal"},
        BadCase{"behavior with a trailing comma", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{},})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): not valid JSON: parse error at line 1, column 15: syntax error "
                "while parsing object key - unexpected '}'; expected string literal"},
        BadCase{"behavior an array", {{"AUTOSCALER_BEHAVIOR", "[]"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): expected a JSON object, found array"},
        BadCase{"behavior null", {{"AUTOSCALER_BEHAVIOR", "null"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): expected a JSON object, found null"},
        BadCase{"behavior unknown key", {{"AUTOSCALER_BEHAVIOR", R"({"scaleup":{}})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): scaleup: unknown key (expected one of scaleUp|scaleDown)"},
        BadCase{"behavior unknown nested key", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"stabilizationWindow":0}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.stabilizationWindow: unknown key (expected one of "
                "stabilizationWindowSeconds|selectPolicy|policies|tolerance)"},
        BadCase{"behavior unknown policy key",
                {{"AUTOSCALER_BEHAVIOR",
                  R"({"scaleUp":{"policies":[{"type":"Pods","value":4,"periodSeconds":15,"period":1}]}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies[0].period: unknown key (expected one of "
                "type|value|periodSeconds)"},
        BadCase{"behavior negative period",
                {{"AUTOSCALER_BEHAVIOR", R"({"scaleDown":{"policies":[{"type":"Pods","value":1,"periodSeconds":-15}]}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleDown.policies[0].periodSeconds: -15: expected an integer in "
                "1..1800"},
        BadCase{"behavior zero period",
                {{"AUTOSCALER_BEHAVIOR", R"({"scaleDown":{"policies":[{"type":"Pods","value":1,"periodSeconds":0}]}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleDown.policies[0].periodSeconds: 0: expected an integer in "
                "1..1800"},
        BadCase{"behavior period over 1800",
                {{"AUTOSCALER_BEHAVIOR",
                  R"({"scaleUp":{"policies":[{"type":"Percent","value":100,"periodSeconds":1801}]}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies[0].periodSeconds: 1801: expected an integer in "
                "1..1800"},
        BadCase{"behavior window over 3600", {{"AUTOSCALER_BEHAVIOR", R"({"scaleDown":{"stabilizationWindowSeconds":3601}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleDown.stabilizationWindowSeconds: 3601: expected an integer in "
                "0..3600"},
        BadCase{"behavior negative window", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"stabilizationWindowSeconds":-1}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.stabilizationWindowSeconds: -1: expected an integer in "
                "0..3600"},
        BadCase{"behavior window as a string", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"stabilizationWindowSeconds":"60"}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.stabilizationWindowSeconds: \"60\": expected an integer in "
                "0..3600"},
        BadCase{"behavior bad selectPolicy", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"selectPolicy":"Maximum"}})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.selectPolicy: \"Maximum\": expected one of Max|Min|Disabled"},
        BadCase{"behavior empty policies", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"policies":[]}})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies: must specify at least one Policy"},
        BadCase{"behavior policies not a list", {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"policies":{"type":"Pods"}}})"}},
                {}, "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies: {\"type\":\"Pods\"}: expected an array"},
        BadCase{"behavior bad policy type",
                {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"policies":[{"type":"Replicas","value":4,"periodSeconds":15}]}})"}},
                {}, "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies[0].type: \"Replicas\": expected one of Pods|Percent"},
        BadCase{"behavior zero policy value",
                {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"policies":[{"type":"Pods","value":0,"periodSeconds":15}]}})"}},
                {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies[0].value: 0: expected an integer in 1..2147483647"},
        BadCase{"behavior policy without a period",
                {{"AUTOSCALER_BEHAVIOR", R"({"scaleUp":{"policies":[{"type":"Pods","value":4}]}})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): scaleUp.policies[0].periodSeconds: required"},
        BadCase{"behavior negative tolerance", {{"AUTOSCALER_BEHAVIOR", R"({"scaleDown":{"tolerance":"-0.1"}})"}}, {},
                "AUTOSCALER_BEHAVIOR (from env): scaleDown.tolerance: must not be negative"},
        BadCase{"worker behavior from a flag", {},
                {{"autoscaler_worker_behavior", R"({"scaleDown":{"selectPolicy":"None"}})"}},
                "AUTOSCALER_WORKER_BEHAVIOR (from --autoscaler-worker-behavior): scaleDown.selectPolicy: \"None\": "
                "expected one of Max|Min|Disabled"}),
    bad_case_name);

TEST(ConfigBehavior, UnsetIsEmpty_AnObjectIsKeptCompact_LineBreaksAreJsonWhiteSpace) {
  const Config unset = load({});
  EXPECT_EQ(unset.text(Key::autoscaler_behavior), "");
  EXPECT_EQ(unset.text(Key::autoscaler_worker_behavior), "");
  const Config empty = load({{"AUTOSCALER_BEHAVIOR", "{}"}});
  EXPECT_EQ(empty.text(Key::autoscaler_behavior), "{}");
  // As a Kubernetes ConfigMap block scalar would give it: several lines.
  const Config multi = load({{"AUTOSCALER_WORKER_BEHAVIOR",
                              "{\n  \"scaleUp\": {\n    \"policies\": [{\"type\": \"Pods\", \"value\": 100, "
                              "\"periodSeconds\": 15}]\n  }\n}\n"}});
  EXPECT_EQ(multi.text(Key::autoscaler_worker_behavior),
            R"({"scaleUp":{"policies":[{"periodSeconds":15,"type":"Pods","value":100}]}})");
  EXPECT_EQ(multi.value(Key::autoscaler_worker_behavior).origin, Origin::env);
}

TEST(ConfigBehavior, AConfigFileMayHoldTheObjectItselfOrAString) {
  const TempFile object(R"({"autoscaler_behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}})");
  EXPECT_EQ(load({{"PHASEKIT_CONFIG", object.path()}}).text(Key::autoscaler_behavior),
            R"({"scaleDown":{"stabilizationWindowSeconds":60}})");
  const TempFile text(R"({"autoscaler_behavior": "{\"scaleDown\": {\"stabilizationWindowSeconds\": 60}}"})");
  EXPECT_EQ(load({{"PHASEKIT_CONFIG", text.path()}}).text(Key::autoscaler_behavior),
            R"({"scaleDown":{"stabilizationWindowSeconds":60}})");
  const TempFile bad(R"({"autoscaler_behavior": {"scaleDown": {"stabilizationWindowSeconds": 7200}}})");
  EXPECT_EQ(error_of({{"PHASEKIT_CONFIG", bad.path()}}),
            "AUTOSCALER_BEHAVIOR (from config file " + bad.path() +
                " key \"autoscaler_behavior\"): scaleDown.stabilizationWindowSeconds: 7200: expected an integer in "
                "0..3600");
  const TempFile number(R"({"autoscaler_behavior": 5})");
  EXPECT_EQ(error_of({{"PHASEKIT_CONFIG", number.path()}}),
            "AUTOSCALER_BEHAVIOR (from config file " + number.path() +
                " key \"autoscaler_behavior\"): expected a JSON object, found number");
  const TempFile list(R"({"autoscaler_behavior": [1]})");
  EXPECT_EQ(error_of({{"PHASEKIT_CONFIG", list.path()}}),
            "AUTOSCALER_BEHAVIOR=[1] (from config file " + list.path() +
                " key \"autoscaler_behavior\"): expected a JSON object, or a string holding one");
}

TEST(ConfigErrors, OverriddenBadValueIsStillAnError) {
  // A typo in the environment is reported even when a flag overrides it.
  EXPECT_EQ(error_of({{"POOL_MIN_SIZE", "ten"}}, {{"pool_min_size", "3"}}),
            "POOL_MIN_SIZE=ten (from env): expected an integer in 0..10000");
}

TEST(ConfigAuth, RandomSecretsAreAccepted) {
  // openssl rand -base64 48, openssl rand -hex 16: what the error line and k8s/README.md suggest.
  for (const char* secret : {"02EfxaMRtCxUqcuvSWQ5b06Ut/Qs/sig8mXPQsgGsBfaRcNyQTswtFtg2PCIyHeD",
                             "230fef5bc199c603b197497e84e99a10"}) {
    const Config c = load({{"AUTH_MODE", "token"}, {"AUTH_SECRET", secret}});
    EXPECT_EQ(c.text(Key::auth_secret), secret);
  }
}

TEST(ConfigDisplay, RedisPasswordIsNeverPrinted) {
  const Config c = load({{"REDIS_URL", "redis://127.0.0.1:6380/2"}, {"REDIS_PASSWORD", "hunter2-pw"}});
  EXPECT_EQ(c.display(Key::redis_password), "***");
  EXPECT_EQ(c.text(Key::redis_password), "hunter2-pw");
  for (const std::string& out : {render_table(c), render_json(c)}) {
    EXPECT_EQ(out.find("hunter2-pw"), std::string::npos);
  }
}

TEST(ConfigDisplay, SecretsAndRedisPasswordsAreNeverPrinted) {
  const Config c = load({{"AUTH_MODE", "token"},
                         {"AUTH_SECRET", "0123456789abcdef0123456789abcdef-very-secret"},
                         {"REDIS_URL", "redis://app:hunter2@127.0.0.1:6380/2"}});
  EXPECT_EQ(c.display(Key::auth_secret), "***");
  EXPECT_EQ(c.display(Key::redis_url), "redis://app:***@127.0.0.1:6380/2");
  for (const std::string& out : {render_table(c), render_json(c)}) {
    EXPECT_EQ(out.find("very-secret"), std::string::npos);
    EXPECT_EQ(out.find("hunter2"), std::string::npos);
    EXPECT_NE(out.find("redis://app:***@127.0.0.1:6380/2"), std::string::npos);
  }
}

TEST(ConfigDisplay, RedactUrlHandlesPasswordOnlyAndNoUserinfo) {
  EXPECT_EQ(redact_url("redis://pw@h:1"), "redis://***@h:1");
  EXPECT_EQ(redact_url("redis://h:1"), "redis://h:1");
  EXPECT_EQ(redact_url("unix:///run/redis.sock"), "unix:///run/redis.sock");
}

TEST(ConfigDisplay, JsonHasEveryValueWithItsOrigin) {
  const Config c = load({{"PHASE", "2"}, {"ENABLE_CONTAINER_POOL", "false"}}, {{"port", "4100"}});
  const auto doc = nlohmann::json::parse(render_json(c));
  EXPECT_EQ(doc["phase"], 2);
  ASSERT_EQ(doc["settings"].size(), kSettingCount);
  bool saw_port = false;
  for (const auto& row : doc["settings"]) {
    if (row["name"] == "port") {
      saw_port = true;
      EXPECT_EQ(row["value"], 4100);
      EXPECT_EQ(row["origin"], "flag");
      EXPECT_EQ(row["source"], "--port");
    }
  }
  EXPECT_TRUE(saw_port);
  EXPECT_EQ(doc["plugins"][0]["kind"], "pool");
  EXPECT_EQ(doc["plugins"][0]["name"], "none");
  EXPECT_EQ(doc["plugins"][0]["origin"], "env");
}

TEST(Schema, EveryNameEnvAndFlagIsUniqueAndEnvsAreUpperCase) {
  std::set<std::string_view> names;
  std::set<std::string_view> envs;
  std::set<std::string_view> flags;
  for (const Spec& s : settings()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    EXPECT_TRUE(envs.insert(s.env).second) << s.env;
    EXPECT_TRUE(flags.insert(s.flag).second) << s.flag;
    for (const char ch : s.env) {
      EXPECT_TRUE((ch >= 'A' && ch <= 'Z') || ch == '_' || (ch >= '0' && ch <= '9')) << s.env;
    }
    EXPECT_FALSE(s.doc.empty()) << s.name;
  }
}

TEST(Schema, DefaultsAndPresetsAreThemselvesValid) {
  for (const Spec& s : settings()) {
    EXPECT_NO_THROW(parse_value(s, s.default_value, Origin::default_value, "default")) << s.name;
    for (const std::string_view p : s.preset) {
      if (p != kNoPreset) {
        EXPECT_NO_THROW(parse_value(s, p, Origin::phase_preset, "preset")) << s.name;
      }
    }
  }
  for (int phase = 1; phase <= kPhaseCount; ++phase) {
    EXPECT_NO_THROW(load({{"PHASE", std::to_string(phase)}})) << "phase " << phase;
  }
}

TEST(Schema, SeedEnvironmentNamesOfTheOriginServiceAreKept) {
  for (const char* env : {"PHASE", "ENABLE_CONTAINER_POOL", "POOL_MIN_SIZE", "POOL_MAX_SIZE", "POOL_IDLE_TIMEOUT_MS",
                          "MAX_REQUESTS_PER_USER", "ENABLE_WORKER_MODE", "WORKER_CONCURRENCY", "JOB_TIMEOUT_MS",
                          "ENABLE_CONVERSATION_COMPRESSION", "STREAM_OUTPUT_THRESHOLD_BYTES", "REDIS_URL",
                          "LOG_LEVEL", "PORT"}) {
    EXPECT_NE(find_by_env(env), nullptr) << env;
  }
}

}  // namespace
}  // namespace phasekit::config
