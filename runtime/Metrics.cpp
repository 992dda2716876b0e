//===- Metrics.cpp - The per-epoch metrics CSV and its plot ---------------===//
//
// The CSV is read back strictly (exact header, six fields, numbers or empty)
// because a resumed run appends to it. The plot uses cairo's image surface
// and toy text API: two panels, each with a data-to-pixel mapping whose
// ranges are rounded out to "nice" tick steps (1, 2 or 5 times a power of
// ten), lines broken at missing values, and a marker on every point so that
// a single epoch still shows.
//
//===----------------------------------------------------------------------===//
#include "runtime/Metrics.h"
#include "support/Files.h"
#include "ir/Graph.h"
#include "runtime/Safetensors.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <algorithm>
#include <cairo.h>
#include <cstdint>
#include <memory>
#include <string>

using namespace kiln;

//===----------------------------------------------------------------------===//
// CSV
//===----------------------------------------------------------------------===//

static void writeField(llvm::raw_ostream &os, double v, const char *fmt) {
  os << ',';
  if (!std::isnan(v))
    os << llvm::format(fmt, v);
}

llvm::Error kiln::writeMetricsCsv(llvm::StringRef path,
                                  llvm::ArrayRef<EpochMetrics> rows) {
  return writeFileAtomically(path, [&](llvm::raw_ostream &os) {
    os << kMetricsHeader << '\n';
    for (const EpochMetrics &m : rows) {
      os << m.epoch;
      writeField(os, m.trainLoss, "%.6g");
      writeField(os, m.testLoss, "%.6g");
      writeField(os, m.testAccuracy, "%.6g");
      writeField(os, m.seconds, "%.3f");
      writeField(os, m.msPerStep, "%.4f");
      os << '\n';
    }
  });
}

llvm::Expected<std::vector<EpochMetrics>>
kiln::readMetricsCsv(llvm::StringRef path) {
  auto buf = readDataFile(path);
  if (!buf)
    return buf.takeError();
  auto bad = [&](size_t line, const llvm::Twine &why) {
    return makeError(path + ":" + llvm::Twine(line) + ": " + why);
  };
  llvm::SmallVector<llvm::StringRef, 64> lines;
  (*buf)->getBuffer().split(lines, '\n');
  if (!lines.empty() && lines.back().empty())
    lines.pop_back();
  if (lines.empty() || lines[0].rtrim('\r') != kMetricsHeader)
    return bad(1, llvm::Twine("the header is not '") + kMetricsHeader + "'");
  static const char *const names[] = {
      "train_loss", "test_loss", "test_accuracy", "seconds", "ms_per_step"};
  std::vector<EpochMetrics> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t lineNo = i + 1;
    llvm::SmallVector<llvm::StringRef, 6> fields;
    lines[i].rtrim('\r').split(fields, ',');
    if (fields.size() != 6)
      return bad(lineNo, "expected 6 comma-separated fields, found " +
                             llvm::Twine(fields.size()));
    EpochMetrics m;
    if (fields[0].getAsInteger(10, m.epoch) || m.epoch < 1)
      return bad(lineNo, "epoch '" + fields[0] + "' is not a positive integer");
    double *values[] = {&m.trainLoss, &m.testLoss, &m.testAccuracy, &m.seconds,
                        &m.msPerStep};
    for (int j = 0; j < 5; ++j) {
      llvm::StringRef f = fields[j + 1];
      if (f.empty())
        continue; // Not measured: stays NaN.
      if (f.getAsDouble(*values[j]))
        return bad(lineNo,
                   llvm::Twine(names[j]) + " '" + f + "' is not a number");
    }
    rows.push_back(m);
  }
  return rows;
}

//===----------------------------------------------------------------------===//
// Plot
//===----------------------------------------------------------------------===//

