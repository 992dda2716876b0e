#!/usr/bin/env python3
"""Writes the tables of docs/benchmarks.md from bench/run.sh's JSON files.

    bench/report.py DIR PAGE [--rounds R] [--min-time S] [--tunables T]

DIR holds GROUP.SIDE.ROUND.json, Google Benchmark's output of one process
(SIDE is kiln or torch). Every figure is the median over the rounds, with
the range; a ratio is the median of the rounds' ratios, each taken between
the two processes of one round, which ran back to back. The tables replace
what lies between the BEGIN and END markers of PAGE; the rest of the page
(the analysis, written by hand) is kept. Exits 1 if a benchmark failed or if
Kiln's and LibTorch's losses disagree: then the two did not do the same
work, and no ratio between them means anything.
"""
import argparse
import collections
import datetime
import glob
import json
import os
import re
import statistics
import subprocess
import sys

BEGIN = "<!-- BEGIN bench/run.sh: generated, do not edit -->"
END = "<!-- END bench/run.sh -->"

# The targets (docs/benchmarks.md says where they come from).
STEP_TARGET = {"mlp": 1.5, "cnn": 1.0, "resnet": 1.0}
GEMM_TARGET_PCT = 80
COMPILE_TARGET_S = {"mlp": 0.3, "cnn": 1.0, "resnet": 1.0}


def load(directory):
    """{(side, benchmark name): [the run's entry, one per round]}."""
    runs = collections.defaultdict(list)
    failures = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        _, side, _ = os.path.basename(path).rsplit(".", 3)[0:3]
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("error_occurred"):
                failures.append(f"{b['name']}: {b.get('error_message')}")
                continue
            runs[(side, b["name"])].append(b)
        runs[("context", side)].append(data["context"])
    return runs, failures


def values(runs, side, name, key):
    return [float(b[key]) for b in runs.get((side, name), []) if key in b]


def fmt(v, digits=3):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits - 1}f}" if v >= 1 else f"{v:.{digits}f}"


def summary(vs, digits=3):
    """The median, and the range when there is more than one value."""
    if not vs:
        return "n/a"
    m = statistics.median(vs)
    if len(vs) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(min(vs), digits)}–{fmt(max(vs), digits)})"


def paired(a, b):
    """Round by round ratios a[i] / b[i]."""
    return [x / y for x, y in zip(a, b) if y > 0]


def find(runs, side, pattern):
    """The benchmark names of `side` matching `pattern`, in order."""
    rx = re.compile(pattern)
    names = [n for (s, n) in runs if s == side and rx.search(n)]
    return sorted(set(names), key=names.index)


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    model = re.search(r"Model name:\s*(.*)", out)
    flags = re.search(r"Flags:\s*(.*)", out)
    isa = []
    if flags:
        f = flags.group(1).split()
        isa = [x for x in ("avx2", "fma", "avx512f", "avx512_bf16") if x in f]
    return f"{model.group(1).strip() if model else 'unknown'} ({', '.join(isa)})"


def package_version(name):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                         capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


