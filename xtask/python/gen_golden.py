#!/usr/bin/env python3
"""Writes the golden vectors of qload-quant-core's ggml codec tests.

Run by `cargo xtask fixtures` (libgguf and numpy pinned in
requirements-fixtures.txt): gen_golden.py OUT_DIR

libgguf wraps ggml's own C code (`ggml_quantize_chunk`, `dequantize_row_*`), so
its bytes are ggml's bytes. Outputs, all little-endian and header-less:

  dequant/<type>.blocks   random block bytes (with NaN, Inf, subnormal, zero and
                          negative-zero scales patched into the first blocks)
  dequant/<type>.f32      ggml's f32 output for those blocks
  quant/input.f32         the f32 rows every quantizer is fed (ROWS x N_PER_ROW)
  quant/imatrix.f32       an importance matrix (N_PER_ROW non-negative weights)
  quant/<type>.q          ggml_quantize_chunk(type, input, imatrix = NULL)
  quant/<type>.imatrix.q  ggml_quantize_chunk(type, input, imatrix)
  manifest.json           the types, block geometry, row descriptions and files

Nothing is hand-edited; `cargo xtask fixtures --check` regenerates and compares.
"""

import json
import sys
from pathlib import Path

import libgguf
import numpy as np

N_PER_ROW = 512
DEQUANT_BLOCKS = 48

# name, ggml id, block elements, block bytes, byte offset of the f16 scale to patch (None: none)
DEQUANT_TYPES = [
    ("q4_0", 2, 32, 18, 0),
    ("q4_1", 3, 32, 20, 0),
    ("q5_0", 6, 32, 22, 0),
    ("q5_1", 7, 32, 24, 0),
    ("q8_0", 8, 32, 34, 0),
    ("q2_k", 10, 256, 84, 80),
    ("q3_k", 11, 256, 110, 108),
    ("q4_k", 12, 256, 144, 0),
    ("q5_k", 13, 256, 176, 0),
    ("q6_k", 14, 256, 210, 208),
    ("iq2_xxs", 16, 256, 66, 0),
    ("iq2_xs", 17, 256, 74, 0),
    ("iq3_xxs", 18, 256, 98, 0),
    ("iq1_s", 19, 256, 50, 0),
    ("iq4_nl", 20, 32, 18, 0),
    ("iq3_s", 21, 256, 110, 0),
    ("iq2_s", 22, 256, 82, 0),
    ("iq4_xs", 23, 256, 136, 0),
    ("iq1_m", 29, 256, 56, None),
    ("tq1_0", 34, 256, 54, 52),
    ("tq2_0", 35, 256, 66, 64),
    ("mxfp4", 39, 32, 17, None),
    ("nvfp4", 40, 64, 36, None),
    ("q1_0", 41, 128, 18, 0),
]

# Types ggml_quantize_chunk can produce without an importance matrix, and whether
# it uses one when given (the K-quants and IQ4 types do; the others ignore it or
# use it in a way the tests also check).
QUANT_TYPES = [
    ("q4_0", 2), ("q4_1", 3), ("q5_0", 6), ("q5_1", 7), ("q8_0", 8),
    ("q2_k", 10), ("q3_k", 11), ("q4_k", 12), ("q5_k", 13), ("q6_k", 14),
    ("iq4_nl", 20), ("iq4_xs", 23), ("tq1_0", 34), ("tq2_0", 35), ("mxfp4", 39),
    ("nvfp4", 40), ("q1_0", 41),
]

F16_SPECIALS = [0x7E00, 0x7C00, 0xFC00, 0x0001, 0x03FF, 0x0000, 0x8000, 0x7BFF]


