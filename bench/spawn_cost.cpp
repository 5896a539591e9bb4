// The floor of a tool call: one posix_spawn of a command line, its output read to the end through a
// pipe, the child reaped. bench/toolcall_cost.sh runs this in a cgroup of its own and divides the
// cgroup's CPU by the count.
//   spawn_cost COUNT PROGRAM [ARGS...]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

extern char** environ;

int main(int argc, char** argv) {
  int count = 0;
  const std::string_view n = argc > 2 ? argv[1] : "";
  if (argc < 3 || std::from_chars(n.data(), n.data() + n.size(), count).ec != std::errc() || count <= 0) {
    std::fprintf(stderr, "usage: spawn_cost COUNT PROGRAM [ARGS...]\n");
    return 2;
  }
  char buf[65536];
  for (int i = 0; i < count; ++i) {
    int out[2];
    if (::pipe(out) != 0) {
      std::perror("pipe");
      return 1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    pid_t pid = 0;
    const int err = posix_spawnp(&pid, argv[2], &actions, nullptr, argv + 2, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (err != 0) {
      std::fprintf(stderr, "posix_spawnp %s: %s\n", argv[2], std::strerror(err));
      return 1;
    }
    while (::read(out[0], buf, sizeof buf) > 0) {
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  return 0;
}
