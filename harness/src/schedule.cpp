#include "schedule.hpp"

#include <cmath>
#include <stdexcept>

namespace phasekit::load {

Schedule::Schedule(const std::vector<Phase>& phases) {
  double start = 0;
  for (const Phase& p : phases) {
    Part part;
    part.start_s = start;
    part.duration_s = p.duration_s;
    part.first = total_;
    if (p.pause) {
      part.count = 0;
    } else if (p.arrival_count) {
      part.count = *p.arrival_count;
      part.even = true;
    } else {
      part.rate0 = p.arrival_rate;
      part.rate1 = p.ramp_to.value_or(p.arrival_rate);
      // Arrivals happen where the cumulative expected count N(t) reaches 0, 1, 2, …; N(D) is the
      // area under the rate line. The small epsilon keeps 50/s × 60 s at 3,000, not 2,999.
      const double area = (part.rate0 + part.rate1) / 2.0 * part.duration_s;
      part.count = static_cast<std::uint64_t>(std::floor(area + 1e-9));
    }
    total_ += part.count;
    start += p.duration_s;
    parts_.push_back(part);
  }
  duration_s_ = start;
}

Schedule::Arrival Schedule::at(std::uint64_t k) const {
  if (k >= total_) {
    throw std::out_of_range("arrival index past the schedule");
  }
  std::size_t phase = 0;
  while (k >= parts_[phase].first + parts_[phase].count) {
    ++phase;
  }
  const Part& p = parts_[phase];
  const double i = static_cast<double>(k - p.first);
  double t = 0;
  if (p.even) {
    t = i * p.duration_s / static_cast<double>(p.count);
  } else if (p.rate1 == p.rate0) {
    t = i / p.rate0;
  } else if (i > 0) {
    // a·t² + b·t = i with a = (r1 − r0) / 2D, b = r0; the stable root 2i / (b + √(b² + 4ai)).
    const double a = (p.rate1 - p.rate0) / (2.0 * p.duration_s);
    const double b = p.rate0;
    t = 2.0 * i / (b + std::sqrt(std::max(0.0, b * b + 4.0 * a * i)));
  }
  return Arrival{p.start_s + std::min(t, p.duration_s), phase};
}

std::size_t Schedule::phase_at(double t_s) const {
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    if (t_s < parts_[i].start_s + parts_[i].duration_s) {
      return i;
    }
  }
  return parts_.empty() ? 0 : parts_.size() - 1;
}

}  // namespace phasekit::load
