// Boost.Asio compiled once (BOOST_ASIO_SEPARATE_COMPILATION): see cmake/PhasekitDependencies.cmake.
#include <boost/asio/impl/src.hpp>
