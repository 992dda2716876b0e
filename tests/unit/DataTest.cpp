//===- DataTest.cpp - IDX, Fashion-MNIST and CSV readers ------------------===//
//
// Small IDX files, gzipped and raw, read back with their values; each kind of
// malformed IDX, gzip or CSV input refused with an error naming the file (and
// the CSV line); and, where Debian's package is installed, the real
// Fashion-MNIST.
//
//===----------------------------------------------------------------------===//
#include "runtime/Data.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include <array>
#include <fstream>
#include <gtest/gtest.h>
#include <zlib.h>

using namespace kiln;

namespace {

/// Whether an error message contains `want` (printing it if not).
::testing::AssertionResult contains(const std::string &message,
                                    const std::string &want) {
  if (message.find(want) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "message \"" << message << "\" lacks \"" << want << "\"";
}

/// An IDX file: magic 00 00 type rank, big-endian u32 dims, then data.
std::string idx(uint8_t type, std::vector<uint32_t> dims,
                const std::string &data) {
  std::string out = {0, 0, char(type), char(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8)
      out += char((d >> s) & 0xff);
  return out + data;
}

std::string bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v)
    s += char(b);
  return s;
}

std::string gzip(const std::string &raw) {
  // gzopen/gzwrite as a user's tool would write the file.
  llvm::SmallString<128> p;
  llvm::sys::fs::createTemporaryFile("kiln-gz", "gz", p);
  gzFile f = gzopen(p.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(gzwrite(f, raw.data(), raw.size()), int(raw.size()));
  gzclose(f);
  auto buf = llvm::MemoryBuffer::getFile(p, false, false);
  std::string out = buf ? (*buf)->getBuffer().str() : "";
  llvm::sys::fs::remove(p);
  return out;
}

class DataFiles : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("kiln-data", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  /// Writes bytes to a file in the temporary folder; returns its path.
  std::string write(const char *name, const std::string &contents) {
    llvm::SmallString<128> p(dir);
    llvm::sys::path::append(p, name);
    std::ofstream(p.c_str(), std::ios::binary) << contents;
    return p.str().str();
  }
  std::string writeGz(const char *name, const std::string &raw) {
    return write(name, gzip(raw));
  }

  /// The error of reading images and labels (empty if it succeeded).
  std::string idxError(const std::string &images, const std::string &labels) {
    auto r = readIdx(images, labels);
    return r ? "" : llvm::toString(r.takeError());
  }
  std::string csvError(const std::string &contents,
                       llvm::StringRef label = "label") {
    auto r = readCsv(write("bad.csv", contents), label);
    return r ? "" : llvm::toString(r.takeError());
  }

  llvm::SmallString<128> dir;
};

using DataIdx = DataFiles;
using DataCsv = DataFiles;
using DataFashionMnist = DataFiles;

/// Two 2x3 images and their labels.
const std::string kPixels = bytes({0, 255, 51, 102, 1, 128, //
                                   255, 0, 0, 0, 0, 204});

TEST_F(DataIdx, ReadsGzippedAndRawFiles) {
  std::string images = writeGz("img.gz", idx(8, {2, 2, 3}, kPixels));
  std::string labels = write("lbl", idx(8, {2}, bytes({7, 0})));
  for (auto [im, lb] : {std::pair{images, labels},
                        {write("img", idx(8, {2, 2, 3}, kPixels)),
                         writeGz("lbl.gz", idx(8, {2}, bytes({7, 0})))}}) {
    auto d = readIdx(im, lb);
    ASSERT_TRUE(bool(d)) << llvm::toString(d.takeError());
    EXPECT_EQ(d->images.dtype(), DType::F32);
    EXPECT_EQ(d->images.shape(), llvm::ArrayRef<int64_t>({2, 2, 3}));
    EXPECT_EQ(d->labels.dtype(), DType::I32);
    EXPECT_EQ(d->labels.shape(), llvm::ArrayRef<int64_t>({2}));
    EXPECT_EQ(d->size(), 2);
    EXPECT_EQ(d->exampleSize(), 6);
    const float *px = d->images.data<float>();
    EXPECT_EQ(px[0], 0.0f);
    EXPECT_EQ(px[1], 1.0f);
    EXPECT_EQ(px[2], 0.2f);
    EXPECT_EQ(px[3], 0.4f);
    EXPECT_EQ(px[5], 128.0f / 255.0f);
    EXPECT_EQ(px[6], 1.0f);
    EXPECT_EQ(px[11], 0.8f);
    EXPECT_EQ(d->labels.data<int32_t>()[0], 7);
    EXPECT_EQ(d->labels.data<int32_t>()[1], 0);
  }
}

TEST_F(DataIdx, ReadsAnyImageRankFromTwo) {
  std::string labels = write("lbl", idx(8, {3}, bytes({1, 2, 3})));
  auto flat = readIdx(
      write("flat", idx(8, {3, 2}, bytes({0, 255, 51, 0, 0, 255}))), labels);
  ASSERT_TRUE(bool(flat)) << llvm::toString(flat.takeError());
  EXPECT_EQ(flat->images.shape(), llvm::ArrayRef<int64_t>({3, 2}));
  EXPECT_EQ(flat->exampleSize(), 2);
  EXPECT_EQ(flat->images.data<float>()[2], 0.2f);
  auto rank4 = readIdx(
      write("r4", idx(8, {3, 1, 2, 2}, std::string(12, '\xff'))), labels);
  ASSERT_TRUE(bool(rank4)) << llvm::toString(rank4.takeError());
  EXPECT_EQ(rank4->images.shape(), llvm::ArrayRef<int64_t>({3, 1, 2, 2}));
  EXPECT_EQ(rank4->exampleSize(), 4);
  EXPECT_EQ(rank4->images.data<float>()[11], 1.0f);
}

TEST_F(DataIdx, BadMagicIsAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string images = write("img", idx(8, {2, 2, 3}, kPixels));
  std::string notIdx = write("junk", "PK\x03\x04 not an idx file");
  EXPECT_TRUE(contains(idxError(notIdx, labels),
                       "junk: not an IDX file: magic number 0x504b0304"));
  std::string floats = write("floats", idx(0x0d, {2, 2, 3}, kPixels));
  EXPECT_TRUE(contains(idxError(floats, labels),
                       "floats: IDX element type 0x0d is not supported"));
  std::string rank1 = write("rank1", idx(8, {12}, kPixels));
  EXPECT_TRUE(contains(idxError(rank1, labels),
                       "rank1: not an IDX image file: magic number "
                       "0x00000801"));
  std::string labels3 = write("labels3", idx(8, {2, 1, 1}, bytes({1, 2})));
  EXPECT_TRUE(contains(idxError(images, labels3),
                       "labels3: not an IDX label file: magic number "
                       "0x00000803, expected 0x00000801"));
  std::string tiny = write("tiny", bytes({0, 0}));
  EXPECT_TRUE(contains(idxError(tiny, labels),
                       "tiny: not an IDX file: shorter than its 4-byte"));
  std::string empty = write("empty", "");
  EXPECT_TRUE(contains(idxError(images, empty), "empty: not an IDX file"));
}

TEST_F(DataIdx, TruncatedFilesAreErrors) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string shortData = write("short", idx(8, {2, 2, 3}, kPixels.substr(1)));
  EXPECT_TRUE(contains(idxError(shortData, labels),
                       "short: truncated: expected 12 bytes of data, got 11"));
  std::string shortGz =
      writeGz("short.gz", idx(8, {2, 2, 3}, kPixels.substr(0, 5)));
  EXPECT_TRUE(contains(idxError(shortGz, labels),
                       "short.gz: truncated: expected 12 bytes of data, got "
                       "5"));
  // A header declaring 3 dimensions but holding 2.
  std::string shortHeader = write("hdr", idx(8, {2, 2, 3}, "").substr(0, 12));
  EXPECT_TRUE(contains(idxError(shortHeader, labels),
                       "hdr: truncated: the header of 3 dimensions needs 16 "
                       "bytes, the file has 12"));
  std::string noLabels = write("nolabels", idx(8, {2}, ""));
  std::string images = write("img", idx(8, {2, 2, 3}, kPixels));
  EXPECT_TRUE(contains(idxError(images, noLabels),
                       "nolabels: truncated: expected 2 bytes of data, got "
                       "0"));
}

TEST_F(DataIdx, TrailingBytesAreAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string images = write("img", idx(8, {2, 2, 3}, kPixels + "xyz"));
  EXPECT_TRUE(contains(idxError(images, labels),
                       "img: 3 trailing bytes after the 12 bytes of data"));
  std::string labelsGz = writeGz("lbl.gz", idx(8, {2}, bytes({1, 2, 3})));
  std::string good = write("good", idx(8, {2, 2, 3}, kPixels));
  EXPECT_TRUE(contains(idxError(good, labelsGz),
                       "lbl.gz: 1 trailing bytes after the 2 bytes"));
}

TEST_F(DataIdx, CountMismatchIsAnError) {
  std::string images = write("img", idx(8, {2, 2, 3}, kPixels));
  std::string labels = write("lbl", idx(8, {3}, bytes({1, 2, 3})));
  std::string err = idxError(images, labels);
  EXPECT_TRUE(contains(err, "img has 2 images but "));
  EXPECT_TRUE(contains(err, "lbl has 3 labels"));
}

TEST_F(DataIdx, ZeroDimensionIsAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string images = write("img", idx(8, {2, 0, 3}, ""));
  EXPECT_TRUE(contains(idxError(images, labels), "img: dimension 1 is 0"));
}

TEST_F(DataIdx, HugeDeclaredDimsAreRefusedWithoutAllocating) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  // 2^96 elements overflow int64.
  std::string overflow =
      write("overflow", idx(8, {0xffffffff, 0xffffffff, 0xffffffff}, kPixels));
  EXPECT_TRUE(contains(idxError(overflow, labels),
                       "overflow: dimensions [4294967295,4294967295,"
                       "4294967295] are too large (more than 2^63"));
  // 2^62 elements fit int64 but not Kiln's limit.
  std::string tooMany =
      writeGz("toomany.gz", idx(8, {0x80000000, 0x80000000}, kPixels));
  EXPECT_TRUE(
      contains(idxError(tooMany, labels),
               "toomany.gz: dimensions [2147483648,2147483648] are "
               "too large (4611686018427387904 elements, more than 2^40)"));
  // 10^12 bytes (within the limit) declared, 12 there: refused as truncated
  // before a terabyte is allocated.
  std::string tera = writeGz("tera.gz", idx(8, {1000000, 1000000, 1}, kPixels));
  EXPECT_TRUE(contains(idxError(tera, labels),
                       "tera.gz: truncated: expected 1000000000000 bytes of "
                       "data, got 12"));
  std::string teraLabels = write("teralabels", idx(8, {0xffffffff}, "\x01"));
  std::string images = write("img", idx(8, {2, 2, 3}, kPixels));
  EXPECT_TRUE(contains(idxError(images, teraLabels),
                       "teralabels: truncated: expected 4294967295 bytes of "
                       "data, got 1"));
}

