#include "csv.hpp"

#include <fmt/format.h>
#include <phasekit/bytes.hpp>

namespace phasekit::load {
namespace {

// The length of the line break at text[pos] (\r\n, \n or \r), 0 when there is none.
std::size_t line_break(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) {
    return 0;
  }
  if (text[pos] == '\n') {
    return 1;
  }
  if (text[pos] == '\r') {
    return pos + 1 < text.size() && text[pos + 1] == '\n' ? 2 : 1;
  }
  return 0;
}

class CsvParser {
 public:
  CsvParser(std::string_view text, const CsvOptions& options) : text_(text), o_(options) {}

  std::vector<CsvRecord> parse() {
    if (text_.starts_with("\xEF\xBB\xBF")) {
      pos_ = 3;
    }
    std::vector<CsvRecord> records;
    bool header = o_.skip_header;
    while (pos_ < text_.size()) {
      if (const std::size_t n = line_break(text_, pos_); n > 0 && o_.skip_empty_lines) {
        pos_ += n;
        ++line_;
        continue;
      }
      CsvRecord record = read_record();
      if (header) {
        header = false;
        continue;
      }
      if (records.size() == o_.max_records) {
        throw CsvError(record.line, fmt::format("more than {} records", o_.max_records));
      }
      records.push_back(std::move(record));
    }
    return records;
  }

 private:
  CsvRecord read_record() {
    CsvRecord record;
    record.line = line_;
    while (true) {
      if (record.fields.size() == o_.max_fields_per_record || fields_ == o_.max_fields) {
        throw CsvError(line_, record.fields.size() == o_.max_fields_per_record
                                  ? fmt::format("more than {} fields in a record", o_.max_fields_per_record)
                                  : fmt::format("more than {} fields in the file", o_.max_fields));
      }
      const bool is_quoted = pos_ < text_.size() && text_[pos_] == '"';
      record.fields.push_back(is_quoted ? quoted() : unquoted());
      ++fields_;
      if (!bytes::valid_utf8(record.fields.back().text)) {
        throw CsvError(line_, fmt::format("field {} is not UTF-8 text", record.fields.size()));
      }
      if (pos_ < text_.size() && text_[pos_] == o_.delimiter) {
        ++pos_;
        continue;
      }
      if (const std::size_t n = line_break(text_, pos_); n > 0) {
        pos_ += n;
        ++line_;
      }
      return record;
    }
  }

  CsvField quoted() {
    const std::size_t opened = line_;
    CsvField f{"", true};
    ++pos_;
    while (true) {
      if (pos_ >= text_.size()) {
        throw CsvError(opened, "a quoted field is never closed");
      }
      const char c = text_[pos_];
      if (c == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          f.text += '"';
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      if (c == '\n') {
        ++line_;
      }
      f.text += c;
      ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] != o_.delimiter && line_break(text_, pos_) == 0) {
      throw CsvError(line_, fmt::format("text after a closing quote (\"{:.20}\"); a quote inside a quoted field is written twice",
                                        text_.substr(pos_)));
    }
    return f;
  }

  CsvField unquoted() {
    CsvField f;
    while (pos_ < text_.size() && text_[pos_] != o_.delimiter && line_break(text_, pos_) == 0) {
      if (text_[pos_] == '"') {
        throw CsvError(line_, "a quote inside an unquoted field (quote the whole field and write the quote twice)");
      }
      f.text += text_[pos_++];
    }
    return f;
  }

  std::string_view text_;
  const CsvOptions& o_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::size_t fields_ = 0;  // in all records
};

}  // namespace

std::vector<CsvRecord> parse_csv(std::string_view text, const CsvOptions& options) {
  return CsvParser(text, options).parse();
}

}  // namespace phasekit::load
