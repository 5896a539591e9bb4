// libFuzzer target: phasekit-load's "{{ expr }}" templates, ifTrue conditions and capture/match JSON
// paths, as a scenario file supplies them ("template\xffpath"; the template is also taken as a JSON
// document when it parses as one, and as a condition). A template that passes the load-time check
// renders without throwing, a condition that parses evaluates; a bad one or a bad path is
// std::invalid_argument; nothing crashes.
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

#include "template.hpp"

namespace {

using nlohmann::json;
using namespace phasekit::load;

const Vars& vars() {
  static const Vars v{{"callId", 7}, {"name", "ada"}, {"list", json::array({1, "two", nullptr})},
                      {"$loopCount", 3}, {"$loopElement", json{{"k", "v"}}}, {"$env.TOKEN", "t0k"},
                      {"n", 5}, {"s", "5"}};
  return v;
}

void render_checked(const json& value) {
  try {
    (void)template_references(value);
  } catch (const std::invalid_argument&) {
    return;  // refused when the scenario loads: never rendered
  }
  std::mt19937_64 rng(1);
  std::string missing;
  (void)render(value, vars(), rng, &missing);
  if (value.is_string()) {
    (void)render_string(value.get_ref<const std::string&>(), vars(), rng, &missing);
  }
}

void evaluate_condition(std::string_view text) {
  try {
    const Condition c(text);
    (void)c.evaluate(vars());
    (void)c.names();
  } catch (const std::invalid_argument&) {
  }
}

void find_path(std::string_view text, const json& document) {
  try {
    const JsonPath path(text);
    (void)path.find(document);
    (void)path.find(json{{"ok", true}, {"items", json::array({json{{"id", 1}}, 2})}, {"0", "zero"}});
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto cut = input.find('\xff');
  const std::string_view text = input.substr(0, cut);
  const std::string_view path = cut == std::string_view::npos ? input : input.substr(cut + 1);
  const json as_string = std::string(text);
  (void)check_expression(text);
  render_checked(as_string);
  evaluate_condition(text);
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!document.is_discarded()) {
    render_checked(document);
  }
  find_path(path, document.is_discarded() ? as_string : document);
  return 0;
}