TEST_F(DataIdx, TruncatedGzipStreamIsAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string gz = gzip(idx(8, {2, 2, 3}, kPixels));
  ASSERT_GT(gz.size(), 20u);
  // Cut inside the deflate data, and inside the 8-byte CRC/length trailer.
  for (size_t keep : {gz.size() / 2, gz.size() - 3}) {
    std::string cut = write("cut.gz", gz.substr(0, keep));
    EXPECT_TRUE(
        contains(idxError(cut, labels), "cut.gz: truncated gzip stream"))
        << keep;
  }
  std::string headerOnly = write("hdronly.gz", gz.substr(0, 4));
  EXPECT_TRUE(contains(idxError(headerOnly, labels),
                       "hdronly.gz: truncated gzip stream"));
}

TEST_F(DataIdx, CorruptGzipStreamIsAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string gz = gzip(idx(8, {2, 2, 3}, kPixels));
  std::string badCrc = gz;
  badCrc[gz.size() - 6] ^= 0x55; // inside the CRC-32
  EXPECT_TRUE(contains(idxError(write("crc.gz", badCrc), labels),
                       "crc.gz: corrupt gzip stream: incorrect data check"));
  std::string badMethod = gz;
  badMethod[2] = 7; // compression method other than deflate
  EXPECT_TRUE(contains(idxError(write("method.gz", badMethod), labels),
                       "method.gz: corrupt gzip stream"));
  EXPECT_TRUE(contains(idxError(write("garbage.gz", gz + "junk"), labels),
                       "garbage.gz: 4 bytes of garbage after the gzip "
                       "stream"));
}

