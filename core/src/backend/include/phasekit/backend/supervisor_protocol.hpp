#pragma once
// The frames between a backend's host side (ShellBackend) and its supervisor (phasekit-sandbox), over
// the supervisor's stdin and stdout. Every byte a command prints travels inside an OUTPUT frame the
// supervisor writes, so nothing a command prints can end its call or forge a reply.
//
// A frame: type (1 byte), three zero bytes, payload length (4 bytes, little-endian), payload. One
// request at a time: the host sends the next only after the reply to the last (DONE, RESET_DONE, PONG).
//
// Pure code with no dependencies beyond the standard library: the supervisor is a small static binary
// that compiles this file too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace phasekit::backend::wire {

enum class FrameType : std::uint8_t {
  // host → supervisor
  run = 1,    // RunRequest
  reset = 2,  // kill everything, wipe every writable place, fresh shell
  ping = 3,
  // supervisor → host
  ready = 16,       // the sandbox is set up and its shell started; payload: what it enforces (text)
  output = 17,      // bytes the running command printed (stdout and stderr, in order)
  done = 18,        // RunDone
  reset_done = 19,
  pong = 20,
  fatal = 21,       // the supervisor cannot go on (text); it exits after sending it
};

inline constexpr std::size_t kHeaderBytes = 8;
/// No frame is larger: a host or supervisor that reads a larger length stops talking to its peer.
inline constexpr std::uint32_t kMaxPayload = 8u << 20;

std::string_view type_name(FrameType type) noexcept;
bool known_type(std::uint8_t type) noexcept;

/// Appends one frame to `out`. The payload must not exceed kMaxPayload (the caller's bound).
void append_frame(std::string& out, FrameType type, std::string_view payload);
/// Appends a header whose payload the caller appends next (avoids a copy of large payloads).
void append_header(std::string& out, FrameType type, std::uint32_t payload_bytes);

/// Splits a byte stream into frames. Bytes go in with feed(); next() yields each complete frame.
/// A frame of unknown type or over kMaxPayload is an error that sticks: the stream cannot be trusted
/// to be in step any more.
class FrameReader {
 public:
  enum class Result { frame, need_more, error };

  void feed(std::string_view bytes);
  /// On Result::frame: `type` and `payload` (valid until the next feed() or next()).
  Result next(FrameType& type, std::string_view& payload);
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - pos_; }

 private:
  std::string buffer_;
  std::size_t pos_ = 0;
  std::string error_;
};

struct RunRequest {
  std::uint32_t timeout_ms = 0;
  std::uint32_t max_output = 0;  // bytes of output sent back; the rest is counted and dropped
  std::string command;
};
std::string encode_run(const RunRequest& request);
bool decode_run(std::string_view payload, RunRequest& out);

/// How a call ended, beyond its exit code.
enum DoneFlag : std::uint32_t {
  kTimedOut = 1u << 0,        // killed at its timeout (with everything else in the sandbox)
  kShellRestarted = 1u << 1,  // the shell exited, was killed or hung: a new one has the saved state
  kMemoryLimit = 1u << 2,     // the sandbox reached its memory limit (the kernel killed a process)
  kProcessLimit = 1u << 3,    // a fork failed at the sandbox's process limit
  kTruncated = 1u << 4,       // more output than max_output: the rest was dropped
  kState = 1u << 5,           // cwd and exports follow (sent when they changed since the last DONE)
  kDirect = 1u << 6,          // the supervisor spawned the program itself; the shell did not fork
};

struct RunDone {
  std::int32_t exit_code = -1;
  std::uint32_t flags = 0;
  std::uint64_t output_bytes = 0;  // everything the command printed, sent or not
  std::string cwd;                 // with kState
  std::string exports;             // with kState: `declare -px` of the shell after the call
};
std::string encode_done(const RunDone& done);
bool decode_done(std::string_view payload, RunDone& out);

}  // namespace phasekit::backend::wire
