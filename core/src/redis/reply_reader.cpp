#include "reply_reader.hpp"

#include <hiredis/hiredis.h>

#include <new>
#include <string>

#include <fmt/format.h>

namespace phasekit::redis::detail {

namespace {

// hiredis' own reply builders, with the array constructor wrapped to refuse absurd lengths before
// hiredis callocs room for them (its reader trusts "*2000000000"). The count is per reply, over all
// its arrays: nested headers ("*1000000\r\n*1000000\r\n…") each allocate before any element arrives.
redisReplyObjectFunctions g_default_functions{};
redisReplyObjectFunctions g_limited_functions{};

void* create_array_limited(const redisReadTask* task, int elements) {
  auto* budget = static_cast<ReplyReader::ArrayBudget*>(task->privdata);
  if (task->parent == nullptr) {
    budget->elements = 0;  // the root of a new reply
  }
  if (elements < 0 || static_cast<std::size_t>(elements) > kMaxArrayElements - budget->elements) {
    budget->refused = true;
    return nullptr;  // the reader reports "Out of memory"; the flag tells us it was our limit
  }
  budget->elements += static_cast<std::size_t>(elements);
  return g_default_functions.createArray(task, elements);
}

redisReader* make_reader(ReplyReader::ArrayBudget* budget) {
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
  r->privdata = budget;
  return r;
}

Status protocol_error(std::string what) { return {Code::unavailable, std::move(what)}; }

}  // namespace

ReplyReader::ReplyReader() : reader_(make_reader(&budget_)) {}

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
    return protocol_error(budget_.refused ? fmt::format("arrays of more than {} elements", kMaxArrayElements)
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
