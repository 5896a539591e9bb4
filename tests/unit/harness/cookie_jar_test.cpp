// The virtual user's cookie jar (harness/src/client/cookie_jar.*): Set-Cookie read as a browser
// reads it, what a later request gets back, expiry, the bounds, and malformed headers ignored
// without a throw.
#include "client/cookie_jar.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace phasekit::load {
namespace {

using namespace std::chrono_literals;

const WallClock::time_point kNow = WallClock::time_point(std::chrono::seconds(1'800'000'000));

CookieUrl url(std::string_view host, std::string_view path = "/socket.io/", bool secure = false) {
  return CookieUrl{host, path, secure};
}

TEST(LoadCookieJar, SendsBackWhatTheServerSet) {
  CookieJar jar;
  EXPECT_TRUE(jar.store("sid=abc", url("127.0.0.1"), kNow));
  EXPECT_TRUE(jar.store("  lb = x=y ; Path=/", url("127.0.0.1"), kNow));  // trimmed; '=' in a value stays
  EXPECT_EQ(jar.header(url("127.0.0.1"), kNow), "sid=abc; lb=x=y");
  EXPECT_EQ(jar.header(url("127.0.0.2"), kNow), "");  // another host gets nothing
}

TEST(LoadCookieJar, HaproxysInsertedCookieGoesWithEveryLaterPoll) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("phasekit_lb=4b1a0c2d3e5f6071; path=/; HttpOnly", url("127.0.0.1", "/socket.io/"), kNow));
  EXPECT_EQ(jar.header(url("127.0.0.1", "/socket.io/"), kNow), "phasekit_lb=4b1a0c2d3e5f6071");
  EXPECT_EQ(jar.header(url("127.0.0.1", "/other/"), kNow), "phasekit_lb=4b1a0c2d3e5f6071");
}

TEST(LoadCookieJar, HostOnlyUnlessDomainSaysOtherwise) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("host=1", url("app.example.test"), kNow));
  ASSERT_TRUE(jar.store("dom=2; Domain=.Example.TEST", url("App.Example.test"), kNow));
  EXPECT_EQ(jar.header(url("app.example.test"), kNow), "host=1; dom=2");
  EXPECT_EQ(jar.header(url("example.test"), kNow), "dom=2");
  EXPECT_EQ(jar.header(url("deep.app.example.test"), kNow), "dom=2");  // host-only: not to subdomains
  EXPECT_EQ(jar.header(url("badexample.test"), kNow), "");              // a suffix is not a subdomain
}

TEST(LoadCookieJar, DomainThatDoesNotCoverTheHostIsRefused) {
  CookieJar jar;
  EXPECT_FALSE(jar.store("a=1; Domain=other.test", url("app.example.test"), kNow));
  EXPECT_FALSE(jar.store("a=1; Domain=deeper.app.example.test", url("app.example.test"), kNow));
  EXPECT_FALSE(jar.store("a=1; Domain=0.0.1", url("127.0.0.1"), kNow));  // IP addresses match only whole
  EXPECT_TRUE(jar.store("b=2; Domain=127.0.0.1", url("127.0.0.1"), kNow));
  EXPECT_TRUE(jar.store("c=3; Domain=", url("127.0.0.1"), kNow));  // an empty Domain is ignored: host-only
  EXPECT_EQ(jar.size(), 2u);
  EXPECT_EQ(jar.header(url("127.0.0.1"), kNow), "b=2; c=3");
}

TEST(LoadCookieJar, PathDefaultsToTheRequestsDirectoryAndMatchesWholeSegments) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("dflt=1", url("h", "/socket.io/"), kNow));
  ASSERT_TRUE(jar.store("api=2; Path=/api", url("h", "/socket.io/"), kNow));
  ASSERT_TRUE(jar.store("rel=3; Path=relative", url("h", "/a/b"), kNow));  // not starting with '/': the default
  const auto& cookies = jar.cookies();
  ASSERT_EQ(cookies.size(), 3u);
  EXPECT_EQ(cookies[0].path, "/socket.io");
  EXPECT_EQ(cookies[2].path, "/a");
  EXPECT_EQ(jar.header(url("h", "/socket.io/"), kNow), "dflt=1");
  EXPECT_EQ(jar.header(url("h", "/socket.io"), kNow), "dflt=1");
  EXPECT_EQ(jar.header(url("h", "/socket.iox/"), kNow), "");
  EXPECT_EQ(jar.header(url("h", "/api/v1"), kNow), "api=2");
  EXPECT_EQ(jar.header(url("h", "/apix"), kNow), "");
  EXPECT_EQ(jar.header(url("h", "/"), kNow), "");
}

