//===- JIT.cpp - Compiling graphs to native code with ORC LLJIT -----------===//
//
// The TargetMachine comes from the host (JITTargetMachineBuilder::
// detectHost), so the code uses AVX-512 where the CPU has it and still runs
// where it does not; or from a named CPU and feature list, for printing code
// for another machine and for testing one ISA's code on a CPU that has a
// larger one (x86-64-v3 code on an AVX-512 host). The middle end is LLVM's O3
// pipeline with glibc's libmvec as the vector math library (expf, logf, powf,
// tanhf, erff, ...), so loops that call them vectorize too.
//
//===----------------------------------------------------------------------===//
#include "codegen/JIT.h"
#include "codegen/PerfMap.h"
#include "codegen/Runtime.h"
#include "ir/Printer.h"
#include "passes/Pipeline.h"
#include "runtime/ThreadPool.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Passes/StandardInstrumentations.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/SmallVectorMemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

using namespace kiln;
using namespace llvm;

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

/// glibc's libmvec, loaded once; false if this system has none.
bool loadLibmvec() {
  static bool loaded =
      !sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1");
  return loaded;
}

std::string locationOf(const Node &n) {
  if (!n.loc.isKnown())
    return "";
  return n.loc.str() + ": ";
}

} // namespace

struct JIT::Impl {
  JITOptions opts;
  orc::JITTargetMachineBuilder jtmb{Triple()};
  std::unique_ptr<TargetMachine> tm;
  std::unique_ptr<orc::LLJIT> lljit;
  std::unique_ptr<ThreadPool> pool;
  bool avx2 = false;
  /// Features the target uses and this CPU lacks (empty: runnable here).
  std::vector<std::string> missing;
  LoweringOptions lowering;
  std::mutex mutex;
  /// The micro-kernels, compiled once into a JITDylib of their own that
  /// every compiled step links with (and gemmKernels() returns).
  std::optional<GemmKernels> kernels;
  orc::JITDylib *gemmJD = nullptr;
  Expected<orc::JITDylib &> gemmDylib();
  StringMap<std::unique_ptr<CompiledGraph>> cache;
  unsigned compiled = 0;

  explicit Impl(orc::JITTargetMachineBuilder b) : jtmb(std::move(b)) {}

  /// Lowers g into `parts` fresh modules for this target.
  Expected<std::vector<ModulePart>> lower(const Graph &g,
                                          const BufferPlan &plan,
                                          unsigned parts,
                                          bool externalGemm = false) {
    LoweringOptions opts = lowering;
    opts.externalGemmKernels = externalGemm;
    auto ms = lowerToLLVM(g, plan, opts, parts);
    if (!ms)
      return ms.takeError();
    for (ModulePart &p : *ms)
      forThisTarget(*p.module);
    return ms;
  }

  /// Sets m's data layout and triple, and each function's CPU and features.
  void forThisTarget(Module &m) {
    m.setDataLayout(tm->createDataLayout());
    m.setTargetTriple(tm->getTargetTriple().str());
    for (Function &f : m)
      if (!f.isDeclaration()) {
        f.addFnAttr("target-cpu", tm->getTargetCPU());
        f.addFnAttr("target-features", tm->getTargetFeatureString());
      }
  }

  unsigned modules = 0;

