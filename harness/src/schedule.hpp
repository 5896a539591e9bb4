#pragma once
// The open-model arrival schedule: when each virtual user is meant to arrive, computed from the
// phases alone (never from how fast the server answers), so a slow server cannot slow the load.
#include <cstdint>
#include <vector>

#include "scenario.hpp"

namespace phasekit::load {

class Schedule {
 public:
  explicit Schedule(const std::vector<Phase>& phases);

  struct Arrival {
    double at_s = 0;  // from the start of the run
    std::size_t phase = 0;
  };

  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
  /// The k-th arrival (0-based) of the whole run; arrivals are in time order.
  [[nodiscard]] Arrival at(std::uint64_t k) const;
  [[nodiscard]] double phase_start(std::size_t phase) const { return parts_.at(phase).start_s; }
  [[nodiscard]] std::size_t phase_at(double t_s) const;
  [[nodiscard]] double duration_s() const noexcept { return duration_s_; }

 private:
  struct Part {
    double start_s = 0;
    double duration_s = 0;
    double rate0 = 0;      // arrivals per second at the start
    double rate1 = 0;      // … at the end
    std::uint64_t first = 0;  // index of its first arrival in the run
    std::uint64_t count = 0;
    bool even = false;     // arrivalCount: spread evenly
  };
  std::vector<Part> parts_;
  std::uint64_t total_ = 0;
  double duration_s_ = 0;
};

}  // namespace phasekit::load
