#include "app/auth.hpp"

#include <gtest/gtest.h>

namespace phasekit::app {
namespace {

using std::chrono::system_clock;
const std::string kSecret = "0123456789abcdef0123456789abcdef";
const auto kNow = system_clock::time_point(std::chrono::seconds(1'800'000'000));

TEST(Auth, SignedTokenVerifiesToItsUser) {
  Identity id;
  const Status s = verify_token(sign_token("alice", 1'800'000'100, kSecret), kSecret, kNow, id);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(id.user_id, "alice");
  EXPECT_EQ(id.expires_unix, 1'800'000'100);
}

TEST(Auth, TokenFromAStandardJwtLibraryVerifies) {
  // HS256 JWT for {"sub":"bob","exp":1900000000} with kSecret, as jsonwebtoken (Node) produces it.
  const std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload = base64url_encode(R"({"sub":"bob","exp":1900000000,"iat":1})");
  const std::string mine = sign_token("bob", 1900000000, kSecret);
  Identity id;
  EXPECT_TRUE(verify_token(mine, kSecret, kNow, id).ok());
  EXPECT_EQ(mine.substr(0, header.size()), header);
}

struct Bad {
  const char* what;
  std::string token;
  const char* message;
};

TEST(Auth, BadTokensAreRefusedWithAClearReason) {
  const std::string good = sign_token("alice", 1'800'000'100, kSecret);
  const std::string header = good.substr(0, good.find('.'));
  const std::string none_header = base64url_encode(R"({"alg":"none","typ":"JWT"})");
  const std::string body = good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1);
  const std::vector<Bad> cases{
      {"empty", "", "missing token: connect with auth {token}"},
      {"two parts", "a.b", "malformed token: expected header.payload.signature"},
      {"four parts", "a.b.c.d", "malformed token: expected header.payload.signature"},
      {"bad base64", "a!.b.c", "malformed token: bad base64url"},
      {"alg none", none_header + "." + body + ".", "unsupported token: alg must be HS256"},
      {"other secret", sign_token("alice", 1'800'000'100, "another-secret-another-secret-123"), "bad token signature"},
      {"tampered payload",
       header + "." + base64url_encode(R"({"sub":"mallory","exp":1800000100})") + good.substr(good.rfind('.')),
       "bad token signature"},
      {"expired", sign_token("alice", 1'799'999'999, kSecret), "token expired"},
      {"bad user id", sign_token("a b", 1'800'000'100, kSecret), "token has no valid sub (user id)"},
      {"huge", std::string(9000, 'a'), "token too long"},
  };
  for (const Bad& c : cases) {
    Identity id;
    const Status s = verify_token(c.token, kSecret, kNow, id);
    EXPECT_EQ(s.code(), Code::unauthorized) << c.what;
    EXPECT_EQ(s.message(), c.message) << c.what;
    EXPECT_TRUE(id.user_id.empty()) << c.what;
  }
}

TEST(Auth, Base64UrlRoundTripsAndRejectsJunk) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\xfe", 3)}) {
    std::string back;
    ASSERT_TRUE(base64url_decode(base64url_encode(s), back)) << s;
    EXPECT_EQ(back, s);
  }
  std::string out;
  EXPECT_FALSE(base64url_decode("a", out));
  EXPECT_FALSE(base64url_decode("ab+c", out));
  EXPECT_FALSE(base64url_decode("ab=c", out));
  EXPECT_FALSE(base64url_decode("Zh", out)) << "non-zero leftover bits are not canonical";
}

TEST(Auth, UserIds) {
  EXPECT_TRUE(valid_user_id("alice@example.com"));
  EXPECT_TRUE(valid_user_id("u-1:2_3.4"));
  EXPECT_FALSE(valid_user_id(""));
  EXPECT_FALSE(valid_user_id("a/b"));
  EXPECT_FALSE(valid_user_id(std::string(129, 'a')));
  EXPECT_FALSE(valid_user_id("new\nline"));
}

}  // namespace
}  // namespace phasekit::app
