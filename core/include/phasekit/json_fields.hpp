#pragma once
// The one strict JSON reader: a document read field by field, each error naming the field by its path
// and giving the reason in the same words wherever it is used:
//
//   spec.metrics[0].resource.target.averageUtilization: 0: expected an integer in 1..2147483647
//   scaleup: unknown key (expected one of scaleUp|scaleDown)
//   spec.maxReplicas: required
//
// Unknown keys are refused (a misspelt field must not be silently ignored); a null counts as absent.
// Header-only, on the plugin include root: the settings and the simulators in core, every plugin
// (PluginOptions is a flat object read with it) and phasekit-load's scenario reader (which adds the
// file and line to the error) each compile their own copy.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "phasekit/quantity.hpp"

namespace phasekit::json_fields {

using Json = nlohmann::json;

/// What is wrong with one field: where it is (path(), "" for the whole document) and why (reason(),
/// which starts with the value when the value is what is wrong: `"ten": expected an integer in 0..10000`).
/// what() is both: `min_size: "ten": expected an integer in 0..10000`.
class FieldError : public std::invalid_argument {
 public:
  FieldError(std::string path, std::string reason)
      : std::invalid_argument((path.empty() ? std::string("(document)") : path) + ": " + reason),
        path_(std::move(path)),
        reason_(std::move(reason)) {}

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

inline std::string child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}
inline std::string item(std::string_view path, std::size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

/// A value as an error shows it: as JSON when that is short, else by its kind (a long string cut).
/// Bytes that are not UTF-8 are shown replaced, never thrown over.
inline std::string shown(const Json& v) {
  constexpr std::size_t kShort = 40;
  std::string dumped = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (dumped.size() <= kShort) {
    return dumped;
  }
  if (v.is_string()) {
    const std::string& whole = v.get_ref<const std::string&>();
    std::string cut = Json(whole.substr(0, kShort)).dump(-1, ' ', false, Json::error_handler_t::replace);
    cut.insert(cut.size() - 1, "...");  // inside the quotes
    return cut;
  }
  return v.is_object() ? "an object" : v.is_array() ? "an array" : dumped;
}

/// A bound of a range as a reason shows it: 100 rather than 100.0.
inline std::string shown_bound(double d) {
  if (std::trunc(d) == d && std::fabs(d) < 9e15) {
    return std::to_string(static_cast<long long>(d));
  }
  return Json(d).dump();
}

/// "one of a|b|c": the values (or keys) a field may take.
template <class Names>
std::string one_of_names(const Names& allowed) {
  std::string list;
  for (const auto& a : allowed) {
    list += (list.empty() ? "" : "|") + std::string(a);
  }
  return "one of " + list;
}

inline std::string one_of_names(std::initializer_list<std::string_view> allowed) {
  return one_of_names<std::initializer_list<std::string_view>>(allowed);
}

/// The reason a value is refused: `<the value>: expected <expected>`.
inline std::string wrong(const Json& v, std::string_view expected) {
  return shown(v) + ": expected " + std::string(expected);
}

[[noreturn]] inline void refuse(const Json& v, const std::string& path, std::string_view expected) {
  throw FieldError(path, wrong(v, expected));
}

/// The error for `key` of the object at `path`, which is not one of `allowed`.
template <class Names>
[[noreturn]] void unknown_key(const std::string& path, std::string_view key, const Names& allowed) {
  throw FieldError(child(path, key), std::begin(allowed) == std::end(allowed)
                                         ? std::string("unknown key (none is expected here)")
                                         : "unknown key (expected " + one_of_names(allowed) + ")");
}

inline const Json& object(const Json& v, const std::string& path) {
  if (!v.is_object()) {
    refuse(v, path, "an object");
  }
  return v;
}

inline const Json& array(const Json& v, const std::string& path) {
  if (!v.is_array()) {
    refuse(v, path, "an array");
  }
  return v;
}

/// Throws for the first key of `obj` not in `allowed` (and when `obj` is not an object).
inline void only_keys(const Json& obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object(obj, path).items()) {
    bool known = false;
    for (std::string_view a : allowed) {
      known = known || key == a;
    }
    if (!known) {
      unknown_key(path, key, allowed);
    }
  }
}

/// The value of `key`, or null when it is absent or null.
inline const Json* optional(const Json& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

/// The value of `key`; when it is absent (or null), `<path>.<key>: required`, and what it is for when
/// `what` says it ("config.target: required (the server's URL)").
inline const Json& required(const Json& obj, const std::string& path, std::string_view key, std::string_view what = {}) {
  const Json* v = optional(obj, key);
  if (v == nullptr) {
    throw FieldError(child(path, key), what.empty() ? std::string("required") : "required (" + std::string(what) + ")");
  }
  return *v;
}

/// An integer in min..max; a float, a string or an integer out of range (however large) is refused.
inline std::int64_t integer(const Json& v, const std::string& path, std::int64_t min, std::int64_t max) {
  bool ok = false;
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    ok = max >= 0 && u <= static_cast<std::uint64_t>(max) && (min <= 0 || u >= static_cast<std::uint64_t>(min));
  } else if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    ok = i >= min && i <= max;
  }
  if (!ok) {
    refuse(v, path, "an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return v.get<std::int64_t>();
}

inline double number(const Json& v, const std::string& path, double min, double max) {
  if (!v.is_number() || !(v.get<double>() >= min && v.get<double>() <= max)) {
    refuse(v, path, "a number in " + shown_bound(min) + ".." + shown_bound(max));
  }
  return v.get<double>();
}

inline bool boolean(const Json& v, const std::string& path) {
  if (!v.is_boolean()) {
    refuse(v, path, "true or false");
  }
  return v.get<bool>();
}

inline std::string text(const Json& v, const std::string& path, bool allow_empty = false) {
  if (!v.is_string() || (!allow_empty && v.get_ref<const std::string&>().empty())) {
    refuse(v, path, allow_empty ? "a string" : "a non-empty string");
  }
  return v.get<std::string>();
}

/// A string that is one of `allowed` (`"Maximum": expected one of Max|Min|Disabled`).
inline std::string one_of(const Json& v, const std::string& path, std::initializer_list<std::string_view> allowed) {
  bool known = false;
  for (std::string_view a : allowed) {
    known = known || (v.is_string() && v.get_ref<const std::string&>() == a);
  }
  if (!known) {
    refuse(v, path, one_of_names(allowed));
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
    refuse(v, path, "a quantity such as \"250m\", \"1.5\" or \"2Gi\"");
  }
  std::int64_t milli = 0;
  std::string error;
  if (!parse_quantity_milli(textual, milli, error)) {
    throw FieldError(path, error);
  }
  return milli;
}

}  // namespace phasekit::json_fields
