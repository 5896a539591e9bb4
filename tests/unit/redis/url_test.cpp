#include "phasekit/redis/url.hpp"

#include <gtest/gtest.h>

namespace phasekit::redis {
namespace {

struct Good {
  const char* url;
  const char* host;
  int port;
  const char* unix_path;
  int db;
  const char* user;
  const char* password;
};

class RedisUrlGood : public ::testing::TestWithParam<Good> {};

TEST_P(RedisUrlGood, Parses) {
  const Good& g = GetParam();
  Endpoint e;
  const Status s = parse_url(g.url, e);
  ASSERT_TRUE(s.ok()) << g.url << ": " << s.message();
  EXPECT_EQ(e.host, g.host);
  EXPECT_EQ(e.port, g.port);
  EXPECT_EQ(e.unix_path, g.unix_path);
  EXPECT_EQ(e.db, g.db);
  EXPECT_EQ(e.user, g.user);
  EXPECT_EQ(e.password.reveal(), g.password);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RedisUrlGood,
    ::testing::Values(Good{"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", 0, "", ""},
                      Good{"redis://localhost", "localhost", 6379, "", 0, "", ""},
                      Good{"redis://redis.internal:6380/2", "redis.internal", 6380, "", 2, "", ""},
                      Good{"redis://h/", "h", 6379, "", 0, "", ""},
                      Good{"redis://:s3cret@h", "h", 6379, "", 0, "", "s3cret"},
                      Good{"redis://s3cret@h:7000", "h", 7000, "", 0, "", "s3cret"},
                      Good{"redis://app:pa%40ss%3Aw@h:1/3", "h", 1, "", 3, "app", "pa@ss:w"},
                      Good{"redis://app:p@ss@h", "h", 6379, "", 0, "app", "p@ss"},
                      Good{"redis://[::1]:6380/1", "::1", 6380, "", 1, "", ""},
                      Good{"redis://[::1]", "::1", 6379, "", 0, "", ""},
                      Good{"redis://h:65535/100000", "h", 65535, "", 100000, "", ""},
                      Good{"unix:///run/redis.sock", "", 6379, "/run/redis.sock", 0, "", ""},
                      Good{"unix:///tmp/r.sock?db=4", "", 6379, "/tmp/r.sock", 4, "", ""},
                      Good{"unix://:pw@/tmp/r.sock?db=1", "", 6379, "/tmp/r.sock", 1, "", "pw"},
                      Good{"unix://u:pw@/tmp/r.sock", "", 6379, "/tmp/r.sock", 0, "u", "pw"}));

struct Bad {
  const char* url;
  const char* says;  // a part of the message
};

class RedisUrlBad : public ::testing::TestWithParam<Bad> {};

TEST_P(RedisUrlBad, IsRefusedNamingTheProblemWithoutThePassword) {
  const Bad& b = GetParam();
  Endpoint e;
  e.host = "left over";
  const Status s = parse_url(b.url, e);
  ASSERT_FALSE(s.ok()) << b.url;
  EXPECT_EQ(s.code(), Code::bad_request);
  EXPECT_NE(s.message().find(b.says), std::string::npos) << b.url << " → " << s.message();
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
  EXPECT_TRUE(e.host.empty()) << "a refused URL leaves an empty endpoint";
  EXPECT_TRUE(e.password.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, RedisUrlBad,
    ::testing::Values(Bad{"", "empty"}, Bad{"127.0.0.1:6379", "missing scheme"},
                      Bad{"redis://h:0", "port '0' is not a number in 1..65535"},
                      Bad{"redis://h:65536", "port '65536'"}, Bad{"redis://h:abc", "port 'abc'"},
                      Bad{"redis://h:", "port ''"}, Bad{"redis://h:63 79", "port '63 79'"},
                      Bad{"redis://h/x", "database 'x'"}, Bad{"redis://h/-1", "database '-1'"},
                      Bad{"redis://h/100001", "database '100001'"}, Bad{"redis://", "missing host"},
                      Bad{"redis://:hunter2@:6379", "missing host"}, Bad{"redis://:hunter2@/0", "missing host"},
                      Bad{"http://h:80", "unknown scheme 'http'"},
                      Bad{"rediss://h:6380?ssl_cert_reqs=none", "unknown query parameter 'ssl_cert_reqs'"},
                      Bad{"rediss://u:hunter2@h?ssl_ca_certs=ca.pem", "ssl_ca_certs must be an absolute path"},
                      Bad{"rediss://h?ssl_ca_certs", "ssl_ca_certs must be an absolute path"},
                      Bad{"rediss://h?ssl_certfile=/c.pem", "ssl_certfile and ssl_keyfile go together"},
                      Bad{"rediss://h?ssl_keyfile=/k.pem", "ssl_certfile and ssl_keyfile go together"},
                      Bad{"rediss://h?ssl_ca_certs=/a%zz", "ssl_ca_certs must be an absolute path"},
                      Bad{"redis://h?ssl_ca_certs=/ca.pem", "query strings are not supported in redis:// URLs"},
                      Bad{"redis://u:hunter2@h:99999", "port '99999'"},
                      Bad{"redis://u:hunter2%zz@h", "percent-encoding in the password"},
                      Bad{"redis://user:@h", "needs a password"}, Bad{"redis://h?db=1", "query strings"},
                      Bad{"redis://::1:6379", "brackets"}, Bad{"redis://[::1:6379", "closing ']'"},
                      Bad{"redis://ho st:1", "not allowed in a host name"},
                      Bad{"unix://relative.sock", "absolute path"}, Bad{"unix://", "absolute path"},
                      Bad{"unix:///tmp/r.sock?db=x", "database 'x'"},
                      Bad{"unix:///tmp/r.sock?password=hunter2", "unknown query parameter 'password'"}));

TEST(RedisUrl, RedissIsTlsWithItsFiles) {
  Endpoint e;
  ASSERT_TRUE(parse_url("rediss://app:pw@redis.internal:6380/2", e).ok());
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "redis.internal");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.db, 2);
  EXPECT_EQ(e.user, "app");
  EXPECT_EQ(e.password.reveal(), "pw");
  EXPECT_TRUE(e.tls_ca_file.empty()) << "the system's CAs";
  ASSERT_TRUE(parse_url("rediss://:pw@h/1?ssl_ca_certs=/etc/redis/ca%20dir/ca.pem&ssl_certfile=/c.pem&"
                        "ssl_keyfile=/k.pem",
                        e)
                  .ok());
  EXPECT_EQ(e.tls_ca_file, "/etc/redis/ca dir/ca.pem");
  EXPECT_EQ(e.tls_cert_file, "/c.pem");
  EXPECT_EQ(e.tls_key_file, "/k.pem");
  EXPECT_EQ(e.db, 1);
  ASSERT_TRUE(parse_url("redis://h", e).ok());
  EXPECT_FALSE(e.tls);
}

TEST(RedisUrl, DisplayHasNoCredentials) {
  Endpoint e;
  ASSERT_TRUE(parse_url("redis://app:hunter2@[::1]:6380/2", e).ok());
  EXPECT_EQ(e.display(), "[::1]:6380");
  ASSERT_TRUE(parse_url("redis://:hunter2@127.0.0.1", e).ok());
  EXPECT_EQ(e.display(), "127.0.0.1:6379");
  ASSERT_TRUE(parse_url("unix:///run/redis.sock", e).ok());
  EXPECT_EQ(e.display(), "unix:/run/redis.sock");
}

}  // namespace
}  // namespace phasekit::redis
