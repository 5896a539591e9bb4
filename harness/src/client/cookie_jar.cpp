#include "client/cookie_jar.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include "phasekit/text.hpp"

namespace phasekit::load {
namespace {

using std::chrono::seconds;
using std::chrono::sys_seconds;

// Browsers keep a cookie at most 400 days, whatever it asks for (RFC 6265bis §5.6.1).
constexpr seconds kMaxLifetime = std::chrono::hours(24 * 400);
constexpr std::size_t kMaxAttributeValue = 1024;  // a longer attribute is ignored (6265bis §5.6)

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return lower(c); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }


// Control characters other than tab end the cookie (6265bis §5.6): nothing from a header ever puts
// a CR, LF or NUL into the Cookie header we send.
bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

bool is_ip_address(std::string_view host) {
  return host.find(':') != std::string_view::npos ||
         (!host.empty() && std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; }));
}

// RFC 6265 §5.1.3.
bool domain_match(std::string_view host, std::string_view domain) {
  if (host == domain) {
    return true;
  }
  return !domain.empty() && host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.' && !is_ip_address(host);
}

// RFC 6265 §5.1.4.
std::string default_path(std::string_view request_path) {
  if (request_path.empty() || request_path.front() != '/') {
    return "/";
  }
  const auto last = request_path.rfind('/');
  return last == 0 ? "/" : std::string(request_path.substr(0, last));
}

bool path_match(std::string_view request_path, std::string_view cookie_path) {
  if (request_path == cookie_path) {
    return true;
  }
  return request_path.starts_with(cookie_path) &&
         (cookie_path.ends_with('/') || request_path[cookie_path.size()] == '/');
}

// §5.1.1 delimiters: %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E.
bool is_date_delimiter(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x09 || (u >= 0x20 && u <= 0x2f) || (u >= 0x3b && u <= 0x40) || (u >= 0x5b && u <= 0x60) ||
         (u >= 0x7b && u <= 0x7e);
}

// min..max digits at the start of token, not followed by another digit; the number, or -1.
int leading_number(std::string_view token, std::size_t min_digits, std::size_t max_digits, std::size_t* used = nullptr) {
  std::size_t n = 0;
  int value = 0;
  while (n < token.size() && is_digit(token[n])) {
    if (n == max_digits) {
      return -1;
    }
    value = value * 10 + (token[n] - '0');
    ++n;
  }
  if (n < min_digits) {
    return -1;
  }
  if (used != nullptr) {
    *used = n;
  }
  return value;
}

// hms-time: 1*2DIGIT ":" 1*2DIGIT ":" 1*2DIGIT, then anything but a digit.
bool parse_time(std::string_view token, int& h, int& m, int& s) {
  int* fields[] = {&h, &m, &s};
  for (int i = 0; i < 3; ++i) {
    std::size_t used = 0;
    const int v = leading_number(token, 1, 2, &used);
    if (v < 0) {
      return false;
    }
    *fields[i] = v;
    token.remove_prefix(used);
    if (i < 2) {
      if (token.empty() || token.front() != ':') {
        return false;
      }
      token.remove_prefix(1);
    }
  }
  return true;
}

// 1..12 when the token starts with a month's name ("Oct", "october"), else 0.
int month_of(std::string_view token) {
  static constexpr std::array<std::string_view, 12> kMonths{"jan", "feb", "mar", "apr", "may", "jun",
                                                            "jul", "aug", "sep", "oct", "nov", "dec"};
  for (std::size_t i = 0; token.size() >= 3 && i < kMonths.size(); ++i) {
    if (iequals(token.substr(0, 3), kMonths[i])) {
      return static_cast<int>(i) + 1;
    }
  }
  return 0;
}

// Max-Age: an optional '-' and digits; anything else ignores the attribute (nullopt).
std::optional<std::int64_t> parse_max_age(std::string_view v) {
  if (v.empty() || (!is_digit(v.front()) && v.front() != '-')) {
    return std::nullopt;
  }
  const bool negative = v.front() == '-';
  std::string_view digits = negative ? v.substr(1) : v;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  for (char c : digits) {
    n = std::min<std::int64_t>(n * 10 + (c - '0'), kMaxLifetime.count() + 1);  // saturates: no overflow
  }
  return negative ? -n : n;
}

}  // namespace

std::optional<WallClock::time_point> parse_cookie_date(std::string_view text) {
  bool found_time = false;
  bool found_day = false;
  bool found_month = false;
  bool found_year = false;
  int hour = 0;
  int minute = 0;
  int second = 0;
  int day = 0;
  int month = 0;
  int year = 0;
  while (!text.empty()) {
    while (!text.empty() && is_date_delimiter(text.front())) {
      text.remove_prefix(1);
    }
    std::size_t end = 0;
    while (end < text.size() && !is_date_delimiter(text[end])) {
      ++end;
    }
    const std::string_view token = text.substr(0, end);
    text.remove_prefix(end);
    if (token.empty()) {
      continue;
    }
    int h = 0;
    int m = 0;
    int s = 0;
    if (!found_time && parse_time(token, h, m, s)) {
      found_time = true;
      hour = h;
      minute = m;
      second = s;
    } else if (const int d = leading_number(token, 1, 2); !found_day && d >= 0) {
      found_day = true;
      day = d;
    } else if (const int mon = month_of(token); !found_month && mon > 0) {
      found_month = true;
      month = mon;
    } else if (const int y = leading_number(token, 2, 4); !found_year && y >= 0) {
      found_year = true;
      year = y;
    }
  }
  if (year >= 70 && year <= 99) {
    year += 1900;
  } else if (year >= 0 && year <= 69) {
    year += 2000;
  }
  if (!found_time || !found_day || !found_month || !found_year || day < 1 || day > 31 || year < 1601 ||
      hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) {
    return std::nullopt;  // 30 February
  }
  // In seconds: year 1601 and 9999 are outside what a nanosecond system_clock can hold.
  const sys_seconds at = std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                         seconds(second);
  const sys_seconds lowest = std::chrono::time_point_cast<seconds>(WallClock::time_point::min()) + seconds(1);
  const sys_seconds highest = std::chrono::time_point_cast<seconds>(WallClock::time_point::max()) - seconds(1);
  return WallClock::time_point(std::clamp(at, lowest, highest));
}

