#pragma once
// What the HTML reports share: one page shell (inline CSS; no script, nothing fetched) and line
// charts in inline SVG laid out so that nothing overlaps. A chart reserves a band for its title, then
// for its legend (items wrap onto more rows), then the plot, then the axes; a label too long for its
// place is cut with "…" and keeps its full text as a tooltip. Text widths are estimated from the
// advance widths of DejaVu Sans, the first font the charts ask for and wider than the usual
// fallbacks, so an estimate is never short of what a browser draws.
//
// Every chart carries what a test needs to check it without a browser: data-chart and data-points
// on the <svg>, data-series and data-count on each series, data-box="x y w h" (the estimated box) on
// each text, and the plot area as <rect class="plot">.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phasekit::load::html {

std::string escape(std::string_view s);

/// Width in px of text in the charts' font at font_px, bold or not (an upper bound for the fonts the
/// charts ask for).
double text_width(std::string_view text, double font_px, bool bold = false);

struct Series {
  std::string name;
  std::string color;
  std::vector<std::optional<double>> values;  // one per x; nullopt: no point there
};

/// A horizontal reference line across the plot (an SLO limit); its label goes in the legend.
struct Rule {
  std::string name;
  std::string color;
  double value = 0;
};

struct LineChart {
  std::string id = {};       // data-chart
  std::string title = {};
  std::string y_title = {};  // the y axis' title, with its unit ("ms")
  std::string x_title = {};  // the x axis' title ("elapsed (s)", "users")
  std::vector<double> x = {};
  std::vector<Series> series = {};
  std::vector<Rule> rules = {};
  bool counts = false;  // the values are whole numbers: no tick between two of them
  // Bands across the plot at these x (capacity: the steps that failed), named in the legend.
  std::vector<double> bands = {};
  std::string bands_name = {};
};

/// The chart as an <svg> element.
std::string render(const LineChart& chart);

/// "<!doctype html>…<body>": the page's start, with the shared stylesheet.
std::string page_start(std::string_view title);
std::string page_end();

/// 1234 → "1234", 12.5 → "12.50", 0.123 → "0.12".
std::string number(double v);

}  // namespace phasekit::load::html
