#include "phasekit/app/tool_exec.hpp"

#include "file_tools.hpp"
#include "phasekit/bytes.hpp"

namespace phasekit::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct OutputStream {
  std::string buffered;
  std::uint64_t total = 0;
  std::uint64_t seq = 0;
  bool streaming = false;
};

}  // namespace

json error_result(const Status& status) {
  return json{{"exitCode", nullptr},
              {"output", ""},
              {"truncated", false},
              {"durationMs", 0},
              {"error", {{"code", wire_name(status.code())}, {"message", status.message()}}}};
}

void execute_tool(const ToolLimits& limits, const backend::ShellBackendPtr& backend, const json& payload,
                  const std::string& call_id, const std::string& session_id, std::chrono::milliseconds timeout,
                  plugin::QueueStrategy::EventSink sink, std::function<void(json, Status)> finished) {
  if (!payload.is_object() || !payload.contains("tool") || !payload["tool"].is_string()) {
    const Status bad(Code::bad_request, "malformed job");
    finished(error_result(bad), bad);
    return;
  }
  if (!backend) {
    const Status bad(Code::internal, "backend cannot run tools");
    finished(error_result(bad), bad);
    return;
  }
  const std::string tool = payload["tool"].get<std::string>();
  const json args = payload.value("args", json::object());
  if (tool == "shell") {
    const std::size_t threshold = limits.stream_threshold_bytes;
    auto stream = std::make_shared<OutputStream>();
    auto emit_chunk = [stream, sink, session_id, call_id](std::string_view text) {
      sink(plugin::JobEvent{call_id, session_id, plugin::JobEventType::output,
                            bytes::dump(json{{"callId", call_id}, {"seq", stream->seq++}, {"chunk", bytes::to_json(text)}})});
    };
    auto on_chunk = [stream, threshold, emit_chunk](std::string_view chunk) {
      stream->total += chunk.size();
      stream->buffered.append(chunk);
      if (!stream->streaming) {
        if (stream->total <= threshold) {
          return;
        }
        stream->streaming = true;
      }
      // A character cut in two by the pipe waits for its other half: a chunk is text whenever the
      // output is, and {"base64": …} only when its bytes are not UTF-8.
      const std::size_t whole = bytes::utf8_complete_prefix(stream->buffered);
      if (whole > 0) {
        emit_chunk(std::string_view(stream->buffered).substr(0, whole));
        stream->buffered.erase(0, whole);
      }
    };
    const json command = args.is_object() ? args.value("command", json("")) : json("");
    backend->run(command.is_string() ? command.get<std::string>() : std::string(), timeout, limits.max_output_bytes,
                 on_chunk, [stream, emit_chunk, finished = std::move(finished)](Status status, backend::RunResult r) {
                   if (stream->streaming && !stream->buffered.empty()) {
                     emit_chunk(stream->buffered);  // the tail a cut character held back
                     stream->buffered.clear();
                   }
                   if (!status.ok()) {
                     finished(error_result(status), status);
                     return;
                   }
                   json result{{"exitCode", r.exit_code},
                               {"output", bytes::to_json(stream->streaming ? std::string_view() : r.output)},
                               {"truncated", r.truncated},
                               {"durationMs",
                                std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count()}};
                   if (stream->streaming) {
                     result["streamed"] = true;
                     result["outputBytes"] = r.output_bytes;
                   }
                   if (r.shell_restarted) {
                     // The command ended its shell (exit, kill, hang): the next call finds a new one with
                     // the state of the last call that completed.
                     result["shellRestarted"] = true;
                   }
                   Status outcome;
                   if (r.limit != backend::LimitHit::none) {
                     const bool memory = r.limit == backend::LimitHit::memory;
                     result["error"] = {
                         {"code", "RESOURCE_EXHAUSTED"},
                         {"limit", memory ? "memory" : "processes"},
                         {"message", memory ? "the call reached its backend's memory limit (BACKEND_MEMORY_BYTES); "
                                              "the kernel killed a process and every process of the call is gone"
                                            : "the call reached its backend's process limit (BACKEND_PROCESSES); "
                                              "every process of the call was killed"}};
                     outcome = Status(Code::unavailable, "resource limit");
                   } else if (r.timed_out) {
                     result["timedOut"] = true;
                     result["error"] = {{"code", "TIMEOUT"},
                                        {"message", "the command ran past JOB_TIMEOUT_MS; every process of the "
                                                    "backend was killed"}};
                     outcome = Status(Code::timeout, "timed out");
                   }
                   finished(std::move(result), outcome);
                 });
    return;
  }
  const auto started = Clock::now();
  const FileToolContext ctx{backend->workspace(), limits.backend_uid, limits.backend_gid, limits.max_output_bytes};
  FileToolResult out;
  Status status;
  if (tool == "read_file") {
    status = read_file(ctx, args, out);
  } else if (tool == "write_file") {
    status = write_file(ctx, args, out);
  } else if (tool == "list_dir") {
    status = list_dir(ctx, args, out);
  } else {
    status = Status(Code::bad_request, "unknown tool");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  if (!status.ok()) {
    json result = error_result(status);
    result["exitCode"] = 1;
    result["durationMs"] = ms;
    finished(std::move(result), status);
  } else {
    finished(json{{"exitCode", 0}, {"output", out.output}, {"truncated", out.truncated}, {"durationMs", ms}}, status);
  }
}

std::optional<std::string> shell_command(const json& payload) {
  if (!payload.is_object() || payload.value("tool", "") != "shell") {
    return std::nullopt;
  }
  const auto args = payload.find("args");
  if (args == payload.end() || !args->is_object()) {
    return std::string();
  }
  const auto command = args->find("command");
  return command != args->end() && command->is_string() ? command->get<std::string>() : std::string();
}

Status conversation_blob(json entry, const phasekit::Clock& clock, plugin::CompressionStrategy& compression,
                         std::string& blob) {
  entry["t"] = std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall().time_since_epoch()).count();
  return compression.compress(bytes::dump(entry), blob);
}

void tag_binary(json& node) {
  if (node.is_binary()) {
    const auto& data = node.get_binary();
    node = json{{"$binary", bytes::base64_encode(std::string(data.begin(), data.end()))}};
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      tag_binary(child);
    }
  }
}

void untag_binary(json& node) {
  if (node.is_object() && node.size() == 1 && node.contains("$binary") && node["$binary"].is_string()) {
    std::string data;
    if (bytes::base64_decode(node["$binary"].get<std::string>(), data)) {
      node = json::binary(json::binary_t::container_type(data.begin(), data.end()));
    }
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) {
      untag_binary(child);
    }
  }
}

}  // namespace phasekit::app
