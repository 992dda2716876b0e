//===- KernelBuilder.h - Kernel ABI, loop builders, the entry --*- C++ -*-===//
//
// Each kernel is two functions: a body that computes iterations
// [begin, end) of its outermost parallel loop from noalias buffer pointers,
// and a task
//
//   void kN.op(ptr args, ptr rt, i64 begin, i64 end)
//
// that loads those pointers from `args` and calls the body (which LLVM
// inlines into it, keeping the noalias facts as scopes). Tasks are never
// inlined into the entry point, so LLVM optimises each kernel on its own
// and compile time grows with the number of distinct kernels, not with the
// size of one function. Since a task reads its buffers from `args` and not
// from fixed slots, nodes with the same signature (an unrolled loop's
// repeated steps) share one kernel.
//
// The entry point `kiln_step(ptr bufs, ptr rt)` runs the launches in graph
// order: it fills `args` from the slot table and calls the task over its
// whole range, directly or through the runtime's parallel_for (a
// convolution's im2col task is the exception: the runtime GEMM calls it on
// each image's rows before that image's product). A step of
// more than kNodesPerEntry nodes runs them in pieces, since LLVM's register
// allocator is superlinear in one function's length (a model of 10,000
// layers spent most of its compile time there): `kiln_step` launches the
// first kNodesPerEntry nodes' kernels, then calls `kiln_step.1`,
// `kiln_step.2`, ... in turn, each launching the next ones.
//
// Kernels are spread over one or more modules, each in its own LLVMContext,
// so that they can be optimised and compiled on several threads; the entry
// point lives in module 0, with the GEMM micro-kernels' table (or its
// declaration, when the JIT links the micro-kernels compiled once).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_KERNELBUILDER_H
#define KILN_CODEGEN_KERNELBUILDER_H

#include "codegen/Codegen.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include <memory>

namespace kiln {

/// Nodes whose launches one function of the entry point holds.
inline constexpr unsigned kNodesPerEntry = 1024;

/// Elements per task chunk for simple per-element loops.
inline constexpr int64_t kElementGrain = 1 << 15;

/// What a kernel's range arguments cover.
enum class KernelForm {
  /// Iterations [begin, end) of its outermost parallel loop.
  Range,
  /// A GEMM epilogue: block [begin, end) x [colBegin, colEnd) of C, whose
  /// element (begin, colBegin) is at `product`, its rows productLd apart.
  Block,
};

/// The kernel being built: its body function and arguments.
struct Kernel {
  llvm::Function *fn = nullptr;
  llvm::SmallVector<llvm::Value *, 4> buf; ///< one pointer per buffer
  llvm::Value *rt = nullptr, *begin = nullptr, *end = nullptr;
  /// The columns of a Block kernel, and its block of the product.
  llvm::Value *colBegin = nullptr, *colEnd = nullptr;
  llvm::Value *product = nullptr, *productLd = nullptr;
};

class KernelBuilder {
public:
  /// Lowers into `parts` modules (at least 1).
  KernelBuilder(const Graph &g, const BufferPlan &plan,
                const LoweringOptions &opts, unsigned parts);
  ~KernelBuilder();

  const BufferPlan &plan() const { return plan_; }

  /// The slot holding node n's elements (-1 if it has none).
  int64_t slot(const Node *n) const { return plan_.slotOf[nodeIndex(*n)]; }
  int64_t slot(const Node &n) const { return slot(&n); }
  int64_t nodeIndex(const Node &n) const { return index.lookup(&n); }
  Storage storage(const Node *n) const { return plan_.storage[nodeIndex(*n)]; }

  //===-- Kernels ---------------------------------------------------------===//

