#include "conversation_dictionary.hpp"

namespace phasekit::compression_zlib {

std::string_view dictionary_v1() noexcept {
  // Frozen: entries written by version 1 are decoded with exactly these bytes. Adjacent raw literals,
  // split every 100 bytes; \n here is the two characters a JSON dump writes for a newline.
  static constexpr std::string_view kDictionary =
      R"d( No such file or directory\n Permission denied\n command not found\nerror: warning: note: undefined )d"
      R"d(reference to Traceback (most recent call last):\n  File \"/workspace/ line  in <module>\nException E)d"
      R"d(rror: TypeError: ValueError: KeyError: AssertionError: FAILED PASSED passed failed tests ok  \t--- F)d"
      R"d(AIL: FAIL\nTest project /workspace/build\n100% tests passed, 0 tests failed out of  Building CXX obj)d"
      R"d(ect CMakeFiles/ Linking CXX executable ninja: build stopped: subcommand failed.\nmake: *** [Makefile)d"
      R"d(: Error 1\nnpm ERR! \n> tsc\n\nSuccessfully installed INFO WARN ERROR DEBUG 2025-01-T00:00:00.000Z F)d"
      R"d(ilesystem      Size  Used Avail Use% Mounted on\nUSER         PID %CPU %MEM    VSZ   RSS TTY      ST)d"
      R"d(AT START   TIME COMMAND\ndiff --git a/ b/\nindex 100644\n--- a/\n+++ b/\n@@ -1,7 +1,8 @@\nOn branch )d"
      R"d(main\nYour branch is up to date with 'origin/main'.\n\nChanges not staged for commit:\n  (use \"git )d"
      R"d(add <file>...\" to update what will be committed)\n  (use \"git restore <file>...\" to discard chang)d"
      R"d(es in working directory)\n\tmodified:   \n\nUntracked files:\n  (use \"git add <file>...\" to includ)d"
      R"d(e in what will be committed)\n\t\nno changes added to commit (use \"git add\" and/or \"git commit -a)d"
      R"d(\")\nnothing to commit, working tree clean\ntotal 4096 drwxr-xr-x  2 root root -rw-r--r--  1 sandbox)d"
      R"d( sandbox  .\n ..\n Jan  Feb  Mar  Apr  May  Jun  Jul  Aug  Sep  Oct  Nov  Dec #include <string>\n#in)d"
      R"d(clude \"namespace std::string& const auto return nullptr;\n}\n\nimport from def self, None):\n    re)d"
      R"d(turn function const  = require('./'));\nasync await module.exports = package import (\n\t\"context\")d"
      R"d(\n\t\"fmt\"\n)\n\nfunc (ctx context.Context, err != nil {\n\t\treturn nil, fmt.Errorf(\"%w\", err)\n)d"
      R"d(\t}\n{\"id\":\"\"name\":\"\"status\":\"\"type\":\"file\"dir\"{\"code\":\"INTERNAL\"BAD_REQUEST\"TIME)d"
      R"d(OUT\"UNAVAILABLE\",\"message\":\"\"error\":\"timedOut\":true,\"outputBytes\":\"streamed\":true,{\"by)d"
      R"d(tesWritten\":{\"entries\":[{\"name\":\"\",\"size\":\",\"type\":\"file\"},{\"name\":\"{\"content\":\")d"
      R"d(\",\"encoding\":\"utf8\",\"path\":\"\",\"size\":src/tests/README.md.cpp.hpp.py.js.ts.go.json.yml.txt)d"
      R"d(.log/workspace/build/ls -la cat grep -rn git status git diff git log --oneline cmake --build build m)d"
      R"d(ake npm test npm run build pytest go test ./... go build ./... tail -n find . -name wc -l echo cd mk)d"
      R"d(dir -p rm -rf ps aux df -h curl -s http://localhost:{"callId":"call-","message":{"args":{"path":"",")d"
      R"d(tool":"read_file"list_dir"write_file"shell"},"role":"user","t":17{"result":{"callId":"call-","denied)d"
      R"d(":true,"durationMs":0,"exitCode":null,"output":"","truncated":false},"role":"tool","t":17{"result":{)d"
      R"d("callId":"call-","durationMs":,"exitCode":0,"output":"","truncated":false},"role":"tool","t":17{"cal)d"
      R"d(lId":"call-","message":"","role":"user","t":17)d";
  static_assert(kDictionary.size() == 2746);
  return kDictionary;
}

}  // namespace phasekit::compression_zlib