TEST(LoadCookieJar, LongerPathsFirstThenOlderFirst) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("a=1; Path=/", url("h"), kNow));
  ASSERT_TRUE(jar.store("b=2; Path=/socket.io/", url("h"), kNow));
  ASSERT_TRUE(jar.store("c=3; Path=/", url("h"), kNow));
  ASSERT_TRUE(jar.store("a=4; Path=/", url("h"), kNow));  // replaced: keeps its place
  EXPECT_EQ(jar.header(url("h", "/socket.io/"), kNow), "b=2; a=4; c=3");
  ASSERT_TRUE(jar.store("a=5; Path=/socket.io/", url("h"), kNow));  // same name, another path: a second cookie
  EXPECT_EQ(jar.size(), 4u);
}

TEST(LoadCookieJar, MaxAgeExpiresAndZeroOrLessDeletes) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("short=1; Max-Age=2", url("h"), kNow));
  ASSERT_TRUE(jar.store("keep=1; Max-Age=abc", url("h"), kNow));  // a bad Max-Age is ignored: for the session
  EXPECT_EQ(jar.header(url("h"), kNow + 1s), "short=1; keep=1");
  EXPECT_EQ(jar.header(url("h"), kNow + 2s), "keep=1");
  ASSERT_TRUE(jar.store("keep=gone; Max-Age=0", url("h"), kNow));
  EXPECT_EQ(jar.header(url("h"), kNow), "");
  ASSERT_TRUE(jar.store("x=1", url("h"), kNow));
  ASSERT_TRUE(jar.store("x=1; Max-Age=-5", url("h"), kNow));
  EXPECT_EQ(jar.size(), 0u);
}

TEST(LoadCookieJar, ExpiresInThePastDeletesAndMaxAgeWinsOverIt) {
  CookieJar jar;
  ASSERT_TRUE(jar.store("a=1", url("h"), kNow));
  ASSERT_TRUE(jar.store("a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT", url("h"), kNow));
  EXPECT_EQ(jar.size(), 0u);
  ASSERT_TRUE(jar.store("b=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=100", url("h"), kNow));
  ASSERT_TRUE(jar.store("c=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT", url("h"), kNow));
  ASSERT_TRUE(jar.store("d=1; Expires=not a date", url("h"), kNow));  // ignored: a session cookie
  EXPECT_EQ(jar.header(url("h"), kNow + 50s), "b=1; c=1; d=1");
  EXPECT_EQ(jar.header(url("h"), kNow + 100s), "c=1; d=1");
  // At most 400 days, whatever a cookie asks for (RFC 6265bis).
  EXPECT_EQ(jar.header(url("h"), kNow + std::chrono::hours(24 * 401)), "d=1");
}

TEST(LoadCookieJar, SecureCookiesOnlyOverTls) {
  CookieJar jar;
  EXPECT_FALSE(jar.store("s=1; Secure", url("h", "/", false), kNow));  // a plain-HTTP server cannot set one
  ASSERT_TRUE(jar.store("s=1; Secure; HttpOnly", url("h", "/", true), kNow));
  ASSERT_TRUE(jar.store("p=2", url("h", "/", true), kNow));
  EXPECT_EQ(jar.header(url("h", "/", true), kNow), "s=1; p=2");
  EXPECT_EQ(jar.header(url("h", "/", false), kNow), "p=2");
}

TEST(LoadCookieJar, AtMostFiftyCookiesTheOldestGo) {
  CookieJar jar;
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(jar.store("c" + std::to_string(i) + "=v; Path=/", url("h"), kNow));
  }
  ASSERT_EQ(jar.size(), 50u);
  const std::string header = jar.header(url("h"), kNow);
  EXPECT_EQ(header.find("c9=v"), std::string::npos);
  EXPECT_TRUE(header.starts_with("c10=v; "));
  EXPECT_TRUE(header.ends_with("; c59=v"));
}

