#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into OUT/<target>/:

  frontend     every .kiln file of models/ and tests/
  ir           every .kir file of tests/
  safetensors  small files of each dtype, and a checkpoint's metadata
  data         IDX pairs (plain and gzipped) and CSV files, in kiln-fuzz's
               framing: 'C' + a CSV file, or 'I', a little-endian u32
               length, the image file and the label file

  seeds.py SOURCE_DIR OUT
"""
import glob
import gzip
import json
import os
import shutil
import struct
import sys

src, out = sys.argv[1], sys.argv[2]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy_files(target, pattern_dirs, ext):
    for d in pattern_dirs:
        for path in sorted(glob.glob(os.path.join(src, d, "**", "*" + ext),
                                     recursive=True)):
            rel = os.path.relpath(path, src).replace(os.sep, "_")
            with open(path, "rb") as f:
                put(target, rel, f.read())


copy_files("frontend", ["models", "tests"], ".kiln")
copy_files("ir", ["tests"], ".kir")


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, bytes), packed in name order."""
    header, data = {}, b""
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
put("safetensors", "f32.safetensors",
    safetensors({"w": ("F32", [2, 2], f32(1, 2, 3, 4)), "b": ("F32", [2], f32(0, -1))}))
put("safetensors", "types.safetensors", safetensors({
    "d": ("F64", [1], struct.pack("<d", 0.5)),
    "i": ("I32", [3], struct.pack("<3i", 1, -2, 3)),
    "l": ("I64", [], struct.pack("<q", 1 << 40)),
    "e": ("F32", [0, 4], b"")}))
checkpoint = {
    "format": "kiln-checkpoint-1", "model": "mlp", "model_hash": "0123",
    "batch": "64", "epoch": "1", "step": "6", "schedule_steps": "40",
    "settings": json.dumps(["seed=0", "batch=64"]),
    "data_position": json.dumps({"batch_in_epoch": 2, "epoch_loss_sum": 1.5,
                                 "epoch_examples": 128}),
    "early_stop": json.dumps({"bad_epochs": 0, "best_loss": 0.25}),
    "metrics": json.dumps([[0, 0.5, None, None]]),
}
put("safetensors", "checkpoint.safetensors",
    safetensors({"fc.w": ("F32", [2], f32(1, 2)),
                 "fc.w.adam.m": ("F32", [2], f32(0, 0))}, checkpoint))


def idx(dims, body):
    magic = struct.pack(">I", 0x800 | len(dims))
    return magic + struct.pack(">%dI" % len(dims), *dims) + body


def frame(images, labels):
    return b"I" + struct.pack("<I", len(images)) + images + labels


images = idx([3, 2, 2], bytes(range(12)))
labels = idx([3], bytes([0, 9, 255]))
put("data", "idx", frame(images, labels))
put("data", "idx.gz", frame(gzip.compress(images), gzip.compress(labels)))
put("data", "idx4", frame(idx([2, 1, 2, 2], bytes(8)), idx([2], b"\x01\x02")))
put("data", "csv", b"Cx,label,y\n0.5,1,-2\n+1e3,0,3.25\n")
put("data", "csv-crlf", b"C\xef\xbb\xbflabel, a\r\n7, nan\r\n\r\n")
