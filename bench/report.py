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
COMPILE_TARGET_S = {"mlp": 0.3}  # every other model: 1 s
# The steps each side runs untimed first (bench/Setup.h's kWarmupSteps).
WARMUP = 5


def load(directory):
    """{(side, benchmark name): {round: the run's entry}}, and the errors."""
    runs = collections.defaultdict(dict)
    failures = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        _, side, rnd = os.path.basename(path).rsplit(".", 3)[0:3]
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("error_occurred"):
                failures.append(f"{b['name']}: {b.get('error_message')}")
                continue
            runs[(side, b["name"])][int(rnd)] = b
        runs[("context", side)][int(rnd)] = data["context"]
    return runs, failures


UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def by_round(runs, side, name, key):
    """{round: the value of counter `key`}; "real_time" in milliseconds."""
    out = {}
    for r, b in runs.get((side, name), {}).items():
        if key in b:
            v = float(b[key])
            if key == "real_time":
                v *= UNIT[b.get("time_unit", "ns")]
            out[r] = v
    return out


def values(runs, side, name, key):
    d = by_round(runs, side, name, key)
    return [d[r] for r in sorted(d)]


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


def paired(a, b, scale=1.0):
    """Round by round ratios of two by_round() dicts, times `scale`."""
    return [scale * a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0]


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


def first(runs, key):
    """Some round's entry under `key`, or {}."""
    d = runs.get(key, {})
    return d[min(d)] if d else {}


