#!/usr/bin/env python3
"""Generate qload's GGUF test fixtures, deterministically.

Usage: gen_gguf_fixtures.py OUT_DIR

Run through `cargo xtask fixtures`, which sets up a virtual environment with the pins of
requirements-fixtures.txt. Every file is written from fixed seeds; running twice gives identical
bytes (`cargo xtask fixtures --check` verifies the committed copies).

Libraries:
- gguf-py (`gguf`) writes every container (GGUFWriter, with a subclass that can also write empty
  arrays) and quantizes the types it implements (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, TQ1_0, TQ2_0, MXFP4,
  BF16). Each of those is cross-checked byte for byte against libgguf.
- libgguf quantizes everything else (K-quants, IQ types, NVFP4, Q1_0); it is byte-identical to ggml's
  `ggml_quantize_chunk`.
- Sidecars `<file>.json` come from gguf-py's GGUFReader reading the written file back, cross-checked
  against an independent struct parser in this file. Files GGUFReader cannot read (BitNet type ids)
  get their sidecar from the struct parser, and say so.

Sidecar schema (`<file>.json`): file, size, sha256, reader, version, tensor_count, kv_count,
alignment, data_section_offset (absolute start of the tensor data), then
- metadata: list in file order of {key, type (GGUFValueType name), value} or, for arrays,
  {key, type: "ARRAY", element_type (name, or {"ARRAY": inner} when nested), length, and either
  value (length <= 16) or head/tail (first/last 3 items)};
- tensors: list in file order of {name, ggml_type (id), ggml_type_name, shape (ne0 first, as
  gguf-py reports it), n_elements, n_bytes, data_offset (absolute), relative_offset};
- tensor_notes (where present): per tensor, which library encoded it, the source distribution, and
  for block-quantized types ggml's own dequantization (libgguf): first 8 values and the sha256 of
  all values as little-endian f32; for BitNet I2_S tensors the scale and ternary digests;
- interpretation (BitNet / MXFP4 files): which meaning of a colliding type id applies.
bad/*.json describe the defect, the patched field, offset, old and new value, and whether gguf-py's
reader rejects the file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import gguf
import gguf.gguf_writer
import libgguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf import GGUFValueType as VT
from gguf import quants as ggufq

GGUF_PY = f"gguf-py {importlib.metadata.version('gguf')}"
LIBGGUF = f"libgguf {importlib.metadata.version('libgguf')}"
LONG_ARRAY = 16  # arrays longer than this are summarised as length + first/last 3 items

# Types gguf-py quantizes itself (verified equal to libgguf below).
GGUF_PY_QUANT = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.TQ1_0, T.TQ2_0, T.MXFP4, T.BF16}

# BitNet fork (microsoft/BitNet) type ids that collide with upstream ids.
BITNET_I2_S = 36
BITNET_TL2 = 39
BITNET_FTYPE_I2_S = 40


# --------------------------------------------------------------------------------------------
# helpers


def rng_for(label: str) -> np.random.Generator:
    """A generator seeded from a stable hash of `label`, so data does not depend on order."""
    return np.random.default_rng(zlib.crc32(label.encode("utf-8")))


def normal(label: str, shape: tuple[int, ...], std: float = 1.0, mean: float = 0.0) -> np.ndarray:
    return (rng_for(label).standard_normal(shape) * std + mean).astype(np.float32)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class Writer(gguf.GGUFWriter):
    """GGUFWriter that can also write empty arrays (gguf-py refuses them) when given a sub_type."""

    def _pack_val(self, val: Any, vtype: VT, add_vtype: bool, sub_type: VT | None = None) -> bytes:
        if vtype == VT.ARRAY and isinstance(val, (list, tuple)) and len(val) == 0:
            if sub_type is None:
                raise ValueError("an empty array needs an explicit element type")
            out = bytearray()
            if add_vtype:
                out += self._pack("I", vtype)
            out += self._pack("I", sub_type)
            out += self._pack("Q", 0)
            return bytes(out)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def write_out(w: gguf.GGUFWriter, path: Path | None = None) -> None:
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def encode(x: np.ndarray, qtype: T, imatrix: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Encode float rows `x` as `qtype`; returns (uint8 byte-shaped array, which library)."""
    if qtype in GGUF_PY_QUANT:
        out = ggufq.quantize(x, qtype)
        ref = libgguf.quantize_rows(x, qtype.value, imatrix)
        if out.tobytes() != ref.view(np.uint8).tobytes():
            raise AssertionError(f"gguf-py and libgguf disagree on {qtype.name}")
        return out, f"{GGUF_PY} quants.quantize (== {LIBGGUF})"
    out = libgguf.quantize_rows(x, qtype.value, imatrix)
    how = f"{LIBGGUF} quantize_rows"
    if imatrix is not None:
        how += " with imatrix"
    return out, how


# --------------------------------------------------------------------------------------------
# independent struct parser (used for cross-checks, BitNet sidecars and the broken files)

_SCALAR = {
    VT.UINT8: "<B",
    VT.INT8: "<b",
    VT.UINT16: "<H",
    VT.INT16: "<h",
    VT.UINT32: "<I",
    VT.INT32: "<i",
    VT.FLOAT32: "<f",
    VT.BOOL: "<?",
    VT.UINT64: "<Q",
    VT.INT64: "<q",
    VT.FLOAT64: "<d",
}


