#include "phasekit/protocol/socketio.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace phasekit::socketio {
namespace {

using json = nlohmann::json;

std::vector<std::string> texts(const std::vector<Part>& parts) {
  std::vector<std::string> out;
  for (const auto& p : parts) {
    out.push_back((p.binary ? "<bin>" : "") + p.data);
  }
  return out;
}

TEST(SocketIo, EncodesLikeTheReferenceParser) {
  // Expected strings from the Socket.IO v5 protocol document.
  EXPECT_EQ(texts(encode(Packet::connect_ok("/", "oSO0OpakMV_3jnilAAAA"))),
            std::vector<std::string>{R"(0{"sid":"oSO0OpakMV_3jnilAAAA"})"});
  EXPECT_EQ(texts(encode(Packet::connect_error("/", "Not authorized"))),
            std::vector<std::string>{R"(4{"message":"Not authorized"})"});
  EXPECT_EQ(texts(encode(Packet::event("/", json::array({"hello", 1})))), std::vector<std::string>{R"(2["hello",1])"});
  EXPECT_EQ(texts(encode(Packet::event("/admin", json::array({"project:delete", 123}), 456))),
            std::vector<std::string>{R"(2/admin,456["project:delete",123])"});
  EXPECT_EQ(texts(encode(Packet::ack("/admin", 456, json::array()))), std::vector<std::string>{"3/admin,456[]"});
  EXPECT_EQ(texts(encode(Packet::disconnect("/admin"))), std::vector<std::string>{"1/admin,"});
  const json with_binary = json::array({"hello", json::binary({1, 2, 3})});
  EXPECT_EQ(texts(encode(Packet::event("/", with_binary))),
            (std::vector<std::string>{R"(51-["hello",{"_placeholder":true,"num":0}])", "<bin>\x01\x02\x03"}));
  EXPECT_EQ(texts(encode(Packet::ack("/admin", 456, json::array({json::binary({3})})))),
            (std::vector<std::string>{R"(61-/admin,456[{"_placeholder":true,"num":0}])", "<bin>\x03"}));
}

TEST(SocketIo, DecodesEveryPacketTypeBack) {
  const std::vector<Packet> packets{
      Packet::connect_ok("/", "abc"),
      Packet::disconnect("/chat"),
      Packet::event("/", json::array({"message", "ls -la", {{"nested", {1, 2}}}}), 7),
      Packet::ack("/", 18446744073709551615ull, json::array({{{"ok", true}}})),
      Packet::connect_error("/x", "Invalid namespace"),
      Packet::event("/", json::array({"upload", json::binary({0, 255}), json::binary({9})}), 3),
  };
  for (const Packet& p : packets) {
    Decoder decoder;
    std::vector<Packet> got;
    for (const auto& part : encode(p)) {
      auto r = part.binary ? decoder.feed_binary(part.data) : decoder.feed(part.data);
      ASSERT_TRUE(r) << part.data << ": " << r.error().message;
      for (auto& q : *r) {
        got.push_back(std::move(q));
      }
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].nsp, p.nsp);
    EXPECT_EQ(got[0].id, p.id);
    EXPECT_EQ(got[0].has_data(), p.has_data());
    if (p.has_data()) {
      EXPECT_EQ(got[0].data, p.data);
    }
    EXPECT_FALSE(decoder.awaiting_attachments());
  }
}

struct Bad {
  const char* what;
  std::string text;
  std::string message;
};

TEST(SocketIo, MalformedPacketsAreErrorsThatSayWhy) {
  const std::vector<Bad> cases{
      {"empty", "", "empty packet"},
      {"unknown type", "9", "unknown packet type"},
      {"broken JSON", R"(2["a",)", "invalid JSON"},
      {"trailing garbage", R"(2["a"]x)", "invalid JSON"},
      {"event without a name", "2[]", "invalid payload for the packet type"},
      {"event name not a string", "2[{}]", "invalid payload for the packet type"},
      {"event payload an object", R"(2{"a":1})", "invalid payload for the packet type"},
      {"reserved event name", R"(2["disconnect"])", "invalid payload for the packet type"},
      {"connect with an array", "0[1]", "invalid payload for the packet type"},
      {"disconnect with data", "1{}", "invalid payload for the packet type"},
      {"ack with an object", "3{}", "invalid payload for the packet type"},
      {"connect_error with a number", "41", "invalid payload for the packet type"},
      {"ack id overflow", R"(299999999999999999999999["a"])", "ack id out of range"},
      {"binary without a count", R"(5["a"])", "binary packet without an attachment count"},
      {"binary with a bad count", R"(5x-["a"])", "bad attachment count"},
      {"too many attachments", R"(511-["a"])", "11 attachments, at most 10 allowed"},
      {"deep nesting", "2" + std::string(100000, '['), "JSON nested deeper than 64"},
  };
  for (const Bad& c : cases) {
    const auto r = parse_text(c.text);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().message, c.message) << c.what;
  }
}