  /// Starts the kernel of node n with `numBuffers` pointer arguments (the
  /// output first), named after n and `suffix`. Returns false if a kernel
  /// with the same signature (n's op, attributes, result and operand types
  /// and alias classes, and `suffix`) exists: then there is no body to
  /// emit, and launch() runs the existing one. `unique` gives the kernel a
  /// signature of its own (it names its node, as error reports do).
  /// `variant` is what else the body depends on (for the signature only).
  bool beginKernel(const Node &n, unsigned numBuffers,
                   llvm::StringRef suffix = "", bool unique = false,
                   KernelForm form = KernelForm::Range,
                   llvm::StringRef variant = "");
  /// The kernel begun last (valid between a beginKernel that returned true
  /// and the next launch).
  Kernel &kernel() { return current; }
  /// Ends the kernel begun last, if its body was emitted, and runs it from
  /// the entry point over [0, count) on `slots` (one per buffer, in the
  /// body's order): on the thread pool if count is at least two grains.
  void launch(llvm::ArrayRef<int64_t> slots, int64_t count, int64_t grain);
  /// Ends the Block kernel begun last, if its body was emitted, and calls
  /// the runtime GEMM from the entry point with it as the epilogue, on
  /// `slots`; mmArgs are callMatMul's.
  void launchGemm(llvm::ArrayRef<int64_t> slots,
                  llvm::ArrayRef<llvm::Value *> mmArgs);

  /// The slot of each result of fused node f (result 0 is f), or -1 for a
  /// result nothing reads.
  llvm::SmallVector<int64_t, 4> resultSlots(const Node &f) const;

  /// The IR builder of kernel bodies (in the current kernel's module).
  llvm::IRBuilder<> &b() { return *body; }

  /// The kernel of an elementwise node n: out[i] = fn(operands at i, i).
  /// Immediate operands arrive as constants and splat operands as their
  /// element 0. `prologue` runs once in the body before the loop.
  void
  elementwise(const Node &n,
              llvm::function_ref<llvm::Value *(llvm::ArrayRef<llvm::Value *>,
                                               llvm::Value *)>
                  fn,
              llvm::function_ref<void()> prologue = {});

  //===-- The entry point
  //---------------------------------------------------===//

  /// The IR builder of the entry point.
  llvm::IRBuilder<> &entryBuilder() { return *eb; }
  /// Called before each node's launches: after kNodesPerEntry nodes, the
  /// current piece of the entry point ends and kiln_step calls a new one.
  void beginNode();
  /// The pointer in slot s, loaded in the entry point.
  llvm::Value *entrySlot(int64_t s);
  /// entrySlot(s), or a null pointer if s is -1.
  llvm::Value *entrySlotOrNull(int64_t s);
  /// Calls the runtime GEMM with module 0's micro-kernels from the entry
  /// point: args are kiln_rt_matmul's after `rt` and before the kernels.
  /// A kernel deferred by launchPerProduct() since the last call is its
  /// `prepare` task.
  void callMatMul(llvm::ArrayRef<llvm::Value *> args,
                  llvm::Value *epilogue = nullptr);
  /// Closes the open range kernel without launching it: the next
  /// callMatMul() runs it on iterations [b*count, (b+1)*count) just before
  /// product b (kiln_rt_matmul's `prepare`), at least `grain` per thread.
  void launchPerProduct(llvm::ArrayRef<int64_t> slots, int64_t count,
                        int64_t grain);
  /// Ends the entry point with the plan's end-of-step copies, sets the
  /// vector width, verifies every module and hands them over.
  llvm::Expected<std::vector<ModulePart>> finish();

  //===-- IR helpers for kernel bodies ------------------------------------===//

