#include "conversation_corpus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

namespace phasekit::bench {
namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, 107> kWords{"config", "session", "user", "request", "handler", "cache", "buffer", "parser", "client", "server", "queue", "worker", "item", "order", "payment", "report", "metrics", "token", "index", "router", "schema", "store", "event", "account", "invoice", "customer", "product", "cart", "address", "shipment", "refund", "discount", "price", "tax", "currency", "ledger", "balance", "transfer", "webhook", "retry", "backoff", "timeout", "deadline", "lease", "lock", "mutex", "channel", "stream", "chunk", "frame", "packet", "header", "payload", "body", "cookie", "tenant", "region", "zone", "cluster", "node", "shard", "replica", "snapshot", "backup", "migration", "version", "feature", "flag", "rollout", "audit", "policy", "role", "permission", "group", "member", "invite", "profile", "avatar", "image", "thumbnail", "upload", "download", "export", "import", "job", "task", "batch", "cron", "schedule", "trigger", "alert", "notification", "email", "template", "message", "thread", "reply", "comment", "review", "rating", "search", "query", "filter", "cursor", "page", "offset", "limit"};
constexpr std::array<std::string_view, 32> kVerbs{"load", "parse", "handle", "build", "find", "update", "create", "remove", "send", "read", "write", "check", "validate", "normalize", "merge", "split", "encode", "decode", "fetch", "store", "flush", "reset", "retry", "schedule", "cancel", "resolve", "render", "compute", "apply", "emit", "collect", "register"};
constexpr std::array<std::string_view, 8> kProjects{"billing-api", "webshop", "data-pipeline", "chat-bot",
                                                    "inventory",   "auth-service", "scheduler", "analytics"};
constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 10> kCommitVerbs{"Fix", "Add", "Remove", "Refactor", "Update",
                                                        "Handle", "Speed up", "Test", "Document", "Rename"};

enum class Lang { cpp, python, node, go };

struct File {
  std::string path;
  std::size_t lines;
};

class Generator {
 public:
  explicit Generator(const CorpusOptions& o) : rng_(o.seed), options_(o) {}

  std::vector<CorpusEntry> run() {
    std::vector<CorpusEntry> out;
    std::int64_t t = 1735689600000;  // 2025-01-01T00:00:00Z
    for (int s = 0; s < options_.sessions; ++s) {
      new_project();
      t += static_cast<std::int64_t>(below(3600000));
      const int turns = 3 + static_cast<int>(below(38));
      for (int turn = 0; turn < turns; ++turn) {
        t += 2000 + static_cast<std::int64_t>(below(60000));
        conversation_turn(out, t);
      }
    }
    return out;
  }

