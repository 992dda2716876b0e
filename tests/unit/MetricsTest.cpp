//===- MetricsTest.cpp - The metrics CSV and its plot ---------------------===//
//
// The CSV round-trips with missing values as empty fields and refuses a
// malformed file naming the line; the plot is a PNG of the right size whose
// series colours appear in the panels they belong to.
//
//===----------------------------------------------------------------------===//
#include "runtime/Metrics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <cairo.h>
#include <cstdlib>
#include <cstring>
#include <gtest/gtest.h>
#include <memory>

using namespace kiln;

namespace {

/// A fresh empty directory, removed when the test ends.
struct TempDir {
  std::string path;
  TempDir() {
    llvm::SmallString<128> p;
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("kiln-metrics", p));
    path = p.str().str();
  }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
};

std::string readText(const std::string &path) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  return buf ? (*buf)->getBuffer().str() : "<unreadable>";
}

void writeText(const std::string &path, const std::string &text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec);
  os << text;
}

std::string readError(const std::string &path) {
  auto r = readMetricsCsv(path);
  return r ? std::string() : llvm::toString(r.takeError());
}

/// Equal, counting NaN equal to NaN.
bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

TEST(Metrics, CsvRoundTripsWithMissingValues) {
  TempDir dir;
  std::string path = dir.path + "/metrics.csv";
  std::vector<EpochMetrics> rows(3);
  rows[0] = {1, 0.693147, NAN, NAN, 1.5, 0.25};
  rows[1] = {2, 0.5, 0.45, 0.8125, 3.25, 0.1234};
  rows[2] = {3, 1e-7, 12.5, 1, NAN, NAN};
  ASSERT_FALSE(bool(writeMetricsCsv(path, rows)));
  std::string text = readText(path);
  EXPECT_EQ(text, std::string(kMetricsHeader) + "\n" +
                      "1,0.693147,,,1.500,0.2500\n"
                      "2,0.5,0.45,0.8125,3.250,0.1234\n"
                      "3,1e-07,12.5,1,,\n");
  auto back = readMetricsCsv(path);
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  ASSERT_EQ(back->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const EpochMetrics &a = rows[i], &b = (*back)[i];
    EXPECT_EQ(a.epoch, b.epoch);
    EXPECT_TRUE(same(a.trainLoss, b.trainLoss)) << i;
    EXPECT_TRUE(same(a.testLoss, b.testLoss)) << i;
    EXPECT_TRUE(same(a.testAccuracy, b.testAccuracy)) << i;
    EXPECT_TRUE(same(a.seconds, b.seconds)) << i;
    EXPECT_TRUE(same(a.msPerStep, b.msPerStep)) << i;
  }
  // Rewriting what was read changes nothing (--resume keeps old rows).
  ASSERT_FALSE(bool(writeMetricsCsv(path, *back)));
  EXPECT_EQ(readText(path), text);
}

TEST(Metrics, HeaderIsExactlyTheDesignOne) {
  EXPECT_STREQ(kMetricsHeader,
               "epoch,train_loss,test_loss,test_accuracy,seconds,ms_per_step");
  TempDir dir;
  std::string path = dir.path + "/empty.csv";
  ASSERT_FALSE(bool(writeMetricsCsv(path, {})));
  EXPECT_EQ(readText(path), std::string(kMetricsHeader) + "\n");
  auto back = readMetricsCsv(path);
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  EXPECT_TRUE(back->empty());
}

TEST(Metrics, MalformedCsvIsAnErrorNamingTheLine) {
  TempDir dir;
  std::string path = dir.path + "/bad.csv", header = kMetricsHeader;
  writeText(path, "epoch,train_loss\n1,0.5\n");
  EXPECT_EQ(readError(path), path + ":1: the header is not '" + header + "'");
  writeText(path, "");
  EXPECT_EQ(readError(path), path + ":1: the header is not '" + header + "'");
  writeText(path, header + "\n1,0.5,,,1,2\n2,abc,,,1,2\n");
  EXPECT_EQ(readError(path), path + ":3: train_loss 'abc' is not a number");
  writeText(path, header + "\n1,0.5,,,1,2x\n");
  EXPECT_EQ(readError(path), path + ":2: ms_per_step '2x' is not a number");
  writeText(path, header + "\n1,0.5,,\n");
  EXPECT_EQ(readError(path),
            path + ":2: expected 6 comma-separated fields, found 4");
  writeText(path, header + "\n0,0.5,,,,\n");
  EXPECT_EQ(readError(path), path + ":2: epoch '0' is not a positive integer");
  // Windows line endings are fine.
  writeText(path, header + "\r\n1,0.5,,,1,2\r\n");
  EXPECT_EQ(readError(path), "");
  std::string missing = dir.path + "/missing.csv";
  EXPECT_EQ(readError(missing).rfind(missing + ": ", 0), 0u);
}