TEST_F(DataIdx, ConcatenatedGzipMembersAreOneFile) {
  std::string raw = idx(8, {2, 2, 3}, kPixels);
  std::string images =
      write("two.gz", gzip(raw.substr(0, 10)) + gzip(raw.substr(10)));
  auto d = readIdx(images, write("lbl", idx(8, {2}, bytes({1, 2}))));
  ASSERT_TRUE(bool(d)) << llvm::toString(d.takeError());
  EXPECT_EQ(d->images.data<float>()[11], 0.8f);
}

TEST_F(DataIdx, MissingFileIsAnError) {
  std::string labels = write("lbl", idx(8, {2}, bytes({1, 2})));
  std::string missing = (dir + "/nothere.gz").str();
  EXPECT_TRUE(contains(idxError(missing, labels), "nothere.gz: "));
}

TEST_F(DataFashionMnist, MissingFolderOrFileIsNamed) {
  auto err = [](llvm::Expected<DataSplits> r) {
    return r ? "" : llvm::toString(r.takeError());
  };
  std::string e = err(loadFashionMnist("/nonexistent/fmnist"));
  EXPECT_TRUE(contains(e, "/nonexistent/fmnist: no such folder"));
  EXPECT_EQ(e.find("apt-get"), std::string::npos) << e;
  // Debian's folder (here standing in for it) gets the install hint.
  EXPECT_EQ(
      err(loadFashionMnist("/nonexistent/fmnist/", "/nonexistent/fmnist")),
      "/nonexistent/fmnist/: no such folder (apt-get install "
      "dataset-fashion-mnist)");
  EXPECT_EQ(err(loadFashionMnist("", "/nonexistent/fmnist")),
            "/nonexistent/fmnist: no such folder (apt-get install "
            "dataset-fashion-mnist)");
  // A folder missing one of the four files names that file.
  write("train-images-idx3-ubyte.gz", "");
  write("train-labels-idx1-ubyte.gz", "");
  write("t10k-images-idx3-ubyte.gz", "");
  EXPECT_EQ(err(loadFashionMnist(dir)),
            (dir + "/t10k-labels-idx1-ubyte.gz: no such file").str());
  EXPECT_EQ(err(loadFashionMnist(dir, dir)),
            (dir + "/t10k-labels-idx1-ubyte.gz: no such file (apt-get "
                   "install dataset-fashion-mnist)")
                .str());
  std::string notFolder = write("plain", "x");
  EXPECT_TRUE(
      contains(err(loadFashionMnist(notFolder)), "plain: not a folder"));
}

