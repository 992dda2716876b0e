#!/usr/bin/env python3
"""Compares two safetensors files of F32 tensors: the same names and shapes,
and for each tensor max|a - b| / max(max|b|, 1e-3) <= TOL (norm-wise, as
GEMMs that sum in different orders are compared). Prints one line per tensor
and exits 1 on any mismatch.

  compare_safetensors.py A B [TOL]
"""
import json
import struct
import sys
from array import array


def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, not F32")
        begin, end = t["data_offsets"]
        values = array("f")
        values.frombytes(body[begin:end])
        out[name] = (t["shape"], values)
    return out


a, b = read(sys.argv[1]), read(sys.argv[2])
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
ok = sorted(a) == sorted(b)
if not ok:
    print(f"tensor names differ: {sorted(a)} vs {sorted(b)}")
for name in sorted(set(a) & set(b)):
    (sa, va), (sb, vb) = a[name], b[name]
    if sa != sb:
        print(f"{name}: shapes differ: {sa} vs {sb}")
        ok = False
        continue
    scale = max([1e-3] + [abs(y) for y in vb])
    diff = max([0.0] + [abs(x - y) for x, y in zip(va, vb)])
    err = diff / scale
    verdict = "ok" if err <= tol else f"MISMATCH (> {tol:g})"
    ok = ok and err <= tol
    print(f"{name} {sa} relative difference {err:.1e} {verdict}")
sys.exit(0 if ok else 1)