TEST(LoadCookieJar, ExpiredCookiesGoBeforeLiveOnesWhenFull) {
  CookieJar jar(CookieJar::Limits{2, 4096, 8192});
  ASSERT_TRUE(jar.store("old=1; Max-Age=1", url("h"), kNow));
  ASSERT_TRUE(jar.store("mid=2", url("h"), kNow));
  ASSERT_TRUE(jar.store("new=3", url("h"), kNow + 5s));
  EXPECT_EQ(jar.header(url("h"), kNow + 5s), "mid=2; new=3");
}

TEST(LoadCookieJar, AtMost4KiBACookie) {
  CookieJar jar;
  EXPECT_TRUE(jar.store("n=" + std::string(4095, 'v'), url("h"), kNow));  // name and value: 4096 bytes
  EXPECT_FALSE(jar.store("m=" + std::string(4096, 'v'), url("h"), kNow));
  EXPECT_FALSE(jar.store("k=v; " + std::string(9000, 'x'), url("h"), kNow));  // the header itself is too long
  EXPECT_EQ(jar.size(), 1u);
}

TEST(LoadCookieJar, MalformedHeadersAreIgnored) {
  CookieJar jar;
  for (const std::string& bad : std::vector<std::string>{"", "novalue", "=value", "  =x", ";", ";;=;", "a=1\r\nSet-Cookie: b=2",
                                std::string("a=\0b", 4), "a=b\x7f", "\xff\xfe=\x01"}) {
    EXPECT_FALSE(jar.store(bad, url("h"), kNow)) << bad;
  }
  EXPECT_EQ(jar.size(), 0u);
  // Attributes that make no sense are ignored, the cookie is kept.
  EXPECT_TRUE(jar.store("a=1; Max-Age; Expires; Domain; Path; =; ;;; Secure=no; X=" + std::string(2000, 'x'),
                        url("h", "/", true), kNow));
  EXPECT_EQ(jar.header(url("h", "/", true), kNow), "a=1");
}

TEST(LoadCookieJar, RandomBytesNeverThrowNorPutLineBreaksInTheHeader) {
  std::mt19937 rng(17);
  const std::string alphabet = std::string("aZ09=; ,.-/:\t\r\n\"") + std::string("\0\x7f\x80\xff", 4);
  CookieJar jar;
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 80, ' ');
    for (char& c : s) {
      c = alphabet[rng() % alphabet.size()];
    }
    const std::vector<std::string> forms{s, "k=" + s, "k=v;" + s, "k=v; Expires=" + s, "k=v; Max-Age=" + s,
                                         "k=v; Domain=" + s, "k=v; Path=" + s};
    for (const std::string& form : forms) {
      EXPECT_NO_THROW(jar.store(form, url("h", "/socket.io/", (i % 2) != 0), kNow));
    }
  }
  const std::string header = jar.header(url("h", "/socket.io/", true), kNow);
  for (char c : header) {
    const auto u = static_cast<unsigned char>(c);
    ASSERT_TRUE((u >= 0x20 && u != 0x7f) || c == '\t') << "control character " << int(u) << " in " << header;  // a field value may hold tabs
  }
  EXPECT_LE(jar.size(), 50u);
}

TEST(LoadCookieDate, ReadsTheFormsBrowsersAccept) {
  const auto at = [](std::string_view text) {
    const auto t = parse_cookie_date(text);
    return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() : -1;
  };
  EXPECT_EQ(at("Wed, 21 Oct 2015 07:28:00 GMT"), 1445412480);  // RFC 1123
  EXPECT_EQ(at("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);  // RFC 850, two-digit year
  EXPECT_EQ(at("Sun Nov  6 08:49:37 1994"), 784111777);        // asctime
  EXPECT_EQ(at("sun, 6 NOVEMBER 1994 8:49:37"), 784111777);    // any case, short fields
  EXPECT_EQ(at("Wed, 21 Oct 2015"), -1);                       // no time
  EXPECT_EQ(at("Mon, 30 Feb 2015 00:00:00 GMT"), -1);          // no such day
  EXPECT_EQ(at("Wed, 21 Oct 1600 07:28:00 GMT"), -1);          // before 1601
  EXPECT_EQ(at("Wed, 21 Oct 2015 24:00:00 GMT"), -1);
  EXPECT_EQ(at("garbage"), -1);
  EXPECT_EQ(at(""), -1);
  EXPECT_TRUE(parse_cookie_date("Fri, 31 Dec 9999 23:59:59 GMT").has_value());  // past a nanosecond clock: held
}

}  // namespace
}  // namespace phasekit::load
