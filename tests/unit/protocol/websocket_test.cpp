#include "phasekit/protocol/websocket.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace phasekit::websocket {
namespace {

/// A client frame: masked with `mask`, the length in the form `form` asks (0: shortest, 2: 16-bit,
/// 8: 64-bit), `rsv` in the reserved bits.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true, int form = 0,
                         std::uint8_t rsv = 0, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  const std::uint64_t n = payload.size();
  if (form == 0 && n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (form == 2 || (form == 0 && n <= 0xffff)) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      f.push_back(static_cast<char>((n >> shift) & 0xff));
    }
  }
  const char mask[4] = {'\x37', '\xfa', '\x21', '\x3d'};
  if (masked) {
    f.append(mask, 4);
  }
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(masked ? static_cast<char>(payload[i] ^ mask[i & 3]) : payload[i]);
  }
  return f;
}

struct Fed {
  std::vector<Event> events;
  std::optional<Violation> violation;
};

Fed feed_all(Reader& r, std::string_view bytes, std::size_t chunk = 0) {
  Fed out;
  if (chunk == 0) {
    out.violation = r.feed(bytes, out.events);
    return out;
  }
  for (std::size_t at = 0; at < bytes.size() && !out.violation; at += chunk) {
    out.violation = r.feed(bytes.substr(at, chunk), out.events);
  }
  return out;
}

TEST(WebSocketFrames, TheRfcExamplesReadWholeAndByteByByte) {
  // RFC 6455 §5.7: a masked "Hello", and a ping with "Hello".
  const std::string hello("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    Reader r(1000);
    const auto fed = feed_all(r, hello + client_frame(9, "Hello"), chunk);
    ASSERT_FALSE(fed.violation) << fed.violation->message;
    ASSERT_EQ(fed.events.size(), 2u);
    EXPECT_EQ(fed.events[0].opcode, Opcode::text);
    EXPECT_EQ(fed.events[0].data, "Hello");
    EXPECT_EQ(fed.events[1].opcode, Opcode::ping);
    EXPECT_EQ(fed.events[1].data, "Hello");
    EXPECT_EQ(r.held(), 0u) << "an idle reader holds nothing";
  }
}

TEST(WebSocketFrames, FragmentsJoinAndControlFramesMayComeBetweenThem) {
  Reader r(1000);
  const auto fed = feed_all(r, client_frame(2, "ab", false) + client_frame(9, "p") + client_frame(0, "cd", false) +
                                   client_frame(0, "ef", true),
                            2);
  ASSERT_FALSE(fed.violation) << fed.violation->message;
  ASSERT_EQ(fed.events.size(), 2u);
  EXPECT_EQ(fed.events[0].opcode, Opcode::ping);
  EXPECT_EQ(fed.events[1].opcode, Opcode::binary);
  EXPECT_EQ(fed.events[1].data, "abcdef");
}

TEST(WebSocketFrames, LengthsOfEveryFormAndSize) {
  for (std::size_t n : {std::size_t{0}, std::size_t{125}, std::size_t{126}, std::size_t{65535}, std::size_t{65536},
                        std::size_t{200000}}) {
    Reader r(1 << 20);
    const std::string payload(n, 'x');
    const auto fed = feed_all(r, client_frame(2, payload), 4096);
    ASSERT_FALSE(fed.violation) << n << ": " << fed.violation->message;
    ASSERT_EQ(fed.events.size(), 1u) << n;
    EXPECT_EQ(fed.events[0].data.size(), n);
    EXPECT_EQ(fed.events[0].data, payload);
  }
}

TEST(WebSocketFrames, ACloseFrameCarriesItsCodeAndReason) {
  Reader r(100);
  auto fed = feed_all(r, client_frame(8, std::string("\x03\xe8", 2) + "bye"));
  ASSERT_FALSE(fed.violation);
  ASSERT_EQ(fed.events.size(), 1u);
  EXPECT_EQ(fed.events[0].opcode, Opcode::close);
  EXPECT_EQ(fed.events[0].close_code, 1000);
  EXPECT_EQ(fed.events[0].data, "bye");
  Reader empty(100);
  fed = feed_all(empty, client_frame(8, ""));
  ASSERT_FALSE(fed.violation);
  EXPECT_EQ(fed.events.at(0).close_code, 0);
  for (std::uint16_t code : {1001, 1011, 1012, 1013, 1014, 3000, 4999}) {  // what the ws module sends too
    Reader r2(100);
    const std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    fed = feed_all(r2, client_frame(8, payload));
    ASSERT_FALSE(fed.violation) << code << ": " << fed.violation->message;
    EXPECT_EQ(fed.events.at(0).close_code, code);
  }
}