  /// LLVM's O3 pipeline, with libmvec for vector math where the CPU has AVX2.
  /// Each thread needs a TargetMachine of its own.
  void optimize(Module &m, TargetMachine &target) {
    LoopAnalysisManager lam;
    FunctionAnalysisManager fam;
    CGSCCAnalysisManager cgam;
    ModuleAnalysisManager mam;
    PipelineTuningOptions pto;
    pto.LoopVectorization = true;
    pto.SLPVectorization = true;
    // The standard instrumentations make passes skip optnone functions
    // (the entry point).
    PassInstrumentationCallbacks pic;
    StandardInstrumentations si(m.getContext(), /*DebugLogging=*/false);
    si.registerCallbacks(pic, &mam);
    PassBuilder pb(&target, pto, std::nullopt, &pic);
    Triple triple(m.getTargetTriple());
    TargetLibraryInfoImpl tlii(triple);
    if (avx2 && loadLibmvec()) {
      tlii.addVectorizableFunctionsFromVecLib(
          TargetLibraryInfoImpl::LIBMVEC_X86, triple);
      // LLVM's table stops at exp/log/pow/sin/cos; glibc has these too.
      static const VecDesc extra[] = {
          {"tanhf", "_ZGVbN4v_tanhf", ElementCount::getFixed(4), false,
           "_ZGV_LLVM_N4v"},
          {"tanhf", "_ZGVcN8v_tanhf", ElementCount::getFixed(8), false,
           "_ZGV_LLVM_N8v"},
          {"erff", "_ZGVbN4v_erff", ElementCount::getFixed(4), false,
           "_ZGV_LLVM_N4v"},
          {"erff", "_ZGVcN8v_erff", ElementCount::getFixed(8), false,
           "_ZGV_LLVM_N8v"},
          {"expm1f", "_ZGVbN4v_expm1f", ElementCount::getFixed(4), false,
           "_ZGV_LLVM_N4v"},
          {"expm1f", "_ZGVcN8v_expm1f", ElementCount::getFixed(8), false,
           "_ZGV_LLVM_N8v"},
          {"log1pf", "_ZGVbN4v_log1pf", ElementCount::getFixed(4), false,
           "_ZGV_LLVM_N4v"},
          {"log1pf", "_ZGVcN8v_log1pf", ElementCount::getFixed(8), false,
           "_ZGV_LLVM_N8v"},
      };
      tlii.addVectorizableFunctions(extra);
    }
    fam.registerPass([&] { return TargetLibraryAnalysis(tlii); });
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(OptimizationLevel::O3).run(m, mam);
  }
};