class Parsed:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0
        if buf[:4] != b"GGUF":
            raise ValueError("bad magic")
        self.pos = 4
        self.version = self.u32()
        self.tensor_count = self.u64()
        self.kv_count = self.u64()
        self.kvs: list[dict[str, Any]] = []
        for _ in range(self.kv_count):
            kv_off = self.pos
            key = self.string()
            vtype = VT(self.u32())
            value, elem = self.value(vtype)
            self.kvs.append({"key": key, "offset": kv_off, "type": vtype, "elem": elem, "value": value})
        self.alignment = 32
        for kv in self.kvs:
            if kv["key"] == "general.alignment":
                self.alignment = kv["value"]
        self.tensors: list[dict[str, Any]] = []
        for _ in range(self.tensor_count):
            t: dict[str, Any] = {"info_offset": self.pos}
            t["name"] = self.string()
            t["n_dims_offset"] = self.pos
            n_dims = self.u32()
            t["dims_offset"] = self.pos
            t["dims"] = [self.u64() for _ in range(n_dims)]
            t["type_offset"] = self.pos
            t["type"] = self.u32()
            t["offset_offset"] = self.pos
            t["offset"] = self.u64()
            self.tensors.append(t)
        self.infos_end = self.pos
        self.data_offset = -(-self.pos // self.alignment) * self.alignment

    def take(self, fmt: str) -> Any:
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def u32(self) -> int:
        return self.take("<I")

    def u64(self) -> int:
        return self.take("<Q")

    def string(self) -> str:
        n = self.u64()
        s = self.buf[self.pos : self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype: VT) -> tuple[Any, Any]:
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype]), None
        if vtype == VT.STRING:
            return self.string(), None
        if vtype == VT.ARRAY:
            etype = VT(self.u32())
            n = self.u64()
            items = []
            inner = None
            for _ in range(n):
                v, inner = self.value(etype)
                items.append(v)
            return items, (etype, inner)
        raise ValueError(f"unknown value type {vtype}")


def elem_type_json(elem: Any) -> Any:
    """The element type of an array as JSON: a name, or for nested arrays {"ARRAY": inner}."""
    if elem is None:
        return None
    etype, inner = elem
    if etype == VT.ARRAY:
        return {"ARRAY": elem_type_json(inner)}
    return etype.name


def summarise(items: list[Any]) -> dict[str, Any]:
    if len(items) > LONG_ARRAY:
        return {"length": len(items), "head": items[:3], "tail": items[-3:]}
    return {"length": len(items), "value": items}


# --------------------------------------------------------------------------------------------
# sidecars


def nbytes_upstream(ggml_type: int, dims: list[int]) -> int:
    block, size = gguf.GGML_QUANT_SIZES[T(ggml_type)]
    n = math.prod(dims)
    return n // block * size


