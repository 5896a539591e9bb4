#include "phasekit/backend/exports_parser.hpp"

#include <cctype>
#include <charconv>

namespace phasekit::backend {
namespace {

constexpr std::size_t kMaxVariables = 10000;

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

bool own_variable(std::string_view name) {
  return name == "HOME" || name == "PWD" || name == "OLDPWD" || name == "SHLVL" || name == "_";
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    cp = 0xfffd;
  }
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

/// Reads up to `max` digits of `base` at s[i...]; advances i past them.
std::uint32_t digits(std::string_view s, std::size_t& i, std::size_t max, int base) {
  std::uint32_t v = 0;
  std::size_t n = 0;
  while (n < max && i < s.size()) {
    const char c = s[i];
    int d = -1;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    }
    if (d < 0 || d >= base) {
      break;
    }
    v = v * static_cast<std::uint32_t>(base) + static_cast<std::uint32_t>(d);
    ++i;
    ++n;
  }
  return v;
}

}  // namespace

std::string decode_ansi_c(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i++];
      continue;
    }
    const char e = s[i + 1];
    i += 2;
    switch (e) {
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'e':
      case 'E': out += '\x1b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case '?': out += '?'; break;
      case 'x': {
        const std::size_t from = i;
        const std::uint32_t v = digits(s, i, 2, 16);
        if (i == from) {
          out += "\\x";
        } else {
          out += static_cast<char>(v);
        }
        break;
      }
      case 'u':
      case 'U': {
        const std::size_t from = i;
        const std::uint32_t v = digits(s, i, e == 'u' ? 4 : 8, 16);
        if (i == from) {
          out += '\\';
          out += e;
        } else {
          append_utf8(out, v);
        }
        break;
      }
      case 'c':
        if (i < s.size()) {
          out += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])) & 0x1f);
          ++i;
        } else {
          out += "\\c";
        }
        break;
      default:
        if (e >= '0' && e <= '7') {
          --i;
          out += static_cast<char>(digits(s, i, 3, 8) & 0xff);
        } else {
          out += '\\';
          out += e;
        }
        break;
    }
  }
  return out;
}

Status parse_exports(std::string_view text, ExportList& out, ExportScope scope) {
  out.clear();
  std::size_t i = 0;
  std::size_t line = 1;
  std::size_t started = 1;  // the line its declaration began on
  auto bad = [&started](std::string_view why) {
    // No fmt here: the sandbox's static supervisor links this file with libc and libstdc++ only.
    return Status(Code::bad_request, "exports, line " + std::to_string(started) + ": " + std::string(why));
  };
  constexpr std::string_view kDeclare = "declare -";
  while (i < text.size()) {
    if (text[i] == '\n') {
      ++i;
      ++line;
      continue;
    }
    started = line;
    if (text.substr(i, kDeclare.size()) != kDeclare) {
      return bad("expected \"declare -\"");
    }
    i += kDeclare.size();
    const std::size_t flags_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])) != 0) {
      ++i;
    }
    const std::string_view flags = text.substr(flags_start, i - flags_start);
    if (flags.empty() || i >= text.size() || text[i] != ' ') {
      return bad("expected flags and a space");
    }
    ++i;
    const std::size_t name_start = i;
    if (i >= text.size() || !is_name_start(text[i])) {
      return bad("expected a variable name");
    }
    while (i < text.size() && is_name_char(text[i])) {
      ++i;
    }
    const std::string_view name = text.substr(name_start, i - name_start);
    const bool exported = flags.find('x') != std::string_view::npos;
    const bool array = flags.find('a') != std::string_view::npos || flags.find('A') != std::string_view::npos;
    std::string value;
    bool has_value = false;
    if (i < text.size() && text[i] == '=') {
      ++i;
      has_value = true;
      if (text.substr(i, 2) == "$'") {
        i += 2;
        const std::size_t from = i;
        while (i < text.size() && text[i] != '\'') {
          i += text[i] == '\\' ? 2 : 1;
        }
        if (i >= text.size()) {
          return bad("unterminated $'...'");
        }
        value = decode_ansi_c(text.substr(from, i - from));
        ++i;
      } else if (i < text.size() && text[i] == '"') {
        ++i;
        for (;;) {
          if (i >= text.size()) {
            return bad("unterminated \"...\"");
          }
          const char c = text[i];
          if (c == '"') {
            ++i;
            break;
          }
          if (c == '\n') {
            ++line;
          }
          if (c == '\\' && i + 1 < text.size() &&
              (text[i + 1] == '"' || text[i + 1] == '\\' || text[i + 1] == '$' || text[i + 1] == '`')) {
            value += text[i + 1];
            i += 2;
            continue;
          }
          value += c;
          ++i;
        }
      } else if (i < text.size() && text[i] == '(' && array) {
        // An array's elements: skipped to the end of its (quoted) list.
        int depth = 0;
        bool in_quote = false;
        for (; i < text.size(); ++i) {
          const char c = text[i];
          if (in_quote) {
            if (c == '\\') {
              ++i;
            } else if (c == '"') {
              in_quote = false;
            }
          } else if (c == '"') {
            in_quote = true;
          } else if (c == '(') {
            ++depth;
          } else if (c == ')' && --depth == 0) {
            ++i;
            break;
          }
        }
        if (depth != 0) {
          return bad("unterminated array");
        }
      } else {
        return bad("expected a quoted value");
      }
    }
    if (i < text.size() && text[i] != '\n') {
      return bad("trailing characters after the value");
    }
    if (scope == ExportScope::environment && exported && flags.find('n') != std::string_view::npos) {
      return bad("an exported name reference");
    }
    if (exported && !array && has_value && (scope == ExportScope::environment || !own_variable(name))) {
      if (out.size() >= kMaxVariables) {
        return bad("too many variables");
      }
      out.emplace_back(std::string(name), std::move(value));
    }
  }
  return {};
}

}  // namespace phasekit::backend