JIT::JIT(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JIT::~JIT() = default;

/// The target for `opts`: this CPU, or the named CPU with the named
/// features added or removed. Unknown CPUs and features are errors (LLVM
/// would only warn and ignore them).
static Expected<orc::JITTargetMachineBuilder>
targetFor(const JITOptions &opts) {
  if (opts.cpu.empty() && opts.features.empty())
    return orc::JITTargetMachineBuilder::detectHost();
  auto host = orc::JITTargetMachineBuilder::detectHost();
  if (!host)
    return host.takeError();
  orc::JITTargetMachineBuilder jtmb(host->getTargetTriple());
  // The features: a named CPU brings its own; this one, those it has.
  if (opts.cpu.empty()) {
    jtmb.setCPU(host->getCPU());
    jtmb.addFeatures(host->getFeatures().getFeatures());
  } else {
    jtmb.setCPU(opts.cpu);
  }
  std::string error;
  const Target *target =
      TargetRegistry::lookupTarget(jtmb.getTargetTriple().str(), error);
  if (!target)
    return makeError(error);
  // A generic subtarget, which knows every CPU and feature name (one for an
  // unknown CPU would warn on stderr).
  std::unique_ptr<MCSubtargetInfo> sti(
      target->createMCSubtargetInfo(jtmb.getTargetTriple().str(), "", ""));
  if (!sti->isCPUStringValid(jtmb.getCPU()))
    return makeError("unknown CPU '" + jtmb.getCPU() + "' for --mcpu (LLVM's " +
                     "names, as for llc: znver3, skylake-avx512, x86-64-v3, " +
                     "...)");
  SmallVector<StringRef, 8> features;
  StringRef(opts.features).split(features, ',', -1, /*KeepEmpty=*/false);
  for (StringRef f : features) {
    f = f.trim();
    StringRef name = f.drop_front();
    bool known = llvm::any_of(
        sti->getAllProcessorFeatures(),
        [&](const SubtargetFeatureKV &kv) { return name == kv.Key; });
    if ((!f.starts_with("+") && !f.starts_with("-")) || !known)
      return makeError(
          "--mattr: '" + f + "' is not +FEATURE or -FEATURE " +
          "with a feature of this target (as for llc: " + "+avx512f,-fma)");
    jtmb.getFeatures().AddFeature(f);
  }
  // A 32-bit CPU (i386, pentium4) or -64bit: LLVM would abort.
  std::unique_ptr<MCSubtargetInfo> chosen(
      target->createMCSubtargetInfo(jtmb.getTargetTriple().str(), jtmb.getCPU(),
                                    jtmb.getFeatures().getString()));
  if (!chosen->checkFeatures("+64bit"))
    return makeError("'" + jtmb.getCPU() +
                     (opts.features.empty() ? "" : " " + opts.features) +
                     "' is not an x86-64 CPU; Kiln compiles " + "64-bit code");
  return jtmb;
}

/// Whether an x86 feature is one of the system or special-purpose
/// extensions that a CPU name implies and LLVM's code generator never uses
/// in code that calls no intrinsics (invpcid, rdseed, xsaves, AES, AMX, ...).
/// Hypervisors often hide them. Every other feature (SSE, AVX, FMA, BMI,
/// APX, ...) compiled code may use, and a CPU that lacks it cannot run it.
static bool systemFeature(StringRef feature) {
  static const char *const names[] = {
      "aes",       "cldemote",   "clflushopt", "clwb",     "clzero",
      "cmpccxadd", "crc32",      "enqcmd",     "fsgsbase", "gfni",
      "hle",       "hreset",     "invpcid",    "kl",       "lwp",
      "movdir64b", "movdiri",    "mwaitx",     "pclmul",   "pconfig",
      "pku",       "prefetchi",  "prfchw",     "ptwrite",  "raoint",
      "rdpid",     "rdpru",      "rdrnd",      "rdseed",   "rtm",
      "serialize", "sgx",        "sha",        "sha512",   "shstk",
      "sm3",       "sm4",        "tsxldtrk",   "uintr",    "usermsr",
      "vaes",      "vpclmulqdq", "waitpkg",    "wbnoinvd", "widekl",
      "xsave",     "xsavec",     "xsaveopt",   "xsaves"};
  return feature.starts_with("amx") || llvm::is_contained(names, feature);
}

/// The features `sti` has that compiled code may use and this CPU lacks.
static std::vector<std::string> missingOnHost(const MCSubtargetInfo &sti) {
  // The host's map names every ISA feature it can detect, with whether it
  // has it; tuning flags, which a CPU name also sets, are not in it.
  std::vector<std::string> missing;
  StringMap<bool> host = sys::getHostCPUFeatures();
  for (const SubtargetFeatureKV &kv : sti.getAllProcessorFeatures()) {
    auto it = host.find(kv.Key);
    if (it != host.end() && !it->second && !systemFeature(kv.Key) &&
        sti.getFeatureBits()[kv.Value])
      missing.push_back(kv.Key);
  }
  return missing;
}

Expected<std::unique_ptr<JIT>> JIT::create(const JITOptions &opts) {
  static std::once_flag once;
  std::call_once(once, [] {
    InitializeNativeTarget();
    InitializeNativeTargetAsmPrinter();
  });
  auto jtmb = targetFor(opts);
  if (!jtmb)
    return jtmb.takeError();
  jtmb->setCodeGenOptLevel(CodeGenOptLevel::Aggressive);
  auto impl = std::make_unique<Impl>(*jtmb);
  impl->opts = opts;
  auto tm = jtmb->createTargetMachine();
  if (!tm)
    return tm.takeError();
  impl->tm = std::move(*tm);
  const MCSubtargetInfo &sti = *impl->tm->getMCSubtargetInfo();
  impl->avx2 = sti.checkFeatures("+avx2");
  impl->missing = missingOnHost(sti);
  if (opts.vectorWidth && opts.vectorWidth != 128 && opts.vectorWidth != 256 &&
      opts.vectorWidth != 512)
    return makeError("--vector-width must be 128, 256 or 512, not " +
                     Twine(opts.vectorWidth));
  // The GEMM's vectors: the requested width, at most the widest this CPU
  // has (LLVM's own preference may be narrower, as on some AVX-512 parts).
  bool avx512 = sti.checkFeatures("+avx512f");
  unsigned widest = avx512 ? 512 : sti.checkFeatures("+avx") ? 256 : 128;
  impl->lowering.vectorWidth = opts.vectorWidth;
  impl->lowering.gemm = chooseMicroTile(
      opts.vectorWidth ? std::min(opts.vectorWidth, widest) : widest,
      avx512 ? 32 : 16);
  auto lljit = orc::LLJITBuilder().setJITTargetMachineBuilder(*jtmb).create();
  if (!lljit)
    return lljit.takeError();
  impl->lljit = std::move(*lljit);
  if (perfMapRequested())
    if (auto e = addPerfMap(*impl->lljit))
      return std::move(e);
  loadLibmvec();
  orc::JITDylib &main = impl->lljit->getMainJITDylib();
  auto process = orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      impl->lljit->getDataLayout().getGlobalPrefix());
  if (!process)
    return process.takeError();
  main.addGenerator(std::move(*process));
  orc::SymbolMap runtime;
  auto define = [&](const char *name, void *fn) {
    runtime[impl->lljit->mangleAndIntern(name)] = {
        orc::ExecutorAddr::fromPtr(fn), JITSymbolFlags::Exported};
  };
  define(kRtParallelFor, reinterpret_cast<void *>(&kiln_rt_parallel_for));
  define(kRtMatMul, reinterpret_cast<void *>(&kiln_rt_matmul));
  define(kRtFail, reinterpret_cast<void *>(&kiln_rt_fail));
  define(kRtDropoutKey, reinterpret_cast<void *>(&kiln_rt_dropout_key));
  if (auto e = main.define(orc::absoluteSymbols(std::move(runtime))))
    return std::move(e);
  impl->pool = std::make_unique<ThreadPool>(opts.threads);
  return std::unique_ptr<JIT>(new JIT(std::move(impl)));
}

