#!/usr/bin/env python3
"""Codec benchmark, one run, one machine, one thread: qload vs candle-core (from the
`kernels` binary, same process, same data) vs ggml's reference C code (libgguf:
ggml_quantize_chunk and dequantize_row_*), with the machine's single-thread read
and write bandwidth. Prints a Markdown table of throughputs and ratios.

Usage: bench_kernels.py KERNELS_BIN [--rows R] [--cols C] [--mv-rows R] [--runs N]
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import libgguf

IDS = {"Q4_0": 2, "Q5_0": 6, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}


def arg(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def median_time(runs, f):
    f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ggml_rows(rows, cols, runs):
    """ggml through libgguf, into preallocated buffers (no allocation timed). libgguf
    spreads rows over all cores: pin this process to one CPU for one-thread figures."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    out = []
    for name, qid in IDS.items():
        row_bytes = libgguf.row_size(qid, cols)
        q = np.empty((rows, row_bytes), dtype=np.uint8)
        libgguf.quantize_rows_into_raw(qid, x, q, rows, cols)
        back = np.empty((rows, cols), dtype=np.float32)
        n = rows * cols
        t = median_time(runs, lambda: libgguf.dequantize_rows_into_raw(qid, q, back, rows, cols))
        out.append({"impl": "ggml", "type": name, "op": "dequant", "elements": n, "median_s": t, "gelem_per_s": n / t / 1e9})
        qruns = 3 if name.endswith("_K") else runs
        t = median_time(qruns, lambda: libgguf.quantize_rows_into_raw(qid, x, q, rows, cols))
        out.append({"impl": "ggml", "type": name, "op": "quant", "elements": n, "median_s": t, "gelem_per_s": n / t / 1e9})
    return out


def main():
    binary = sys.argv[1]
    rows, cols, mv_rows, runs = arg("--rows", 8192), arg("--cols", 4096), arg("--mv-rows", 65536), arg("--runs", 7)
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    proc = subprocess.run([binary, "--rows", str(rows), "--cols", str(cols), "--mv-rows", str(mv_rows), "--runs", str(runs)],
                          capture_output=True, text=True, check=True, env=env)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    results += ggml_rows(rows, cols, runs)
    by = {(r["impl"], r.get("type"), r["op"]): r for r in results}
    family = by[("qload", None, "kernels")]["family"]
    read_bw = by[("machine", None, "read")]["gb_per_s"]
    write_bw = by[("machine", None, "write")]["gb_per_s"]
    print(f"qload kernels: {family}; machine: single-thread read {read_bw:.1f} GB/s, write {write_bw:.1f} GB/s")
    print(f"dequant/quant: {rows}x{cols}; matvec: {mv_rows}x{cols}; one thread; median of {runs} runs (3 for K-quant quantize)\n")
    print("| type | op | qload Gelem/s | candle Gelem/s | ggml Gelem/s | qload/candle | qload/ggml | qload GB/s | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in IDS:
        for op in ("dequant", "quant", "matvec"):
            q = by.get(("qload", name, op))
            c = by.get(("candle", name, op))
            g = by.get(("ggml", name, op))
            fmt = lambda r: f"{r['gelem_per_s']:.3f}" if r else "—"
            ratio = lambda a, b: f"{a['gelem_per_s'] / b['gelem_per_s']:.2f}x" if a and b else "—"
            note = ""
            gb = ""
            if op == "dequant" and q:
                out_gb = q["elements"] * 4 / q["median_s"] / 1e9
                gb = f"{out_gb:.1f} written"
                note = f"{100 * out_gb / write_bw:.0f}% of write bw"
            if op == "matvec" and q:
                gb = f"{q['gb_per_s']:.1f} read"
                note = f"{100 * q['gb_per_s'] / read_bw:.0f}% of read bw"
                two = by.get(("qload-2t", name, op))
                if two:
                    note += f"; 2 threads {two['gelem_per_s'] / q['gelem_per_s']:.2f}x"
            print(f"| {name} | {op} | {fmt(q)} | {fmt(c)} | {fmt(g)} | {ratio(q, c)} | {ratio(q, g)} | {gb} | {note} |")


if __name__ == "__main__":
    main()
