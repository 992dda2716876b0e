//===- Session.cpp - A training session's buffers and steps ---------------===//
//
// Buffers are allocated once, when a step is attached; running a step only
// passes the bound pointers to it.
//
//===----------------------------------------------------------------------===//
#include "runtime/Session.h"
#include "llvm/ADT/StringExtras.h"
#include <cstring>

using namespace kiln;

AlignedBuffer::AlignedBuffer(const TensorType &type) {
  size_ = size_t(*numElements(type.shape)) * dtypeSize(type.dtype);
  size_t rounded = std::max<size_t>(64, (size_ + 63) / 64 * 64);
  bytes.reset(static_cast<char *>(std::aligned_alloc(64, rounded)));
  if (!bytes)
    llvm::report_fatal_error("out of memory for a session buffer");
  std::memset(bytes.get(), 0, rounded);
}

Session::Entry *Session::find(llvm::StringRef name) {
  return byName.lookup(name);
}

llvm::Expected<size_t> Session::attach(std::unique_ptr<Step> step) {
  Attached a;
  llvm::ArrayRef<Step::Leaf> leaves = step->leaves();
  a.inputs.resize(leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Step::Leaf &l = leaves[i];
    if (l.kind == Op::Input) {
      a.inputs[i] = AlignedBuffer(l.type);
      step->bind(i, a.inputs[i].data());
      continue;
    }
    Entry *e = find(l.name);
    if (!e) {
      entries.push_back(std::make_unique<Entry>(
          Entry{l.name, l.kind, l.type, AlignedBuffer(l.type)}));
      e = entries.back().get();
      byName[l.name] = e;
    } else if (e->type != l.type || e->kind != l.kind) {
      return makeError("'" + l.name + "' is " + opInfo(l.kind).mnemonic + " " +
                       l.type.str() + " in one step and " +
                       opInfo(e->kind).mnemonic + " " + e->type.str() +
                       " in another");
    }
    step->bind(i, e->buffer.data());
  }
  a.step = std::move(step);
  steps.push_back(std::move(a));
  return steps.size() - 1;
}

llvm::Expected<size_t> Session::inputIndex(size_t step,
                                           llvm::StringRef name) const {
  llvm::ArrayRef<Step::Leaf> leaves = steps[step].step->leaves();
  std::vector<std::string> inputs;
  for (size_t i = 0; i < leaves.size(); ++i)
    if (leaves[i].kind == Op::Input) {
      if (leaves[i].name == name)
        return i;
      inputs.push_back(leaves[i].name);
    }
  return makeError("the step has no input '" + name +
                   "' (inputs: " + llvm::join(inputs, ", ") + ")");
}

TensorMap Session::snapshot() const {
  TensorMap out;
  for (const auto &e : entries) {
    Tensor t(e->type.dtype, e->type.shape);
    std::memcpy(t.raw(), e->buffer.data(), t.nbytes());
    out[e->name] = std::move(t);
  }
  return out;
}

llvm::Error Session::load(const TensorMap &tensors, bool partial) {
  std::vector<std::string> problems;
  for (auto &[name, t] : tensors) {
    Entry *e = find(name);
    if (!e) {
      if (!partial)
        problems.push_back("'" + name + "' " + t.type().str() +
                           " is not in the model");
      continue;
    }
    if (t.shape() != llvm::ArrayRef<int64_t>(e->type.shape))
      problems.push_back("'" + name + "' is " + t.type().str() +
                         ", the model's is " + e->type.str());
  }
  if (!partial)
    for (const auto &e : entries)
      if (!tensors.count(e->name))
        problems.push_back("'" + e->name + "' " + e->type.str() +
                           " is missing");
  if (!problems.empty())
    return makeError(llvm::join(problems, "; "));
  for (auto &[name, t] : tensors)
    if (Entry *e = find(name))
      if (auto i = t.firstOutOfRange(e->type.dtype))
        problems.push_back("'" + name + "' holds " + t.valueStr(*i) +
                           " at index " + std::to_string(*i) + ", which " +
                           dtypeName(e->type.dtype).str() + " cannot hold");
  if (!problems.empty())
    return makeError(llvm::join(problems, "; "));
  for (auto &[name, t] : tensors)
    if (Entry *e = find(name)) {
      Tensor c = t.cast(e->type.dtype);
      std::memcpy(e->buffer.data(), c.raw(), c.nbytes());
    }
  return llvm::Error::success();
}
