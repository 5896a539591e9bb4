#include "phasekit/protocol/engineio.hpp"

#include <gtest/gtest.h>

namespace phasekit::engineio {
namespace {

TEST(EngineIo, TextPacketsRoundTrip) {
  for (int t = 0; t <= 6; ++t) {
    const Packet p{static_cast<PacketType>(t), "data é", false};
    const auto back = decode_text(encode_text(p));
    ASSERT_TRUE(back) << t;
    EXPECT_EQ(*back, p);
  }
  EXPECT_EQ(encode_text({PacketType::message, "hello", false}), "4hello");
  EXPECT_EQ(encode_text({PacketType::ping, "probe", false}), "2probe");
}

TEST(EngineIo, PayloadsMatchTheReferenceEncoding) {
  // From the Engine.IO v4 protocol document: text records joined by \x1e, binary as "b" + base64.
  const std::vector<Packet> packets{{PacketType::message, "hello", false},
                                    {PacketType::message, "€", false},
                                    {PacketType::message, std::string("\x01\x02\x03\x04", 4), true}};
  const std::string body = encode_payload(packets);
  EXPECT_EQ(body, "4hello\x1e" "4€\x1e" "bAQIDBA==");
  const auto back = decode_payload(body);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, packets);
}

struct Bad {
  const char* what;
  std::string body;
  std::string message;
};

TEST(EngineIo, MalformedPayloadsAreErrorsThatSayWhy) {
  Limits small;
  small.max_payload = 64;
  small.max_packets = 3;
  const std::vector<Bad> cases{
      {"empty body", "", "empty payload"},
      {"empty record", "4a\x1e", "empty packet"},
      {"unknown type", "7x", "unknown packet type '7'"},
      {"letter type", "xhello", "unknown packet type 'x'"},
      {"control byte type", std::string("\x01", 1), "unknown packet type '\\x??'"},
      {"bad base64 characters", "b@@@@", "invalid base64 in a binary packet"},
      {"base64 with a bad length", "bAQI", "invalid base64 in a binary packet"},
      {"base64 with data after padding", "bAQ=A", "invalid base64 in a binary packet"},
      {"non-canonical base64 (found by fuzzing)", "b42r=", "invalid base64 in a binary packet"},
      {"too many packets", "4a\x1e" "4b\x1e" "4c\x1e" "4d", "more than 3 packets in one payload"},
      {"oversized", std::string(65, '4'), "payload of 65 bytes exceeds maxPayload 64"},
  };
  for (const Bad& c : cases) {
    const auto r = decode_payload(c.body, small);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().message, c.message) << c.what;
  }
}

TEST(EngineIo, OpenPayloadCarriesTheHandshakeFields) {
  EXPECT_EQ(open_payload("abc", {"websocket"}, 25000, 20000, 1000000),
            R"({"maxPayload":1000000,"pingInterval":25000,"pingTimeout":20000,"sid":"abc","upgrades":["websocket"]})");
}

TEST(EngineIo, Utf8ValidationIsStrict) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("é€😀"));
  EXPECT_TRUE(valid_utf8(""));
  const std::vector<std::string> invalid{
      "\xff",                  // never valid
      "\xc0\xaf",              // overlong '/'
      "\xe0\x80\xaf",          // overlong, 3 bytes
      "\xed\xa0\x80",          // UTF-16 surrogate
      "\xf4\x90\x80\x80",      // above U+10FFFF
      "\xc3",                  // truncated
      "\xe2\x82",              // truncated
      "a\x80",                 // lone continuation
  };
  for (const auto& s : invalid) {
    EXPECT_FALSE(valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(EngineIo, Base64RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 40; ++n) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(bytes), back)) << n;
    EXPECT_EQ(back, bytes);
    bytes += static_cast<char>(n * 37);
  }
  std::string out;
  EXPECT_TRUE(base64_decode("", out));
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
}

}  // namespace
}  // namespace phasekit::engineio
