#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "phasekit/config/print.hpp"

namespace phasekit::config {
namespace {

TEST(ConfigurationDoc, MatchesTheTable) {
  const char* source = std::getenv("PHASEKIT_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "ctest sets PHASEKIT_SOURCE_DIR";
  const std::string path = std::string(source) + "/docs/configuration.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is missing; run: build/bin/phasekit config --markdown > docs/configuration.md";
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_TRUE(content.str() == render_markdown())
      << path << " is stale; run: build/bin/phasekit config --markdown > docs/configuration.md";
}

TEST(ConfigurationDoc, DocumentsEverySetting) {
  const std::string doc = render_markdown();
  for (const Spec& s : settings()) {
    EXPECT_NE(doc.find("`" + std::string(s.env) + "`"), std::string::npos) << s.env;
    EXPECT_NE(doc.find("`--" + std::string(s.flag) + "`"), std::string::npos) << s.flag;
  }
}

}  // namespace
}  // namespace phasekit::config
