// Boost.Beast compiled once (BOOST_BEAST_SEPARATE_COMPILATION): see cmake/PhasekitDependencies.cmake.
#include <boost/beast/src.hpp>
