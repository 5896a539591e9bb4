#pragma once
// The strand every per-connection and per-session object runs on: a strand of the io_context itself,
// not of a type-erased executor. A timer, a socket or a pending operation holds its executor as an
// `any_io_executor`, whose inline storage takes 24 bytes: this strand fits (the io_context's executor
// and the strand's shared state), a strand<any_io_executor> does not and costs a heap block for each
// copy (11 per idle WebSocket connection, 590 B by heaptrack; docs/capacity.md).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <stdexcept>

namespace phasekit {

using IoStrand = boost::asio::strand<boost::asio::io_context::executor_type>;

/// The executor of the io_context `executor` runs on: `executor` is the io_context's (work-tracking or
/// not) or an IoStrand. Throws std::invalid_argument for any other executor.
inline boost::asio::io_context::executor_type io_executor_of(const boost::asio::any_io_executor& executor) {
  using boost::asio::io_context;
  using Tracked = io_context::basic_executor_type<std::allocator<void>, 4>;  // outstanding_work.tracked
  if (const auto* io = executor.target<io_context::executor_type>()) {
    return io->context().get_executor();
  }
  if (const auto* tracked = executor.target<Tracked>()) {
    return tracked->context().get_executor();
  }
  if (const auto* strand = executor.target<IoStrand>()) {
    return strand->get_inner_executor().context().get_executor();
  }
  throw std::invalid_argument("phasekit's strands run on an io_context");
}

/// A new strand on the io_context `executor` runs on (not nested in `executor` when that is a strand).
/// Throws std::invalid_argument for an executor of anything but an io_context.
inline IoStrand make_io_strand(const boost::asio::any_io_executor& executor) {
  return boost::asio::make_strand(io_executor_of(executor));
}

}  // namespace phasekit
