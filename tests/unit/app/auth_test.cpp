#include "phasekit/app/auth.hpp"

#include <gtest/gtest.h>

namespace phasekit::app {
namespace {

using std::chrono::system_clock;
const std::string kSecret = "0123456789abcdef0123456789abcdef";
const TokenRules kRules = [] {
  TokenRules r;
  r.secret = kSecret;
  return r;
}();
const auto kNow = system_clock::time_point(std::chrono::seconds(1'800'000'000));

TEST(Auth, SignedTokenVerifiesToItsUser) {
  Identity id;
  const Status s = verify_token(sign_token("alice", 1'800'000'100, kSecret), kRules, kNow, id);
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
  EXPECT_TRUE(verify_token(mine, kRules, kNow, id).ok());
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
    const Status s = verify_token(c.token, kRules, kNow, id);
    EXPECT_EQ(s.code(), Code::unauthorized) << c.what;
    EXPECT_EQ(s.message(), c.message) << c.what;
    EXPECT_TRUE(id.user_id.empty()) << c.what;
  }
}

// Finding 7: a header whose alg is not a string made json::value() throw inside the CONNECT handler,
// and the client waited for an answer that never came. Every such header is now a refusal.
TEST(Auth, HeadersOfTheWrongShapeAreRefusedNotThrown) {
  const std::string payload = R"({"sub":"alice","exp":1800000100})";
  const std::vector<std::pair<std::string, const char*>> cases{
      {R"({"alg":1})", "unsupported token: alg must be HS256"},
      {R"({"alg":null})", "unsupported token: alg must be HS256"},
      {R"({"alg":["HS256"]})", "unsupported token: alg must be HS256"},
      {R"({"alg":{"x":1}})", "unsupported token: alg must be HS256"},
      {R"({"typ":"JWT"})", "unsupported token: alg must be HS256"},
      {R"(["HS256"])", "malformed token: header is not a JSON object"},
      {R"("HS256")", "malformed token: header is not a JSON object"},
      {R"({"alg":"HS256","crit":["exp"]})", "unsupported token: crit header"},
  };
  for (const auto& [header, message] : cases) {
    Identity id;
    Status s;
    EXPECT_NO_THROW(s = verify_token(sign_jwt(header, payload, kSecret), kRules, kNow, id)) << header;
    EXPECT_EQ(s.code(), Code::unauthorized) << header;
    EXPECT_EQ(s.message(), message) << header;
  }
}

TEST(Auth, ClaimsOfTheWrongTypeAreRefusedNotThrown) {
  const std::string header = R"({"alg":"HS256"})";
  const std::vector<std::pair<std::string, const char*>> cases{
      {R"({"sub":1,"exp":1800000100})", "token has no valid sub (user id)"},
      {R"({"sub":"a","exp":"1800000100"})", "token exp is not a whole number of seconds since the epoch"},
      {R"({"sub":"a","exp":1.8e9})", "token exp is not a whole number of seconds since the epoch"},
      {R"({"sub":"a","exp":18446744073709551615})", "token exp is not a whole number of seconds since the epoch"},
      {R"({"sub":"a"})", "token has no exp"},
      {R"({"sub":"a","exp":1800000100,"nbf":"soon"})", "token nbf is not a whole number of seconds since the epoch"},
      {R"({"sub":"a","exp":1800000100,"iat":[1]})", "token iat is not a whole number of seconds since the epoch"},
      {R"([1,2])", "malformed token: payload is not a JSON object"},
  };
  for (const auto& [payload, message] : cases) {
    Identity id;
    Status s;
    EXPECT_NO_THROW(s = verify_token(sign_jwt(header, payload, kSecret), kRules, kNow, id)) << payload;
    EXPECT_EQ(s.message(), message) << payload;
  }
}

TEST(Auth, NotBeforeAndIssuedAtInTheFutureAreRefusedWithinTheLeeway) {
  const auto token = [](std::string_view claims) {
    return sign_jwt(R"({"alg":"HS256"})", R"({"sub":"a","exp":1800000100,)" + std::string(claims) + "}", kSecret);
  };
  Identity id;
  EXPECT_EQ(verify_token(token(R"("nbf":1800000001)"), kRules, kNow, id).message(), "token not valid yet (nbf)");
  EXPECT_TRUE(verify_token(token(R"("nbf":1800000000)"), kRules, kNow, id).ok());
  EXPECT_EQ(verify_token(token(R"("iat":1800000001)"), kRules, kNow, id).message(),
            "token issued in the future (iat)");
  TokenRules lenient = kRules;
  lenient.leeway = std::chrono::seconds(30);
  EXPECT_TRUE(verify_token(token(R"("nbf":1800000030)"), lenient, kNow, id).ok());
  EXPECT_FALSE(verify_token(token(R"("nbf":1800000031)"), lenient, kNow, id).ok());
  // The leeway also forgives an exp that just passed, and no more.
  EXPECT_TRUE(verify_token(sign_token("a", 1'799'999'971, kSecret), lenient, kNow, id).ok());
  EXPECT_EQ(verify_token(sign_token("a", 1'799'999'970, kSecret), lenient, kNow, id).message(), "token expired");
}

TEST(Auth, IssuerAndAudienceAreCheckedWhenConfigured) {
  TokenRules rules = kRules;
  rules.issuer = "https://login.example";
  rules.audience = "phasekit";
  const auto token = [](std::string_view claims) {
    return sign_jwt(R"({"alg":"HS256"})", R"({"sub":"a","exp":1800000100)" + std::string(claims) + "}", kSecret);
  };
  Identity id;
  EXPECT_TRUE(verify_token(token(R"(,"iss":"https://login.example","aud":"phasekit")"), rules, kNow, id).ok());
  EXPECT_TRUE(
      verify_token(token(R"(,"iss":"https://login.example","aud":["other","phasekit"])"), rules, kNow, id).ok());
  EXPECT_EQ(verify_token(token(R"(,"aud":"phasekit")"), rules, kNow, id).message(),
            "token iss is not the expected issuer");
  EXPECT_EQ(verify_token(token(R"(,"iss":"https://evil.example","aud":"phasekit")"), rules, kNow, id).message(),
            "token iss is not the expected issuer");
  EXPECT_EQ(verify_token(token(R"(,"iss":"https://login.example","aud":"billing")"), rules, kNow, id).message(),
            "token aud does not name this service");
  EXPECT_EQ(verify_token(token(R"(,"iss":"https://login.example","aud":[1,{"a":"phasekit"}])"), rules, kNow, id)
                .message(),
            "token aud does not name this service");
  EXPECT_EQ(verify_token(token(R"(,"iss":"https://login.example")"), rules, kNow, id).message(),
            "token aud does not name this service");
  // Not configured: the claims are not looked at.
  EXPECT_TRUE(verify_token(token(R"(,"iss":7,"aud":false)"), kRules, kNow, id).ok());
}

TEST(Auth, MaximumLifetimeCapsHowFarAheadExpMayBe) {
  TokenRules rules = kRules;
  rules.max_lifetime = std::chrono::seconds(3600);
  Identity id;
  EXPECT_TRUE(verify_token(sign_token("a", 1'800'003'600, kSecret), rules, kNow, id).ok());
  EXPECT_EQ(verify_token(sign_token("a", 1'800'003'601, kSecret), rules, kNow, id).message(),
            "token lifetime over the maximum of 3600 s");
  // A token valid for ten years is refused whatever it says about itself.
  EXPECT_FALSE(verify_token(sign_token("a", 2'115'000'000, kSecret), rules, kNow, id).ok());
  // iat + max bounds exp too: a token issued long ago for a long time.
  const std::string old = sign_jwt(R"({"alg":"HS256"})", R"({"sub":"a","iat":1799990000,"exp":1800000100})", kSecret);
  EXPECT_EQ(verify_token(old, rules, kNow, id).message(), "token lifetime over the maximum of 3600 s");
  EXPECT_TRUE(verify_token(old, kRules, kNow, id).ok()) << "no cap configured";
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
