#include "reply_reader.hpp"

#include <hiredis/hiredis.h>

#include <new>
#include <string>

#include <fmt/format.h>

namespace phasekit::redis::detail {

namespace {

// hiredis' own reply builders, with the array constructor wrapped to refuse absurd lengths before
// hiredis callocs room for them (its reader trusts "*2000000000").
redisReplyObjectFunctions g_default_functions{};
redisReplyObjectFunctions g_limited_functions{};

void* create_array_limited(const redisReadTask* task, int elements) {
  if (elements < 0 || static_cast<std::size_t>(elements) > kMaxArrayElements) {
    if (task != nullptr && task->privdata != nullptr) {
      *static_cast<bool*>(task->privdata) = true;
    }
    return nullptr;  // the reader reports "Out of memory"; the flag tells us it was our limit
  }
  return g_default_functions.createArray(task, elements);
}

redisReader* make_reader(bool* refused_flag) {
  static const bool initialised = [] {
    redisReader* probe = redisReaderCreate();
    if (probe == nullptr) {
      return false;
    }
    g_default_functions = *probe->fn;
    g_limited_functions = g_default_functions;
    g_limited_functions.createArray = &create_array_limited;
    redisReaderFree(probe);
    return true;
  }();
  if (!initialised) {
    throw std::bad_alloc();
  }
  redisReader* r = redisReaderCreateWithFunctions(&g_limited_functions);
  if (r == nullptr) {
    throw std::bad_alloc();
  }
  r->privdata = refused_flag;
  return r;
}

Status protocol_error(std::string what) { return {Code::unavailable, std::move(what)}; }

}  // namespace

ReplyReader::ReplyReader() : reader_(make_reader(&refused_)) {}

ReplyReader::~ReplyReader() { redisReaderFree(reader_); }

Status ReplyReader::feed(std::string_view bytes) {
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
    return protocol_error(reader_->errstr);
  }
  return {};
}

Status ReplyReader::next(std::optional<Reply>& out) {
  out.reset();
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    return protocol_error(refused_ ? fmt::format("an array longer than {} elements", kMaxArrayElements)
                                   : std::string(reader_->errstr));
  }
  if (raw == nullptr) {
    return {};
  }
  Reply reply;
  const Status converted = from_hiredis(*static_cast<const redisReply*>(raw), reply);
  freeReplyObject(raw);
  if (!converted) {
    return protocol_error(converted.message());
  }
  out = std::move(reply);
  return {};
}

bool ReplyReader::over_buffer_limit() const noexcept { return reader_->len - reader_->pos > kMaxBuffered; }

}  // namespace phasekit::redis::detail
