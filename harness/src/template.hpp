#pragma once
// Artillery's "{{ name }}" templates and the JSONPath subset its capture/match clauses use.
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>

namespace phasekit::load {

using Vars = std::map<std::string, nlohmann::json, std::less<>>;

/// The names a template value refers to ("callId", "$randomNumber(1,10)", "$env.TOKEN"), in order.
/// Throws std::invalid_argument for an unclosed "{{" or an empty or malformed expression.
std::vector<std::string> template_references(const nlohmann::json& value);

/// Checks one expression: a variable name, $loopCount, $loopElement, $env.NAME, $uuid,
/// $randomNumber(min,max) or $randomString(length). nullopt when fine, else what is wrong.
std::optional<std::string> check_expression(std::string_view expression);

/// Renders a template: strings have each {{ expr }} replaced; a string that is exactly one
/// "{{ expr }}" becomes the value itself (a number stays a number); objects and arrays are rendered
/// member by member. An unknown variable renders as an empty string and is reported to `missing`.
nlohmann::json render(const nlohmann::json& value, const Vars& vars, std::mt19937_64& rng,
                      std::string* missing = nullptr);
std::string render_string(std::string_view text, const Vars& vars, std::mt19937_64& rng, std::string* missing = nullptr);

/// "$.a.b[0].c", "$.0", "$['key']", "$..key" (the first "key" at any depth), "$". Throws
/// std::invalid_argument when malformed.
class JsonPath {
 public:
  explicit JsonPath(std::string_view text);
  /// nullptr when the path does not resolve.
  [[nodiscard]] const nlohmann::json* find(const nlohmann::json& root) const;
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  struct Segment {
    std::string key;
    std::optional<std::size_t> index;  // [N], or .N on an array
    bool anywhere = false;              // ..key: at any depth below
  };
  std::string text_;
  std::vector<Segment> segments_;
};

}  // namespace phasekit::load