 private:
  // ---- draws (our own, so the corpus is the same with any standard library) ----
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }
  template <class Array>
  std::string pick(const Array& a) {
    return std::string(a[below(a.size())]);
  }
  std::string hex(int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < digits; ++i) {
      s.push_back(kHex[below(16)]);
    }
    return s;
  }
  std::string word() { return pick(kWords); }
  std::string ident() { return pick(kVerbs) + "_" + word(); }
  std::string camel() {
    std::string v = pick(kVerbs);
    std::string w = word();
    w[0] = static_cast<char>(w[0] - 'a' + 'A');
    return v + w;
  }
  std::string date() {
    return fmt::format("{} {:2} {:02}:{:02}", pick(kMonths), 1 + below(28), below(24), below(60));
  }

  // ---- the session's project ----
  void new_project() {
    lang_ = static_cast<Lang>(below(4));
    project_ = pick(kProjects);
    branch_ = chance(50) ? "main" : fmt::format("feature/{}-{}", word(), below(900) + 100);
    files_.clear();
    const int n = 8 + static_cast<int>(below(22));
    static constexpr std::array<std::string_view, 4> kDirs{"src", "src", "tests", "lib"};
    for (int i = 0; i < n; ++i) {
      files_.push_back({fmt::format("{}/{}{}", pick(kDirs), word(), ext()), 20 + below(400)});
    }
    files_.push_back({"README.md", 30 + below(120)});
    files_.push_back({config_file(), 10 + below(40)});
  }
  std::string ext() const {
    switch (lang_) {
      case Lang::cpp: return ".cpp";
      case Lang::python: return ".py";
      case Lang::node: return ".js";
      case Lang::go: return ".go";
    }
    return ".txt";
  }
  std::string config_file() const {
    switch (lang_) {
      case Lang::cpp: return "CMakeLists.txt";
      case Lang::python: return "pyproject.toml";
      case Lang::node: return "package.json";
      case Lang::go: return "go.mod";
    }
    return "Makefile";
  }
  const File& some_file() { return files_[below(files_.size())]; }

  // ---- one user message and what follows it ----
  struct Output {
    std::string text;
    int exit_code = 0;
  };

  void conversation_turn(std::vector<CorpusEntry>& out, std::int64_t& t) {
    const std::string call_id = "call-" + hex(16);
    json message;
    json result_output;
    bool shell = true;
    Output o;
    const auto r = below(100);
    if (r < 8) {
      const File& f = some_file();
      message = {{"tool", "read_file"}, {"args", {{"path", f.path}}}};
      const std::string content = file_content(f);
      result_output = {{"path", f.path}, {"content", content}, {"encoding", "utf8"},
                       {"size", content.size()}, {"truncated", false}};
      shell = false;
    } else if (r < 13) {
      const std::string dir = chance(50) ? "src" : ".";
      message = {{"tool", "list_dir"}, {"args", {{"path", dir}}}};
      json entries = json::array();
      for (const File& f : files_) {
        entries.push_back({{"name", f.path}, {"type", "file"}, {"size", f.lines * 31}});
      }
      result_output = {{"path", dir}, {"entries", entries}, {"truncated", false}};
      shell = false;
    } else if (r < 16) {
      const std::string path = fmt::format("notes/{}.md", word());
      const std::string content = markdown(3 + below(10));
      message = {{"tool", "write_file"}, {"args", {{"path", path}, {"content", content}}}};
      result_output = {{"path", path}, {"bytesWritten", content.size()}};
      shell = false;
    } else {
      std::string command;
      o = shell_command(command);
      message = command;
    }
    t += 1 + static_cast<std::int64_t>(below(40));
    append(out, CorpusEntry::Kind::user, json{{"role", "user"}, {"callId", call_id}, {"message", message}}, t);

    t += 500 + static_cast<std::int64_t>(below(8000));  // the user reads the request and approves (or not)
    if (chance(8)) {
      const json denied{{"callId", call_id}, {"denied", true},  {"exitCode", nullptr},
                        {"output", ""},      {"truncated", false}, {"durationMs", 0}};
      append(out, CorpusEntry::Kind::denied, json{{"role", "tool"}, {"result", denied}}, t);
      return;
    }
    const std::int64_t duration = shell ? static_cast<std::int64_t>(2 + below(chance(20) ? 20000 : 300))
                                        : static_cast<std::int64_t>(below(4));
    t += duration + 1;
    json result;
    if (!shell) {
      result = {{"exitCode", 0}, {"output", result_output}, {"truncated", false}, {"durationMs", duration}};
    } else if (o.text.size() > options_.stream_threshold_bytes) {
      result = {{"exitCode", o.exit_code}, {"output", ""},         {"truncated", false},
                {"durationMs", duration},  {"streamed", true},     {"outputBytes", o.text.size()}};
    } else {
      result = {{"exitCode", o.exit_code}, {"output", o.text}, {"truncated", false}, {"durationMs", duration}};
    }
    result["callId"] = call_id;
    append(out, CorpusEntry::Kind::result, json{{"role", "tool"}, {"result", result}}, t);
  }

  static void append(std::vector<CorpusEntry>& out, CorpusEntry::Kind kind, json entry, std::int64_t t) {
    entry["t"] = t;  // as Session::append_conversation stamps it
    out.push_back({kind, entry.dump(-1, ' ', false, json::error_handler_t::replace)});
  }

  // ---- shell commands and their outputs ----
  Output shell_command(std::string& command) {
    const auto r = below(100);
    if (r < 12) {
      const bool dir = chance(40);
      command = dir ? "ls -la src" : "ls -la";
      return {ls_long(), 0};
    }
    if (r < 17) {
      command = "ls";
      std::string s;
      for (const File& f : files_) {
        s += f.path.substr(f.path.find('/') + 1) + "\n";
      }
      return {s, 0};
    }
    if (r < 27) {
      if (chance(12)) {
        const std::string missing = fmt::format("src/{}{}", word(), ext());
        command = "cat " + missing;
        return {fmt::format("cat: {}: No such file or directory\n", missing), 1};
      }
      const File& f = some_file();
      command = "cat " + f.path;
      return {file_content(f), 0};
    }
    if (r < 33) {
      const std::string what = chance(50) ? camel() : ident();
      command = fmt::format("grep -rn {} src/", what);
      std::string s;
      const auto hits = below(12);
      for (std::uint64_t i = 0; i < hits; ++i) {
        s += fmt::format("{}:{}:{}\n", some_file().path, 1 + below(400), code_line(what));
      }
      return {s, hits == 0 ? 1 : 0};
    }
    if (r < 41) {
      command = "git status";
      return {git_status(), 0};
    }
    if (r < 45) {
      const auto n = 5 + below(16);
      command = fmt::format("git log --oneline -n {}", n);
      std::string s;
      for (std::uint64_t i = 0; i < n; ++i) {
        s += fmt::format("{} {} {} in {}\n", hex(7), pick(kCommitVerbs), ident(), word());
      }
      return {s, 0};
    }
    if (r < 49) {
      command = chance(50) ? "git diff" : "git diff --stat";
      return {git_diff(), 0};
    }
    if (r < 58) {
      return build(command);
    }
    if (r < 65) {
      return tests(command);
    }
    if (r < 70) {
      const auto n = 10 + below(60);
      command = fmt::format("tail -n {} logs/app.log", n);
      return {log_lines(n), 0};
    }
    if (r < 74) {
      command = fmt::format("curl -s http://localhost:8080/api/{}s?limit=10", word());
      return {api_json(), 0};
    }
    if (r < 77) {
      command = "ps aux | head -n 15";
      return {ps_aux(), 0};
    }
    if (r < 79) {
      command = "df -h";
      return {fmt::format("Filesystem      Size  Used Avail Use% Mounted on\noverlay          {}G   {}G   {}G  {}% /\n"
                          "tmpfs            64M     0   64M   0% /dev\n/dev/sda1        {}G   {}G   {}G  {}% /workspace\n",
                          20 + below(200), 5 + below(15), 3 + below(100), below(100), 50 + below(400),
                          below(50), 10 + below(300), below(100)),
              0};
    }
    if (r < 83) {
      command = fmt::format("find . -name '*{}'", ext());
      std::string s;
      for (const File& f : files_) {
        if (f.path.ends_with(ext())) {
          s += "./" + f.path + "\n";
        }
      }
      return {s, 0};
    }
    if (r < 86) {
      command = fmt::format("wc -l src/*{}", ext());
      std::string s;
      std::size_t total = 0;
      for (const File& f : files_) {
        if (f.path.starts_with("src/")) {
          s += fmt::format("{:6} {}\n", f.lines, f.path);
          total += f.lines;
        }
      }
      return {s + fmt::format("{:6} total\n", total), 0};
    }
    if (r < 88) {
      command = lang_ == Lang::python ? "python3 scripts/migrate.py" : "node scripts/migrate.js";
      return {traceback(), 1};
    }
    // short commands: no output, or one line
    static constexpr std::array<std::string_view, 8> kShort{"pwd", "whoami", "mkdir -p build", "echo $HOME",
                                                            "touch notes.txt", "cd src", "rm -rf build/tmp",
                                                            "date"};
    command = pick(kShort);
    if (command == "pwd") {
      return {"/workspace\n", 0};
    }
    if (command == "whoami") {
      return {"sandbox\n", 0};
    }
    if (command == "echo $HOME") {
      return {"/workspace\n", 0};
    }
    if (command == "date") {
      return {fmt::format("Wed Jan {:2} {:02}:{:02}:{:02} UTC 2025\n", 1 + below(28), below(24), below(60), below(60)),
              0};
    }
    return {"", 0};
  }

  std::string ls_long() {
    std::string s = fmt::format("total {}\n", 8 + below(200));
    s += fmt::format("drwxr-xr-x  {} sandbox sandbox  4096 {} .\n", 3 + below(6), date());
    s += fmt::format("drwxr-xr-x  3 root    root     4096 {} ..\n", date());
    for (const File& f : files_) {
      s += fmt::format("-rw-r--r--  1 sandbox sandbox {:5} {} {}\n", f.lines * 31, date(),
                       f.path.substr(f.path.find('/') + 1));
    }
    if (chance(50)) {
      s += fmt::format("drwxr-xr-x  2 sandbox sandbox  4096 {} build\n", date());
    }
    return s;
  }

  std::string git_status() {
    if (chance(30)) {
      return fmt::format("On branch {}\nnothing to commit, working tree clean\n", branch_);
    }
    std::string s = fmt::format("On branch {}\n", branch_);
    if (chance(40)) {
      s += fmt::format("Your branch is ahead of 'origin/{}' by {} commit{}.\n  (use \"git push\" to publish your "
                       "local commits)\n",
                       branch_, 1 + below(4), chance(50) ? "s" : "");
    }
    s += "\nChanges not staged for commit:\n  (use \"git add <file>...\" to update what will be committed)\n"
         "  (use \"git restore <file>...\" to discard changes in working directory)\n";
    const auto n = 1 + below(5);
    for (std::uint64_t i = 0; i < n; ++i) {
      s += "\tmodified:   " + some_file().path + "\n";
    }
    if (chance(50)) {
      s += "\nUntracked files:\n  (use \"git add <file>...\" to include in what will be committed)\n";
      s += fmt::format("\tnotes/{}.md\n", word());
    }
    s += "\nno changes added to commit (use \"git add\" and/or \"git commit -a\")\n";
    return s;
  }

  std::string git_diff() {
    std::string s;
    const auto files = 1 + below(3);
    for (std::uint64_t i = 0; i < files; ++i) {
      const std::string path = some_file().path;
      const auto line = 10 + below(300);
      s += fmt::format("diff --git a/{0} b/{0}\nindex {1}..{2} 100644\n--- a/{0}\n+++ b/{0}\n@@ -{3},7 +{3},8 @@\n",
                       path, hex(7), hex(7), line);
      for (int k = 0; k < 3; ++k) {
        s += " " + code_line(ident()) + "\n";
      }
      s += "-" + code_line(ident()) + "\n+" + code_line(ident()) + "\n+" + code_line(camel()) + "\n";
      for (int k = 0; k < 3; ++k) {
        s += " " + code_line(ident()) + "\n";
      }
    }
    return s;
  }

  Output build(std::string& command) {
    const bool fail = chance(30);
    std::string s;
    switch (lang_) {
      case Lang::cpp: {
        command = "cmake --build build -j2";
        const auto n = 2 + below(10);
        for (std::uint64_t i = 0; i < n; ++i) {
          s += fmt::format("[{}/{}] Building CXX object CMakeFiles/{}.dir/src/{}.cpp.o\n", i + 1, n + 1, project_,
                           word());
        }
        if (fail) {
          const std::string f = some_file().path;
          const std::string id = ident();
          s += fmt::format("FAILED: CMakeFiles/{0}.dir/{1}.o\n/usr/bin/c++ -I/workspace/include -O2 -g -std=c++20 -o "
                           "CMakeFiles/{0}.dir/{1}.o -c /workspace/{1}\n",
                           project_, f);
          s += fmt::format("/workspace/{0}: In function 'int {1}(const std::string&)':\n/workspace/{0}:{2}:{3}: error: "
                           "'{4}' was not declared in this scope; did you mean '{5}'?\n  {2} |   return {4}(input);\n"
                           "      |          ^~~~~~~~~~~~\n",
                           f, id, 10 + below(300), 5 + below(30), camel(), ident());
          s += "ninja: build stopped: subcommand failed.\n";
          return {s, 1};
        }
        s += fmt::format("[{0}/{0}] Linking CXX executable {1}\n", n + 1, project_);
        return {s, 0};
      }
      case Lang::python:
        command = "pip install -e .";
        s = fmt::format("Obtaining file:///workspace\n  Installing build dependencies ... done\n  Checking if build "
                        "backend supports build_editable ... done\nSuccessfully installed {}-0.{}.{}\n",
                        project_, below(10), below(20));
        return {s, 0};
      case Lang::node:
        command = "npm run build";
        s = fmt::format("\n> {}@1.{}.0 build\n> tsc -p tsconfig.json\n\n", project_, below(10));
        if (fail) {
          s += fmt::format("src/{}.ts({},{}): error TS2339: Property '{}' does not exist on type '{}'.\n", word(),
                           1 + below(200), 1 + below(40), camel(), camel());
          return {s, 2};
        }
        return {s, 0};
      case Lang::go:
        command = "go build ./...";
        if (fail) {
          s = fmt::format("# {0}/internal/{1}\ninternal/{1}/{1}.go:{2}:{3}: undefined: {4}\n", project_, word(),
                          1 + below(200), 1 + below(40), camel());
          return {s, 1};
        }
        return {"", 0};
    }
    return {s, 0};
  }

  Output tests(std::string& command) {
    const auto total = 5 + below(120);
    const auto failed = chance(30) ? 1 + below(4) : 0;
    std::string s;
    switch (lang_) {
      case Lang::cpp:
        command = "ctest --test-dir build --output-on-failure";
        s = "Test project /workspace/build\n";
        for (std::uint64_t i = 0; i < std::min<std::uint64_t>(total, 25); ++i) {
          const bool bad = i < failed;
          s += fmt::format("{:4}/{} Test #{:3}: {}.{} ..........   {}   {:.2f} sec\n", i + 1, total, i + 1, camel(),
                           camel(), bad ? "***Failed" : "Passed", static_cast<double>(below(300)) / 100.0);
        }
        s += fmt::format("\n{}% tests passed, {} tests failed out of {}\n", (total - failed) * 100 / total, failed,
                         total);
        break;
      case Lang::python:
        command = "pytest -q";
        for (std::uint64_t i = 0; i < total; ++i) {
          s += i < failed ? "F" : ".";
        }
        s += fmt::format("{:>10}\n", "[100%]");
        for (std::uint64_t i = 0; i < failed; ++i) {
          s += fmt::format("FAILED tests/test_{}.py::test_{} - AssertionError: assert {} == {}\n", word(), ident(),
                           below(100), below(100));
        }
        s += fmt::format("{} passed{} in {}.{:02}s\n", total - failed,
                         failed ? fmt::format(", {} failed", failed) : std::string(), below(20), below(100));
        break;
      case Lang::node:
        command = "npm test";
        s = fmt::format("\n> {}@1.0.0 test\n> jest\n\n", project_);
        for (std::uint64_t i = 0; i < 1 + total / 10; ++i) {
          s += fmt::format("{} tests/{}.test.js ({}.{} s)\n", i < failed ? "FAIL" : "PASS", word(), below(5),
                           below(999));
        }
        s += fmt::format("\nTests:       {} failed, {} passed, {} total\nTime:        {}.{} s\n", failed,
                         total - failed, total, below(30), below(999));
        break;
      case Lang::go:
        command = "go test ./...";
        for (int i = 0; i < 4; ++i) {
          s += fmt::format("ok  \t{}/internal/{}\t{}.{:03}s\n", project_, word(), below(3), below(1000));
        }
        if (failed) {
          s += fmt::format("--- FAIL: Test{} ({}.{:02}s)\n    {}_test.go:{}: got {}, want {}\nFAIL\n", camel(),
                           below(2), below(100), word(), 10 + below(200), below(100), below(100));
        }
        break;
    }
    return {s, failed ? 1 : 0};
  }

  std::string log_lines(std::uint64_t n) {
    static constexpr std::array<std::string_view, 4> kLevels{"INFO", "INFO", "WARN", "ERROR"};
    std::string s;
    for (std::uint64_t i = 0; i < n; ++i) {
      s += fmt::format("2025-01-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [{}] {} {} id={} duration_ms={}\n", 1 + below(28),
                       below(24), below(60), below(60), below(1000), pick(kLevels), word(), camel(), word(), hex(12),
                       below(2000));
    }
    return s;
  }

  std::string api_json() {
    json items = json::array();
    const auto n = below(10);
    for (std::uint64_t i = 0; i < n; ++i) {
      items.push_back({{"id", hex(24)},
                       {"name", word() + " " + word()},
                       {"status", chance(70) ? "active" : "archived"},
                       {"count", below(1000)},
                       {"updatedAt", fmt::format("2025-01-{:02}T{:02}:{:02}:00Z", 1 + below(28), below(24), below(60))}});
    }
    return json{{"items", items}, {"total", n + below(100)}, {"next", nullptr}}.dump() + "\n";
  }

  std::string ps_aux() {
    std::string s = "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n";
    s += "sandbox        1  0.0  0.0   4364  3372 ?        Ss   10:02   0:00 /bin/bash /supervisor.sh\n";
    const auto n = 2 + below(10);
    for (std::uint64_t i = 0; i < n; ++i) {
      s += fmt::format("sandbox    {:5}  {}.{}  {}.{} {:6} {:5} ?        S    10:{:02}   0:0{} {}\n", 10 + below(30000),
                       below(10), below(10), below(5), below(10), 10000 + below(900000), 1000 + below(90000),
                       below(60), below(10),
                       chance(50) ? "node server.js" : fmt::format("python3 -m {}.{}", project_, word()));
    }
    return s;
  }

  std::string traceback() {
    if (lang_ == Lang::python) {
      return fmt::format("Traceback (most recent call last):\n  File \"/workspace/scripts/migrate.py\", line {}, in "
                         "<module>\n    main()\n  File \"/workspace/src/{}.py\", line {}, in {}\n    return "
                         "self.{}[key]\nKeyError: '{}'\n",
                         10 + below(100), word(), 10 + below(300), ident(), word(), word());
    }
    return fmt::format("/workspace/scripts/migrate.js:{0}\n    const {1} = {2}.{3}();\n                 ^\n\nTypeError: "
                       "Cannot read properties of undefined (reading '{3}')\n    at {4} "
                       "(/workspace/src/{2}.js:{0}:{5})\n    at Object.<anonymous> (/workspace/scripts/migrate.js:{6}:1)\n"
                       "\nNode.js v20.{7}.0\n",
                       10 + below(100), word(), word(), camel(), camel(), 1 + below(40), 1 + below(200), below(18));
  }

  std::string markdown(std::uint64_t paragraphs) {
    std::string s = fmt::format("# {} {}\n\n", project_, word());
    for (std::uint64_t i = 0; i < paragraphs; ++i) {
      s += fmt::format("## {}\n\nThe {} {} calls `{}` before the {} is sent; see `{}`.\n\n- {} the {}\n- {} every {}\n\n",
                       camel(), word(), word(), ident(), word(), some_file().path, pick(kVerbs), word(), pick(kVerbs),
                       word());
    }
    return s;
  }

  std::string code_line(const std::string& id) {
    switch (lang_) {
      case Lang::cpp:
        switch (below(4)) {
          case 0: return fmt::format("  auto {} = {}(request.{}());", word(), id, word());
          case 1: return fmt::format("  if (!{}.ok()) {{ return {}; }}", word(), id);
          case 2: return fmt::format("  {}->{}({}, {});", word(), id, word(), below(100));
          default: return fmt::format("  return {}(std::move({}));", id, word());
        }
      case Lang::python:
        switch (below(4)) {
          case 0: return fmt::format("    {} = self.{}({})", word(), id, word());
          case 1: return fmt::format("    if not {}:", id);
          case 2: return fmt::format("        raise ValueError(f\"{} {{{}}} is invalid\")", word(), id);
          default: return fmt::format("    return {}({}, timeout={})", id, word(), below(60));
        }
      case Lang::node:
        switch (below(4)) {
          case 0: return fmt::format("  const {} = await {}({});", word(), id, word());
          case 1: return fmt::format("  if (!{}) throw new Error('{} missing');", word(), id);
          case 2: return fmt::format("  {}.on('{}', {});", word(), word(), id);
          default: return fmt::format("  return {}.{}({});", word(), id, below(100));
        }
      case Lang::go:
        switch (below(4)) {
          case 0: return fmt::format("\t{}, err := {}(ctx, {})", word(), id, word());
          case 1: return "\tif err != nil {";
          case 2: return fmt::format("\t\treturn nil, fmt.Errorf(\"{}: %w\", err)", id);
          default: return fmt::format("\treturn {}.{}()", word(), id);
        }
    }
    return id;
  }

  std::string file_content(const File& f) {
    if (f.path == "README.md") {
      return markdown(2 + f.lines / 30);
    }
    if (f.path == config_file()) {
      switch (lang_) {
        case Lang::cpp:
          return fmt::format("cmake_minimum_required(VERSION 3.25)\nproject({0} LANGUAGES CXX)\n\nadd_executable({0} "
                             "src/main.cpp src/{1}.cpp src/{2}.cpp)\ntarget_link_libraries({0} PRIVATE fmt::fmt)\n",
                             project_, word(), word());
        case Lang::python:
          return fmt::format("[project]\nname = \"{}\"\nversion = \"0.{}.0\"\ndependencies = [\"requests>=2.31\", "
                             "\"pydantic>=2\"]\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
                             project_, below(10));
        case Lang::node:
          return json{{"name", project_},
                      {"version", fmt::format("1.{}.0", below(10))},
                      {"scripts", {{"build", "tsc -p tsconfig.json"}, {"test", "jest"}}},
                      {"dependencies", {{"express", "^4.18.2"}, {"socket.io", "^4.7.2"}}}}
                     .dump(2) +
                 "\n";
        case Lang::go:
          return fmt::format("module github.com/acme/{}\n\ngo 1.21\n\nrequire github.com/go-chi/chi/v5 v5.0.{}\n",
                             project_, below(12));
      }
    }
    std::string s;
    switch (lang_) {
      case Lang::cpp: s = fmt::format("#include \"{}.hpp\"\n\n#include <string>\n#include <vector>\n\nnamespace {} {{\n\n", word(), word()); break;
      case Lang::python: s = "import json\nimport logging\nfrom dataclasses import dataclass\n\nlog = logging.getLogger(__name__)\n\n"; break;
      case Lang::node: s = fmt::format("'use strict';\n\nconst {{ {} }} = require('./{}');\n\n", camel(), word()); break;
      case Lang::go: s = fmt::format("package {}\n\nimport (\n\t\"context\"\n\t\"fmt\"\n)\n\n", word()); break;
    }
    // a file of f.lines lines, capped like a long `cat` would be by the threshold anyway
    const std::size_t lines = std::min<std::size_t>(f.lines, 250);
    while (std::count(s.begin(), s.end(), '\n') < static_cast<std::ptrdiff_t>(lines)) {
      const std::string id = ident();
      switch (lang_) {
        case Lang::cpp: s += fmt::format("std::string {}(const std::string& {}) {{\n", id, word()); break;
        case Lang::python: s += fmt::format("def {}({}, {}=None):\n    \"\"\"{} the {}.\"\"\"\n", id, word(), word(), pick(kVerbs), word()); break;
        case Lang::node: s += fmt::format("async function {}({}) {{\n", camel(), word()); break;
        case Lang::go: s += fmt::format("func {}(ctx context.Context, {} string) (*{}, error) {{\n", camel(), word(), camel()); break;
      }
      const auto body = 2 + below(8);
      for (std::uint64_t i = 0; i < body; ++i) {
        if (chance(20)) {
          s += fmt::format("{} {} the {} {} before the {} is {} (#{})\n", lang_ == Lang::python ? "    #" : "  //",
                           pick(kVerbs), word(), word(), word(), pick(kVerbs), 100 + below(9000));
        }
        s += code_line(ident()) + "\n";
      }
      s += lang_ == Lang::python ? "\n" : "}\n\n";
    }
    return s;
  }

  std::mt19937_64 rng_;
  CorpusOptions options_;
  Lang lang_ = Lang::cpp;
  std::string project_;
  std::string branch_;
  std::vector<File> files_;
};

}  // namespace

std::vector<CorpusEntry> generate_conversation_corpus(const CorpusOptions& options) {
  return Generator(options).run();
}

}  // namespace phasekit::bench
