#!/usr/bin/env python3
"""Open-and-list benchmark: gguf-py's GGUFReader vs qload vs candle, one run, one machine.

Usage: bench_open_gguf.py WORKDIR QLOAD_BIN OPEN_GGUF_BIN
Writes WORKDIR/vocab262k-250mb.gguf once (deterministic), then prints a JSON report.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import gguf

N_VOCAB = 262_144
N_LAYERS = 24
HIDDEN = 1024
FFN = 2816


def make(path):
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(N_LAYERS)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_tokenizer_model("gpt2")
    alphabet = "abcdefghijklmnopqrstuvwxyzĠABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    lens = rng.integers(1, 12, N_VOCAB)
    idx = rng.integers(0, len(alphabet), int(lens.sum()))
    chars = [alphabet[i] for i in idx]
    tokens, pos = [], 0
    for i, n in enumerate(lens):
        tokens.append("".join(chars[pos:pos + n]) + str(i))
        pos += n
    w.add_token_list(tokens)
    w.add_token_scores(rng.standard_normal(N_VOCAB).astype(np.float32).tolist())
    w.add_token_types(rng.integers(1, 6, N_VOCAB).astype(np.int32).tolist())
    w.add_token_merges([f"{tokens[i]} {tokens[i + 1]}" for i in range(0, 2 * 120_000, 2)])
    def raw(name, qtype, rows, cols):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        data = rng.integers(0, 256, (rows, cols // block * size), dtype=np.uint8)
        w.add_tensor(name, data, raw_dtype=qtype)
    raw("token_embd.weight", gguf.GGMLQuantizationType.Q4_K, 32_768, HIDDEN)
    for i in range(N_LAYERS):
        for n, r, c in [("attn_q", HIDDEN, HIDDEN), ("attn_k", HIDDEN, HIDDEN), ("attn_v", HIDDEN, HIDDEN),
                        ("attn_output", HIDDEN, HIDDEN), ("ffn_gate", FFN, HIDDEN), ("ffn_up", FFN, HIDDEN)]:
            raw(f"blk.{i}.{n}.weight", gguf.GGMLQuantizationType.Q4_K, r, c)
        raw(f"blk.{i}.ffn_down.weight", gguf.GGMLQuantizationType.Q6_K, HIDDEN, FFN)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    raw("output.weight", gguf.GGMLQuantizationType.Q6_K, 32_768, HIDDEN)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def ggufpy_open_list(path):
    t = time.perf_counter()
    r = gguf.GGUFReader(path)
    n = sum(int(x.n_bytes) for x in r.tensors)
    return time.perf_counter() - t, n, len(r.tensors)


def main():
    work, qload, open_gguf = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "vocab262k-250mb.gguf")
    if not os.path.exists(path):
        make(path)
    size = os.path.getsize(path)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    py = [ggufpy_open_list(path) for _ in range(3)]
    py_s = statistics.median(p[0] for p in py)
    peers = json.loads(subprocess.run([open_gguf, path, "30"], capture_output=True, check=True, text=True).stdout)
    rss = {}
    for mode in (["inspect"], ["inspect", "--json"], ["validate", "--headers-only"]):
        out = subprocess.run(["/usr/bin/time", "-f", "%M %e", qload, *mode, path],
                             capture_output=True, text=True, check=True)
        kib, secs = out.stderr.strip().splitlines()[-1].split()
        rss[" ".join(mode)] = {"peak_rss_mib": int(kib) / 1024, "wall_s": float(secs)}
    # A 1 GiB safetensors file (sparse: header + holes): listing it must touch no data.
    st = os.path.join(work, "one-gib.safetensors")
    if not os.path.exists(st):
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for i in range(64):
            n = (1 << 30) // 64
            header[f"model.layers.{i}.weight"] = {"dtype": "F16", "shape": [n // 2 // 4096, 4096], "data_offsets": [off, off + n]}
            off += n
        blob = json.dumps(header).encode()
        blob += b" " * (-len(blob) % 8)
        with open(st, "wb") as f:
            f.write(len(blob).to_bytes(8, "little") + blob)
            f.truncate(8 + len(blob) + off)
    out = subprocess.run(["/usr/bin/time", "-f", "%M %e", qload, "inspect", st], capture_output=True, text=True, check=True)
    kib, secs = out.stderr.strip().splitlines()[-1].split()
    rss["inspect 1 GiB safetensors"] = {"peak_rss_mib": int(kib) / 1024, "wall_s": float(secs), "file_mib": os.path.getsize(st) / 2**20}
    report = {
        "file": path, "file_mib": size / 2**20, "tensors": py[0][2], "vocab": N_VOCAB,
        "ggufpy_reader_s": py_s,
        "qload_open_list_s": peers["qload_open_list_s"],
        "candle_content_read_s": peers["candle_content_read_s"],
        "qload_share_of_ggufpy_pct": 100 * peers["qload_open_list_s"] / py_s,
        "candle_over_qload": peers["candle_content_read_s"] / peers["qload_open_list_s"],
        "qload_cli": rss,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
