#include "phasekit/sandbox/direct.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <csignal>
#include <cstring>

#include "phasekit/backend/exports_parser.hpp"

namespace phasekit::sandbox {
namespace {

constexpr std::size_t kMaxCommand = 4096;
constexpr std::size_t kMaxWords = 256;

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == '/' || c == ',' || c == ':' || c == '+' || c == '@' || c == '%' || c == '=';
}

bool blank(char c) { return c == ' ' || c == '\t'; }

/// The lines of `text`, without their '\n'.
template <class F>
void each_line(std::string_view text, F&& f) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t eol = std::min(text.find('\n', at), text.size());
    f(text.substr(at, eol - at));
    at = eol + 1;
  }
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

/// SIGXFSZ's number from "XFSZ" (as `trap -p` names it, after its SIG); 0 for a name it does not know.
/// The real-time signals (RTMIN+n) are left out: a trap on one sends the call to the shell.
int signal_number(std::string_view name) {
  for (int sig = 1; sig < SIGRTMIN; ++sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev && sig != SIGKILL && sig != SIGSTOP) {
      return sig;
    }
  }
  return 0;
}

}  // namespace

bool plain_words(std::string_view command, std::vector<std::string>& words) {
  words.clear();
  if (command.size() > kMaxCommand) {
    return false;
  }
  while (!command.empty() && (blank(command.back()) || command.back() == '\n')) {
    command.remove_suffix(1);
  }
  while (!command.empty() && (blank(command.front()) || command.front() == '\n')) {
    command.remove_prefix(1);
  }
  std::size_t i = 0;
  while (i < command.size()) {
    if (blank(command[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < command.size() && word_char(command[i])) {
      ++i;
    }
    if (i == start || (i < command.size() && !blank(command[i])) || words.size() == kMaxWords) {
      return false;  // a character of the shell's grammar (quote, $, glob, operator, newline...)
    }
    words.emplace_back(command.substr(start, i - start));
  }
  if (words.empty()) {
    return false;
  }
  // The command's name: no assignment (NAME=value), and nothing bash reads as other than a name
  // (a `%1` would be a job, a `-x` an option to nothing).
  const std::string& name = words.front();
  const char first = name.front();
  const bool name_start = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
                          (first >= '0' && first <= '9') || first == '_' || first == '.' || first == '/';
  return name_start && name.find('=') == std::string::npos;
}

bool parse_proc_limits(std::string_view text, std::array<rlimit, RLIM_NLIMITS>& limits) {
  // fs/proc/base.c: a header, then "%-25s %-20s %-20s %-10s\n" a resource, in RLIMIT_ order.
  constexpr std::string_view kNames[] = {
      "Max cpu time",      "Max file size",      "Max data size",       "Max stack size",
      "Max core file size", "Max resident set",  "Max processes",       "Max open files",
      "Max locked memory", "Max address space",  "Max file locks",      "Max pending signals",
      "Max msgqueue size", "Max nice priority",  "Max realtime priority", "Max realtime timeout"};
  static_assert(std::size(kNames) == RLIM_NLIMITS);
  auto value = [](std::string_view field, rlim_t& out) {
    while (!field.empty() && field.back() == ' ') {
      field.remove_suffix(1);
    }
    if (field == "unlimited") {
      out = RLIM_INFINITY;
      return true;
    }
    const auto r = std::from_chars(field.data(), field.data() + field.size(), out);
    return !field.empty() && r.ec == std::errc() && r.ptr == field.data() + field.size();
  };
  std::size_t row = 0;
  bool ok = true;
  each_line(text, [&](std::string_view line) {
    if (!ok || starts_with(line, "Limit ")) {
      return;
    }
    ok = row < RLIM_NLIMITS && line.size() >= 67 && starts_with(line, kNames[row]) &&
         value(line.substr(26, 20), limits[row].rlim_cur) && value(line.substr(47, 20), limits[row].rlim_max) &&
         limits[row].rlim_cur <= limits[row].rlim_max;
    ++row;
  });
  return ok && row == RLIM_NLIMITS;
}

bool shell_word(std::string_view word) {
  static constexpr std::array<std::string_view, 85> kWords = {
      // reserved words
      "!", "[[", "]]", "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
      "select", "then", "time", "until", "while", "{", "}",
      // builtins
      ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete",
      "compopt", "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit", "export",
      "false", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let", "local", "logout",
      "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift",
      "shopt", "source", "suspend", "test", "times", "trap", "true", "type", "typeset", "ulimit", "umask",
      "unalias", "unset", "wait"};
  return std::find(kWords.begin(), kWords.end(), word) != kWords.end();
}

ShellView read_shell_view(std::string_view exports, std::string_view functions_and_aliases,
                          std::string_view settings) {
  ShellView view;
  auto refuse = [&view](std::string why) {
    view.usable = false;
    view.why = std::move(why);
    return view;
  };
  backend::ExportList vars;
  if (Status s = backend::parse_exports(exports, vars, backend::ExportScope::environment); !s.ok()) {
    return refuse(s.message());
  }
  view.environment.reserve(vars.size() + 1);
  bool has_path = false;
  for (auto& [name, value] : vars) {
    if (name == "PATH") {
      has_path = true;
      std::size_t at = 0;
      for (;;) {
        const std::size_t colon = std::min(value.find(':', at), value.size());
        const std::string_view dir = std::string_view(value).substr(at, colon - at);
        if (dir.empty() || dir.front() != '/') {
          view.path_relative = true;
        }
        view.path.emplace_back(dir);
        if (colon == value.size()) {
          break;
        }
        at = colon + 1;
      }
    }
    view.environment.push_back(name + "=" + value);
  }
  if (!has_path) {
    // bash then searches a default path of its own: the shell's to do.
    return refuse("PATH is not exported");
  }
  bool bad = false;
  each_line(functions_and_aliases, [&](std::string_view line) {
    if (starts_with(line, "declare -f")) {
      // `declare -fx f`: an exported function, which bash passes to every program it starts.
      const std::string_view flags = line.substr(9, line.find(' ', 9) - 9);
      bad = bad || flags.find('x') != std::string_view::npos;
    } else if (starts_with(line, "alias ")) {
      const std::string_view rest = line.substr(6);
      view.shadows.emplace(rest.substr(0, rest.find('=')));
    } else if (line.size() > 3 && (line.ends_with(" () ") || line.ends_with(" ()"))) {
      // A function's first line, `name () ` at the margin (a line of a here-document inside a body
      // may look like one too: that only shadows one more name).
      std::string_view name = line.substr(0, line.rfind(" ()"));
      if (starts_with(name, "function ")) {
        name.remove_prefix(9);
      }
      view.shadows.emplace(name);
    }
  });
  if (bad) {
    return refuse("an exported function");
  }
  std::size_t line_no = 0;
  each_line(settings, [&](std::string_view line) {
    ++line_no;
    if (line_no == 1) {
      // $-: errexit, verbose, xtrace, noexec and keyword change what running one simple command does.
      bad = bad || line.find_first_of("evxnk") != std::string_view::npos;
      if (bad && view.why.empty()) {
        view.why = "set -" + std::string(line);
      }
    } else if (line_no == 2) {
      unsigned mask = 0;
      const auto r = std::from_chars(line.data(), line.data() + line.size(), mask, 8);
      if (r.ec != std::errc() || r.ptr != line.data() + line.size() || line.empty() || mask > 0777) {
        bad = true;
        view.why = "umask unreadable";
      }
      view.umask = static_cast<mode_t>(mask);
    } else if (starts_with(line, "trap -- ")) {
      // `trap -- '' SIGXFSZ` ignores a signal, for the shell and every program it starts; any other
      // action is the shell's to run (and EXIT, ERR, DEBUG and RETURN are not signals).
      const int sig = starts_with(line, "trap -- '' SIG") ? signal_number(line.substr(14)) : 0;
      if (sig > 0) {
        view.ignored.push_back(sig);
      } else {
        bad = true;
        view.why = "traps";
      }
    } else if (starts_with(line, "builtin hash -p ")) {
      // `builtin hash -p PATH NAME`, unquoted (bash prints both as they are; a path with a space
      // would be ambiguous, and a name that is not plain is never looked up here).
      const std::string_view rest = line.substr(16);
      const std::size_t space = rest.rfind(' ');
      if (space == std::string_view::npos || rest.find(' ') != space) {
        bad = true;
        view.why = "hash table unreadable";
      } else {
        view.hashed.insert_or_assign(std::string(rest.substr(space + 1)), std::string(rest.substr(0, space)));
      }
    }
  });
  if (line_no < 2) {
    return refuse("settings unreadable");
  }
  if (bad) {
    return refuse(view.why);
  }
  view.usable = true;
  return view;
}

}  // namespace phasekit::sandbox
