#!/usr/bin/env python3
"""Reference side of `cargo xtask crossval`: a small server that decodes and
encodes ggml blocks with ggml's own C code and writes the results to files.

    crossval.py --backend libgguf|llama-cpp

Reads one JSON request per line on stdin, answers one JSON line on stdout:
  {"op": "decode", "type": ID, "src": PATH, "offset": O, "nbytes": N,
   "n_per_row": K, "out": PATH}                -> little-endian f32 in OUT
  {"op": "encode", "type": ID, "src": PATH (f32), "n_per_row": K,
   "imatrix": PATH or null, "out": PATH}       -> block bytes in OUT
  {"op": "info"}                               -> backend name and version
Answers {"ok": true} or {"ok": false, "error": "..."}.

Backends:
  libgguf    the PyPI wheel (ggml's quantize/dequantize for types 2-41, except
             Q8_1 and Q8_K)
  llama-cpp  the real ggml from llama-cpp-python's libggml-base.so, through
             ctypes: ggml_quantize_chunk and the type traits' to_float and
             from_float_ref (also Q8_1 / Q8_K)
"""

import argparse
import ctypes
import json
import sys
from pathlib import Path

import numpy as np


class LibggufBackend:
    def __init__(self):
        import libgguf

        self.lib = libgguf
        self.name = "libgguf"
        try:
            from importlib.metadata import version

            self.version = version("libgguf")
        except Exception:  # pragma: no cover
            self.version = "?"

    def decode(self, qtype, raw, n_per_row):
        rows = raw.reshape(-1, self.row_bytes(qtype, n_per_row))
        return self.lib.dequantize_rows(rows, qtype, n_per_row)

    def encode(self, qtype, values, imatrix):
        return self.lib.quantize_rows(values, qtype, imatrix=imatrix)

    def row_bytes(self, qtype, n_per_row):
        size = self.lib.row_size(qtype, n_per_row)
        if size <= 0:
            raise ValueError(f"type {qtype} cannot hold rows of {n_per_row}")
        return size


class LlamaCppBackend:
    """ggml itself, from the shared libraries llama-cpp-python builds."""

    class TypeTraits(ctypes.Structure):
        _fields_ = [
            ("type_name", ctypes.c_char_p),
            ("blck_size", ctypes.c_int64),
            ("blck_size_interleave", ctypes.c_int64),
            ("type_size", ctypes.c_size_t),
            ("is_quantized", ctypes.c_bool),
            ("to_float", ctypes.c_void_p),
            ("from_float_ref", ctypes.c_void_p),
        ]

    def __init__(self):
        import llama_cpp

        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        candidates = sorted(lib_dir.glob("libggml-base.*")) or sorted(lib_dir.rglob("libggml-base.*"))
        if not candidates:
            raise RuntimeError(f"libggml-base not found under {lib_dir}")
        self.ggml = ctypes.CDLL(str(candidates[0]))
        self.ggml.ggml_get_type_traits.restype = ctypes.POINTER(self.TypeTraits)
        self.ggml.ggml_get_type_traits.argtypes = [ctypes.c_int]
        self.ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.ggml.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ]
        self.ggml.ggml_row_size.restype = ctypes.c_size_t
        self.ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        self.ggml.ggml_quantize_init.argtypes = [ctypes.c_int]
        self.name = "llama-cpp (ggml)"
        self.version = getattr(llama_cpp, "__version__", "?")

    # The activation types' row functions, where the type traits leave them out
    # (Q8_K has neither to_float nor from_float_ref there; ggml-base exports both).
    EXPORTED = {9: "q8_1", 15: "q8_K"}

    def exported(self, qtype, prefix, suffix=""):
        name = self.EXPORTED.get(qtype)
        if name is None:
            return None
        try:
            return ctypes.cast(getattr(self.ggml, f"{prefix}{name}{suffix}"), ctypes.c_void_p).value
        except AttributeError:
            return None

    def traits(self, qtype):
        return self.ggml.ggml_get_type_traits(qtype).contents

    def row_bytes(self, qtype, n_per_row):
        return int(self.ggml.ggml_row_size(qtype, n_per_row))

    def decode(self, qtype, raw, n_per_row):
        t = self.traits(qtype)
        to_float = t.to_float or self.exported(qtype, "dequantize_row_")
        if not to_float:
            raise ValueError(f"ggml has no to_float for type {qtype}")
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(to_float)
        n = raw.size // t.type_size * t.blck_size
        out = np.empty(n, dtype=np.float32)
        fn(raw.ctypes.data, out.ctypes.data, n)
        return out

    def encode(self, qtype, values, imatrix):
        rows, n_per_row = values.shape
        # Zeroed, not np.empty: quantize_row_q8_K_ref skips an all-zero block's bsums,
        # leaving whatever the buffer held (qload writes their true value, 0).
        out = np.zeros(rows * self.row_bytes(qtype, n_per_row), dtype=np.uint8)
        t = self.traits(qtype)
        if qtype in (9, 15):  # Q8_1 / Q8_K: activation types, not in ggml_quantize_chunk
            ref = t.from_float_ref or self.exported(qtype, "quantize_row_", "_ref")
            if not ref:
                raise ValueError(f"ggml exports no reference quantizer for type {qtype}")
            fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(ref)
            fn(values.ctypes.data, out.ctypes.data, values.size)
            return out
        self.ggml.ggml_quantize_init(qtype)
        w = None if imatrix is None else imatrix.ctypes.data
        self.ggml.ggml_quantize_chunk(qtype, values.ctypes.data, out.ctypes.data, 0, rows, n_per_row, w)
        return out


def serve(backend):
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "info":
                reply = {"ok": True, "backend": backend.name, "version": backend.version}
            elif op == "decode":
                with open(req["src"], "rb") as f:
                    f.seek(req["offset"])
                    raw = np.frombuffer(f.read(req["nbytes"]), dtype=np.uint8)
                out = backend.decode(req["type"], raw, req["n_per_row"])
                np.ascontiguousarray(out, dtype="<f4").tofile(req["out"])
                reply = {"ok": True}
            elif op == "encode":
                n = req["n_per_row"]
                values = np.fromfile(req["src"], dtype="<f4").reshape(-1, n)
                imatrix = None
                if req.get("imatrix"):
                    imatrix = np.fromfile(req["imatrix"], dtype="<f4")
                out = backend.encode(req["type"], values, imatrix)
                np.ascontiguousarray(out, dtype=np.uint8).tofile(req["out"])
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {op}"}
        except Exception as e:  # the Rust side reports it per case
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["libgguf", "llama-cpp"], default="libgguf")
    args = parser.parse_args()
    backend = LibggufBackend() if args.backend == "libgguf" else LlamaCppBackend()
    serve(backend)


if __name__ == "__main__":
    main()
