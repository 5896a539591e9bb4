#include "phasekit/redis/reply.hpp"

#include <hiredis/hiredis.h>

#include <string>

namespace phasekit::redis {
namespace {

Status convert(const redisReply& in, Reply& out, int depth) {
  switch (in.type) {
    case REDIS_REPLY_NIL:
      out = Reply::nil();
      return {};
    case REDIS_REPLY_INTEGER:
      out = Reply::integer(in.integer);
      return {};
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STRING: {
      const std::size_t len = in.len;
      if (len > kMaxBulkBytes) {
        return {Code::internal, "redis reply refused: a string of " + std::to_string(len) + " bytes is over the " +
                                    std::to_string(kMaxBulkBytes) + "-byte limit"};
      }
      std::string text(in.str == nullptr ? "" : in.str, in.str == nullptr ? 0 : len);
      out = in.type == REDIS_REPLY_STRING   ? Reply::string(std::move(text))
            : in.type == REDIS_REPLY_STATUS ? Reply::status(std::move(text))
                                            : Reply::error(std::move(text));
      return {};
    }
    case REDIS_REPLY_ARRAY: {
      if (depth >= kMaxDepth) {
        return {Code::internal,
                "redis reply refused: arrays nested deeper than " + std::to_string(kMaxDepth) + " levels"};
      }
      if (in.elements > kMaxArrayElements) {
        return {Code::internal, "redis reply refused: an array of " + std::to_string(in.elements) +
                                    " elements is over the limit of " + std::to_string(kMaxArrayElements)};
      }
      std::vector<Reply> elements(in.elements);
      for (std::size_t i = 0; i < in.elements; ++i) {
        if (in.element[i] == nullptr) {
          continue;  // stays nil
        }
        if (Status s = convert(*in.element[i], elements[i], depth + 1); !s) {
          return s;
        }
      }
      out = Reply::array(std::move(elements));
      return {};
    }
    default:
      return {Code::internal, "redis reply refused: unknown reply type " + std::to_string(in.type)};
  }
}

}  // namespace

std::string_view Reply::type_name(Type type) noexcept {
  switch (type) {
    case Type::nil: return "nil";
    case Type::status: return "status";
    case Type::error: return "error";
    case Type::integer: return "integer";
    case Type::string: return "string";
    case Type::array: return "array";
  }
  return "unknown";
}

Status from_hiredis(const redisReply& in, Reply& out) { return convert(in, out, 0); }

Status reply_status(const Status& transport, const Reply& reply) {
  if (!transport) {
    return transport;
  }
  if (reply.is_error()) {
    return {Code::internal, "redis: " + reply.str()};
  }
  return {};
}

}  // namespace phasekit::redis
