//! MLX (`mx.quantize` / `mx.dequantize`, checked against mlx 0.32.4 on CPU).
//!
//! Each row is an LSB-first bit stream of `bits`-bit codes in little-endian u32 words
//! (element `j` at bits `j·bits ..` of the row's bytes); rows are whole words, so the
//! whole weight is one stream and element `e` sits at bit `e·bits`. Groups of
//! `group_size` run along rows.
//!
//! * affine: `w = scale · q + bias`, rounded to the dtype after the product AND after
//!   the sum (a single rounding differs by up to an ulp);
//! * mxfp4 / mxfp8: FP4 E2M1 nibbles / FP8 E4M3 bytes times an E8M0 scale per 32;
//!   nvfp4: E2M1 nibbles times an FP8 E4M3 scale per 16; `w = element · scale` in f32,
//!   rounded once to the dtype.

use qload_dtype::DType;

use super::common::{FLOATS, Floats, Round, bad, check, e2m1_to_f32, e4m3_to_f32, e8m0_to_f32, mul, require, runs};
use super::lut4::Lut4;
use super::{MlxFloatMode, Parts};
use crate::QuantError;

/// Words of the packed data for `numel` elements in rows of `cols`.
fn data_words(bits: usize, rows: usize, cols: usize) -> Result<usize, QuantError> {
    let row_bits = mul(cols, bits, "data")?;
    if !row_bits.is_multiple_of(32) {
        return Err(bad(
            "data",
            format!("a row of {cols} {bits}-bit codes is not a whole number of u32 words"),
        ));
    }
    mul(rows, row_bits / 32, "data")
}

fn groups(group_size: usize, rows: usize, cols: usize) -> Result<usize, QuantError> {
    if group_size == 0 || !cols.is_multiple_of(group_size) {
        return Err(bad(
            "scheme",
            format!("MLX group size {group_size} does not divide the row length {cols}"),
        ));
    }
    mul(rows, cols / group_size, "scales")
}

/// Checks the parts of an affine weight.
pub(super) fn validate_affine(
    bits: u8,
    group_size: usize,
    dtype: DType,
    rows: usize,
    cols: usize,
    p: &Parts<'_>,
) -> Result<(), QuantError> {
    if !(1..=8).contains(&bits) {
        return Err(bad("scheme", format!("MLX affine bits {bits} (expected 1 … 8)")));
    }
    if !FLOATS.contains(&dtype) {
        return Err(bad("scheme", format!("MLX dtype {dtype} (expected F16, BF16 or F32)")));
    }
    let n_groups = groups(group_size, rows, cols)?;
    check(
        require(&p.data, "data")?,
        "data",
        &[DType::U32],
        data_words(bits as usize, rows, cols)?,
    )?;
    check(require(&p.scales, "scales")?, "scales", &[dtype], n_groups)?;
    check(require(&p.offsets, "offsets")?, "offsets", &[dtype], n_groups)
}

/// Checks the parts of an mxfp4 / mxfp8 / nvfp4 weight.
pub(super) fn validate_float(
    mode: MlxFloatMode,
    group_size: usize,
    dtype: DType,
    rows: usize,
    cols: usize,
    p: &Parts<'_>,
) -> Result<(), QuantError> {
    if !FLOATS.contains(&dtype) {
        return Err(bad("scheme", format!("MLX dtype {dtype} (expected F16, BF16 or F32)")));
    }
    let (bits, group) = match mode {
        MlxFloatMode::Mxfp4 => (4, 32),
        MlxFloatMode::Mxfp8 => (8, 32),
        MlxFloatMode::Nvfp4 => (4, 16),
    };
    if group_size != group {
        return Err(bad(
            "scheme",
            format!("MLX {mode:?} has groups of {group}, not {group_size}"),
        ));
    }
    let n_groups = groups(group_size, rows, cols)?;
    check(
        require(&p.data, "data")?,
        "data",
        &[DType::U32],
        data_words(bits, rows, cols)?,
    )?;
    check(require(&p.scales, "scales")?, "scales", &[DType::U8], n_groups)?;
    if p.offsets.is_some() {
        return Err(bad("offsets", "given, but MLX float modes have no biases"));
    }
    Ok(())
}

/// The `bits`-bit code at element `e` of an LSB-first stream.
#[inline]
fn code(data: &[u8], bits: usize, e: usize) -> u32 {
    let bit = e * bits;
    let (byte, sh) = (bit / 8, bit % 8);
    let lo = data.get(byte).copied().unwrap_or(0) as u32;
    let hi = data.get(byte + 1).copied().unwrap_or(0) as u32;
    ((lo | hi << 8) >> sh) & ((1u32 << bits) - 1)
}

/// The specification for affine weights: flat elements `e0 ..` into `out`.
pub(super) fn decode_affine(bits: u8, group_size: usize, dtype: DType, p: &Parts<'_>, e0: usize, out: &mut [f32]) {
    let (Some(data), Some(scales), Some(biases), Some(rnd)) = (&p.data, &p.scales, &p.offsets, Round::of(dtype)) else {
        return;
    };
    let (scales, biases) = (Floats::new(scales), Floats::new(biases));
    for (group, off, run) in runs(e0, out.len(), group_size) {
        let (s, b) = (scales.get(group), biases.get(group));
        for (e, o) in run.zip(out[off..].iter_mut()) {
            let q = code(data.bytes, bits as usize, e) as f32;
            *o = rnd.apply(rnd.apply(s * q) + b);
        }
    }
}

/// The specification for the float modes: flat elements `e0 ..` into `out`.
pub(super) fn decode_float(
    mode: MlxFloatMode,
    group_size: usize,
    dtype: DType,
    p: &Parts<'_>,
    e0: usize,
    out: &mut [f32],
) {
    let (Some(data), Some(scales), Some(rnd)) = (&p.data, &p.scales, Round::of(dtype)) else {
        return;
    };
    for (group, off, run) in runs(e0, out.len(), group_size) {
        let sb = scales.bytes.get(group).copied().unwrap_or(0);
        let s = match mode {
            MlxFloatMode::Nvfp4 => e4m3_to_f32(sb),
            _ => e8m0_to_f32(sb),
        };
        for (e, o) in run.zip(out[off..].iter_mut()) {
            let v = match mode {
                MlxFloatMode::Mxfp8 => e4m3_to_f32(data.bytes.get(e).copied().unwrap_or(0)),
                _ => e2m1_to_f32(code(data.bytes, 4, e) as u8),
            };
            *o = rnd.apply(v * s);
        }
    }
}

/// The table-lookup description of a 4-bit affine weight.
pub(super) fn lut(dtype: DType) -> Option<Lut4> {
    Some(Lut4 {
        base: std::array::from_fn(|k| k as f32),
        round: Round::of(dtype)?,
        affine: true,
        hi_first: false,
    })
}
