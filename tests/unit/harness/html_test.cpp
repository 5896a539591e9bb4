// The charts' layout checked on their geometry, without a browser: every text's estimated box
// (data-box), the plot area and the points, as html_page.hpp emits them. tests/interop/
// harness_report.test.js checks the same pages as Chromium lays them out.
#include "html_page.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "report.hpp"

namespace phasekit::load {
namespace {

struct Box {
  double x = 0, y = 0, w = 0, h = 0;
  std::string text;
};

bool overlaps(const Box& a, const Box& b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

struct Parsed {
  double width = 0, height = 0;
  std::string id;
  std::size_t points = 0;
  Box plot;
  std::vector<Box> texts;
  std::vector<std::pair<std::size_t, std::size_t>> series;  // data-count, circles
};

std::vector<Parsed> charts(const std::string& page) {
  std::vector<Parsed> out;
  const std::regex svg_re(R"re(<svg class="chart" viewBox="0 0 ([0-9.]+) ([0-9.]+)"[^>]*data-chart="([^"]*)" data-points="([0-9]+)">([\s\S]*?)</svg>)re");
  const std::regex plot_re(R"re(<rect class="plot" x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="([0-9.]+)")re");
  const std::regex text_re(R"re(<text [^>]*data-box="([-0-9.]+) ([-0-9.]+) ([-0-9.]+) ([-0-9.]+)"[^>]*>([^<]*))re");
  const std::regex series_re(R"re(<g class="series" data-series="[^"]*" data-count="([0-9]+)">([\s\S]*?)</g>)re");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), svg_re); it != std::sregex_iterator(); ++it) {
    Parsed p;
    p.width = std::stod((*it)[1]);
    p.height = std::stod((*it)[2]);
    p.id = (*it)[3];
    p.points = std::stoul((*it)[4]);
    const std::string body = (*it)[5];
    std::smatch m;
    EXPECT_TRUE(std::regex_search(body, m, plot_re)) << p.id;
    p.plot = {std::stod(m[1]), std::stod(m[2]), std::stod(m[3]), std::stod(m[4]), "plot"};
    for (auto t = std::sregex_iterator(body.begin(), body.end(), text_re); t != std::sregex_iterator(); ++t) {
      p.texts.push_back({std::stod((*t)[1]), std::stod((*t)[2]), std::stod((*t)[3]), std::stod((*t)[4]), (*t)[5]});
    }
    for (auto s = std::sregex_iterator(body.begin(), body.end(), series_re); s != std::sregex_iterator(); ++s) {
      const std::string inner = (*s)[2];
      std::size_t circles = 0;
      for (std::size_t at = inner.find("<circle"); at != std::string::npos; at = inner.find("<circle", at + 1)) {
        ++circles;
      }
      p.series.emplace_back(std::stoul((*s)[1]), circles);
    }
    out.push_back(std::move(p));
  }
  return out;
}

/// Nothing overlaps, everything is inside the chart, every point is drawn.
void expect_clean(const Parsed& c) {
  SCOPED_TRACE(c.id);
  ASSERT_FALSE(c.texts.empty());
  for (std::size_t i = 0; i < c.texts.size(); ++i) {
    const Box& a = c.texts[i];
    EXPECT_GE(a.x, 0) << a.text;
    EXPECT_GE(a.y, 0) << a.text;
    EXPECT_LE(a.x + a.w, c.width) << a.text;
    EXPECT_LE(a.y + a.h, c.height) << a.text;
    EXPECT_FALSE(overlaps(a, c.plot)) << "\"" << a.text << "\" is drawn on the plot";
    for (std::size_t j = i + 1; j < c.texts.size(); ++j) {
      EXPECT_FALSE(overlaps(a, c.texts[j])) << "\"" << a.text << "\" overlaps \"" << c.texts[j].text << "\"";
    }
  }
  for (const auto& [count, circles] : c.series) {
    EXPECT_EQ(count, circles);
  }
}

html::Series series(std::string name, std::size_t n, double scale) {
  html::Series s{std::move(name), "#2b6cb0", {}};
  for (std::size_t i = 0; i < n; ++i) {
    s.values.emplace_back(scale * static_cast<double>((i * 7919) % 101));
  }
  return s;
}

TEST(Chart, TitleLegendAxesAndDataNeverOverlap) {
  std::vector<double> x;
  for (int i = 1; i <= 90; ++i) {
    x.push_back(i * 1.0);
  }
  const std::string svg = html::render({.id = "latency",
                                        .title = "Response time percentiles (socketio.response_time)",
                                        .y_title = "ms",
                                        .x_title = "elapsed (s)",
                                        .x = x,
                                        .series = {series("p50", 90, 1), series("p95", 90, 3), series("p99", 90, 9)},
                                        .rules = {{"SLO p95<200ms", "#dd6b20", 200}},
                                        .bands = {30, 60},
                                        .bands_name = "a step that failed, with a long name"});
  const auto parsed = charts(svg);
  ASSERT_EQ(parsed.size(), 1u);
  expect_clean(parsed[0]);
  EXPECT_EQ(parsed[0].points, 90u);
  ASSERT_EQ(parsed[0].series.size(), 3u);
  EXPECT_EQ(parsed[0].series[0].first, 90u);
}

TEST(Chart, ManyLongLegendLabelsWrapAndTheLongestAreCutWithATooltip) {
  std::vector<html::Series> many;
  for (const char* code : {"connect_refused", "connect_timeout", "handshake_failed", "response_timeout", "ack_timeout",
                           "match_failed", "capture_failed", "server_disconnect", "transport_error", "sockets_exhausted"}) {
    many.push_back(series(code, 12, 1));
  }
  many.push_back(series(std::string(200, 'x') + " a label far too long for any legend", 12, 1));
  const std::vector<double> x{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::string svg = html::render(
      {.id = "errors",
       .title = std::string("Errors per interval, by code, with a title that goes on and on ") + std::string(80, 'y'),
       .y_title = "errors",
       .x_title = "elapsed (s)",
       .x = x,
       .series = many,
       .counts = true});
  const auto parsed = charts(svg);
  ASSERT_EQ(parsed.size(), 1u);
  expect_clean(parsed[0]);
  EXPECT_NE(svg.find("…<title>Errors per interval"), std::string::npos) << "the title is cut with its full text as a tooltip";
  EXPECT_NE(svg.find("a label far too long for any legend</title>"), std::string::npos);
  // The legend needed more than one row: the plot starts lower than with a single row.
  const auto one_row =
      charts(html::render({.id = "e", .title = "Errors", .y_title = "errors", .x_title = "elapsed (s)", .x = x, .series = {many[0]}}));
  ASSERT_EQ(one_row.size(), 1u);
  EXPECT_GT(parsed[0].plot.y, one_row[0].plot.y + 10);
}

TEST(Chart, LargeValuesWideTickLabelsAndAnEmptySeries) {
  const std::vector<double> x{100, 300, 600, 1200, 2500, 5000, 10000, 15000};
  html::Series empty{"p99", "#c53030", std::vector<std::optional<double>>(x.size())};
  const std::string svg = html::render({.id = "capacity",
                                        .title = "Response time by step",
                                        .y_title = "ms",
                                        .x_title = "concurrent users of the step",
                                        .x = x,
                                        .series = {series("p50", x.size(), 12345.678), empty},
                                        .rules = {{"SLO p95<2000000ms", "#dd6b20", 2e6}},
                                        .bands = {15000},
                                        .bands_name = "step that failed"});
  const auto parsed = charts(svg);
  ASSERT_EQ(parsed.size(), 1u);
  expect_clean(parsed[0]);
  ASSERT_EQ(parsed[0].series.size(), 2u);
  EXPECT_EQ(parsed[0].series[1].first, 0u);
}

TEST(Chart, TextWidthsUseTheWideFontsMetrics) {
  EXPECT_DOUBLE_EQ(html::text_width("0", 10), 6.36);
  EXPECT_GT(html::text_width("W", 11, true), html::text_width("W", 11));
  EXPECT_DOUBLE_EQ(html::text_width("µs", 10), 10 + 5.21);  // a non-ASCII character counts as 1 em
}

Report report_with(std::size_t intervals) {
  Report r;
  r.meta = {{"scenario", "s.yml"}, {"target", "http://127.0.0.1:1"}, {"intervalSeconds", 1}};
  for (std::size_t k = 0; k < intervals; ++k) {
    Interval i;
    i.start_s = static_cast<double>(k);
    i.end_s = static_cast<double>(k + 1);
    i.users_active = k;
    for (std::uint64_t n = 0; n < 20; ++n) {
      i.metrics.record(kResponseTime, 1000 + 50 * n * k);
    }
    i.metrics.add(kEmits, 20);
    i.metrics.add(kVusersCreated, 2);
    if (k % 3 == 0) {
      i.metrics.add("errors.response_timeout", 1);
    }
    if (k % 5 == 0) {
      i.metrics.add("errors.match_failed", 2);
    }
    r.total.merge(i.metrics);
    r.intervals.push_back(std::move(i));
  }
  r.duration_s = static_cast<double>(intervals);
  return r;
}

TEST(Html, EveryChartOfARunReportHasAPointPerInterval) {
  const std::string page = render_html(report_with(75));
  const auto parsed = charts(page);
  ASSERT_EQ(parsed.size(), 4u);  // latency, throughput, users, errors
  for (const Parsed& c : parsed) {
    expect_clean(c);
    EXPECT_EQ(c.points, 75u) << c.id;
    for (const auto& [count, circles] : c.series) {
      EXPECT_EQ(count, 75u) << c.id;
    }
  }
}

}  // namespace
}  // namespace phasekit::load
