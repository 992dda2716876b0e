//===- PerfMap.cpp - Naming JIT-compiled code for perf --------------===//
//
// A JITLink plugin: after fix-up, when every symbol has its final address,
// it writes the graph's callable symbols to the map. Modules are linked from
// several threads at once, so the writes are serialised.
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

class PerfMapPlugin : public orc::ObjectLinkingLayer::Plugin {
public:
  explicit PerfMapPlugin(std::unique_ptr<raw_fd_ostream> out)
      : out_(std::move(out)) {}

  void modifyPassConfig(orc::MaterializationResponsibility &,
                        jitlink::LinkGraph &,
                        jitlink::PassConfiguration &config) override {
    config.PostFixupPasses.push_back(
        [this](jitlink::LinkGraph &g) { return write(g); });
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
  Error write(jitlink::LinkGraph &g) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (jitlink::Symbol *s : g.defined_symbols())
      if (s->hasName() && s->isCallable() && s->getSize() > 0)
        *out_ << format_hex_no_prefix(s->getAddress().getValue(), 1) << ' '
              << format_hex_no_prefix(s->getSize(), 1) << ' ' << s->getName()
              << '\n';
    out_->flush();
    if (out_->has_error())
      return createStringError(out_->error(), "cannot write the perf map");
    return Error::success();
  }

  std::unique_ptr<raw_fd_ostream> out_;
  std::mutex mutex_;
};

} // namespace

bool kiln::perfMapRequested() {
  const char *v = std::getenv("KILN_PERF_MAP");
  return v && *v && std::strcmp(v, "0") != 0;
}

Error kiln::addPerfMap(orc::LLJIT &jit) {
  auto *layer = dyn_cast<orc::ObjectLinkingLayer>(&jit.getObjLinkingLayer());
  if (!layer)
    return createStringError(inconvertibleErrorCode(),
                             "KILN_PERF_MAP needs a JIT that links with "
                             "JITLink");
  std::string path =
      ("/tmp/perf-" + Twine(sys::Process::getProcessId()) + ".map").str();
  std::error_code ec;
  auto out = std::make_unique<raw_fd_ostream>(path, ec, sys::fs::OF_Append);
  if (ec)
    return createStringError(ec, "cannot open " + path);
  layer->addPlugin(std::make_unique<PerfMapPlugin>(std::move(out)));
  return Error::success();
}
