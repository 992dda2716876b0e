//===- SafetensorsTest.cpp - safetensors reading and writing --------------===//
//
// Round trips for every dtype and for metadata, each kind of malformed file
// refused with an error that names the file, and the atomic write: it
// replaces the target and leaves no temporary file behind, even on failure.
//
//===----------------------------------------------------------------------===//
#include "runtime/Safetensors.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include <algorithm>
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

/// A fresh empty directory; remove it with removeDir.
std::string tempDir() {
  llvm::SmallString<128> p;
  EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("kiln-st", p));
  return p.str().str();
}

void removeDir(const std::string &dir) {
  llvm::sys::fs::remove_directories(dir);
}

/// The names in a directory, sorted.
std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    names.push_back(llvm::sys::path::filename(it->path()).str());
  std::sort(names.begin(), names.end());
  return names;
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
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

// The reference reader's rule: the tensors' bytes tile the data section.
// Kiln refused none of these before (found by kiln-fuzz and issue 14).
TEST(Safetensors, TensorsTileTheDataSectionExactly) {
  auto err = [](const std::string &header, const std::string &data) {
    std::string e = parseError(fileBytes(header, data));
    return e.substr(std::min(e.size(), std::string("bad.safetensors: "
                                                   "malformed safetensors "
                                                   "file: ")
                                           .size()));
  };
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                "abcdefgh"),
            "tensor 'b': data_offsets [4, 8] overlap another tensor's data");
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                "abcdefgh"),
            "bytes [0, 4) of the data section belong to no tensor");
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                "abcdefgh"),
            "4 bytes after the last tensor's data");
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                "abcdefgh"),
            "the header names 'a' twice");
  EXPECT_EQ(err(R"({"__metadata__":{"k":"1","k":"2"}})", ""),
            "the header names 'k' twice");
  // A key may repeat in different objects, and a tensor may be empty.
  auto ok = parseSafetensors(
      fileBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("e":{"dtype":"I64","shape":[0,3],"data_offsets":[4,4]}})",
                "abcd"),
      "ok.safetensors");
  ASSERT_TRUE(bool(ok)) << llvm::toString(ok.takeError());
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ(ok->at("e").numel(), 0);
  EXPECT_EQ(ok->at("e").shape(), llvm::ArrayRef<int64_t>({0, 3}));
}

TEST(Safetensors, MissingFileNamesIt) {
  auto r = readSafetensors("/nonexistent/params.safetensors");
  ASSERT_FALSE(bool(r));
  EXPECT_NE(
      llvm::toString(r.takeError()).find("/nonexistent/params.safetensors"),
      std::string::npos);
}

TEST(Safetensors, MetadataRoundTrips) {
  TensorMap in;
  in["w"] = Tensor::fromValues(DType::F32, {2}, {1.5, -2});
  Metadata meta;
  meta["epoch"] = "3";
  meta["empty"] = "";
  // Everything JSON must escape, and some UTF-8.
  meta["escapes"] = "quote \" backslash \\ newline \n tab \t bell \x07 "
                    "slash / \xc3\xbc";
  meta["key with \"quotes\""] = "{\"not\": [\"json\"]}";
  std::string dir = tempDir(), path = dir + "/meta.safetensors";
  ASSERT_FALSE(bool(writeSafetensors(path, in, meta)));
  auto file = readSafetensorsFile(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->metadata, meta);
  ASSERT_EQ(file->tensors.size(), 1u);
  EXPECT_EQ(file->tensors.at("w").at(1), -2);
  // The tensors-only reader still reads the file.
  auto tensors = readSafetensors(path);
  ASSERT_TRUE(bool(tensors)) << llvm::toString(tensors.takeError());
  EXPECT_EQ(tensors->size(), 1u);
  // No metadata written, none read.
  ASSERT_FALSE(bool(writeSafetensors(path, in)));
  file = readSafetensorsFile(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_TRUE(file->metadata.empty());
  removeDir(dir);
}

TEST(Safetensors, BadMetadataIsAnErrorNamingTheFile) {
  std::string dir = tempDir(), path = dir + "/bad.safetensors";
  auto readError = [&](const std::string &header) {
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(path, ec);
      EXPECT_FALSE(ec);
      os << fileBytes(header, "");
    }
    auto r = readSafetensorsFile(path);
    return r ? std::string() : llvm::toString(r.takeError());
  };
  std::string err = readError(R"({"__metadata__":{"format":"pt","epoch":3}})");
  EXPECT_EQ(err, path + ": malformed safetensors file: __metadata__ value "
                        "'epoch' is not a string");
  err = readError(R"({"__metadata__":["pt"]})");
  EXPECT_EQ(err,
            path +
                ": malformed safetensors file: __metadata__ is not an object");
  // The tensors-only reader skips metadata, as before.
  EXPECT_TRUE(bool(readSafetensors(path)));

  // Writing refuses what the format cannot hold.
  TensorMap in;
  in["__metadata__"] = Tensor::fromValues(DType::F32, {1}, {1});
  llvm::Error e = writeSafetensors(path, in);
  ASSERT_TRUE(bool(e));
  EXPECT_TRUE(contains(llvm::toString(std::move(e)), "__metadata__"));
  e = writeSafetensors(path, TensorMap(), Metadata{{"k", "\xff"}});
  ASSERT_TRUE(bool(e));
  EXPECT_EQ(llvm::toString(std::move(e)),
            path + ": metadata value 'k' is not valid UTF-8");
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"bad.safetensors"});
  removeDir(dir);
}