/// Pixels of `c` (give or take rounding) in columns [x0, x1) of a PNG read
/// back as 32-bit pixels (RGB24 or ARGB32: 0xAARRGGBB, native-endian).
int countColour(cairo_surface_t *s, PlotColour c, int x0, int x1) {
  int stride = cairo_image_surface_get_stride(s), count = 0;
  const unsigned char *data = cairo_image_surface_get_data(s);
  for (int y = 0; y < cairo_image_surface_get_height(s); ++y)
    for (int x = x0; x < x1; ++x) {
      uint32_t p;
      std::memcpy(&p, data + y * stride + 4 * x, 4);
      int r = (p >> 16) & 0xff, g = (p >> 8) & 0xff, b = p & 0xff;
      if (std::abs(r - c.r) <= 2 && std::abs(g - c.g) <= 2 &&
          std::abs(b - c.b) <= 2)
        ++count;
    }
  return count;
}

using Surface =
    std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;

Surface readPng(const std::string &path) {
  return Surface(cairo_image_surface_create_from_png(path.c_str()),
                 cairo_surface_destroy);
}

TEST(Metrics, PlotDrawsEachCurveInItsPanel) {
  TempDir dir;
  std::string path = dir.path + "/curves.png";
  std::vector<EpochMetrics> rows;
  for (int e = 1; e <= 10; ++e)
    rows.push_back({e, 2.0 / e, 2.2 / e + 0.05, 0.5 + 0.04 * e, 1.0, 0.5});
  rows[4].testLoss = rows[4].testAccuracy = NAN; // A gap.
  ASSERT_FALSE(bool(plotMetrics(path, rows, "mlp on fashion-mnist")));
  Surface png = readPng(path);
  ASSERT_EQ(cairo_surface_status(png.get()), CAIRO_STATUS_SUCCESS);
  // An opaque PNG reads back as RGB24, which countColour also reads.
  ASSERT_EQ(cairo_image_surface_get_format(png.get()), CAIRO_FORMAT_RGB24);
  EXPECT_EQ(cairo_image_surface_get_width(png.get()), 1000);
  EXPECT_EQ(cairo_image_surface_get_height(png.get()), 420);
  // Loss on the left, accuracy on the right.
  EXPECT_GT(countColour(png.get(), kTrainLossColour, 0, 500), 300);
  EXPECT_GT(countColour(png.get(), kTestLossColour, 0, 500), 300);
  EXPECT_EQ(countColour(png.get(), kTrainLossColour, 500, 1000), 0);
  EXPECT_GT(countColour(png.get(), kTestAccuracyColour, 500, 1000), 300);
  EXPECT_EQ(countColour(png.get(), kTestAccuracyColour, 0, 500), 0);
}

TEST(Metrics, PlotOfOneEpochWithoutTestData) {
  TempDir dir;
  std::string path = dir.path + "/one.png";
  EpochMetrics row;
  row.epoch = 1;
  row.trainLoss = 0.7;
  ASSERT_FALSE(bool(plotMetrics(path, row, "one epoch")));
  Surface png = readPng(path);
  ASSERT_EQ(cairo_surface_status(png.get()), CAIRO_STATUS_SUCCESS);
  EXPECT_EQ(cairo_image_surface_get_width(png.get()), 1000);
  // One epoch is a point in the middle of the loss panel (clear of the
  // legend, which is in a corner); the series without data draw nothing.
  EXPECT_GT(countColour(png.get(), kTrainLossColour, 225, 325), 20);
  EXPECT_EQ(countColour(png.get(), kTestLossColour, 0, 1000), 0);
  EXPECT_EQ(countColour(png.get(), kTestAccuracyColour, 0, 1000), 0);
}

TEST(Metrics, PlotIntoAMissingDirectoryNamesIt) {
  TempDir dir;
  std::string path = dir.path + "/missing/curves.png";
  EpochMetrics row{1, 0.5, 0.6, 0.7, 1, 1};
  llvm::Error e = plotMetrics(path, row, "t");
  ASSERT_TRUE(bool(e));
  std::string msg = llvm::toString(std::move(e));
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_FALSE(llvm::sys::fs::exists(dir.path + "/missing"));
}

} // namespace
