#include "template.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace phasekit::load {
namespace {

using nlohmann::json;

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') {
    s.remove_prefix(1);
  }
  while (!s.empty() && s.back() == ' ') {
    s.remove_suffix(1);
  }
  return s;
}

bool is_name(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::optional<std::int64_t> to_int(std::string_view s) {
  s = trim(s);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

// "$randomNumber(1, 10)" → {"$randomNumber", {"1", "10"}}
bool split_call(std::string_view e, std::string_view& name, std::vector<std::string_view>& args) {
  const auto open = e.find('(');
  if (open == std::string_view::npos || e.back() != ')') {
    return false;
  }
  name = e.substr(0, open);
  std::string_view inner = e.substr(open + 1, e.size() - open - 2);
  args.clear();
  while (!inner.empty()) {
    const auto comma = inner.find(',');
    args.push_back(trim(inner.substr(0, comma)));
    inner = comma == std::string_view::npos ? std::string_view() : inner.substr(comma + 1);
  }
  return true;
}

}  // namespace

const json* lookup(const Scope& vars, std::string_view name) {
  if (const json* whole = vars.find(name)) {
    return whole;
  }
  const auto dot = name.find('.');
  if (dot == std::string_view::npos || name.starts_with("$env.")) {
    return nullptr;
  }
  const json* at = vars.find(name.substr(0, dot));
  std::string_view rest = name.substr(dot + 1);
  while (at != nullptr) {
    const auto next = rest.find('.');
    const std::string key(rest.substr(0, next));
    if (at->is_object()) {
      const auto it = at->find(key);
      at = it == at->end() ? nullptr : &*it;
    } else if (at->is_array()) {
      const auto i = to_int(key);
      at = i && *i >= 0 && static_cast<std::size_t>(*i) < at->size() ? &(*at)[static_cast<std::size_t>(*i)] : nullptr;
    } else {
      at = nullptr;
    }
    if (next == std::string_view::npos) {
      return at;
    }
    rest.remove_prefix(next + 1);
  }
  return nullptr;
}

namespace {

// Calls template_fn(expression, literal_before) for each {{ }} of text.
template <class OnText, class OnExpr>
void scan(std::string_view text, OnText on_text, OnExpr on_expr) {
  while (!text.empty()) {
    const auto open = text.find("{{");
    if (open == std::string_view::npos) {
      on_text(text);
      return;
    }
    on_text(text.substr(0, open));
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      throw std::invalid_argument(fmt::format("unclosed \"{{{{\" in \"{}\"", text));
    }
    on_expr(trim(text.substr(open + 2, close - open - 2)));
    text.remove_prefix(close + 2);
  }
}

void collect(const json& value, std::vector<std::string>& out) {
  if (value.is_string()) {
    scan(value.get_ref<const std::string&>(), [](std::string_view) {}, [&](std::string_view e) {
      if (auto why = check_expression(e)) {
        throw std::invalid_argument(*why);
      }
      out.emplace_back(e);
    });
  } else if (value.is_structured()) {
    for (const auto& item : value) {
      collect(item, out);
    }
    if (value.is_object()) {
      for (const auto& [key, v] : value.items()) {
        collect(json(key), out);
        (void)v;
      }
    }
  }
}

json evaluate(std::string_view e, const Scope& vars, std::mt19937_64& rng, std::string* missing) {
  std::string_view name;
  std::vector<std::string_view> args;
  if (split_call(e, name, args)) {
    if (name == "$randomNumber") {
      const std::int64_t lo = to_int(args.at(0)).value_or(0);
      const std::int64_t hi = to_int(args.at(1)).value_or(0);
      return std::uniform_int_distribution<std::int64_t>(std::min(lo, hi), std::max(lo, hi))(rng);
    }
    if (name == "$randomString") {
      static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
      const auto n = args.empty() || args[0].empty() ? 10 : to_int(args[0]).value_or(10);
      std::string s;
      for (std::int64_t i = 0; i < n; ++i) {
        s += kAlphabet[std::uniform_int_distribution<std::size_t>(0, kAlphabet.size() - 1)(rng)];
      }
      return s;
    }
    if (name == "$uuid") {
      e = "$uuid";
    }
  }
  if (e == "$uuid") {
    std::uniform_int_distribution<unsigned> byte(0, 255);
    std::string s;
    for (int i = 0; i < 16; ++i) {
      unsigned b = byte(rng);
      if (i == 6) {
        b = (b & 0x0f) | 0x40;
      } else if (i == 8) {
        b = (b & 0x3f) | 0x80;
      }
      s += fmt::format("{:02x}", b);
      if (i == 3 || i == 5 || i == 7 || i == 9) {
        s += '-';
      }
    }
    return s;
  }
  if (const json* value = lookup(vars, e)) {
    return *value;
  }
  if (missing != nullptr && missing->empty()) {
    *missing = std::string(e);
  }
  return "";
}

}  // namespace

