#include "template.hpp"

#include <gtest/gtest.h>

namespace phasekit::load {
namespace {

using nlohmann::json;

TEST(Template, ReplacesVariablesInsideStrings) {
  std::mt19937_64 rng(1);
  const Vars vars{{"name", "ada"}, {"n", 3}};
  EXPECT_EQ(render_string("hi {{ name }}, {{n}} times", vars, rng), "hi ada, 3 times");
}

TEST(Template, AWholeTemplateKeepsTheValuesType) {
  std::mt19937_64 rng(1);
  const Vars vars{{"obj", json{{"a", 1}}}, {"n", 3}};
  EXPECT_EQ(render(json("{{ n }}"), vars, rng), json(3));
  EXPECT_EQ(render(json{{"x", "{{ obj }}"}, {"k", {"{{ n }}"}}}, vars, rng), (json{{"x", {{"a", 1}}}, {"k", {3}}}));
}

TEST(Template, MissingVariablesAreReported) {
  std::mt19937_64 rng(1);
  std::string missing;
  EXPECT_EQ(render(json("a{{ gone }}b"), Vars{}, rng, &missing), json("ab"));
  EXPECT_EQ(missing, "gone");
}

TEST(Template, BuiltinsProduceWhatTheySay) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100; ++i) {
    const json n = render(json("{{ $randomNumber(5, 7) }}"), Vars{}, rng);
    ASSERT_TRUE(n.is_number_integer());
    EXPECT_GE(n.get<int>(), 5);
    EXPECT_LE(n.get<int>(), 7);
  }
  EXPECT_EQ(render(json("{{ $randomString(12) }}"), Vars{}, rng).get<std::string>().size(), 12u);
  const std::string uuid = render(json("{{ $uuid }}"), Vars{}, rng).get<std::string>();
  ASSERT_EQ(uuid.size(), 36u);
  EXPECT_EQ(uuid[14], '4');
}

TEST(Template, ReferencesAreCheckedWhenRead) {
  EXPECT_EQ(template_references(json{{"a", "{{ x }} and {{ $env.HOME }}"}}),
            (std::vector<std::string>{"x", "$env.HOME"}));
  EXPECT_THROW(template_references(json("{{ open")), std::invalid_argument);
  EXPECT_THROW(template_references(json("{{ }}")), std::invalid_argument);
  EXPECT_THROW(template_references(json("{{ $shell(rm) }}")), std::invalid_argument);
  EXPECT_THROW(template_references(json("{{ two words }}")), std::invalid_argument);
}

TEST(JsonPath, FindsWhatArtilleryCapturesFind) {
  const json doc = json::parse(R"([{"ok": true, "callId": "c1", "list": [10, 20], "a b": 1}])");
  EXPECT_EQ(*JsonPath("$.0.callId").find(doc), "c1");
  EXPECT_EQ(*JsonPath("$[0].list[1]").find(doc), 20);
  EXPECT_EQ(*JsonPath("$[0]['a b']").find(doc), 1);
  EXPECT_EQ(*JsonPath("$").find(doc), doc);
  EXPECT_EQ(JsonPath("$.0.missing").find(doc), nullptr);
  EXPECT_EQ(JsonPath("$.0.list[5]").find(doc), nullptr);
  EXPECT_EQ(JsonPath("$.0.ok.deeper").find(doc), nullptr);
  EXPECT_EQ(*JsonPath("$..callId").find(doc), "c1");  // at any depth, as Artillery's JSONPath does
  EXPECT_EQ(*JsonPath("$..list[0]").find(doc), 10);
  EXPECT_EQ(JsonPath("$..nowhere").find(doc), nullptr);
}

TEST(JsonPath, MalformedPathsAreRefused) {
  for (const char* bad : {"", "callId", "$.", "$[x]", "$[-1]", "$['open", "$...a", "$..", "$a"}) {
    EXPECT_THROW(JsonPath{bad}, std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace phasekit::load
