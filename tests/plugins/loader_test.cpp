#include "phasekit/plugin_host/loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin/build_signature.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/run_process.hpp"

namespace phasekit::plugin_host {
namespace {

std::string fixture_dir(const std::string& name) { return std::string(PHASEKIT_FIXTURE_DIR) + "/" + name; }
std::string fixture_path(const std::string& name) {
  return fixture_dir(name) + "/libphasekit_pool_" + name + ".so";
}

/// Loads pool=<name> from its fixture folder and returns the error, or "" when it loaded.
LoadError load_error(const std::string& name) {
  const Loader loader({fixture_dir(name)});
  try {
    (void)loader.find(PHK_KIND_POOL, name);
  } catch (const LoadError& e) {
    return e;
  }
  return LoadError(Stage::not_found, "", "(loaded)");
}

std::string where(const std::string& name) { return "plugin pool=" + name + " (" + fixture_path(name) + ")"; }

TEST(Loader, MissingFile_NamesTheFileAndTheFoldersSearched) {
  const std::string empty = std::string(PHASEKIT_FIXTURE_DIR) + "/no_such_folder";
  const Loader loader({empty, "/also/missing"});
  try {
    (void)loader.find(PHK_KIND_POOL, "warm");
    FAIL() << "loaded";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.stage(), Stage::not_found);
    EXPECT_EQ(std::string(e.what()), "plugin pool=warm: not found: no libphasekit_pool_warm.so in " + empty +
                                         ":/also/missing (set PHASEKIT_PLUGIN_PATH)");
  }
}

TEST(Loader, MissingSymbol_SaysItIsNotAPlugin) {
  const LoadError e = load_error("no_entry");
  EXPECT_EQ(e.stage(), Stage::no_entry);
  EXPECT_EQ(std::string(e.what()),
            where("no_entry") + ": does not export phasekit_plugin_entry; it is not a phasekit plugin");
}

TEST(Loader, WrongAbiVersion_SaysBothVersions) {
  const LoadError e = load_error("wrong_abi");
  EXPECT_EQ(e.stage(), Stage::abi_version);
  EXPECT_EQ(e.path(), fixture_path("wrong_abi"));
  EXPECT_EQ(std::string(e.what()), where("wrong_abi") + ": ABI version 999, host expects " +
                                       std::to_string(PHK_ABI_VERSION) + "; rebuild the plugin");
}

TEST(Loader, WrongBuildSignature_ShowsBothSignatures) {
  const LoadError e = load_error("wrong_signature");
  EXPECT_EQ(e.stage(), Stage::build_signature);
  EXPECT_EQ(std::string(e.what()),
            where("wrong_signature") + ": built as \"gcc-4|cxx11abi=0|boost-106600|asan=0|ndebug=1\", host is \"" +
                PHK_BUILD_SIGNATURE + "\"; rebuild the plugin with the host's compiler and flags");
}

TEST(Loader, WrongKind_SaysWhatItIsAndWhatWasExpected) {
  const LoadError e = load_error("wrong_kind");
  EXPECT_EQ(e.stage(), Stage::kind_mismatch);
  EXPECT_EQ(std::string(e.what()), where("wrong_kind") + ": is a queue plugin, expected pool");
}

TEST(Loader, NameMismatch_IsRefused) {
  const LoadError e = load_error("name_mismatch");
  EXPECT_EQ(e.stage(), Stage::name_mismatch);
  EXPECT_EQ(std::string(e.what()),
            where("name_mismatch") + ": calls itself \"other\"; the file name and the descriptor must agree");
}

TEST(Loader, NotALibrary_ReportsTheDlopenError) {
  const std::string dir = std::string(PHASEKIT_FIXTURE_DIR) + "/garbage";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/libphasekit_pool_garbage.so";
  std::ofstream(path) << "this is not an ELF file\n";
  const Loader loader({dir});
  try {
    (void)loader.find(PHK_KIND_POOL, "garbage");
    FAIL() << "loaded";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.stage(), Stage::dlopen);
    const std::string prefix = "plugin pool=garbage (" + path + "): cannot load: ";
    EXPECT_EQ(std::string(e.what()).substr(0, prefix.size()), prefix);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

class LoaderCreate : public ::testing::Test {
 protected:
  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor()};
};

TEST_F(LoaderCreate, CreateThatFails_CarriesTheReasonOnOneLine) {
  const Candidate c = Loader({fixture_dir("create_fails")}).find(PHK_KIND_POOL, "create_fails");
  try {
    (void)instantiate<plugin::PoolStrategy>(c, host_, "{}");
    FAIL() << "created";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.stage(), Stage::create_failed);
    EXPECT_EQ(std::string(e.what()), where("create_fails") +
                                         ": refused its configuration: min_size: -1: expected an integer in 0..10000 "
                                         "(second line is folded)");
  }
}

