#pragma once
// Bytes as text: strict UTF-8 validation, standard base64, and the one byte-safe JSON form of a byte
// string that may not be UTF-8 (a shell's exports and cwd, a command's output, a file name).
//
//   valid UTF-8     →  a JSON string, as it is:          "hello"
//   anything else   →  an object with its bytes base64:  {"base64": "/w=="}
//
// Readable where it can be, exact always, and never an exception: nlohmann's dump() throws
// type_error 316 on a string that is not UTF-8, which inside a noexcept function or an Asio handler
// ends the process. Header-only: used by core and by plugins (each gets its own copy).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace phasekit::bytes {

/// Length of the valid UTF-8 sequence that starts at s[i] (strict: no overlongs, no surrogates,
/// nothing above U+10FFFF), or 0 when there is none.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1Fu;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0Fu;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > s.size()) {
    return 0;
  }
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

/// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
inline bool valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

/// How many leading bytes of `s` to send now so that a UTF-8 character is not cut in two: all of
/// them, less a trailing lead byte and the continuation bytes after it that may still be completed
/// by what comes next (at most 3 bytes are held back).
inline std::size_t utf8_complete_prefix(std::string_view s) noexcept {
  const std::size_t size = s.size();
  for (std::size_t back = 1; back <= 3 && back <= size; ++back) {
    const auto c = static_cast<unsigned char>(s[size - back]);
    if ((c & 0xC0) == 0x80) {
      continue;  // a continuation byte: look further back for its lead
    }
    const std::size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? size - back : size;
  }
  return size;
}

namespace detail {
inline constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> decode_table(const char* alphabet) {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}
inline constexpr std::array<std::int8_t, 256> kDecode = decode_table(kBase64);
inline constexpr std::array<std::int8_t, 256> kDecodeUrl = decode_table(kBase64Url);

/// RFC 4648 encoding with `alphabet`; '=' padded when `padded`.
inline std::string encode64(std::string_view bytes, const char* alphabet, bool padded) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    const char quad[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], alphabet[v & 63]};
    out.append(quad, 4);
  }
  const std::size_t left = bytes.size() - i;  // 0, 1 or 2
  if (left > 0) {
    const std::uint32_t v = (at(i) << 16) | (left == 2 ? at(i + 1) << 8 : 0);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    if (left == 2) {
      out += alphabet[(v >> 6) & 63];
    }
    if (padded) {
      out.append(3 - left, '=');
    }
  }
  return out;
}

/// Strict RFC 4648 decoding with `table`: padded, a length that is a multiple of 4 with '=' only at the
/// end; unpadded, any length but 4k+1 and no '='. Canonical either way (the bits the last group leaves
/// unused are zero, so whatever decodes re-encodes to the same text).
inline bool decode64(std::string_view text, const std::array<std::int8_t, 256>& table, bool padded,
                     std::string& out) {
  out.clear();
  if (padded ? text.size() % 4 != 0 : text.size() % 4 == 1) {
    return false;
  }
  out.reserve(text.size() / 4 * 3 + 2);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const std::size_t have = std::min<std::size_t>(4, text.size() - i);
    const bool last = i + have == text.size();
    std::uint32_t n = 0;
    int pad = 0;
    for (std::size_t k = 0; k < have; ++k) {
      const char c = text[i + k];
      int v = 0;
      if (padded && c == '=' && last && k >= 2) {
        ++pad;
      } else if (pad > 0 || (v = table[static_cast<unsigned char>(c)]) < 0) {
        return false;  // data after padding, or not in the alphabet
      }
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    for (std::size_t k = have; k < 4; ++k) {  // an unpadded last group
      n <<= 6;
      ++pad;
    }
    if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) {
      return false;
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((n >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(n & 0xff);
    }
  }
  return true;
}
}  // namespace detail

/// Standard alphabet, '=' padded.
inline std::string base64_encode(std::string_view bytes) { return detail::encode64(bytes, detail::kBase64, true); }

/// Strict: standard alphabet, '=' padding only at the end, length a multiple of 4, canonical.
inline bool base64_decode(std::string_view text, std::string& out) {
  return detail::decode64(text, detail::kDecode, true, out);
}

/// URL-safe alphabet ('-' and '_'), unpadded: RFC 4648 section 5 as JWTs use it (RFC 7515).
inline std::string base64url_encode(std::string_view bytes) {
  return detail::encode64(bytes, detail::kBase64Url, false);
}

/// Strict: URL-safe alphabet, no padding, canonical; false on anything else (a length of 4k+1 too).
inline bool base64url_decode(std::string_view text, std::string& out) {
  return detail::decode64(text, detail::kDecodeUrl, false, out);
}

/// The byte-safe JSON form of `bytes`: a string when they are UTF-8, else {"base64": "…"}.
inline nlohmann::json to_json(std::string_view bytes) {
  if (valid_utf8(bytes)) {
    return nlohmann::json(bytes);
  }
  return nlohmann::json{{"base64", base64_encode(bytes)}};
}

/// Reads what to_json() wrote. False (and `out` unspecified) for anything else.
inline bool from_json(const nlohmann::json& value, std::string& out) {
  if (value.is_string()) {
    out = value.get_ref<const std::string&>();
    return true;
  }
  if (!value.is_object() || value.size() != 1) {
    return false;
  }
  const auto it = value.find("base64");
  return it != value.end() && it->is_string() && base64_decode(it->get_ref<const std::string&>(), out);
}

/// JSON text that never throws: strings that are not UTF-8 (which to_json() keeps out) are replaced by
/// U+FFFD rather than ending the process. Compact.
inline std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace phasekit::bytes
