#pragma once
// Renderings of the settings table and of an effective configuration.
#include <string>

#include "phasekit/config/config.hpp"

namespace phasekit::config {

/// `phasekit config` / --print-config: one row per setting, then the plugin choices.
std::string render_table(const Config& config);
/// The same as JSON: {"settings":[{name, env, value, origin, source}], "plugins":[{kind, name, origin, via}]}.
std::string render_json(const Config& config);
/// docs/configuration.md, generated from the table (a test fails when the file is stale).
std::string render_markdown();

}  // namespace phasekit::config