TEST_F(DataFashionMnist, ReadsAnyCountOf28x28Images) {
  auto images = [](uint32_t n) {
    return idx(8, {n, 28, 28}, std::string(n * 784, '\x33'));
  };
  writeGz("train-images-idx3-ubyte.gz", images(3));
  writeGz("train-labels-idx1-ubyte.gz", idx(8, {3}, bytes({9, 0, 4})));
  writeGz("t10k-images-idx3-ubyte.gz", images(1));
  writeGz("t10k-labels-idx1-ubyte.gz", idx(8, {1}, bytes({5})));
  auto d = loadFashionMnist(dir);
  ASSERT_TRUE(bool(d)) << llvm::toString(d.takeError());
  EXPECT_EQ(d->train.size(), 3);
  EXPECT_EQ(d->train.exampleSize(), 784);
  EXPECT_EQ(d->train.images.data<float>()[3 * 784 - 1], 0.2f);
  EXPECT_EQ(d->train.labels.data<int32_t>()[2], 4);
  ASSERT_TRUE(d->test.has_value());
  EXPECT_EQ(d->test->size(), 1);
  EXPECT_EQ(d->test->labels.data<int32_t>()[0], 5);

  auto err = [&] {
    auto r = loadFashionMnist(dir);
    return r ? "" : llvm::toString(r.takeError());
  };
  writeGz("t10k-labels-idx1-ubyte.gz", idx(8, {1}, bytes({10})));
  EXPECT_TRUE(contains(err(), "t10k-labels-idx1-ubyte.gz: label 10 of "
                              "example 0 is not a class 0-9"));
  writeGz("t10k-images-idx3-ubyte.gz",
          idx(8, {1, 27, 28}, std::string(756, 0)));
  EXPECT_TRUE(contains(err(), "t10k-images-idx3-ubyte.gz: Fashion-MNIST "
                              "images are 28x28, got [1,27,28]"));
  writeGz("train-labels-idx1-ubyte.gz", idx(8, {2}, bytes({1, 2})));
  EXPECT_TRUE(contains(err(), "train-images-idx3-ubyte.gz has 3 images but"));
}

