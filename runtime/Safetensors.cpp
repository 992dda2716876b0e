//===- Safetensors.cpp - Reading and writing .safetensors files -----------===//
//
// Validation is strict because the files come from outside: the header length
// must fit the file, every entry needs a known dtype, a shape whose byte size
// matches its offsets, and offsets inside the data section.
//
//===----------------------------------------------------------------------===//
#include "runtime/Safetensors.h"
#include "ir/Graph.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <cstring>
#include <nlohmann/json.hpp>

using namespace kiln;
using json = nlohmann::json;

static constexpr uint64_t kMaxHeader = 100 << 20;

static llvm::StringRef fileDType(DType t) {
  switch (t) {
  case DType::F32:
    return "F32";
  case DType::F64:
    return "F64";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  }
  return "";
}

llvm::Expected<TensorMap> kiln::parseSafetensors(llvm::StringRef bytes,
                                                 llvm::StringRef path) {
  auto bad = [&](const llvm::Twine &why) {
    return makeError(path + ": malformed safetensors file: " + why);
  };
  if (bytes.size() < 8)
    return bad("shorter than its 8-byte header length");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = headerLen << 8 | uint8_t(bytes[i]);
  if (headerLen > kMaxHeader || headerLen > bytes.size() - 8)
    return bad("header length " + llvm::Twine(headerLen) +
               " does not fit a file of " + llvm::Twine(bytes.size()) +
               " bytes");
  json header = json::parse(bytes.substr(8, headerLen), nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return bad("the header is not a JSON object");
  llvm::StringRef data = bytes.substr(8 + headerLen);
  TensorMap out;
  for (auto &item : header.items()) {
    const std::string &name = item.key();
    const json &entry = item.value();
    if (name == "__metadata__")
      continue;
    auto badEntry = [&](const llvm::Twine &why) {
      return bad("tensor '" + name + "': " + why);
    };
    if (!entry.is_object() || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("data_offsets"))
      return badEntry("needs dtype, shape and data_offsets");
    const json &dt = entry.at("dtype"), &sh = entry.at("shape"),
               &offs = entry.at("data_offsets");
    if (!dt.is_string())
      return badEntry("dtype is not a string");
    std::optional<DType> dtype;
    for (DType t : {DType::F32, DType::F64, DType::I32, DType::I64})
      if (fileDType(t) == dt.get<std::string>())
        dtype = t;
    if (!dtype)
      return badEntry("unsupported dtype '" + dt.get<std::string>() +
                      "' (Kiln reads F32, F64, I32, I64)");
    Shape shape;
    if (!sh.is_array())
      return badEntry("shape is not a list");
    for (const json &d : sh) {
      if (!d.is_number_unsigned())
        return badEntry("shape has a dimension that is not a natural number");
      shape.push_back(
          int64_t(std::min<uint64_t>(d.get<uint64_t>(), INT64_MAX)));
    }
    auto numel = numElements(shape);
    if (!numel || *numel > kMaxElements)
      return badEntry("shape " + shapeStr(shape) + " is too large");
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() ||
        !offs[1].is_number_unsigned())
      return badEntry("data_offsets is not a pair of natural numbers");
    uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data.size())
      return badEntry("data_offsets [" + llvm::Twine(begin) + ", " +
                      llvm::Twine(end) + "] are outside the " +
                      llvm::Twine(data.size()) + "-byte data section");
    uint64_t want = uint64_t(*numel) * dtypeSize(*dtype);
    if (end - begin != want)
      return badEntry("shape " + shapeStr(shape) + " of " + fileDType(*dtype) +
                      " needs " + llvm::Twine(want) +
                      " bytes but data_offsets "
                      "span " +
                      llvm::Twine(end - begin));
    Tensor t(*dtype, shape);
    std::memcpy(t.raw(), data.data() + begin, want);
    out.emplace(name, std::move(t));
  }
  return out;
}

llvm::Expected<TensorMap> kiln::readSafetensors(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!buf)
    return makeError(path + ": " + buf.getError().message());
  return parseSafetensors((*buf)->getBuffer(), path);
}

llvm::Error kiln::writeSafetensors(llvm::StringRef path,
                                   const TensorMap &tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (auto &[name, t] : tensors) {
    header[name] = {
        {"dtype", fileDType(t.dtype()).str()},
        {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
        {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string tmp = (path + ".tmp").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(tmp, ec, llvm::sys::fs::OF_None);
    if (ec)
      return makeError(tmp + ": " + ec.message());
    uint64_t len = text.size();
    for (int i = 0; i < 8; ++i)
      os << char((len >> (8 * i)) & 0xff);
    os << text;
    for (auto &[name, t] : tensors)
      os.write(static_cast<const char *>(t.raw()), t.nbytes());
    os.close();
    if (os.has_error())
      return makeError(tmp + ": write failed: " + os.error().message());
  }
  if (auto ec = llvm::sys::fs::rename(tmp, path))
    return makeError(path + ": " + ec.message());
  return llvm::Error::success();
}
