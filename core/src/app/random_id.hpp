#pragma once
// Identifiers nobody can guess: bytes from a CSPRNG (OpenSSL's RAND_bytes, which the kernel seeds).
// Session ids, Engine.IO sids and Socket.IO socket ids all come from here.
#include <cstddef>
#include <span>
#include <string>

namespace phasekit::app {

/// Fills out with cryptographically secure random bytes.
void random_bytes(std::span<unsigned char> out) noexcept;

/// `bytes` random bytes as URL-safe base64 without padding: 15 bytes give 20 characters, the form of
/// the reference server's Engine.IO sids (base64id).
std::string random_id(std::size_t bytes = 15);

}  // namespace phasekit::app