TEST_F(DataFashionMnist, LoadsDebianPackage) {
  const char *debian = "/usr/share/datasets/fashion-mnist";
  if (!llvm::sys::fs::is_directory(debian))
    GTEST_SKIP() << debian << " is absent (apt-get install "
                 << "dataset-fashion-mnist)";
  auto d = loadFashionMnist(debian);
  ASSERT_TRUE(bool(d)) << llvm::toString(d.takeError());
  ASSERT_TRUE(d->test.has_value());
  EXPECT_EQ(d->train.size(), 60000);
  EXPECT_EQ(d->test->size(), 10000);
  EXPECT_EQ(d->train.images.shape(), llvm::ArrayRef<int64_t>({60000, 28, 28}));
  EXPECT_EQ(d->test->images.shape(), llvm::ArrayRef<int64_t>({10000, 28, 28}));
  EXPECT_EQ(d->train.exampleSize(), 784);
  for (const Dataset *s : {&d->train, &*d->test}) {
    const float *px = s->images.data<float>();
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < s->images.numel(); ++i) {
      lo = std::min(lo, px[i]);
      hi = std::max(hi, px[i]);
    }
    EXPECT_EQ(lo, 0.0f);
    EXPECT_EQ(hi, 1.0f);
  }
  std::array<int64_t, 10> trainCounts{}, testCounts{};
  for (auto [s, counts] : {std::pair{&d->train, &trainCounts},
                           std::pair{&*d->test, &testCounts}}) {
    const int32_t *lb = s->labels.data<int32_t>();
    for (int64_t i = 0; i < s->size(); ++i) {
      ASSERT_GE(lb[i], 0);
      ASSERT_LE(lb[i], 9);
      ++(*counts)[lb[i]];
    }
  }
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(trainCounts[c], 6000) << "class " << c;
    EXPECT_EQ(testCounts[c], 1000) << "class " << c;
  }
}

TEST_F(DataCsv, ReadsFeaturesAndLabels) {
  std::string path = write("good.csv", " x , label,y\r\n"
                                       "1.5, 3 ,-2\r\n"
                                       "+0.25,0,1e3\r\n"
                                       "\t-0 ,12, 7 \r\n"
                                       "\r\n");
  auto d = readCsv(path, "label");
  ASSERT_TRUE(bool(d)) << llvm::toString(d.takeError());
  EXPECT_EQ(d->images.dtype(), DType::F32);
  EXPECT_EQ(d->images.shape(), llvm::ArrayRef<int64_t>({3, 2}));
  EXPECT_EQ(d->labels.shape(), llvm::ArrayRef<int64_t>({3}));
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->exampleSize(), 2);
  const float *x = d->images.data<float>();
  std::vector<float> want = {1.5f, -2.0f, 0.25f, 1000.0f, -0.0f, 7.0f};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(x[i], want[i]) << i;
  const int32_t *y = d->labels.data<int32_t>();
  EXPECT_EQ(y[0], 3);
  EXPECT_EQ(y[1], 0);
  EXPECT_EQ(y[2], 12);

  // No final newline; the label column first; a large label.
  auto e = readCsv(write("e.csv", "c,a\n2147483647,0.1"), "c");
  ASSERT_TRUE(bool(e)) << llvm::toString(e.takeError());
  EXPECT_EQ(e->labels.data<int32_t>()[0], 2147483647);
  EXPECT_EQ(e->images.data<float>()[0], 0.1f);
}

