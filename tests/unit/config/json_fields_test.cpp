// The one strict JSON reader (phasekit/json_fields.hpp) and the flat reader of a plugin's options built
// on it (phasekit/plugin_options.hpp): what they refuse, and the words they say it in.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "phasekit/json_fields.hpp"
#include "phasekit/plugin_options.hpp"

namespace phasekit {
namespace {

namespace jf = json_fields;
using jf::Json;

std::string error_of(const std::function<void()>& read) {
  try {
    read();
  } catch (const jf::FieldError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(JsonFields, AnErrorCarriesThePathAndTheBareReasonApart) {
  try {
    jf::integer(Json(2000), "spec.x", 1, 1800);
    FAIL() << "accepted";
  } catch (const jf::FieldError& e) {
    EXPECT_EQ(e.path(), "spec.x");
    EXPECT_EQ(e.reason(), "2000: expected an integer in 1..1800");
    EXPECT_EQ(std::string(e.what()), "spec.x: 2000: expected an integer in 1..1800");
  }
  EXPECT_EQ(error_of([] { jf::object(Json::array(), ""); }), "(document): []: expected an object");
  EXPECT_EQ(error_of([] { jf::array(Json::parse(R"({"type":"Pods"})"), "p"); }), R"(p: {"type":"Pods"}: expected an array)");
}

TEST(JsonFields, AnIntegerOutOfRangeIsRefusedHoweverLargeItIs) {
  EXPECT_EQ(jf::integer(Json::parse("9223372036854775807"), "n", 0, INT64_MAX), INT64_MAX);
  EXPECT_EQ(jf::integer(Json(-5), "n", -10, 10), -5);
  EXPECT_EQ(error_of([] { jf::integer(Json::parse("18446744073709551615"), "n", -1, 10); }),
            "n: 18446744073709551615: expected an integer in -1..10");
  EXPECT_EQ(error_of([] { jf::integer(Json::parse("9223372036854775808"), "n", INT64_MIN, 10); }),
            "n: 9223372036854775808: expected an integer in -9223372036854775808..10");
  EXPECT_EQ(error_of([] { jf::integer(Json(3), "n", 5, 10); }), "n: 3: expected an integer in 5..10");
  EXPECT_EQ(error_of([] { jf::integer(Json(1.0), "n", 0, 10); }), "n: 1.0: expected an integer in 0..10");
  EXPECT_EQ(error_of([] { jf::integer(Json("3"), "n", 0, 10); }), "n: \"3\": expected an integer in 0..10");
}

TEST(JsonFields, NumbersBooleansStringsAndChoices) {
  EXPECT_EQ(error_of([] { jf::number(Json(150), "p", 0, 100); }), "p: 150: expected a number in 0..100");
  EXPECT_EQ(error_of([] { jf::number(Json(2), "p", 0, 0.5); }), "p: 2: expected a number in 0..0.5");
  EXPECT_EQ(error_of([] { jf::boolean(Json("yes"), "p"); }), "p: \"yes\": expected true or false");
  EXPECT_EQ(error_of([] { jf::text(Json(""), "p"); }), "p: \"\": expected a non-empty string");
  EXPECT_EQ(jf::text(Json(""), "p", /*allow_empty=*/true), "");
  EXPECT_EQ(error_of([] { jf::text(Json(7), "p", true); }), "p: 7: expected a string");
  EXPECT_EQ(jf::one_of(Json("Min"), "p", {"Max", "Min"}), "Min");
  EXPECT_EQ(error_of([] { jf::one_of(Json("Maximum"), "p", {"Max", "Min"}); }), "p: \"Maximum\": expected one of Max|Min");
  EXPECT_EQ(error_of([] { jf::one_of(Json(1), "p", {"Max", "Min"}); }), "p: 1: expected one of Max|Min");
}

TEST(JsonFields, AnUnknownKeyIsNamedWithTheKeysAllowed) {
  EXPECT_EQ(error_of([] { jf::only_keys(Json::parse(R"({"scaleUp":{},"scaleup":{}})"), "spec", {"scaleUp", "scaleDown"}); }),
            "spec.scaleup: unknown key (expected one of scaleUp|scaleDown)");
  EXPECT_EQ(error_of([] { jf::only_keys(Json::parse(R"({"a":1})"), "", {}); }), "a: unknown key (none is expected here)");
  EXPECT_EQ(error_of([] { jf::only_keys(Json(5), "x", {"a"}); }), "x: 5: expected an object");
}

TEST(JsonFields, ARequiredFieldMayNotBeAbsentNorNull) {
  const Json doc = Json::parse(R"({"a":null,"b":0})");
  EXPECT_EQ(jf::optional(doc, "a"), nullptr);
  EXPECT_EQ(jf::required(doc, "x", "b"), Json(0));
  EXPECT_EQ(error_of([&] { jf::required(doc, "x", "a"); }), "x.a: required");
  EXPECT_EQ(error_of([&] { jf::required(doc, "", "c", "the server's URL"); }), "c: required (the server's URL)");
}

TEST(JsonFields, AValueIsShownShortAndBytesThatAreNotUtf8DoNotThrow) {
  EXPECT_EQ(jf::shown(Json("ten")), "\"ten\"");
  EXPECT_EQ(jf::shown(Json(std::string(100, 'x'))), "\"" + std::string(40, 'x') + "...\"");
  EXPECT_EQ(jf::shown(Json(std::vector<int>(50, 1))), "an array");
  EXPECT_EQ(jf::shown(Json("\xff")), "\"\xEF\xBF\xBD\"");  // U+FFFD
  EXPECT_EQ(error_of([] { jf::integer(Json("\xff"), "n", 0, 1); }), "n: \"\xEF\xBF\xBD\": expected an integer in 0..1");
}

TEST(PluginOptions, IsAFlatObjectReadWithTheSameChecks) {
  PluginOptions o(R"({"min_size":"ten","n":18446744073709551615,"format":"zstd"})");
  EXPECT_EQ(error_of([&] { o.integer("min_size", 2, 0, 10000); }), "min_size: \"ten\": expected an integer in 0..10000");
  EXPECT_EQ(error_of([&] { o.integer("n", 0, -1, 10); }), "n: 18446744073709551615: expected an integer in -1..10");
  EXPECT_EQ(error_of([&] { o.one_of("format", "gzip", {"deflate_dict", "gzip"}); }),
            "format: \"zstd\": expected one of deflate_dict|gzip");
  PluginOptions empty("");
  EXPECT_EQ(empty.integer("level", 6, 1, 9), 6);
  EXPECT_THROW(PluginOptions("[1]"), std::invalid_argument);
}

TEST(PluginOptions, FinishRefusesAKeyNoGetterAskedFor_ListingThoseThatDid) {
  PluginOptions o(R"({"level":6,"levle":6,"host_key":1})");
  EXPECT_EQ(o.integer("level", 1, 1, 9), 6);
  EXPECT_EQ(o.text("format", "gzip"), "gzip");
  o.ignore("host_key");
  EXPECT_EQ(error_of([&] { o.finish(); }), "levle: unknown key (expected one of format|host_key|level)");
  const PluginOptions none(R"({"x":1})");
  EXPECT_EQ(error_of([&] { none.finish(); }), "x: unknown key (none is expected here)");
  PluginOptions null_is_absent(R"({"level":null})");
  EXPECT_EQ(null_is_absent.integer("level", 3, 1, 9), 3);
  EXPECT_NO_THROW(null_is_absent.finish());
}

}  // namespace
}  // namespace phasekit
