//===- Data.cpp - Dataset readers: IDX (Fashion-MNIST) and CSV ------------===//
//
// Nothing in a file is trusted before it is checked against the bytes that
// are really there. A gzipped file is inflated whole first (zlib's inflate,
// which also checks the CRC and length trailer), so an IDX header's declared
// size is compared with the real data before anything is allocated for it;
// a header cannot make us allocate more than the file holds. CSV numbers go
// through std::from_chars, which is locale-independent and reports where it
// stopped, so a field must parse whole.
//
//===----------------------------------------------------------------------===//
#include "runtime/Data.h"
#include "ir/Graph.h"
#include "support/Files.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <charconv>
#include <cmath>
#include <zlib.h>

using namespace kiln;

static constexpr const char *kDebianFashionMnistDir =
    "/usr/share/datasets/fashion-mnist";

static std::string hex(uint64_t v, unsigned digits) {
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format_hex(v, digits + 2);
  return s;
}

//===----------------------------------------------------------------------===//
// Reading a file, gzipped or not
//===----------------------------------------------------------------------===//

static bool isGzip(llvm::StringRef bytes) {
  return bytes.size() >= 2 && uint8_t(bytes[0]) == 0x1f &&
         uint8_t(bytes[1]) == 0x8b;
}

/// Inflates every gzip member of `in`; `path` names the file in errors.
static llvm::Expected<std::string> gunzip(llvm::StringRef in,
                                          llvm::StringRef path) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
    return makeError(path + ": cannot start zlib's inflate");
  auto done = llvm::make_scope_exit([&] { inflateEnd(&z); });
  z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
  auto consumed = [&] {
    return size_t(reinterpret_cast<const char *>(z.next_in) - in.data());
  };
  // uInt counts are 32-bit: feed and drain at most 1 GiB per call.
  constexpr size_t kStep = size_t(1) << 30;
  std::string out;
  size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      size_t grown = std::max<size_t>(out.size() * 2, in.size() * 2 + 4096);
      if (auto err = checkMemory(grown, path + " (decompressed)"))
        return std::move(err);
      out.resize(grown);
    }
    z.avail_in = uInt(std::min(in.size() - consumed(), kStep));
    z.next_out = reinterpret_cast<Bytef *>(&out[produced]);
    z.avail_out = uInt(std::min(out.size() - produced, kStep));
    uInt before = z.avail_out;
    int rc = inflate(&z, Z_NO_FLUSH);
    produced += before - z.avail_out;
    if (rc == Z_STREAM_END) {
      llvm::StringRef rest = in.substr(consumed());
      if (rest.empty())
        break;
      // Concatenated members are one gzip file (as gzip -d reads them).
      if (!isGzip(rest))
        return makeError(path + ": " + llvm::Twine(rest.size()) +
                         " bytes of garbage after the gzip stream");
      inflateReset(&z);
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
      return makeError(path + ": corrupt gzip stream" +
                       (z.msg ? ": " + std::string(z.msg) : std::string()));
    if (rc == Z_MEM_ERROR)
      return makeError(path + ": out of memory inflating the gzip stream");
    // Z_BUF_ERROR (or Z_OK) with every input byte read and room for output:
    // the stream stopped before its end.
    if (consumed() == in.size() && z.avail_out > 0)
      return makeError(path + ": truncated gzip stream (it ends after " +
                       llvm::Twine(produced) + " decompressed bytes)");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return makeError(path + ": inflate failed (zlib error " +
                       llvm::Twine(rc) + ")");
  }
  out.resize(produced);
  return out;
}

//===----------------------------------------------------------------------===//
// IDX
//===----------------------------------------------------------------------===//

namespace {
/// A checked IDX file of unsigned bytes: its dimensions and exactly
/// product(dims) bytes of data.
struct IdxFile {
  Shape dims;
  llvm::StringRef data;
};
} // namespace

static llvm::Expected<Dataset> datasetOf(const IdxFile &img,
                                         llvm::StringRef imagesPath,
                                         const IdxFile &lab,
                                         llvm::StringRef labelsPath);

