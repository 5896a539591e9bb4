#include "app/random_id.hpp"

#include <openssl/rand.h>

#include <random>
#include <vector>

#include "protocol/engineio.hpp"

namespace phasekit::app {

void random_bytes(std::span<unsigned char> out) noexcept {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) == 1) {
    return;
  }
  // RAND_bytes fails only when OpenSSL cannot seed itself; libstdc++'s random_device then still
  // reads the kernel's generator (getrandom / /dev/urandom).
  std::random_device rd;
  for (auto& b : out) {
    b = static_cast<unsigned char>(rd());
  }
}

std::string random_id(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  random_bytes(raw);
  std::string id = engineio::base64_encode(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  while (!id.empty() && id.back() == '=') {
    id.pop_back();
  }
  for (char& c : id) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return id;
}

}  // namespace phasekit::app
