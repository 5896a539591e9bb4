#pragma once
// What the orchestrator's configuration decides for ToolService and its sessions.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "phasekit/app/auth.hpp"

namespace phasekit::app {

struct ServiceSettings {
  std::uint32_t max_requests_per_user = 5;
  std::uint32_t max_sessions_per_user = 10;  // on this instance, connected or in grace
  std::uint32_t max_backends_per_user = 2;   // held by the user's sessions on this instance
  std::size_t history_page_bytes = 512 * 1024;  // largest session:history page (stored bytes)
  std::chrono::milliseconds job_timeout{30000};
  std::size_t max_output_bytes = 1 << 20;
  std::size_t stream_threshold_bytes = 65536;
  std::chrono::milliseconds session_grace{30000};
  unsigned concurrency = 10;
  bool auth_required = false;
  TokenRules auth;  // secret, issuer, audience, lifetime cap, leeway
  int backend_uid = -1;  // owner of files written by the file tools
  int backend_gid = -1;
  /// false when phasekit-workers run the jobs (queue=redis): this instance only enqueues them.
  bool run_jobs = true;
  /// The store is shared (store=redis): sessions save their shell state after every call and can be
  /// resumed on any instance (Socket.IO `pid`).
  bool persist_sessions = false;
  std::string workspace_root;
  std::string instance_id;          // names this instance in session records
  std::size_t history_limit = 100;  // shell command lines kept in a session record
};

}  // namespace phasekit::app