def report(runs, args):
    lines = []
    problems = []
    add = lines.append
    peak = first(runs, ("kiln", "BM_FmaPeak"))
    cores = int(peak.get("cores", first(runs, ("context", "kiln")).get(
        "num_cpus", 1)))
    # Every "% of peak" divides by the peak group's medians, measured in
    # their own process, so both sides share one denominator.
    peak1 = values(runs, "kiln", "BM_FmaPeak", "one_core_GFLOPS")
    peakAll = values(runs, "kiln", "BM_FmaPeak", "all_cores_GFLOPS")
    peakOf = {1: statistics.median(peak1) if peak1 else 0,
              cores: statistics.median(peakAll) if peakAll else 0}
    if peak1 and peakAll and peakOf[cores] < peakOf[1]:
        problems.append(f"the machine was not quiet: all {cores} cores' "
                        f"peak ({peakOf[cores]:.0f} GFLOP/s) is below one "
                        f"core's ({peakOf[1]:.0f})")
    torchLabel = ""
    for (side, name), bs in runs.items():
        if side == "torch" and bs and first(runs, (side, name)).get("label"):
            torchLabel = first(runs, (side, name))["label"]
            break
    blas = re.search(r"\((OpenBLAS[^)]*)\)", torchLabel)

    add(f"Written by `bench/run.sh` on {datetime.date.today().isoformat()}, "
        f"Kiln {git_commit()}.")
    add("")
    add("| | |")
    add("| --- | --- |")
    add(f"| CPU | {cpu_model()}, {cores} cores as the OS counts them; LLVM "
        f"compiles for `{host_cpu()}` |")
    add(f"| FMA peak, fp32, one core / all {cores} at once | "
        f"{summary(peak1)} / {summary(peakAll)} GFLOP/s "
        f"({peak.get('label', '')}) |")
    add(f"| LibTorch | Debian libtorch-dev {package_version('libtorch-dev')}, "
        f"intra-op threads set per benchmark |")
    add(f"| BLAS behind LibTorch | {blas.group(1) if blas else 'not OpenBLAS'}"
        f" (libopenblas0-openmp {package_version('libopenblas0-openmp')}), "
        f"threads set per benchmark |")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    add(f"| Environment, both sides | `GLIBC_TUNABLES={args.tunables}`"
        + (f", `OPENBLAS_CORETYPE={coretype}`" if coretype else "") + " |")
    add(f"| Method | rounds: {args.rounds}; in each, every group's Kiln and "
        f"LibTorch processes back to back, order swapped each round; "
        f"`--min-time` {args.min_time} s |")
    add("")

    def pct_of_peak(gflops, threads):
        p = peakOf.get(threads, 0)
        return [100 * g / p for g in gflops] if p else []

    # Training steps.
    add("### Training steps")
    add("")
    add("Median milliseconds per step (range over the rounds). Both sides time "
        "the same step: the batch's gather from 10,000 synthetic 28x28 "
        "images in a shuffled order, forward, backward and the optimizer's "
        "update (Adam for the MLP and CNN, SGD with momentum and weight "
        "decay for the ResNet, as their train blocks say), from the same "
        "initial parameters, after "
        f"{WARMUP} untimed steps. *Speedup* is LibTorch's time over Kiln's "
        "(above 1: Kiln is faster), the median of the rounds' ratios. "
        "*GEMM % of peak* is the step's matrix-product work at Kiln's step "
        "time over the threads' FMA peak. *Loss* is the objective of the "
        f"{WARMUP} warm-up steps on each side, which must agree.")
    add("")
    add("| model, batch | threads | Kiln ms | LibTorch ms | speedup | target "
        "| Kiln images/s | LibTorch images/s | Kiln GEMM % of peak | "
        "loss, steps 1 and " f"{WARMUP} (Kiln / LibTorch) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, batch in (("mlp", 128), ("cnn", 64), ("resnet", 64)):
        cap = model.capitalize()
        for name in find(runs, "kiln", rf"^session{cap}/threads:\d+/"):
            t = threads_of(name)
            tname = re.sub(r"^session\w+", f"torch{cap}", name)
            k = by_round(runs, "kiln", name, "total_ms")
            p = by_round(runs, "torch", tname, "total_ms")
            ratio = paired(p, k)
            target = STEP_TARGET[model]
            met = "n/a"
            if ratio:
                met = "met" if statistics.median(ratio) >= target else "missed"
            for side, n in (("kiln", name), ("torch", tname)):
                steps = values(runs, side, n, "steps")
                if steps and min(steps) < 5:
                    problems.append(f"{n}: a round timed only "
                                    f"{min(steps):.0f} steps")
            shown = []
            for i in range(1, WARMUP + 1):
                a = values(runs, "kiln", name, f"loss{i}")
                b = values(runs, "torch", tname, f"loss{i}")
                if not a or not b:
                    problems.append(f"{model} at {t} threads: no loss of "
                                    f"step {i} on one side")
                    continue
                # Rounding differs (summation orders, fused multiply-adds)
                # and grows with the steps; a different update does not
                # stay within this.
                if abs(a[0] - b[0]) > 1e-3 * max(1.0, abs(b[0])):
                    problems.append(f"{model} at {t} threads: loss of step "
                                    f"{i} is {a[0]} in Kiln, {b[0]} in "
                                    "LibTorch")
                if i in (1, WARMUP):
                    shown.append(f"{a[0]:.5f} / {b[0]:.5f}")
            gflop = values(runs, "kiln", name, "gemm_GFLOP")
            kt = [k[r] for r in sorted(k)]
            peakPct = pct_of_peak([gflop[0] / (ms * 1e-3) for ms in kt],
                                  t) if gflop else []
            add(f"| {model}, {batch} | {t} | {summary(list(k.values()))} | "
                f"{summary(list(p.values()))} | {summary(ratio)} | "
                f"{target}x, {met} | "
                f"{summary(values(runs, 'kiln', name, 'images_per_s'))} | "
                f"{summary(values(runs, 'torch', tname, 'images_per_s'))} | "
                f"{summary(peakPct)} | {'; '.join(shown) or 'n/a'} |")
    add("")

    # GEMM.
    add("### GEMM")
    add("")
    add("GFLOP/s, median (range). Kiln: the runtime GEMM with the JIT's "
        "micro-kernels (`BM_KilnGemm`); Eigen: one thread only "
        "(`BM_EigenGemm`); `torch::mm`; and OpenBLAS's `cblas_sgemm` called "
        "directly on the same shapes, the check that LibTorch's GEMM runs at "
        "its BLAS's speed. *% of peak* is over the FMA peak above of as many "
        f"cores as threads; the target is {GEMM_TARGET_PCT}% for Kiln at "
        "1024^3 on one thread.")
    add("")
    add("| shape | threads | Kiln | Eigen | torch::mm | OpenBLAS direct | Kiln "
        "% of peak | torch::mm % of peak | Kiln over torch::mm | target |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^BM_KilnGemm/"):
        rest = name[len("BM_KilnGemm"):]
        t = threads_of(name)
        gf = lambda side, n: {r: v / 1e9 for r, v in
                              by_round(runs, side, n, "GFLOPS").items()}
        k = gf("kiln", name)
        e = gf("kiln", "BM_EigenGemm" + rest)
        p = gf("torch", "torchMm" + rest)
        o = gf("torch", "openblasSgemm" + rest)
        kp = pct_of_peak(list(k.values()), t)
        pp = pct_of_peak(list(p.values()), t)
        target = "n/a"
        if rest.startswith("/M:1024/N:1024/K:1024/tA:0/tB:0/threads:1/") and kp:
            target = (f"{GEMM_TARGET_PCT}%, "
                      f"{'met' if statistics.median(kp) >= GEMM_TARGET_PCT else 'missed'}")
        add(f"| {shape_of(name)} | {t} | {summary(list(k.values()))} | "
            f"{summary(list(e.values()))} | {summary(list(p.values()))} | "
            f"{summary(list(o.values()))} | {summary(kp)} | {summary(pp)} | "
            f"{summary(paired(k, p))} | {target} |")
    add("")

    # Bandwidth.
    add("### Memory bandwidth")
    add("")
    add("GB/s of the bytes each kernel must move (inputs read once, result "
        "written once) over arrays of 2^24 floats, median (range). "
        "`streamTriad` is STREAM's triad in C++ compiled for this CPU, split "
        "over threads; the Kiln kernels are JIT-compiled graphs, each fused "
        "into one kernel: the triad `a + 3 b`, and `relu(a b + c) / 2`, four "
        "ops over three inputs. The last column is the median of the rounds' "
        "ratios to the triad.")
    add("")
    add("| kernel | threads | GB/s | % of STREAM triad |")
    add("| --- | --- | --- | --- |")
    stream = {threads_of(n): by_round(runs, "kiln", n, "GBps")
              for n in find(runs, "kiln", r"^streamTriad/")}
    for name in find(runs, "kiln", r"^(streamTriad|kilnElementwise)/"):
        t = threads_of(name)
        g = by_round(runs, "kiln", name, "GBps")
        label = re.sub(r"/threads:.*", "", name)
        add(f"| `{label}` | {t} | {summary([v / 1e9 for v in g.values()])} | "
            f"{summary(paired(g, stream.get(t, {}), 100))} |")
    add("")

    # Compile time.
    add("### Compile time")
    add("")
    add("Milliseconds to compile each model's training step, median (range): "
        "the front end (parse, lower, the training passes; `frontend_ms`, "
        "once per process), the step's JIT compilation (LLVM's middle and "
        "back ends, on as many threads as the table says) and the GEMM "
        "micro-kernels, which a JIT compiles once for all its steps.")
    add("")
    add("| model | threads | front end | step | GEMM kernels | total | target |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^compileStep/(?!rnn)"):
        model = name.split("/")[1]
        t = threads_of(name)
        front = by_round(runs, "kiln", name, "frontend_ms")
        step = by_round(runs, "kiln", name, "real_time")
        gemm = by_round(runs, "kiln", name, "gemm_ms")
        total = [front[r] + step[r] + gemm[r] for r in sorted(step)
                 if r in front and r in gemm]
        target = COMPILE_TARGET_S.get(model, 1.0)
        met = "n/a"
        if total:
            met = "met" if statistics.median(total) < 1e3 * target else "missed"
        add(f"| {model} | {t} | {summary(list(front.values()))} | "
            f"{summary(list(step.values()))} | {summary(list(gemm.values()))} "
            f"| {summary(total)} | under {target} s, {met} |")
    add("")

    # Vector width.
    add("### Vector width")
    add("")
    add("The forward and backward step (no optimizer) with loops and GEMM "
        "at 256-bit and at 512-bit vectors (`trainingStep/*_jit/vwidth:W`, "
        "`--vector-width`), median ms (range). By default the GEMM gets the "
        "CPU's widest vectors and loops LLVM's choice for this CPU.")
    add("")
    add("| step | threads | 256 bits | 512 bits | 256-bit time over 512-bit |")
    add("| --- | --- | --- | --- | --- |")
    for name in find(runs, "kiln", r"^trainingStep/\w+_jit/vwidth:256/"):
        model = name.split("/")[1].replace("_jit", "")
        t = threads_of(name)
        other = name.replace("vwidth:256", "vwidth:512")
        a = by_round(runs, "kiln", name, "real_time")
        b = by_round(runs, "kiln", other, "real_time")
        add(f"| {model} | {t} | {summary(list(a.values()))} | "
            f"{summary(list(b.values()))} | {summary(paired(a, b))} |")
    add("")

    # Spinning.
    add("### The thread pool's spinning")
    add("")
    add("The training step at all cores with the pool's threads sleeping at "
        "once (`KILN_THREAD_SPIN_US=0`) and spinning for up to 200 "
        "microseconds first (the default, docs/codegen.md), in turn, median ms "
        "(range).")
    add("")
    add("| step | threads | no spinning | 200 us | no spinning over 200 us |")
    add("| --- | --- | --- | --- | --- |")
    for name in find(runs, "spin0", r"^session"):
        a = by_round(runs, "spin0", name, "total_ms")
        b = by_round(runs, "spin200", name, "total_ms")
        add(f"| {name.split('/')[0]} | {threads_of(name)} | "
            f"{summary(list(a.values()))} | {summary(list(b.values()))} | "
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
