// libFuzzer target: what the supervisor reads before it starts a program without the shell — the
// command, the shell's three-part report (split here at the first two \x01 bytes) and a
// /proc/PID/limits text — as a hostile user's shell may make them. Never crash, loop or throw; a
// command taken as plain holds word characters only; a usable view's environment is NAME=value.
#include <sys/resource.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "phasekit/sandbox/direct.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> words;
  if (phasekit::sandbox::plain_words(input, words)) {
    for (const std::string& w : words) {
      if (w.empty() || w.find_first_of(" \t\n'\"$`\\;&|<>()*?[]{}~#!") != std::string::npos) {
        __builtin_trap();
      }
    }
    (void)phasekit::sandbox::shell_word(words.front());
  }
  const std::size_t a = input.find('\x01');
  const std::size_t b = a == std::string_view::npos ? a : input.find('\x01', a + 1);
  if (b != std::string_view::npos) {
    const phasekit::sandbox::ShellView view =
        phasekit::sandbox::read_shell_view(input.substr(0, a), input.substr(a + 1, b - a - 1), input.substr(b + 1));
    if (view.usable) {
      for (const std::string& v : view.environment) {
        if (v.find('=') == std::string::npos || v.front() == '=') {
          __builtin_trap();
        }
      }
      if (view.umask > 0777) {
        __builtin_trap();
      }
    }
  }
  std::array<rlimit, RLIM_NLIMITS> limits{};
  if (phasekit::sandbox::parse_proc_limits(input, limits)) {
    for (const rlimit& l : limits) {
      if (l.rlim_cur > l.rlim_max) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