static llvm::Expected<IdxFile>
parseIdxFile(llvm::StringRef bytes, llvm::StringRef path, bool isLabels) {
  auto bad = [&](const llvm::Twine &why) {
    return makeError(path + ": " + why);
  };
  if (bytes.size() < 4)
    return bad("not an IDX file: shorter than its 4-byte magic number");
  uint32_t magic = 0;
  for (int i = 0; i < 4; ++i)
    magic = magic << 8 | uint8_t(bytes[i]);
  uint8_t type = uint8_t(bytes[2]), rank = uint8_t(bytes[3]);
  if (magic >> 16)
    return bad("not an IDX file: magic number " + hex(magic, 8) +
               " does not start with two zero bytes");
  if (type != 0x08)
    return bad("IDX element type " + hex(type, 2) +
               " is not supported (Kiln reads unsigned bytes, 0x08)");
  if (isLabels && rank != 1)
    return bad("not an IDX label file: magic number " + hex(magic, 8) +
               ", expected 0x00000801 (one dimension)");
  if (!isLabels && rank < 2)
    return bad("not an IDX image file: magic number " + hex(magic, 8) +
               ", expected 0x00000803 (or any rank >= 2 of type 0x08)");
  size_t headerSize = 4 + 4 * size_t(rank);
  if (bytes.size() < headerSize)
    return bad("truncated: the header of " + llvm::Twine(unsigned(rank)) +
               " dimensions needs " + llvm::Twine(headerSize) +
               " bytes, the file has " + llvm::Twine(bytes.size()));
  IdxFile f;
  for (unsigned d = 0; d < rank; ++d) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n = n << 8 | uint8_t(bytes[4 + 4 * d + i]);
    if (n == 0)
      return bad("dimension " + llvm::Twine(d) + " is 0");
    f.dims.push_back(n);
  }
  auto count = numElements(f.dims);
  if (!count || *count > kMaxElements)
    return bad("dimensions " + shapeStr(f.dims) + " are too large (" +
               (count ? std::to_string(*count) + " elements, more than 2^40"
                      : std::string("more than 2^63 elements")) +
               ")");
  f.data = bytes.substr(headerSize);
  if (f.data.size() < uint64_t(*count))
    return bad("truncated: expected " + llvm::Twine(*count) +
               " bytes of data, got " + llvm::Twine(f.data.size()));
  if (f.data.size() > uint64_t(*count))
    return bad(llvm::Twine(f.data.size() - *count) +
               " trailing bytes after the " + llvm::Twine(*count) +
               " bytes of data of dimensions " + shapeStr(f.dims));
  return f;
}

llvm::Expected<Dataset> kiln::readIdx(llvm::StringRef imagesPath,
                                      llvm::StringRef labelsPath) {
  auto images = readDataFile(imagesPath);
  if (!images)
    return images.takeError();
  auto labels = readDataFile(labelsPath);
  if (!labels)
    return labels.takeError();
  return parseIdx((*images)->getBuffer(), imagesPath, (*labels)->getBuffer(),
                  labelsPath);
}

llvm::Expected<Dataset> kiln::parseIdx(llvm::StringRef imageBytes,
                                       llvm::StringRef imagesPath,
                                       llvm::StringRef labelBytes,
                                       llvm::StringRef labelsPath) {
  std::string inflated[2];
  for (int i = 0; i < 2; ++i) {
    llvm::StringRef &bytes = i == 0 ? imageBytes : labelBytes;
    if (!isGzip(bytes))
      continue;
    auto out = gunzip(bytes, i == 0 ? imagesPath : labelsPath);
    if (!out)
      return out.takeError();
    inflated[i] = std::move(*out);
    bytes = inflated[i];
  }
  auto images = parseIdxFile(imageBytes, imagesPath, /*isLabels=*/false);
  if (!images)
    return images.takeError();
  auto labels = parseIdxFile(labelBytes, labelsPath, /*isLabels=*/true);
  if (!labels)
    return labels.takeError();
  return datasetOf(*images, imagesPath, *labels, labelsPath);
}

/// Checked image and label files as a dataset.
static llvm::Expected<Dataset> datasetOf(const IdxFile &img,
                                         llvm::StringRef imagesPath,
                                         const IdxFile &lab,
                                         llvm::StringRef labelsPath) {
  const IdxFile *images = &img, *labels = &lab;
  if (images->dims[0] != labels->dims[0])
    return makeError(imagesPath + " has " + llvm::Twine(images->dims[0]) +
                     " images but " + labelsPath + " has " +
                     llvm::Twine(labels->dims[0]) + " labels");

  Dataset d;
  if (auto err = checkMemory(images->data.size() * sizeof(float),
                             imagesPath + " as f32"))
    return std::move(err);
  d.images = Tensor(DType::F32, images->dims);
  float *px = d.images.data<float>();
  for (size_t i = 0; i < images->data.size(); ++i)
    px[i] = float(uint8_t(images->data[i])) / 255.0f; // 51 -> exactly 0.2f
  // Unsigned-byte labels (0-255) always fit i32.
  d.labels = Tensor(DType::I32, labels->dims);
  int32_t *lb = d.labels.data<int32_t>();
  for (size_t i = 0; i < labels->data.size(); ++i)
    lb[i] = uint8_t(labels->data[i]);
  return d;
}

