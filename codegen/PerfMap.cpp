//===- PerfMap.cpp - Naming JIT-compiled code for perf --------------===//
//
// A JITLink plugin: after fix-up, when every symbol has its final address,
// it writes the graph's callable symbols to the map. Modules are linked from
// several threads at once, and by several JITs, so they share one stream
// and its writes are serialised.
//
//===----------------------------------------------------------------------===//
#include "codegen/PerfMap.h"
#include "llvm/ExecutionEngine/JITLink/JITLink.h"
#include "llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdlib>
#include <cstring>
#include <mutex>

using namespace kiln;
using namespace llvm;

namespace {

/// The process's map, which every JIT in it appends to through one stream:
/// two streams on one file would interleave their buffered lines.
struct MapFile {
  std::mutex mutex;
  std::unique_ptr<raw_fd_ostream> out;
  std::error_code openError;
  std::string path;
};

MapFile &mapFile() {
  static MapFile *file = [] {
    auto *f = new MapFile; // never destroyed: JITs may outlive statics
    f->path =
        ("/tmp/perf-" + Twine(sys::Process::getProcessId()) + ".map").str();
    f->out = std::make_unique<raw_fd_ostream>(f->path, f->openError,
                                              sys::fs::OF_Append);
    return f;
  }();
  return *file;
}

class PerfMapPlugin : public orc::ObjectLinkingLayer::Plugin {
public:
  void modifyPassConfig(orc::MaterializationResponsibility &,
                        jitlink::LinkGraph &,
                        jitlink::PassConfiguration &config) override {
    config.PostFixupPasses.push_back(
        [](jitlink::LinkGraph &g) { return write(g); });
  }
  Error notifyFailed(orc::MaterializationResponsibility &) override {
    return Error::success();
  }
  Error notifyRemovingResources(orc::JITDylib &, orc::ResourceKey) override {
    return Error::success();
  }
  void notifyTransferringResources(orc::JITDylib &, orc::ResourceKey,
                                   orc::ResourceKey) override {}

private:
  static Error write(jitlink::LinkGraph &g) {
    MapFile &f = mapFile();
    std::lock_guard<std::mutex> lock(f.mutex);
    for (jitlink::Symbol *s : g.defined_symbols())
      if (s->hasName() && s->isCallable() && s->getSize() > 0)
        *f.out << format_hex_no_prefix(s->getAddress().getValue(), 1) << ' '
               << format_hex_no_prefix(s->getSize(), 1) << ' ' << s->getName()
               << '\n';
    f.out->flush();
    if (f.out->has_error())
      return createStringError(f.out->error(),
                               "cannot write the perf map " + f.path);
    return Error::success();
  }
};

} // namespace

bool kiln::perfMapRequested() {
  const char *v = std::getenv("KILN_PERF_MAP");
  return v && *v && std::strcmp(v, "0") != 0;
}

std::string kiln::perfMapPath() { return mapFile().path; }

Error kiln::addPerfMap(orc::LLJIT &jit) {
  auto *layer = dyn_cast<orc::ObjectLinkingLayer>(&jit.getObjLinkingLayer());
  if (!layer)
    return createStringError(inconvertibleErrorCode(),
                             "KILN_PERF_MAP needs a JIT that links with "
                             "JITLink");
  MapFile &f = mapFile();
  if (f.openError)
    return createStringError(f.openError, "cannot open " + f.path);
  layer->addPlugin(std::make_unique<PerfMapPlugin>());
  return Error::success();
}
