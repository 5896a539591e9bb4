// libFuzzer target: the supervisor's frame stream as either side reads it. Splitting must never
// crash or read past its input; every frame decoded re-encodes to the same bytes; RUN and DONE
// payloads that decode re-encode to what decodes the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "phasekit/backend/supervisor_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wire = phasekit::backend::wire;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  wire::FrameReader reader;
  // Fed in uneven pieces, as pipes deliver them.
  std::size_t at = 0;
  std::size_t step = 1;
  std::string again;
  while (at < input.size()) {
    reader.feed(input.substr(at, step));
    at += step;
    step = step * 3 % 17 + 1;
    wire::FrameType type{};
    std::string_view payload;
    while (reader.next(type, payload) == wire::FrameReader::Result::frame) {
      wire::append_frame(again, type, payload);
      wire::RunRequest run;
      if (type == wire::FrameType::run && wire::decode_run(payload, run)) {
        wire::RunRequest back;
        if (!wire::decode_run(wire::encode_run(run), back) || back.command != run.command ||
            back.timeout_ms != run.timeout_ms || back.max_output != run.max_output) {
          __builtin_trap();
        }
      }
      wire::RunDone done;
      if (type == wire::FrameType::done && wire::decode_done(payload, done)) {
        wire::RunDone back;
        if (!wire::decode_done(wire::encode_done(done), back) || back.cwd != done.cwd ||
            back.exports != done.exports || back.exit_code != done.exit_code || back.flags != done.flags) {
          __builtin_trap();
        }
      }
    }
  }
  if (input.substr(0, again.size()) != again) {
    __builtin_trap();
  }
  return 0;
}
