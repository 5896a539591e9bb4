#include "runner/virtual_user.hpp"

#include <boost/asio/awaitable.hpp>
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <optional>
#include <string>

namespace phasekit::load {

using boost::asio::awaitable;
using nlohmann::json;

VirtualUser::~VirtualUser() {
  if (conn_) {
    worker_.live.erase(conn_.get());
  }
}

json VirtualUser::render_value(const json& t, Outcome& error) {
  std::string missing;
  json v = render(t, vars_, rng_, &missing);
  if (!missing.empty() && error.ok()) {
    error = Outcome{FlowErrc::template_value, fmt::format("{{{{ {} }}}} has no value", missing)};
  }
  return v;
}

void VirtualUser::pick_variables() {
  for (const auto& [name, values] : run_.scenario.variables) {
    vars_[name] = values.size() == 1 ? values[0]
                                     : values[std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng_)];
  }
  for (const auto& [name, value] : run_.scenario.environment) {
    vars_[name] = value;
  }
}

const Flow& VirtualUser::pick_flow() {
  const double total = run_.flow_weights.back();
  const double r = std::uniform_real_distribution<double>(0, total)(rng_);
  for (std::size_t i = 0; i < run_.flow_weights.size(); ++i) {
    if (r < run_.flow_weights[i]) {
      return run_.scenario.flows[i];
    }
  }
  return run_.scenario.flows.back();
}

Outcome VirtualUser::expect(const Expectation& e, const json& payload) {
  Outcome error;
  if (e.data) {
    const json want = render_value(*e.data, error);
    if (!error.ok()) {
      return error;
    }
    if (want != payload) {
      return {FlowErrc::data_mismatch, fmt::format("expected {:.80}, got {:.80}", want.dump(), payload.dump())};
    }
  }
  for (const Match& m : e.matches) {
    const json want = render_value(m.value, error);
    const json* got = m.path.find(payload);
    const bool equal = got != nullptr && (*got == want || (want.is_string() && !got->is_string() &&
                                                            got->dump() == want.get<std::string>()));
    if (!error.ok()) {
      return error;
    }
    if (!equal) {
      return {FlowErrc::match_failed, fmt::format("{}: expected {:.60}, got {:.60}", m.path.text(), want.dump(),
                                                  got == nullptr ? std::string("nothing") : got->dump())};
    }
  }
  for (const Capture& c : e.captures) {
    const json* got = c.path.find(payload);
    if (got == nullptr) {
      return {FlowErrc::capture_failed, fmt::format("{} is not in {:.80}", c.path.text(), payload.dump())};
    }
    vars_[c.as] = *got;
  }
  return {};
}

awaitable<Outcome> VirtualUser::emit(std::shared_ptr<VirtualUser> self, const Step* step) {
  const Scenario& sc = self->run_.scenario;
  const std::string ns = step->ns == "/" ? sc.target.ns : step->ns;
  Outcome error;
  if (ns != sc.target.ns) {
    const std::optional<json> auth = sc.socket.auth ? std::optional<json>(self->render_value(*sc.socket.auth, error))
                                                    : std::nullopt;
    ConnResult<void> joined = co_await self->conn_->join(
        ns, auth, SteadyClock::now() + seconds(self->run_.options.connect_timeout_s));
    if (!joined) {
      co_return joined.error();
    }
  }
  Emit request;
  request.ns = ns;
  request.args.push_back(render_string(step->channel, self->vars_, self->rng_));
  for (const json& a : step->args) {
    request.args.push_back(self->render_value(a, error));
  }
  if (step->response) {
    request.response = render_string(step->response->channel, self->vars_, self->rng_);
  }
  if (!error.ok()) {
    co_return error;
  }
  request.ack = step->ack.has_value();
  self->worker_.add(kEmits);
  ConnResult<Reply> reply = co_await self->conn_->emit(std::move(request), SteadyClock::now() + seconds(sc.timeout_s));
  const TimePoint done = SteadyClock::now();
  if (!reply) {
    co_return reply.error();
  }
  if (!step->response && !step->ack) {
    self->intended_ = done;
    co_return Outcome{};
  }
  const std::uint64_t latency = micros(done - self->intended_);
  self->worker_.record(kResponseTime, latency);
  if (sc.channels.count(step->channel) != 0) {
    self->worker_.record(fmt::format("{}.{}", kResponseTime, step->channel), latency);
  }
  self->intended_ = done;
  if (step->response) {
    self->worker_.add(kResponses);
    Outcome o = self->expect(*step->response, *reply->response);
    if (!o.ok()) {
      co_return o;
    }
  }
  if (step->ack) {
    self->worker_.add(kAcks);
    const json& ack_args = *reply->ack;
    const bool unwrap = self->flow_->v3_acks && ack_args.is_array() && ack_args.size() == 1;
    Outcome o = self->expect(*step->ack, unwrap ? ack_args[0] : ack_args);
    if (!o.ok()) {
      co_return o;
    }
  }
  co_return Outcome{};
}

