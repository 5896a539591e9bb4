// compression=zlib: its formats, what it refuses, gzip interoperability with the real gzip binary,
// and loading through the plugin set with ENABLE_CONVERSATION_COMPRESSION=true.
#include "zlib_compression.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "phasekit/config/config.hpp"
#include "conversation_corpus.hpp"
#include "conversation_dictionary.hpp"
#include "phasekit/observe/json_logger.hpp"
#include "phasekit/observe/metrics_registry.hpp"
#include "phasekit/plugin_host/host_services.hpp"
#include "phasekit/plugin_host/plugin_set.hpp"
#include "support/run_process.hpp"

namespace phasekit::compression_zlib {
namespace {

const std::vector<bench::CorpusEntry>& corpus() {
  static const auto entries = bench::generate_conversation_corpus({.seed = 11, .sessions = 30});
  return entries;
}

/// The first corpus entry of at least `min` bytes.
const std::string& entry_of_at_least(std::size_t min) {
  for (const auto& e : corpus()) {
    if (e.json.size() >= min) {
      return e.json;
    }
  }
  throw std::logic_error("corpus has no entry that long");
}

std::string pack(ZlibCompression& codec, std::string_view in) {
  std::string out;
  const Status s = codec.compress(in, out);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

/// A file in the test's temporary folder, removed at the end.
class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    path_ = (std::filesystem::temp_directory_path() /
             ("phasekit-zlib-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                .string();
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

std::string gzip_binary() {
  const std::string path = PHASEKIT_GZIP;
  return !path.empty() && std::filesystem::exists(path) ? path : std::string();
}

// ---- formats ----

TEST(ZlibCompression, DefaultFormatIsVersionedDeflateWithTheDictionary) {
  ZlibCompression codec({});
  const std::string& entry = corpus().front().json;
  const std::string packed = pack(codec, entry);
  ASSERT_GE(packed.size(), 8u);
  EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0xF9);
  EXPECT_EQ(static_cast<unsigned char>(packed[1]), 1);
  EXPECT_LT(packed.size(), entry.size());
}

TEST(ZlibCompression, DictionaryOfVersion1NeverChanges) {
  // Entries written with version 1 are decoded with exactly these bytes: a new dictionary is a new version.
  const std::string_view d = dictionary_v1();
  EXPECT_EQ(d.size(), 2746u);
  EXPECT_EQ(crc32(0L, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())), 0x443FCF8Bu);
}

TEST(ZlibCompression, EitherFormatReadsTheOther) {
  ZlibCompression dict({});
  ZlibCompression gzip({.format = Format::gzip});
  const std::string& entry = entry_of_at_least(1000);
  std::string out;
  ASSERT_TRUE(dict.decompress(pack(gzip, entry), out).ok());
  EXPECT_EQ(out, entry);
  ASSERT_TRUE(gzip.decompress(pack(dict, entry), out).ok());
  EXPECT_EQ(out, entry);
}

TEST(ZlibCompression, DefaultFormatIsAtLeast60PercentSmallerOnTheCorpus) {
  ZlibCompression codec({});
  std::size_t original = 0;
  std::size_t packed = 0;
  for (const auto& e : corpus()) {
    original += e.json.size();
    packed += pack(codec, e.json).size();
  }
  EXPECT_LE(static_cast<double>(packed), 0.40 * static_cast<double>(original)) << packed << " / " << original;
}

// ---- gzip interoperability, with the real gzip ----

TEST(ZlibCompression, GzipFormat_WritesMembersThatGzipDecompresses) {
  const std::string gz = gzip_binary();
  if (gz.empty()) {
    GTEST_SKIP() << "no gzip binary";
  }
  ZlibCompression codec({.format = Format::gzip, .level = 9});
  std::string members;
  std::string expected;
  for (std::size_t i = 0; i < 200; ++i) {
    members += pack(codec, corpus()[i].json);
    expected += corpus()[i].json;
  }
  TempFile file(members);
  const auto r = test::run_process(gz, {"-d", "-c", file.path()}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected);
}

TEST(ZlibCompression, GzipWrittenByGzip_IsRead_OneMemberOrMany) {
  const std::string gz = gzip_binary();
  if (gz.empty()) {
    GTEST_SKIP() << "no gzip binary";
  }
  const std::string& a = entry_of_at_least(2000);
  const std::string& b = corpus().front().json;
  TempFile fa(a);
  TempFile fb(b);
  const auto one = test::run_process(gz, {"-c", "-n", fa.path()}, {});
  const auto two = test::run_process(gz, {"-c", "-1", fa.path(), fb.path()}, {});  // two members
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(two.exit_code, 0) << two.err;
  ZlibCompression codec({});
  std::string out;
  ASSERT_TRUE(codec.decompress(one.out, out).ok());
  EXPECT_EQ(out, a);
  const Status s = codec.decompress(two.out, out);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out, a + b);
}

// ---- what is refused ----

TEST(ZlibCompression, EmptyInputIsAnEmptyEntry) {
  ZlibCompression codec({});
  std::string out = "stale";
  ASSERT_TRUE(codec.decompress("", out).ok());
  EXPECT_EQ(out, "");
}

/// Each byte of `packed` from `first` on, changed in turn: BAD_REQUEST naming `what`, or (when only
/// the unused bits after DEFLATE's last block changed) the original entry; never another entry.
void expect_every_corruption_detected(ZlibCompression& codec, const std::string& entry, std::size_t first,
                                      std::string_view what) {
  const std::string packed = pack(codec, entry);
  std::string out;
  int detected = 0;
  for (std::size_t i = first; i < packed.size(); ++i) {
    for (const unsigned char flip : {0x01, 0x5a, 0xff}) {
      std::string bad = packed;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ flip);
      const Status s = codec.decompress(bad, out);
      if (s.ok()) {
        ASSERT_EQ(out, entry) << "byte " << i << " ^ " << int{flip} << " decoded to another entry";
        continue;
      }
      ++detected;
      ASSERT_EQ(s.code(), Code::bad_request) << "byte " << i << ": " << s.message();
      ASSERT_NE(s.message().find(what), std::string::npos) << s.message();
    }
  }
  EXPECT_GE(detected, static_cast<int>(3 * (packed.size() - first)) - 3);  // at most the last byte's padding
}

TEST(ZlibCompression, EveryCorruptedByteOfADeflateEntryIsBadRequest) {
  ZlibCompression codec({});
  // Byte 0 changed is no longer this format, and the entry is read as it is (as one written before).
  expect_every_corruption_detected(codec, entry_of_at_least(600), 1, "compressed entry");
}

TEST(ZlibCompression, EveryCorruptedByteOfAGzipBodyIsBadRequest) {
  ZlibCompression codec({.format = Format::gzip});
  // Bytes 4-9 (mtime, extra flags, OS) are informational: gzip itself does not check them.
  expect_every_corruption_detected(codec, entry_of_at_least(600), 10, "gzip entry");
}

TEST(ZlibCompression, EveryTruncationIsBadRequest) {
  for (const Format f : {Format::deflate_dict, Format::gzip}) {
    ZlibCompression codec({.format = f});
    const std::string packed = pack(codec, entry_of_at_least(600));
    std::string out;
    for (std::size_t n = 2; n < packed.size(); ++n) {
      const Status s = codec.decompress(std::string_view(packed).substr(0, n), out);
      ASSERT_EQ(s.code(), Code::bad_request) << format_name(f) << " cut at " << n << ": " << s.message();
    }
  }
  ZlibCompression codec({});
  std::string out;
  const Status s = codec.decompress("\xF9", out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "compressed entry is truncated: 1 byte, no format version");
}

TEST(ZlibCompression, UnknownFormatVersionIsBadRequestNamingIt) {
  ZlibCompression codec({});
  std::string packed = pack(codec, corpus().front().json);
  packed[1] = 2;
  std::string out;
  const Status s = codec.decompress(packed, out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "compressed entry has format version 2; this build reads version 1");
}

TEST(ZlibCompression, DeclaredLengthOverTheLimitIsRefusedBeforeAnyAllocation) {
  ZlibCompression codec({.max_entry_bytes = 1 << 20});
  // F9 01, length 2^40 as LEB128, then a 2-byte empty DEFLATE stream and a CRC.
  const std::string bomb("\xF9\x01\x80\x80\x80\x80\x80\x20\x03\x00\x00\x00\x00\x00", 14);
  std::string out;
  const Status s = codec.decompress(bomb, out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "compressed entry declares 1099511627776 bytes, over max_entry_bytes=1048576");
  EXPECT_LT(out.capacity(), 1u << 20);
}

TEST(ZlibCompression, DeflateDataLongerThanDeclaredIsBadRequest) {
  ZlibCompression codec({});
  std::string packed = pack(codec, std::string(1000, 'x'));  // length 1000 = E8 07
  ASSERT_EQ(static_cast<unsigned char>(packed[2]), 0xE8);
  packed[2] = static_cast<char>(0xE4);  // now declares 996
  std::string out;
  const Status s = codec.decompress(packed, out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "compressed entry decodes to more than the 996 bytes it declares");
}

TEST(ZlibCompression, GzipBombStopsAtMaxEntryBytes) {
  ZlibCompression writer({.format = Format::gzip, .level = 9, .max_entry_bytes = kMaxEntryBytesLimit});
  const std::string bomb = pack(writer, std::string(16u << 20, '\0'));  // 16 MiB of zeros in ~16 KiB
  ASSERT_LT(bomb.size(), 40000u);
  ZlibCompression reader({.max_entry_bytes = 1 << 20});
  std::string out;
  const Status s = reader.decompress(bomb, out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "gzip entry decompresses to more than max_entry_bytes=1048576");
  EXPECT_LE(out.capacity(), 4u << 20);
}

TEST(ZlibCompression, EntryOverMaxEntryBytesIsNotWritten) {
  ZlibCompression codec({.max_entry_bytes = 1024});
  std::string out;
  const Status s = codec.compress(std::string(1025, 'a'), out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "entry of 1025 bytes is over max_entry_bytes=1024");
}

TEST(ZlibCompression, TrailingBytesAfterAGzipMemberAreBadRequest) {
  ZlibCompression codec({.format = Format::gzip});
  std::string out;
  const Status s = codec.decompress(pack(codec, "hello") + "junk", out);
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_EQ(s.message(), "gzip entry has 4 unexpected bytes after its last member");
}

// ---- through the loader and the configuration ----

class ZlibPlugin : public ::testing::Test {
 protected:
  std::string refusal(std::string_view json) {
    const plugin_host::Candidate c =
        plugin_host::Loader({PHASEKIT_PLUGIN_DIR}).find(PHK_KIND_COMPRESSION, "zlib");
    try {
      void* p = plugin_host::create_instance(c, &host_, json);
      c.descriptor->destroy(p);
    } catch (const plugin_host::LoadError& e) {
      return e.what();
    }
    return "(accepted)";
  }