const json* Scope::find(std::string_view name) const {
  if (const auto it = own_.find(name); it != own_.end()) {
    return &it->second;
  }
  if (shared_ != nullptr) {
    if (const auto it = shared_->find(name); it != shared_->end()) {
      return &it->second;
    }
  }
  return nullptr;
}

std::optional<std::string> check_expression(std::string_view e) {
  if (e.empty()) {
    return "empty template \"{{ }}\"";
  }
  std::string_view name;
  std::vector<std::string_view> args;
  if (split_call(e, name, args)) {
    if (name == "$randomNumber") {
      if (args.size() != 2 || !to_int(args[0]) || !to_int(args[1])) {
        return fmt::format("\"{{{{ {} }}}}\": $randomNumber takes two integers, $randomNumber(min, max)", e);
      }
      return std::nullopt;
    }
    if (name == "$randomString") {
      if (args.size() > 1 || (args.size() == 1 && !args[0].empty() && (!to_int(args[0]) || *to_int(args[0]) < 0 ||
                                                                       *to_int(args[0]) > 100000))) {
        return fmt::format("\"{{{{ {} }}}}\": $randomString takes an optional length 0..100000", e);
      }
      return std::nullopt;
    }
    if (name == "$uuid" && args.empty()) {
      return std::nullopt;
    }
    return fmt::format("\"{{{{ {} }}}}\": unknown function (known: $randomNumber(min,max), $randomString(n), $uuid)", e);
  }
  if (e.starts_with("$env.") && is_name(e.substr(5))) {
    return std::nullopt;
  }
  if (e == "$uuid" || e == "$loopCount" || e == "$loopElement" ||
      (e.starts_with("$loopElement.") && is_name(e.substr(13)))) {
    return std::nullopt;
  }
  if (!e.starts_with('$') && is_name(e)) {
    return std::nullopt;
  }
  return fmt::format("\"{{{{ {} }}}}\": not a variable name or a known function", e);
}

std::vector<std::string> template_references(const json& value) {
  std::vector<std::string> out;
  collect(value, out);
  return out;
}

std::string render_string(std::string_view text, const Scope& vars, std::mt19937_64& rng, std::string* missing) {
  std::string out;
  scan(text, [&](std::string_view t) { out += t; }, [&](std::string_view e) {
    const json v = evaluate(e, vars, rng, missing);
    out += v.is_string() ? v.get<std::string>() : v.dump();
  });
  return out;
}

json render(const json& value, const Scope& vars, std::mt19937_64& rng, std::string* missing) {
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s.find("{{") == std::string::npos) {
      return value;
    }
    const std::string_view t = trim(s);
    if (t.starts_with("{{") && t.ends_with("}}") && t.find("{{", 2) == std::string_view::npos) {
      return evaluate(trim(t.substr(2, t.size() - 4)), vars, rng, missing);
    }
    return render_string(s, vars, rng, missing);
  }
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value) {
      out.push_back(render(item, vars, rng, missing));
    }
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : value.items()) {
      out[render_string(key, vars, rng, missing)] = render(item, vars, rng, missing);
    }
    return out;
  }
  return value;
}

