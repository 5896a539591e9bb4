#pragma once
// Command-line and environment front end shared by every binary: the table's settings become
// --flags (Boost.Program_options), the environment becomes Inputs::env.
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/positional_options.hpp>
#include <boost/program_options/variables_map.hpp>

#include <string>
#include <vector>

#include "phasekit/config/config.hpp"

namespace phasekit::config {

/// The table's settings as option groups, each flag documented with its env name, default and presets.
boost::program_options::options_description settings_options();

struct CommandLine {
  Inputs inputs;                             // flags from argv, env from envp
  boost::program_options::variables_map extra;  // the binary's own options
  std::vector<std::string> positional;
};

/// Parses argv against the settings plus `extra`; positional arguments are collected in order.
/// Throws ConfigError (exit 2) for an unknown option, a missing argument or a repeated one.
CommandLine parse_command_line(int argc, const char* const* argv, const boost::program_options::options_description& extra,
                               const char* const* envp);

}  // namespace phasekit::config