int64_t Dataset::exampleSize() const {
  if (images.rank() == 0)
    return 0;
  int64_t n = 1;
  for (int64_t dim : images.shape().drop_front())
    n *= dim;
  return n;
}

//===----------------------------------------------------------------------===//
// Fashion-MNIST
//===----------------------------------------------------------------------===//

llvm::Expected<DataSplits> kiln::loadFashionMnist(llvm::StringRef dir) {
  return loadFashionMnist(dir, kDebianFashionMnistDir);
}

llvm::Expected<DataSplits>
kiln::loadFashionMnist(llvm::StringRef dir, llvm::StringRef installedDir) {
  std::string folder = (dir.empty() ? installedDir : dir).str();
  bool installed =
      llvm::StringRef(folder).rtrim('/') == installedDir.rtrim('/');
  std::string hint =
      installed ? " (apt-get install dataset-fashion-mnist)" : "";
  if (!llvm::sys::fs::exists(folder))
    return makeError(folder + ": no such folder" + hint);
  if (!llvm::sys::fs::is_directory(folder))
    return makeError(folder + ": not a folder" + hint);
  auto file = [&](const char *name) {
    return (llvm::StringRef(folder).rtrim('/') + "/" + name).str();
  };
  std::string trainImages = file("train-images-idx3-ubyte.gz"),
              trainLabels = file("train-labels-idx1-ubyte.gz"),
              testImages = file("t10k-images-idx3-ubyte.gz"),
              testLabels = file("t10k-labels-idx1-ubyte.gz");
  for (const std::string &p :
       {trainImages, trainLabels, testImages, testLabels})
    if (!llvm::sys::fs::exists(p))
      return makeError(p + ": no such file" + hint);

  // Debian ships 60000 training and 10000 test examples; other counts are
  // accepted, but the images must be 28x28 and the labels classes 0-9.
  auto split = [&](const std::string &images,
                   const std::string &labels) -> llvm::Expected<Dataset> {
    auto d = readIdx(images, labels);
    if (!d)
      return d.takeError();
    llvm::ArrayRef<int64_t> shape = d->images.shape();
    if (shape.size() != 3 || shape[1] != 28 || shape[2] != 28)
      return makeError(images + ": Fashion-MNIST images are 28x28, got " +
                       shapeStr(shape));
    const int32_t *lb = d->labels.data<int32_t>();
    for (int64_t i = 0; i < d->size(); ++i)
      if (lb[i] > 9)
        return makeError(labels + ": label " + llvm::Twine(lb[i]) +
                         " of example " + llvm::Twine(i) +
                         " is not a class 0-9");
    return d;
  };
  DataSplits out;
  auto train = split(trainImages, trainLabels);
  if (!train)
    return train.takeError();
  out.train = std::move(*train);
  auto test = split(testImages, testLabels);
  if (!test)
    return test.takeError();
  out.test = std::move(*test);
  return out;
}

//===----------------------------------------------------------------------===//
// CSV
//===----------------------------------------------------------------------===//

/// Splits a CSV line at commas, trimming blanks around each field.
static llvm::SmallVector<llvm::StringRef, 16>
splitFields(llvm::StringRef line) {
  llvm::SmallVector<llvm::StringRef, 16> fields;
  line.split(fields, ',');
  for (llvm::StringRef &f : fields)
    f = f.trim(" \t");
  return fields;
}

/// from_chars does not take a leading '+'; CSV writers sometimes emit one.
static llvm::StringRef dropPlus(llvm::StringRef s) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '+' && s[1] != '-')
    return s.drop_front();
  return s;
}

/// A float feature, or a reason it is not one.
static std::optional<float> parseFeature(llvm::StringRef field,
                                         std::string &why) {
  llvm::StringRef s = dropPlus(field);
  double v = 0;
  auto [end, ec] = std::from_chars(s.begin(), s.end(), v);
  if (ec == std::errc::result_out_of_range) {
    why = "'" + field.str() + "' is out of range";
    return std::nullopt;
  }
  if (ec != std::errc() || end != s.end()) {
    why = "'" + field.str() + "' is not a number";
    return std::nullopt;
  }
  if (!std::isfinite(v)) {
    why = "'" + field.str() + "' is not a finite number";
    return std::nullopt;
  }
  if (std::fabs(v) > double(std::numeric_limits<float>::max())) {
    why = "'" + field.str() + "' is out of range for f32";
    return std::nullopt;
  }
  return float(v);
}