JsonPath::JsonPath(std::string_view text) : text_(text) {
  const auto bad = [&](std::string_view why) {
    throw std::invalid_argument(fmt::format("JSON path \"{}\": {} (expected $, $.key, $.key[0], $.0 or $['key'])", text_, why));
  };
  if (text.empty() || text.front() != '$') {
    bad("must start with $");
  }
  text.remove_prefix(1);
  while (!text.empty()) {
    if (text.front() == '.') {
      text.remove_prefix(1);
      const bool anywhere = !text.empty() && text.front() == '.';
      if (anywhere) {
        text.remove_prefix(1);
      }
      std::size_t n = 0;
      while (n < text.size() && text[n] != '.' && text[n] != '[') {
        ++n;
      }
      if (n == 0) {
        bad("empty key");
      }
      Segment s{std::string(text.substr(0, n)), std::nullopt, anywhere};
      if (const auto i = to_int(s.key); i && *i >= 0 && !anywhere) {
        s.index = static_cast<std::size_t>(*i);
      }
      segments_.push_back(std::move(s));
      text.remove_prefix(n);
    } else if (text.starts_with("['")) {
      const auto close = text.find("']");
      if (close == std::string_view::npos) {
        bad("unclosed ['");
      }
      segments_.push_back(Segment{std::string(text.substr(2, close - 2)), std::nullopt});
      text.remove_prefix(close + 2);
    } else if (text.front() == '[') {
      const auto close = text.find(']');
      const auto i = close == std::string_view::npos ? std::nullopt : to_int(text.substr(1, close - 1));
      if (!i || *i < 0) {
        bad("index must be a non-negative integer");
      }
      segments_.push_back(Segment{"", static_cast<std::size_t>(*i)});
      text.remove_prefix(close + 1);
    } else {
      bad(fmt::format("unexpected \"{}\"", text.substr(0, 1)));
    }
  }
}

namespace {

// The first member named key at any depth, depth first in document order.
const json* find_anywhere(const json& node, const std::string& key) {
  if (node.is_object()) {
    if (const auto it = node.find(key); it != node.end()) {
      return &*it;
    }
  }
  if (node.is_structured()) {
    for (const json& child : node) {
      if (const json* found = find_anywhere(child, key)) {
        return found;
      }
    }
  }
  return nullptr;
}

}  // namespace

