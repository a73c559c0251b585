#!/usr/bin/env python3
"""NPY/NPZ fixtures written by numpy itself (run by `cargo xtask fixtures`).

Usage: gen_npy_fixtures.py OUT_DIR. Deterministic: fixed seed; zip member dates are
fixed by writing the archives through zipfile with a constant date_time.
Writes expected.json: per array, file, dtype, shape, fortran order and the values
(as the little-endian bytes in C order, hex) that a reader must produce.
"""
import io
import json
import os
import sys
import zipfile

import numpy as np

DATE = (1980, 1, 1, 0, 0, 0)


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=True)
    return buf.getvalue()


def write_zip(path, members, compress):
    # Same layout as np.savez / np.savez_compressed, with fixed member dates so the
    # bytes are reproducible.
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, arr in members.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=DATE)
            info.compress_type = method
            z.writestr(info, npy_bytes(arr))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261124)
    expected = {"generator": "xtask/python/gen_npy_fixtures.py", "numpy": np.__version__, "arrays": []}

    def record(file, name, arr, fortran):
        expected["arrays"].append({
            "file": file, "name": name, "descr": arr.dtype.str, "shape": list(arr.shape),
            "fortran_order": fortran,
            "c_order_le_hex": np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes().hex(),
        })

    singles = {
        "f32_c.npy": rng.standard_normal((3, 5)).astype(np.float32),
        "f32_fortran.npy": np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
        "f16.npy": rng.standard_normal((2, 8)).astype(np.float16),
        "f64.npy": rng.standard_normal(4),
        "i64.npy": rng.integers(-2**62, 2**62, (2, 3), dtype=np.int64),
        "i8.npy": np.array([-128, -1, 0, 127], dtype=np.int8),
        "u8.npy": np.array([0, 1, 128, 255], dtype=np.uint8),
        "bool.npy": np.array([True, False, True]),
        "scalar.npy": np.array(7, dtype=np.int32),
        "empty.npy": np.zeros((0, 4), dtype=np.float32),
        "fortran_3d.npy": np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
    }
    for file, arr in singles.items():
        with open(os.path.join(out, file), "wb") as f:
            f.write(npy_bytes(arr))
        record(file, file[:-4], arr, bool(arr.flags.f_contiguous and not arr.flags.c_contiguous))
    v2 = rng.standard_normal((2, 2)).astype(np.float32)
    with open(os.path.join(out, "v2.npy"), "wb") as f:
        f.write(npy_bytes(v2, version=(2, 0)))
    record("v2.npy", "v2", v2, False)
    # Refused: a big-endian array and an object array.
    with open(os.path.join(out, "refuse_big_endian.npy"), "wb") as f:
        f.write(npy_bytes(np.arange(3, dtype=">f4")))
    with open(os.path.join(out, "refuse_object.npy"), "wb") as f:
        f.write(npy_bytes(np.array([{"a": 1}, None], dtype=object)))

    members = {
        "model.layers.0.weight": rng.standard_normal((8, 16)).astype(np.float32),
        "model.layers.0.bias": rng.standard_normal(8).astype(np.float16),
        "steps": np.array([1, 2, 3], dtype=np.int64),
    }
    write_zip(os.path.join(out, "stored.npz"), members, compress=False)
    write_zip(os.path.join(out, "deflated.npz"), members, compress=True)
    for file in ("stored.npz", "deflated.npz"):
        for name, arr in members.items():
            record(file, name, arr, False)

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
