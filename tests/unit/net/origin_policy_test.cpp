// ALLOWED_ORIGINS: what the setting accepts, and which Origin headers each policy lets through.
#include "phasekit/net/origin_policy.hpp"

#include <gtest/gtest.h>

namespace phasekit::net {
namespace {

OriginPolicy policy(std::string_view list) {
  auto p = OriginPolicy::parse(list);
  EXPECT_TRUE(p.has_value()) << list;
  return p.value_or(OriginPolicy());
}

TEST(ParseOrigin, NormalisesCaseAndTheSchemesDefaultPort) {
  EXPECT_EQ(parse_origin("HTTPS://App.Example.com:443"), (Origin{"https", "app.example.com", 0}));
  EXPECT_EQ(parse_origin("http://localhost:5173"), (Origin{"http", "localhost", 5173}));
  EXPECT_EQ(parse_origin("http://[::1]:8080"), (Origin{"http", "[::1]", 8080}));
  EXPECT_EQ(parse_origin("http://a.example:80"), (Origin{"http", "a.example", 0}));
}

TEST(ParseOrigin, RefusesWhatIsNoOrigin) {
  for (const char* bad : {"", "null", "*", "example.com", "https://", "https://a.example/", "https://a.example/app",
                          "https://user@a.example", "https://a.example?x=1", "https://a.example:0",
                          "https://a.example:65536", "https://a.example:", "https://a.example:80x", "1http://a",
                          "https://a b.example", "https://[::1", "https://a.example#f"}) {
    EXPECT_FALSE(parse_origin(bad).has_value()) << bad;
  }
}

TEST(OriginPolicyParse, AcceptsEmptyStarAndCommaSeparatedOrigins) {
  EXPECT_TRUE(policy("").origins().empty());
  EXPECT_FALSE(policy("").allows_any());
  EXPECT_TRUE(policy("*").allows_any());
  EXPECT_TRUE(policy(" * ").allows_any());
  EXPECT_EQ(policy("https://a.example, http://localhost:5173").origins().size(), 2u);
}

TEST(OriginPolicyParse, RefusesBadEntriesNamingThem) {
  std::string error;
  EXPECT_FALSE(OriginPolicy::parse("https://a.example,*", &error));
  EXPECT_EQ(error, "\"*\" alone, not among other origins");
  EXPECT_FALSE(OriginPolicy::parse("https://a.example/,https://b.example", &error));
  EXPECT_EQ(error, "'https://a.example/' is not an origin: expected scheme://host[:port]");
  EXPECT_FALSE(OriginPolicy::parse("https://a.example,,https://b.example", &error));
  EXPECT_FALSE(OriginPolicy::parse("a.example", &error));
  EXPECT_FALSE(OriginPolicy::parse("https://a.example,", &error));
}

TEST(OriginPolicyJudge, NoOriginHeaderIsAllowedWhateverTheSetting) {
  EXPECT_EQ(policy("").judge(std::nullopt, "127.0.0.1:3000"), OriginVerdict::no_origin);
}

TEST(OriginPolicyJudge, WithNoSettingEveryOtherSiteIsRefused) {
  const OriginPolicy none = policy("");
  EXPECT_EQ(none.judge("https://evil.example", "127.0.0.1:3000"), OriginVerdict::refused);
  EXPECT_EQ(none.judge("null", "127.0.0.1:3000"), OriginVerdict::refused);
  EXPECT_EQ(none.judge("garbage", "127.0.0.1:3000"), OriginVerdict::refused);
  EXPECT_EQ(none.judge("http://127.0.0.1:3001", "127.0.0.1:3000"), OriginVerdict::refused) << "another port";
  EXPECT_EQ(none.judge("http://127.0.0.1:3000", ""), OriginVerdict::refused) << "no Host header";
}

TEST(OriginPolicyJudge, SameOriginIsTheHostTheRequestWentTo) {
  const OriginPolicy none = policy("");
  EXPECT_EQ(none.judge("http://127.0.0.1:3000", "127.0.0.1:3000"), OriginVerdict::same_origin);
  EXPECT_EQ(none.judge("https://App.Example.com", "app.example.com"), OriginVerdict::same_origin);
  EXPECT_EQ(none.judge("https://app.example.com", "app.example.com:443"), OriginVerdict::same_origin);
  EXPECT_EQ(none.judge("http://[::1]:3000", "[::1]:3000"), OriginVerdict::same_origin);
  EXPECT_EQ(none.judge("https://app.example.com.evil.example", "app.example.com"), OriginVerdict::refused);
}

TEST(OriginPolicyJudge, ListedOriginsMatchExactly) {
  const OriginPolicy listed = policy("https://app.example.com,http://localhost:5173");
  EXPECT_EQ(listed.judge("https://app.example.com", "api.example.com"), OriginVerdict::listed);
  EXPECT_EQ(listed.judge("http://localhost:5173", "127.0.0.1:3000"), OriginVerdict::listed);
  EXPECT_EQ(listed.judge("http://app.example.com", "api.example.com"), OriginVerdict::refused) << "scheme";
  EXPECT_EQ(listed.judge("https://app.example.com:8443", "api.example.com"), OriginVerdict::refused) << "port";
  EXPECT_EQ(listed.judge("https://evil.app.example.com", "api.example.com"), OriginVerdict::refused);
  EXPECT_EQ(listed.judge("https://app.example.com.evil.example", "api.example.com"), OriginVerdict::refused);
  EXPECT_EQ(listed.judge("http://localhost:5174", "127.0.0.1:3000"), OriginVerdict::refused);
}

TEST(OriginPolicyJudge, StarAllowsAnySite) {
  EXPECT_EQ(policy("*").judge("https://anything.example", "127.0.0.1:3000"), OriginVerdict::any);
}

}  // namespace
}  // namespace phasekit::net
