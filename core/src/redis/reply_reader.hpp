#pragma once
// Internal: the bytes a Redis server sends, turned into Reply values. hiredis' reader parses RESP2;
// around it, the limits hiredis 0.14 does not check itself (array lengths before it callocs room for
// them, unparsed bytes) and the conversion to Reply (string size, nesting). No I/O: the connection
// feeds what it reads, and the fuzzer feeds anything.
#include <cstddef>
#include <optional>
#include <string_view>

#include "phasekit/redis/reply.hpp"

struct redisReader;

namespace phasekit::redis::detail {

// Unparsed bytes the reader may hold: one bulk string at Redis' limit plus its header. hiredis 0.14
// checks no length itself, so a peer announcing "$9999999999" would otherwise make us buffer forever.
inline constexpr std::size_t kMaxBuffered = kMaxBulkBytes + 64 * 1024;

class ReplyReader {
 public:
  /// What the array constructor counts for the reply being read.
  struct ArrayBudget {
    std::size_t elements = 0;  // announced by the reply's arrays so far
    bool refused = false;      // set when a header went past kMaxArrayElements: the reader's OOM is our limit
  };

  ReplyReader();  // throws std::bad_alloc
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  /// Appends bytes read from the server. An error is a protocol error: the connection is unusable.
  [[nodiscard]] Status feed(std::string_view bytes);
  /// The next complete reply into `out`, or `out` empty when more bytes are needed. An error (a
  /// protocol error or a reply over our limits) leaves the reader unusable.
  [[nodiscard]] Status next(std::optional<Reply>& out);
  /// True when the bytes held for an incomplete reply are more than any acceptable reply needs.
  [[nodiscard]] bool over_buffer_limit() const noexcept;

 private:
  ArrayBudget budget_;
  redisReader* reader_ = nullptr;
};

}  // namespace phasekit::redis::detail
