#pragma once
// The latest ids seen, at most `capacity` of them (the oldest forgotten first): "was this one handled
// already?" for things that may come twice but not far apart (a result published again, a result
// both replayed and delivered). Not thread-safe.
//
// Empty, it holds no memory: every session has one, and most sessions of an idle server never see
// an id (a std::deque would hold a 512-byte block from its construction). The ids sit in a ring
// that grows with them up to `capacity`.
#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

namespace phasekit {

class RecentIds {
 public:
  explicit RecentIds(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  /// False when the id is already among the latest.
  bool insert(const std::string& id) {
    if (!seen_.insert(id).second) {
      return false;
    }
    if (ring_.size() < capacity_) {
      ring_.push_back(id);
      return true;
    }
    seen_.erase(ring_[oldest_]);  // full: the oldest makes room
    ring_[oldest_] = id;
    oldest_ = (oldest_ + 1) % capacity_;
    return true;
  }
  [[nodiscard]] bool contains(const std::string& id) const { return seen_.contains(id); }
  void clear() {
    seen_.clear();
    ring_.clear();
    oldest_ = 0;
  }

 private:
  std::size_t capacity_;
  std::vector<std::string> ring_;  // in order of arrival from oldest_, wrapping round once full
  std::size_t oldest_ = 0;
  std::unordered_set<std::string> seen_;
};

}  // namespace phasekit