TEST(Safetensors, WritingIntoAMissingDirectoryNamesIt) {
  std::string dir = tempDir(), path = dir + "/missing/params.safetensors";
  TensorMap in;
  in["x"] = Tensor::fromValues(DType::F32, {1}, {1});
  llvm::Error e = writeSafetensors(path, in, Metadata{{"epoch", "1"}});
  ASSERT_TRUE(bool(e));
  std::string msg = llvm::toString(std::move(e));
  EXPECT_TRUE(contains(msg, path + ": ")) << msg;
  EXPECT_TRUE(contains(msg, "No such file or directory")) << msg;
  EXPECT_TRUE(listDir(dir).empty()); // No temporary file anywhere.
  removeDir(dir);
}

TEST(Safetensors, OverwritingReplacesTheFile) {
  std::string dir = tempDir(), path = dir + "/ckpt.safetensors";
  TensorMap first, second;
  first["a"] = Tensor::fromValues(DType::F64, {3}, {1, 2, 3});
  second["b"] = Tensor::fromValues(DType::I32, {1}, {7});
  ASSERT_FALSE(bool(writeSafetensors(path, first, Metadata{{"epoch", "1"}})));
  ASSERT_FALSE(bool(writeSafetensors(path, second, Metadata{{"epoch", "2"}})));
  auto file = readSafetensorsFile(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  ASSERT_EQ(file->tensors.size(), 1u);
  EXPECT_EQ(file->tensors.at("b").at(0), 7);
  EXPECT_EQ(file->metadata, (Metadata{{"epoch", "2"}}));
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"ckpt.safetensors"});
  removeDir(dir);
}

TEST(Safetensors, WritingOverADirectoryIsRefusedAndLeavesNothing) {
  std::string dir = tempDir(), path = dir + "/target";
  ASSERT_FALSE(llvm::sys::fs::create_directory(path));
  ASSERT_FALSE(llvm::sys::fs::create_directory(path + "/inside"));
  TensorMap in;
  in["x"] = Tensor::fromValues(DType::F32, {1}, {1});
  llvm::Error e = writeSafetensors(path, in);
  ASSERT_TRUE(bool(e));
  std::string msg = llvm::toString(std::move(e));
  EXPECT_EQ(msg, path + ": cannot write it: Is a directory");
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"target"});
  EXPECT_EQ(listDir(path), std::vector<std::string>{"inside"});
  removeDir(dir);
}

TEST(Safetensors, WritingThroughASymbolicLinkKeepsTheLink) {
  std::string dir = tempDir(), file = dir + "/file", link = dir + "/link";
  ASSERT_FALSE(llvm::sys::fs::create_link(file, link));
  TensorMap in;
  in["x"] = Tensor::fromValues(DType::F32, {2}, {1, 2});
  // A dangling link first: its target is created. Then an existing one:
  // its target is replaced.
  ASSERT_FALSE(bool(writeSafetensors(link, in)));
  for (int pass = 0; pass < 2; ++pass) {
    llvm::sys::fs::file_status st;
    ASSERT_FALSE(llvm::sys::fs::status(link, st, /*Follow=*/false));
    EXPECT_EQ(st.type(), llvm::sys::fs::file_type::symlink_file);
    auto back = readSafetensors(file);
    ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
    EXPECT_EQ((*back)["x"].at(1), pass == 0 ? 2 : 4);
    in["x"] = Tensor::fromValues(DType::F32, {2}, {3, 4});
    ASSERT_FALSE(bool(writeSafetensors(link, in)));
  }
  removeDir(dir);
}

} // namespace