awaitable<Outcome> VirtualUser::steps(std::shared_ptr<VirtualUser> self, const std::vector<Step>* list) {
  for (const Step& step : *list) {
    if (const std::optional<ConnError>& ended = self->conn_->ended()) {
      co_return *ended;
    }
    switch (step.kind) {
      case Step::Kind::emit: {
        Outcome o = co_await emit(self, &step);
        if (!o.ok()) {
          co_return o;
        }
        break;
      }
      case Step::Kind::think:
        // Ends at once when the connection dies (or is aborted), so the user stops thinking.
        self->intended_ += seconds(step.think_s);
        co_await self->conn_->idle(self->intended_);
        break;
      case Step::Kind::loop:
        for (std::uint64_t i = 0; i < step.count; ++i) {
          self->vars_["$loopCount"] = i;
          Outcome o = co_await steps(self, &step.steps);
          if (!o.ok()) {
            co_return o;
          }
        }
        break;
      case Step::Kind::log:
        if (!self->run_.options.quiet && self->run_.log_lines.fetch_add(1) < 1000) {
          std::cerr << fmt::format("[vu {}] {}\n", self->id_, render_string(step.message, self->vars_, self->rng_));
        }
        break;
    }
  }
  co_return Outcome{};
}

awaitable<void> VirtualUser::run(std::shared_ptr<VirtualUser> self, std::size_t phase) {
  RunState& rs = self->run_;
  Worker& w = self->worker_;
  const Scenario& sc = rs.scenario;
  const TimePoint started = SteadyClock::now();
  w.record(kArrivalLag, micros(started - self->arrival_));
  if (started - self->arrival_ > seconds(rs.options.late_ms / 1000.0)) {
    w.add(kArrivalsLate);
  }
  w.add(kVusersCreated);
  self->pick_variables();
  const Flow& flow = self->pick_flow();
  self->flow_ = &flow;

  ConnectOptions connect_options;
  for (const auto& [k, v] : sc.socket.headers) {
    connect_options.headers[k] = render_string(v, self->vars_, self->rng_);
  }
  connect_options.query = render_string(sc.socket.query, self->vars_, self->rng_);
  self->conn_ = rs.driver.new_connection(w.ioc.get_executor(), w, std::move(connect_options));
  w.live.insert(self->conn_.get());
  const TimePoint deadline = started + seconds(rs.options.connect_timeout_s);
  Outcome outcome;
  ConnResult<void> opened = co_await self->conn_->connect(deadline);
  if (!opened) {
    outcome = opened.error();
  }
  if (outcome.ok()) {
    const std::optional<json> auth = sc.socket.auth ? std::optional<json>(self->render_value(*sc.socket.auth, outcome))
                                                    : std::nullopt;
    if (outcome.ok()) {
      ConnResult<void> joined = co_await self->conn_->join(sc.target.ns, auth, deadline);
      if (!joined) {
        outcome = joined.error();
      }
    }
  }
  if (outcome.ok()) {
    const TimePoint connected = SteadyClock::now();
    w.record(kConnectTime, micros(connected - self->arrival_));
    self->intended_ = connected;
    const TimePoint repeat_until = rs.start + seconds(rs.options.repeat_until_s);
    do {
      outcome = co_await steps(self, &flow.steps);
      if (outcome.ok()) {
        w.add(kFlowsCompleted);
      }
    } while (outcome.ok() && rs.options.repeat_until_s > 0 && SteadyClock::now() < repeat_until);
  }
  if (outcome.is(ConnErrc::sockets_exhausted)) {
    w.add(kArrivalsDropped);
  }
  if (outcome.ok()) {
    w.add(kVusersCompleted);
    w.record(kSessionLength, micros(SteadyClock::now() - self->arrival_));
  } else {
    w.add(kVusersFailed);
    w.add(fmt::format("{}{}", kErrorPrefix, outcome.code()));
    w.note_error(outcome.code(), outcome.detail());
  }
  co_await self->conn_->close();
  rs.phase_active[phase].fetch_sub(1);
  rs.users.fetch_sub(1);
  w.active.fetch_sub(1);
}

}  // namespace phasekit::load
