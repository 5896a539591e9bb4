#include "template.hpp"

#include <fmt/format.h>

#include <charconv>
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

json evaluate(std::string_view e, const Vars& vars, std::mt19937_64& rng, std::string* missing) {
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
  if (const auto it = vars.find(e); it != vars.end()) {
    return it->second;
  }
  if (missing != nullptr && missing->empty()) {
    *missing = std::string(e);
  }
  return "";
}

}  // namespace

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
  if (e == "$uuid" || e == "$loopCount" || e == "$loopElement") {
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

std::string render_string(std::string_view text, const Vars& vars, std::mt19937_64& rng, std::string* missing) {
  std::string out;
  scan(text, [&](std::string_view t) { out += t; }, [&](std::string_view e) {
    const json v = evaluate(e, vars, rng, missing);
    out += v.is_string() ? v.get<std::string>() : v.dump();
  });
  return out;
}

json render(const json& value, const Vars& vars, std::mt19937_64& rng, std::string* missing) {
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

}  // namespace phasekit::load