StringRef JIT::cpu() const { return impl_->tm->getTargetCPU(); }
bool JIT::hasFeature(StringRef feature) const {
  return impl_->tm->getMCSubtargetInfo()->checkFeatures(("+" + feature).str());
}

Error JIT::checkRunnable() const {
  if (impl_->missing.empty())
    return Error::success();
  return makeError("this CPU (" + sys::getHostCPUName() +
                   ") cannot run code for " + cpu() + ": it lacks " +
                   join(impl_->missing, ", ") +
                   " (code for another CPU can be printed with kiln dump " +
                   "--stage=llvm|asm, not run)");
}
unsigned JIT::threads() const { return impl_->pool->size(); }
unsigned JIT::compilations() const { return impl_->compiled; }
const MicroTile &JIT::gemmTile() const { return impl_->lowering.gemm; }

Expected<orc::JITDylib &> JIT::Impl::gemmDylib() {
  if (gemmJD)
    return *gemmJD;
  auto ctx = std::make_unique<LLVMContext>();
  auto m = std::make_unique<Module>("kiln.gemm", *ctx);
  emitGemmKernels(*m, lowering.gemm);
  forThisTarget(*m);
  optimize(*m, *tm);
  auto jd = lljit->createJITDylib("gemm");
  if (!jd)
    return jd.takeError();
  jd->addToLinkOrder(lljit->getMainJITDylib());
  if (auto e = lljit->addIRModule(
          *jd, orc::ThreadSafeModule(std::move(m), std::move(ctx))))
    return std::move(e);
  auto table = lljit->lookup(*jd, kGemmKernelsName);
  if (!table)
    return table.takeError();
  const MicroTile &t = lowering.gemm;
  kernels = GemmKernels{table->toPtr<const GemmMicroKernel *>(), t.mr, t.nr()};
  gemmJD = &*jd;
  return *gemmJD;
}

Expected<GemmKernels> JIT::gemmKernels() {
  if (auto e = checkRunnable())
    return std::move(e);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (auto jd = impl_->gemmDylib(); !jd)
    return jd.takeError();
  return *impl_->kernels;
}

/// The graph the JIT compiles: g after the kernel pipeline (fusion).
static Expected<std::unique_ptr<Graph>> kernelsOf(const Graph &g) {
  std::unique_ptr<Graph> k = cloneGraph(g);
  if (auto e = formKernels(*k))
    return std::move(e);
  return std::move(k);
}

