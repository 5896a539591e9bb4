// The frames between a backend's host side and its supervisor: round trips, streams cut anywhere,
// and every malformed form refused.
#include "phasekit/backend/supervisor_protocol.hpp"

#include <gtest/gtest.h>

namespace phasekit::backend::wire {
namespace {

using namespace std::string_literals;

std::vector<std::pair<FrameType, std::string>> read_all(FrameReader& r) {
  std::vector<std::pair<FrameType, std::string>> out;
  FrameType type{};
  std::string_view payload;
  while (r.next(type, payload) == FrameReader::Result::frame) {
    out.emplace_back(type, std::string(payload));
  }
  return out;
}

TEST(SupervisorFrames, AStreamCutAtEveryByteYieldsTheSameFrames) {
  std::string stream;
  append_frame(stream, FrameType::ready, "namespaces");
  append_frame(stream, FrameType::output, "a\0b\x12\x00\x00\x00"s);
  append_frame(stream, FrameType::done, encode_done(RunDone{3, kState, 5, "/tmp", "declare -x A=\"1\"\n"}));
  append_frame(stream, FrameType::pong, "");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameReader r;
    r.feed(std::string_view(stream).substr(0, cut));
    auto frames = read_all(r);
    r.feed(std::string_view(stream).substr(cut));
    for (auto& f : read_all(r)) {
      frames.push_back(std::move(f));
    }
    ASSERT_EQ(frames.size(), 4u) << "cut at " << cut;
    EXPECT_EQ(frames[1].second, "a\0b\x12\x00\x00\x00"s);
    RunDone done;
    ASSERT_TRUE(decode_done(frames[2].second, done));
    EXPECT_EQ(done.exit_code, 3);
    EXPECT_EQ(done.cwd, "/tmp");
    EXPECT_EQ(done.exports, "declare -x A=\"1\"\n");
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(SupervisorFrames, RunRequestsRoundTripAndRefuseNul) {
  RunRequest in{1500, 65536, "echo 'hi'; ls -la"};
  RunRequest out;
  ASSERT_TRUE(decode_run(encode_run(in), out));
  EXPECT_EQ(out.timeout_ms, 1500u);
  EXPECT_EQ(out.max_output, 65536u);
  EXPECT_EQ(out.command, in.command);
  EXPECT_FALSE(decode_run("short", out));
  EXPECT_FALSE(decode_run(encode_run(RunRequest{1, 1, "a\0b"s}), out));
}

TEST(SupervisorFrames, DoneWithoutStateHasNoTrailingBytesAndStateLengthsAreChecked) {
  RunDone out;
  const std::string plain = encode_done(RunDone{-1, kTimedOut, 0, "ignored", "ignored"});
  EXPECT_EQ(plain.size(), 16u);
  ASSERT_TRUE(decode_done(plain, out));
  EXPECT_EQ(out.exit_code, -1);
  EXPECT_TRUE(out.cwd.empty());
  EXPECT_FALSE(decode_done(plain + "x", out)) << "bytes after a stateless DONE";
  std::string with = encode_done(RunDone{0, kState, 0, "/w", ""});
  with[16] = '\x7f';  // a cwd length past the end
  EXPECT_FALSE(decode_done(with, out));
  EXPECT_FALSE(decode_done(std::string(15, '\0'), out));
}

TEST(SupervisorFrames, UnknownTypesAndOversizedFramesStopTheStreamForGood) {
  FrameReader unknown;
  unknown.feed("\x07\0\0\0\0\0\0\0"s);
  FrameType type{};
  std::string_view payload;
  EXPECT_EQ(unknown.next(type, payload), FrameReader::Result::error);
  EXPECT_NE(unknown.error().find("unknown frame type 7"), std::string::npos);
  std::string good;
  append_frame(good, FrameType::pong, "");
  unknown.feed(good);
  EXPECT_EQ(unknown.next(type, payload), FrameReader::Result::error) << "no resync after garbage";

  FrameReader big;
  std::string header;
  append_header(header, FrameType::output, kMaxPayload + 1);
  big.feed(header);
  EXPECT_EQ(big.next(type, payload), FrameReader::Result::error);

  FrameReader reserved;
  reserved.feed("\x11\x01\0\0\0\0\0\0"s);  // OUTPUT with a non-zero reserved byte
  EXPECT_EQ(reserved.next(type, payload), FrameReader::Result::error);
}

}  // namespace
}  // namespace phasekit::backend::wire