const json* JsonPath::find(const json& root) const {
  const json* at = &root;
  for (const Segment& s : segments_) {
    if (s.anywhere) {
      at = find_anywhere(*at, s.key);
      if (at == nullptr) {
        return nullptr;
      }
    } else if (at->is_array() && s.index) {
      if (*s.index >= at->size()) {
        return nullptr;
      }
      at = &(*at)[*s.index];
    } else if (at->is_object() && !s.key.empty()) {
      const auto it = at->find(s.key);
      if (it == at->end()) {
        return nullptr;
      }
      at = &*it;
    } else {
      return nullptr;
    }
  }
  return at;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

std::string encode_uri_component(std::string_view text) {
  static constexpr std::string_view kKept = "-_.!~*'()";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        kKept.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

std::string decode_uri_component(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = hex_digit(text[i + 1]);
      const int lo = hex_digit(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// ---- ifTrue conditions ----------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxConditionLength = 1000;
constexpr int kMaxConditionDepth = 32;

using Value = std::optional<json>;  // nullopt: undefined (a variable without a value)

bool truthy(const Value& v) {
  if (!v || v->is_null()) {
    return false;
  }
  if (v->is_boolean()) {
    return v->get<bool>();
  }
  if (v->is_number()) {
    const double d = v->get<double>();
    return d != 0 && !std::isnan(d);
  }
  if (v->is_string()) {
    return !v->get_ref<const std::string&>().empty();
  }
  return true;  // objects and arrays
}

// JavaScript's Number(string): surrounding whitespace ignored, "" is 0, hexadecimal with 0x.
double string_to_number(std::string_view s) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) {
    s.remove_suffix(1);
  }
  if (s.empty()) {
    return 0;
  }
  if (s == "Infinity" || s == "+Infinity") {
    return std::numeric_limits<double>::infinity();
  }
  if (s == "-Infinity") {
    return -std::numeric_limits<double>::infinity();
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), v, 16);
    return ec == std::errc() && end == s.data() + s.size() ? static_cast<double>(v) : kNaN;
  }
  if (s.find_first_not_of("0123456789.eE+-") != std::string_view::npos) {
    return kNaN;
  }
  if (s.front() == '+') {
    s.remove_prefix(1);
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() ? v : kNaN;
}

double to_number(const Value& v) {
  if (!v) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  switch (v->type()) {
    case json::value_t::null: return 0;
    case json::value_t::boolean: return v->get<bool>() ? 1 : 0;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return v->get<double>();
    case json::value_t::string: return string_to_number(v->get_ref<const std::string&>());
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

// JavaScript's ==, except that two objects or arrays are equal when their contents are.
bool loose_equal(const Value& a, const Value& b) {
  const bool a_none = !a || a->is_null();
  const bool b_none = !b || b->is_null();
  if (a_none || b_none) {
    return a_none && b_none;
  }
  if (a->is_structured() || b->is_structured()) {
    return *a == *b;
  }
  if (a->is_string() && b->is_string()) {
    return *a == *b;
  }
  return to_number(a) == to_number(b);  // numbers, and strings or booleans beside a number or boolean
}

bool relation(std::string_view op, const Value& a, const Value& b) {
  if (a && b && a->is_string() && b->is_string()) {
    const int c = a->get_ref<const std::string&>().compare(b->get_ref<const std::string&>());
    return op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
  }
  const double x = to_number(a);
  const double y = to_number(b);
  return op == "<" ? x < y : op == "<=" ? x <= y : op == ">" ? x > y : x >= y;  // NaN: all false
}

}  // namespace

class Condition::Parser {
 public:
  Parser(std::string_view text, Condition& c) : text_(text), c_(c) {}

  void parse() {
    if (text_.size() > kMaxConditionLength) {
      throw std::invalid_argument(fmt::format("ifTrue: longer than {} characters", kMaxConditionLength));
    }
    skip_space();
    if (pos_ == text_.size()) {
      fail("empty expression");
    }
    parse_or();
    skip_space();
    if (pos_ != text_.size()) {
      unexpected();
    }
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw std::invalid_argument(fmt::format("ifTrue \"{}\": at {}: {}", text_, pos_ + 1, what));
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  static bool word_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$'; }
  static bool word_char(char c) { return word_start(c) || (c >= '0' && c <= '9') || c == '.'; }

  // The word at pos_ (without consuming it); empty when there is none.
  std::string_view peek_word() {
    skip_space();
    if (pos_ >= text_.size() || !word_start(text_[pos_])) {
      return {};
    }
    std::size_t end = pos_;
    while (end < text_.size() && word_char(text_[end])) {
      ++end;
    }
    return text_.substr(pos_, end - pos_);
  }

  bool take_keyword(std::string_view keyword) {
    if (peek_word() == keyword) {
      pos_ += keyword.size();
      return true;
    }
    return false;
  }

  std::size_t push(Node n) {
    c_.nodes_.push_back(std::move(n));
    return c_.nodes_.size() - 1;
  }

  [[noreturn]] void unexpected() {
    skip_space();
    if (pos_ >= text_.size()) {
      fail("the expression ends too soon");
    }
    const char c = text_[pos_];
    if (c == '\'') {
      fail("single quotes name a variable in Artillery's expressions; write a string in double quotes");
    }
    if (std::string_view("+-*/%^").find(c) != std::string_view::npos) {
      fail(fmt::format("\"{}\": arithmetic is not supported (comparisons, and, or, not only)", c));
    }
    if (c == '&' || c == '|' || c == '!') {
      fail(fmt::format("\"{}\": write and, or, not", c));
    }
    if (c == '=') {
      fail("\"=\": compare with ==");
    }
    if (c == '?' || c == ':') {
      fail("\"? :\" is not supported (comparisons, and, or, not only)");
    }
    const std::string_view w = peek_word();
    if (!w.empty()) {
      check_supported(w);
      fail(fmt::format("unexpected \"{}\" (join conditions with and, or)", w));
    }
    fail(fmt::format("unexpected \"{}\"", text_.substr(pos_, 1)));
  }

  void check_supported(std::string_view w) const {
    for (std::string_view unsupported : {"in", "mod", "if", "then", "else"}) {
      if (w == unsupported) {
        fail(fmt::format("\"{}\" is not supported (comparisons, and, or, not only)", w));
      }
    }
  }

  std::size_t parse_or() {
    std::size_t left = parse_and();
    while (take_keyword("or")) {
      const std::size_t right = parse_and();
      left = push(Node{Node::Kind::either, "", nullptr, "", left, right});
    }
    return left;
  }

  std::size_t parse_and() {
    std::size_t left = parse_compare();
    while (take_keyword("and")) {
      const std::size_t right = parse_compare();
      left = push(Node{Node::Kind::both, "", nullptr, "", left, right});
    }
    return left;
  }

  std::string_view peek_operator() {
    skip_space();
    for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (text_.substr(pos_).starts_with(op)) {
        return op;
      }
    }
    return {};
  }

  std::size_t parse_compare() {
    const std::size_t left = parse_unary();
    const std::string_view op = peek_operator();
    if (op.empty()) {
      return left;
    }
    pos_ += op.size();
    const std::size_t right = parse_unary();
    if (!peek_operator().empty()) {
      fail("compare two values at a time (a < b and b < c)");
    }
    return push(Node{Node::Kind::compare, std::string(op), nullptr, "", left, right});
  }

  // not binds tighter than a comparison, as in filtrex: "not a == b" is "(not a) == b".
  std::size_t parse_unary() {
    if (take_keyword("not")) {
      enter();
      const std::size_t operand = parse_unary();
      --depth_;
      return push(Node{Node::Kind::negate, "", nullptr, "", operand, 0});
    }
    return parse_primary();
  }

  void enter() {
    if (++depth_ > kMaxConditionDepth) {
      fail(fmt::format("nested more than {} deep", kMaxConditionDepth));
    }
  }

  std::size_t parse_primary() {
    skip_space();
    if (pos_ >= text_.size()) {
      fail("the expression ends too soon");
    }
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      enter();
      const std::size_t inner = parse_or();
      --depth_;
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ')') {
        fail("expected )");
      }
      ++pos_;
      return inner;
    }
    if (c == '"') {
      return push(Node{Node::Kind::literal, "", string_literal(), "", 0, 0});
    }
    if ((c >= '0' && c <= '9') || (c == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9')) {
      return push(Node{Node::Kind::literal, "", number_literal(), "", 0, 0});
    }
    const std::string_view w = peek_word();
    if (w.empty()) {
      unexpected();
    }
    check_supported(w);
    if (w == "and" || w == "or") {
      fail(fmt::format("\"{}\" needs a value before it", w));
    }
    if (w.back() == '.' || w.find("..") != std::string_view::npos) {
      fail(fmt::format("\"{}\": not a variable name", w));
    }
    pos_ += w.size();
    if (w == "true" || w == "false") {
      return push(Node{Node::Kind::literal, "", json(w == "true"), "", 0, 0});
    }
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '(') {
      fail(fmt::format("\"{}(…)\": functions are not supported", w));
    }
    c_.names_.emplace_back(w.starts_with("$env.") ? w : w.substr(0, w.find('.')));
    return push(Node{Node::Kind::variable, "", nullptr, std::string(w), 0, 0});
  }

  json string_literal() {
    std::string out;
    ++pos_;  // the opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) {
        ++pos_;
      }
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) {
      fail("unclosed string");
    }
    ++pos_;
    return out;
  }

  json number_literal() {
    const std::size_t start = pos_;
    if (text_[pos_] == '-') {
      ++pos_;
    }
    while (pos_ < text_.size() && ((text_[pos_] >= '0' && text_[pos_] <= '9') || text_[pos_] == '.')) {
      ++pos_;
    }
    const std::string_view digits = text_.substr(start, pos_ - start);
    double v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(v)) {
      fail(fmt::format("\"{}\": not a number", digits));
    }
    if (pos_ < text_.size() && word_start(text_[pos_])) {
      fail(fmt::format("\"{}{}\": not a number", digits, text_[pos_]));
    }
    return v;
  }

  std::string_view text_;
  Condition& c_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

