#pragma once
// Reading a plugin's JSON config in its factory: a flat object read with json_fields (typed getters
// with a fallback and a range, the same checks and words as every other reader), and unknown keys
// refused at finish() (a misspelt option must not be silently ignored). Errors are
// json_fields::FieldError, one line naming the key (`min_size: "ten": expected an integer in
// 0..10000`); the PHASEKIT_PLUGIN wrapper turns them into the load error. Header-only: each plugin has
// its own copy.
#include <cstdint>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "phasekit/json_fields.hpp"

namespace phasekit {

class PluginOptions {
 public:
  using Json = json_fields::Json;

  explicit PluginOptions(std::string_view json) {
    doc_ = Json::parse(json.empty() ? std::string_view("{}") : json, nullptr, false);
    if (doc_.is_discarded() || !doc_.is_object()) {
      throw std::invalid_argument("config is not a JSON object");
    }
  }

  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    const Json* v = take(key);
    return v == nullptr ? fallback : json_fields::integer(*v, key, min, max);
  }

  double number(const std::string& key, double fallback, double min, double max) {
    const Json* v = take(key);
    return v == nullptr ? fallback : json_fields::number(*v, key, min, max);
  }

  /// A string, which may be empty.
  std::string text(const std::string& key, std::string fallback) {
    const Json* v = take(key);
    return v == nullptr ? std::move(fallback) : json_fields::text(*v, key, /*allow_empty=*/true);
  }

  /// A string that is one of `allowed`.
  std::string one_of(const std::string& key, std::string fallback, std::initializer_list<std::string_view> allowed) {
    const Json* v = take(key);
    return v == nullptr ? std::move(fallback) : json_fields::one_of(*v, key, allowed);
  }

  bool boolean(const std::string& key, bool fallback) {
    const Json* v = take(key);
    return v == nullptr ? fallback : json_fields::boolean(*v, key);
  }

  /// A key that holds a document of its own (autoscaler=hpa's spec), to read with json_fields.
  const Json& required(const std::string& key) {
    seen_.insert(key);
    return json_fields::required(doc_, "", key);
  }

  /// Keys the host passes that this plugin does not use (they belong to other implementations of the kind).
  void ignore(const std::string& key) { seen_.insert(key); }

  /// Throws for the first key that no getter asked for, listing those they did.
  void finish() const {
    for (const auto& [key, value] : doc_.items()) {
      if (seen_.count(key) == 0) {
        json_fields::unknown_key("", key, seen_);
      }
    }
  }

 private:
  const Json* take(const std::string& key) {
    seen_.insert(key);
    return json_fields::optional(doc_, key);
  }

  Json doc_;
  std::set<std::string> seen_;
};

}  // namespace phasekit
