#!/usr/bin/env python3
"""Writes the NumPy fixtures of qload-formats' NPY/NPZ reader tests.

Run by `cargo xtask fixtures` (numpy and ml_dtypes pinned in
requirements-fixtures.txt): gen_npy_fixtures.py OUT_DIR

Outputs tests/fixtures/numpy/*.npy|*.npz and expected.json (names, descr, dtype,
shape, fortran order and the C-order little-endian bytes of every array (or
length and FNV-1a 64 hash above 4 KiB), plus the
refusal fixtures with a substring their error must contain). Every file is written
by numpy itself; nothing is hand-edited.
"""

import argparse
import json
import os
import time
from pathlib import Path

# np.savez stamps zip members with the current local time; pin it so that the
# archives are byte-for-byte reproducible (`cargo xtask fixtures --check`).
os.environ["TZ"] = "UTC"
time.tzset()
time.time = lambda: 1_000_000_000.0

import ml_dtypes
import numpy as np

# descr -> qload DType name.
DTYPE_NAMES = {
    "<f2": "F16", "<f4": "F32", "<f8": "F64",
    "|i1": "I8", "<i2": "I16", "<i4": "I32", "<i8": "I64",
    "|u1": "U8", "<u2": "U16", "<u4": "U32", "<u8": "U64",
    "|b1": "BOOL", "<c8": "C64", "<V2": "BF16",
}


def entry(name, arr, descr):
    """Expected facts about one array as qload reads it."""
    c_bytes = np.ascontiguousarray(arr).tobytes(order="C")
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    out = {
        "name": name,
        "descr": descr,
        "dtype": DTYPE_NAMES[descr],
        "shape": list(arr.shape),
        "fortran_order": fortran,
    }
    # Small arrays: the bytes themselves; large ones: length and FNV-1a 64.
    if len(c_bytes) <= 4096:
        out["c_order_hex"] = c_bytes.hex()
    else:
        out["c_order_len"] = len(c_bytes)
        out["c_order_fnv1a64"] = "%016x" % fnv1a64(c_bytes)
    return out


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def descr_of(arr):
    return np.lib.format.dtype_to_descr(arr.dtype)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", help="output folder (wholly replaced by `cargo xtask fixtures`)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    expected = {
        "generator": {"numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__},
        "files": {},
        "refusals": {},
    }

    def save(fname, name, arr, **write_kw):
        path = out / fname
        if write_kw:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, arr, **write_kw)
        else:
            np.save(path, arr)
        expected["files"][fname] = {"arrays": [entry(name, arr, descr_of(arr))]}

    c_f32 = (rng.standard_normal((2, 3, 4)) * 4).astype(np.float32)
    save("c_f32.npy", "c_f32", c_f32)
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4) * 1.5 - 2)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    save("fortran_f32.npy", "fortran_f32", fortran)
    fortran3 = np.asfortranarray((rng.standard_normal((2, 3, 5)) * 100).astype(np.int64))
    save("fortran_i64_3d.npy", "fortran_i64_3d", fortran3)
    save("f16.npy", "f16", (rng.standard_normal((5, 7)) * 10).astype(np.float16))
    save("i64.npy", "i64", rng.integers(-(2**62), 2**62, size=(4, 3), dtype=np.int64))
    save("bool.npy", "bool", rng.integers(0, 2, size=(3, 5)).astype(np.bool_))
    save("u8.npy", "u8", rng.integers(0, 256, size=(17,), dtype=np.uint8))
    save("scalar_0d.npy", "scalar_0d", np.array(3.25, dtype=np.float32))
    save("empty.npy", "empty", np.zeros((0, 3), dtype=np.float32))
    save("bf16.npy", "bf16", (rng.standard_normal((3, 4)) * 2).astype(ml_dtypes.bfloat16))
    save("v2_f32.npy", "v2_f32", np.arange(6, dtype=np.float32).reshape(2, 3), version=(2, 0))
    save("v3_f32.npy", "v3_f32", np.arange(6, dtype=np.float32).reshape(3, 2) - 1, version=(3, 0))

    # Several arrays, one per supported descr (stored members: zero-copy).
    several = {
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "f32": rng.standard_normal((4,)).astype(np.float32),
        "f64": rng.standard_normal((2, 2)),
        "i8": rng.integers(-128, 128, size=(5,), dtype=np.int8),
        "i16": rng.integers(-3000, 3000, size=(5,), dtype=np.int16),
        "i32": rng.integers(-(2**30), 2**30, size=(2, 3), dtype=np.int32),
        "i64": rng.integers(-(2**40), 2**40, size=(3,), dtype=np.int64),
        "u8": rng.integers(0, 256, size=(6,), dtype=np.uint8),
        "u16": rng.integers(0, 2**16, size=(6,), dtype=np.uint16),
        "u32": rng.integers(0, 2**32, size=(2, 2), dtype=np.uint32),
        "u64": rng.integers(0, 2**63, size=(2,), dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "c64": (rng.standard_normal((3,)) + 1j * rng.standard_normal((3,))).astype(np.complex64),
        "bf16": rng.standard_normal((2, 4)).astype(ml_dtypes.bfloat16),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "scalar": np.array(7, dtype=np.int32),
        "empty": np.zeros((3, 0), dtype=np.float32),
    }
    np.savez(out / "several.npz", **several)
    expected["files"]["several.npz"] = {
        "arrays": [entry(k, v, descr_of(v)) for k, v in several.items()]
    }
    compressed = {
        "weight": (rng.standard_normal((16, 32)) * 3).astype(np.float32),
        "zeros": np.zeros((64, 64), dtype=np.float16),
        "ids": np.arange(40, dtype=np.int64).reshape(8, 5),
        "fortran": np.asfortranarray(np.arange(20, dtype=np.int32).reshape(4, 5)),
    }
    np.savez_compressed(out / "compressed.npz", **compressed)
    expected["files"]["compressed.npz"] = {
        "arrays": [entry(k, v, descr_of(v)) for k, v in compressed.items()]
    }
    # One stored and one deflated member is not something numpy writes; the
    # tests mix them by building zips in code.

    # Refusals: each error message must contain the given substring.
    refusals = {
        "big_endian.npy": (np.arange(4, dtype=">f4"), "big-endian"),
        "object.npy": (np.array([1, "a", None], dtype=object), "object"),
        "structured.npy": (np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
        "unicode.npy": (np.array(["ab", "c"]), "'<U2'"),
        "complex128.npy": (np.array([1 + 2j]), "'<c16'"),
    }
    for fname, (arr, needle) in refusals.items():
        np.save(out / fname, arr, allow_pickle=True)
        expected["refusals"][fname] = needle

    with open(out / "expected.json", "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
