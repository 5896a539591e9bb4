#pragma once
// `phasekit simulate breaker FILE` and `phasekit simulate autoscaler FILE`: replay a scenario in
// virtual time through the real circuit breaker / the real autoscaler plugin and print one JSON line
// per step / evaluation. Bad input throws SimulateError naming the field (the command exits 2).
#include <nlohmann/json.hpp>

#include <iosfwd>
#include <stdexcept>
#include <string>

namespace phasekit::simulate {

class SimulateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads a JSON document (a SimulateError names the file and what is wrong).
nlohmann::json read_document(const std::string& path);

void run_breaker(const nlohmann::json& scenario, std::ostream& out);

/// plugin_path: PHASEKIT_PLUGIN_PATH's value (where libphasekit_autoscaler_hpa.so is searched).
void run_autoscaler(const nlohmann::json& scenario, const std::string& plugin_path, std::ostream& out);

}  // namespace phasekit::simulate
