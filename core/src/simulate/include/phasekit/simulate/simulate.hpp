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

struct AutoscalerOptions {
  std::string plugin_path;      // PHASEKIT_PLUGIN_PATH's value (where libphasekit_autoscaler_hpa.so is searched)
  std::string behavior;         // AUTOSCALER_BEHAVIOR's value: spec.behavior when the file has none ("" unset)
  std::string behavior_origin;  // where it came from, for the message when the file has one too ("env", …)
};

void run_autoscaler(const nlohmann::json& scenario, const AutoscalerOptions& options, std::ostream& out);

}  // namespace phasekit::simulate
