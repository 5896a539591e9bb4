#pragma once
// kind = compression: applied to conversation entries before they reach the store. Synchronous
// (CPU only). decompress() must also accept entries written before compression was enabled.
#include <string>
#include <string_view>

#include "phasekit/status.hpp"

namespace phasekit::plugin {

class CompressionStrategy {
 public:
  virtual ~CompressionStrategy() = default;
  virtual Status compress(std::string_view in, std::string& out) noexcept = 0;
  /// BAD_REQUEST (naming what is wrong) for an entry that cannot be decoded; never crashes.
  virtual Status decompress(std::string_view in, std::string& out) noexcept = 0;
};

}  // namespace phasekit::plugin