def make_rows(rng):
    n = N_PER_ROW
    rows = []

    def add(desc, values, finite=True):
        rows.append((desc, np.asarray(values, dtype=np.float32), finite))

    add("gaussian sigma 1", rng.standard_normal(n))
    add("gaussian sigma 0.02 (typical weights)", rng.standard_normal(n) * 0.02)
    add("uniform +-1e-3", rng.uniform(-1e-3, 1e-3, n))
    add("zeros", np.zeros(n))
    add("constant 0.5", np.full(n, 0.5))
    add("constant -3", np.full(n, -3.0))
    add("huge: gaussian * 1e30", rng.standard_normal(n) * 1e30)
    add("tiny: gaussian * 1e-30", rng.standard_normal(n) * 1e-30)
    outliers = rng.laplace(size=n) * 0.1
    outliers[::37] *= 100.0
    add("laplace with outliers", outliers)
    half = rng.standard_normal(n)
    half[: n // 2] = 0.0
    add("half zeros, half gaussian", half)
    add("integers -8..8 (rounding ties)", rng.integers(-8, 9, n))
    add("half-integers -8.5..8.5 (rounding ties)", rng.integers(-17, 18, n) * 0.5)
    add("ternary {-0.7, 0, 0.7}", rng.integers(-1, 2, n) * 0.7)
    add("gaussian * 1e5 (f16 scale overflow)", rng.standard_normal(n) * 1e5)
    add("positive only", np.abs(rng.standard_normal(n)) + 1.0)
    add("one spike per block", np.where(np.arange(n) % 32 == 5, 10.0, 0.01 * rng.standard_normal(n)))
    with_inf = rng.standard_normal(n)
    with_inf[7] = np.inf
    with_inf[300] = -np.inf
    add("gaussian with +-Inf", with_inf, finite=False)
    with_nan = rng.standard_normal(n)
    with_nan[3] = np.nan
    with_nan[260] = np.nan
    add("gaussian with NaN", with_nan, finite=False)
    return rows


def main():
    out = Path(sys.argv[1])
    (out / "dequant").mkdir(parents=True)
    (out / "quant").mkdir(parents=True)
    rng = np.random.default_rng(20261125)
    manifest = {"n_per_row": N_PER_ROW, "dequant": [], "quant": {}, "rows": []}

    for name, ggml_id, block, nbytes, scale_at in DEQUANT_TYPES:
        assert libgguf.type_size(ggml_id) == nbytes, name
        raw = rng.integers(0, 256, size=(DEQUANT_BLOCKS, nbytes), dtype=np.uint8)
        if scale_at is not None:
            for i, bits in enumerate(F16_SPECIALS):
                raw[i, scale_at : scale_at + 2] = np.frombuffer(np.uint16(bits).tobytes(), np.uint8)
        if name == "mxfp4":
            for i, e in enumerate([0, 1, 2, 127, 254, 255]):
                raw[i, 0] = e
        if name == "nvfp4":
            # UE4M3 scale bytes: zero, the NaN code 0x7F (read as 0), bit 7 set,
            # subnormals, the largest codes.
            for i, d in enumerate([[0, 0x7F, 0x80, 0xFF], [1, 7, 8, 0x7E], [0xF8, 0x87, 0x38, 0x39]]):
                raw[i, 0:4] = d
        # One row per block keeps every type's row legal (block-sized rows).
        values = libgguf.dequantize_rows(raw, ggml_id, block)
        (out / "dequant" / f"{name}.blocks").write_bytes(raw.tobytes())
        (out / "dequant" / f"{name}.f32").write_bytes(values.astype("<f4").tobytes())
        manifest["dequant"].append(
            {"type": name, "ggml_id": ggml_id, "block": block, "block_bytes": nbytes, "blocks": DEQUANT_BLOCKS}
        )

    rows = make_rows(rng)
    data = np.stack([r[1] for r in rows]).astype(np.float32)
    imatrix = (rng.standard_normal(N_PER_ROW) ** 2 + 0.01).astype(np.float32)
    (out / "quant" / "input.f32").write_bytes(data.astype("<f4").tobytes())
    (out / "quant" / "imatrix.f32").write_bytes(imatrix.astype("<f4").tobytes())
    manifest["rows"] = [{"desc": desc, "finite": finite} for desc, _, finite in rows]

    for name, ggml_id in QUANT_TYPES:
        plain = libgguf.quantize_rows(data, ggml_id)
        weighted = libgguf.quantize_rows(data, ggml_id, imatrix=imatrix)
        (out / "quant" / f"{name}.q").write_bytes(plain.tobytes())
        (out / "quant" / f"{name}.imatrix.q").write_bytes(weighted.tobytes())
        manifest["quant"][name] = {
            "ggml_id": ggml_id,
            "row_bytes": int(plain.shape[1]),
            "imatrix_differs": bool((plain != weighted).any()),
        }

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
