#include "confine.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace phasekit::sandbox {
namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "phasekit-sandbox: seccomp filter written for x86_64 and aarch64 (little-endian) only"
#endif

std::string failed(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string set_limit(int resource, std::uint64_t value, const char* name) {
  rlimit limit{};
  limit.rlim_cur = value;
  limit.rlim_max = value;
  if (::setrlimit(resource, &limit) != 0) {
    return failed(name);
  }
  return {};
}

sock_filter stmt(std::uint16_t code, std::uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

/// `return errno` when the system call number equals `nr`.
void refuse(std::vector<sock_filter>& f, long nr, int error) {
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<std::uint32_t>(error)));
}

}  // namespace

int last_capability() {
  const int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  char buf[16] = {};
  const ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) {
    ::close(fd);
  }
  return n > 0 ? std::atoi(buf) : 63;
}

std::string apply_rlimits(const Options& o) {
  if (std::string e = set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE"); !e.empty()) {
    return e;
  }
  if (o.file_bytes > 0) {
    if (std::string e = set_limit(RLIMIT_FSIZE, o.file_bytes, "RLIMIT_FSIZE"); !e.empty()) {
      return e;
    }
  }
  if (o.open_files > 0) {
    if (std::string e = set_limit(RLIMIT_NOFILE, o.open_files, "RLIMIT_NOFILE"); !e.empty()) {
      return e;
    }
  }
  if (o.processes > 0) {
    if (std::string e = set_limit(RLIMIT_NPROC, o.processes, "RLIMIT_NPROC"); !e.empty()) {
      return e;
    }
  }
  if (o.address_space_bytes > 0) {
    if (std::string e = set_limit(RLIMIT_AS, o.address_space_bytes, "RLIMIT_AS"); !e.empty()) {
      return e;
    }
  }
  return {};
}

std::string drop_privileges(const Options& o, int last_cap) {
  if (o.userns) {
    // uid 0 of our own user namespace: keep the uid, lose every capability for good. The securebits
    // first (they need CAP_SETPCAP): an exec as uid 0 must not grant the capabilities back.
    if (::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                       SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED) != 0) {
      return failed("PR_SET_SECUREBITS");
    }
    if (last_cap < 0) {
      last_cap = last_capability();
    }
    for (int cap = 0; cap <= last_cap; ++cap) {
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
        return failed("PR_CAPBSET_DROP");
      }
    }
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &header, data) != 0) {
      return failed("capset");
    }
  } else if (o.uid >= 0) {
    if (::setgroups(0, nullptr) != 0) {
      return failed("setgroups");
    }
    if (::setresgid(static_cast<gid_t>(o.gid), static_cast<gid_t>(o.gid), static_cast<gid_t>(o.gid)) != 0) {
      return failed("setresgid");
    }
    if (::setresuid(static_cast<uid_t>(o.uid), static_cast<uid_t>(o.uid), static_cast<uid_t>(o.uid)) != 0) {
      return failed("setresuid");
    }
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return failed("PR_SET_NO_NEW_PRIVS");
  }
  return {};
}

std::string install_seccomp() {
  std::vector<sock_filter> f;
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
  f.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));  // the x32 ABI
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
#endif
  refuse(f, __NR_clone3, ENOSYS);  // its flags sit behind a pointer; glibc falls back to clone
  refuse(f, __NR_keyctl, EPERM);
  refuse(f, __NR_add_key, EPERM);
  refuse(f, __NR_request_key, EPERM);
  refuse(f, __NR_io_uring_setup, ENOSYS);
  // unshare(flags) and clone(flags, ...): the flags are the first argument on both architectures.
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 1, 0));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3));
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));  // low half (little-endian)
  f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  sock_fprog program{static_cast<unsigned short>(f.size()), f.data()};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) {
    return failed("seccomp");
  }
  return {};
}

}  // namespace phasekit::sandbox
