#include "phasekit/redis/reply.hpp"

#include <malloc.h>

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "reply_reader.hpp"

namespace phasekit::redis {
namespace {

/// Parses RESP bytes with hiredis' reader and converts the reply.
Status parse(std::string_view resp, Reply& out) {
  std::unique_ptr<redisReader, decltype(&redisReaderFree)> reader(redisReaderCreate(), &redisReaderFree);
  EXPECT_EQ(redisReaderFeed(reader.get(), resp.data(), resp.size()), REDIS_OK);
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &raw), REDIS_OK);
  EXPECT_NE(raw, nullptr);
  const Status s = from_hiredis(*static_cast<redisReply*>(raw), out);
  freeReplyObject(raw);
  return s;
}

TEST(RedisReply, ConvertsEveryType) {
  Reply r;
  using namespace std::literals;
  ASSERT_TRUE(parse("*6\r\n+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\na\0b\r\n\r\n$-1\r\n*2\r\n:1\r\n*0\r\n"sv, r).ok());
  ASSERT_TRUE(r.is_array());
  ASSERT_EQ(r.elements().size(), 6u);
  EXPECT_TRUE(r.elements()[0].is_status());
  EXPECT_EQ(r.elements()[0].str(), "OK");
  EXPECT_TRUE(r.elements()[1].is_error());
  EXPECT_EQ(r.elements()[1].str(), "ERR wrong");
  EXPECT_TRUE(r.elements()[2].is_integer());
  EXPECT_EQ(r.elements()[2].integer(), -42);
  EXPECT_TRUE(r.elements()[3].is_string());
  EXPECT_EQ(r.elements()[3].str(), std::string("a\0b\r\n", 5));
  EXPECT_TRUE(r.elements()[4].is_nil());
  const Reply& nested = r.elements()[5];
  ASSERT_TRUE(nested.is_array());
  EXPECT_EQ(nested.elements()[0], Reply::integer(1));
  EXPECT_TRUE(nested.elements()[1].is_array());
  EXPECT_TRUE(nested.elements()[1].elements().empty());
  EXPECT_EQ(Reply::type_name(r.type()), "array");
}

/// hiredis nodes built by hand, to nest deeper than its reader allows (7).
struct Nest {
  std::deque<redisReply> nodes;
  std::deque<redisReply*> slots;
  redisReply* chain(int depth) {
    redisReply* leaf = &nodes.emplace_back();
    leaf->type = REDIS_REPLY_INTEGER;
    leaf->integer = 7;
    redisReply* inner = leaf;
    for (int i = 0; i < depth; ++i) {
      redisReply* a = &nodes.emplace_back();
      a->type = REDIS_REPLY_ARRAY;
      a->elements = 1;
      slots.push_back(inner);
      a->element = &slots.back();
      inner = a;
    }
    return inner;
  }
};

TEST(RedisReply, NestingIsLimitedTo16Levels) {
  Nest ok;
  Reply r;
  EXPECT_TRUE(from_hiredis(*ok.chain(kMaxDepth), r).ok());
  Nest deep;
  const Status s = from_hiredis(*deep.chain(kMaxDepth + 1), r);
  EXPECT_EQ(s.code(), Code::internal);
  EXPECT_NE(s.message().find("nested deeper than 16"), std::string::npos) << s.message();
}

TEST(RedisReply, OversizedArrayAndStringAreRefusedBeforeCopying) {
  redisReply a{};
  a.type = REDIS_REPLY_ARRAY;
  a.elements = kMaxArrayElements + 1;  // element pointer never read: refused first
  Reply r;
  const Status s = from_hiredis(a, r);
  EXPECT_EQ(s.code(), Code::internal);
  EXPECT_NE(s.message().find("elements is over the limit"), std::string::npos) << s.message();

  redisReply str{};
  str.type = REDIS_REPLY_STRING;
  str.len = kMaxBulkBytes + 1;
  str.str = nullptr;  // never read
  EXPECT_EQ(from_hiredis(str, r).code(), Code::internal);
}

// glibc's bytes in use, mmapped chunks included (an 8 MiB calloc is one). Zero under ASan, whose
// allocator glibc does not see: the bound below is then checked by the fuzzer's malloc limit instead.
std::size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// What a peer can make the reader allocate with headers alone: hiredis callocs each array's element
// pointers when its header arrives. "*16777216" once took 128 MiB; nested headers multiplied it.
TEST(RedisReplyReader, ArrayHeadersCannotMakeItAllocateMoreThanTheBudget) {
  struct Case {
    std::string bytes;
    bool refused;
  };
  const std::string big = "*" + std::to_string(kMaxArrayElements) + "\r\n";
  const std::string half = "*" + std::to_string(kMaxArrayElements / 2 + 1) + "\r\n";  // two: one too many
  const std::vector<Case> cases{
      {"*16777216\r\n", true},             // one header past the limit
      {big, false},                         // exactly the limit, awaiting its elements
      {half + half + ":1\r\n", true},       // nested: the budget is per reply, not per array
      {half + "*0\r\n", false},             // a small nested array fits
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.bytes.substr(0, 40));
    detail::ReplyReader reader;
    const std::size_t before = heap_in_use();
    ASSERT_TRUE(reader.feed(c.bytes).ok());
    std::optional<Reply> reply;
    const Status s = reader.next(reply);
    EXPECT_FALSE(reply.has_value());
    if (c.refused) {
      EXPECT_EQ(s.code(), Code::unavailable);
      EXPECT_NE(s.message().find("arrays of more than 1048576 elements"), std::string::npos) << s.message();
    } else {
      EXPECT_TRUE(s.ok()) << s.message();
    }
    const std::size_t after = heap_in_use();
    EXPECT_LE(after > before ? after - before : 0, kMaxArrayElements * sizeof(void*) + 64 * 1024);  // + the reader's buffer and tasks
  }
}

TEST(RedisReplyReader, TheBudgetStartsAgainWithEachReply) {
  detail::ReplyReader reader;
  const std::string half = "*" + std::to_string(kMaxArrayElements / 2 + 1) + "\r\n";
  std::string bytes = half;
  for (std::size_t i = 0; i < kMaxArrayElements / 2 + 1; ++i) {
    bytes += ":1\r\n";
  }
  ASSERT_TRUE(reader.feed(bytes + bytes).ok());  // two replies, together over the per-reply budget
  for (int i = 0; i < 2; ++i) {
    std::optional<Reply> reply;
    ASSERT_TRUE(reader.next(reply).ok());
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->elements().size(), kMaxArrayElements / 2 + 1);
  }
}

TEST(RedisReply, ReplyStatusFoldsErrorReplies) {
  EXPECT_TRUE(reply_status(Status(), Reply::status("OK")).ok());
  const Status e = reply_status(Status(), Reply::error("WRONGTYPE Operation against a key"));
  EXPECT_EQ(e.code(), Code::internal);
  EXPECT_EQ(e.message(), "redis: WRONGTYPE Operation against a key");
  const Status t(Code::timeout, "late");
  EXPECT_EQ(reply_status(t, Reply{}), t);
}

}  // namespace
}  // namespace phasekit::redis
