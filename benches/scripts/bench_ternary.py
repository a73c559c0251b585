#!/usr/bin/env python3
"""Ternary matvec side by side: qload's I2_S (row-major, and with four rows interleaved
as `Loader::repack` keeps it), TQ2_0 and TQ1_0 (`qload bench kernels`, the activation
quantized to int8/Q8_K inside each call) against ggml's own TQ2_0 and
TQ1_0 kernels (llama-cpp-python's CPU backend: a `ggml_mul_mat` graph of the weight
and one f32 vector, which quantizes the vector to Q8_K inside the call). bitnet.cpp
cannot be built here; ggml's TQ2_0 is the upstream 2-bit ternary kernel, the closest
real peer of I2_S (2 bits per weight as well, 256-element blocks with an f16 scale
against I2_S's one scale per tensor).

Rounds alternate qload and ggml on each shape; each round's figure is the median of
`--runs` calls, and the table shows the median of the rounds (the machine is shared
and noisy). The process is pinned to the first THREADS CPUs (qload inherits it).

Usage: bench_ternary.py QLOAD_BIN [--shapes 2560x2560,2560x6912,...] [--threads N]
                         [--rounds N] [--runs N]
"""
import json
import os
import statistics
import subprocess
import sys

import numpy as np

from ggml_cpu import GgmlCpu

# ggml type ids and the byte offset of each block's f16 scale (set to a sane value in
# random blocks: the work does not depend on the values).
GGML = {"TQ1_0": (34, 52), "TQ2_0": (35, 64)}
QLOAD = ["I2_S", "I2_S x4", "TQ2_0", "TQ1_0"]


def opt(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def main():
    qload = sys.argv[1]
    shapes = [tuple(int(v) for v in s.split("x")) for s in
              opt("--shapes", "2560x2560,2560x6912,6912x2560,65536x4096").split(",")]
    threads, rounds, runs = int(opt("--threads", 1)), int(opt("--rounds", 3)), int(opt("--runs", 7))
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, set(cpus))
    g = GgmlCpu()
    rng = np.random.default_rng(11)
    print(f"threads {threads} (CPUs {cpus}); {rounds} rounds of {runs} calls; ggml: llama-cpp-python {g.version} "
          f"(AVX2 {g.avx2})\n")
    print("| shape | " + " | ".join(f"qload {t}" for t in QLOAD) + " | ggml TQ2_0 | ggml TQ1_0 | "
          "I2_S ÷ ggml TQ2_0 | I2_S x4 ÷ ggml TQ2_0 | TQ2_0 ÷ ggml TQ2_0 | TQ1_0 ÷ ggml TQ1_0 |")
    print("|---|" + "---|" * (len(QLOAD) + 6))
    for rows, cols in shapes:
        act = (rng.standard_normal(cols) * 0.5).astype(np.float32)
        weights = {}
        for name, (qid, scale_at) in GGML.items():
            nbytes = g.row_size(qid, cols) * rows
            w = np.frombuffer(rng.bytes(nbytes), dtype=np.uint8).reshape(rows * cols // 256, -1).copy()
            w[:, scale_at:scale_at + 2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
            weights[name] = w
        got = {k: [] for k in [f"qload {t}" for t in QLOAD] + [f"ggml {t}" for t in GGML]}
        for _ in range(rounds):
            out = subprocess.run([qload, "bench", "kernels", "--types", "i2_s,tq2_0,tq1_0",
                                  "--ops", "matvec,matvec-repacked", "--rows", str(rows), "--cols", str(cols),
                                  "--threads", str(threads), "--runs", str(runs), "--json"],
                                 capture_output=True, text=True, check=True)
            for r in json.loads(out.stdout)["results"]:
                name = r["dtype"] + (" x4" if r["op"] == "matvec-repacked" else "")
                got[f"qload {name}"].append(r["melem_per_s"] / 1e3)
            for name, (qid, _) in GGML.items():
                t = g.matvec_time(qid, rows, cols, weights[name], act, runs, threads)
                got[f"ggml {name}"].append(rows * cols / t / 1e9)
        med = {k: statistics.median(v) for k, v in got.items()}
        cells = [f"{med[f'qload {t}']:.1f}" for t in QLOAD] + [f"{med['ggml TQ2_0']:.1f}", f"{med['ggml TQ1_0']:.1f}"]
        ratios = [med["qload I2_S"] / med["ggml TQ2_0"], med["qload I2_S x4"] / med["ggml TQ2_0"],
                  med["qload TQ2_0"] / med["ggml TQ2_0"],
                  med["qload TQ1_0"] / med["ggml TQ1_0"]]
        print(f"| {rows} × {cols} | " + " | ".join(cells) + " | " + " | ".join(f"{r:.2f}×" for r in ratios) + " |")
        sys.stdout.flush()
    print("\nGelem/s, medians of the rounds (each the median of its calls).")


if __name__ == "__main__":
    main()
