#!/usr/bin/env python3
"""Writes a small Fashion-MNIST: the first TRAIN training and TEST test
examples of Debian's files, as gzipped IDX files in DIR
(train-images.gz, train-labels.gz, test-images.gz, test-labels.gz).

  make_idx.py DIR TRAIN TEST
"""
import gzip
import os
import struct
import sys

SRC = "/usr/share/datasets/fashion-mnist"


def copy(src, dst, count, image):
    with gzip.open(os.path.join(SRC, src), "rb") as f:
        data = f.read()
    header = 16 if image else 8
    size = 28 * 28 if image else 1
    dims = struct.pack(">III", count, 28, 28) if image else struct.pack(">I", count)
    magic = struct.pack(">I", 0x803 if image else 0x801)
    body = data[header:header + count * size]
    with gzip.open(dst, "wb") as f:
        f.write(magic + dims + body)


out, train, test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
copy("train-images-idx3-ubyte.gz", os.path.join(out, "train-images.gz"), train, True)
copy("train-labels-idx1-ubyte.gz", os.path.join(out, "train-labels.gz"), train, False)
copy("t10k-images-idx3-ubyte.gz", os.path.join(out, "test-images.gz"), test, True)
copy("t10k-labels-idx1-ubyte.gz", os.path.join(out, "test-labels.gz"), test, False)
