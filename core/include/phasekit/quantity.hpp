#pragma once
// Kubernetes quantities ("600m", "1.5", "2Gi", "1e3") as milli-values, the unit the HPA computes in
// (resource.Quantity.MilliValue(): fractions of a milli round up, away from zero). Header-only: the
// simulator and the hpa plugin each use their own copy.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace phasekit {

/// True and `milli` set, or false and `error` saying what is wrong with `text`.
inline bool parse_quantity_milli(std::string_view text, std::int64_t& milli, std::string& error) {
  __extension__ typedef __int128 Wide;  // NOLINT(modernize-use-using): __extension__ needs typedef
  constexpr Wide kLimit = static_cast<Wide>(INT64_MAX);
  const std::string_view original = text;
  auto fail = [&](std::string_view why) {
    error = "\"" + std::string(original) + "\" is not a Kubernetes quantity (" + std::string(why) + ")";
    return false;
  };
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  Wide mantissa = 0;
  int fraction_digits = 0;
  int digits = 0;
  bool dot = false;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') {
      break;
    }
    if (++digits > 30) {
      return fail("too many digits");
    }
    mantissa = mantissa * 10 + (c - '0');
    fraction_digits += dot ? 1 : 0;
  }
  if (digits == 0) {
    return fail("expected a number such as 250m, 1.5 or 2Gi");
  }
  const std::string_view suffix = text.substr(i);
  int pow10 = 0;
  int pow2 = 0;
  // Decimal SI suffixes and their powers of ten.
  constexpr std::pair<std::string_view, int> kDecimal[] = {{"", 0},  {"n", -9}, {"u", -6}, {"m", -3}, {"k", 3},
                                                           {"M", 6}, {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  bool decimal = false;
  for (const auto& [name, power] : kDecimal) {
    if (suffix == name) {
      pow10 = power;
      decimal = true;
    }
  }
  if (decimal) {  // pow10 is set
  } else if (suffix.size() == 2 && suffix[1] == 'i' && std::string_view("KMGTPE").find(suffix[0]) != std::string_view::npos) {
    pow2 = 10 * (1 + static_cast<int>(std::string_view("KMGTPE").find(suffix[0])));
  } else if (suffix.front() == 'e' || suffix.front() == 'E') {
    std::string_view exp = suffix.substr(1);
    bool exp_negative = false;
    if (!exp.empty() && (exp.front() == '+' || exp.front() == '-')) {
      exp_negative = exp.front() == '-';
      exp.remove_prefix(1);
    }
    if (exp.empty() || exp.size() > 3 || exp.find_first_not_of("0123456789") != std::string_view::npos) {
      return fail("bad exponent");
    }
    pow10 = std::stoi(std::string(exp)) * (exp_negative ? -1 : 1);
  } else {
    return fail("unknown suffix \"" + std::string(suffix) + "\"");
  }
  // value = mantissa * 10^(pow10 - fraction_digits) * 2^pow2, in milli: one more 10^3.
  int scale10 = pow10 - fraction_digits + 3;
  Wide value = mantissa;
  for (int k = 0; k < pow2; ++k) {
    value *= 2;
    if (value > kLimit) {
      return fail("too large");
    }
  }
  for (; scale10 > 0; --scale10) {
    value *= 10;
    if (value > kLimit) {
      return fail("too large");
    }
  }
  for (; scale10 < 0; ++scale10) {
    value = (value + 9) / 10;  // ceil(ceil(a/b)/c) == ceil(a/(b*c)): rounds up, away from zero
  }
  milli = static_cast<std::int64_t>(negative ? -value : value);
  return true;
}

}  // namespace phasekit
