#pragma once
// The exported variables of a shell from its `declare -px` output, which the sandbox's shell reports
// after every call. The text comes from a shell its user controls, so this is a parser of hostile
// input: bounded, never throwing, every malformed form an error (fuzzed in tests/fuzz).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "phasekit/status.hpp"

namespace phasekit::backend {

using ExportList = std::vector<std::pair<std::string, std::string>>;

enum class ExportScope {
  user,         // what a user exported: the shell's own variables (HOME, PWD, OLDPWD, SHLVL, _) left out
  environment,  // everything a program started by the shell finds in its environment
};

/// Parses lines `declare -<flags> NAME="value"`, `declare -<flags> NAME=$'value'` and `declare -<flags>
/// NAME` (exported, no value: skipped), as bash 5 prints them. Arrays are left out (bash never puts
/// them in a program's environment). BAD_REQUEST, saying where, on anything else; with
/// ExportScope::environment also on an exported name reference (`declare -nx`), whose value in the
/// environment this text does not show.
Status parse_exports(std::string_view text, ExportList& out, ExportScope scope = ExportScope::user);

/// Decodes the inside of bash's $'...' quoting (\n, \t, \\, \', \NNN, \xHH, \uHHHH, \cX, ...).
std::string decode_ansi_c(std::string_view quoted);

}  // namespace phasekit::backend
