#pragma once
// The latest ids seen, at most `capacity` of them (the oldest forgotten first): "was this one handled
// already?" for things that may come twice but not far apart (a result published again, a result
// both replayed and delivered). Not thread-safe.
#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>

namespace phasekit {

class RecentIds {
 public:
  explicit RecentIds(std::size_t capacity) : capacity_(capacity) {}
  /// False when the id is already among the latest.
  bool insert(const std::string& id) {
    if (!seen_.insert(id).second) {
      return false;
    }
    order_.push_back(id);
    if (order_.size() > capacity_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  [[nodiscard]] bool contains(const std::string& id) const { return seen_.contains(id); }
  void clear() {
    seen_.clear();
    order_.clear();
  }

 private:
  std::size_t capacity_;
  std::deque<std::string> order_;
  std::unordered_set<std::string> seen_;
};

}  // namespace phasekit
