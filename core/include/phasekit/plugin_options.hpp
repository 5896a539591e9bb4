#pragma once
// Reading a plugin's JSON config in its factory: typed getters with ranges, and unknown keys refused
// (a misspelt option must not be silently ignored). Errors are exceptions with one line; the
// PHASEKIT_PLUGIN wrapper turns them into the load error. Header-only: each plugin has its own copy.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace phasekit {

class PluginOptions {
 public:
  explicit PluginOptions(std::string_view json) {
    doc_ = nlohmann::json::parse(json.empty() ? std::string_view("{}") : json, nullptr, false);
    if (doc_.is_discarded() || !doc_.is_object()) {
      throw std::invalid_argument("config is not a JSON object");
    }
  }

  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    seen_.insert(key);
    const auto it = doc_.find(key);
    if (it == doc_.end()) {
      return fallback;
    }
    if (!it->is_number_integer() || it->get<std::int64_t>() < min || it->get<std::int64_t>() > max) {
      throw std::invalid_argument(key + "=" + it->dump() + ": expected an integer in " + std::to_string(min) + ".." +
                                  std::to_string(max));
    }
    return it->get<std::int64_t>();
  }

  std::string text(const std::string& key, std::string fallback) {
    seen_.insert(key);
    const auto it = doc_.find(key);
    if (it == doc_.end()) {
      return fallback;
    }
    if (!it->is_string()) {
      throw std::invalid_argument(key + "=" + it->dump() + ": expected a string");
    }
    return it->get<std::string>();
  }

  bool boolean(const std::string& key, bool fallback) {
    seen_.insert(key);
    const auto it = doc_.find(key);
    if (it == doc_.end()) {
      return fallback;
    }
    if (!it->is_boolean()) {
      throw std::invalid_argument(key + "=" + it->dump() + ": expected true or false");
    }
    return it->get<bool>();
  }

  /// Keys the host passes that this plugin does not use (they belong to other implementations of the kind).
  void ignore(const std::string& key) { seen_.insert(key); }

  /// Throws for the first key that no getter asked for.
  void finish() const {
    for (const auto& [key, value] : doc_.items()) {
      if (seen_.count(key) == 0) {
        throw std::invalid_argument("unknown option \"" + key + "\"");
      }
    }
  }

 private:
  nlohmann::json doc_;
  std::set<std::string> seen_;
};

}  // namespace phasekit
