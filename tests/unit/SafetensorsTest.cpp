//===- SafetensorsTest.cpp - safetensors reading and writing --------------===//
//
// Round trips for every dtype, and each kind of malformed file refused with
// an error that names the file.
//
//===----------------------------------------------------------------------===//
#include "runtime/Safetensors.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

using namespace kiln;

namespace {

std::string tempPath(const char *name) {
  llvm::SmallString<128> p;
  llvm::sys::fs::createUniquePath(std::string("kiln-%%%%%%-") + name, p, true);
  return p.str().str();
}

/// A file: u64 header length, header, data.
std::string fileBytes(const std::string &header, const std::string &data) {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out += char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string parseError(const std::string &bytes) {
  auto r = parseSafetensors(bytes, "bad.safetensors");
  if (r)
    return "";
  return llvm::toString(r.takeError());
}

TEST(Safetensors, RoundTripsEveryDtype) {
  TensorMap in;
  in["fc1.w"] = Tensor::fromValues(DType::F32, {2, 3}, {1, -2, 3.5, 4, 5, 6});
  in["loss"] = Tensor::fromValues(DType::F64, {}, {0.125});
  in["labels"] = Tensor::fromValues(DType::I32, {3}, {7, -1, 0});
  in["big"] = Tensor::fromValues(DType::I64, {2}, {1e15, -3});
  std::string path = tempPath("rt.safetensors");
  ASSERT_FALSE(bool(writeSafetensors(path, in)));
  auto out = readSafetensors(path);
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  ASSERT_EQ(out->size(), in.size());
  for (auto &[name, t] : in) {
    const Tensor &u = out->at(name);
    EXPECT_EQ(u.dtype(), t.dtype()) << name;
    EXPECT_EQ(u.shape(), t.shape()) << name;
    for (int64_t i = 0; i < t.numel(); ++i)
      EXPECT_EQ(u.at(i), t.at(i)) << name << "[" << i << "]";
  }
  llvm::sys::fs::remove(path);
}

TEST(Safetensors, HeaderIsPaddedAndLittleEndian) {
  TensorMap in;
  in["x"] = Tensor::fromValues(DType::F32, {1}, {1.0});
  std::string path = tempPath("pad.safetensors");
  ASSERT_FALSE(bool(writeSafetensors(path, in)));
  auto buf = llvm::MemoryBuffer::getFile(path);
  ASSERT_TRUE(bool(buf));
  llvm::StringRef bytes = (*buf)->getBuffer();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | uint8_t(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 4);
  EXPECT_EQ(bytes.substr(8, n).rtrim(),
            R"({"x":{"data_offsets":[0,4],"dtype":"F32","shape":[1]}})");
  // 1.0f is 0x3f800000, little-endian.
  EXPECT_EQ(bytes.substr(8 + n), llvm::StringRef("\x00\x00\x80\x3f", 4));
  llvm::sys::fs::remove(path);
}

TEST(Safetensors, MalformedFilesAreErrorsNamingTheFile) {
  auto has = [](const std::string &err, const char *what) {
    return err.rfind("bad.safetensors: malformed safetensors file: ", 0) == 0 &&
           err.find(what) != std::string::npos;
  };
  EXPECT_TRUE(has(parseError("abc"), "shorter than its 8-byte header length"));
  EXPECT_TRUE(has(parseError(fileBytes("{}", "").substr(0, 8) + "x"),
                  "header length 2 does not fit"));
  EXPECT_TRUE(has(parseError(fileBytes("{not json", "")), "not a JSON object"));
  EXPECT_TRUE(has(
      parseError(fileBytes(
          R"({"t":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})", "ab")),
      "tensor 't': unsupported dtype 'BF16'"));
  EXPECT_TRUE(has(
      parseError(fileBytes(
          R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd")),
      "tensor 't': data_offsets [0, 8] are outside the 4-byte data section"));
  EXPECT_TRUE(has(
      parseError(
          fileBytes(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                    "abcdefgh")),
      "tensor 't': shape [3] of F32 needs 12 bytes but data_offsets span 8"));
  EXPECT_TRUE(has(
      parseError(fileBytes(
          R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "")),
      "not a natural number"));
  EXPECT_TRUE(has(parseError(fileBytes(R"({"t":{"dtype":"F32"}})", "")),
                  "needs dtype, shape and data_offsets"));
  // Metadata is allowed and skipped.
  EXPECT_EQ(parseError(fileBytes(R"({"__metadata__":{"format":"pt"}})", "")),
            "");
}

TEST(Safetensors, MissingFileNamesIt) {
  auto r = readSafetensors("/nonexistent/params.safetensors");
  ASSERT_FALSE(bool(r));
  EXPECT_NE(
      llvm::toString(r.takeError()).find("/nonexistent/params.safetensors"),
      std::string::npos);
}

} // namespace
