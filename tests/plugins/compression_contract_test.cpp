// What every compression plugin promises, through the loader: compression ∈ {none, zlib with each
// format}. Entries come from the conversation corpus of bench/ (what the orchestrator stores).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <thread>

#include "conversation_corpus.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"

namespace phasekit::plugin_host {
namespace {

struct Param {
  const char* name;     // plugin name
  const char* options;  // its JSON options
  const char* label;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.label; }

class CompressionContract : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    codec_ = instantiate<plugin::CompressionStrategy>(
        Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_COMPRESSION, GetParam().name), host_, GetParam().options);
  }

  static const std::vector<bench::CorpusEntry>& corpus() {
    static const auto entries = bench::generate_conversation_corpus({.seed = 7, .sessions = 40});
    return entries;
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  SystemClock clock_;
  boost::asio::io_context ioc_;
  BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor()};
  InstancePtr<plugin::CompressionStrategy> codec_;
};

TEST_P(CompressionContract, EveryCorpusEntryRoundTripsByteForByte) {
  ASSERT_GT(corpus().size(), 500u);
  std::string packed;
  std::string unpacked;
  for (const auto& e : corpus()) {
    ASSERT_TRUE(codec_->compress(e.json, packed).ok());
    const Status s = codec_->decompress(packed, unpacked);
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_EQ(unpacked, e.json);
  }
}

TEST_P(CompressionContract, EmptyEntryRoundTrips) {
  std::string packed = "stale";
  std::string unpacked = "stale";
  ASSERT_TRUE(codec_->compress("", packed).ok());
  ASSERT_TRUE(codec_->decompress(packed, unpacked).ok());
  EXPECT_EQ(unpacked, "");
}

TEST_P(CompressionContract, BinaryBytesRoundTrip) {
  std::string data;
  for (int i = 0; i < 70000; ++i) {
    data.push_back(static_cast<char>((i * 7919) % 251));
  }
  std::string packed;
  std::string unpacked;
  ASSERT_TRUE(codec_->compress(data, packed).ok());
  ASSERT_TRUE(codec_->decompress(packed, unpacked).ok());
  EXPECT_EQ(unpacked, data);
}

TEST_P(CompressionContract, UncompressedEntriesWrittenBeforeAreReadAsTheyAre) {
  std::string out;
  for (const std::string& legacy : {std::string(R"({"callId":"call-1","message":"ls -la","role":"user","t":1700000000000})"),
                                   std::string("{}"), std::string(" [1,2]"), std::string("plain text")}) {
    const Status s = codec_->decompress(legacy, out);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(out, legacy);
  }
}

TEST_P(CompressionContract, ManyThreadsAtOnceEachGetTheirOwnEntriesBack) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::string packed;
      std::string unpacked;
      for (std::size_t i = static_cast<std::size_t>(t); i < corpus().size(); i += 8) {
        if (!codec_->compress(corpus()[i].json, packed).ok() || !codec_->decompress(packed, unpacked).ok() ||
            unpacked != corpus()[i].json) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Compression, CompressionContract,
    ::testing::Values(Param{"none", "{}", "none"},
                      Param{"zlib", "{}", "zlib_default"},
                      Param{"zlib", R"({"format":"deflate_dict","level":1})", "zlib_deflate_dict_level1"},
                      Param{"zlib", R"({"format":"deflate_dict","level":9})", "zlib_deflate_dict_level9"},
                      Param{"zlib", R"({"format":"gzip","level":6})", "zlib_gzip"}),
    [](const ::testing::TestParamInfo<Param>& p) { return std::string(p.param.label); });

}  // namespace
}  // namespace phasekit::plugin_host
