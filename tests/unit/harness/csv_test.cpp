#include "csv.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace phasekit::load {
namespace {

std::vector<std::vector<std::string>> texts(const std::vector<CsvRecord>& records) {
  std::vector<std::vector<std::string>> out;
  for (const CsvRecord& r : records) {
    auto& row = out.emplace_back();
    for (const CsvField& f : r.fields) {
      row.push_back(f.text);
    }
  }
  return out;
}

using Rows = std::vector<std::vector<std::string>>;

TEST(ScenarioCsv, ReadsRecordsOfFields) {
  const auto records = parse_csv("alice,pw1,t-1\nbob,pw2,t-2\n", {});
  EXPECT_EQ(texts(records), (Rows{{"alice", "pw1", "t-1"}, {"bob", "pw2", "t-2"}}));
  EXPECT_EQ(records[0].line, 1u);
  EXPECT_EQ(records[1].line, 2u);
}

TEST(ScenarioCsv, QuotedFieldsHoldDelimitersQuotesAndLineBreaks) {
  const auto records = parse_csv("\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\nnext,\"\",x\r\n", {});
  EXPECT_EQ(texts(records), (Rows{{"a,b", "say \"hi\"", "two\nlines"}, {"next", "", "x"}}));
  EXPECT_TRUE(records[0].fields[0].quoted);
  EXPECT_FALSE(records[1].fields[0].quoted);
  EXPECT_EQ(records[1].line, 3u) << "the line break inside the quotes counts";
}

TEST(ScenarioCsv, HeaderEmptyLinesDelimiterAndByteOrderMark) {
  CsvOptions o;
  o.skip_header = true;
  o.delimiter = ';';
  const auto records = parse_csv("\xEF\xBB\xBFname;token\n\nalice;t,1\n\n\nbob;t2", o);
  EXPECT_EQ(texts(records), (Rows{{"alice", "t,1"}, {"bob", "t2"}}));
  EXPECT_EQ(records[1].line, 6u);
  o.skip_empty_lines = false;
  o.skip_header = false;
  EXPECT_EQ(texts(parse_csv("a\n\nb\n", o)), (Rows{{"a"}, {""}, {"b"}}));
}

TEST(ScenarioCsv, TrailingDelimiterIsAnEmptyLastField) {
  EXPECT_EQ(texts(parse_csv("a,b,\n", {})), (Rows{{"a", "b", ""}}));
  EXPECT_EQ(texts(parse_csv("a\rb\r", {})), (Rows{{"a"}, {"b"}})) << "a lone CR ends a record too";
}

struct BadCsv {
  const char* name;
  std::string text;
  std::size_t line;
  const char* expect;
};

class MalformedScenarioCsv : public ::testing::TestWithParam<BadCsv> {};

TEST_P(MalformedScenarioCsv, NamesTheLineAndTheReason) {
  const BadCsv& c = GetParam();
  CsvOptions o;
  o.max_records = 3;
  o.max_fields_per_record = 4;
  try {
    (void)parse_csv(c.text, o);
    FAIL() << c.name << " was accepted";
  } catch (const CsvError& e) {
    EXPECT_EQ(e.line(), c.line) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedScenarioCsv,
    ::testing::Values(BadCsv{"unclosed_quote", "a,b\nc,\"never\nclosed\n", 2, "never closed"},
                      BadCsv{"text_after_quote", "a\n\"x\"y,z\n", 2, "text after a closing quote"},
                      BadCsv{"quote_inside", "a,b\"c\n", 1, "a quote inside an unquoted field"},
                      BadCsv{"not_utf8", "ok\nbad\xff\n", 2, "not UTF-8"},
                      BadCsv{"too_many_records", "1\n2\n3\n4\n", 4, "more than 3 records"},
                      BadCsv{"too_many_fields", "a,b,c,d,e\n", 1, "more than 4 fields"}),
    [](const ::testing::TestParamInfo<BadCsv>& param) { return std::string(param.param.name); });

}  // namespace
}  // namespace phasekit::load
