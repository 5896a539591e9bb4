// libFuzzer target: `declare -px` text as a hostile shell may write it. Parsing must never crash,
// loop or throw; what parses holds only identifiers that are not the shell's own variables; and the
// ANSI-C decoder handles any escape sequence.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "phasekit/backend/exports_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  phasekit::backend::ExportList out;
  if (phasekit::backend::parse_exports(input, out).ok()) {
    for (const auto& [name, value] : out) {
      if (name.empty() || name == "PWD" || name == "HOME" ||
          !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
        __builtin_trap();
      }
    }
  }
  (void)phasekit::backend::decode_ansi_c(input);
  return 0;
}
