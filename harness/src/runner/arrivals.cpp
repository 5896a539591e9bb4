#include "runner/arrivals.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

#include "runner/virtual_user.hpp"

namespace phasekit::load {

namespace asio = boost::asio;

asio::awaitable<void> arrivals(Worker* w, RunState* run, std::uint64_t first, std::uint64_t stride) {
  asio::steady_timer timer(w->ioc);
  const Schedule& schedule = run->schedule;
  for (std::uint64_t k = first; k < schedule.total(); k += stride) {
    const Schedule::Arrival a = schedule.at(k);
    if ((run->options.max_duration_s > 0 && a.at_s >= run->options.max_duration_s) || run->stop_arrivals.load()) {
      break;
    }
    const TimePoint intended = run->start + seconds(a.at_s);
    timer.expires_at(intended);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (run->stop_arrivals.load()) {
      break;
    }
    const auto& limit = run->scenario.phases.size() > a.phase ? run->scenario.phases[a.phase].max_vusers : std::nullopt;
    if (limit && run->phase_active[a.phase].load() >= static_cast<std::int64_t>(*limit)) {
      w->add(kVusersSkipped);
      continue;
    }
    run->phase_active[a.phase].fetch_add(1);
    w->active.fetch_add(1);
    const std::int64_t now_users = run->users.fetch_add(1) + 1;
    std::int64_t peak = run->peak_users.load();
    while (now_users > peak && !run->peak_users.compare_exchange_weak(peak, now_users)) {
    }
    auto vu = std::make_shared<VirtualUser>(*w, *run, run->next_vu.fetch_add(1), intended);
    asio::co_spawn(w->ioc, VirtualUser::run(std::move(vu), a.phase), asio::detached);
  }
  w->scheduled_all = true;
}

}  // namespace phasekit::load
