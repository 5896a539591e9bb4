// libFuzzer target: Engine.IO polling payloads and single text packets. Decoding must never crash,
// and whatever decodes must encode back to something that decodes to the same packets.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "phasekit/protocol/engineio.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phasekit::engineio;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_payload = 1 << 16;
  if (auto packets = decode_payload(input, limits)) {
    const auto again = decode_payload(encode_payload(*packets), Limits{});
    if (!again || *again != *packets) {
      __builtin_trap();
    }
  }
  (void)decode_text(input);
  (void)valid_utf8(input);
  std::string bytes;
  if (base64_decode(input, bytes) && base64_encode(bytes) != input) {
    __builtin_trap();
  }
  return 0;
}
