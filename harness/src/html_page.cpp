#include "html_page.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace phasekit::load::html {
namespace {

// Advance widths of DejaVu Sans (Book and Bold) for ASCII 32..126, in thousandths of an em, as
// Chromium measures them (canvas measureText at 1000 px). Verdana's are about the same; Arial,
// Helvetica, Segoe UI and Liberation Sans are narrower.
constexpr std::array<unsigned short, 95> kBook{
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,   //  !"#$%&'()*+,-./
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,   // 0-9 :;<=>?
    1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,  // @A-O
    603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,   // P-Z [\]^_
    500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,   // `a-o
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838};      // p-z {|}~
constexpr std::array<unsigned short, 95> kBold{
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365,
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580,
    1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850,
    733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500,
    500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687,
    716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838};
constexpr double kWide = 1000;  // any other character: as wide as the widest ASCII ones

// A text's box around its baseline, as browsers lay it out: DejaVu Sans' ascent is 0.93 em and its
// descent 0.24 em; a little more on each side.
constexpr double kAscent = 0.95;
constexpr double kHeight = 1.2;

// The chart's geometry (user units of the viewBox).
constexpr double kW = 720;
constexpr double kPad = 8;
constexpr double kTitlePx = 13;
constexpr double kAxisPx = 11;
constexpr double kLegendPx = 11;
constexpr double kLegendRow = 17;
constexpr double kLegendSwatch = 14;
constexpr double kLegendGap = 16;
constexpr double kLegendLabelMax = 300;
constexpr double kPlotHeight = 180;
constexpr double kBandWidth = 14;
constexpr const char* kBandColor = "#fed7d7";

struct Box {
  double x, y, w, h;
};

/// A text element: anchored at (x, baseline), estimated box in data-box, cut to max_w with a
/// tooltip of its full text when longer.
struct Text {
  std::string text;
  double x = 0;
  double baseline = 0;
  double px = kAxisPx;
  bool bold = false;
  std::string anchor = "start";  // start, middle, end
  std::string css;
  bool rotated = false;  // -90°, about (x, baseline): reads bottom to top
  double max_w = 1e9;

  [[nodiscard]] std::string shown() const {
    if (text_width(text, px, bold) <= max_w) {
      return text;
    }
    std::string cut = text;
    while (!cut.empty() && text_width(cut + "…", px, bold) > max_w) {
      cut.pop_back();
      while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) {
        cut.pop_back();  // not inside a UTF-8 sequence
      }
      if (!cut.empty() && static_cast<unsigned char>(cut.back()) >= 0xC0) {
        cut.pop_back();
      }
    }
    return cut + "…";
  }
  [[nodiscard]] Box box() const {
    const double w = text_width(shown(), px, bold);
    const double start = anchor == "middle" ? -w / 2 : anchor == "end" ? -w : 0;
    if (rotated) {
      return {x - kAscent * px, baseline - start - w, kHeight * px, w};
    }
    return {x + start, baseline - kAscent * px, w, kHeight * px};
  }
  [[nodiscard]] std::string svg() const {
    const std::string s = shown();
    const Box b = box();
    std::string out = fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="{}" text-anchor="{}" data-box="{:.1f} {:.1f} {:.1f} {:.1f}")",
                                  x, baseline, css, anchor, b.x, b.y, b.w, b.h);
    if (rotated) {
      out += fmt::format(" transform=\"rotate(-90 {:.1f} {:.1f})\"", x, baseline);
    }
    out += '>' + escape(s);
    if (s != text) {
      out += "<title>" + escape(text) + "</title>";
    }
    return out + "</text>";
  }
};

/// A round step (1, 2, 2.5, 5 × 10^k) at least span / intervals.
double nice_step(double span, double intervals) {
  const double raw = std::max(span / intervals, 1e-9);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (raw <= m * magnitude * (1 + 1e-9)) {
      return m * magnitude;
    }
  }
  return 10 * magnitude;
}

/// The text of a tick at v on an axis of this step: as many decimals as the step needs.
std::string tick_text(double v, double step) {
  int decimals = 0;
  while (decimals < 6) {
    const double scaled = step * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) < 1e-6) {
      break;
    }
    ++decimals;
  }
  return fmt::format("{:.{}f}", v, decimals);
}

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

double text_width(std::string_view text, double font_px, bool bold) {
  const auto& table = bold ? kBold : kBook;
  double thousandths = 0;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 32 && u < 127) {
      thousandths += table[u - 32];
    } else if ((u & 0xC0) != 0x80) {  // the first byte of any other character
      thousandths += kWide;
    }
  }
  return thousandths * font_px / 1000.0;
}

std::string number(double v) {
  return v >= 100 || v == std::floor(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v);
}

