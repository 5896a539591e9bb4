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

/// A new strand on the io_context `executor` runs on: `executor` is the io_context's (work-tracking or
/// not) or an IoStrand (the new strand runs on its io_context, not nested in it). Throws
/// std::invalid_argument for any other executor.
inline IoStrand make_io_strand(const boost::asio::any_io_executor& executor) {
  using boost::asio::io_context;
  using Tracked = io_context::basic_executor_type<std::allocator<void>, 4>;  // outstanding_work.tracked
  if (const auto* io = executor.target<io_context::executor_type>()) {
    return boost::asio::make_strand(io->context().get_executor());
  }
  if (const auto* tracked = executor.target<Tracked>()) {
    return boost::asio::make_strand(tracked->context().get_executor());
  }
  if (const auto* strand = executor.target<IoStrand>()) {
    return boost::asio::make_strand(strand->get_inner_executor().context().get_executor());
  }
  throw std::invalid_argument("phasekit's strands run on an io_context");
}

}  // namespace phasekit
