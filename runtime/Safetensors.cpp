//===- Safetensors.cpp - Reading and writing .safetensors files -----------===//
//
// Validation is strict because the files come from outside: the header length
// must fit the file, every entry needs a known dtype, a shape whose byte size
// matches its offsets, and offsets inside the data section. Writes go
// through writeFileAtomically, so a crash mid-write (a checkpoint, say) never
// leaves a torn file under the real name.
//
//===----------------------------------------------------------------------===//
#include "runtime/Safetensors.h"
#include "ir/Graph.h"
#include "support/Files.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <unistd.h>

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

static bool isUTF8(llvm::StringRef s) {
  auto *begin = reinterpret_cast<const llvm::UTF8 *>(s.data());
  return llvm::isLegalUTF8String(&begin, begin + s.size());
}

/// Parses a file's bytes; reads "__metadata__" into `metadata` unless it is
/// null (then the metadata is skipped unchecked, as parseSafetensors does).
static llvm::Expected<TensorMap>
parseFile(llvm::StringRef bytes, llvm::StringRef path, Metadata *metadata) {
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
  // JSON allows a key twice and nlohmann keeps the last; a file that
  // names a tensor twice is ambiguous, so the parser callback refuses it.
  std::vector<std::set<std::string>> keysAt;
  std::string duplicate;
  auto noDuplicates = [&](int depth, json::parse_event_t event, json &value) {
    if (event == json::parse_event_t::object_start)
      keysAt.resize(size_t(depth) + 1);
    if (event == json::parse_event_t::object_end &&
        size_t(depth) < keysAt.size())
      keysAt[depth].clear();
    if (event == json::parse_event_t::key && duplicate.empty() &&
        size_t(depth) <= keysAt.size() && depth > 0 &&
        !keysAt[depth - 1].insert(value.get<std::string>()).second)
      duplicate = value.get<std::string>();
    return true;
  };
  json header = json::parse(bytes.substr(8, headerLen), noDuplicates,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return bad("the header is not a JSON object");
  if (!duplicate.empty())
    return bad("the header names '" + duplicate + "' twice");
  llvm::StringRef data = bytes.substr(8 + headerLen);
  TensorMap out;
  struct Span {
    uint64_t begin, end;
    std::string name;
    bool operator<(const Span &o) const {
      return std::tie(begin, end) < std::tie(o.begin, o.end);
    }
  };
  std::vector<Span> spans;
  for (auto &item : header.items()) {
    const std::string &name = item.key();
    const json &entry = item.value();
    if (name == "__metadata__") {
      if (!metadata)
        continue;
      if (!entry.is_object())
        return bad("__metadata__ is not an object");
      for (auto &kv : entry.items()) {
        if (!kv.value().is_string())
          return bad("__metadata__ value '" + kv.key() + "' is not a string");
        (*metadata)[kv.key()] = kv.value().get<std::string>();
      }
      continue;
    }
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
    spans.push_back({begin, end, name});
    Tensor t(*dtype, shape);
    if (want) // an empty tensor has no storage to copy to
      std::memcpy(t.raw(), data.data() + begin, want);
    out.emplace(name, std::move(t));
  }
  // As the format's reference reader does: the tensors' bytes tile the data
  // section, so no two share bytes and none are left over.
  llvm::sort(spans);
  uint64_t covered = 0;
  for (const Span &sp : spans) {
    if (sp.begin < covered)
      return bad("tensor '" + sp.name + "': data_offsets [" +
                 llvm::Twine(sp.begin) + ", " + llvm::Twine(sp.end) +
                 "] overlap another tensor's data");
    if (sp.begin > covered)
      return bad("bytes [" + llvm::Twine(covered) + ", " +
                 llvm::Twine(sp.begin) +
                 ") of the data section belong to no tensor");
    covered = sp.end;
  }
  if (covered != data.size())
    return bad(llvm::Twine(data.size() - covered) +
               " bytes after the last tensor's data");
  return out;
}

llvm::Expected<TensorMap> kiln::parseSafetensors(llvm::StringRef bytes,
                                                 llvm::StringRef path) {
  return parseFile(bytes, path, /*metadata=*/nullptr);
}

llvm::Expected<TensorMap> kiln::readSafetensors(llvm::StringRef path) {
  auto buf = readDataFile(path);
  if (!buf)
    return buf.takeError();
  return parseSafetensors((*buf)->getBuffer(), path);
}

llvm::Expected<SafetensorsFile>
kiln::parseSafetensorsFile(llvm::StringRef bytes, llvm::StringRef path) {
  SafetensorsFile file;
  auto tensors = parseFile(bytes, path, &file.metadata);
  if (!tensors)
    return tensors.takeError();
  file.tensors = std::move(*tensors);
  return file;
}

llvm::Expected<SafetensorsFile>
kiln::readSafetensorsFile(llvm::StringRef path) {
  auto buf = readDataFile(path);
  if (!buf)
    return buf.takeError();
  return parseSafetensorsFile((*buf)->getBuffer(), path);
}

llvm::Error kiln::writeSafetensors(llvm::StringRef path,
                                   const TensorMap &tensors) {
  return writeSafetensors(path, tensors, Metadata());
}

llvm::Error kiln::writeSafetensors(llvm::StringRef path,
                                   const TensorMap &tensors,
                                   const Metadata &metadata) {
  // nlohmann-json throws on a string that is not UTF-8; refuse it here.
  auto notUTF8 = [&](const llvm::Twine &what) {
    return makeError(path + ": " + what + " is not valid UTF-8");
  };
  json header = json::object();
  uint64_t offset = 0;
  for (auto &[name, t] : tensors) {
    if (name == "__metadata__")
      return makeError(path + ": a tensor cannot be named '__metadata__'");
    if (!isUTF8(name))
      return notUTF8("a tensor name");
    header[name] = {
        {"dtype", fileDType(t.dtype()).str()},
        {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
        {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  for (auto &[key, value] : metadata) {
    if (!isUTF8(key))
      return notUTF8("a metadata key");
    if (!isUTF8(value))
      return notUTF8("metadata value '" + key + "'");
  }
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return writeFileAtomically(path, [&](llvm::raw_ostream &os) {
    uint64_t len = text.size();
    for (int i = 0; i < 8; ++i)
      os << char((len >> (8 * i)) & 0xff);
    os << text;
    for (auto &[name, t] : tensors)
      os.write(static_cast<const char *>(t.raw()), t.nbytes());
  });
}

static std::error_code lastError() {
  return std::error_code(errno, std::generic_category());
}

/// Runs `write` into descriptor fd (left open) and flushes it: the first
/// error of any write, or none.
static std::error_code
writeTo(int fd, llvm::function_ref<void(llvm::raw_ostream &)> write) {
  llvm::raw_fd_ostream os(fd, /*shouldClose=*/false);
  write(os);
  os.flush();
  std::error_code ec = os.error();
  os.clear_error(); // Else its destructor aborts.
  return ec;
}

/// The descriptor `path` names if it is one the process inherited
/// (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N), else -1.
static int inheritedDescriptor(llvm::StringRef path) {
  if (path == "/dev/stdout")
    return 1;
  if (path == "/dev/stderr")
    return 2;
  int fd = -1;
  if ((path.consume_front("/dev/fd/") ||
       path.consume_front("/proc/self/fd/")) &&
      !path.getAsInteger(10, fd) && fd >= 0)
    return fd;
  return -1;
}

static bool isInheritedDescriptor(llvm::StringRef path) {
  return inheritedDescriptor(path) >= 0;
}

llvm::Expected<std::string> kiln::outputTarget(llvm::StringRef path) {
  // Follows the chain of symbolic links, as the kernel does (at most 40).
  llvm::SmallString<128> at(path);
  for (int hops = 0; hops < 40; ++hops) {
    llvm::sys::fs::file_status st;
    if (llvm::sys::fs::status(at, st, /*Follow=*/false) ||
        st.type() != llvm::sys::fs::file_type::symlink_file) {
      // A file, or nothing yet: that is the target, made absolute.
      llvm::SmallString<128> real;
      if (!llvm::sys::fs::real_path(at, real))
        return std::string(real);
      llvm::sys::fs::make_absolute(at);
      llvm::sys::path::remove_dots(at, /*remove_dot_dot=*/true);
      return std::string(at);
    }
    char link[4096];
    ssize_t n = ::readlink(at.c_str(), link, sizeof(link));
    if (n <= 0 || size_t(n) == sizeof(link))
      return makeError(path + ": cannot read the symbolic link " + at + ": " +
                       lastError().message());
    llvm::StringRef to(link, n);
    if (llvm::sys::path::is_relative(to)) {
      llvm::SmallString<128> dir = llvm::sys::path::parent_path(at);
      llvm::sys::path::append(dir, to);
      at = dir;
    } else {
      at = to;
    }
  }
  return makeError(path + ": too many levels of symbolic links (a loop?)");
}

/// Writes into the existing special file `path` (a device such as /dev/null,
/// a pipe), which no rename may replace: every write, the flush and the
/// close are checked.
static llvm::Error
writeInPlace(llvm::StringRef path,
             llvm::function_ref<void(llvm::raw_ostream &)> write) {
  auto fail = [&](const llvm::Twine &what, std::error_code ec) {
    return makeError(path + ": " + what + ": " + ec.message());
  };
  if (path.empty())
    return makeError("an empty path names no file to write");
  // A descriptor the process inherited (/dev/stdout, /dev/fd/N,
  // /proc/self/fd/N) is written through a copy, so that a shell's
  // redirection keeps its offset and appends; reopening it would write a
  // redirected file from its start.
  int fd = -1;
  int inherited = inheritedDescriptor(path);
  if (inherited >= 0) {
    fd = ::fcntl(inherited, F_DUPFD_CLOEXEC, 0);
  } else {
    // A pipe nobody reads would block the open forever: refuse it.
    fd = ::open(path.str().c_str(),
                O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENXIO)
      return makeError(path + ": no process reads the pipe");
    if (fd >= 0)
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
  if (fd < 0)
    return fail("cannot open it for writing", lastError());
  if (std::error_code ec = writeTo(fd, write)) {
    ::close(fd);
    return fail("write failed", ec);
  }
  if (::close(fd) != 0)
    return fail("close failed", lastError());
  return llvm::Error::success();
}

llvm::Error
kiln::writeFileAtomically(llvm::StringRef path,
                          llvm::function_ref<void(llvm::raw_ostream &)> write) {
  auto fail = [&](const llvm::Twine &what, std::error_code ec) {
    return makeError(path + ": " + what + ": " + ec.message());
  };
  // Only a regular file (or none yet) is replaced by a rename; a symbolic
  // link's target is, so that the link stays.
  llvm::sys::fs::file_status st;
  if (isInheritedDescriptor(path))
    return writeInPlace(path, write);
  if (!llvm::sys::fs::status(path, st, /*Follow=*/true)) {
    if (llvm::sys::fs::is_directory(st))
      return fail("cannot write it",
                  std::make_error_code(std::errc::is_a_directory));
    if (!llvm::sys::fs::is_regular_file(st))
      return writeInPlace(path, write);
  }
  auto resolved = outputTarget(path);
  if (!resolved)
    return resolved.takeError();
  llvm::SmallString<128> target(*resolved);
  int fd = -1;
  llvm::SmallString<128> tmp;
  if (auto ec =
          llvm::sys::fs::createUniqueFile(target + ".tmp-%%%%%%", fd, tmp))
    return fail("cannot create a temporary file", ec);
  // From here on a failure must not leave the temporary file behind.
  auto abandon = [&](const llvm::Twine &what, std::error_code ec) {
    if (fd >= 0)
      ::close(fd);
    llvm::sys::fs::remove(tmp);
    return fail(what, ec);
  };
  if (std::error_code ec = writeTo(fd, write))
    return abandon("write failed", ec);
  if (::fsync(fd) != 0)
    return abandon("fsync failed", lastError());
  int closing = fd;
  fd = -1;
  if (::close(closing) != 0)
    return abandon("close failed", lastError());
  if (auto ec = llvm::sys::fs::rename(tmp, target))
    return abandon("cannot rename " + tmp + " over it", ec);
  // The rename is durable only once the directory entry is on disk.
  llvm::SmallString<128> dir = llvm::sys::path::parent_path(target);
  if (dir.empty())
    dir = ".";
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0)
    return fail("cannot open its directory to fsync it", lastError());
  // Some file systems cannot fsync a directory and say EINVAL.
  if (::fsync(dirFd) != 0 && errno != EINVAL) {
    std::error_code ec = lastError();
    ::close(dirFd);
    return fail("fsync of its directory failed", ec);
  }
  ::close(dirFd);
  return llvm::Error::success();
}