namespace {

constexpr int kWidth = 1000, kHeight = 420, kPanelWidth = kWidth / 2;
// The plot area's margins inside each panel, in pixels.
constexpr double kLeft = 70, kRight = 20, kTop = 62, kBottom = 52;
// Data stays this far inside the frame, so markers at the ends are whole.
constexpr double kInset = 10;

struct Series {
  const char *label;
  PlotColour colour;
  double EpochMetrics::*field;
};

/// A data range rounded out to whole tick steps.
struct Range {
  double lo, hi, step;
};

/// 1, 2 or 5 times a power of ten, giving about `target` steps over `span`.
double niceStep(double span, int target) {
  double raw = span / target;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

Range niceRange(double lo, double hi, bool integral) {
  if (!(lo <= hi)) // No data.
    lo = 0, hi = 1;
  if (lo == hi) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  double step = niceStep(hi - lo, 5);
  if (integral)
    step = std::max(1.0, std::round(step));
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step, step};
}

void setColour(cairo_t *cr, PlotColour c) {
  cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

/// Draws `text` with its anchor point at (x, y): `ax` 0, 0.5 or 1 for its
/// left, centre or right; `ay` likewise for its top, middle or bottom.
void drawText(cairo_t *cr, double x, double y, const std::string &text,
              double ax, double ay) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, text.c_str(), &e);
  cairo_move_to(cr, x - e.x_bearing - ax * e.width,
                y - e.y_bearing - ay * e.height);
  cairo_show_text(cr, text.c_str());
}

std::string tickLabel(double v, double step) {
  if (std::fabs(v) < step * 1e-9)
    v = 0; // Not "-0" or "1e-17".
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format("%g", v);
  return s;
}

/// Draws one panel: frame, grid, ticks, lines with markers, legend.
void drawPanel(cairo_t *cr, double x0, const char *name,
               llvm::ArrayRef<EpochMetrics> rows,
               llvm::ArrayRef<Series> series) {
  double px0 = x0 + kLeft, px1 = x0 + kPanelWidth - kRight, py0 = kTop,
         py1 = kHeight - kBottom;
  double eLo = INFINITY, eHi = -INFINITY, vLo = INFINITY, vHi = -INFINITY;
  for (const EpochMetrics &m : rows) {
    eLo = std::min(eLo, double(m.epoch));
    eHi = std::max(eHi, double(m.epoch));
    for (const Series &s : series)
      if (std::isfinite(m.*s.field)) {
        vLo = std::min(vLo, m.*s.field);
        vHi = std::max(vHi, m.*s.field);
      }
  }
  bool hasData = vLo <= vHi;
  if (eLo == eHi) // One epoch: put it in the middle.
    eLo -= 1, eHi += 1;
  Range xr = niceRange(eLo, eHi, /*integral=*/true);
  Range yr = niceRange(vLo, vHi, /*integral=*/false);
  auto px = [&](double e) {
    return px0 + kInset +
           (e - xr.lo) / (xr.hi - xr.lo) * (px1 - px0 - 2 * kInset);
  };
  auto py = [&](double v) {
    return py1 - kInset -
           (v - yr.lo) / (yr.hi - yr.lo) * (py1 - py0 - 2 * kInset);
  };

  cairo_set_font_size(cr, 14);
  cairo_set_source_rgb(cr, 0, 0, 0);
  drawText(cr, (px0 + px1) / 2, py0 - 10, name, 0.5, 1);

  // Grid and tick labels. Ticks are counted, not accumulated, so that
  // rounding cannot add or drop the last one.
  cairo_set_font_size(cr, 11);
  cairo_set_line_width(cr, 1);
  long nx = std::lround((xr.hi - xr.lo) / xr.step);
  for (long i = 0; i <= nx; ++i) {
    double e = xr.lo + i * xr.step, x = std::round(px(e)) + 0.5;
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, x, py0);
    cairo_line_to(cr, x, py1);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    drawText(cr, x, py1 + 6, tickLabel(e, xr.step), 0.5, 0);
  }
  long ny = std::lround((yr.hi - yr.lo) / yr.step);
  for (long i = 0; i <= ny; ++i) {
    double v = yr.lo + i * yr.step, y = std::round(py(v)) + 0.5;
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, px0, y);
    cairo_line_to(cr, px1, y);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    drawText(cr, px0 - 6, y, tickLabel(v, yr.step), 1, 0.5);
  }
  cairo_set_font_size(cr, 12);
  drawText(cr, (px0 + px1) / 2, py1 + 26, "epoch", 0.5, 0);
  cairo_rectangle(cr, px0 + 0.5, py0 + 0.5, px1 - px0, py1 - py0);
  cairo_stroke(cr);
  if (!hasData) {
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    drawText(cr, (px0 + px1) / 2, (py0 + py1) / 2, "no data", 0.5, 0.5);
    return;
  }

  // Each series: a line broken at missing values, and a marker per point.
  for (const Series &s : series) {
    setColour(cr, s.colour);
    cairo_set_line_width(cr, 2);
    bool drawing = false;
    for (const EpochMetrics &m : rows) {
      double v = m.*s.field;
      if (!std::isfinite(v)) {
        drawing = false;
        continue;
      }
      if (drawing)
        cairo_line_to(cr, px(double(m.epoch)), py(v));
      else
        cairo_move_to(cr, px(double(m.epoch)), py(v));
      drawing = true;
    }
    cairo_stroke(cr);
    for (const EpochMetrics &m : rows)
      if (std::isfinite(m.*s.field)) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, px(double(m.epoch)), py(m.*s.field), 3.5, 0, 2 * M_PI);
      }
    cairo_fill(cr);
  }

  // The legend lists the series that have data, in the corner that hides
  // the fewest samples of their lines.
  llvm::SmallVector<const Series *, 2> shown;
  llvm::SmallVector<std::pair<double, double>, 256> samples;
  for (const Series &s : series) {
    const EpochMetrics *prev = nullptr;
    for (const EpochMetrics &m : rows) {
      if (!std::isfinite(m.*s.field)) {
        prev = nullptr;
        continue;
      }
      if (shown.empty() || shown.back() != &s)
        shown.push_back(&s);
      for (int k = prev ? 0 : 16; k <= 16; ++k) {
        double t = k / 16.0, e = prev ? prev->epoch : m.epoch,
               v = prev ? prev->*s.field : m.*s.field;
        samples.push_back(
            {px(e + t * (m.epoch - e)), py(v + t * (m.*s.field - v))});
      }
      prev = &m;
    }
  }
  double textWidth = 0;
  cairo_set_font_size(cr, 12);
  for (const Series *s : shown) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s->label, &e);
    textWidth = std::max(textWidth, e.x_advance);
  }
  double boxW = 40 + textWidth, boxH = 8 + 18 * shown.size();
  double bestX = 0, bestY = 0;
  size_t bestHidden = SIZE_MAX;
  for (auto [right, top] : {std::pair(true, true), std::pair(true, false),
                            std::pair(false, true), std::pair(false, false)}) {
    double x = std::round(right ? px1 - 8 - boxW : px0 + 8),
           y = std::round(top ? py0 + 8 : py1 - 8 - boxH);
    size_t hidden = llvm::count_if(samples, [&](auto p) {
      return p.first > x - 4 && p.first < x + boxW + 4 && p.second > y - 4 &&
             p.second < y + boxH + 4;
    });
    if (hidden < bestHidden)
      bestX = x, bestY = y, bestHidden = hidden;
  }
  double bx = bestX, by = bestY;
  cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
  cairo_rectangle(cr, bx, by, boxW, boxH);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (size_t i = 0; i < shown.size(); ++i) {
    double y = by + 13 + 18 * i;
    setColour(cr, shown[i]->colour);
    cairo_rectangle(cr, bx + 6, y - 1, 22, 2);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    drawText(cr, bx + 34, y, shown[i]->label, 0, 0.5);
  }
}

