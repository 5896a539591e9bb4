#include "file_tools.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace phasekit::app {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

class FileTools : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("phasekit-files-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "ws" / "sub");
    fs::create_directories(base_ / "outside");
    std::ofstream(base_ / "outside" / "secret.txt") << "top secret";
    std::ofstream(base_ / "ws" / "hello.txt") << "hello\n";
    fs::create_symlink(base_ / "outside" / "secret.txt", base_ / "ws" / "escape");
    fs::create_symlink("../outside", base_ / "ws" / "escape_dir");
    fs::create_symlink("hello.txt", base_ / "ws" / "inside_link");
    ctx_.workspace = (base_ / "ws").string();
    ctx_.max_output_bytes = 1000;
  }
  void TearDown() override { fs::remove_all(base_); }

  fs::path base_;
  FileToolContext ctx_;
};

TEST_F(FileTools, ReadWriteAndListInsideTheWorkspace) {
  FileToolResult out;
  ASSERT_TRUE(write_file(ctx_, json{{"path", "sub/new.txt"}, {"content", "data"}}, out).ok());
  EXPECT_EQ(out.output["bytesWritten"], 4);
  ASSERT_TRUE(write_file(ctx_, json{{"path", "sub/new.txt"}, {"content", "+more"}, {"append", true}}, out).ok());
  ASSERT_TRUE(read_file(ctx_, json{{"path", "sub/new.txt"}}, out).ok());
  EXPECT_EQ(out.output["content"], "data+more");
  EXPECT_EQ(out.output["encoding"], "utf8");
  ASSERT_TRUE(list_dir(ctx_, json{{"path", "sub"}}, out).ok());
  ASSERT_EQ(out.output["entries"].size(), 1u);
  EXPECT_EQ(out.output["entries"][0], (json{{"name", "new.txt"}, {"type", "file"}, {"size", 9}}));
  ASSERT_TRUE(list_dir(ctx_, json::object(), out).ok());
  std::vector<std::string> names;
  for (const auto& e : out.output["entries"]) {
    names.push_back(e["name"]);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"escape", "escape_dir", "hello.txt", "inside_link", "sub"}));
}

TEST_F(FileTools, BinaryContentTravelsAsBase64BothWays) {
  FileToolResult out;
  ASSERT_TRUE(write_file(ctx_, json{{"path", "bin"}, {"content", "AP8Q"}, {"encoding", "base64"}}, out).ok());
  EXPECT_EQ(out.output["bytesWritten"], 3);
  ASSERT_TRUE(read_file(ctx_, json{{"path", "bin"}}, out).ok());
  EXPECT_EQ(out.output["encoding"], "base64");
  EXPECT_EQ(out.output["content"], "AP8Q");
  EXPECT_EQ(write_file(ctx_, json{{"path", "bin"}, {"content", "A=P8"}, {"encoding", "base64"}}, out).code(),
            Code::bad_request);
}

TEST_F(FileTools, ReadsAreCappedAndSaySo) {
  std::ofstream(base_ / "ws" / "big") << std::string(5000, 'x');
  FileToolResult out;
  ASSERT_TRUE(read_file(ctx_, json{{"path", "big"}}, out).ok());
  EXPECT_EQ(out.output["content"].get<std::string>().size(), 1000u);
  EXPECT_TRUE(out.truncated);
  EXPECT_EQ(out.output["size"], 5000);
}

TEST_F(FileTools, EveryWayOutIsRefused) {
  struct Case {
    const char* tool;
    json args;
    Code code;
  };
  const std::vector<Case> cases{
      {"read", json{{"path", "../outside/secret.txt"}}, Code::bad_request},
      {"read", json{{"path", "sub/../../outside/secret.txt"}}, Code::bad_request},
      {"read", json{{"path", (base_ / "outside" / "secret.txt").string()}}, Code::bad_request},
      {"read", json{{"path", "escape"}}, Code::bad_request},
      {"read", json{{"path", "escape_dir/secret.txt"}}, Code::bad_request},
      {"write", json{{"path", "escape_dir/planted"}, {"content", "x"}}, Code::bad_request},
      {"write", json{{"path", "escape"}, {"content", "x"}}, Code::bad_request},
      {"list", json{{"path", "escape_dir"}}, Code::bad_request},
      {"list", json{{"path", "/"}}, Code::bad_request},
      {"read", json{{"path", std::string("a\0b", 3)}}, Code::bad_request},
      {"read", json{{"path", ""}}, Code::bad_request},
      {"read", json{{"path", 5}}, Code::bad_request},
      {"read", json::array(), Code::bad_request},
      {"read", json{{"path", "missing.txt"}}, Code::not_found},
      {"read", json{{"path", "sub"}}, Code::bad_request},
      {"write", json{{"path", "nodir/x"}, {"content", "x"}}, Code::not_found},
      {"write", json{{"path", "x"}}, Code::bad_request},
  };
  for (const Case& c : cases) {
    FileToolResult out;
    const std::string tool = c.tool;
    const Status s = tool == "read" ? read_file(ctx_, c.args, out)
                     : tool == "write" ? write_file(ctx_, c.args, out)
                                       : list_dir(ctx_, c.args, out);
    EXPECT_EQ(s.code(), c.code) << tool << " " << c.args.dump() << ": " << s.message();
  }
  EXPECT_FALSE(fs::exists(base_ / "outside" / "planted"));
  std::ifstream secret(base_ / "outside" / "secret.txt");
  std::string text;
  std::getline(secret, text);
  EXPECT_EQ(text, "top secret") << "writing through a symlink must not reach outside";
}

// Finding 8: a workspace replaced by a symlink to a root-only folder had this process (root) read a 0600
// root file there and create files in a 0700 root folder.
TEST_F(FileTools, AWorkspaceSwappedForASymlinkIsNotFollowed) {
  fs::create_directories(base_ / "root-only");
  fs::permissions(base_ / "root-only", fs::perms::owner_all);
  std::ofstream(base_ / "root-only" / "shadow") << "root:secret";
  fs::permissions(base_ / "root-only" / "shadow", fs::perms::owner_read | fs::perms::owner_write);
  fs::create_symlink(base_ / "root-only", base_ / "swapped");
  FileToolContext swapped = ctx_;
  swapped.workspace = (base_ / "swapped").string();
  FileToolResult out;
  const Status read = read_file(swapped, json{{"path", "shadow"}}, out);
  EXPECT_FALSE(read.ok());
  EXPECT_EQ(out.output.dump().find("root:secret"), std::string::npos);
  EXPECT_FALSE(write_file(swapped, json{{"path", "planted"}, {"content", "x"}}, out).ok());
  EXPECT_FALSE(fs::exists(base_ / "root-only" / "planted"));
  EXPECT_FALSE(list_dir(swapped, json::object(), out).ok());
}

TEST_F(FileTools, SymlinksThatStayInsideWork) {
  FileToolResult out;
  ASSERT_TRUE(read_file(ctx_, json{{"path", "inside_link"}}, out).ok());
  EXPECT_EQ(out.output["content"], "hello\n");
}

}  // namespace
}  // namespace phasekit::app
