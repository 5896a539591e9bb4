// What phasekit-load spends on one message, without the network: rendering an emit from its
// template, encoding it as Socket.IO + Engine.IO, and decoding the ack that comes back, with the
// match and capture a scenario applies; plus recording one latency.
//   build/bench/load_client_bench --benchmark_min_time=0.3
#include <benchmark/benchmark.h>

#include "histogram.hpp"
#include "metrics.hpp"
#include "phasekit/protocol/engineio.hpp"
#include "phasekit/protocol/socketio.hpp"
#include "template.hpp"

namespace {

using nlohmann::json;
using namespace phasekit;

void BM_EmitEncode(benchmark::State& state) {
  std::mt19937_64 rng(1);
  const load::Vars vars{{"callId", "c-1234567890"}, {"user", "alice"}};
  const json data_template = {{"callId", "{{ callId }}"}, {"approved", true}, {"note", "by {{ user }}"}};
  std::size_t bytes = 0;
  std::uint64_t ack = 0;
  for (auto _ : state) {
    json args = json::array({"tool:approval", load::render(data_template, vars, rng)});
    auto parts = socketio::encode(socketio::Packet::event("/", std::move(args), ack++));
    const std::string frame = engineio::encode_text(engineio::Packet{engineio::PacketType::message, parts[0].data, false});
    bytes += frame.size();
    benchmark::DoNotOptimize(frame.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_EmitEncode);

void BM_AckDecodeMatchCapture(benchmark::State& state) {
  const std::string frame = R"(43[{"ok":true,"callId":"c-1234567890","seq":42}])";
  const load::JsonPath ok("$.0.ok");
  const load::JsonPath call("$.0.callId");
  socketio::Decoder decoder;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto packet = engineio::decode_text(frame);
    auto decoded = decoder.feed(packet->data);
    const json& args = (*decoded)[0].data;
    const json* matched = ok.find(args);
    const json* captured = call.find(args);
    benchmark::DoNotOptimize(matched);
    benchmark::DoNotOptimize(captured);
    bytes += frame.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_AckDecodeMatchCapture);

void BM_RecordLatency(benchmark::State& state) {
  load::MetricSet metrics;
  std::uint64_t v = 12345;
  for (auto _ : state) {
    metrics.record(load::kResponseTime, v);
    v = (v * 2862933555777941757ULL + 3037000493ULL) % 5000000;  // a cheap spread of values
  }
  benchmark::DoNotOptimize(metrics.histogram(load::kResponseTime)->count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordLatency);

void BM_HistogramMerge(benchmark::State& state) {
  load::Histogram a, b;
  for (std::uint64_t v = 1; v < 10000000; v = v * 11 / 10 + 1) {
    b.record(v);
  }
  for (auto _ : state) {
    a.merge(b);
    benchmark::DoNotOptimize(a.count());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramMerge);

}  // namespace