std::string render(const LineChart& c) {
  std::vector<Text> texts;

  // Band 1: the title.
  Text title{c.title, kPad, kPad + kAscent * kTitlePx, kTitlePx, true, "start", "title"};
  title.max_w = kW - 2 * kPad;
  texts.push_back(title);
  const Box title_box = title.box();

  // Band 2: the legend, wrapping onto as many rows as it needs.
  enum class Swatch { series, rule, band };
  struct Item {
    std::string name;
    std::string color;
    Swatch swatch;
  };
  std::vector<Item> items;
  for (const Series& s : c.series) {
    items.push_back({s.name, s.color, Swatch::series});
  }
  for (const Rule& r : c.rules) {
    items.push_back({r.name, r.color, Swatch::rule});
  }
  if (!c.bands.empty()) {
    items.push_back({c.bands_name, kBandColor, Swatch::band});
  }
  std::string legend;
  double lx = kPad;
  double row_baseline = title_box.y + title_box.h + 6 + kAscent * kLegendPx;
  for (const Item& item : items) {
    Text label{item.name, 0, row_baseline, kLegendPx, false, "start", "legend"};
    label.max_w = kLegendLabelMax;
    const double w = kLegendSwatch + 4 + label.box().w;
    if (lx > kPad && lx + w > kW - kPad) {
      lx = kPad;
      row_baseline += kLegendRow;
    }
    label.x = lx + kLegendSwatch + 4;
    label.baseline = row_baseline;
    const double mid = row_baseline - 0.35 * kLegendPx;
    if (item.swatch == Swatch::rule) {
      legend += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2" stroke-dasharray="4 3"/>)",
                            lx, lx + kLegendSwatch, mid, mid, item.color);
    } else if (item.swatch == Swatch::band) {
      legend += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{}" height="12" fill="{}"/>)", lx + 3, mid - 6,
                            kLegendSwatch - 6, item.color);
    } else {
      legend += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{}" height="8" fill="{}"/>)", lx, mid - 4,
                            kLegendSwatch, item.color);
    }
    texts.push_back(label);
    lx += w + kLegendGap;
  }
  const double legend_bottom = items.empty() ? title_box.y + title_box.h : row_baseline + (kHeight - kAscent) * kLegendPx;

  // Band 3: the plot; its left edge leaves room for the y axis' title and tick labels.
  double y_data = 0;
  for (const Series& s : c.series) {
    for (const auto& v : s.values) {
      y_data = std::max(y_data, v.value_or(0));
    }
  }
  for (const Rule& r : c.rules) {
    y_data = std::max(y_data, r.value * 1.1);
  }
  double y_step = y_data > 0 ? nice_step(y_data, 4) : 0.25;
  if (c.counts) {
    y_step = std::max(1.0, y_step);
  }
  const double y_max = y_data > 0 ? y_step * std::ceil(y_data / y_step - 1e-9) : 1;
  std::vector<std::pair<double, std::string>> y_ticks;
  double widest_y = 0;
  const auto y_count = static_cast<int>(std::lround(y_max / y_step));
  for (int k = 0; k <= y_count; ++k) {
    const double v = k * y_step;
    y_ticks.emplace_back(v, tick_text(v, y_step));
    widest_y = std::max(widest_y, text_width(y_ticks.back().second, kAxisPx));
  }
  const double plot_top = legend_bottom + 14;
  const double plot_bottom = plot_top + kPlotHeight;
  const double plot_left = kPad + kHeight * kAxisPx + 6 + widest_y + 6;

  double x_max = 1;
  for (const double v : c.x) {
    x_max = std::max(x_max, v);
  }
  // X ticks: a round step whose labels keep 12 px apart at the plot's width.
  double x_step = nice_step(x_max, 6);
  std::vector<std::pair<double, std::string>> x_ticks;
  double plot_right = kW - kPad;
  for (int attempt = 0; attempt < 20; ++attempt) {
    x_ticks.clear();
    double widest = 0;
    const auto x_count = static_cast<int>(std::floor(x_max / x_step + 1e-9));
    for (int k = 0; k <= x_count; ++k) {
      const double v = k * x_step;
      x_ticks.emplace_back(v, tick_text(v, x_step));
      widest = std::max(widest, text_width(x_ticks.back().second, kAxisPx));
    }
    plot_right = kW - kPad - widest / 2;
    const double spacing = (plot_right - plot_left) * x_step / x_max;
    if (spacing >= widest + 12 || x_ticks.size() <= 2) {
      break;
    }
    x_step = nice_step(x_max, static_cast<double>(x_ticks.size()) / 2);
  }
  const auto px = [&](double v) { return plot_left + v / x_max * (plot_right - plot_left); };
  const auto py = [&](double v) { return plot_top + (1 - std::clamp(v, 0.0, y_max) / y_max) * kPlotHeight; };

  // Band 4: the axes' labels.
  for (const auto& [v, label] : y_ticks) {
    texts.push_back({label, plot_left - 6, py(v) + 0.35 * kAxisPx, kAxisPx, false, "end", "axis"});
  }
  for (const auto& [v, label] : x_ticks) {
    // Below the lowest y label's box (which reaches 0.6 em under the plot), so that "0" and "0" never touch.
    texts.push_back({label, px(v), plot_bottom + 8 + kAscent * kAxisPx, kAxisPx, false, "middle", "axis"});
  }
  const double x_title_baseline = plot_bottom + 8 + kHeight * kAxisPx + 4 + kAscent * kAxisPx;
  Text x_title{c.x_title, (plot_left + plot_right) / 2, x_title_baseline, kAxisPx, false, "middle", "axis"};
  x_title.max_w = plot_right - plot_left;
  texts.push_back(x_title);
  Text y_title{c.y_title, kPad + kAscent * kAxisPx, (plot_top + plot_bottom) / 2, kAxisPx, false, "middle", "axis"};
  y_title.rotated = true;
  y_title.max_w = kPlotHeight;
  texts.push_back(y_title);
  const double height = x_title_baseline + (kHeight - kAscent) * kAxisPx + kPad;

  std::size_t points = 0;
  for (const Series& s : c.series) {
    points = std::max(points, std::min(s.values.size(), c.x.size()));
  }
  std::string svg = fmt::format(
      R"(<svg class="chart" viewBox="0 0 {} {:.0f}" role="img" aria-label="{}" data-chart="{}" data-points="{}">)", kW,
      std::ceil(height), escape(c.title), escape(c.id), points);
  svg += fmt::format(R"(<rect class="plot" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"/>)", plot_left,
                     plot_top, plot_right - plot_left, kPlotHeight);
  for (const double b : c.bands) {
    const double left = std::max(plot_left, px(b) - kBandWidth / 2);
    const double right = std::min(plot_right, px(b) + kBandWidth / 2);
    svg += fmt::format(R"(<rect class="band" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}: {} {}</title></rect>)",
                       left, plot_top, right - left, kPlotHeight, kBandColor, escape(c.bands_name), number(b),
                       escape(c.x_title));
  }
  for (const auto& [v, label] : y_ticks) {
    svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" class="grid"/>)", plot_left,
                       plot_right, py(v), py(v));
  }
  for (const Rule& r : c.rules) {
    svg += fmt::format(R"(<line class="rule" x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="1.5" stroke-dasharray="6 4"><title>{}</title></line>)",
                       plot_left, plot_right, py(r.value), py(r.value), r.color, escape(r.name));
  }
  for (const Series& s : c.series) {
    std::string polyline;
    std::string circles;
    std::size_t count = 0;
    for (std::size_t i = 0; i < c.x.size() && i < s.values.size(); ++i) {
      if (!s.values[i]) {
        continue;
      }
      ++count;
      polyline += fmt::format("{:.1f},{:.1f} ", px(c.x[i]), py(*s.values[i]));
      circles += fmt::format(R"(<circle class="pt" cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"><title>{}: {} at {} {}</title></circle>)",
                             px(c.x[i]), py(*s.values[i]), s.color, escape(s.name), number(*s.values[i]),
                             number(c.x[i]), escape(c.x_title));
    }
    svg += fmt::format(R"(<g class="series" data-series="{}" data-count="{}"><polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>{}</g>)",
                       escape(s.name), count, s.color, polyline, circles);
  }
  svg += legend;
  for (const Text& t : texts) {
    svg += t.svg();
  }
  return svg + "</svg>\n";
}

std::string page_start(std::string_view title) {
  return fmt::format(R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:780px;color:#1a202c;padding:0 12px}}
h1{{font-size:22px;margin:0 0 4px}}h2{{font-size:16px;margin:28px 0 8px}}
table{{border-collapse:collapse;width:100%}}td,th{{padding:4px 8px;border-bottom:1px solid #e2e8f0;text-align:right;vertical-align:top}}
td:first-child,th:first-child,td.text,th.text{{text-align:left}}.ok{{color:#2f855a;font-weight:600}}.fail{{color:#c53030;font-weight:600}}
.muted{{color:#718096}}.verdict{{font-size:16px;margin:12px 0}}
.chart{{display:block;width:100%;height:auto;margin:12px 0}}
.chart text{{font-family:"DejaVu Sans",Verdana,sans-serif}}.chart .plot{{fill:#fbfcfd}}.chart .grid{{stroke:#e2e8f0}}
.chart .axis{{font-size:11px;fill:#4a5568}}.chart .legend{{font-size:11px;fill:#1a202c}}
.chart .title{{font-size:13px;font-weight:700;fill:#1a202c}}
</style></head><body>
)",
                     escape(title));
}

std::string page_end() { return "</body></html>\n"; }

}  // namespace phasekit::load::html
