// libFuzzer target: the Socket.IO decoder fed a sequence of text and binary parts (the input is split
// on 0xFF bytes; a part starting with 'B' is binary), as Engine.IO messages arrive: binary events
// and acks with their placeholders and attachments. Run twice, with the default limits and with
// small ones so the limits are reached. Never crashes; decoded packets re-encode to parts that decode;
// a reassembled packet holds no more binary values than it announced attachments, and no more binary
// bytes than the limit (an attachment is used once).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/protocol/socketio.hpp"

namespace {

using namespace phasekit::socketio;

void count_binary(const nlohmann::json& node, std::size_t& values, std::size_t& bytes) {
  if (node.is_binary()) {
    ++values;
    bytes += node.get_binary().size();
  } else if (node.is_structured()) {
    for (const auto& child : node) {
      count_binary(child, values, bytes);
    }
  }
}

void check_packet(const Packet& p, const Limits& limits) {
  std::size_t values = 0;
  std::size_t bytes = 0;
  if (p.has_data()) {
    count_binary(p.data, values, bytes);
  }
  if (values > p.attachments || bytes > limits.max_binary_bytes) {
    __builtin_trap();  // an attachment used more than once: the limits no longer bound the packet
  }
  Decoder again;
  for (const auto& e : encode(p)) {
    auto r = e.binary ? again.feed_binary(e.data) : again.feed(e.data);
    if (!r) {
      __builtin_trap();  // what we decoded, we must be able to encode and decode again
    }
  }
}

void decode(std::string_view input, const Limits& limits) {
  Decoder decoder(limits);
  while (!input.empty()) {
    const auto cut = input.find('\xff');
    const std::string_view part = input.substr(0, cut);
    input = cut == std::string_view::npos ? std::string_view() : input.substr(cut + 1);
    auto result = (!part.empty() && part.front() == 'B') ? decoder.feed_binary(std::string(part.substr(1)))
                                                         : decoder.feed(part);
    if (!result) {
      continue;
    }
    for (const Packet& p : *result) {
      check_packet(p, limits);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  decode(input, Limits{});
  Limits small;
  small.max_attachments = 3;
  small.max_depth = 8;
  small.max_binary_bytes = 64;
  decode(input, small);
  return 0;
}
