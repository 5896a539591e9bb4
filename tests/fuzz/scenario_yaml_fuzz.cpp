// libFuzzer target: phasekit-load's scenario files (Artillery's YAML, or JSON when the input starts
// with '{'), read and validated as `phasekit-load run FILE` does. A bad file is a ScenarioError
// naming what is wrong; anything else thrown, a crash or a hang is a finding. A scenario that loads
// answers its derived questions (duration, bounds, metric catalog) without trouble. Every payload
// file it names reads as the input itself, and the input goes through the CSV parser as well: a bad
// one is a CsvError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "csv.hpp"
#include "scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phasekit::load;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool is_json = !text.empty() && text.front() == '{';
  try {
    SourceLines lines;
    const auto document = parse_document(text, is_json, "fuzz.yml", &lines);
    const Scenario s = parse_scenario(document, "fuzz.yml", &lines, [&text](const std::string&) { return text; });
    (void)s.duration_s();
    (void)s.flow_bound_s();
    (void)s.catalog();
  } catch (const ScenarioError&) {
    // refused with a message: what a bad file should get
  }
  for (const char delimiter : {',', ';'}) {
    try {
      CsvOptions o;
      o.delimiter = delimiter;
      o.skip_header = delimiter == ';';
      (void)parse_csv(text, o);
    } catch (const CsvError&) {
    }
  }
  return 0;
}
