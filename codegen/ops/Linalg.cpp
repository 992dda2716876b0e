//===- Linalg.cpp - Lowering matrix products ------------------------------===//
//
// matmul is a call of the runtime GEMM from the entry point, with the
// module's micro-kernels. An operand whose alias class is Transposed is
// passed untransposed with the GEMM's transpose flag.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"

using namespace kiln;
using namespace llvm;

static void lowerMatMul(KernelBuilder &kb, const Node &n) {
  const Node *a = n.operands[0], *w = n.operands[1];
  bool ta = kb.storage(a) == Storage::Transposed;
  bool tb = kb.storage(w) == Storage::Transposed;
  if (ta)
    a = a->operands[0];
  if (tb)
    w = w->operands[0];
  const Shape &out = n.type.shape;
  int64_t M = out[out.size() - 2], N = out.back();
  int64_t K = n.operands[0]->type.shape.back();
  int64_t batch = *numElements(out) / (M * N);
  bool sharedB = w->type.rank() == 2;
  // A shared right matrix and an untransposed left one: one tall GEMM.
  if (sharedB && !ta) {
    M *= batch;
    batch = 1;
  }
  IRBuilder<> &eb = kb.entryBuilder();
  kb.callMatMul({kb.entrySlot(kb.slot(a)), kb.entrySlot(kb.slot(w)),
                 kb.entrySlot(kb.slot(n)), eb.getInt64(batch), eb.getInt64(M),
                 eb.getInt64(N), eb.getInt64(K), eb.getInt32(ta | tb << 1),
                 eb.getInt64(M * K), eb.getInt64(sharedB ? 0 : K * N),
                 eb.getInt64(M * N)});
}

void kiln::registerLinalgLowerings(LoweringTable &t) {
  t[size_t(Op::MatMul)].lower = lowerMatMul;
}
