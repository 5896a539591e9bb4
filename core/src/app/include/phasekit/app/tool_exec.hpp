#pragma once
// Runs one tool call on a backend: the part of a job that is the same in the orchestrator (queue=inproc)
// and in phasekit-worker (queue=redis). Output over the streaming threshold goes out as tool:output
// events while the command runs; the result object is handed back, for the caller to publish.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "phasekit/backend/shell_backend.hpp"
#include "phasekit/plugin/compression.hpp"
#include "phasekit/plugin/host.hpp"
#include "phasekit/plugin/queue.hpp"

namespace phasekit::app {

struct ToolLimits {
  std::size_t stream_threshold_bytes = 65536;
  std::size_t max_output_bytes = 1 << 20;
  int backend_uid = -1;  // owner of files written by the file tools
  int backend_gid = -1;
};

/// A tool:result body without its callId: {exitCode, output, truncated, durationMs[, error]}.
nlohmann::json error_result(const Status& status);

/// Runs payload {tool, args} on `backend`. finished(result, status) is called once, on the backend's
/// strand for shell commands and inline for file tools; status says how it ended (TIMEOUT for a
/// command killed at `timeout`). Output events carry `call_id` and `session_id`.
void execute_tool(const ToolLimits& limits, const backend::ShellBackendPtr& backend, const nlohmann::json& payload,
                  const std::string& call_id, const std::string& session_id, std::chrono::milliseconds timeout,
                  plugin::QueueStrategy::EventSink sink, std::function<void(nlohmann::json, Status)> finished);

/// For a shell call ({tool: "shell", args: {command}}): its command line ("" when the command is not
/// a string); nothing for any other call.
std::optional<std::string> shell_command(const nlohmann::json& payload);

/// A conversation entry as the store keeps it: stamped with the wall time ("t", in ms), serialised
/// and compressed.
Status conversation_blob(nlohmann::json entry, const Clock& clock, plugin::CompressionStrategy& compression,
                         std::string& blob);

/// JSON text cannot carry binary values (Socket.IO attachments): across the queue and in the store
/// they travel as {"$binary": "<base64>"}.
void tag_binary(nlohmann::json& node);
void untag_binary(nlohmann::json& node);

}  // namespace phasekit::app
