// libFuzzer target: the bytes of a Redis connection as the client reads them: hiredis' reader with our
// limits and the conversion to Reply values (detail::ReplyReader, what Connection::on_read uses), fed
// in uneven pieces as reads return them. Never crashes or throws; a protocol error ends the
// connection; a reply converted is within the limits.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "reply_reader.hpp"

namespace {

using phasekit::redis::Reply;

bool within_limits(const Reply& r, int depth) {
  if (depth > phasekit::redis::kMaxDepth || r.str().size() > phasekit::redis::kMaxBulkBytes ||
      r.elements().size() > phasekit::redis::kMaxArrayElements) {
    return false;
  }
  for (const Reply& e : r.elements()) {
    if (!within_limits(e, depth + 1)) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  phasekit::redis::detail::ReplyReader reader;
  std::size_t at = 0;
  std::size_t step = 3;
  while (at < input.size()) {
    const std::size_t n = std::min(step, input.size() - at);
    if (!reader.feed(input.substr(at, n)).ok()) {
      return 0;
    }
    at += n;
    step = step * 7 % 61 + 1;
    for (;;) {
      std::optional<Reply> reply;
      if (!reader.next(reply).ok()) {
        return 0;  // the connection is closed
      }
      if (!reply) {
        break;
      }
      if (!within_limits(*reply, 0)) {
        __builtin_trap();
      }
    }
    if (reader.over_buffer_limit()) {
      return 0;
    }
  }
  return 0;
}