  llvm::Type *f32() { return b().getFloatTy(); }
  llvm::Type *i32() { return b().getInt32Ty(); }
  llvm::Type *i64() { return b().getInt64Ty(); }
  llvm::Value *c64(int64_t v) { return b().getInt64(v); }
  llvm::Value *cf(double v);
  /// f32, or i32 for integer values.
  llvm::Type *elemType(const Node &n) {
    return n.type.dtype == DType::I32 ? i32() : f32();
  }
  llvm::Value *load(llvm::Type *t, llvm::Value *base, llvm::Value *idx);
  llvm::Value *loadF(llvm::Value *base, llvm::Value *idx) {
    return load(f32(), base, idx);
  }
  void store(llvm::Value *v, llvm::Value *base, llvm::Value *idx);
  llvm::Value *add(llvm::Value *x, llvm::Value *y) {
    return b().CreateAdd(x, y, "", true, true);
  }
  llvm::Value *mul(llvm::Value *x, llvm::Value *y) {
    return b().CreateMul(x, y, "", true, true);
  }
  llvm::Value *mul(llvm::Value *x, int64_t y) { return mul(x, c64(y)); }
  /// A float sum that LLVM may reassociate (so the loop vectorizes).
  llvm::Value *reassocAdd(llvm::Value *x, llvm::Value *y);
  /// for (i = lo; i < hi; ++i) body(i); returns the loop's back edge.
  llvm::BranchInst *loop(llvm::Value *lo, llvm::Value *hi,
                         llvm::function_ref<void(llvm::Value *)> body);
  void loop(int64_t n, llvm::function_ref<void(llvm::Value *)> body) {
    loop(c64(0), c64(n), body);
  }
  /// loop(n, body) for an innermost loop that is never unrolled, so that
  /// it stays a loop for the vectorizer (which may still widen and
  /// interleave it). A fully unrolled reduction of 196 elements made the
  /// vectorizer take the loop around it, whose strided elements it
  /// gathered.
  void rolledLoop(int64_t n, llvm::function_ref<void(llvm::Value *)> body);
  /// A stack variable (promoted to a register by SROA).
  llvm::AllocaInst *var(llvm::Type *t, llvm::Value *init);
  llvm::Value *get(llvm::AllocaInst *v) {
    return b().CreateLoad(v->getAllocatedType(), v);
  }
  void set(llvm::AllocaInst *v, llvm::Value *x) { b().CreateStore(x, v); }
  /// Indices of `flat` in a row-major `shape`.
  llvm::SmallVector<llvm::Value *, 4> unravel(llvm::Value *flat,
                                              llvm::ArrayRef<int64_t> shape);
  /// base + sum(idx(flat) * strides) for the strided map of a data-movement
  /// op (ir/IndexMap.h) over the result's row-major shape.
  llvm::Value *stridedOffset(llvm::Value *flat, llvm::ArrayRef<int64_t> shape,
                             llvm::ArrayRef<int64_t> strides, int64_t base);
  llvm::Value *unary(llvm::Intrinsic::ID id, llvm::Value *x) {
    return b().CreateUnaryIntrinsic(id, x);
  }
  /// A call of the float function `name` from the C library (or libmvec).
  llvm::Value *libm(llvm::StringRef name, llvm::Value *x);
  llvm::Value *isNaN(llvm::Value *x) { return b().CreateFCmpUNO(x, x); }
  /// PyTorch's NaN-propagating max: isnan(x) || x > acc ? x : acc, unless
  /// acc is already NaN.
  llvm::Value *nanMax(llvm::Value *acc, llvm::Value *x);
  /// The input position of window offset (kh, kw) at output (oh, ow), and
  /// whether it lies inside the H x W image (not in the padding): always,
  /// for an output position of a window op without padding.
  struct WindowPos {
    llvm::Value *ih, *iw, *inside;
  };
  WindowPos window(llvm::Value *oh, llvm::Value *ow, llvm::Value *kh,
                   llvm::Value *kw, int64_t stride, int64_t pad, int64_t H,
                   int64_t W);
  /// Reports the i32 `id` as out of range for node n (kiln_rt_fail) and
  /// returns from the body, unless 0 <= id < limit; continues after it.
  void checkIndex(llvm::Value *id, int64_t limit, const Node &n);
  /// dropout's key for node n in this step (kiln_rt_dropout_key).
  llvm::Value *dropoutKey(const Node &n);

private:
  struct Part;
  Part &part() { return *parts[currentPart]; }
  /// Emits the task of the open kernel, if any; returns it in module 0.
  llvm::Function *closeKernel();
  /// Stores the pointers of `slots` into `array` (of `size` entries, in the
  /// current entry piece), first replacing it by a longer one if needed.
  void storeSlots(llvm::AllocaInst *&array, unsigned &size,
                  llvm::ArrayRef<int64_t> slots, llvm::StringRef name);
  /// Stores the pointers of `slots` into the args array.
  void fillArgs(llvm::ArrayRef<int64_t> slots);
  /// Opens `entry`, a new piece of the entry point, for launches.
  void startEntryPiece();
  std::string signature(const Node &n, unsigned numBuffers,
                        llvm::StringRef suffix, bool unique) const;

