// The settings a plugin is given come from one table (config::plugin_keys(), beside the schema that
// holds their ranges and defaults), and every plugin of a kind accepts the whole range the schema
// allows: a value that passes the configuration check is never refused when the plugin loads.
#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "phasekit/config/config.hpp"
#include "phasekit/config/schema.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/loader.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::plugin_host {
namespace {

using config::Key;

/// A driver whose creates never finish: pool=warm loads with it and makes nothing (its io_context
/// never runs here).
class IdleDriver final : public plugin::BackendDriver {
 public:
  [[nodiscard]] std::string_view name() const noexcept override { return "idle"; }
  void create(std::function<void(Status, plugin::BackendPtr)>) noexcept override {}
  void reset(plugin::BackendPtr, std::function<void(Status)>) noexcept override {}
  void check(plugin::BackendPtr, std::function<void(Status)>) noexcept override {}
  void destroy(plugin::BackendPtr, std::function<void()>) noexcept override {}
};

/// Every plugin built here, by kind (each also has a builtin one).
const std::map<std::string, std::pair<phk_kind, std::vector<std::string>>> kPlugins{
    {"pool", {PHK_KIND_POOL, {"none", "warm"}}},
    {"queue", {PHK_KIND_QUEUE, {"inproc", "redis"}}},
    {"store", {PHK_KIND_STORE, {"memory", "redis", "sqlite", "postgres"}}},
    {"compression", {PHK_KIND_COMPRESSION, {"none", "zlib"}}},
};

TEST(PluginSettings, EveryKeyIsASettingOfTheSchemaAndEveryKindHasItsPlugins) {
  std::set<std::pair<std::string, std::string>> seen;
  for (const config::PluginKey& k : config::plugin_keys()) {
    EXPECT_EQ(kPlugins.count(std::string(k.kind)), 1u) << k.kind;
    EXPECT_TRUE(seen.emplace(k.kind, k.key).second) << k.kind << "." << k.key << " is given twice";
    EXPECT_FALSE(config::spec(k.setting).name.empty());
    EXPECT_GE(k.scale, 1);
  }
}

TEST(PluginSettings, EveryPluginAcceptsTheWholeRangeTheSchemaAllowsForItsSettings) {
  observe::LogSink logs{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics;
  SystemClock clock;
  boost::asio::io_context ioc;  // never run: nothing a plugin starts gets to happen
  IdleDriver driver;
  BasicHost host{logs, metrics, clock, ioc.get_executor(), &driver};
  const Loader loader({PHASEKIT_PLUGIN_DIR});
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("phasekit-plugin-settings-" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);

  for (const auto& [kind, plugins] : kPlugins) {
    for (const bool highest : {false, true}) {
      // Every integer this kind is given at the end of its range; addresses nothing answers on (the
      // plugins connect later, on calls).
      config::Inputs inputs;
      inputs.env = {{"REDIS_URL", "redis://127.0.0.1:1"},
                    {"POSTGRES_URL", "postgres://phasekit@127.0.0.1:1/phasekit"},
                    {"STORE_PATH", (folder / (kind + std::to_string(highest) + ".db")).string()}};
      int integers = 0;
      for (const config::PluginKey& k : config::plugin_keys()) {
        const config::Spec& s = config::spec(k.setting);
        if (k.kind == kind && s.type == config::Type::integer) {
          inputs.env[std::string(s.env)] = std::to_string(highest ? s.max : s.min);
          ++integers;
        }
      }
      ASSERT_GT(integers, 0) << kind;
      const auto config = config::Config::load(inputs);
      const std::string json = plugin_config_json(kind, config);
      for (const std::string& name : plugins.second) {
        try {
          const Candidate candidate = loader.find(plugins.first, name);
          candidate.descriptor->destroy(create_instance(candidate, &host, json));
        } catch (const std::exception& e) {
          ADD_FAILURE() << kind << "=" << name << " refused the schema's " << (highest ? "highest" : "lowest")
                        << " values: " << e.what() << "\n" << json;
        }
      }
    }
  }
  std::filesystem::remove_all(folder);
}

}  // namespace
}  // namespace phasekit::plugin_host
