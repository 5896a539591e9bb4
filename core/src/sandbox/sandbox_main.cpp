// phasekit-sandbox: the supervisor of one backend. Started by the process driver as PID 1 of fresh
// namespaces, by the docker driver as a container's PID 1, or as a plain child with SANDBOX=none;
// it then speaks the frame protocol on stdin/stdout (phasekit/backend/supervisor_protocol.hpp).
//
//   phasekit-sandbox namespaces|container|plain --workspace=DIR [--workspace-root=DIR]
//       [--uid=N --gid=N | --userns] [--tmpfs-bytes=N] [--file-bytes=N] [--open-files=N]
//       [--address-space-bytes=N] [--processes=N] [--pids-events-fd=N] [--memory-events-fd=N] [--check]
//
// A small static binary: no library beyond libc and libstdc++, so a container runs it from a bind mount.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include "phasekit/backend/supervisor_protocol.hpp"
#include "filesystem.hpp"
#include "supervisor.hpp"

namespace {

using phasekit::sandbox::Mode;
using phasekit::sandbox::Options;

[[noreturn]] void die(const std::string& why, int code) {
  std::string frame;
  phasekit::backend::wire::append_frame(frame, phasekit::backend::wire::FrameType::fatal, why);
  (void)!::write(STDOUT_FILENO, frame.data(), frame.size());
  std::_Exit(code);
}

template <class T>
bool number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

/// "" or what is wrong with the command line.
std::string parse(int argc, char** argv, Options& o) {
  if (argc < 2) {
    return "usage: phasekit-sandbox namespaces|container|plain --workspace=DIR [options]";
  }
  const std::string_view mode = argv[1];
  if (mode == "namespaces") {
    o.mode = Mode::namespaces;
  } else if (mode == "container") {
    o.mode = Mode::container;
  } else if (mode == "plain") {
    o.mode = Mode::plain;
  } else {
    return "unknown mode " + std::string(mode);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto eq = arg.find('=');
    const std::string_view key = arg.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : arg.substr(eq + 1);
    bool ok = true;
    if (key == "--workspace") {
      o.workspace = value;
    } else if (key == "--workspace-root") {
      o.workspace_root = value;
    } else if (key == "--uid") {
      ok = number(value, o.uid);
    } else if (key == "--gid") {
      ok = number(value, o.gid);
    } else if (key == "--userns") {
      o.userns = true;
    } else if (key == "--check") {
      o.check_shell = true;
    } else if (key == "--through-shell") {
      o.direct = false;
    } else if (key == "--tmpfs-bytes") {
      ok = number(value, o.tmpfs_bytes) && o.tmpfs_bytes > 0;
    } else if (key == "--file-bytes") {
      ok = number(value, o.file_bytes);
    } else if (key == "--open-files") {
      ok = number(value, o.open_files);
    } else if (key == "--address-space-bytes") {
      ok = number(value, o.address_space_bytes);
    } else if (key == "--processes") {
      ok = number(value, o.processes);
    } else if (key == "--pids-events-fd") {
      ok = number(value, o.pids_events_fd);
    } else if (key == "--memory-events-fd") {
      ok = number(value, o.memory_events_fd);
    } else {
      return "unknown option " + std::string(arg);
    }
    if (!ok) {
      return "bad value in " + std::string(arg);
    }
  }
  if (o.workspace.empty() || o.workspace.front() != '/') {
    return "--workspace must be an absolute path";
  }
  if (o.mode == Mode::namespaces) {
    if (o.workspace_root.empty() || o.workspace_root.front() != '/' ||
        o.workspace.compare(0, o.workspace_root.size() + 1, o.workspace_root + "/") != 0) {
      return "--workspace-root must be an absolute folder above --workspace";
    }
  }
  if ((o.uid >= 0) != (o.gid >= 0)) {
    return "--uid and --gid go together";
  }
  return {};
}

bool write_file(const char* path, std::string_view text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

/// Not root: a user namespace of our own first (uid and gid 0 in it mapped to ours, which needs no
/// privilege), then the other namespaces, and a fork to become PID 1 of the new PID namespace. This
/// process stays behind only to wait: killed, it takes the sandbox with it (PR_SET_PDEATHSIG).
void enter_namespaces_unprivileged() {
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  if (::unshare(CLONE_NEWUSER) != 0) {
    die(std::string("cannot make a user namespace: ") + std::strerror(errno), 1);
  }
  if (!write_file("/proc/self/setgroups", "deny") || !write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")) {
    die(std::string("cannot map the user namespace: ") + std::strerror(errno), 1);
  }
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) != 0) {
    die(std::string("cannot make the sandbox's namespaces: ") + std::strerror(errno), 1);
  }
  const pid_t child = ::fork();
  if (child < 0) {
    die(std::string("fork: ") + std::strerror(errno), 1);
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    return;  // PID 1 of the new namespace: the supervisor
  }
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::close(STDIN_FILENO);
  ::close(STDOUT_FILENO);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  std::_Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

void write_text(const char* path, std::string_view text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::write(fd, text.data(), text.size());
    ::close(fd);
  }
}