TEST_F(LoaderCreate, CreateThatThrowsANonException_IsCaughtInsideThePlugin) {
  const Candidate c = Loader({fixture_dir("create_throws")}).find(PHK_KIND_POOL, "create_throws");
  try {
    (void)instantiate<plugin::PoolStrategy>(c, host_, "{}");
    FAIL() << "created";
  } catch (const LoadError& e) {
    EXPECT_EQ(std::string(e.what()), where("create_throws") + ": refused its configuration: unknown exception");
  }
}

TEST_F(LoaderCreate, WellFormedPlugin_LoadsAndItsInstanceWorks) {
  const Candidate c = Loader({fixture_dir("ok")}).find(PHK_KIND_POOL, "ok");
  EXPECT_EQ(c.path, fixture_path("ok"));
  EXPECT_STREQ(c.descriptor->version, "0.0.1");
  auto pool = instantiate<plugin::PoolStrategy>(c, host_, "{}");
  ASSERT_TRUE(pool);
  Status got(Code::ok, "not called");
  pool->acquire({"u", "s"}, [&](Status s, plugin::Lease) { got = std::move(s); });
  EXPECT_EQ(got.message(), "not called") << "completions are posted, never inline";
  ioc_.run();
  EXPECT_EQ(got.code(), Code::unavailable);
  EXPECT_EQ(got.message(), "fixture pool");
}

TEST(PluginLibraries, ExportExactlyOneSymbol) {
  const auto r = test::run_process("/usr/bin/nm", {"-D", "--defined-only", fixture_path("ok")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> symbols;
  for (const std::string& line : test::lines_of(r.out)) {
    const auto space = line.rfind(' ');
    if (!line.empty() && space != std::string::npos) {
      symbols.push_back(line.substr(space + 1));
    }
  }
  EXPECT_EQ(symbols, std::vector<std::string>{"phasekit_plugin_entry"}) << r.out;
}

TEST(FileNames, KindAndNameComeFromTheFileName) {
  EXPECT_EQ(parse_file_name("libphasekit_pool_warm.so"), std::make_pair(std::string("pool"), std::string("warm")));
  EXPECT_EQ(parse_file_name("libphasekit_pool_wrong_abi.so"),
            std::make_pair(std::string("pool"), std::string("wrong_abi")));
  EXPECT_FALSE(parse_file_name("libphasekit_pool.so"));
  EXPECT_FALSE(parse_file_name("libphasekit_pool_.so"));
  EXPECT_FALSE(parse_file_name("libother_pool_warm.so"));
  EXPECT_FALSE(parse_file_name("libphasekit_pool_warm.so.1"));
}

TEST(PluginSet, DefaultConfigurationLoadsTheBuiltins) {
  observe::LogSink logs{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics;
  SystemClock clock;
  boost::asio::io_context ioc;
  BasicHost host{logs, metrics, clock, ioc.get_executor()};
  const auto config = config::Config::load({});
  const PluginSet set = load_plugins(config, host, Loader({}));
  ASSERT_EQ(set.loaded.size(), 5u);
  for (const LoadedPlugin& p : set.loaded) {
    EXPECT_EQ(p.path, "(built-in)") << p.kind;
  }
  EXPECT_TRUE(set.pool && set.queue && set.store && set.compression && set.autoscaler);
}

TEST(PluginSet, PluginMissingFromThePath_StopsWithItsName) {
  observe::LogSink logs{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics;
  SystemClock clock;
  boost::asio::io_context ioc;
  BasicHost host{logs, metrics, clock, ioc.get_executor()};
  const auto config = config::Config::load({{{"POOL_PLUGIN", "nonesuch"}}, {}});
  try {
    (void)load_plugins(config, host, Loader({"/nonexistent"}));
    FAIL() << "loaded";
  } catch (const LoadError& e) {
    EXPECT_EQ(std::string(e.what()),
              "plugin pool=nonesuch: not found: no libphasekit_pool_nonesuch.so in /nonexistent (set "
              "PHASEKIT_PLUGIN_PATH)");
  }
}

TEST(PluginSet, EachKindGetsOnlyItsOwnSettings) {
  const auto config =
      config::Config::load({{{"POOL_MIN_SIZE", "3"}, {"POOL_MAX_SIZE", "7"}, {"POOL_CREATE_CONCURRENCY", "5"}}, {}});
  EXPECT_EQ(plugin_config_json("pool", config),
            R"({"min_size":3,"max_size":7,"idle_timeout_ms":300000,"acquire_timeout_ms":5000,"create_concurrency":5})");
  EXPECT_EQ(plugin_config_json("compression", config),
            R"({"format":"deflate_dict","level":6,"max_entry_bytes":16777216})");
  EXPECT_EQ(plugin_config_json("nonesuch", config), "{}");
}

TEST(PluginSet, PoolCreateConcurrencyZeroIsPassedOnForThePoolToMakeTwiceTheCores) {
  const auto config = config::Config::load({{{"POOL_CREATE_CONCURRENCY", "0"}}, {}});
  const auto pool = nlohmann::json::parse(plugin_config_json("pool", config));
  EXPECT_EQ(pool["create_concurrency"], 0);  // pool=warm's own default: WarmPoolTest covers what it makes of it
}

}  // namespace
}  // namespace phasekit::plugin_host
