#pragma once
// Starting a program without the session's shell. bash starts every program it runs with fork(), and
// on this kind of machine (a paravirtualized guest, where every page-table write is a hypercall) a
// fork costs a third more than the vfork that posix_spawn uses: `ls -la` through a call cost 1.6-2.4x
// one posix_spawn of it (docs/capacity.md). So a command that is one plain simple command (`ls -la`,
// `cat notes.txt`, `wc -c a.txt b.txt`) is started by the supervisor itself, with vfork, exactly as
// the shell would have started it: its words, the shell's environment, working directory, umask and
// resource limits, the same privileges, descriptors and signal dispositions.
//
// "Exactly" is kept by refusing: anything whose meaning depends on the shell beyond that goes to the
// shell as before. A command with any quoting, expansion, redirection, operator or assignment; a
// first word that is a reserved word, a builtin, a function or an alias; a shell with a trap that
// runs something (an ignored signal is passed on, as bash does), an exported function, or `set -e`, `-v`, `-x`, `-n` or `-k` in force; a program the shell's PATH (or
// its hash table) does not find, or that the kernel will not exec (bash then runs it as a script, or
// says why).
//
// What differs, and is documented in docs/backends.md: bash's `$_` and hash table are not updated by
// a program started this way, a program killed by a signal gets no "Killed" line from the shell, and
// the program leads a session of its own (the shell's children share the shell's).
//
// These functions are pure: the supervisor reads the files and starts the process.
#include <sys/resource.h>
#include <sys/types.h>

#include <array>

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace phasekit::sandbox {

/// The words of `command` when it is one simple command of plain words: word characters only
/// (letters, digits and `_ - . / , : + @ %`, with `=` after the first word), separated by spaces or
/// tabs, with blanks and newlines around it. False otherwise, and for anything over 4 KiB or 256 words.
bool plain_words(std::string_view command, std::vector<std::string>& words);

/// A process's resource limits from its /proc/PID/limits (readable by anyone, where prlimit(2) on a
/// process of another user needs CAP_SYS_RESOURCE): its rows are the kernel's RLIMIT_ order. False
/// for a text that is not sixteen rows of that table.
bool parse_proc_limits(std::string_view text, std::array<rlimit, RLIM_NLIMITS>& limits);

/// bash 5.2's reserved words and builtins (`compgen -k`, `enable -a`).
bool shell_word(std::string_view word);

/// What the session's shell last reported of itself, as far as starting a program without it goes.
struct ShellView {
  bool usable = false;
  std::string why;                          // when not usable: what the shell has that a spawn cannot honour
  std::vector<std::string> environment;     // "NAME=value", as bash hands them to a program
  std::vector<std::string> path;            // PATH's folders in order; empty when PATH is unset
  bool path_relative = false;               // PATH has an empty or relative entry (resolved against the cwd)
  std::unordered_set<std::string> shadows;  // functions and aliases: the shell's to run
  std::unordered_map<std::string, std::string> hashed;  // `hash -l`: the path bash runs for a name, PATH or not
  std::vector<int> ignored;                 // signals the shell ignores (`trap -- '' SIG`): so do its programs
  mode_t umask = 022;
};

/// From the shell's report: `declare -px`; `declare -f` and `alias -p`; and `$-`, `umask`, `trap -p`
/// and `hash -l`, a line each (the last two any number of lines). Never throws; a text it cannot read
/// gives a view that is not usable.
ShellView read_shell_view(std::string_view exports, std::string_view functions_and_aliases,
                          std::string_view settings);

}  // namespace phasekit::sandbox
