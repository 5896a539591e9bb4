#pragma once
// Identifiers that are also credentials (a session id resumes a session, a callId approves a call, a
// worker name owns the jobs it claimed): 128 bits from the kernel's CSPRNG, never from a seeded
// generator whose outputs give away the ones that follow. Header-only: core and plugins use it.
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <random>
#include <string>
#include <string_view>

namespace phasekit {

/// `prefix` and 128 random bits as 32 lowercase hex digits.
inline std::string random_id(std::string_view prefix) {
  std::array<unsigned char, 16> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;  // no getrandom(2) (a kernel before 3.17): std::random_device reads /dev/urandom
    }
  }
  if (got < bytes.size()) {
    std::random_device urandom("/dev/urandom");
    for (std::size_t i = got; i < bytes.size(); ++i) {
      bytes[i] = static_cast<unsigned char>(urandom());
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(prefix);
  out.reserve(prefix.size() + 2 * bytes.size());
  for (const unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace phasekit