TEST_F(DataCsv, MalformedFilesAreLocatedErrors) {
  struct Case {
    const char *contents, *error;
  } cases[] = {
      {"a,b,c\n1,2,3\n", "bad.csv:1: no label column 'label'; the columns are "
                         "a, b, c"},
      {"a,label,a\n1,2,3\n",
       "bad.csv:1: duplicate column name 'a' (columns 1 and 3)"},
      {"a,,label\n1,2,3\n", "bad.csv:1: column 2 has an empty name"},
      {"label\n1\n", "bad.csv:1: no feature columns besides the label column "
                     "'label'"},
      {"", "bad.csv:1: empty file; expected a header row"},
      {"\r\n\n", "bad.csv:1: empty file; expected a header row"},
      {"a,b,label\n", "bad.csv:2: no data rows after the header"},
      {"a,b,label\n\n\n", "bad.csv:2: no data rows after the header"},
      {"a,b,c,label\n1,2,3,4\n1,2,3\n",
       "bad.csv:3: row has 3 fields, the header has 4"},
      {"a,b,label\n1,2,3,4\n", "bad.csv:2: row has 4 fields, the header has 3"},
      {"a,b,label\n1,2,3\n\n1,2,3\n", "bad.csv:3: empty line"},
      {"a,b,label\n1,2,3\n1,abc,3\n",
       "bad.csv:3: column 2 ('b'): 'abc' is not a number"},
      {"a,b,label\n1,2.5x,3\n", "bad.csv:2: column 2 ('b'): '2.5x' is not a "
                                "number"},
      {"a,b,label\n1, 2 3 ,3\n", "bad.csv:2: column 2 ('b'): '2 3' is not a "
                                 "number"},
      {"a,b,label\n\"1\",2,3\n", "bad.csv:2: column 1 ('a'): '\"1\"' is not a "
                                 "number"},
      {"a,b,label\n0x10,2,3\n", "bad.csv:2: column 1 ('a'): '0x10' is not a "
                                "number"},
      {"a,b,label\nnan,2,3\n", "bad.csv:2: column 1 ('a'): 'nan' is not a "
                               "finite number"},
      {"a,b,label\n1,-inf,3\n", "bad.csv:2: column 2 ('b'): '-inf' is not a "
                                "finite number"},
      {"a,b,label\n1e999,2,3\n", "bad.csv:2: column 1 ('a'): '1e999' is out "
                                 "of range"},
      {"a,b,label\n1e39,2,3\n", "bad.csv:2: column 1 ('a'): '1e39' is out of "
                                "range for f32"},
      {"a,b,label\n1,,3\n", "bad.csv:2: column 2 ('b'): empty field"},
      {"a,b,label\n1,2,  \n", "bad.csv:2: column 3 ('label'): empty field"},
      {"a,b,label\n1,2,-1\n", "bad.csv:2: column 3 ('label'): label '-1' is "
                              "not a non-negative integer"},
      {"a,b,label\n1,2,3.0\n", "bad.csv:2: column 3 ('label'): label '3.0' is "
                               "not a non-negative integer"},
      {"a,b,label\n1,2,cat\n", "bad.csv:2: column 3 ('label'): label 'cat' is "
                               "not a non-negative integer"},
      {"a,b,label\n1,2,2147483648\n",
       "bad.csv:2: column 3 ('label'): label 2147483648 is too large (labels "
       "must be < 2^31)"},
      {"a,b,label\n1,2,99999999999999999999999\n",
       "bad.csv:2: column 3 ('label'): label 99999999999999999999999 is too "
       "large"},
      {"a,b,label\n1,2,-99999999999999999999999\n",
       "bad.csv:2: column 3 ('label'): label '-99999999999999999999999' is "
       "not a non-negative integer"},
  };
  for (const Case &c : cases)
    EXPECT_TRUE(contains(csvError(c.contents), c.error)) << c.contents;
  EXPECT_TRUE(
      contains(csvError("a,b\n1,2\n", ""), "bad.csv:1: no label column ''"));
  auto missing = readCsv((dir + "/none.csv").str(), "label");
  ASSERT_FALSE(bool(missing));
  EXPECT_TRUE(contains(llvm::toString(missing.takeError()), "none.csv: "));
}

} // namespace
