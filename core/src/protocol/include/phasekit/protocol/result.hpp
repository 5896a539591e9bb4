#pragma once
// Parse results: a value or an error with one line saying what was wrong. Errors are values on the
// data plane (docs/development.md, "Habits the code comments point to"); nothing here throws on bad
// input.
#include <boost/system/result.hpp>

#include <string>

namespace phasekit::protocol {

struct ParseError {
  std::string message;
};

template <class T>
using Result = boost::system::result<T, ParseError>;

[[noreturn]] void throw_exception_from_error(const ParseError& e, const boost::source_location& loc);

}  // namespace phasekit::protocol