TEST(SocketIo, DecoderRefusesOutOfOrderParts) {
  Decoder d;
  EXPECT_EQ(d.feed_binary("x").error().message, "binary data without a binary packet");
  ASSERT_TRUE(d.feed(R"(52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"));
  EXPECT_TRUE(d.awaiting_attachments());
  EXPECT_EQ(d.feed(R"(2["b"])").error().message, "text packet while binary attachments were expected");

  Decoder missing;
  EXPECT_EQ(missing.feed(R"(51-["a",{"_placeholder":true,"num":5}])").error().message,
            "placeholder refers to a missing attachment");
  EXPECT_FALSE(missing.awaiting_attachments());

  Limits tight;
  tight.max_binary_bytes = 4;
  Decoder big(tight);
  ASSERT_TRUE(big.feed(R"(52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"));
  ASSERT_TRUE(big.feed_binary("abc"));
  EXPECT_EQ(big.feed_binary("de").error().message, "attachments too large");
  EXPECT_FALSE(big.awaiting_attachments());
}

std::string placeholders(std::size_t count, std::size_t num) {
  std::string text = R"(["upload")";
  for (std::size_t i = 0; i < count; ++i) {
    text += fmt::format(R"(,{{"_placeholder":true,"num":{}}})", num);
  }
  return text + "]";
}

// Finding 1: one 100 KB attachment named by 2,000 placeholders was copied 2,000 times (200 MB).
TEST(SocketIo, AnAttachmentNamedByManyPlaceholdersIsRefusedBeforeItIsBuffered) {
  Decoder d;
  const auto r = d.feed("51-" + placeholders(2000, 0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "attachment referenced by more than one placeholder");
  EXPECT_FALSE(d.awaiting_attachments());
  EXPECT_EQ(d.feed_binary(std::string(100000, 'x')).error().message, "binary data without a binary packet");
}

TEST(SocketIo, PlaceholdersMatchTheAttachmentsOneToOne) {
  const std::vector<Bad> cases{
      {"two placeholders, one attachment", "51-" + placeholders(2, 0),
       "attachment referenced by more than one placeholder"},
      {"an attachment nobody names", "52-" + placeholders(1, 0), "attachment without a placeholder"},
      {"placeholders without attachments", "50-" + placeholders(1, 0), "placeholder refers to a missing attachment"},
      {"num not a number", R"(51-["a",{"_placeholder":true,"num":"0"}])", "placeholder refers to a missing attachment"},
      {"num negative", R"(51-["a",{"_placeholder":true,"num":-1}])", "placeholder refers to a missing attachment"},
      {"placeholder with extra keys", R"(51-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0,"x":1}])",
       "attachment referenced by more than one placeholder"},
  };
  for (const Bad& c : cases) {
    Decoder d;
    const auto r = d.feed(c.text);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().message, c.message) << c.what;
    EXPECT_FALSE(d.awaiting_attachments()) << c.what;
  }
}

TEST(SocketIo, EachAttachmentLandsOnceWhereItsPlaceholderWas) {
  Decoder d;
  ASSERT_TRUE(d.feed(R"(52-["a",{"x":{"_placeholder":true,"num":1}},{"_placeholder":true,"num":0}])"));
  ASSERT_NE(d.pending(), nullptr);
  EXPECT_EQ(d.pending()->attachments, 2u);
  ASSERT_TRUE(d.feed_binary("first"));
  const auto r = d.feed_binary("second");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  const json& data = (*r)[0].data;
  EXPECT_EQ(data[1]["x"], json::binary({'s', 'e', 'c', 'o', 'n', 'd'}));
  EXPECT_EQ(data[2], json::binary({'f', 'i', 'r', 's', 't'}));
}

TEST(SocketIo, NamespacesAndIdsAreParsed) {
  const auto p = parse_text(R"(2/admin,13["bar"])");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->nsp, "/admin");
  EXPECT_EQ(p->id, 13u);
  EXPECT_EQ(p->data, json::array({"bar"}));
  const auto connect = parse_text("0/chat,");
  ASSERT_TRUE(connect);
  EXPECT_EQ(connect->nsp, "/chat");
  EXPECT_FALSE(connect->has_data());
}

}  // namespace
}  // namespace phasekit::socketio
