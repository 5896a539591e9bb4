#pragma once
// Artillery's "{{ name }}" templates and the JSONPath subset its capture/match clauses use.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::load {

using Vars = std::map<std::string, nlohmann::json, std::less<>>;

/// Where a template looks a name up: a user's own variables first, then the run's shared ones (the
/// before flow's variables, loadAll payloads, $env values), kept once for every user. Made from a
/// Vars alone where there is nothing shared.
class Scope {
 public:
  Scope(const Vars& own, const Vars* shared = nullptr) : own_(own), shared_(shared) {}  // NOLINT(google-explicit-constructor)
  /// nullptr when neither has the name.
  [[nodiscard]] const nlohmann::json* find(std::string_view name) const;

 private:
  const Vars& own_;
  const Vars* shared_;
};

/// The value of a name: the variable of that name, or else, for "a.b.c", member b.c of variable a
/// (a captured object, a loadAll row: "$loopElement.id"; an index for a list). nullptr when none.
const nlohmann::json* lookup(const Scope& vars, std::string_view name);

/// The names a template value refers to ("callId", "$randomNumber(1,10)", "$env.TOKEN"), in order.
/// Throws std::invalid_argument for an unclosed "{{" or an empty or malformed expression.
std::vector<std::string> template_references(const nlohmann::json& value);

/// Checks one expression: a variable name (a.b for a member), $loopCount, $loopElement(.member), $env.NAME, $uuid,
/// $randomNumber(min,max) or $randomString(length). nullopt when fine, else what is wrong.
std::optional<std::string> check_expression(std::string_view expression);

/// Renders a template: strings have each {{ expr }} replaced; a string that is exactly one
/// "{{ expr }}" becomes the value itself (a number stays a number); objects and arrays are rendered
/// member by member. An unknown variable renders as an empty string and is reported to `missing`.
nlohmann::json render(const nlohmann::json& value, const Scope& vars, std::mt19937_64& rng,
                      std::string* missing = nullptr);
std::string render_string(std::string_view text, const Scope& vars, std::mt19937_64& rng, std::string* missing = nullptr);

/// JavaScript's encodeURIComponent (what socket.io-client applies to each query key and value).
std::string encode_uri_component(std::string_view text);
/// JavaScript's decodeURIComponent, except that a malformed escape is kept as it is.
std::string decode_uri_component(std::string_view text);

/// An ifTrue expression, as Artillery's filtrex reads the part of it phasekit-load supports:
/// comparisons (==, !=, <, <=, >, >=), and, or, not, parentheses, numbers, "double-quoted strings",
/// true, false and variable names (a dotted name reads a member of a captured object). Values
/// compare as JavaScript compares them ("5" == 5, "10" > 9; strings with strings by their bytes);
/// a variable without a value is undefined, equal only to another undefined, and false.
class Condition {
 public:
  /// Throws std::invalid_argument with what is wrong and where ("at 7: ...").
  explicit Condition(std::string_view text);
  [[nodiscard]] bool evaluate(const Scope& vars) const;
  /// The variable names it reads (before any dot), in order, for the load-time check.
  [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  struct Node {
    enum class Kind : std::uint8_t { literal, variable, negate, both, either, compare };
    Kind kind = Kind::literal;
    std::string op;        // compare: ==, !=, <, <=, >, >=
    nlohmann::json value;  // literal
    std::string name;      // variable
    std::size_t left = 0;  // operands, as indices into nodes_
    std::size_t right = 0;
  };
  class Parser;
  [[nodiscard]] std::optional<nlohmann::json> value_of(std::size_t node, const Scope& vars) const;

  std::string text_;
  std::vector<Node> nodes_;  // the root is the last
  std::vector<std::string> names_;
};

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
