//! Byte-exactness against ggml: golden vectors written by libgguf (ggml's own C
//! code) through `cargo xtask fixtures` (xtask/python/gen_golden.py), and, for the
//! types libgguf lacks (Q2_0), by the real ggml that llama-cpp-python builds
//! (xtask/python/gen_golden_ggml.py, `tests/fixtures/golden-ggml`).

use qload_dtype::DType;
use qload_quant_core::{Codec, codec};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Every golden set: (directory, manifest).
fn golden_sets() -> Vec<(PathBuf, Value)> {
    ["golden", "golden-ggml"]
        .iter()
        .map(|d| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(d);
            let m = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            (dir, m)
        })
        .collect()
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn dtype(name: &str) -> DType {
    DType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// Same bits, or NaN in both places (ggml does not define NaN payloads).
fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Types whose codec is not written yet. The test fails when this list is stale
/// in either direction, so it cannot hide a regression or a new codec.
const DEQUANT_MISSING: &[&str] = &[];
const QUANT_MISSING: &[&str] = &[];
const WEIGHTED_MISSING: &[&str] = &[];

#[test]
fn dequantize_matches_ggml_bit_for_bit() {
    let mut missing = Vec::new();
    let sets = golden_sets();
    for (entry, dir) in sets
        .iter()
        .flat_map(|(dir, m)| m["dequant"].as_array().unwrap().iter().map(move |e| (e, dir)))
    {
        let name = entry["type"].as_str().unwrap();
        let c = codec(dtype(name)).unwrap();
        if !c.can_dequantize() {
            missing.push(name);
            continue;
        }
        let blocks = read(dir, &format!("dequant/{name}.blocks"));
        let want = f32s(&read(dir, &format!("dequant/{name}.f32")));
        let mut got = vec![0f32; want.len()];
        c.dequantize(&blocks, &mut got).unwrap();
        let bad: Vec<usize> = (0..want.len()).filter(|&i| !same_f32(got[i], want[i])).collect();
        assert!(
            bad.is_empty(),
            "{name}: {} of {} values differ; first at {}: got {:e} ({:#010x}), ggml {:e} ({:#010x})",
            bad.len(),
            want.len(),
            bad[0],
            got[bad[0]],
            got[bad[0]].to_bits(),
            want[bad[0]],
            want[bad[0]].to_bits()
        );
    }
    assert_eq!(missing, DEQUANT_MISSING, "the list of unwritten dequantizers is stale");
}

/// The golden bytes come from ggml on x86-64, whose default NaN is negative
/// (0xFFC00000); aarch64's is positive. Where a scale overflows to NaN (rows of
/// 1e30 or ±Inf), the stored f16 NaN's sign is the architecture's, not ggml's or
/// qload's choice. Off x86-64, a row whose only differences decode to NaN in both
/// is accepted; on x86-64 the bytes must be identical.
fn nan_sign_only(c: &dyn Codec, got: &[u8], want: &[u8]) -> bool {
    if cfg!(target_arch = "x86_64") {
        return false;
    }
    let n = got.len() / c.block_bytes() * c.block_elems();
    let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
    c.dequantize(got, &mut a).is_ok()
        && c.dequantize(want, &mut b).is_ok()
        && a.iter().zip(&b).all(|(x, y)| same_f32(*x, *y))
        && got.iter().zip(want).zip(0..).all(|((x, y), i)| {
            x == y || {
                // A differing byte must belong to a NaN f16 (0x7E00 vs 0xFE00 and the like).
                let pair = |v: &[u8]| {
                    if i % 2 == 0 {
                        [v[i], v.get(i + 1).copied().unwrap_or(0)]
                    } else {
                        [v[i - 1], v[i]]
                    }
                };
                let (p, q) = (pair(got), pair(want));
                half::f16::from_le_bytes(p).is_nan() && half::f16::from_le_bytes(q).is_nan()
            }
        })
}

fn check_quantize(weighted: bool) -> Vec<String> {
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    for (dir, m) in golden_sets() {
        check_set(&dir, &m, weighted, &mut missing, &mut failures);
    }
    let expected: &[&str] = if weighted { WEIGHTED_MISSING } else { QUANT_MISSING };
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    missing.sort();
    assert_eq!(missing, expected, "the list of unwritten quantizers is stale");
    failures
}

fn check_set(dir: &Path, m: &Value, weighted: bool, missing: &mut Vec<String>, failures: &mut Vec<String>) {
    let n = m["n_per_row"].as_u64().unwrap() as usize;
    let input = f32s(&read(dir, "quant/input.f32"));
    let imatrix = f32s(&read(dir, "quant/imatrix.f32"));
    let rows = m["rows"].as_array().unwrap();
    for (name, info) in m["quant"].as_object().unwrap() {
        let c: &dyn Codec = codec(dtype(name)).unwrap();
        let row_bytes = info["row_bytes"].as_u64().unwrap() as usize;
        let (file, im) = if weighted {
            (format!("quant/{name}.imatrix.q"), Some(imatrix.as_slice()))
        } else {
            (format!("quant/{name}.q"), None)
        };
        let want = read(dir, &file);
        let mut got = vec![0u8; want.len()];
        match c.quantize(&input, n, im, &mut got) {
            Ok(()) => {}
            Err(qload_quant_core::QuantError::Unsupported { .. }) => {
                missing.push(name.clone());
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        }
        for (r, row) in rows.iter().enumerate() {
            let span = r * row_bytes..(r + 1) * row_bytes;
            if got[span.clone()] != want[span.clone()] && !nan_sign_only(c, &got[span.clone()], &want[span.clone()]) {
                let first = (0..row_bytes)
                    .find(|&i| got[span.start + i] != want[span.start + i])
                    .unwrap();
                failures.push(format!(
                    "{name}{}: row {r} ({}) differs first at byte {first} of {row_bytes}",
                    if weighted { " +imatrix" } else { "" },
                    row["desc"].as_str().unwrap()
                ));
            }
        }
    }
}

#[test]
fn quantize_matches_ggml_quantize_chunk_byte_for_byte() {
    let failures = check_quantize(false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn quantize_with_imatrix_matches_ggml_byte_for_byte() {
    let failures = check_quantize(true);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn q8_1_carries_q8_0_quants_and_their_sum() {
    let (dir, _) = &golden_sets()[0];
    let input = f32s(&read(dir, "quant/input.f32"));
    let want_q8_0 = read(dir, "quant/q8_0.q");
    let q8_1 = codec(DType::Q8_1).unwrap();
    let mut got = vec![0u8; q8_1.bytes_for(input.len()).unwrap()];
    q8_1.quantize(&input, 512, None, &mut got).unwrap();
    for ((b1, b0), x) in got
        .chunks_exact(36)
        .zip(want_q8_0.chunks_exact(34))
        .zip(input.chunks_exact(32))
    {
        assert_eq!(b1[0..2], b0[0..2], "d");
        assert_eq!(b1[4..], b0[2..], "qs");
        if x.iter().any(|v| !v.is_finite()) {
            continue;
        }
        // ggml stores s = fp16(Σq · d) with d before its rounding to f16.
        let d = x.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
        let sum: i32 = b0[2..].iter().map(|&q| q as i8 as i32).sum();
        let s = half::f16::from_f32(sum as f32 * d).to_le_bytes();
        assert_eq!(b1[2..4], s, "s");
    }
}
