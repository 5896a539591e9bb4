// `declare -px` as bash 5 prints it, parsed back into variables; and what a hostile shell may print.
#include "phasekit/backend/exports_parser.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstdio>
#include <memory>

namespace phasekit::backend {
namespace {

using namespace std::string_literals;

TEST(ExportsParser, ReadsBothQuotingFormsAndSkipsArraysUnsetAndTheShellsOwn) {
  const std::string text =
      "declare -x A=\"plain \\\"quoted\\\" \\\\ \\$HOME \\`x\\`\"\n"
      "declare -x B=$'l1\\nl2\\ttab\\001\\377 \\' end'\n"
      "declare -ax ARR=([0]=\"1\" [1]=\")\")\n"
      "declare -ix I=\"3\"\n"
      "declare -rx R=\"ro\"\n"
      "declare -x UNSET\n"
      "declare -x HOME=\"/w\"\n"
      "declare -x PWD=\"/w\"\n"
      "declare -x OLDPWD\n"
      "declare -x SHLVL=\"1\"\n"
      "declare -x E=\"\"\n"
      "declare -x U=$'\\u00e9\\x41\\cA'\n";
  ExportList out;
  ASSERT_TRUE(parse_exports(text, out).ok());
  const ExportList want{{"A", "plain \"quoted\" \\ $HOME `x`"},
                        {"B", "l1\nl2\ttab\x01\xff ' end"},
                        {"I", "3"},
                        {"R", "ro"},
                        {"E", ""},
                        {"U", "\xc3\xa9" "A\x01"}};
  EXPECT_EQ(out, want);
}

TEST(ExportsParser, MalformedTextIsRefusedWithItsLine) {
  ExportList out;
  for (const std::string bad : {"export A=1\n", "declare -x\n", "declare -x 1A=\"x\"\n", "declare -x A=\"open\n",
                                "declare -x A=$'open\n", "declare -x A=unquoted\n", "declare -x A=\"x\"trailing\n",
                                "declare -ax A=([0]=\"x\"\n", "declare x A=\"1\"\n"}) {
    const Status s = parse_exports("declare -x OK=\"1\"\n" + bad, out);
    EXPECT_EQ(s.code(), Code::bad_request) << bad;
    EXPECT_NE(s.message().find("line 2"), std::string::npos) << bad << ": " << s.message();
  }
}

TEST(ExportsParser, WhatBashPrintsRoundTripsEveryByteButNul) {
  // The real shell as the oracle: every byte 1..255 in one value, and some multibyte text.
  std::string value;
  for (int c = 1; c < 256; ++c) {
    value += static_cast<char>(c);
  }
  const char* path = "/tmp/phasekit-exports-test.sh";
  {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path, "w"), &std::fclose);
    ASSERT_TRUE(f);
    std::string script = "export V=$'";
    for (const unsigned char c : value) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      script += buf;
    }
    script += "' W='héllo wörld \"q\" $x'; declare -px\n";
    std::fputs(script.c_str(), f.get());
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> p(::popen("env -i LANG=C.UTF-8 bash --norc --noprofile /tmp/phasekit-exports-test.sh", "r"),
                                                    &::pclose);
  ASSERT_TRUE(p);
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p.get())) > 0) {
    text.append(buf, n);
  }
  std::remove(path);
  ExportList out;
  ASSERT_TRUE(parse_exports(text, out).ok()) << text;
  ExportList mine;
  for (const auto& kv : out) {
    if (kv.first == "V" || kv.first == "W") {
      mine.push_back(kv);
    }
  }
  ASSERT_EQ(mine.size(), 2u) << text;
  EXPECT_EQ(mine[0].second, value);
  EXPECT_EQ(mine[1].second, "héllo wörld \"q\" $x");
}

}  // namespace
}  // namespace phasekit::backend
