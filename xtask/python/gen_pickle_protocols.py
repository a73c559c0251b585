#!/usr/bin/env python3
"""Writes tests/fixtures/torch/pickles/: one plain-data object pickled with every
protocol 0-5 by CPython's own pickler, and expected.json, a tagged description of
the object that the Rust tests compare the restricted unpickler's output with.

Only the standard library is needed. Run from the repository root:
    python3 xtask/python/gen_pickle_protocols.py
"""
import json
import math
import os
import pickle
import sys

OUT = os.path.join("tests", "fixtures", "torch", "pickles")


def make_object():
    shared = [1, 2, 3]
    return {
        "int": 7,
        "neg": -123456789,
        "i32": 2**31 - 1,
        "i64max": 2**63 - 1,
        "i64min": -(2**63),
        "big": 2**70,
        "bigneg": -(2**70) - 5,
        "float": 1.5,
        "negzero": -0.0,
        "inf": math.inf,
        "str": "h\u00e9llo \u2603 back\\slash\nnewline",
        "empty_str": "",
        "bytes": b"\x00\xffab\n\\",
        "long_str": "x" * 300,
        "long_bytes": bytes(range(256)) * 2,
        "none": None,
        "true": True,
        "false": False,
        "tuple": (1, 2, 3),
        "tuple1": (1,),
        "tuple4": (1, 2, 3, 4),
        "empty_tuple": (),
        "list": [1, [2, [3, []]]],
        "nested": {"a": {"b": {"c": "d"}}},
        "intkeys": {1: "one", 2: "two", -3: "minus three"},
        "set": {1, 2, 3},
        "frozenset": frozenset({4, 5}),
        "shared": [shared, shared],
        "longlist": list(range(2500)),
        "bigdict": {f"k{i}": i for i in range(1500)},
    }


def tag(v):
    """The tagged JSON form the Rust test builds from `pickle::Value`."""
    if v is None:
        return {"none": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return {"int": v}
        n = (v.bit_length() + 8) // 8
        return {"bigint": v.to_bytes(n, "little", signed=True).hex()}
    if isinstance(v, float):
        return {"float_bits": int.from_bytes(__import__("struct").pack("<d", v), "little")}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, tuple):
        return {"tuple": [tag(x) for x in v]}
    if isinstance(v, list):
        return {"list": [tag(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": [[tag(k), tag(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        return {"set": [tag(x) for x in v]}
    raise TypeError(type(v))


def main():
    os.makedirs(OUT, exist_ok=True)
    obj = make_object()
    for protocol in range(0, 6):
        with open(os.path.join(OUT, f"plain_p{protocol}.pkl"), "wb") as f:
            f.write(pickle.dumps(obj, protocol=protocol))
    # BYTEARRAY8 exists only in protocol 5 (older protocols name builtins.bytearray).
    with open(os.path.join(OUT, "bytearray_p5.pkl"), "wb") as f:
        f.write(pickle.dumps(bytearray(b"\x01\x02"), protocol=5))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"python": sys.version.split()[0], "value": tag(obj)}, f, indent=None)
        f.write("\n")


if __name__ == "__main__":
    main()
