// The pure parts of the docker driver: the attach stream's frame demultiplexer and DOCKER_HOST.
// (The driver against a real dockerd is in tests/plugins/pool_contract_test.cpp.)
#include "phasekit/backend/docker_backend.hpp"

#include <gtest/gtest.h>

namespace phasekit::backend {
namespace {

std::string frame(char stream, std::string_view payload) {
  std::string f{stream, 0, 0, 0};
  const auto n = static_cast<std::uint32_t>(payload.size());
  f.push_back(static_cast<char>(n >> 24));
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  return f + std::string(payload);
}

TEST(DockerDemuxer, JoinsStdoutAndStderrPayloadsWhateverTheReadBoundaries) {
  const std::string wire = frame(1, "hello ") + frame(2, "") + frame(2, "err\n") + frame(1, std::string(70000, 'x'));
  const std::string expected = "hello err\n" + std::string(70000, 'x');
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{8}, std::size_t{9},
                                  std::size_t{4096}, wire.size()}) {
    DockerDemuxer demux;
    std::string out;
    for (std::size_t i = 0; i < wire.size(); i += chunk) {
      demux.feed(std::string_view(wire).substr(i, chunk), out);
    }
    EXPECT_EQ(out, expected) << "chunk " << chunk;
  }
}

TEST(DockerSocketPath, AcceptsOnlyUnixSocketUrls) {
  EXPECT_EQ(docker_socket_path("unix:///var/run/docker.sock"), "/var/run/docker.sock");
  EXPECT_EQ(docker_socket_path("unix://"), "");
  EXPECT_EQ(docker_socket_path("unix://relative.sock"), "");
  EXPECT_EQ(docker_socket_path("tcp://127.0.0.1:2375"), "");
  EXPECT_EQ(docker_socket_path("/var/run/docker.sock"), "");
}

}  // namespace
}  // namespace phasekit::backend
