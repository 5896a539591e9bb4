#pragma once
// A virtual user: picks its variables (a payload row, config.variables) and a flow, opens its
// connection through the run's driver, runs the flow's steps on it (repeating it in a capacity step)
// and counts how it went. The before and after flows run as one such user each.
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "driver/driver.hpp"
#include "runner/outcome.hpp"
#include "runner/worker.hpp"
#include "scenario.hpp"
#include "template.hpp"

namespace phasekit::load {

/// How a before or after flow went, and its variables at the end (what it captured among them).
struct HookResult {
  bool done = false;
  Outcome outcome;
  Vars vars;
};

class VirtualUser {
 public:
  VirtualUser(Worker& w, RunState& run, std::uint64_t id, TimePoint intended)
      : worker_(w), run_(run), id_(id), rng_(w.rng()), intended_(intended), arrival_(intended) {}
  ~VirtualUser();
  VirtualUser(const VirtualUser&) = delete;
  VirtualUser& operator=(const VirtualUser&) = delete;

  /// The user's whole life, from its arrival in phase to its connection closed.
  static boost::asio::awaitable<void> run(std::shared_ptr<VirtualUser> self, std::size_t phase);
  /// A before or after flow, run once by this user; out is filled in when it ends. Counts nothing.
  static boost::asio::awaitable<void> run_hook(std::shared_ptr<VirtualUser> self, const Flow* flow, HookResult* out);

 private:
  /// Connects, joins the target's namespace and runs the flow (repeating it in a capacity step).
  static boost::asio::awaitable<Outcome> session(std::shared_ptr<VirtualUser> self, TimePoint started, bool repeat);
  static boost::asio::awaitable<Outcome> steps(std::shared_ptr<VirtualUser> self, const std::vector<Step>* list);
  static boost::asio::awaitable<Outcome> loop(std::shared_ptr<VirtualUser> self, const Step* step);
  static boost::asio::awaitable<Outcome> emit(std::shared_ptr<VirtualUser> self, const Step* step);

  /// Names resolve in the user's own variables, then in the run's shared ones.
  [[nodiscard]] Scope scope() const { return Scope(vars_, &run_.shared); }
  nlohmann::json render_value(const nlohmann::json& t, Outcome& error);
  std::string render_text(std::string_view t, Outcome& error);
  /// The extraHeaders and query of the flow's socketio, rendered for this user.
  ConnectOptions connect_options(Outcome& error);
  void pick_variables();
  const Flow& pick_flow();
  /// Checks and captures of an awaited payload.
  Outcome expect(const Expectation& e, const nlohmann::json& payload);
  /// The checks alone (data and matches), capturing nothing: whether expect() would fail.
  Outcome check(const Expectation& e, const nlohmann::json& payload);

  Worker& worker_;
  RunState& run_;
  std::uint64_t id_;
  std::mt19937_64 rng_;
  TimePoint intended_;  // when the next step is meant to start
  TimePoint arrival_;
  Vars vars_;
  const Flow* flow_ = nullptr;
  ConnectionPtr conn_;
  bool failed_a_flow_ = false;  // --keep-going: a flow failed, counted, and the user went on
};

}  // namespace phasekit::load
