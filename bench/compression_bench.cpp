// compression=zlib on the conversation corpus (bench/conversation_corpus.hpp): the cost of compressing
// and decompressing one entry, per format and level, and how much smaller the entries get.
//
// Before the benchmarks run it prints the size table (compressed bytes / original bytes over the whole
// corpus, over the small entries, and the median entry's ratio), with two references that are not
// formats of the plugin: raw DEFLATE without a dictionary, and with only the entry-skeleton part of
// the dictionary. Each benchmark iteration handles the next entry of the corpus (all of it, or only the
// entries under 300 bytes), so its time is the mean cost per message; the `ratio` counter repeats the
// whole-corpus ratio of that format.
//
//   build/bench/compression_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <vector>

#include "conversation_corpus.hpp"
#include "conversation_dictionary.hpp"
#include "zlib_compression.hpp"

namespace phasekit::bench {
namespace {

using compression_zlib::Format;
using compression_zlib::ZlibCompression;
using compression_zlib::ZlibConfig;

constexpr std::size_t kSmallEntry = 300;  // bytes: user messages, denials, short results

const std::vector<CorpusEntry>& corpus(std::size_t threshold = 4096) {
  static const auto phase3 = generate_conversation_corpus({});
  static const auto phase1 = generate_conversation_corpus({.stream_threshold_bytes = 65536});
  return threshold == 4096 ? phase3 : phase1;
}

/// The benchmarks' second argument: 0 = every entry of the corpus, 1 = only those under kSmallEntry.
const std::vector<CorpusEntry>& entries_for(std::int64_t subset) {
  static const auto short_ones = [] {
    std::vector<CorpusEntry> v;
    for (const auto& e : corpus()) {
      if (e.json.size() < kSmallEntry) {
        v.push_back(e);
      }
    }
    return v;
  }();
  return subset == 0 ? corpus() : short_ones;
}

struct Sizes {
  std::size_t original = 0;
  std::size_t packed = 0;
  std::size_t small_original = 0;
  std::size_t small_packed = 0;
  double median_ratio = 0;
};

template <class Compress>
Sizes measure(const std::vector<CorpusEntry>& entries, Compress compress) {
  Sizes s;
  std::vector<double> ratios;
  std::string out;
  for (const auto& e : entries) {
    compress(e.json, out);
    s.original += e.json.size();
    s.packed += out.size();
    if (e.json.size() < kSmallEntry) {
      s.small_original += e.json.size();
      s.small_packed += out.size();
    }
    ratios.push_back(static_cast<double>(out.size()) / static_cast<double>(std::max<std::size_t>(1, e.json.size())));
  }
  std::nth_element(ratios.begin(), ratios.begin() + static_cast<std::ptrdiff_t>(ratios.size() / 2), ratios.end());
  s.median_ratio = ratios[ratios.size() / 2];
  return s;
}

/// Raw DEFLATE of one entry with an optional dictionary, no framing: the references of the table.
void raw_deflate(std::string_view in, std::string& out, std::string_view dict, int level) {
  z_stream s{};
  deflateInit2(&s, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  if (!dict.empty()) {
    deflateSetDictionary(&s, reinterpret_cast<const Bytef*>(dict.data()), static_cast<uInt>(dict.size()));
  }
  out.resize(deflateBound(&s, static_cast<uLong>(in.size())));
  s.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
}

double whole_ratio(Format f, int level) {
  ZlibCompression codec(ZlibConfig{.format = f, .level = level});
  const Sizes s = measure(corpus(), [&](std::string_view in, std::string& out) { (void)codec.compress(in, out); });
  return static_cast<double>(s.packed) / static_cast<double>(s.original);
}

void print_table() {
  const auto& entries = corpus();
  std::size_t bytes = 0;
  std::size_t small = 0;
  std::size_t users = 0;
  std::size_t denied = 0;
  std::vector<std::size_t> lengths;
  for (const auto& e : entries) {
    bytes += e.json.size();
    lengths.push_back(e.json.size());
    small += e.json.size() < kSmallEntry ? 1 : 0;
    users += e.kind == CorpusEntry::Kind::user ? 1 : 0;
    denied += e.kind == CorpusEntry::Kind::denied ? 1 : 0;
  }
  std::nth_element(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(lengths.size() / 2), lengths.end());
  fmt::print("corpus: {} entries ({} user messages, {} results of which {} denied), {} bytes, median entry {} bytes, "
             "{} entries under {} bytes\n",
             entries.size(), users, entries.size() - users, denied, bytes, lengths[lengths.size() / 2], small,
             kSmallEntry);
  fmt::print("{:<50} {:>8} {:>9} {:>14} {:>13}\n", "format (level)", "ratio", "smaller", "small entries", "median entry");
  auto row = [](std::string_view name, const Sizes& s) {
    const double ratio = static_cast<double>(s.packed) / static_cast<double>(s.original);
    fmt::print("{:<50} {:>8.3f} {:>8.1f}% {:>14.3f} {:>13.3f}\n", name, ratio, 100.0 * (1.0 - ratio),
               static_cast<double>(s.small_packed) / static_cast<double>(s.small_original), s.median_ratio);
  };
  for (const Format f : {Format::deflate_dict, Format::gzip}) {
    for (const int level : {1, 6, 9}) {
      ZlibCompression codec(ZlibConfig{.format = f, .level = level});
      row(fmt::format("{} ({})", compression_zlib::format_name(f), level),
          measure(entries, [&](std::string_view in, std::string& out) { (void)codec.compress(in, out); }));
    }
  }
  const std::string_view dict = compression_zlib::dictionary_v1();
  const std::string_view skeleton = dict.substr(dict.find(R"({"callId":"call-)"));
  row("reference: raw DEFLATE, no dictionary (6)",
      measure(entries, [](std::string_view in, std::string& out) { raw_deflate(in, out, {}, 6); }));
  row(fmt::format("reference: raw DEFLATE, skeleton dict {} B (6)", skeleton.size()),
      measure(entries, [&](std::string_view in, std::string& out) { raw_deflate(in, out, skeleton, 6); }));
  ZlibCompression codec({});
  row("deflate_dict (6), outputs up to 64 KiB stored",
      measure(corpus(65536), [&](std::string_view in, std::string& out) { (void)codec.compress(in, out); }));
  fmt::print("\n");
}

void BM_Compress(benchmark::State& state, Format format) {
  const int level = static_cast<int>(state.range(0));
  ZlibCompression codec(ZlibConfig{.format = format, .level = level});
  const auto& entries = entries_for(state.range(1));
  std::string out;
  std::size_t i = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string& in = entries[i].json;
    benchmark::DoNotOptimize(codec.compress(in, out));
    benchmark::DoNotOptimize(out.data());
    bytes += in.size();
    i = i + 1 == entries.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  if (state.range(1) == 0) {
    state.counters["ratio"] = whole_ratio(format, level);
  }
}

void BM_Decompress(benchmark::State& state, Format format) {
  const int level = static_cast<int>(state.range(0));
  ZlibCompression codec(ZlibConfig{.format = format, .level = level});
  const auto& entries = entries_for(state.range(1));
  std::vector<std::string> packed(entries.size());
  for (std::size_t k = 0; k < entries.size(); ++k) {
    (void)codec.compress(entries[k].json, packed[k]);
  }
  std::string out;
  std::size_t i = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(codec.decompress(packed[i], out));
    benchmark::DoNotOptimize(out.data());
    bytes += entries[i].json.size();
    i = i + 1 == entries.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));  // uncompressed bytes produced
}

// Arguments: {level, 0 = all entries | 1 = entries under 300 bytes}.
BENCHMARK_CAPTURE(BM_Compress, deflate_dict, Format::deflate_dict)
    ->ArgsProduct({{1, 6, 9}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Compress, gzip, Format::gzip)->ArgsProduct({{1, 6, 9}, {0, 1}})->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decompress, deflate_dict, Format::deflate_dict)
    ->ArgsProduct({{6}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decompress, gzip, Format::gzip)->ArgsProduct({{6}, {0, 1}})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace phasekit::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  phasekit::bench::print_table();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
