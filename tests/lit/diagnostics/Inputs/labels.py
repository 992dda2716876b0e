#!/usr/bin/env python3
"""Writes a copy of an --inputs file whose i32 tensor 'y' is replaced by
the given labels, stored as DTYPE (I32 or I64).

  labels.py IN OUT DTYPE LABEL...
"""
import json
import struct
import sys

src, dst, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
labels = [int(v) for v in sys.argv[4:]]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
tensors = {}
for name, entry in header.items():
    if name == "__metadata__":
        continue
    b, e = entry["data_offsets"]
    tensors[name] = (entry["dtype"], entry["shape"], data[b:e])
code = {"I32": "i", "I64": "q"}[dtype]
tensors["y"] = (dtype, [len(labels)], struct.pack("<%d%s" % (len(labels), code), *labels))
out, body = {}, b""
for name in sorted(tensors):
    dt, shape, blob = tensors[name]
    out[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(body), len(body) + len(blob)]}
    body += blob
text = json.dumps(out).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + body)