/// A class label, 0 <= label < 2^31, or a reason it is not one.
static std::optional<int32_t> parseLabel(llvm::StringRef field,
                                         std::string &why) {
  llvm::StringRef s = dropPlus(field);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.begin(), s.end(), v);
  bool digits = end == s.end() && !s.starts_with("-");
  if (digits && (ec == std::errc::result_out_of_range ||
                 (ec == std::errc() && v > INT32_MAX))) {
    why = "label " + field.str() + " is too large (labels must be < 2^31)";
    return std::nullopt;
  }
  if (ec != std::errc() || end != s.end() || v < 0) {
    why = "label '" + field.str() + "' is not a non-negative integer";
    return std::nullopt;
  }
  return int32_t(v);
}

llvm::Expected<Dataset> kiln::readCsv(llvm::StringRef path,
                                      llvm::StringRef labelColumn) {
  auto buf = readDataFile(path);
  if (!buf)
    return buf.takeError();
  return parseCsv((*buf)->getBuffer(), path, labelColumn);
}

llvm::Expected<Dataset> kiln::parseCsv(llvm::StringRef bytes,
                                       llvm::StringRef path,
                                       llvm::StringRef labelColumn) {
  llvm::StringRef rest = bytes;
  rest.consume_front("\xEF\xBB\xBF"); // a UTF-8 byte order mark
  unsigned lineNo = 0;
  auto at = [&](const llvm::Twine &why) {
    return makeError(path + ":" + llvm::Twine(lineNo) + ": " + why);
  };
  /// The next line without its "\n" or "\r\n"; nullopt at the end, where
  /// blank lines are tolerated.
  auto nextLine = [&]() -> std::optional<llvm::StringRef> {
    if (rest.trim().empty())
      return std::nullopt;
    auto [line, after] = rest.split('\n');
    rest = after;
    ++lineNo;
    line.consume_back("\r");
    return line;
  };

  auto headerLine = nextLine();
  if (!headerLine) {
    lineNo = 1;
    return at("empty file; expected a header row");
  }
  llvm::SmallVector<llvm::StringRef, 16> header = splitFields(*headerLine);
  llvm::StringMap<unsigned> columnOf;
  for (unsigned c = 0; c < header.size(); ++c) {
    if (header[c].empty())
      return at("column " + llvm::Twine(c + 1) + " has an empty name");
    auto [it, fresh] = columnOf.try_emplace(header[c], c);
    if (!fresh)
      return at("duplicate column name '" + header[c] + "' (columns " +
                llvm::Twine(it->second + 1) + " and " + llvm::Twine(c + 1) +
                ")");
  }
  auto label = columnOf.find(labelColumn);
  if (label == columnOf.end()) {
    std::string names;
    for (llvm::StringRef h : header)
      names += (names.empty() ? "" : ", ") + h.str();
    return at("no label column '" + labelColumn + "'; the columns are " +
              names);
  }
  unsigned labelIdx = label->second;
  if (header.size() == 1)
    return at("no feature columns besides the label column '" + labelColumn +
              "'");

  std::vector<float> features;
  std::vector<int32_t> labels;
  std::string why;
  while (auto line = nextLine()) {
    if (line->trim().empty())
      return at("empty line");
    llvm::SmallVector<llvm::StringRef, 16> fields = splitFields(*line);
    if (fields.size() != header.size())
      return at("row has " + llvm::Twine(fields.size()) +
                " fields, the header has " + llvm::Twine(header.size()));
    for (unsigned c = 0; c < fields.size(); ++c) {
      auto column = [&] {
        return ("column " + llvm::Twine(c + 1) + " ('" + header[c] + "'): ")
            .str();
      };
      if (fields[c].empty())
        return at(column() + "empty field");
      if (c == labelIdx) {
        auto v = parseLabel(fields[c], why);
        if (!v)
          return at(column() + why);
        labels.push_back(*v);
      } else {
        auto v = parseFeature(fields[c], why);
        if (!v)
          return at(column() + why);
        features.push_back(*v);
      }
    }
  }
  if (labels.empty()) {
    lineNo = 2;
    return at("no data rows after the header");
  }

  Dataset d;
  int64_t n = labels.size(), width = header.size() - 1;
  d.images = Tensor(DType::F32, {n, width});
  std::copy(features.begin(), features.end(), d.images.data<float>());
  d.labels = Tensor(DType::I32, {n});
  std::copy(labels.begin(), labels.end(), d.labels.data<int32_t>());
  return d;
}
