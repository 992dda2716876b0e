#!/usr/bin/env python3
"""Fails if a source file includes a header from a folder above its own.

The folders are the pipeline (STYLE.md):

    support <- ir <- frontend, passes, runtime <- codegen <- tools

Each folder may include its own headers and those of the folders it builds
on; frontend, passes and runtime are siblings and include none of each
other's. The shared libraries' --no-undefined link catches calls that go up
the pipeline; this catches includes, which can compile silently (a header's
inline code or types need no symbol). tests/ and bench/ may include anything.

    python3 tests/layering.py [SOURCE_ROOT]

prints FILE:LINE for every forbidden include and exits 1 if there is one.
"""
import os
import re
import sys

# What each folder may include besides itself.
ALLOWED = {
    "support": set(),
    "ir": {"support"},
    "frontend": {"ir", "support"},
    "passes": {"ir", "support"},
    "runtime": {"ir", "support"},
    "codegen": {"runtime", "passes", "ir", "support"},
    "tools": {"codegen", "frontend", "passes", "runtime", "ir", "support"},
}
# Project folders no layer may include.
OTHERS = {"tests", "bench", "models", "docs"}
EXTENSIONS = (".h", ".cpp", ".def", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]')


def folder_of(root, path, inc):
    """The project folder an include names, or None (LLVM, system)."""
    first = inc.split("/", 1)[0]
    if first in ALLOWED or first in OTHERS:
        return first
    # A path relative to the including file ("../runtime/Tensor.h").
    target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
    if os.path.isfile(target):
        rel = os.path.relpath(target, root)
        if not rel.startswith(".."):
            return rel.split(os.sep, 1)[0]
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    bad = 0
    checked = 0
    for layer in sorted(ALLOWED):
        for dirpath, _, files in os.walk(os.path.join(root, layer)):
            for name in sorted(files):
                if not name.endswith(EXTENSIONS):
                    continue
                path = os.path.join(dirpath, name)
                checked += 1
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        dep = folder_of(root, path, inc)
                        if dep is None or dep == layer or dep in ALLOWED[layer]:
                            continue
                        may = ", ".join(sorted(ALLOWED[layer])) or "nothing"
                        print(f"{os.path.relpath(path, root)}:{lineno}: "
                              f"{layer}/ may not include {inc} "
                              f"({layer}/ may include: {may})")
                        bad += 1
    if checked == 0:
        print(f"layering.py: no sources under {root}")
        return 1
    if bad:
        print(f"layering.py: {bad} forbidden include(s) in {checked} files")
        return 1
    print(f"layering.py: {checked} files, every include follows the pipeline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
