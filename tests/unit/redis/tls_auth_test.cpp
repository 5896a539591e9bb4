// Finding 10: Redis with credentials. AUTH with an ACL user and its password, and TLS (rediss://) with
// the server's certificate verified, against a real redis-server started with --tls-port and --user.
// The certificates are made here by the openssl command line: a CA, a server certificate for the name
// "localhost" only, a client certificate (redis' tls-auth-clients defaults to yes), and an impostor CA.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "redis_test_util.hpp"

namespace phasekit::redis {
namespace {

using namespace std::chrono_literals;
using testing::CaptureLogger;
using testing::IoThreads;
using testing::options_for;
using testing::Result;
using testing::run;
using testing::wait_until;
using test::RedisServer;
namespace fs = std::filesystem;

/// The ACL user the server knows: app / app-pw, limited to keys app:*.
const std::vector<std::string> kAclUser{"--user", "app", "on", ">app-pw", "~app:*", "+@all"};

class Pki {
 public:
  Pki() {
    dir_ = fs::temp_directory_path() / ("phasekit-pki-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "server.ext") << "subjectAltName=DNS:localhost\n";
    std::ofstream(dir_ / "client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string d = dir_.string();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd '" + d + "'; " +
        "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=phasekit-test-ca; " +
        "openssl req -x509 " + key + " -keyout impostor.key -out impostor.pem -days 2 -subj /CN=impostor; " +
        "openssl req " + key + " -keyout server.key -out server.csr -subj /CN=localhost; " +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile server.ext; " +
        "openssl req " + key + " -keyout client.key -out client.csr -subj /CN=phasekit; " +
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 "
        "-extfile client.ext; " +
        "chmod 0644 *.key";
    ok_ = std::system(("(" + script + ") >'" + d + "/openssl.log' 2>&1").c_str()) == 0;
  }
  ~Pki() { fs::remove_all(dir_); }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string file(const char* name) const { return (dir_ / name).string(); }
  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ / "openssl.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  fs::path dir_;
  bool ok_ = false;
};

std::vector<std::string> tls_server_args(const Pki& pki, int tls_port) {
  std::vector<std::string> args{"--tls-port",         std::to_string(tls_port), "--tls-cert-file",
                                pki.file("server.pem"), "--tls-key-file",          pki.file("server.key"),
                                "--tls-ca-cert-file", pki.file("ca.pem"),       "--requirepass",
                                "default-pw"};
  args.insert(args.end(), kAclUser.begin(), kAclUser.end());
  return args;
}

TEST(RedisAcl, AnAclUserLogsInWithItsPasswordAndIsHeldToItsKeys) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  std::vector<std::string> args{"--requirepass", "default-pw"};
  args.insert(args.end(), kAclUser.begin(), kAclUser.end());
  RedisServer server(args);
  IoThreads io;
  CaptureLogger log;
  const std::string where = "127.0.0.1:" + std::to_string(server.port());
  auto app = testing::connected_client(io, options_for("redis://app:app-pw@" + where), log);
  EXPECT_EQ(run(*app, {"SET", "app:k", "v"}).reply, Reply::status("OK"));
  const Result other = run(*app, {"GET", "not-app:k"});
  ASSERT_TRUE(other.reply.is_error());
  EXPECT_NE(other.reply.str().find("NOPERM"), std::string::npos) << other.reply.str();

  auto wrong = Client::create(io.executor(), options_for("redis://app:not-the-pw@" + where), log);
  wrong->start();
  ASSERT_TRUE(wait_until([&] { return log.contains("WRONGPASS"); })) << log.all();
  const Result r = run(*wrong, {"GET", "app:k"});
  EXPECT_EQ(r.status.code(), Code::unavailable);
  // One line naming the server, never the password.
  EXPECT_NE(r.status.message().find("redis at " + where + " refused the handshake: WRONGPASS"), std::string::npos)
      << r.status.message();
  wrong->stop();
  app->stop();
  EXPECT_EQ(log.all().find("not-the-pw"), std::string::npos);
  EXPECT_EQ(log.all().find("app-pw"), std::string::npos);
}

TEST(RedisTls, RedissWithAClientCertificateAndAnAclUserWorks) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  const Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.log();
  const int tls_port = test::free_loopback_port();
  RedisServer server(tls_server_args(pki, tls_port));
  IoThreads io;
  CaptureLogger log;
  const std::string url = "rediss://app:app-pw@localhost:" + std::to_string(tls_port) + "/3?ssl_ca_certs=" +
                          pki.file("ca.pem") + "&ssl_certfile=" + pki.file("client.pem") +
                          "&ssl_keyfile=" + pki.file("client.key");
  auto client = testing::connected_client(io, options_for(url), log);
  ASSERT_TRUE(client->connected()) << log.all() << server.log();
  EXPECT_EQ(run(*client, {"SET", "app:k", std::string(200000, 'x')}).reply, Reply::status("OK"));
  const Result got = run(*client, {"GET", "app:k"});
  EXPECT_EQ(got.reply, Reply::string(std::string(200000, 'x'))) << "large values cross many TLS records";
  // Many commands in flight from several threads over the one TLS stream.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (run(*client, {"INCR", "app:n" + std::to_string(t)}).reply.is_integer()) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(ok.load(), 200);
  EXPECT_NE(run(*client, {"CLIENT", "INFO"}).reply.str().find("db=3"), std::string::npos);

