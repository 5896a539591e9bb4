#pragma once
// One Redis reply as a value (RESP2: nil, status, error, integer, bulk string, array).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/status.hpp"

struct redisReply;  // hiredis; only the conversion below sees it

namespace phasekit::redis {

/// Limits applied to what a server sends (a reply beyond them closes the connection with an error).
inline constexpr std::size_t kMaxBulkBytes = std::size_t{512} << 20;   // Redis' own proto-max-bulk-len
// Elements in one reply, all its arrays together: hiredis callocs a pointer for each as soon as an
// array's header arrives, so this bounds what one header can make us allocate (8 MiB).
inline constexpr std::size_t kMaxArrayElements = std::size_t{1} << 20;
inline constexpr int kMaxDepth = 16;                                   // nested arrays

class Reply {
 public:
  enum class Type : std::uint8_t { nil, status, error, integer, string, array };

  Reply() = default;  // nil
  static Reply nil() { return {}; }
  static Reply status(std::string text) { return Reply(Type::status, std::move(text)); }
  static Reply error(std::string text) { return Reply(Type::error, std::move(text)); }
  static Reply string(std::string bytes) { return Reply(Type::string, std::move(bytes)); }
  static Reply integer(long long value) {
    Reply r;
    r.type_ = Type::integer;
    r.integer_ = value;
    return r;
  }
  static Reply array(std::vector<Reply> elements) {
    Reply r;
    r.type_ = Type::array;
    r.elements_ = std::move(elements);
    return r;
  }

  [[nodiscard]] Type type() const noexcept { return type_; }
  [[nodiscard]] bool is_nil() const noexcept { return type_ == Type::nil; }
  [[nodiscard]] bool is_status() const noexcept { return type_ == Type::status; }
  [[nodiscard]] bool is_error() const noexcept { return type_ == Type::error; }
  [[nodiscard]] bool is_integer() const noexcept { return type_ == Type::integer; }
  [[nodiscard]] bool is_string() const noexcept { return type_ == Type::string; }
  [[nodiscard]] bool is_array() const noexcept { return type_ == Type::array; }

  /// The bytes of a bulk string, the text of a status ("OK") or of an error ("ERR unknown command …");
  /// empty for the other types. Binary-safe (may hold NULs).
  [[nodiscard]] const std::string& str() const noexcept { return str_; }
  /// Moves the bytes out (for large values).
  [[nodiscard]] std::string take_str() noexcept { return std::move(str_); }
  /// The value of an integer reply; 0 for the other types.
  [[nodiscard]] long long integer() const noexcept { return integer_; }
  /// The elements of an array reply; empty for the other types.
  [[nodiscard]] const std::vector<Reply>& elements() const noexcept { return elements_; }
  [[nodiscard]] std::vector<Reply>& elements() noexcept { return elements_; }

  /// "nil", "status", "error", "integer", "string", "array".
  [[nodiscard]] static std::string_view type_name(Type type) noexcept;

  friend bool operator==(const Reply& a, const Reply& b) = default;

 private:
  Reply(Type type, std::string text) : type_(type), str_(std::move(text)) {}

  Type type_ = Type::nil;
  long long integer_ = 0;
  std::string str_;
  std::vector<Reply> elements_;
};

/// Converts a hiredis reply. Refuses (INTERNAL, naming the limit) arrays nested deeper than kMaxDepth or
/// longer than kMaxArrayElements and strings over kMaxBulkBytes, without recursing past the limit.
[[nodiscard]] Status from_hiredis(const redisReply& in, Reply& out);

/// Transport status and reply folded into one Status, for callers that treat a Redis error reply as a
/// failure: !transport → transport; reply.is_error() → INTERNAL "redis: <error text>"; else OK.
[[nodiscard]] Status reply_status(const Status& transport, const Reply& reply);

}  // namespace phasekit::redis