Expected<std::string> JIT::llvmIR(const Graph &input, bool optimized) {
  auto kernels = kernelsOf(input);
  if (!kernels)
    return kernels.takeError();
  const Graph &g = **kernels;
  BufferPlan plan = planMemory(g);
  auto parts = impl_->lower(g, plan, 1);
  if (!parts)
    return parts.takeError();
  Module &m = *(*parts)[0].module;
  if (optimized)
    impl_->optimize(m, *impl_->tm);
  std::string text;
  raw_string_ostream os(text);
  m.print(os, nullptr);
  return text;
}

Expected<std::string> JIT::assembly(const Graph &input) {
  auto kernels = kernelsOf(input);
  if (!kernels)
    return kernels.takeError();
  const Graph &g = **kernels;
  BufferPlan plan = planMemory(g);
  auto parts = impl_->lower(g, plan, 1);
  if (!parts)
    return parts.takeError();
  Module &m = *(*parts)[0].module;
  impl_->optimize(m, *impl_->tm);
  SmallString<0> text;
  raw_svector_ostream os(text);
  legacy::PassManager pm;
  if (impl_->tm->addPassesToEmitFile(pm, os, nullptr,
                                     CodeGenFileType::AssemblyFile))
    return makeError("this target cannot print assembly");
  pm.run(m);
  return std::string(text);
}

/// Runs fn(i) for i < n on up to `threads` threads (the caller's included).
static void runParallel(size_t n, unsigned threads,
                        function_ref<void(size_t)> fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;)
      fn(i);
  };
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < std::min<size_t>(threads, n); ++t)
    helpers.emplace_back(work);
  work();
  for (std::thread &t : helpers)
    t.join();
}

