"""Reads a GGUF written by `qload convert` back with gguf-py (the reference reader) and
compares every tensor, dequantized by gguf-py's own numpy code, with the source model's.

Usage: check_readback.py SOURCE.gguf CONVERTED.gguf [MAX_REL_RMSE]
Exits non-zero when a tensor is missing, has another shape, or its relative RMSE against
the source is above MAX_REL_RMSE (default 0.1); prints one line per tensor.
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

src, out = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
want = {t.name: t for t in src.tensors}
bad = 0
for t in out.tensors:
    s = want.pop(t.name, None)
    if s is None:
        print(f"{t.name}: not in the source"); bad += 1; continue
    a = dequantize(s.data, s.tensor_type).astype(np.float64).reshape(-1)
    b = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
    if a.shape != b.shape or list(s.shape) != list(t.shape):
        print(f"{t.name}: shape {list(t.shape)} vs {list(s.shape)}"); bad += 1; continue
    rel = float(np.sqrt(((a - b) ** 2).sum() / max((a * a).sum(), 1e-30)))
    ok = np.isfinite(b).all() and rel <= limit
    print(f"{t.name:32} {t.tensor_type.name:6} rel_rmse {rel:.4f} {'ok' if ok else 'BAD'}")
    bad += 0 if ok else 1
for name in want:
    print(f"{name}: missing from the converted file"); bad += 1
print(f"{len(out.tensors)} tensors read back by gguf-py, {bad} problem(s)")
sys.exit(1 if bad else 0)
