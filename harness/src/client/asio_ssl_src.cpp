// Boost.Asio's SSL part compiled once for phasekit-load (BOOST_ASIO_SEPARATE_COMPILATION, as
// core/src/asio_src.cpp): https:// and wss:// targets.
#include <boost/asio/ssl/impl/src.hpp>
