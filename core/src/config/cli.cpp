#include "phasekit/config/cli.hpp"

#include <boost/program_options/parsers.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <string_view>

namespace po = boost::program_options;

namespace phasekit::config {
namespace {

std::string describe(const Spec& s) {
  std::string d = fmt::format("{} [env {}; {}", s.doc, s.env, allowed_text(s));
  if (!s.default_value.empty()) {
    d += fmt::format("; default {}", s.default_value);
  }
  for (int phase = 1; phase <= kPhaseCount; ++phase) {
    const std::string_view p = s.preset[static_cast<std::size_t>(phase - 1)];
    if (p != kNoPreset) {
      d += fmt::format("; phase {}: {}", phase, p.empty() ? "(empty)" : p);
    }
  }
  return d + "]";
}

}  // namespace

po::options_description settings_options() {
  po::options_description all("Settings (flag > env > --config file > PHASE preset > default)", 100, 60);
  std::vector<std::string_view> groups;
  for (const Spec& s : settings()) {
    if (std::find(groups.begin(), groups.end(), s.group) == groups.end()) {
      groups.push_back(s.group);
    }
  }
  for (const std::string_view group : groups) {
    po::options_description section(std::string(group), 100, 60);
    for (const Spec& s : settings()) {
      if (s.group != group) {
        continue;
      }
      auto* semantic = po::value<std::string>()->value_name(s.type == Type::boolean ? "BOOL" : "VALUE");
      if (s.type == Type::boolean) {
        semantic->implicit_value("true");
      }
      section.add_options()(std::string(s.flag).c_str(), semantic, describe(s).c_str());
    }
    all.add(section);
  }
  return all;
}

CommandLine parse_command_line(int argc, const char* const* argv, const po::options_description& extra,
                               const char* const* envp) {
  CommandLine out;
  po::options_description all;
  all.add(extra).add(settings_options());
  all.add_options()("positional__", po::value<std::vector<std::string>>(), "");
  po::positional_options_description positional;
  positional.add("positional__", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  for (const Spec& s : settings()) {
    if (const auto it = vm.find(std::string(s.flag)); it != vm.end() && !it->second.defaulted()) {
      out.inputs.flags.emplace_back(std::string(s.name), it->second.as<std::string>());
    }
  }
  if (const auto it = vm.find("positional__"); it != vm.end()) {
    out.positional = it->second.as<std::vector<std::string>>();
  }
  for (const auto& option : extra.options()) {
    const std::string& name = option->long_name();
    if (const auto it = vm.find(name); it != vm.end()) {
      out.extra.insert({name, it->second});
    }
  }
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos && find_by_env(entry.substr(0, eq)) != nullptr) {
      out.inputs.env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
    }
  }
  return out;
}

}  // namespace phasekit::config
