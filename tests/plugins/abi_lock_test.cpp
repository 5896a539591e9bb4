// Changing the plugin boundary without bumping PHK_ABI_VERSION must fail CI. The boundary is every
// header under core/include/phasekit/plugin/ plus status.hpp; comments and white space do not count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "phasekit/plugin/abi.h"

namespace phasekit {
namespace {

/// The text with // and /* */ comments removed and every run of white space made one space.
std::string normalise(const std::string& text) {
  std::string out;
  bool space = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "//") == 0) {
      i = text.find('\n', i);
      if (i == std::string::npos) {
        break;
      }
    } else if (text.compare(i, 2, "/*") == 0) {
      i = text.find("*/", i + 2);
      if (i == std::string::npos) {
        break;
      }
      i += 1;
      space = true;
      continue;
    }
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) {
      out += ' ';
    }
    space = false;
    out += c;
  }
  return out;
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ull) {
  for (const unsigned char c : s) {
    h = (h ^ c) * 1099511628211ull;
  }
  return h;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string boundary_hash() {
  const std::filesystem::path include = PHASEKIT_INCLUDE_DIR;
  std::vector<std::filesystem::path> files{include / "phasekit" / "status.hpp"};
  for (const auto& e : std::filesystem::directory_iterator(include / "phasekit" / "plugin")) {
    if (e.path().extension() == ".h" || e.path().extension() == ".hpp") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::uint64_t h = fnv1a("");
  for (const auto& f : files) {
    h = fnv1a(f.filename().string() + "\n" + normalise(read(f)) + "\n", h);
  }
  std::ostringstream hex;
  hex << std::hex << h;
  return hex.str();
}

TEST(AbiLock, Normalise_IgnoresCommentsAndWhitespaceButNotCode) {
  EXPECT_EQ(normalise("int  a; // note\n/* block */ int b;"), normalise("int a;\nint b; // other note"));
  EXPECT_NE(normalise("int a;"), normalise("long a;"));
  EXPECT_NE(fnv1a(normalise("uint32_t abi_version;")), fnv1a(normalise("uint64_t abi_version;")));
}

TEST(AbiLock, BoundaryHeadersMatchTheLockedHashForThisAbiVersion) {
  const char* source = std::getenv("PHASEKIT_SOURCE_DIR");
  ASSERT_NE(source, nullptr);
  const std::filesystem::path lock = std::filesystem::path(source) / "tests" / "plugins" / "abi.lock";
  std::ifstream in(lock);
  ASSERT_TRUE(in) << lock << " is missing";
  unsigned locked_version = 0;
  std::string locked_hash;
  std::string key;
  while (in >> key) {
    if (key == "abi_version") {
      in >> locked_version;
    } else if (key == "boundary_hash") {
      in >> locked_hash;
    }
  }
  const std::string now = boundary_hash();
  const std::string fix = "write \"abi_version " + std::to_string(PHK_ABI_VERSION) + "\\nboundary_hash " + now +
                          "\" to tests/plugins/abi.lock";
  if (locked_version == PHK_ABI_VERSION) {
    EXPECT_EQ(now, locked_hash) << "the plugin boundary headers changed but PHK_ABI_VERSION is still "
                                << PHK_ABI_VERSION << ": bump PHK_ABI_VERSION in core/include/phasekit/plugin/abi.h, "
                                << "then " << "write \"abi_version <new>\\nboundary_hash <new hash>\" to "
                                << "tests/plugins/abi.lock (this test prints the hash)";
  } else {
    EXPECT_GT(PHK_ABI_VERSION, locked_version) << "PHK_ABI_VERSION must only grow";
    ADD_FAILURE() << "PHK_ABI_VERSION was bumped to " << PHK_ABI_VERSION << ": " << fix;
  }
}

}  // namespace
}  // namespace phasekit
