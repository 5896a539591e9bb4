#pragma once
// phasekit-worker's side of a job (queue=redis): the session's files and shell state come from the
// store and WORKSPACE_ROOT/sessions/<id>, the call runs on a pooled backend, and what it changed goes
// back before its result is appended to the conversation and published. The queue runs one job of a
// session at a time, so two backends never hold one session's files.
#include <memory>
#include <string>

#include "app/tool_exec.hpp"
#include "app/acquire_times.hpp"
#include "phasekit/plugin/host.hpp"
#include "plugin_host/plugin_set.hpp"

namespace phasekit::app {

struct RunnerSettings {
  ToolLimits limits;
  std::string workspace_root;
  std::size_t history_limit = 100;
};

class JobRunner : public std::enable_shared_from_this<JobRunner> {
 public:
  JobRunner(RunnerSettings settings, plugin_host::PluginSet& plugins, plugin::HostServices& host);

  /// The queue's JobHandler: done is called once, after the result was published.
  void run(plugin::Job job, plugin::QueueStrategy::EventSink sink, plugin::QueueStrategy::JobDone done);
  [[nodiscard]] std::uint64_t in_flight() const noexcept { return in_flight_.load(); }

 private:
  struct Run;
  void start(const std::shared_ptr<Run>& run);
  void on_backend(const std::shared_ptr<Run>& run);
  void finish(const std::shared_ptr<Run>& run, nlohmann::json result, Status status);
  void publish(const std::shared_ptr<Run>& run);

  RunnerSettings settings_;
  plugin_host::PluginSet& plugins_;
  plugin::HostServices& host_;
  Logger& log_;
  std::atomic<std::uint64_t> in_flight_{0};
  AcquireTimes acquire_times_;
};

}  // namespace phasekit::app
