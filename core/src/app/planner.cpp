#include "phasekit/app/planner.hpp"

#include <fmt/format.h>

#include <array>

namespace phasekit::app {

bool is_known_tool(std::string_view tool) noexcept {
  constexpr std::array<std::string_view, 4> kTools{"shell", "read_file", "write_file", "list_dir"};
  for (const auto t : kTools) {
    if (t == tool) {
      return true;
    }
  }
  return false;
}

Status DefaultPlanner::plan(const nlohmann::json& message, ToolCall& out) const {
  if (message.is_string()) {
    const std::string& command = message.get_ref<const std::string&>();
    if (command.find_first_not_of(" \t\r\n") == std::string::npos) {
      return Status(Code::bad_request, "message is empty");
    }
    if (command.size() > max_command_bytes_ || command.find('\0') != std::string::npos) {
      return Status(Code::bad_request, fmt::format("command line longer than {} bytes or with NUL", max_command_bytes_));
    }
    out.tool = "shell";
    out.args = {{"command", command}};
    return {};
  }
  if (!message.is_object()) {
    return Status(Code::bad_request, "message must be a string (a command line) or an object {tool, args}");
  }
  const auto tool = message.find("tool");
  if (tool == message.end() || !tool->is_string() || !is_known_tool(tool->get<std::string>())) {
    return Status(Code::bad_request, "tool must be one of shell, read_file, write_file, list_dir");
  }
  const auto args = message.find("args");
  if (args != message.end() && !args->is_object()) {
    return Status(Code::bad_request, "args must be an object");
  }
  out.tool = tool->get<std::string>();
  out.args = args == message.end() ? nlohmann::json::object() : *args;
  if (out.tool == "shell") {
    const auto command = out.args.find("command");
    if (command == out.args.end() || !command->is_string()) {
      return Status(Code::bad_request, "shell needs args.command, a string");
    }
    return plan(*command, out);
  }
  return {};
}

}  // namespace phasekit::app
