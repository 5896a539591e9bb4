#pragma once
// Identifiers that are also credentials (a session id resumes a session, an Engine.IO sid is the only
// credential of a polling session, a callId approves a call, a worker name owns the jobs it claimed):
// bytes from the kernel's CSPRNG, never from a seeded generator whose outputs give away the ones that
// follow. Header-only: core and plugins use it.
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "phasekit/bytes.hpp"

namespace phasekit {

/// Fills `out` from getrandom(2); without it (a kernel before 3.17), from /dev/urandom.
inline void random_bytes(std::span<unsigned char> out) noexcept {
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::getrandom(out.data() + got, out.size() - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  if (got < out.size()) {
    try {
      std::random_device urandom("/dev/urandom");
      for (std::size_t i = got; i < out.size(); ++i) {
        out[i] = static_cast<unsigned char>(urandom());
      }
    } catch (...) {
      std::abort();  // no source of randomness at all: never hand out a guessable credential
    }
  }
}

/// `prefix` and 128 random bits as 32 lowercase hex digits.
inline std::string random_id(std::string_view prefix) {
  std::array<unsigned char, 16> bytes{};
  random_bytes(bytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(prefix);
  out.reserve(prefix.size() + 2 * bytes.size());
  for (const unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

/// 48 random bits as 12 hex digits: a tag that tells this process's names (backends, scratch files)
/// apart from another's, not a credential.
inline std::string random_tag() { return random_id("").substr(0, 12); }

/// `bytes` random bytes as URL-safe base64 without padding: 15 bytes give 20 characters, the form of
/// the reference server's Engine.IO sids (base64id).
inline std::string random_url_id(std::size_t bytes = 15) {
  std::vector<unsigned char> raw(bytes);
  random_bytes(raw);
  std::string id = bytes::base64_encode(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  while (!id.empty() && id.back() == '=') {
    id.pop_back();
  }
  for (char& c : id) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return id;
}

}  // namespace phasekit