Condition::Condition(std::string_view text) : text_(text) {
  Parser(text_, *this).parse();
}

std::optional<json> Condition::value_of(std::size_t index, const Scope& vars) const {
  const Node& n = nodes_[index];
  switch (n.kind) {
    case Node::Kind::literal: return n.value;
    case Node::Kind::variable: {
      const json* v = lookup(vars, n.name);
      return v == nullptr ? std::nullopt : std::optional<json>(*v);
    }
    case Node::Kind::negate: return json(!truthy(value_of(n.left, vars)));
    case Node::Kind::both: return json(truthy(value_of(n.left, vars)) && truthy(value_of(n.right, vars)));
    case Node::Kind::either: return json(truthy(value_of(n.left, vars)) || truthy(value_of(n.right, vars)));
    case Node::Kind::compare: {
      const std::optional<json> a = value_of(n.left, vars);
      const std::optional<json> b = value_of(n.right, vars);
      if (n.op == "==") {
        return json(loose_equal(a, b));
      }
      if (n.op == "!=") {
        return json(!loose_equal(a, b));
      }
      return json(relation(n.op, a, b));
    }
  }
  return std::nullopt;
}

bool Condition::evaluate(const Scope& vars) const { return truthy(value_of(nodes_.size() - 1, vars)); }

}  // namespace phasekit::load
