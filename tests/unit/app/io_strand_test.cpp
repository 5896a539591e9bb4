// make_io_strand: every session and connection strand is a strand of the io_context itself, whatever
// io_context executor it is made from, and it fits an any_io_executor without a heap block.
#include <gtest/gtest.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <stdexcept>

#include "phasekit/io_strand.hpp"

namespace phasekit {
namespace {

namespace asio = boost::asio;

TEST(IoStrand, IsMadeFromTheIoContextsExecutorTrackedOrNotAndFromAnotherStrand) {
  asio::io_context io;
  const asio::any_io_executor plain = io.get_executor();
  const asio::any_io_executor tracked = asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked);
  const IoStrand first = make_io_strand(plain);
  const asio::any_io_executor of_strand = first;
  for (const auto& ex : {plain, tracked, of_strand}) {
    const IoStrand s = make_io_strand(ex);
    EXPECT_EQ(&s.get_inner_executor().context(), &io);
    EXPECT_NE(s, first) << "a new strand each time";
  }
  int ran = 0;
  asio::post(make_io_strand(of_strand), [&] { ++ran; });
  io.poll();  // not run(): `tracked` keeps the io_context from running out of work
  EXPECT_EQ(ran, 1);
}

TEST(IoStrand, FitsInAnAnyIoExecutorWithoutAHeapBlock) {
  // any_io_executor keeps an executor of at most 24 bytes inline; a strand<any_io_executor> is larger.
  EXPECT_LE(sizeof(IoStrand), sizeof(asio::detail::shared_ptr<void>) + sizeof(void*));
}

TEST(IoStrand, AnExecutorOfAnotherContextIsRefused) {
  asio::thread_pool pool(1);
  EXPECT_THROW(make_io_strand(pool.get_executor()), std::invalid_argument);
  pool.join();
}

}  // namespace
}  // namespace phasekit