Expected<const CompiledGraph &> JIT::compile(const Graph &input) {
  if (auto e = checkRunnable())
    return std::move(e);
  std::string key;
  raw_string_ostream keyOs(key);
  printGraph(input, keyOs);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (auto it = impl_->cache.find(key); it != impl_->cache.end())
    return *it->second;
  auto kernels = kernelsOf(input);
  if (!kernels)
    return kernels.takeError();
  const Graph &g = **kernels;

  auto cg = std::make_unique<CompiledGraph>();
  cg->plan_ = planMemory(g);
  cg->pool_ = impl_->pool.get();
  // The kernels are spread over one module per thread, each optimised and
  // compiled on its own thread with its own TargetMachine, then linked.
  unsigned threads = impl_->pool->size();
  auto t0 = std::chrono::steady_clock::now();
  auto parts = impl_->lower(g, cg->plan_, threads, /*externalGemm=*/true);
  if (!parts)
    return parts.takeError();
  cg->times_.lower = secondsSince(t0);
  // A step that calls the GEMM declares its micro-kernels' table: it links
  // with the micro-kernels compiled once per JIT (impl_->gemmDylib).
  orc::JITDylib *gemm = nullptr;
  if ((*parts)[0].module->getGlobalVariable(kGemmKernelsName)) {
    bool first = !impl_->gemmJD;
    t0 = std::chrono::steady_clock::now();
    auto jd = impl_->gemmDylib();
    if (!jd)
      return jd.takeError();
    gemm = &*jd;
    if (first)
      cg->times_.gemm = secondsSince(t0);
  }
  std::vector<std::unique_ptr<TargetMachine>> tms;
  for (size_t i = 0; i < parts->size(); ++i) {
    auto tm = impl_->jtmb.createTargetMachine();
    if (!tm)
      return tm.takeError();
    tms.push_back(std::move(*tm));
  }
  t0 = std::chrono::steady_clock::now();
  runParallel(parts->size(), threads,
              [&](size_t i) { impl_->optimize(*(*parts)[i].module, *tms[i]); });
  cg->times_.optimize = secondsSince(t0);

  t0 = std::chrono::steady_clock::now();
  std::vector<SmallVector<char, 0>> objects(parts->size());
  // One flag per part, each written by one thread (not a vector<bool>,
  // whose elements share words).
  std::vector<char> emitted(parts->size(), false);
  runParallel(parts->size(), threads, [&](size_t i) {
    raw_svector_ostream os(objects[i]);
    legacy::PassManager pm;
    if (tms[i]->addPassesToEmitFile(pm, os, nullptr,
                                    CodeGenFileType::ObjectFile))
      return;
    pm.run(*(*parts)[i].module);
    emitted[i] = true;
  });
  if (llvm::is_contained(emitted, false))
    return makeError("this target cannot emit object code");
  auto jd =
      impl_->lljit->createJITDylib("module" + std::to_string(impl_->modules++));
  if (!jd)
    return jd.takeError();
  if (gemm)
    jd->addToLinkOrder(*gemm);
  jd->addToLinkOrder(impl_->lljit->getMainJITDylib());
  for (size_t i = 0; i < objects.size(); ++i)
    if (auto e = impl_->lljit->addObjectFile(
            *jd, std::make_unique<SmallVectorMemoryBuffer>(
                     std::move(objects[i]),
                     (*parts)[i].module->getModuleIdentifier(), false)))
      return std::move(e);
  auto sym = impl_->lljit->lookup(*jd, kEntryName);
  if (!sym)
    return sym.takeError();
  cg->entry_ = sym->toPtr<void (*)(void **, void *)>();
  cg->times_.codegen = secondsSince(t0);
  ++impl_->compiled;

  // What run() needs of the graph, which may not outlive this call.
  cg->name_ = g.name;
  llvm::StringSet<> updated;
  for (const StateUpdate &u : g.updates)
    updated.insert(u.name);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    if (n.info().flags & Leaf && n.op != Op::Constant) {
      std::string name = n.stringAttr("name");
      cg->leaves_.push_back({n.info().mnemonic.str(), name, n.type,
                             cg->plan_.slotOf[i], updated.contains(name)});
    }
  }
  DenseMap<const Node *, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    index[g.nodes[i].get()] = i;
  for (const Node *root : g.rootValues())
    cg->roots_.push_back({root->type, cg->plan_.slotOf[index[root]]});
  // rootValues() starts with the objective, then the output.
  if (g.objective)
    cg->objectiveRoot_ = 0;
  if (g.output)
    cg->outputRoot_ = g.objective ? 1 : 0;
  cg->failMessages_.resize(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node *np = g.nodes[i].get();
    // A fused kernel reports the first op of its body that checks ids.
    if (np->body)
      for (auto &b : np->body->nodes)
        if (b->op == Op::OneHot || b->op == Op::CrossEntropy) {
          np = b.get();
          break;
        }
    const Node &n = *np;
    std::string where = locationOf(n);
    CompiledGraph::FailMessage &f = cg->failMessages_[i];
    if (n.op == Op::Embedding)
      f = {where + "embedding id ",
           " is out of range for a table of " +
               std::to_string(n.operands[1]->type.shape[0]) + " rows"};
    else if (n.op == Op::OneHot)
      f = {where + "one_hot id ", " is out of range for " +
                                      std::to_string(n.intAttr("classes")) +
                                      " classes"};
    else if (n.op == Op::PlaneScatter || n.op == Op::PlaneGather) {
      const Shape &planes =
          n.op == Op::PlaneScatter ? n.type.shape : n.operands[0]->type.shape;
      f = {where + "'" + n.info().mnemonic.str() + "' index ",
           " is out of range for planes of " +
               std::to_string(planes[2] * planes[3]) + " pixels"};
    } else if (n.op == Op::CrossEntropy)
      f = {where + "label ", " is out of range for " +
                                 std::to_string(n.operands[0]->type.shape[1]) +
                                 " classes"};
  }
  if (auto e = checkMemory(cg->plan_.workspaceBytes, "compiled @" + g.name))
    return std::move(e);
  auto &slot = impl_->cache[key];
  slot = std::move(cg);
  return *slot;
}

Expected<std::unique_ptr<char, void (*)(void *)>>
CompiledGraph::allocateWorkspace() const {
  if (auto e = checkMemory(plan_.workspaceBytes, "compiled @" + name_))
    return std::move(e);
  // aligned_alloc wants a multiple of the alignment; plan sizes are.
  std::unique_ptr<char, void (*)(void *)> w(
      static_cast<char *>(
          std::aligned_alloc(64, std::max<int64_t>(64, plan_.workspaceBytes))),
      &std::free);
  if (!w)
    return makeError("cannot allocate " + Twine(plan_.workspaceBytes) +
                     " bytes for compiled @" + name_);
  return std::move(w);
}

