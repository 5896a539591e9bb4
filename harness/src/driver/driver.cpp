#include "driver/driver.hpp"

#include <boost/throw_exception.hpp>

#include <stdexcept>

namespace phasekit::load {

void throw_exception_from_error(const ConnError& e, const boost::source_location& loc) {
  boost::throw_exception(std::runtime_error(std::string(error_name(e.code)) + ": " + e.detail), loc);
}

}  // namespace phasekit::load
