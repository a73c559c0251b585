#!/usr/bin/env python3
"""Codec benchmark, one run, one machine, one thread: qload vs candle-core (from the
`kernels` binary, same process, same data) vs ggml's reference C code (libgguf:
ggml_quantize_chunk and dequantize_row_*), with the machine's single-thread read
and write bandwidth. Prints a Markdown table of throughputs and ratios.

With --with-llama-cpp, also ggml's CPU backend from llama-cpp-python's shared
libraries (through ctypes): its matvec (a one-thread `ggml_mul_mat` graph of the
weight and an f32 vector, which quantizes the vector to the activation type as ggml
inference does) and the SIMD `from_float` of Q8_0 (the CPU type traits).

Usage: bench_kernels.py KERNELS_BIN [--rows R] [--cols C] [--mv-rows R] [--runs N] [--with-llama-cpp]
"""
import json
import os
import subprocess
import sys

import numpy as np
import libgguf

from ggml_cpu import median_time

IDS = {"Q4_0": 2, "Q5_0": 6, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}


def arg(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default



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


# Byte offsets of the f16 scales set to sane values in random blocks (as the kernels
# binary does): the work does not depend on the values, but NaN/Inf scales are avoided.
SCALE_AT = {"Q4_0": [0], "Q5_0": [0], "Q8_0": [0], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def ggml_cpu_rows(rows, cols, mv_rows, runs):
    """ggml's CPU backend from llama-cpp-python: one-thread mul_mat (matvec) and Q8_0's
    SIMD from_float. Pinned to one CPU like ggml_rows."""
    from ggml_cpu import GgmlCpu  # needs llama-cpp-python

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    g = GgmlCpu()
    out = [{"impl": "ggml-cpu", "op": "info", "avx2": g.avx2, "version": g.version}]

    # Q8_0 from_float (the SIMD quantizer ggml runs on activations), rows x cols floats.
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(rows * cols) * 0.02).astype(np.float32)
    from_float = g.from_float(8)
    q = np.empty(g.row_size(8, cols) * rows, dtype=np.uint8)
    n = rows * cols
    t = median_time(runs, lambda: from_float(x.ctypes.data, q.ctypes.data, n))
    out.append({"impl": "ggml-simd", "type": "Q8_0", "op": "quant", "elements": n, "median_s": t, "gelem_per_s": n / t / 1e9})

    # Matvec: mv_rows x cols random blocks (sane scales), one thread.
    act = (rng.standard_normal(cols) * 0.5).astype(np.float32)
    for name, qid in IDS.items():
        nbytes = g.row_size(qid, cols) * mv_rows
        blocks_per_row = cols // (256 if name.endswith("_K") else 32)
        w = np.frombuffer(rng.bytes(nbytes), dtype=np.uint8).reshape(mv_rows * blocks_per_row, -1).copy()
        for o in SCALE_AT[name]:
            w[:, o:o + 2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
        t = g.matvec_time(qid, mv_rows, cols, w, act, min(runs, 5))
        n = mv_rows * cols
        out.append({"impl": "ggml-cpu", "type": name, "op": "matvec", "elements": n, "median_s": t, "gelem_per_s": n / t / 1e9})
    return out


def main():
    binary = sys.argv[1]
    llama = "--with-llama-cpp" in sys.argv
    rows, cols, mv_rows, runs = arg("--rows", 8192), arg("--cols", 4096), arg("--mv-rows", 65536), arg("--runs", 7)
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    proc = subprocess.run([binary, "--rows", str(rows), "--cols", str(cols), "--mv-rows", str(mv_rows), "--runs", str(runs)],
                          capture_output=True, text=True, check=True, env=env)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    results += ggml_rows(rows, cols, runs)
    if llama:
        results += ggml_cpu_rows(rows, cols, mv_rows, runs)
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
            g = by.get(("ggml", name, op)) or by.get(("ggml-cpu", name, op))
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
            rep = by.get(("qload-repacked", name, op))
            if rep:
                note = f"{100 * rep['gb_per_s'] / read_bw:.0f}% of read bw"
                two = by.get(("qload-repacked-2t", name, op))
                if two:
                    note += f"; 2 threads {two['gelem_per_s'] / rep['gelem_per_s']:.2f}x"
                print(f"| {name} | {op} (8 rows interleaved) | {fmt(rep)} | {fmt(c)} | {fmt(g)} | {ratio(rep, c)} | "
                      f"{ratio(rep, g)} | {rep['gb_per_s']:.1f} read | {note} |")
            simd = by.get(("ggml-simd", name, op))
            if simd:
                print(f"| {name} | {op} (ggml SIMD from_float) | {fmt(q)} | — | {fmt(simd)} | — | {ratio(q, simd)} |  | ggml's CPU type traits |")
    if llama:
        info = by.get(("ggml-cpu", None, "info"))
        print(f"\nggml (ggml column): libgguf's reference C code for dequant/quant; llama-cpp-python {info['version']}'s "
              f"CPU backend for matvec (one-thread mul_mat; AVX2 {info['avx2']}) and the SIMD from_float row.")


if __name__ == "__main__":
    main()