Error CompiledGraph::call(void **bufs, uint64_t seed, uint64_t step) const {
  RuntimeContext rt;
  rt.pool = pool_->size() > 1 ? pool_ : nullptr;
  rt.seed = seed;
  rt.step = step;
  entry_(bufs, &rt);
  if (int64_t node = rt.failedNode.load(); node >= 0)
    return makeError(failMessages_[node].before + Twine(rt.failedValue) +
                     failMessages_[node].after);
  return Error::success();
}

Expected<std::vector<Tensor>>
CompiledGraph::run(const StringMap<Tensor> &leaves, uint64_t seed,
                   uint64_t step) const {
  std::vector<void *> bufs(plan_.numSlots(), nullptr);
  // Private copies: converted dtypes, and the leaves the step updates in
  // place (the caller's tensors are const).
  std::vector<Tensor> copies;
  copies.reserve(leaves_.size());
  for (const Leaf &l : leaves_) {
    auto it = leaves.find(l.name);
    if (it == leaves.end())
      return makeError("no value for " + l.kind + " '" + l.name + "'");
    const Tensor &v = it->second;
    if (v.shape() != ArrayRef<int64_t>(l.type.shape))
      return makeError(l.kind + " '" + l.name + "' must have shape " +
                       shapeStr(l.type.shape) + ", got " + shapeStr(v.shape()));
    if (v.dtype() != l.type.dtype &&
        isFloat(v.dtype()) != isFloat(l.type.dtype))
      return makeError(l.kind + " '" + l.name + "' must be " +
                       dtypeName(l.type.dtype) + ", got " +
                       dtypeName(v.dtype()));
    copies.push_back(v.cast(l.type.dtype));
    bufs[l.slot] = copies.back().raw();
  }
  auto workspace = allocateWorkspace();
  if (!workspace)
    return workspace.takeError();
  for (size_t s = 0; s < plan_.numSlots(); ++s)
    if (plan_.leafOf[s] < 0)
      bufs[s] = workspace->get() + plan_.offset[s];
  if (auto e = call(bufs.data(), seed, step))
    return std::move(e);
  std::vector<Tensor> out;
  for (const Root &r : roots_) {
    Tensor t(r.type.dtype, r.type.shape);
    std::memcpy(t.raw(), bufs[r.slot], t.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

JITStep::JITStep(const CompiledGraph &compiled) : compiled(compiled) {
  for (const CompiledGraph::Leaf &l : compiled.leaves_)
    addLeaf({*opFromMnemonic(l.kind), l.name, l.type, l.updated});
  if (compiled.outputRoot_ >= 0) {
    hasOutput_ = true;
    outputType_ = compiled.roots_[compiled.outputRoot_].type;
  }
}

Expected<std::unique_ptr<JITStep>>
JITStep::create(const CompiledGraph &compiled) {
  std::unique_ptr<JITStep> s(new JITStep(compiled));
  auto w = compiled.allocateWorkspace();
  if (!w)
    return w.takeError();
  s->workspace = std::move(*w);
  s->bufs.assign(compiled.plan_.numSlots(), nullptr);
  for (size_t sl = 0; sl < compiled.plan_.numSlots(); ++sl)
    if (compiled.plan_.leafOf[sl] < 0)
      s->bufs[sl] = s->workspace.get() + compiled.plan_.offset[sl];
  return std::move(s);
}

Error JITStep::run(uint64_t seed, uint64_t step) {
  if (auto e = checkBound())
    return e;
  for (size_t i = 0; i < leaves_.size(); ++i)
    bufs[compiled.leaves_[i].slot] = buffers_[i];
  return compiled.call(bufs.data(), seed, step);
}

double JITStep::objective() const {
  if (compiled.objectiveRoot_ < 0)
    return NAN;
  return *static_cast<const float *>(
      bufs[compiled.roots_[compiled.objectiveRoot_].slot]);
}

const void *JITStep::output() const {
  if (compiled.outputRoot_ < 0)
    return nullptr;
  return bufs[compiled.roots_[compiled.outputRoot_].slot];
}