  // Reconnects through TLS and AUTH again after the server restarts.
  server.restart();
  ASSERT_TRUE(wait_until([&] { return client->connected(); }, 15s)) << log.all();
  EXPECT_EQ(run(*client, {"SET", "app:after", "1"}).reply, Reply::status("OK"));
  client->stop();
  EXPECT_EQ(log.all().find("app-pw"), std::string::npos);
}

TEST(RedisTls, AServerThatCannotProveItsNameIsRefused) {
  PHASEKIT_REQUIRE_REDIS_SERVER();
  const Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.log();
  const int tls_port = test::free_loopback_port();
  RedisServer server(tls_server_args(pki, tls_port));
  IoThreads io;
  CaptureLogger log;
  const std::string client_cert =
      "&ssl_certfile=" + pki.file("client.pem") + "&ssl_keyfile=" + pki.file("client.key");
  const std::string port = std::to_string(tls_port);
  struct Case {
    const char* what;
    std::string url;
  };
  const std::vector<Case> cases{
      {"a CA we do not trust", "rediss://app:app-pw@localhost:" + port + "?ssl_ca_certs=" + pki.file("impostor.pem") +
                                   client_cert},
      {"a certificate for another name (localhost, not 127.0.0.1)",
       "rediss://app:app-pw@127.0.0.1:" + port + "?ssl_ca_certs=" + pki.file("ca.pem") + client_cert},
  };
  for (const Case& c : cases) {
    CaptureLogger case_log;
    auto client = Client::create(io.executor(), options_for(c.url), case_log);
    client->start();
    ASSERT_TRUE(wait_until([&] { return case_log.contains("certificate verify failed"); }))
        << c.what << "\n" << case_log.all();
    const Result r = run(*client, {"GET", "app:k"});
    EXPECT_EQ(r.status.code(), Code::unavailable) << c.what;
    EXPECT_NE(r.status.message().find("TLS handshake with"), std::string::npos) << r.status.message();
    EXPECT_FALSE(client->connected()) << c.what;
    client->stop();
  }
  // Without a client certificate the server (tls-auth-clients yes) refuses us; and a missing CA file is
  // a clear error, not a connection without verification.
  auto no_cert = Client::create(
      io.executor(), options_for("rediss://app:app-pw@localhost:" + port + "?ssl_ca_certs=" + pki.file("ca.pem")), log);
  no_cert->start();
  auto no_ca = Client::create(
      io.executor(), options_for("rediss://app:app-pw@localhost:" + port + "?ssl_ca_certs=/nonexistent/ca.pem"), log);
  no_ca->start();
  ASSERT_TRUE(wait_until([&] { return log.contains("cannot load the CA certificates /nonexistent/ca.pem"); }))
      << log.all();
  const Result refused = run(*no_cert, {"PING"});
  EXPECT_EQ(refused.status.code(), Code::unavailable);
  EXPECT_FALSE(no_cert->connected());
  no_cert->stop();
  no_ca->stop();
  EXPECT_EQ(log.all().find("app-pw"), std::string::npos);
}

}  // namespace
}  // namespace phasekit::redis
