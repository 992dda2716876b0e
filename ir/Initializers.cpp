//===- Initializers.cpp - The table of parameter initialisers -------------===//
//
// One table of initialisers with their arguments; lowering, validation and
// runtime/Init's sampling read it.
//
//===----------------------------------------------------------------------===//
#include "ir/Initializers.h"
#include <cmath>

using namespace kiln;

static const InitInfo kInits[] = {
    {"zeros", {}},
    {"ones", {}},
    {"normal", {{"mean", 0.0}, {"std", 0.01}}},
    {"uniform", {{"low", 0.0}, {"high", 1.0}}},
    {"xavier_uniform", {{"gain", 1.0}}},
    {"xavier_normal", {{"gain", 1.0}}},
    {"he_normal", {}},
    {"he_uniform", {}},
};

const InitInfo *kiln::findInit(llvm::StringRef name) {
  for (const InitInfo &i : kInits)
    if (i.name == name)
      return &i;
  return nullptr;
}

std::vector<llvm::StringRef> kiln::initNames() {
  std::vector<llvm::StringRef> v;
  for (const InitInfo &i : kInits)
    v.push_back(i.name);
  return v;
}

llvm::Error kiln::validateInit(const Node &leaf) {
  auto name = leaf.getString("init");
  if (!name)
    return name.takeError();
  const InitInfo *info = findInit(*name);
  if (!info)
    return makeError("unknown initialiser '" + *name + "'");
  for (const InitArg &a : info->args) {
    auto v = leaf.getFloat(a.name);
    if (!v)
      return v.takeError();
    if (!std::isfinite(*v))
      return makeError("initialiser argument '" + a.name + "' is not finite");
  }
  if (*name == "uniform" && leaf.floatAttr("low") > leaf.floatAttr("high"))
    return makeError("uniform(low, high) needs low <= high");
  if (*name == "normal" && leaf.floatAttr("std") < 0)
    return makeError("normal(std) needs std >= 0");
  return llvm::Error::success();
}