def git_commit():
    out = subprocess.run(["git", "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def host_cpu():
    """The CPU LLVM compiles for, as `kiln --version` names it."""
    try:
        out = subprocess.run(["build/bin/kiln", "--version"],
                             capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    m = re.search(r"host CPU (\S+)", out)
    return m.group(1) if m else "unknown"


def threads_of(name):
    m = re.search(r"threads:(\d+)", name)
    return int(m.group(1)) if m else 1


def shape_of(name):
    m = re.search(r"M:(\d+)/N:(\d+)/K:(\d+)/tA:(\d)/tB:(\d)", name)
    mm, n, k, ta, tb = m.groups()
    s = f"{mm}x{n}x{k}"
    if ta == "1":
        s += ", A^T"
    if tb == "1":
        s += ", B^T"
    return s


def report(runs, args):
    lines = []
    problems = []
    add = lines.append
    ctx = (runs.get(("context", "kiln")) or [{}])[0]
    peak = runs.get(("kiln", "BM_FmaPeak"), [])
    peak1 = [float(b["GFLOPS"]) / 1e9 for b in peak]
    peakAll = [float(b["all_cores_GFLOPS"]) for b in peak]
    cores = int(peak[0]["cores"]) if peak else ctx.get("num_cpus", 1)
    isa = peak[0].get("label", "") if peak else ""
    torchLabel = ""
    for (side, name), bs in runs.items():
        if side == "torch" and bs and bs[0].get("label"):
            torchLabel = bs[0]["label"]
            break
    blas = re.search(r"\((OpenBLAS[^)]*)\)", torchLabel)

    add(f"Written by `bench/run.sh` on {datetime.date.today().isoformat()}, "
        f"Kiln {git_commit()}.")
    add("")
    add("| | |")
    add("| --- | --- |")
    add(f"| CPU | {cpu_model()}, {cores} cores (as the OS counts them) |")
    add(f"| FMA peak, fp32, one core / all {cores} at once | "
        f"{summary(peak1)} / {summary(peakAll)} GFLOP/s ({isa}) |")
    add(f"| LibTorch | Debian libtorch-dev {package_version('libtorch-dev')}, "
        f"intra-op threads set per benchmark |")
    add(f"| BLAS behind LibTorch | {blas.group(1) if blas else 'not OpenBLAS'}, "
        f"threads set per benchmark (libopenblas0-openmp "
        f"{package_version('libopenblas0-openmp')}) |")
    add(f"| Environment, both sides | `GLIBC_TUNABLES={args.tunables}` |")
    add(f"| Method | rounds: {args.rounds}; in each, every group's Kiln and "
        f"LibTorch processes back to back, order swapped each round; "
        f"`--benchmark_min_time` {args.min_time} s and more for the slower "
        f"steps |")
    add("")

    # Training steps.
    add("### Training steps")
    add("")
    add("Median milliseconds per step (range over the rounds). Both sides time "
        "the same step: the batch's gather from 10,000 synthetic 28x28 "
        "images in a shuffled order, forward, backward and the optimizer's "
        "update (Adam for the MLP and CNN, SGD with momentum and weight "
        "decay for the ResNet, as their train blocks say), from the same "
        "initial parameters. *Speedup* is LibTorch's time over Kiln's (above "
        "1: Kiln is faster), the median of the rounds' ratios. *Loss* is "
        "the objective of the first and second steps, which must agree: "
        "the second shows the update was the same.")
    add("")
    add("| model, batch | threads | Kiln ms | LibTorch ms | speedup | target "
        "| Kiln images/s | LibTorch images/s | Kiln GEMM % of peak | "
        "loss, steps 1 and 2 (Kiln / LibTorch) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, batch in (("mlp", 128), ("cnn", 64), ("resnet", 64)):
        cap = model.capitalize()
        for name in find(runs, "kiln", rf"^session{cap}/threads:\d+$"):
            t = threads_of(name)
            tname = f"torch{cap}/threads:{t}"
            k = values(runs, "kiln", name, "total_ms")
            p = values(runs, "torch", tname, "total_ms")
            ratio = paired(p, k)
            target = STEP_TARGET[model]
            met = ""
            if ratio:
                met = "met" if statistics.median(ratio) >= target else "missed"
            kl = [values(runs, "kiln", name, f"loss{i}") for i in (1, 2)]
            pl = [values(runs, "torch", tname, f"loss{i}") for i in (1, 2)]
            losses = []
            for i in range(2):
                if kl[i] and pl[i]:
                    a, b = kl[i][0], pl[i][0]
                    if abs(a - b) > 1e-3 * max(1.0, abs(b)):
                        problems.append(f"{model} at {t} threads: loss of "
                                        f"step {i + 1} is {a} in Kiln, {b} in "
                                        "LibTorch")
                    losses.append(f"{a:.5f} / {b:.5f}")
            add(f"| {model}, {batch} | {t} | {summary(k)} | {summary(p)} | "
                f"{summary(ratio)} | {target}x, {met or 'n/a'} | "
                f"{summary(values(runs, 'kiln', name, 'images_per_s'))} | "
                f"{summary(values(runs, 'torch', tname, 'images_per_s'))} | "
                f"{summary(values(runs, 'kiln', name, 'peak_pct'))} | "
                f"{'; '.join(losses) or 'n/a'} |")
    add("")

    # GEMM.
    add("### GEMM")
    add("")
    add("GFLOP/s, median (range). Kiln: the runtime GEMM with the JIT's "
        "micro-kernels (`BM_KilnGemm`); Eigen: one thread only "
        "(`BM_EigenGemm`); `torch::mm`; and OpenBLAS's `cblas_sgemm` called "
        "directly on the same shapes, the check that LibTorch's GEMM runs at "
        "its BLAS's speed. *% of peak* is over the measured FMA peak of as "
        f"many cores as threads; the target is {GEMM_TARGET_PCT}% for Kiln at "
        "1024^3.")
    add("")
    add("| shape | threads | Kiln | Eigen | torch::mm | OpenBLAS direct | Kiln "
        "% of peak | torch::mm % of peak | Kiln over torch::mm |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^BM_KilnGemm/"):
        rest = name[len("BM_KilnGemm"):]
        t = threads_of(name)
        k = [v / 1e9 for v in values(runs, "kiln", name, "GFLOPS")]
        e = [v / 1e9 for v in values(runs, "kiln", "BM_EigenGemm" + rest, "GFLOPS")]
        p = [v / 1e9 for v in values(runs, "torch", "torchMm" + rest, "GFLOPS")]
        o = [v / 1e9 for v in values(runs, "torch", "openblasSgemm" + rest, "GFLOPS")]
        kp = values(runs, "kiln", name, "peak_pct")
        pp = values(runs, "torch", "torchMm" + rest, "peak_pct")
        add(f"| {shape_of(name)} | {t} | {summary(k)} | {summary(e)} | "
            f"{summary(p)} | {summary(o)} | {summary(kp)} | {summary(pp)} | "
            f"{summary(paired(k, p))} |")
    add("")

    # Bandwidth.
    add("### Memory bandwidth")
    add("")
    add("GB/s of the bytes each kernel must move (inputs read once, result "
        "written once) over arrays of 2^24 floats, median (range). "
        "`streamTriad` is STREAM's triad in C++ compiled for this CPU, split "
        "over threads; the Kiln kernels are JIT-compiled graphs, each fused "
        "into one kernel: the triad `a + 3 b`, and `relu(a b + c) / 2`, four "
        "ops over three inputs.")
    add("")
    add("| kernel | threads | GB/s | % of STREAM triad |")
    add("| --- | --- | --- | --- |")
    stream = {threads_of(n): [v / 1e9 for v in values(runs, "kiln", n, "GBps")]
              for n in find(runs, "kiln", r"^streamTriad/")}
    for name in find(runs, "kiln", r"^(streamTriad|kilnElementwise)/"):
        t = threads_of(name)
        g = [v / 1e9 for v in values(runs, "kiln", name, "GBps")]
        label = re.sub(r"/threads:.*", "", name)
        pct = [100 * x for x in paired(g, stream.get(t, []))]
        add(f"| `{label}` | {t} | {summary(g)} | {summary(pct)} |")
    add("")

    # Compile time.
    add("### Compile time")
    add("")
    add("Milliseconds to compile each model's training step, median (range): "
        "the front end (parse, lower, the training passes: `frontend_ms`, "
        "once per process), the step's JIT compilation (LLVM's middle and "
        "back ends, on as many threads as the table says) and the GEMM "
        "micro-kernels, which a JIT compiles once for all its steps.")
    add("")
    add("| model | threads | front end | step | GEMM kernels | total | target |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^compileStep/(mlp|cnn|resnet)/"):
        model = name.split("/")[1]
        t = threads_of(name)
        front = values(runs, "kiln", name, "frontend_ms")
        step = values(runs, "kiln", name, "real_time")  # manual time, ms
        gemm = values(runs, "kiln", name, "gemm_ms")
        total = [a + b + c for a, b, c in zip(front, step, gemm)]
        target = COMPILE_TARGET_S[model]
        met = ""
        if total:
            met = "met" if statistics.median(total) < 1e3 * target else "missed"
        add(f"| {model} | {t} | {summary(front)} | {summary(step)} | "
            f"{summary(gemm)} | {summary(total)} | under {target} s, {met} |")
    add("")

    # Vector width.
    add("### Vector width")
    add("")
    add("The forward and backward step (no optimizer) with loops and GEMM "
        "at 256-bit and at 512-bit vectors (`trainingStep/*_jit/vwidth:W`, "
        "`--vector-width`), median ms (range). By default the GEMM gets the "
        "CPU's widest vectors and loops LLVM's choice for this CPU "
        f"({host_cpu()}).")
    add("")
    add("| step | threads | 256 bits | 512 bits | 256-bit time over 512-bit |")
    add("| --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^trainingStep/\w+_jit/vwidth:256/"):
        model = name.split("/")[1].replace("_jit", "")
        t = threads_of(name)
        other = name.replace("vwidth:256", "vwidth:512")
        a = values(runs, "kiln", name, "real_time")
        b = values(runs, "kiln", other, "real_time")
        add(f"| {model} | {t} | {summary(a)} | {summary(b)} | "
            f"{summary(paired(a, b))} |")
    add("")
    return lines, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("page")
    ap.add_argument("--rounds", default="?")
    ap.add_argument("--min-time", default="?")
    ap.add_argument("--tunables", default=os.environ.get("GLIBC_TUNABLES", ""))
    args = ap.parse_args()
    runs, failures = load(args.dir)
    if not runs:
        sys.exit(f"report.py: no benchmark output in {args.dir}")
    lines, problems = report(runs, args)
    problems = failures + problems
    if problems:
        lines += ["**This run is not valid:**", ""]
        lines += [f"- {p}" for p in problems] + [""]
    generated = "\n".join([BEGIN, ""] + lines + [END])
    if os.path.exists(args.page):
        with open(args.page) as f:
            text = f.read()
        if BEGIN in text and END in text:
            text = (text[:text.index(BEGIN)] + generated +
                    text[text.index(END) + len(END):])
        else:
            text = text.rstrip("\n") + "\n\n" + generated + "\n"
    else:
        text = ("# Benchmarks\n\nKiln against LibTorch on one machine, in one "
                "run of `bench/run.sh`.\n\n" + generated + "\n")
    with open(args.page, "w") as f:
        f.write(text)
    for p in problems:
        print(f"report.py: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
