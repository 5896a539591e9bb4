#pragma once
// The open-model arrivals of one worker: every stride-th arrival of the schedule from first, each
// started at its intended time however the earlier users fare.
#include <boost/asio/awaitable.hpp>

#include <cstdint>

#include "runner/worker.hpp"

namespace phasekit::load {

boost::asio::awaitable<void> arrivals(Worker* w, RunState* run, std::uint64_t first, std::uint64_t stride);

}  // namespace phasekit::load
