#pragma once
// The planner turns a user's `message` into a tool call. The default one treats a string as a shell
// command line and an object {tool, args} as a direct call; it is an interface so that an LLM
// planner can take its place.
#include <nlohmann/json.hpp>

#include <string>

#include "phasekit/status.hpp"

namespace phasekit::app {

struct ToolCall {
  std::string tool;      // shell | read_file | write_file | list_dir
  nlohmann::json args;   // an object
};

class Planner {
 public:
  virtual ~Planner() = default;
  /// BAD_REQUEST with a message saying what is wrong with the message.
  virtual Status plan(const nlohmann::json& message, ToolCall& out) const = 0;
};

class DefaultPlanner final : public Planner {
 public:
  explicit DefaultPlanner(std::size_t max_command_bytes = 65536) : max_command_bytes_(max_command_bytes) {}
  Status plan(const nlohmann::json& message, ToolCall& out) const override;

 private:
  std::size_t max_command_bytes_;
};

bool is_known_tool(std::string_view tool) noexcept;

}  // namespace phasekit::app
