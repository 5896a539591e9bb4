#pragma once
// Reading a JSON document field by field, each error naming the field by its path
// ("spec.metrics[0].resource.target.averageUtilization: expected an integer in 1..2147483647").
// Unknown keys are refused (a misspelt field must not be silently ignored). Header-only: used by the
// simulators in core and by plugins (each gets its own copy).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

#include "phasekit/quantity.hpp"

namespace phasekit::json_fields {

using Json = nlohmann::json;

class FieldError : public std::invalid_argument {
 public:
  FieldError(const std::string& path, const std::string& what)
      : std::invalid_argument((path.empty() ? std::string("(document)") : path) + ": " + what) {}
};

inline std::string child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}
inline std::string item(std::string_view path, std::size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

inline const Json& object(const Json& v, const std::string& path) {
  if (!v.is_object()) {
    throw FieldError(path, "expected an object");
  }
  return v;
}

inline const Json& array(const Json& v, const std::string& path) {
  if (!v.is_array()) {
    throw FieldError(path, "expected an array");
  }
  return v;
}

/// Throws for the first key of `obj` not in `allowed`.
inline void only_keys(const Json& obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object(obj, path).items()) {
    bool known = false;
    for (std::string_view a : allowed) {
      known = known || key == a;
    }
    if (!known) {
      throw FieldError(child(path, key), "unknown field");
    }
  }
}

inline const Json* optional(const Json& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline const Json& required(const Json& obj, const std::string& path, std::string_view key) {
  const Json* v = optional(obj, key);
  if (v == nullptr) {
    throw FieldError(child(path, key), "required");
  }
  return *v;
}

inline std::int64_t integer(const Json& v, const std::string& path, std::int64_t min, std::int64_t max) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
      v.get<std::int64_t>() < min || v.get<std::int64_t>() > max) {
    throw FieldError(path, v.dump() + ": expected an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return v.get<std::int64_t>();
}

inline double number(const Json& v, const std::string& path, double min, double max) {
  auto show = [](double d) {  // 100 rather than 100.0
    return d == static_cast<double>(static_cast<long long>(d)) ? std::to_string(static_cast<long long>(d)) : Json(d).dump();
  };
  if (!v.is_number() || !(v.get<double>() >= min && v.get<double>() <= max)) {
    throw FieldError(path, v.dump() + ": expected a number in " + show(min) + ".." + show(max));
  }
  return v.get<double>();
}

inline bool boolean(const Json& v, const std::string& path) {
  if (!v.is_boolean()) {
    throw FieldError(path, v.dump() + ": expected true or false");
  }
  return v.get<bool>();
}

inline std::string text(const Json& v, const std::string& path) {
  if (!v.is_string() || v.get<std::string>().empty()) {
    throw FieldError(path, v.dump() + ": expected a non-empty string");
  }
  return v.get<std::string>();
}

/// A Kubernetes quantity ("600m", "2Gi", or a JSON number) as a milli-value.
inline std::int64_t quantity(const Json& v, const std::string& path) {
  std::string textual;
  if (v.is_string()) {
    textual = v.get<std::string>();
  } else if (v.is_number_integer()) {
    textual = v.dump();
  } else if (v.is_number_float()) {
    textual = v.dump();  // shortest round-trip form, e.g. 0.5 or 1e+20
    const auto plus = textual.find("e+");
    if (plus != std::string::npos) {
      textual.erase(plus + 1, 1);
    }
  } else {
    throw FieldError(path, v.dump() + ": expected a quantity such as \"250m\", \"1.5\" or \"2Gi\"");
  }
  std::int64_t milli = 0;
  std::string error;
  if (!parse_quantity_milli(textual, milli, error)) {
    throw FieldError(path, error);
  }
  return milli;
}

}  // namespace phasekit::json_fields