def tensor_rows_json(p: Parsed, nbytes_fn, names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for t in p.tensors:
        ty = t["type"]
        if names and ty in names:
            tname = names[ty]
        else:
            tname = T(ty).name
        rows.append(
            {
                "name": t["name"],
                "ggml_type": ty,
                "ggml_type_name": tname,
                "shape": t["dims"],
                "n_elements": math.prod(t["dims"]),
                "n_bytes": nbytes_fn(t),
                "data_offset": p.data_offset + t["offset"],
                "relative_offset": t["offset"],
            }
        )
    return rows


def metadata_json_from_parser(p: Parsed) -> list[dict[str, Any]]:
    out = []
    for kv in p.kvs:
        e: dict[str, Any] = {"key": kv["key"], "type": kv["type"].name}
        if kv["type"] == VT.ARRAY:
            e["element_type"] = elem_type_json(kv["elem"])
            e.update(summarise(kv["value"]))
        else:
            e["value"] = kv["value"]
        out.append(e)
    return out


def sidecar_from_reader(path: Path, p: Parsed) -> dict[str, Any]:
    """Describe `path` as gguf-py's GGUFReader sees it; cross-check with the struct parser."""
    r = GGUFReader(path)
    meta = []
    own = {kv["key"]: kv for kv in p.kvs}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv = own[name]
        types = [t for t in f.types]
        assert types[0] == kv["type"], name
        e: dict[str, Any] = {"key": name, "type": types[0].name}
        if types[0] == VT.ARRAY:
            e["element_type"] = elem_type_json(kv["elem"])
            length = int(f.parts[4][0])
            assert length == len(kv["value"]), name
            nested = len(types) > 1 and types[1] == VT.ARRAY
            if nested:
                # GGUFReader flattens nested arrays; the structured value comes from the struct parser.
                e.update(summarise(kv["value"]))
                e["value_source"] = "struct parser (GGUFReader flattens nested arrays)"
            elif length > LONG_ARRAY:
                head, tail = f.contents(slice(0, 3)), f.contents(slice(length - 3, length))
                assert head == kv["value"][:3] and tail == kv["value"][-3:], name
                e.update({"length": length, "head": head, "tail": tail})
            else:
                v = f.contents()
                assert v == kv["value"], name
                e.update({"length": length, "value": v})
        else:
            v = f.contents()
            assert v == kv["value"], (name, v, kv["value"])
            e["value"] = v
        meta.append(e)
    assert [m["key"] for m in meta] == [kv["key"] for kv in p.kvs]

    tensors = []
    for t, o in zip(r.tensors, tensor_rows_json(p, lambda t: nbytes_upstream(t["type"], t["dims"]))):
        row = {
            "name": t.name,
            "ggml_type": int(t.tensor_type.value),
            "ggml_type_name": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "relative_offset": int(t.data_offset) - int(r.data_offset),
        }
        assert row == o, (row, o)
        tensors.append(row)
    assert len(tensors) == p.tensor_count
    assert int(r.data_offset) == p.data_offset and int(r.alignment) == p.alignment
    return {
        "reader": f"{GGUF_PY} GGUFReader (cross-checked with a struct parser)",
        "version": p.version,
        "tensor_count": p.tensor_count,
        "kv_count": p.kv_count,
        "alignment": p.alignment,
        "data_section_offset": p.data_offset,
        "metadata": meta,
        "tensors": tensors,
    }


def sidecar_from_parser(p: Parsed, nbytes_fn, why: str, names: dict[int, str]) -> dict[str, Any]:
    return {
        "reader": f"struct parser in gen_gguf_fixtures.py ({why})",
        "version": p.version,
        "tensor_count": p.tensor_count,
        "kv_count": p.kv_count,
        "alignment": p.alignment,
        "data_section_offset": p.data_offset,
        "metadata": metadata_json_from_parser(p),
        "tensors": tensor_rows_json(p, nbytes_fn, names),
    }


def write_sidecar(path: Path, body: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    data = path.read_bytes()
    doc: dict[str, Any] = {"file": path.name, "size": len(data), "sha256": sha256_bytes(data)}
    doc.update(body)
    if extra:
        doc.update(extra)
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    path.with_name(path.name + ".json").write_text(text, encoding="utf-8")


def standard_sidecar(path: Path, extra: dict[str, Any] | None = None) -> None:
    p = Parsed(path.read_bytes())
    write_sidecar(path, sidecar_from_reader(path, p), extra)


def dequant_summary(raw: np.ndarray, qtype: T, n_per_row: int) -> dict[str, Any]:
    """ggml's own dequantization (libgguf) of the stored bytes: first 8 values and a digest."""
    y = libgguf.dequantize_rows(raw, qtype.value, n_per_row).astype(np.float32)
    return {
        "dequant_by": f"{LIBGGUF} dequantize_rows (ggml reference)",
        "dequant_head": [float(v) for v in y.reshape(-1)[:8]],
        "dequant_f32le_sha256": sha256_bytes(y.astype("<f4").tobytes()),
    }


# --------------------------------------------------------------------------------------------
# all_types_v3 / all_types_v2


QUANT_TYPES_256 = [
    T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
    T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
    T.IQ2_XXS, T.IQ2_XS, T.IQ3_XXS, T.IQ1_S, T.IQ4_NL, T.IQ3_S, T.IQ2_S, T.IQ4_XS, T.IQ1_M,
    T.TQ1_0, T.TQ2_0, T.MXFP4, T.NVFP4, T.Q1_0,
]  # fmt: skip
QUANT_TYPES_96 = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL, T.MXFP4]


def add_all_value_types(w: Writer) -> None:
    w.add_uint8("test.u8", 255)
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_int16("test.i16", -32768)
    w.add_uint32("test.u32", 4294967295)
    w.add_int32("test.i32", -2147483648)
    w.add_float32("test.f32", 3.14159265)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo wörld ✓ — GGUF")
    w.add_key_value("test.string_empty", "", VT.STRING)
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**63))
    w.add_float64("test.f64", math.pi)
    w.add_key_value("test.array_u8", [0, 1, 2, 254, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("test.array_i32", [-3, -2, -1, 0, 1, 2, 3], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("test.array_u64", [0, 2**40, 2**64 - 1], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("test.array_f32", [0.5, -1.25, 1e-3], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("test.array_f64", [0.1, -2.5e300], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_key_value("test.array_bool", [True, False, True], VT.ARRAY, sub_type=VT.BOOL)
    w.add_key_value("test.array_string", ["alpha", "", "ünïcödé", "last"], VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("test.array_long_i32", list(range(1000)), VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("test.array_nested_i32", [[1, 2, 3], [4], [5, 6]], VT.ARRAY, sub_type=VT.ARRAY)
    w.add_key_value("test.array_nested_string", [["a", "bc"], ["def"]], VT.ARRAY, sub_type=VT.ARRAY)
    w.add_key_value("test.array_empty_i32", [], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("test.array_empty_string", [], VT.ARRAY, sub_type=VT.STRING)


def build_all_types(path: Path) -> dict[str, Any]:
    w = Writer(path, "qload-test")
    w.add_name("all ggml types")
    add_all_value_types(w)
    notes: dict[str, Any] = {}

    def put(name: str, raw: np.ndarray, qtype: T | None, how: str, src: str, extra=None) -> None:
        if qtype is None:
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_dtype=qtype)
        n = {"encoded_by": how, "source": src}
        if extra:
            n.update(extra)
        notes[name] = n

    label = "all_types"
    x = normal(f"{label}/f32", (4, 256))
    put("t.f32", x, None, "numpy float32", "normal(0,1)")
    put("t.f32_1d", normal(f"{label}/f32_1d", (7,)), None, "numpy float32", "normal(0,1)")
    put("t.f32_3d", normal(f"{label}/f32_3d", (2, 3, 8)), None, "numpy float32", "normal(0,1)")
    put("t.f16", normal(f"{label}/f16", (4, 256)).astype(np.float16), None, "numpy float16", "normal(0,1)")
    put("t.f16_4d", normal(f"{label}/f16_4d", (2, 2, 2, 4)).astype(np.float16), None, "numpy float16",
        "normal(0,1)")  # fmt: skip
    bf, how = encode(normal(f"{label}/bf16", (4, 256)), T.BF16)
    put("t.bf16", bf, T.BF16, how, "normal(0,1)")
    put("t.f64", normal(f"{label}/f64", (4, 256)).astype(np.float64), None, "numpy float64", "normal(0,1)")
    for dt, nm in ((np.int8, "i8"), (np.int16, "i16"), (np.int32, "i32"), (np.int64, "i64")):
        info = np.iinfo(dt)
        v = rng_for(f"{label}/{nm}").integers(info.min, info.max, size=(4, 256), dtype=dt, endpoint=True)
        put(f"t.{nm}", v, None, f"numpy {np.dtype(dt).name}", "uniform over the full range")

    for shape, types in (((4, 256), QUANT_TYPES_256), ((3, 96), QUANT_TYPES_96)):
        for qt in types:
            suffix = "" if shape == (4, 256) else "_96"
            name = f"t.{qt.name.lower()}{suffix}"
            x = normal(f"{label}/{name}", shape)
            imatrix = None
            extra: dict[str, Any] = {}
            if libgguf.quantize_requires_imatrix(qt.value):
                imatrix = rng_for(f"{label}/{name}/imatrix").uniform(0.5, 1.5, shape[1]).astype(np.float32)
                extra["imatrix"] = "uniform(0.5,1.5) per column, fixed seed (ggml requires one)"
            raw, how = encode(x, qt, imatrix)
            extra.update(dequant_summary(raw, qt, shape[1]))
            put(name, raw, qt, how, "normal(0,1)", extra)

    write_out(w)
    return notes


def build_v2(v3_notes: dict[str, Any], path: Path) -> None:
    # gguf-py writes the version from the module constant gguf_writer.GGUF_VERSION; v2 and v3 have
    # the same layout, so the same content written with the constant set to 2 is a genuine v2 file.
    saved = gguf.gguf_writer.GGUF_VERSION
    gguf.gguf_writer.GGUF_VERSION = 2
    try:
        build_all_types(path)
    finally:
        gguf.gguf_writer.GGUF_VERSION = saved


# --------------------------------------------------------------------------------------------
# minimal / align64 / broken files


def build_minimal(path: Path, alignment: int | None = None) -> None:
    w = Writer(path, "qload-test")
    w.add_name(path.stem)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint32("test.answer", 42)
    label = path.stem
    w.add_tensor("a", normal(f"{label}/a", (4, 8)))  # 128 bytes
    q, _ = encode(normal(f"{label}/b", (2, 64)), T.Q8_0)
    w.add_tensor("b", q, raw_dtype=T.Q8_0)  # 136 bytes
    w.add_tensor("c", normal(f"{label}/c", (7,)).astype(np.float16))  # 14 bytes
    if alignment is not None:
        q4, _ = encode(normal(f"{label}/d", (1, 256)), T.Q4_K)
        w.add_tensor("d", q4, raw_dtype=T.Q4_K)  # 144 bytes
        w.add_tensor("e", normal(f"{label}/e", (3, 5)))  # 60 bytes
    write_out(w)


def put_u32(b: bytearray, off: int, v: int) -> None:
    struct.pack_into("<I", b, off, v)


def put_u64(b: bytearray, off: int, v: int) -> None:
    struct.pack_into("<Q", b, off, v)


def build_bad(good: Path, bad_dir: Path) -> None:
    src = good.read_bytes()
    p = Parsed(src)
    a, b, c = p.tensors
    nb = {t["name"]: nbytes_upstream(t["type"], t["dims"]) for t in p.tensors}
    out: dict[str, tuple[bytes, dict[str, Any]]] = {}

    cut = p.data_offset + b["offset"] + nb["b"] // 2
    out["truncated.gguf"] = (src[:cut], {"defect": "file cut in the middle of tensor b's data",
                                         "patch": {"truncate_to": cut}})  # fmt: skip

    buf = bytearray(src)
    new = b["offset"] + 8
    assert new % p.alignment != 0 and new + nb["b"] <= c["offset"]
    put_u64(buf, b["offset_offset"], new)
    out["misaligned.gguf"] = (bytes(buf), {
        "defect": "tensor b's offset is not a multiple of the alignment (data still in bounds, no overlap)",
        "patch": {"field": "tensor b offset", "at": b["offset_offset"], "old": b["offset"], "new": new}})  # fmt: skip

    buf = bytearray(src)
    assert c["offset"] != b["offset"] and b["offset"] % p.alignment == 0
    put_u64(buf, c["offset_offset"], b["offset"])
    out["overlap.gguf"] = (bytes(buf), {
        "defect": "tensor c's offset equals tensor b's: c's bytes lie inside b's (both aligned, in bounds)",
        "patch": {"field": "tensor c offset", "at": c["offset_offset"], "old": c["offset"], "new": b["offset"]}})  # fmt: skip

    buf = bytearray(src)
    put_u32(buf, a["type_offset"], 200)
    out["bad_type.gguf"] = (bytes(buf), {
        "defect": "tensor a has ggml type id 200",
        "patch": {"field": "tensor a type", "at": a["type_offset"], "old": a["type"], "new": 200}})  # fmt: skip

    # n_dims = 5: splice three extra dims of 1 into tensor a's info (element count unchanged) and
    # re-pad the data section, so that the 5 dims are the only defect.
    infos = bytearray(src[: p.infos_end])
    put_u32(infos, a["n_dims_offset"], 5)
    ins = a["type_offset"]
    infos[ins:ins] = struct.pack("<QQQ", 1, 1, 1)
    pad = (-len(infos)) % p.alignment
    five = bytes(infos) + b"\0" * pad + src[p.data_offset :]
    out["dims5.gguf"] = (five, {
        "defect": "tensor a has n_dims = 5 (dims [8, 4, 1, 1, 1]); file otherwise consistent",
        "patch": {"field": "tensor a n_dims", "at": a["n_dims_offset"], "old": len(a["dims"]), "new": 5,
                  "inserted_dims_at": ins, "data_section_offset": len(infos) + pad}})  # fmt: skip

    buf = bytearray(src)
    put_u64(buf, 8, 2**40)
    out["huge_count.gguf"] = (bytes(buf), {
        "defect": "tensor_count = 2^40",
        "patch": {"field": "header tensor_count", "at": 8, "old": p.tensor_count, "new": 2**40}})  # fmt: skip

    buf = bytearray(src)
    key_len_at = p.kvs[0]["offset"]
    old_len = struct.unpack_from("<Q", src, key_len_at)[0]
    put_u64(buf, key_len_at, 2**60)
    out["huge_string.gguf"] = (bytes(buf), {
        "defect": "the first metadata key's string length is 2^60",
        "patch": {"field": "kv[0] key length", "at": key_len_at, "old": old_len, "new": 2**60}})  # fmt: skip

    buf = bytearray(src)
    buf[0:4] = b"FUGG"
    out["bad_magic.gguf"] = (bytes(buf), {
        "defect": "magic is b'FUGG' (byte-reversed GGUF)",
        "patch": {"field": "magic", "at": 0, "old": "GGUF", "new": "FUGG"}})  # fmt: skip

    bad_dir.mkdir(parents=True, exist_ok=True)
    for name, (data, desc) in out.items():
        path = bad_dir / name
        path.write_bytes(data)
        try:
            GGUFReader(path)
            verdict = "accepts it"
        except Exception as e:  # noqa: BLE001 - recording what the reference does
            verdict = f"rejects it: {type(e).__name__}"
        doc = {
            "file": name,
            "size": len(data),
            "sha256": sha256_bytes(data),
            "derived_from": good.name,
            "derived_from_sha256": sha256_bytes(src),
            "expect": "a reader must reject this file with an error (no panic, no huge allocation)",
            **desc,
            "gguf_py_reader": verdict,
        }
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        (bad_dir / (name + ".json")).write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# tiny llama (the README sample model)

WORDS = (
    "the of and to in is was for on that with as by at from it be this are or an which his her "
    "not but have had were they one all their has been more new first time can who we you out up "
    "so about model weight layer token quant block tensor load file data byte row scale"
).split()


def llama_vocab(n: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, then pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces: list[str] = []
    seen = set(tokens)
    for wd in WORDS:
        for p in ("▁" + wd, wd):
            if p not in seen:
                pieces.append(p)
                seen.add(p)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c1 in letters:
        for c2 in letters:
            for p in (c1 + c2, "▁" + c1 + c2):
                if p not in seen:
                    pieces.append(p)
                    seen.add(p)
    need = n - len(tokens)
    tokens += pieces[:need]
    types += [1] * need
    scores = [0.0] * 259 + [float(-i) for i in range(need)]
    assert len(tokens) == n and len(set(tokens)) == n
    return tokens, scores, types


def add_llama_tokenizer(w: Writer, n_vocab: int) -> None:
    tokens, scores, types = llama_vocab(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)


def q4_k_m_type(name: str, ne0: int, layer: int | None, n_layer: int) -> T:
    """llama.cpp's Q4_K_M choice for a 2-D weight, including the fallback for short rows."""

    def use_more_bits(i: int) -> bool:
        return i < n_layer // 8 or i >= 7 * n_layer // 8 or (i - n_layer // 8) % 3 == 2

    if name == "output.weight":
        t = T.Q6_K
    elif name.endswith("attn_v.weight") or name.endswith("ffn_down.weight"):
        t = T.Q6_K if layer is not None and use_more_bits(layer) else T.Q4_K
    else:
        t = T.Q4_K
    if ne0 % 256 != 0:  # llama_tensor_get_type's fallback for rows that cannot hold K blocks
        t = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}[t]
        if ne0 % 32 != 0:
            t = T.F16
    return t


def build_tiny_llama_f16(path: Path) -> None:
    """An unquantized (f16) sibling of the sample, for quantize-on-load demos and tests:
    every row length a multiple of 256, so K-quants apply without fallbacks."""
    n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv = 512, 256, 512, 2, 4, 2
    head_dim = n_embd // n_head
    w = Writer(path, "llama")
    w.add_type("model")
    w.add_name("Tiny Llama F16")
    w.add_basename("tiny-llama-f16")
    w.add_license("mit")
    w.add_description("qload sample model: random f16 weights for quantize-on-load")
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    add_llama_tokenizer(w, n_vocab)
    label = "tiny-llama-f16"

    def weight(name: str, ne0: int, ne1: int) -> None:
        w.add_tensor(name, normal(f"{label}/{name}", (ne1, ne0), std=0.02).astype(np.float16))

    def norm(name: str) -> None:
        w.add_tensor(name, normal(f"{label}/{name}", (n_embd,), std=0.05, mean=1.0))

    weight("token_embd.weight", n_embd, n_vocab)
    for i in range(n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        weight(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        weight(f"blk.{i}.attn_k.weight", n_embd, head_dim * n_head_kv)
        weight(f"blk.{i}.attn_v.weight", n_embd, head_dim * n_head_kv)
        weight(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        norm(f"blk.{i}.ffn_norm.weight")
        weight(f"blk.{i}.ffn_gate.weight", n_embd, n_ff)
        weight(f"blk.{i}.ffn_up.weight", n_embd, n_ff)
        weight(f"blk.{i}.ffn_down.weight", n_ff, n_embd)
    norm("output_norm.weight")
    weight("output.weight", n_embd, n_vocab)
    write_out(w)


def tiny_llama_f16_weights() -> list[tuple[str, np.ndarray]]:
    """The 2-D weights of tiny-llama-f16.gguf that a matmul reads (what llama-imatrix
    collects statistics for: everything but the token embedding), as f32 rows."""
    n_embd, n_ff, n_layer, n_head, n_head_kv = 256, 512, 2, 4, 2
    head_dim = n_embd // n_head
    shapes = []
    for i in range(n_layer):
        shapes += [(f"blk.{i}.attn_q.weight", n_embd, n_embd),
                   (f"blk.{i}.attn_k.weight", n_embd, head_dim * n_head_kv),
                   (f"blk.{i}.attn_v.weight", n_embd, head_dim * n_head_kv),
                   (f"blk.{i}.attn_output.weight", n_embd, n_embd),
                   (f"blk.{i}.ffn_gate.weight", n_embd, n_ff),
                   (f"blk.{i}.ffn_up.weight", n_embd, n_ff),
                   (f"blk.{i}.ffn_down.weight", n_ff, n_embd)]
    shapes.append(("output.weight", n_embd, 512))
    return [(name, normal(f"tiny-llama-f16/{name}", (ne1, ne0), std=0.02).astype(np.float16).astype(np.float32))
            for name, ne0, ne1 in shapes]


def build_imatrix(out: Path) -> dict[str, Any]:
    """An importance matrix for tiny-llama-f16.gguf in both of llama.cpp's formats, and
    what ggml's quantizer makes of the model's blk.* weights with it.

    - tiny-llama-f16.imatrix.gguf: llama-imatrix's GGUF layout: general.type "imatrix",
      imatrix.datasets / chunk_count / chunk_size, and per weight `<name>.in_sum2` (f32,
      ne = [ne0, n_mat]) and `<name>.counts` (f32, ne = [1, n_mat]); llama-quantize uses
      in_sum2 / counts.
    - tiny-llama-f16.imatrix.dat: the legacy binary layout: i32 entry count; per entry i32
      name length, name, i32 ncall, i32 nval, nval f32 sums; then i32 last call, i32
      dataset-name length, dataset name; llama-quantize uses sums / ncall.
    - tiny-llama-f16-q4_k-imatrix.gguf: every blk.* weight quantized to Q4_K by libgguf's
      ggml (quantize_rows with the importance matrix in_sum2 / counts).
    """
    chunks, chunk_size = 4, 512
    count = float(chunks * chunk_size)
    w = Writer(out / "tiny-llama-f16.imatrix.gguf", "")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["qload-fixture.txt"])
    w.add_uint32("imatrix.chunk_count", chunks)
    w.add_uint32("imatrix.chunk_size", chunk_size)
    legacy = bytearray()
    entries = tiny_llama_f16_weights()
    legacy += struct.pack("<i", len(entries))
    values = {}
    for name, x in entries:
        ne0 = x.shape[1]
        # Mean squared activations: positive, spread over two orders of magnitude.
        v = np.exp(normal(f"imatrix/{name}", (ne0,), std=1.2)).astype(np.float32)
        sums = (v * np.float32(count)).astype(np.float32)
        values[name] = sums / np.float32(count)
        w.add_tensor(f"{name}.in_sum2", sums.reshape(1, ne0))
        w.add_tensor(f"{name}.counts", np.full((1, 1), count, dtype=np.float32))
        nb = name.encode()
        legacy += struct.pack("<i", len(nb)) + nb + struct.pack("<ii", chunks, ne0)
        # The legacy file stores sums over `ncall` calls: values = sums / ncall.
        legacy += (values[name] * np.float32(chunks)).astype("<f4").tobytes()
    legacy += struct.pack("<i", chunks)
    ds = b"qload-fixture.txt"
    legacy += struct.pack("<i", len(ds)) + ds
    write_out(w)
    (out / "tiny-llama-f16.imatrix.dat").write_bytes(bytes(legacy))

    q = Writer(out / "tiny-llama-f16-q4_k-imatrix.gguf", "llama")
    q.add_description("blk.* weights of tiny-llama-f16.gguf quantized to Q4_K by ggml with tiny-llama-f16.imatrix.gguf")
    for name, x in entries:
        if not name.startswith("blk."):
            continue
        raw, _ = encode(x, T.Q4_K, values[name])
        q.add_tensor(name, raw, raw_dtype=T.Q4_K)
    write_out(q)
    return {"imatrix": "in_sum2 / counts (GGUF) = sums / ncall (legacy) = exp(N(0, 1.2)) per column",
            "quantized_with": LIBGGUF}


def build_tiny_llama(path: Path) -> dict[str, Any]:
    n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv = 512, 256, 672, 2, 4, 2
    head_dim = n_embd // n_head
    w = Writer(path, "llama")
    w.add_type("model")
    w.add_name("Tiny Llama Mixed")
    w.add_basename("tiny-llama-mixed")
    w.add_size_label("1.7M")
    w.add_license("mit")
    w.add_description("qload sample model: random weights quantized like llama.cpp's Q4_K_M")
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q4_K_M))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_llama_tokenizer(w, n_vocab)

    notes: dict[str, Any] = {}
    label = "tiny-llama"

    def weight(name: str, ne0: int, ne1: int, layer: int | None) -> None:
        x = normal(f"{label}/{name}", (ne1, ne0), std=0.02)
        qt = q4_k_m_type(name, ne0, layer, n_layer)
        if qt == T.F16:
            w.add_tensor(name, x.astype(np.float16))
            notes[name] = {"encoded_by": "numpy float16", "source": "normal(0,0.02)"}
            return
        raw, how = encode(x, qt)
        w.add_tensor(name, raw, raw_dtype=qt)
        notes[name] = {"encoded_by": how, "source": "normal(0,0.02)", **dequant_summary(raw, qt, ne0)}

    def norm(name: str) -> None:
        w.add_tensor(name, normal(f"{label}/{name}", (n_embd,), std=0.05, mean=1.0))
        notes[name] = {"encoded_by": "numpy float32", "source": "normal(1,0.05)"}

    weight("token_embd.weight", n_embd, n_vocab, None)
    for i in range(n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        weight(f"blk.{i}.attn_q.weight", n_embd, n_embd, i)
        weight(f"blk.{i}.attn_k.weight", n_embd, head_dim * n_head_kv, i)
        weight(f"blk.{i}.attn_v.weight", n_embd, head_dim * n_head_kv, i)
        weight(f"blk.{i}.attn_output.weight", n_embd, n_embd, i)
        norm(f"blk.{i}.ffn_norm.weight")
        weight(f"blk.{i}.ffn_gate.weight", n_embd, n_ff, i)
        weight(f"blk.{i}.ffn_up.weight", n_embd, n_ff, i)
        weight(f"blk.{i}.ffn_down.weight", n_ff, n_embd, i)
    norm("output_norm.weight")
    weight("output.weight", n_embd, n_vocab, None)
    write_out(w)
    return notes


# --------------------------------------------------------------------------------------------
# vocab262k


def short_token(i: int) -> str:
    """Bijective base-94 over printable ASCII: unique, 1-3 characters for 262,144 ids."""
    alphabet = [chr(c) for c in range(33, 127)]
    s = ""
    i += 1
    while i > 0:
        i -= 1
        s = alphabet[i % 94] + s
        i //= 94
    return s


def build_vocab(path: Path) -> None:
    n = 262144
    tokens = [short_token(i) for i in range(n)]
    scores = np.round(-np.arange(n, dtype=np.float64) / 16.0, 4).astype(np.float32).tolist()
    types = [3 if i < 3 else 1 for i in range(n)]
    merges = [f"{tokens[i]} {tokens[(i * 7 + 3) % 94]}" for i in range(94, 94 + 3000)]
    w = Writer(path, "llama")
    w.add_name("vocab262k")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_key_value(gguf.Keys.Tokenizer.SCORES, scores, VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value(gguf.Keys.Tokenizer.TOKEN_TYPE, types, VT.ARRAY, sub_type=VT.INT32)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_tensor("tiny.weight", normal("vocab262k/tiny", (4,)))
    write_out(w)


# --------------------------------------------------------------------------------------------
# split model


def build_split(out: Path) -> list[Path]:
    n_vocab, n_embd, n_ff = 300, 64, 128
    w = Writer(out / "split.gguf", "llama", split_max_tensors=5)
    w.add_name("Tiny Llama Split")
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_llama_tokenizer(w, n_vocab)
    label = "split"

    def q8(name: str, ne0: int, ne1: int) -> None:
        raw, _ = encode(normal(f"{label}/{name}", (ne1, ne0), std=0.02), T.Q8_0)
        w.add_tensor(name, raw, raw_dtype=T.Q8_0)

    def norm(name: str) -> None:
        w.add_tensor(name, normal(f"{label}/{name}", (n_embd,), std=0.05, mean=1.0))

    q8("token_embd.weight", n_embd, n_vocab)
    norm("blk.0.attn_norm.weight")
    for nm in ("attn_q", "attn_k", "attn_v", "attn_output"):
        q8(f"blk.0.{nm}.weight", n_embd, n_embd)
    norm("blk.0.ffn_norm.weight")
    q8("blk.0.ffn_gate.weight", n_embd, n_ff)
    q8("blk.0.ffn_up.weight", n_embd, n_ff)
    q8("blk.0.ffn_down.weight", n_ff, n_embd)
    norm("output_norm.weight")
    q8("output.weight", n_embd, n_vocab)
    write_out(w)
    parts = [out / f"split-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert all(p.exists() for p in parts)
    return parts


# --------------------------------------------------------------------------------------------
# BitNet fork files (type ids 36 / 39 in the fork's meaning)


def ternarize(w: np.ndarray) -> tuple[np.ndarray, float]:
    """BitNet b1.58 absmean: s = 1/max(mean|W|, 1e-5); Wq = clamp(round(W*s), -1, 1); scale = 1/s."""
    s = np.float32(1.0) / np.maximum(np.mean(np.abs(w), dtype=np.float32), np.float32(1e-5))
    q = np.clip(np.round(w * s), -1, 1).astype(np.int8)
    return q, float(np.float32(1.0) / s)


def pack_i2_s(q: np.ndarray, scale: float) -> bytes:
    """x86 I2_S: blocks of 128 -> 32 bytes, byte b = e[b]<<6 | e[b+32]<<4 | e[b+64]<<2 | e[b+96],
    codes q+1 (-1->0, 0->1, +1->2); then the f32 scale, zero-padded to 32 bytes."""
    codes = (q.reshape(-1, 4, 32).astype(np.uint8) + 1).astype(np.uint8)
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    tail = struct.pack("<f", scale) + b"\0" * 28
    return packed.astype(np.uint8).tobytes() + tail


def bitnet_nbytes(t: dict[str, Any]) -> int:
    n = math.prod(t["dims"])
    if t["type"] == BITNET_I2_S:
        return n // 4 + 32
    if t["type"] == BITNET_TL2:
        return tl2_nbytes(t["dims"][0], t["dims"][1])
    return nbytes_upstream(t["type"], t["dims"])


def tl2_nbytes(ne0: int, ne1: int) -> int:
    """bitnet.cpp's ggml_nbytes for TL2 (C integer arithmetic, left to right)."""
    n = (ne0 - 256) * ne1 // 3 * 5 // 8 + 256 * ne1 // 2 * 4 // 8
    return -(-n // 32) * 32 + 32


def add_bitnet_hparams(w: Writer, arch: str, n_embd: int, n_ff: int, n_vocab: int, ftype: int) -> None:
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_llama_tokenizer(w, n_vocab)


def build_bitnet_i2s(path: Path) -> dict[str, Any]:
    arch, n_embd, n_ff, n_vocab = "bitnet-b1.58", 256, 512, 300
    w = Writer(path, arch)
    w.add_name("Tiny BitNet b1.58 I2_S")
    add_bitnet_hparams(w, arch, n_embd, n_ff, n_vocab, BITNET_FTYPE_I2_S)
    label = "bitnet-i2s"
    notes: dict[str, Any] = {}

    def norm(name: str) -> None:
        w.add_tensor(name, normal(f"{label}/{name}", (n_embd if "ffn_sub" not in name else n_ff,),
                                  std=0.05, mean=1.0))  # fmt: skip
        notes[name] = {"type": "F32 (upstream meaning)"}

    def i2s(name: str, ne0: int, ne1: int) -> None:
        q, scale = ternarize(normal(f"{label}/{name}", (ne1, ne0), std=0.02))
        data = pack_i2_s(q, scale)
        assert len(data) == q.size // 4 + 32
        # Passing a plain int id and an int8 view makes GGUFWriter store the bytes as they are.
        w.add_tensor(name, np.frombuffer(data, dtype=np.int8), raw_shape=(ne1, ne0), raw_dtype=BITNET_I2_S)
        counts = {str(v): int(np.sum(q == v)) for v in (-1, 0, 1)}
        notes[name] = {
            "type": "I2_S (BitNet fork id 36)",
            "scale": scale,
            "ternary_head": q.reshape(-1)[:16].tolist(),
            "ternary_counts": counts,
            "ternary_i8_sha256": sha256_bytes(q.tobytes()),
        }

    emb = normal(f"{label}/token_embd.weight", (n_vocab, n_embd), std=0.02).astype(np.float16)
    w.add_tensor("token_embd.weight", emb)
    notes["token_embd.weight"] = {"type": "F16 (upstream meaning)"}
    norm("blk.0.attn_norm.weight")
    i2s("blk.0.attn_q.weight", n_embd, n_embd)
    i2s("blk.0.attn_k.weight", n_embd, n_embd // 2)
    i2s("blk.0.attn_v.weight", n_embd, n_embd // 2)
    norm("blk.0.attn_sub_norm.weight")
    i2s("blk.0.attn_output.weight", n_embd, n_embd)
    norm("blk.0.ffn_norm.weight")
    i2s("blk.0.ffn_gate.weight", n_embd, n_ff)
    i2s("blk.0.ffn_up.weight", n_embd, n_ff)
    norm("blk.0.ffn_sub_norm.weight")
    i2s("blk.0.ffn_down.weight", n_ff, n_embd)
    norm("output_norm.weight")
    write_out(w)
    return notes


def build_bitnet_tl2(path: Path) -> dict[str, Any]:
    arch, n_embd, n_vocab = "bitnet-b1.58", 1024, 300
    w = Writer(path, arch)
    w.add_name("Tiny BitNet b1.58 TL2 (id 39)")
    add_bitnet_hparams(w, arch, n_embd, 1024, n_vocab, 39)
    label = "bitnet-tl2"
    ne0, ne1 = 1024, 256
    nb = tl2_nbytes(ne0, ne1)
    filler = rng_for(f"{label}/blk.0.attn_q.weight").integers(0, 256, nb, dtype=np.uint8)
    w.add_tensor("output_norm.weight", normal(f"{label}/output_norm.weight", (n_embd,), std=0.05, mean=1.0))
    w.add_tensor("blk.0.attn_q.weight", filler.view(np.int8), raw_shape=(ne1, ne0), raw_dtype=BITNET_TL2)
    write_out(w)
    mx = nbytes_upstream(int(T.MXFP4), [ne0, ne1])
    return {
        "blk.0.attn_q.weight": {
            "type": "TL2 (BitNet fork id 39), NOT upstream MXFP4",
            "payload": "opaque deterministic random bytes (a container/type-disambiguation fixture, not a "
            "real TL2 encoding)",
            "n_bytes_as_tl2": nb,
            "n_bytes_as_mxfp4": mx,
            "tl2_size_rule": "n = (ne0-256)*ne1/3*5/8 + 256*ne1/2*4/8 (C integer arithmetic), rounded up "
            "to 32, then + 32",
        }
    }


# --------------------------------------------------------------------------------------------
# upstream MXFP4 (id 39 in its upstream meaning)


def build_mxfp4_upstream(path: Path) -> dict[str, Any]:
    n_embd, n_ff, n_expert, n_vocab = 256, 128, 2, 300
    w = Writer(path, "gpt-oss")
    w.add_name("Tiny MXFP4 MoE (upstream id 39)")
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(1)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_MXFP4_MOE))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_llama_tokenizer(w, n_vocab)
    label = "mxfp4-upstream"
    notes: dict[str, Any] = {}
    raw, how = encode(normal(f"{label}/token_embd.weight", (n_vocab, n_embd), std=0.02), T.Q8_0)
    w.add_tensor("token_embd.weight", raw, raw_dtype=T.Q8_0)
    notes["token_embd.weight"] = {"encoded_by": how, **dequant_summary(raw, T.Q8_0, n_embd)}
    for nm, ne0, ne1 in (("ffn_gate_exps", n_embd, n_ff), ("ffn_up_exps", n_embd, n_ff),
                         ("ffn_down_exps", n_ff, n_embd)):  # fmt: skip
        name = f"blk.0.{nm}.weight"
        x = normal(f"{label}/{name}", (n_expert, ne1, ne0), std=0.02)
        raw, how = encode(x, T.MXFP4)
        w.add_tensor(name, raw, raw_dtype=T.MXFP4)
        notes[name] = {"encoded_by": how, **dequant_summary(raw.reshape(-1, raw.shape[-1]), T.MXFP4, ne0)}
    w.add_tensor("output_norm.weight", normal(f"{label}/output_norm.weight", (n_embd,), std=0.05, mean=1.0))
    write_out(w)
    return notes


# --------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    notes = build_all_types(out / "all_types_v3.gguf")
    gen = {"generator": "xtask/python/gen_gguf_fixtures.py"}
    standard_sidecar(out / "all_types_v3.gguf", {**gen, "tensor_notes": notes})
    build_v2(notes, out / "all_types_v2.gguf")
    v2, v3 = (out / "all_types_v2.gguf").read_bytes(), (out / "all_types_v3.gguf").read_bytes()
    assert len(v2) == len(v3) and v2[:4] == v3[:4] and v2[8:] == v3[8:] and v2[4:8] == b"\2\0\0\0"
    standard_sidecar(out / "all_types_v2.gguf", {
        **gen, "how": "same content as all_types_v3.gguf, written by GGUFWriter with the module constant "
        "gguf.gguf_writer.GGUF_VERSION set to 2 (v2 and v3 share the layout; only bytes 4..8 differ)",
        "tensor_notes": notes})  # fmt: skip

    build_minimal(out / "minimal.gguf")
    standard_sidecar(out / "minimal.gguf", {**gen, "purpose": "smallest valid file; bad/* derive from it"})
    build_minimal(out / "align64.gguf", alignment=64)
    standard_sidecar(out / "align64.gguf", gen)

    notes = build_tiny_llama(out / "tiny-llama-mixed.gguf")
    standard_sidecar(out / "tiny-llama-mixed.gguf", {**gen, "tensor_notes": notes})
    build_tiny_llama_f16(out / "tiny-llama-f16.gguf")
    standard_sidecar(out / "tiny-llama-f16.gguf", gen)
    notes = build_imatrix(out)
    standard_sidecar(out / "tiny-llama-f16.imatrix.gguf", {**gen, "how": notes["imatrix"]})
    standard_sidecar(out / "tiny-llama-f16-q4_k-imatrix.gguf", {**gen, **notes})

    build_vocab(out / "vocab262k.gguf")
    standard_sidecar(out / "vocab262k.gguf", gen)

    for part in build_split(out):
        standard_sidecar(part, {**gen, "how": "GGUFWriter(split_max_tensors=5): metadata in part 1 only; "
                                "split.no (u16, 0-based), split.count (u16), split.tensors.count (i32) in "
                                "every part, as llama.cpp's gguf-split writes"})  # fmt: skip

    interp36 = {
        "36": "I2_S (microsoft/BitNet fork): x86 layout, blocks of 128 elements in 32 bytes, byte b = "
        "e[b]<<6 | e[b+32]<<4 | e[b+64]<<2 | e[b+96] with codes -1->0, 0->1, +1->2, in the tensor's "
        "row-major element order; then one little-endian f32 scale, zero-padded to 32 bytes; "
        "n_bytes = n/4 + 32; value = (code - 1) * scale",
    }
    p = out / "bitnet-i2s.gguf"
    notes = build_bitnet_i2s(p)
    write_sidecar(p, sidecar_from_parser(Parsed(p.read_bytes()), bitnet_nbytes,
                                         "gguf-py cannot read type id 36", {BITNET_I2_S: "I2_S"}),
                  {**gen, "how": "GGUFWriter given the packed bytes as an int8 array with raw_dtype=36",
                   "interpretation": {"world": "BitNet fork (general.file_type 40, architecture "
                                      "bitnet-b1.58)", **interp36}, "tensor_notes": notes})  # fmt: skip

    p = out / "bitnet-tl2-ambiguous.gguf"
    notes = build_bitnet_tl2(p)
    write_sidecar(p, sidecar_from_parser(Parsed(p.read_bytes()), bitnet_nbytes,
                                         "gguf-py reads id 39 as MXFP4 and fails on the size",
                                         {BITNET_TL2: "TL2"}),
                  {**gen, "interpretation": {"world": "BitNet fork (architecture bitnet-b1.58, "
                   "general.file_type 39): id 39 means TL2, not MXFP4; only the TL2 size fits the file",
                   "39": "TL2 (BitNet fork)"}, "tensor_notes": notes})  # fmt: skip

    p = out / "mxfp4-upstream.gguf"
    notes = build_mxfp4_upstream(p)
    standard_sidecar(p, {**gen, "interpretation": {"world": "upstream ggml (architecture gpt-oss, "
                         "general.file_type 38 = MOSTLY_MXFP4_MOE)", "39": "MXFP4 (upstream)"},
                         "tensor_notes": notes})  # fmt: skip

    build_bad(out / "minimal.gguf", out / "bad")
    return 0


if __name__ == "__main__":
    sys.exit(main())
