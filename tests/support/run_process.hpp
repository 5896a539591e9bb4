#pragma once
// Runs a program to completion with a given environment and captures its output; for tests of the
// command-line binaries. The child is killed if it outlives the deadline.
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace phasekit::test {

struct ProcessResult {
  int exit_code = -1;  // -1: killed or did not exit normally
  std::string out;
  std::string err;
};

/// env: the child's whole environment (nothing is inherited).
ProcessResult run_process(const std::string& program, const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds deadline = std::chrono::seconds(30));

/// Splits text into lines (without the '\n').
std::vector<std::string> lines_of(const std::string& text);

}  // namespace phasekit::test
