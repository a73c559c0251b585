"""`qload bench model` side by side with candle's QMatMul on the same GGUF, alternating
the peers in every round; prints a markdown table of medians and the ratio.

Usage: bench_model.py QLOAD MODEL_PEERS GGUF [THREADS] [TOKENS] [ROUNDS]
"""
import json, os, statistics, subprocess, sys

qload, peers, gguf = sys.argv[1], sys.argv[2], sys.argv[3]
threads = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()
tokens = int(sys.argv[5]) if len(sys.argv) > 5 else 16
rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 3
env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
q, c = [], []
for _ in range(rounds):
    out = subprocess.run([qload, "bench", "model", gguf, "--threads", str(threads), "--tokens", str(tokens), "--json"],
                         check=True, capture_output=True, text=True, env=env).stdout
    q.append(json.loads(out))
    out = subprocess.run([peers, gguf, str(tokens)], check=True, capture_output=True, text=True, env=env).stdout
    c.append(json.loads(out.strip().splitlines()[-1]))
mq = statistics.median(x["tokens_per_s"] for x in q)
mc = statistics.median(x["tokens_per_s"] for x in c)
read = statistics.median(x["read_bandwidth_gb_per_s"] for x in q)
print(f"{os.path.basename(gguf)}: {q[0]['weights']} weight matrices, {q[0]['bytes_per_token']/2**20:.1f} MiB per token "
      f"(candle: {c[0]['weights']}, {c[0]['bytes_per_token']/2**20:.1f} MiB); {threads} thread(s), {tokens} tokens, {rounds} rounds\n")
print("| peer | tokens/s | GB/s of weights | share of read bandwidth |")
print("|---|---|---|---|")
for name, runs, m in [("qload `Weight::matvec`", q, mq), ("candle `QMatMul::forward`", c, mc)]:
    gbs = statistics.median(x["gb_per_s"] for x in runs)
    print(f"| {name} | {m:.2f} | {gbs:.2f} | {100 * gbs / read:.0f}% |")
print(f"\nqload / candle = {mq / mc:.2f} (goal >= 1.2); read bandwidth with {threads} thread(s): {read:.1f} GB/s")
