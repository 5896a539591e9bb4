// libFuzzer target: the Socket.IO decoder fed a sequence of text and binary parts (the input is split
// on 0xFF bytes; a part starting with 'B' is binary). Never crashes; decoded packets re-encode.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/socketio.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phasekit::socketio;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Decoder decoder;
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
      const auto parts = encode(p);
      Decoder again;
      for (const auto& e : parts) {
        auto r = e.binary ? again.feed_binary(e.data) : again.feed(e.data);
        if (!r) {
          __builtin_trap();  // what we decoded, we must be able to encode and decode again
        }
      }
    }
  }
  return 0;
}
