#pragma once
// What of a session a tool call works on and leaves behind for the next one: the backend the session
// is on, where its files are, its shell's cwd and exports, its command history. JobLifecycle reads and
// writes it; every field is touched only on `strand`.
//
// An orchestrator that holds a session's socket keeps one hold in the Session for the session's whole
// life (Tenure::held); phasekit-worker makes one per job from the store's record and drops it when the
// job ends (Tenure::leased).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "phasekit/app/session_state.hpp"
#include "phasekit/app/session_status.hpp"
#include "phasekit/io_strand.hpp"
#include "phasekit/plugin/backend.hpp"
#include "phasekit/plugin/store.hpp"
#include "phasekit/status.hpp"

namespace phasekit::app {

struct SessionHold {
  using Strand = IoStrand;

  SessionHold(std::string session_id, std::string user_id, Strand on)
      : id(std::move(session_id)), user(std::move(user_id)), strand(std::move(on)) {}

  /// The shell fields of a stored record: where the files are, cwd, exports, history.
  void take_shell_fields(const plugin::SessionRecord& record) {
    shell = ShellState{record.cwd, record.env};
    backend_id = record.backend;
    workspace = record.workspace;
    history = record.history;
  }

  const std::string id;
  const std::string user;  // "" when the store has no record of the session
  Strand strand;

  /// Held: as the orchestrator that holds the socket sees it; saved with every write of the record.
  SessionStatus status = SessionStatus::active;
  ShellState shell;                  // cwd and exports, as last read from a backend
  std::string backend_id;            // the backend that holds the files now ("" = none)
  std::string workspace;             // where the files are: that backend's workspace, or a folder
  std::vector<std::string> history;  // shell command lines, oldest first

  /// The store has a record of the session: saves update it and results go into its conversation.
  bool stored = false;
  /// The files and shell state are not on `backend` but in `workspace` and the fields above: bring
  /// them onto the next backend the session gets.
  bool restore = false;
  bool ended = false;  // held: the session ended; its calls fail UNAVAILABLE
  /// Leased: the session folder this job's files were copied from (device and inode; 0 when there was
  /// none): its commit replaces that folder only if it is still the same one.
  std::uint64_t files_base_dev = 0;
  std::uint64_t files_base_ino = 0;

  plugin::BackendPtr backend;  // held: the session's, across calls; leased: this job's lease
  bool acquiring = false;      // held: one acquire for all the calls waiting in `waiters`
  std::vector<std::function<void(Status)>> waiters;
};

using HoldPtr = std::shared_ptr<SessionHold>;

}  // namespace phasekit::app
