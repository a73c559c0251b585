"""Loader performance goals, side by side with candle, each load in its own process.

Usage: bench_load.py WORKDIR QLOAD LOAD_PEERS [RUNS]

Writes (once) WORKDIR/llama-bf16.safetensors (a llama-shaped model, ~1.08 GB of bf16:
8 layers of hidden 2048 / MLP 5632, embedding and head 32000 x 2048) and converts it
with qload to WORKDIR/llama-q4_k_m.gguf (a mixed Q4_K/Q6_K/BF16 GGUF, ~330 MB). Then,
alternating the peers in every round so that drift hits both alike:
  1. time to ready of the GGUF kept as stored: the page-touch floor, qload (load +
     touch every page of every tensor), candle (gguf_file + Content::tensor for all);
  2. bf16 safetensors -> Q4_K: qload with 1 and 2 threads, candle's QTensor::quantize
     path, and qload's Q4_K quantize kernel alone (`qload bench kernels`).
Prints a markdown table of medians.
"""
import json, os, statistics, struct, subprocess, sys

import numpy as np

work, qload, peers = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
os.makedirs(work, exist_ok=True)
st = os.path.join(work, "llama-bf16.safetensors")
gguf = os.path.join(work, "llama-q4_k_m.gguf")

H, F, L, V = 2048, 5632, 8, 32000
if not os.path.exists(st):
    rng = np.random.default_rng(7)
    shapes = [("model.embed_tokens.weight", (V, H))]
    for i in range(L):
        p = f"model.layers.{i}."
        shapes += [(p + f"self_attn.{x}_proj.weight", (H, H)) for x in "qkvo"]
        shapes += [(p + "mlp.gate_proj.weight", (F, H)), (p + "mlp.up_proj.weight", (F, H)),
                   (p + "mlp.down_proj.weight", (H, F)),
                   (p + "input_layernorm.weight", (H,)), (p + "post_attention_layernorm.weight", (H,))]
    shapes += [("model.norm.weight", (H,)), ("lm_head.weight", (V, H))]
    header, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(st + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in shapes:
            a = (rng.standard_normal(shape, dtype=np.float32) * 0.02)
            f.write((a.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    os.rename(st + ".tmp", st)
if not os.path.exists(gguf):
    subprocess.run([qload, "convert", st, "--quantize", "q4_k_m", "-o", gguf, "--quiet"], check=True)

def one(mode, path, threads=1):
    out = subprocess.run([peers, mode, path, str(threads)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])

def kernel():
    out = subprocess.run([qload, "bench", "kernels", "--types", "q4_k", "--ops", "quant", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["results"][0]["melem_per_s"]

cases = [("touch", gguf, 1), ("qload-keep", gguf, 1), ("candle-gguf", gguf, 1),
         ("qload-q4k", st, 1), ("qload-q4k", st, 2), ("candle-q4k", st, 1)]
res = {c: [] for c in cases}
kern = []
for r in range(runs):
    for c in cases:
        res[c].append(one(c[0], c[1], c[2]))
    kern.append(kernel())
med = {c: statistics.median(x["seconds"] for x in v) for c, v in res.items()}
rss = {c: max(x["peak_rss_bytes"] for x in v) for c, v in res.items()}
elems = {c: v[0]["elements"] for c, v in res.items()}
k = statistics.median(kern)
print(f"GGUF {os.path.getsize(gguf)/2**20:.0f} MiB, safetensors {os.path.getsize(st)/2**20:.0f} MiB; {runs} rounds; medians\n")
print("| case | threads | seconds | Melem/s | peak RSS |")
print("|---|---|---|---|---|")
for c in cases:
    print(f"| {c[0]} | {c[2]} | {med[c]:.3f} | {elems[c]/med[c]/1e6:.0f} | {rss[c]/2**20:.0f} MiB |")
print(f"| Q4_K quantize kernel (qload bench kernels) | 1 | | {k:.0f} | |")
t, q, c = med[cases[0]], med[cases[1]], med[cases[2]]
print(f"\nready: qload / page touch = {q/t:.2f} (goal <= 2); candle / qload = {c/q:.2f} (goal > 1)")
q1, q2, cq = med[cases[3]], med[cases[4]], med[cases[5]]
n = elems[cases[3]]
print(f"Q4_K on load: 1 thread {n/q1/1e6:.0f} Melem/s = {n/q1/1e6/k:.0%} of the kernel; "
      f"2 threads {n/q2/1e6:.0f} Melem/s = {n/q2/1e6/(2*k):.0%} of 2x kernel (goal 90%); "
      f"candle / qload(1 thread) = {cq/q1:.2f}, candle / qload(2 threads) = {cq/q2:.2f}")