int open_first(std::initializer_list<const char*> paths) {
  for (const char* p : paths) {
    const int fd = ::open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      return fd;
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::string e = parse(argc, argv, o); !e.empty()) {
    die(e, 2);
  }
  if (o.mode == Mode::namespaces && o.userns && ::getpid() != 1) {
    enter_namespaces_unprivileged();  // while still dumpable: a process writes its own uid_map
  }
  // Nothing in the sandbox may read this process's memory or attach to it, whatever its uid.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  for (const int fd : {o.pids_events_fd, o.memory_events_fd}) {
    if (fd >= 0 && ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      die("descriptor " + std::to_string(fd) + " is not open", 2);
    }
  }
  std::string state_dir;
  int state_fd = -1;
  switch (o.mode) {
    case Mode::namespaces:
      if (::getpid() != 1) {
        die("namespaces mode needs to be PID 1 of a new PID namespace", 2);
      }
      if (std::string e = phasekit::sandbox::setup_filesystem(o, state_fd); !e.empty()) {
        die("cannot build the sandbox: " + e, 1);
      }
      if (std::string e = phasekit::sandbox::loopback_up(); !e.empty()) {
        die("cannot build the sandbox: " + e, 1);
      }
      ::sethostname("phasekit", 8);
      write_text("/proc/self/oom_score_adj", "-1000");  // the OOM killer takes the user's processes, never this one
      state_dir = "/run/phasekit";
      break;
    case Mode::container:
      // The container's own cgroup, where the engine shows it (v1 per controller, or v2): the events
      // that say a call ran into the container's memory or process limit.
      if (o.pids_events_fd < 0) {
        o.pids_events_fd = open_first({"/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"});
      }
      if (o.memory_events_fd < 0) {
        o.memory_events_fd = open_first({"/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"});
      }
      state_dir = "/run/phasekit";
      if (::mkdir(state_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        die("cannot make " + state_dir + ": " + std::strerror(errno), 1);
      }
      break;
    case Mode::plain: {
      // Every orphan the shell leaves becomes our child, so a kill finds it.
      ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
      char dir[] = "/tmp/phasekit-sandbox-XXXXXX";
      if (::mkdtemp(dir) == nullptr) {
        die(std::string("mkdtemp: ") + std::strerror(errno), 1);
      }
      ::chmod(dir, 0755);
      state_dir = dir;
      break;
    }
  }
  if (::chdir(o.workspace.c_str()) != 0) {
    die("cannot enter " + o.workspace + ": " + std::strerror(errno), 1);
  }
  phasekit::sandbox::Supervisor supervisor(o, state_dir, state_fd);
  const int code = supervisor.run();
  if (o.mode == Mode::plain) {
    phasekit::sandbox::wipe_contents(state_dir);
    ::rmdir(state_dir.c_str());
  }
  return code;
}