  observe::LogSink logs_{[](std::string_view) {}, LogLevel::off};
  observe::MetricsRegistry metrics_;
  plugin_host::SystemClock clock_;
  boost::asio::io_context ioc_;
  plugin_host::BasicHost host_{logs_, metrics_, clock_, ioc_.get_executor()};
};

TEST_F(ZlibPlugin, BadOptionsAreRefusedWithOneLineNamingTheOption) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"level":0})", "level: 0: expected an integer in 1..9"},
      {R"({"level":"fast"})", "level: \"fast\": expected an integer in 1..9"},
      {R"({"format":"zstd"})", "format: \"zstd\": expected one of deflate_dict|gzip"},
      {R"({"max_entry_bytes":10})", "max_entry_bytes: 10: expected an integer in 1024..1073741824"},
      {R"({"levle":6})", "levle: unknown key (expected one of format|level|max_entry_bytes)"},
  };
  for (const auto& [json, reason] : cases) {
    const std::string what = refusal(json);
    EXPECT_NE(what.find("refused its configuration: " + reason), std::string::npos) << json << " → " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_EQ(refusal(R"({"format":"gzip","level":9,"max_entry_bytes":1024})"), "(accepted)");
}

TEST_F(ZlibPlugin, EnableConversationCompressionLoadsItFromThePluginPath) {
  const auto config = config::Config::load({{{"ENABLE_CONVERSATION_COMPRESSION", "true"}}, {}});
  const plugin_host::PluginSet set = plugin_host::load_plugins(config, host_, plugin_host::Loader({PHASEKIT_PLUGIN_DIR}));
  const auto it = std::find_if(set.loaded.begin(), set.loaded.end(),
                               [](const plugin_host::LoadedPlugin& p) { return p.kind == "compression"; });
  ASSERT_NE(it, set.loaded.end());
  EXPECT_EQ(it->name, "zlib");
  EXPECT_EQ(std::filesystem::path(it->path).filename(), "libphasekit_compression_zlib.so");
  std::string packed;
  std::string out;
  ASSERT_TRUE(set.compression->compress(corpus().front().json, packed).ok());
  EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0xF9);
  ASSERT_TRUE(set.compression->decompress(packed, out).ok());
  EXPECT_EQ(out, corpus().front().json);
}

