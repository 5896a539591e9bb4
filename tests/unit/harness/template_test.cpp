#include "template.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>

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

TEST(Template, SharedVariablesAreReadWhereTheUserHasNone) {
  std::mt19937_64 rng(1);
  const Vars shared{{"token", "from-before"}, {"rows", json::array({json{{"id", 7}}})}};
  const Vars own{{"token", "mine"}};
  EXPECT_EQ(render_string("{{ token }}", Scope(own, &shared), rng), "mine");
  EXPECT_EQ(render(json("{{ rows }}"), Scope(Vars{}, &shared), rng), shared.at("rows"));
}

TEST(Template, DottedNamesReadMembers) {
  std::mt19937_64 rng(1);
  const Vars vars{{"user", json{{"id", 7}, {"tags", {"a", "b"}}}}, {"$loopElement", json{{"name", "ada"}}}};
  EXPECT_EQ(render(json("{{ user.id }}"), vars, rng), json(7));
  EXPECT_EQ(render_string("{{ user.tags.1 }}/{{ $loopElement.name }}", vars, rng), "b/ada");
  std::string missing;
  EXPECT_EQ(render_string("{{ user.nope }}", vars, rng, &missing), "");
  EXPECT_EQ(missing, "user.nope");
  EXPECT_EQ(check_expression("$loopElement.name"), std::nullopt);
  EXPECT_NE(check_expression("$loopElements"), std::nullopt);
}

TEST(TemplateUri, EncodesAsEncodeUriComponentAndDecodesBack) {
  EXPECT_EQ(encode_uri_component("a b&c=d/é~*'()!-_."), "a%20b%26c%3Dd%2F%C3%A9~*'()!-_.");
  EXPECT_EQ(decode_uri_component("a%20b%26c%3dd%2F%C3%A9"), "a b&c=d/é");
  EXPECT_EQ(decode_uri_component("100%"), "100%");
  EXPECT_EQ(decode_uri_component("%zz%4"), "%zz%4") << "a malformed escape stays as it is";
}

struct Cond {
  const char* text;
  bool expect;
};

class TemplateConditionTable : public ::testing::TestWithParam<Cond> {};

TEST_P(TemplateConditionTable, EvaluatesAsArtilleryWould) {
  const Vars vars{{"n", 5},           {"s", "5"},    {"name", "ada"},  {"ok", true},
                  {"zero", 0},        {"empty", ""}, {"nul", nullptr}, {"user", json{{"role", "admin"}}},
                  {"list", {1, 2}},   {"big", "10"}};
  const Condition c(GetParam().text);
  EXPECT_EQ(c.evaluate(vars), GetParam().expect) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, TemplateConditionTable,
    ::testing::Values(Cond{"n == 5", true}, Cond{"n != 5", false}, Cond{"n > 4 and n < 6", true},
                      Cond{"n >= 6 or n <= 4", false}, Cond{"s == 5", true} /* "5" == 5 in JavaScript */,
                      Cond{"big > 9", true} /* a string beside a number compares as a number */,
                      Cond{"big > \"9\"", false} /* two strings compare by their characters */,
                      Cond{"name == \"ada\"", true}, Cond{"name != \"bob\"", true}, Cond{"not (n == 5)", false},
                      Cond{"not zero", true}, Cond{"not empty and not nul", true}, Cond{"ok", true},
                      Cond{"ok == true", true}, Cond{"ok == 1", true}, Cond{"missing", false},
                      Cond{"missing == nul", true} /* undefined == null */, Cond{"not missing", true},
                      Cond{"missing > 0 or missing <= 0", false} /* NaN compares false */,
                      Cond{"user.role == \"admin\"", true}, Cond{"user.age > 1", false}, Cond{"list", true},
                      Cond{"(n > 1 or zero) and (name == \"ada\")", true}, Cond{"-1 < zero", true},
                      Cond{"1.5 < 2", true}, Cond{"$loopCount == 0", false}),
    [](const ::testing::TestParamInfo<Cond>& param) {
      std::string name = std::to_string(param.index) + "_";
      for (const char c : std::string_view(param.param.text)) {
        name += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
      }
      return name;
    });

TEST(TemplateCondition, ReadsItsVariableNames) {
  const Condition c("user.role == \"x\" or (n > 1 and not $loopElement) or $env.HOME");
  EXPECT_EQ(c.names(), (std::vector<std::string>{"user", "n", "$loopElement", "$env.HOME"}));
}

TEST(TemplateCondition, RefusesWhatIsNotSupportedWithTheReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty expression"},
      {"n = 5", "compare with =="},
      {"n + 1 > 2", "arithmetic is not supported"},
      {"n > 1 && n < 3", "write and, or, not"},
      {"status == 'ok'", "single quotes"},
      {"n in (1, 2)", "\"in\" is not supported"},
      {"abs(n) > 1", "functions are not supported"},
      {"a < b < c", "two values at a time"},
      {"(n > 1", "expected )"},
      {"n >", "ends too soon"},
      {"name == \"open", "unclosed string"},
      {"n > 1 ? 1 : 0", "is not supported"},
      {"1x > 0", "not a number"},
      {"and n", "needs a value before it"},
      {"((((((((((((((((((((((((((((((((((n))))))))))))))))))))))))))))))))))", "nested more than 32 deep"},
  };
  for (const auto& [text, expect] : cases) {
    try {
      Condition c(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << text << ": " << e.what();
    }
  }
  EXPECT_THROW(Condition(std::string(1001, 'n')), std::invalid_argument);
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