bool CookieJar::store(std::string_view set_cookie, const CookieUrl& url, WallClock::time_point now) {
  if (set_cookie.size() > limits_.max_header_bytes || has_control(set_cookie)) {
    return false;
  }
  const auto semicolon = set_cookie.find(';');
  const std::string_view pair = set_cookie.substr(0, semicolon);
  std::string_view attributes = semicolon == std::string_view::npos ? std::string_view() : set_cookie.substr(semicolon);
  const auto equals = pair.find('=');
  if (equals == std::string_view::npos) {
    return false;  // RFC 6265 §5.2: no '=', no cookie
  }
  const std::string_view name = text::trim_ows(pair.substr(0, equals));
  const std::string_view value = text::trim_ows(pair.substr(equals + 1));
  if (name.empty() || name.size() + value.size() > limits_.max_cookie_bytes) {
    return false;
  }

  std::optional<WallClock::time_point> expires;  // from Expires
  std::optional<std::int64_t> max_age;             // the last Max-Age wins over any Expires
  std::optional<std::string> domain;
  std::optional<std::string> path;
  bool secure = false;
  while (!attributes.empty()) {
    attributes.remove_prefix(1);  // the ';'
    const auto next = attributes.find(';');
    const std::string_view av = attributes.substr(0, next);
    attributes = next == std::string_view::npos ? std::string_view() : attributes.substr(next);
    const auto eq = av.find('=');
    const std::string_view key = text::trim_ows(av.substr(0, eq));
    const std::string_view v = eq == std::string_view::npos ? std::string_view() : text::trim_ows(av.substr(eq + 1));
    if (v.size() > kMaxAttributeValue) {
      continue;
    }
    if (iequals(key, "expires")) {
      if (auto at = parse_cookie_date(v)) {
        expires = at;
      }
    } else if (iequals(key, "max-age")) {
      if (auto n = parse_max_age(v)) {
        max_age = n;
      }
    } else if (iequals(key, "domain")) {
      if (!v.empty()) {
        domain = lower(v.front() == '.' ? v.substr(1) : v);
      }
    } else if (iequals(key, "path")) {
      path = !v.empty() && v.front() == '/' ? std::optional<std::string>(v) : std::nullopt;
    } else if (iequals(key, "secure")) {
      secure = true;
    }
    // HttpOnly (we run no scripts), SameSite (every request is to the same site) and the rest: ignored.
  }

  const std::string host = lower(url.host);
  Cookie c;
  c.name = std::string(name);
  c.value = std::string(value);
  if (domain && !domain->empty()) {
    if (!domain_match(host, *domain)) {
      return false;  // a server sets cookies only for itself and its parent domains
    }
    c.host_only = false;
    c.domain = std::move(*domain);
  } else {
    c.domain = host;
  }
  c.path = path ? std::move(*path) : default_path(url.path);
  c.secure = secure;
  if (secure && !url.secure) {
    return false;  // 6265bis §5.7 step 14: only a secure origin sets a Secure cookie
  }
  bool expired = false;
  if (max_age) {
    expired = *max_age <= 0;
    c.expires = now + seconds(std::min<std::int64_t>(*max_age, kMaxLifetime.count()));
  } else if (expires) {
    expired = *expires <= now;
    c.expires = std::min(*expires, now + kMaxLifetime);
  }

  c.created = next_created_++;
  const auto same = std::find_if(cookies_.begin(), cookies_.end(), [&](const Cookie& old) {
    return old.name == c.name && old.domain == c.domain && old.path == c.path;  // RFC 6265 §5.3 step 11
  });
  if (same != cookies_.end()) {
    c.created = same->created;  // a replaced cookie keeps its place in the order
    cookies_.erase(same);
  }
  if (expired) {
    return true;  // an expiry in the past deletes
  }
  cookies_.push_back(std::move(c));
  if (cookies_.size() > limits_.max_cookies) {
    drop_expired(now);
  }
  while (cookies_.size() > limits_.max_cookies) {
    cookies_.erase(std::min_element(cookies_.begin(), cookies_.end(),
                                    [](const Cookie& a, const Cookie& b) { return a.created < b.created; }));
  }
  return true;
}

std::string CookieJar::header(const CookieUrl& url, WallClock::time_point now) {
  drop_expired(now);
  const std::string host = lower(url.host);
  std::vector<const Cookie*> sent;
  for (const Cookie& c : cookies_) {
    if ((c.host_only ? host == c.domain : domain_match(host, c.domain)) && path_match(url.path, c.path) &&
        (!c.secure || url.secure)) {
      sent.push_back(&c);
    }
  }
  std::sort(sent.begin(), sent.end(), [](const Cookie* a, const Cookie* b) {
    return a->path.size() != b->path.size() ? a->path.size() > b->path.size() : a->created < b->created;
  });
  std::string out;
  for (const Cookie* c : sent) {
    if (!out.empty()) {
      out += "; ";
    }
    out += c->name;
    out += '=';
    out += c->value;
  }
  return out;
}

void CookieJar::drop_expired(WallClock::time_point now) {
  std::erase_if(cookies_, [now](const Cookie& c) { return c.expires && *c.expires <= now; });
}

}  // namespace phasekit::load