TEST_F(ZlibPlugin, CompressionFormatGzipSettingReachesThePlugin) {
  const auto config = config::Config::load(
      {{{"ENABLE_CONVERSATION_COMPRESSION", "true"}, {"COMPRESSION_FORMAT", "gzip"}, {"COMPRESSION_LEVEL", "9"}}, {}});
  const plugin_host::PluginSet set = plugin_host::load_plugins(config, host_, plugin_host::Loader({PHASEKIT_PLUGIN_DIR}));
  std::string packed;
  ASSERT_TRUE(set.compression->compress(corpus().front().json, packed).ok());
  ASSERT_GE(packed.size(), 10u);
  EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(packed[1]), 0x8b);
  EXPECT_EQ(static_cast<unsigned char>(packed[8]), 2);  // XFL: maximum compression
}

TEST(ZlibSettings, BadValuesStopTheConfigurationWithOneLine) {
  for (const auto& [env, value, reason] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"COMPRESSION_LEVEL", "12", "COMPRESSION_LEVEL=12 (from env): expected an integer in 1..9"},
           {"COMPRESSION_FORMAT", "zstd", "COMPRESSION_FORMAT=zstd (from env): expected one of deflate_dict|gzip"}}) {
    try {
      (void)config::Config::load({{{env, value}}, {}});
      ADD_FAILURE() << env << "=" << value << " accepted";
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(reason, 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace phasekit::compression_zlib