  const Graph &g;
  const BufferPlan &plan_;
  const LoweringOptions &opts;
  llvm::DenseMap<const Node *, int64_t> index;
  std::vector<std::unique_ptr<Part>> parts;
  unsigned currentPart = 0, nextPart = 0;
  llvm::IRBuilder<> *body = nullptr;
  std::unique_ptr<llvm::IRBuilder<>> eb;
  llvm::Function *step = nullptr;  ///< kiln_step
  llvm::Function *entry = nullptr; ///< the entry point's current piece
  unsigned entryNodes = 0, entryPieces = 1;
  /// The args array the entry point passes to tasks.
  llvm::AllocaInst *args = nullptr;
  unsigned argsSize = 0;
  /// The task launchPerProduct() deferred to the next GEMM, with an args
  /// array of its own (the GEMM's epilogue needs `args` at the same time).
  struct PerProduct {
    llvm::Function *task = nullptr;
    llvm::AllocaInst *args = nullptr;
    unsigned argsSize = 0;
    int64_t count = 0, grain = 0;
  } perProduct;
  /// Signature -> task name, for sharing.
  llvm::StringMap<std::string> tasks;
  /// The task launch() will run, and whether its body is open.
  std::string currentTask;
  KernelForm currentForm = KernelForm::Range;
  bool open = false;
  /// Per fused node with several results: the slot of each.
  llvm::DenseMap<const Node *, llvm::SmallVector<int64_t, 4>> results;
  Kernel current;
};

/// The algebra of ir/ops/Scalar.h over LLVM values, for a kernel body.
struct IRScalar {
  KernelBuilder &kb;
  using V = llvm::Value *;
  using B = llvm::Value *;
  using U = llvm::Value *;
  using D = llvm::Value *;
  llvm::IRBuilder<> &b() { return kb.b(); }
  V c(double x) { return kb.cf(x); }
  V add(V a, V y) { return b().CreateFAdd(a, y); }
  V sub(V a, V y) { return b().CreateFSub(a, y); }
  V mul(V a, V y) { return b().CreateFMul(a, y); }
  V div(V a, V y) { return b().CreateFDiv(a, y); }
  V neg(V a) { return b().CreateFNeg(a); }
  V exp(V a) { return kb.unary(llvm::Intrinsic::exp, a); }
  V log(V a) { return kb.unary(llvm::Intrinsic::log, a); }
  V sqrt(V a) { return kb.unary(llvm::Intrinsic::sqrt, a); }
  V abs(V a) { return kb.unary(llvm::Intrinsic::fabs, a); }
  V tanh(V a) { return kb.libm("tanhf", a); }
  V erf(V a) { return kb.libm("erff", a); }
  V expm1(V a) { return kb.libm("expm1f", a); }
  V log1p(V a) { return kb.libm("log1pf", a); }
  V pow(V a, V y) {
    return b().CreateBinaryIntrinsic(llvm::Intrinsic::pow, a, y);
  }
  B gt(V a, V y) { return b().CreateFCmpOGT(a, y); }
  B ge(V a, V y) { return b().CreateFCmpOGE(a, y); }
  B lt(V a, V y) { return b().CreateFCmpOLT(a, y); }
  B eq(V a, V y) { return b().CreateFCmpOEQ(a, y); }
  B isNaN(V a) { return kb.isNaN(a); }
  B lor(B a, B y) { return b().CreateOr(a, y); }
  V select(B c, V a, V y) { return b().CreateSelect(c, a, y); }
  U u(uint64_t x) { return b().getInt64(x); }
  U addU(U a, U y) { return b().CreateAdd(a, y); }
  U mulU(U a, U y) { return b().CreateMul(a, y); }
  U xorU(U a, U y) { return b().CreateXor(a, y); }
  U shr(U a, unsigned k) { return b().CreateLShr(a, k); }
  D unit53(U z);
  B ltD(D a, double y) {
    return b().CreateFCmpOLT(a, llvm::ConstantFP::get(b().getDoubleTy(), y));
  }
};

} // namespace kiln

#endif
