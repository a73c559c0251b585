#!/usr/bin/env python3
"""Golden vectors for the ggml types libgguf does not have (today: Q2_0, id 42),
written by the real ggml: `libggml-base.so` as llama-cpp-python builds it (the pinned
xtask/python/requirements-llama-cpp.txt that `cargo xtask crossval --with-llama-cpp`
installs into target/xtask-venv).

    target/xtask-venv/bin/python xtask/python/gen_golden_ggml.py tests/fixtures/golden-ggml

Same layout, rows and random streams as gen_golden.py (whose main() runs here with
ggml in place of libgguf); not part of `cargo xtask fixtures --check`, whose venv has
no llama-cpp-python (it builds ggml for about 15 minutes).
"""

import ctypes
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import gen_golden  # noqa: E402


class Ggml:
    """libgguf's three calls gen_golden uses, on ggml's own C functions."""

    def __init__(self):
        import llama_cpp

        lib = next((Path(llama_cpp.__file__).parent / "lib").glob("libggml-base.*"))
        self.lib = ctypes.CDLL(str(lib))
        self.lib.ggml_row_size.restype = ctypes.c_size_t
        self.lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ]
        self.lib.ggml_quantize_init.argtypes = [ctypes.c_int]
        self.version = llama_cpp.__version__

    def type_size(self, ggml_id):
        return int(self.lib.ggml_row_size(ggml_id, self.block(ggml_id)))

    def block(self, ggml_id):
        return {42: 64}[ggml_id]

    def dequantize_rows(self, raw, ggml_id, n_per_row):
        name = {42: "q2_0"}[ggml_id]
        fn = getattr(self.lib, f"dequantize_row_{name}")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        raw = np.ascontiguousarray(raw)
        n = raw.shape[0] * n_per_row
        out = np.zeros(n, dtype=np.float32)
        fn(raw.ctypes.data, out.ctypes.data, n)
        return out.reshape(raw.shape[0], n_per_row)

    def quantize_rows(self, data, ggml_id, imatrix=None):
        data = np.ascontiguousarray(data, dtype=np.float32)
        rows, n = data.shape
        row_bytes = int(self.lib.ggml_row_size(ggml_id, n))
        out = np.zeros(rows * row_bytes, dtype=np.uint8)
        self.lib.ggml_quantize_init(ggml_id)
        w = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32).ctypes.data
        self.lib.ggml_quantize_chunk(ggml_id, data.ctypes.data, out.ctypes.data, 0, rows, n, w)
        return out.reshape(rows, row_bytes)


gen_golden.libgguf = Ggml()
gen_golden.DEQUANT_TYPES = [("q2_0", 42, 64, 18, 0)]
gen_golden.QUANT_TYPES = [("q2_0", 42)]

if __name__ == "__main__":
    gen_golden.main()
    print(f"wrote {sys.argv[1]} with ggml from llama-cpp-python {gen_golden.libgguf.version}")
