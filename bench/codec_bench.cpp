// Engine.IO / Socket.IO codec costs on the hot path: one client event in, one server event out.
#include <benchmark/benchmark.h>

#include <string>

#include "phasekit/protocol/engineio.hpp"
#include "phasekit/protocol/socketio.hpp"

namespace {

using json = nlohmann::json;
using namespace phasekit;

const std::string kSmallEvent = R"(421["message","ls -la /workspace"])";
const std::string kResult = R"(42["tool:result",{"callId":"call-0123456789abcdef","exitCode":0,"output":")" +
                            std::string(4096, 'x') + R"(","truncated":false,"durationMs":12}])";

void BM_EngineIoDecodeFrame(benchmark::State& state) {
  for (auto _ : state) {
    auto p = engineio::decode_text(kSmallEvent);
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSmallEvent.size()));
}
BENCHMARK(BM_EngineIoDecodeFrame);

void BM_EngineIoPollingPayload10(benchmark::State& state) {
  std::vector<engineio::Packet> packets(10, engineio::Packet{engineio::PacketType::message, kSmallEvent.substr(1), false});
  const std::string body = engineio::encode_payload(packets);
  for (auto _ : state) {
    auto decoded = engineio::decode_payload(body);
    auto encoded = engineio::encode_payload(*decoded);
    benchmark::DoNotOptimize(encoded);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size() * 2));
}
BENCHMARK(BM_EngineIoPollingPayload10);

void BM_SocketIoDecodeSmallEvent(benchmark::State& state) {
  const std::string text = kSmallEvent.substr(1);
  for (auto _ : state) {
    socketio::Decoder d;
    auto packets = d.feed(text);
    benchmark::DoNotOptimize(packets);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_SocketIoDecodeSmallEvent);

void BM_SocketIoDecodeResult4KiB(benchmark::State& state) {
  const std::string text = kResult.substr(1);
  for (auto _ : state) {
    socketio::Decoder d;
    auto packets = d.feed(text);
    benchmark::DoNotOptimize(packets);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_SocketIoDecodeResult4KiB);

void BM_SocketIoEncodeResult4KiB(benchmark::State& state) {
  const json args = json::array({"tool:result", {{"callId", "call-0123456789abcdef"},
                                                 {"exitCode", 0},
                                                 {"output", std::string(4096, 'x')},
                                                 {"truncated", false},
                                                 {"durationMs", 12}}});
  const auto packet = socketio::Packet::event("/", args);
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto parts = socketio::encode(packet);
    bytes += parts[0].data.size();
    benchmark::DoNotOptimize(parts);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_SocketIoEncodeResult4KiB);

void BM_SocketIoBinaryEvent64KiB(benchmark::State& state) {
  const auto packet = socketio::Packet::event(
      "/", json::array({"upload", json::binary(json::binary_t::container_type(65536, 7))}));
  for (auto _ : state) {
    auto parts = socketio::encode(packet);
    socketio::Decoder d;
    (void)d.feed(parts[0].data);
    auto done = d.feed_binary(std::move(parts[1].data));
    benchmark::DoNotOptimize(done);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 65536 * 2));
}
BENCHMARK(BM_SocketIoBinaryEvent64KiB);

}  // namespace
