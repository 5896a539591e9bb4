#include "runner/virtual_user.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <optional>
#include <string>

namespace phasekit::load {

using boost::asio::awaitable;
using nlohmann::json;

namespace {

// A rendered value as text: a string as it is, anything else as JSON.
std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Puts back a loop variable as it was before a loop (an outer loop's value, or none).
void restore(Vars& vars, const char* name, std::optional<json> saved) {
  if (saved) {
    vars[name] = std::move(*saved);
  } else {
    vars.erase(name);
  }
}

/// An error a user met: errors.<code>, and its first detail for the report.
void count_error(Worker& w, const Outcome& o) {
  w.add(fmt::format("{}{}", kErrorPrefix, o.code()));
  w.note_error(o.code(), o.detail());
}

/// Waits `d` on the worker's loop (a reconnecting user's backoff).
awaitable<void> pause(Worker& w, SteadyClock::duration d) {
  boost::asio::steady_timer t(w.ioc.get_executor(), d);
  co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

std::optional<json> saved(const Vars& vars, const char* name) {
  const auto it = vars.find(name);
  return it == vars.end() ? std::nullopt : std::optional<json>(it->second);
}

}  // namespace

VirtualUser::~VirtualUser() {
  if (conn_) {
    worker_.live.erase(conn_.get());
  }
}

json VirtualUser::render_value(const json& t, Outcome& error) {
  std::string missing;
  json v = render(t, scope(), rng_, &missing);
  if (!missing.empty() && error.ok()) {
    error = Outcome{FlowErrc::template_value, fmt::format("{{{{ {} }}}} has no value", missing)};
  }
  return v;
}

std::string VirtualUser::render_text(std::string_view t, Outcome& error) {
  std::string missing;
  std::string v = render_string(t, scope(), rng_, &missing);
  if (!missing.empty() && error.ok()) {
    error = Outcome{FlowErrc::template_value, fmt::format("{{{{ {} }}}} has no value", missing)};
  }
  return v;
}

ConnectOptions VirtualUser::connect_options(Outcome& error) {
  const SocketOptions& o = flow_->socket;
  ConnectOptions c;
  c.tap = EventTap{run_.options.event_log, id_};
  for (const auto& [name, value] : o.headers) {
    std::string v = render_text(value, error);
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos && error.ok()) {
      error = Outcome{FlowErrc::template_value, fmt::format("extraHeaders {}: a value with a line break", name)};
    }
    c.headers[name] = std::move(v);
  }
  // As socket.io-client does: a text query is split into names and values and each is decoded; then
  // every name and value is encoded as encodeURIComponent does.
  const auto add = [&c](std::string_view name, std::string_view value) {
    c.query += fmt::format("{}{}={}", c.query.empty() ? "" : "&", encode_uri_component(name),
                           encode_uri_component(value));
  };
  if (o.query_text) {
    std::string_view rest;
    const std::string text = render_text(*o.query_text, error);
    rest = text;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view part = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (part.empty()) {
        continue;
      }
      const auto eq = part.find('=');
      add(decode_uri_component(part.substr(0, eq)),
          eq == std::string_view::npos ? std::string() : decode_uri_component(part.substr(eq + 1)));
    }
  }
  for (const auto& [name, value] : o.query) {
    add(name, as_text(render_value(value, error)));
  }
  return c;
}

void VirtualUser::pick_variables() {
  // Artillery's order: a payload row, then config.variables over it (one value of a list, at random).
  for (const Payload& p : run_.scenario.payloads) {
    if (p.rows.empty()) {
      continue;  // loadAll: in the run's shared variables
    }
    const std::size_t row = p.sequence ? static_cast<std::size_t>(id_ % p.rows.size())
                                       : std::uniform_int_distribution<std::size_t>(0, p.rows.size() - 1)(rng_);
    for (std::size_t i = 0; i < p.fields.size(); ++i) {
      vars_[p.fields[i]] = p.rows[row][i];
    }
  }
  for (const auto& [name, values] : run_.scenario.variables) {
    vars_[name] = values.size() == 1 ? values[0]
                                     : values[std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng_)];
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

Outcome VirtualUser::check(const Expectation& e, const json& payload) {
  Expectation checks_only;
  checks_only.data = e.data;
  checks_only.matches = e.matches;
  return expect(checks_only, payload);
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
    const SocketOptions& so = self->flow_->socket;
    const std::optional<json> auth = so.auth ? std::optional<json>(self->render_value(*so.auth, error)) : std::nullopt;
    if (!error.ok()) {
      co_return error;
    }
    ConnResult<void> joined = co_await self->conn_->join(
        ns, auth, SteadyClock::now() + seconds(self->run_.options.connect_timeout_s));
    if (!joined) {
      co_return joined.error();
    }
  }
  Emit request;
  request.ns = ns;
  request.args.push_back(self->render_text(step->channel, error));
  for (const json& a : step->args) {
    request.args.push_back(self->render_value(a, error));
  }
  if (step->response) {
    request.response = self->render_text(step->response->channel, error);
  }
  if (!error.ok()) {
    co_return error;
  }
  request.ack = step->ack.has_value();
  if (step->ack && step->response) {
    // An ack that fails its checks fails the step: the response it also waits for (a tool:result to
    // a refused approval, say) will not come, and is not waited for.
    const bool unwrap = self->flow_->v3_acks;
    request.ack_ends_wait = [self, step, unwrap](const json& args) {
      const bool one = unwrap && args.is_array() && args.size() == 1;
      return !self->check(*step->ack, one ? args[0] : args).ok();
    };
  }
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
  if (step->ack && !reply->response && step->response) {
    // The wait ended at an ack that failed its checks: that is the step's error.
    self->worker_.add(kAcks);
    const json& ack_args = *reply->ack;
    const bool unwrap = self->flow_->v3_acks && ack_args.is_array() && ack_args.size() == 1;
    co_return self->expect(*step->ack, unwrap ? ack_args[0] : ack_args);
  }
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

awaitable<Outcome> VirtualUser::loop(std::shared_ptr<VirtualUser> self, const Step* step) {
  Vars& vars = self->vars_;
  // A loop inside another sets $loopCount and $loopElement for its own steps only.
  std::optional<json> outer_count = saved(vars, "$loopCount");
  std::optional<json> outer_element = saved(vars, "$loopElement");
  Outcome outcome;
  if (step->over || !step->over_variable.empty()) {
    // The list: written in the scenario (rendered now), a user's own variable (copied: the loop's
    // steps may capture over it), or one of the run's shared ones (read in place: loadAll lists).
    json own;
    const json* list = &own;
    if (step->over) {
      own = self->render_value(*step->over, outcome);
    } else if (const json* mine = lookup(Scope(vars), step->over_variable)) {
      own = *mine;
    } else if (const json* shared = lookup(self->scope(), step->over_variable)) {
      list = shared;
    } else {
      outcome = Outcome{FlowErrc::template_value, fmt::format("loop over {}: it has no value", step->over_variable)};
    }
    if (outcome.ok() && !list->is_array()) {
      outcome = Outcome{FlowErrc::template_value,
                        fmt::format("loop over {}: {:.60} is not a list", step->over_variable, list->dump())};
    }
    for (std::size_t i = 0; outcome.ok() && i < list->size(); ++i) {
      vars["$loopCount"] = i;
      vars["$loopElement"] = (*list)[i];
      outcome = co_await steps(self, &step->steps);
    }
  } else {
    for (std::uint64_t i = 0; outcome.ok() && i < step->count; ++i) {
      vars["$loopCount"] = i;
      vars["$loopElement"] = i;  // as Artillery: a counted loop's element is its count
      outcome = co_await steps(self, &step->steps);
    }
  }
  restore(vars, "$loopCount", std::move(outer_count));
  restore(vars, "$loopElement", std::move(outer_element));
  co_return outcome;
}

awaitable<Outcome> VirtualUser::steps(std::shared_ptr<VirtualUser> self, const std::vector<Step>* list) {
  for (const Step& step : *list) {
    if (const std::optional<ConnError>& ended = self->conn_->ended()) {
      co_return *ended;
    }
    if (step.if_true && !step.if_true->evaluate(self->scope())) {
      continue;
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
        // Ends at once when the connection dies (or is aborted), so the user stops thinking; a user
        // whose connection ended while it thought did not finish its flow, even on its last step.
        self->intended_ += seconds(step.think_s);
        co_await self->conn_->idle(self->intended_);
        if (const std::optional<ConnError>& ended = self->conn_->ended()) {
          co_return *ended;
        }
        break;
      case Step::Kind::loop: {
        Outcome o = co_await loop(self, &step);
        if (!o.ok()) {
          co_return o;
        }
        break;
      }
      case Step::Kind::log:
        if (!self->run_.options.quiet && self->run_.log_lines.fetch_add(1) < 1000) {
          Outcome ignored;
          std::cerr << fmt::format("[vu {}] {}\n", self->id_, self->render_text(step.message, ignored));
        }
        break;
    }
  }
  co_return Outcome{};
}

awaitable<Outcome> VirtualUser::session(std::shared_ptr<VirtualUser> self, TimePoint started, bool repeat) {
  RunState& rs = self->run_;
  Worker& w = self->worker_;
  const Scenario& sc = rs.scenario;
  Outcome outcome;
  const ConnectOptions options = self->connect_options(outcome);
  if (!outcome.ok()) {
    co_return outcome;
  }
  const SocketOptions& so = self->flow_->socket;
  const std::optional<json> auth = so.auth ? std::optional<json>(self->render_value(*so.auth, outcome)) : std::nullopt;
  if (!outcome.ok()) {
    co_return outcome;
  }
  const TimePoint repeat_until = rs.start + seconds(rs.options.repeat_until_s);
  const auto repeating = [&] {
    return repeat && rs.options.repeat_until_s > 0 && SteadyClock::now() < repeat_until && !rs.stop_arrivals.load();
  };
  // reconnection: a connection that broke (not one this run closed or aborted) is made again while the
  // user still repeats, after 200 ms doubling up to 2 s, asking the server to recover its session.
  const auto broke = [&] {
    const std::optional<ConnError>& e = self->conn_->ended();
    return e && e->code != ConnErrc::aborted && e->code != ConnErrc::closed;
  };
  std::optional<Connection::Recovery> recover;
  SteadyClock::duration backoff = std::chrono::milliseconds(200);
  for (bool first = true;; first = false) {
    if (!first && !repeating()) {
      co_return outcome;  // the run ended while this user waited to connect again
    }
    if (self->conn_) {
      w.live.erase(self->conn_.get());
      co_await self->conn_->close();  // the broken one: its sockets go back to the budget
    }
    self->conn_ = rs.driver.new_connection(w.ioc.get_executor(), w, options);
    w.live.insert(self->conn_.get());
    const TimePoint deadline = (first ? started : SteadyClock::now()) + seconds(rs.options.connect_timeout_s);
    std::optional<json> hello = auth;
    if (recover) {
      hello = hello.value_or(json::object());
      (*hello)["pid"] = recover->pid;
      if (recover->offset) {
        (*hello)["offset"] = *recover->offset;
      }
    }
    // (Not a conditional expression around co_await: GCC 12 miscompiles one.)
    ConnResult<void> joined = co_await self->conn_->connect(deadline);
    if (joined) {
      joined = co_await self->conn_->join(sc.target.ns, hello, deadline);
    }
    if (!joined) {
      if (first || !repeating()) {
        co_return joined.error();
      }
      outcome = joined.error();  // what the user ends with if the run ends before a connection
      co_await pause(w, backoff);
      backoff = std::min<SteadyClock::duration>(backoff * 2, std::chrono::seconds(2));
      continue;
    }
    const TimePoint connected = SteadyClock::now();
    if (first) {
      w.record(kConnectTime, micros(connected - self->arrival_));
    } else {
      w.add(kReconnects);
      backoff = std::chrono::milliseconds(200);
    }
    self->intended_ = connected;
    do {
      outcome = co_await steps(self, &self->flow_->steps);
      if (outcome.ok()) {
        w.add(kFlowsCompleted);
      } else if (rs.options.keep_going || so.reconnection) {
        w.add(kFlowsFailed);
        if (rs.options.keep_going && !self->conn_->ended() && repeating()) {
          // --keep-going: the failed flow's error is counted, and the user runs the next on the same
          // connection. (A last one ends the user, and run() counts its error.)
          self->failed_a_flow_ = true;
          count_error(w, outcome);
          outcome = Outcome{};
        }
      }
    } while (outcome.ok() && repeating());
    if (outcome.ok() || !so.reconnection || !broke() || !repeating()) {
      co_return outcome;
    }
    // The flow the connection broke under is counted (flows.failed above); the user connects again.
    self->failed_a_flow_ = true;
    count_error(w, outcome);
    outcome = Outcome{};  // a user that reconnects ended well unless its last connection fails
    recover = self->conn_->recovery(sc.target.ns);
    co_await pause(w, backoff);
  }
}

awaitable<void> VirtualUser::run(std::shared_ptr<VirtualUser> self, std::size_t phase) {
  RunState& rs = self->run_;
  Worker& w = self->worker_;
  const TimePoint started = SteadyClock::now();
  w.record(kArrivalLag, micros(started - self->arrival_));
  if (started - self->arrival_ > seconds(rs.options.late_ms / 1000.0)) {
    w.add(kArrivalsLate);
  }
  w.add(kVusersCreated);
  self->pick_variables();
  self->flow_ = &self->pick_flow();
  const Outcome outcome = co_await session(self, started, true);
  if (outcome.is(ConnErrc::sockets_exhausted)) {
    w.add(kArrivalsDropped);
  }
  if (outcome.ok() && self->failed_a_flow_) {
    w.add(kVusersFailed);  // its errors were counted as its flows failed
  } else if (outcome.ok()) {
    w.add(kVusersCompleted);
    w.record(kSessionLength, micros(SteadyClock::now() - self->arrival_));
  } else {
    w.add(kVusersFailed);
    count_error(w, outcome);
  }
  if (self->conn_) {
    co_await self->conn_->close();
  }
  rs.phase_active[phase].fetch_sub(1);
  rs.users.fetch_sub(1);
  w.active.fetch_sub(1);
}

awaitable<void> VirtualUser::run_hook(std::shared_ptr<VirtualUser> self, const Flow* flow, HookResult* out) {
  self->pick_variables();
  self->flow_ = flow;
  out->outcome = co_await session(self, SteadyClock::now(), false);
  if (self->conn_) {
    co_await self->conn_->close();
  }
  for (const auto& [name, value] : self->vars_) {
    if (!name.starts_with('$')) {
      out->vars[name] = value;
    }
  }
  out->done = true;
}

}  // namespace phasekit::load
