#pragma once
// A deterministic (seeded) corpus of conversation entries, byte for byte as the orchestrator writes
// them to the store: Session::append_conversation dumps one nlohmann::json object per message (keys
// sorted, "t" in Unix milliseconds), so every entry here is built and dumped the same way.
//
// A session is a user working in a project: shell commands (ls, cat, grep, git, builds, tests, logs,
// curl, ps/df…), and the file tools (read_file, list_dir, write_file), each followed by its tool
// result, with some calls denied (result {denied: true}) and some failing (non-zero exit, stderr).
// Outputs are drawn from templates filled with random names, numbers and hex ids, short to long; one
// longer than `stream_threshold_bytes` is stored as the orchestrator stores it, without its output
// ("streamed": true, "outputBytes": N). Used by bench/compression_bench.cpp and the plugin's tests.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace phasekit::bench {

struct CorpusOptions {
  std::uint64_t seed = 20250101;
  int sessions = 200;
  /// STREAM_OUTPUT_THRESHOLD_BYTES: 4096 is the phase-3 preset (where compression is on by default).
  std::size_t stream_threshold_bytes = 4096;
};

struct CorpusEntry {
  enum class Kind { user, result, denied };
  Kind kind;
  std::string json;  // the entry as stored before compression
};

/// Same options → same entries, on every machine (std::mt19937_64 plus our own draws, no
/// std::*_distribution, whose results differ between standard libraries).
std::vector<CorpusEntry> generate_conversation_corpus(const CorpusOptions& options = {});

}  // namespace phasekit::bench
