#pragma once
// CSV text as Artillery's payload files use it (RFC 4180 with a choice of delimiter): a pure parser
// with limits, no I/O. Quoted fields may hold the delimiter, line breaks and doubled quotes ("a ""b""");
// records end with \n or \r\n; a UTF-8 byte order mark at the start is skipped.
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::load {

/// What is wrong with a CSV text, and on which line (1-based) of it.
class CsvError : public std::runtime_error {
 public:
  CsvError(std::size_t line, const std::string& what) : std::runtime_error(what), line_(line) {}
  [[nodiscard]] std::size_t line() const noexcept { return line_; }

 private:
  std::size_t line_;
};

struct CsvOptions {
  char delimiter = ',';
  bool skip_header = false;       // the first record names the columns: not data
  bool skip_empty_lines = true;   // a line with nothing on it is no record
  std::size_t max_records = 1'000'000;
  std::size_t max_fields_per_record = 1000;
  std::size_t max_fields = 4'000'000;  // in all records: bounds the memory a file can take
};

struct CsvField {
  std::string text;
  bool quoted = false;  // written in quotes (Artillery's cast leaves those as strings)
};

struct CsvRecord {
  std::size_t line = 0;  // where the record starts
  std::vector<CsvField> fields;
};

/// The records of text. Throws CsvError for an unclosed quote, a quote inside an unquoted field,
/// text after a closing quote, text that is not UTF-8, or more records or fields than the options allow.
std::vector<CsvRecord> parse_csv(std::string_view text, const CsvOptions& options);

}  // namespace phasekit::load