cairo_status_t appendPng(void *closure, const unsigned char *data,
                         unsigned length) {
  static_cast<std::string *>(closure)->append(
      reinterpret_cast<const char *>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

} // namespace

llvm::Error kiln::plotMetrics(llvm::StringRef path,
                              llvm::ArrayRef<EpochMetrics> rows,
                              llvm::StringRef title) {
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, kWidth, kHeight),
      cairo_surface_destroy);
  if (auto st = cairo_surface_status(surface.get()))
    return makeError(path +
                     ": cannot draw the plot: " + cairo_status_to_string(st));
  {
    std::unique_ptr<cairo_t, decltype(&cairo_destroy)> owner(
        cairo_create(surface.get()), cairo_destroy);
    cairo_t *cr = owner.get();
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 16);
    drawText(cr, kWidth / 2.0, 12, title.str(), 0.5, 0);
    const Series loss[] = {
        {"train loss", kTrainLossColour, &EpochMetrics::trainLoss},
        {"test loss", kTestLossColour, &EpochMetrics::testLoss}};
    const Series accuracy[] = {
        {"test accuracy", kTestAccuracyColour, &EpochMetrics::testAccuracy}};
    drawPanel(cr, 0, "loss", rows, loss);
    drawPanel(cr, kPanelWidth, "test accuracy", rows, accuracy);
    if (auto st = cairo_status(cr))
      return makeError(path +
                       ": cannot draw the plot: " + cairo_status_to_string(st));
  }
  std::string png;
  if (auto st =
          cairo_surface_write_to_png_stream(surface.get(), appendPng, &png))
    return makeError(path +
                     ": cannot encode the plot: " + cairo_status_to_string(st));
  return writeFileAtomically(path, [&](llvm::raw_ostream &os) { os << png; });
}
