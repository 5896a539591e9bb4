#pragma once
// What the sandbox's shell gives up before it execs: the supervisor's privileges (uid, or every
// capability inside a user namespace), the right to gain any (no_new_privs), and resources beyond its
// limits (rlimits); and the system calls nobody in the sandbox may make (seccomp, installed by the
// supervisor on itself and inherited).
#include <string>

#include "options.hpp"

namespace phasekit::sandbox {

/// Resource limits of the shell and everything it starts. "" or what failed.
std::string apply_rlimits(const Options& options);

/// Drops to options.uid/gid (root supervisor) or to no capabilities at all (user namespace), then sets
/// no_new_privs. "" or what failed. `last_capability`: last_capability(), read once by a caller that
/// drops privileges in many children (-1: read here); nothing else is read or allocated on success,
/// so a vfork child may call it.
std::string drop_privileges(const Options& options, int last_capability = -1);

/// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap; 63 when unreadable).
int last_capability();

/// Installs the seccomp filter: no new user namespaces (clone/unshare with CLONE_NEWUSER, clone3 whose
/// flags a filter cannot read), no kernel keyrings (shared by every process of a uid, so by every
/// backend), no io_uring, no other system-call ABI than the native one. Needs no_new_privs. The
/// supervisor installs it on itself once its namespaces are made; every shell inherits it.
std::string install_seccomp();

}  // namespace phasekit::sandbox
