// Boost.Asio's SSL part compiled once (BOOST_ASIO_SEPARATE_COMPILATION, as core/src/asio_src.cpp): rediss://.
#include <boost/asio/ssl/impl/src.hpp>