/// Every rule a server enforces, each as what a hostile or broken client sends.
TEST(WebSocketFrames, ViolationsFailWithTheirCloseCode) {
  struct Case {
    const char* name;
    std::string bytes;
    std::size_t max;
    CloseCode code;
  };
  const std::vector<Case> cases{
      {"unmasked", client_frame(1, "hi", true, 0, 0, false), 100, CloseCode::protocol_error},
      {"reserved bit", client_frame(1, "hi", true, 0, 0x40), 100, CloseCode::protocol_error},
      {"unknown opcode", client_frame(3, "hi"), 100, CloseCode::protocol_error},
      {"fragmented ping", client_frame(9, "hi", false), 100, CloseCode::protocol_error},
      {"ping over 125 bytes", client_frame(9, std::string(126, 'p')), 1000, CloseCode::protocol_error},
      {"continuation first", client_frame(0, "hi"), 100, CloseCode::protocol_error},
      {"new message inside one", client_frame(1, "a", false) + client_frame(1, "b"), 100, CloseCode::protocol_error},
      {"16-bit length for 5 bytes", client_frame(1, "hello", true, 2), 100, CloseCode::protocol_error},
      {"64-bit length for 300 bytes", client_frame(2, std::string(300, 'x'), true, 8), 1000,
       CloseCode::protocol_error},
      {"64-bit length with the top bit", std::string("\x82\xff\x80\0\0\0\0\0\0\0", 10) + "mask", 100,
       CloseCode::protocol_error},
      {"message over the limit", client_frame(2, std::string(101, 'x')), 100, CloseCode::too_big},
      {"fragments over the limit", client_frame(2, std::string(60, 'x'), false) + client_frame(0, std::string(60, 'x')),
       100, CloseCode::too_big},
      {"text not UTF-8", client_frame(1, "\xff\xfe"), 100, CloseCode::invalid_payload},
      {"text cut inside a character", client_frame(1, "\xc3", false) + client_frame(0, "x"), 100,
       CloseCode::invalid_payload},
      {"close with one byte", client_frame(8, "x"), 100, CloseCode::protocol_error},
      {"close with code 1005", client_frame(8, std::string("\x03\xed", 2)), 100, CloseCode::protocol_error},
      {"close with code 999", client_frame(8, std::string("\x03\xe7", 2)), 100, CloseCode::protocol_error},
      {"close with code 1015", client_frame(8, std::string("\x03\xf7", 2)), 100, CloseCode::protocol_error},
      {"close with code 5000", client_frame(8, std::string("\x13\x88", 2)), 100, CloseCode::protocol_error},
      {"close reason not UTF-8", client_frame(8, std::string("\x03\xe8\xff", 3)), 100, CloseCode::invalid_payload},
  };
  for (const auto& c : cases) {
    Reader r(c.max);
    const auto fed = feed_all(r, c.bytes);
    ASSERT_TRUE(fed.violation) << c.name;
    EXPECT_EQ(fed.violation->code, c.code) << c.name << ": " << fed.violation->message;
    EXPECT_FALSE(fed.violation->message.empty()) << c.name;
    EXPECT_TRUE(fed.events.empty()) << c.name;
  }
}

TEST(WebSocketFrames, AnOversizedFrameFailsAtItsHeaderBeforeItsPayloadIsKept) {
  Reader r(1000);
  // The header of a 1 GiB frame, and nothing of its payload yet.
  std::string header("\x82\xff\0\0\0\0\x40\0\0\0", 10);
  header += "mask";
  std::vector<Event> events;
  const auto v = r.feed(header, events);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->code, CloseCode::too_big);
  EXPECT_LE(r.held(), header.size());
}

TEST(WebSocketFrames, ServerFramesAreUnmaskedInTheShortestForm) {
  EXPECT_EQ(encode(Opcode::text, "Hello"), std::string("\x81\x05Hello", 7));
  const std::string mid = encode(Opcode::binary, std::string(256, 'x'));
  EXPECT_EQ(mid.substr(0, 4), std::string("\x82\x7e\x01\x00", 4));
  const std::string big = encode(Opcode::binary, std::string(65536, 'x'));
  EXPECT_EQ(big.substr(0, 10), std::string("\x82\x7f\0\0\0\0\0\x01\0\0", 10));
  EXPECT_EQ(big.size(), 65546u);
}

TEST(WebSocketFrames, ACloseReasonIsCutOnACharacterBoundary) {
  std::string reason;
  for (int i = 0; i < 100; ++i) {
    reason += "é";  // two bytes each
  }
  const std::string p = close_payload(CloseCode::going_away, reason);
  EXPECT_LE(p.size(), 125u);
  EXPECT_EQ(p.substr(0, 2), std::string("\x03\xe9", 2));
  EXPECT_EQ((p.size() - 2) % 2, 0u) << "cut inside a character";
}

TEST(WebSocketHandshake, TheRfcKeyAndItsAccept) {
  // RFC 6455 §1.3.
  EXPECT_TRUE(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_FALSE(valid_key(""));
  EXPECT_FALSE(valid_key("short"));
  EXPECT_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ"));    // no padding
  EXPECT_FALSE(valid_key("dGhlIHNhbXBsZSBub25jZQ!!"));  // not base64
}

}  // namespace
}  // namespace phasekit::websocket
