//! Hugging Face BitNet b1.58 (transformers' `BitLinear` / `AutoBitLinear`, e.g.
//! `microsoft/bitnet-b1.58-2B-4T`): ternary codes packed four to a byte **along the
//! rows**, and one `weight_scale` per tensor.
//!
//! `weight` is u8 `[P, in]` for a logical `[4P, in]` weight: element `(i·P + p, c)` is
//! the 2-bit field at bits `2i .. 2i + 2` of `weight[p, c]`, and its ternary value is
//! `field − 1` (transformers' `pack_weights` / `unpack_weights`; field 3, which
//! `pack_weights` never writes, reads as +2). `weight_scale` holds one value in the
//! model dtype. What it means depends on the linear class in `quantization_config`:
//! `BitLinear` (`linear_class = "bitlinear"`, the default) divides its output by it, so
//! `w = (field − 1) / weight_scale`; `AutoBitLinear` (`"autobitlinear"`) multiplies,
//! so `w = (field − 1) · weight_scale`. Both are given in the model dtype: the quotient
//! is computed in f32 and rounded to it, as torch computes a bf16/f16 division.

use qload_dtype::DType;

use super::common::{FLOATS, Floats, Round, bad, check, mul, require};
use super::{BitnetScale, Parts};
use crate::QuantError;

/// Checks the parts of a packed BitNet weight of logical shape `[rows, cols]`.
pub(super) fn validate(dtype: DType, rows: usize, cols: usize, p: &Parts<'_>) -> Result<(), QuantError> {
    if !FLOATS.contains(&dtype) {
        return Err(bad(
            "scheme",
            format!("BitNet weight_scale dtype {dtype} (expected F16, BF16 or F32)"),
        ));
    }
    if !rows.is_multiple_of(4) {
        return Err(bad(
            "shape",
            format!("{rows} rows: packed BitNet weights hold four rows per byte"),
        ));
    }
    check(
        require(&p.data, "data")?,
        "data",
        &[DType::U8],
        mul(rows / 4, cols, "data")?,
    )?;
    check(require(&p.scales, "scales")?, "scales", &[dtype], 1)
}

/// The value of a `+1` code in the model dtype (`weight_scale` or `1 / weight_scale`).
pub(super) fn unit(scale: BitnetScale, dtype: DType, p: &Parts<'_>) -> f32 {
    let ws = p.scales.as_ref().map_or(f32::NAN, |s| Floats::new(s).get(0));
    match scale {
        BitnetScale::Multiply => ws,
        BitnetScale::Divide => Round::of(dtype).unwrap_or(Round::F32).apply(1.0 / ws),
    }
}

/// The 2-bit field (`value + 1`) of flat element `e` (`cols` per row, `quarter` = P).
#[inline(always)]
fn field(data: &[u8], cols: usize, quarter: usize, e: usize) -> u8 {
    let (r, c) = (e / cols, e % cols);
    let (i, p) = (r / quarter, r % quarter);
    (data.get(p * cols + c).copied().unwrap_or(1) >> (2 * i)) & 3
}

/// The specification: flat elements `e0 .. e0 + out.len()`.
pub(super) fn decode(
    scale: BitnetScale,
    dtype: DType,
    rows: usize,
    cols: usize,
    p: &Parts<'_>,
    e0: usize,
    out: &mut [f32],
) {
    let Some(data) = p.data.as_ref().map(|d| d.bytes) else {
        return;
    };
    let one = unit(scale, dtype, p);
    let value = |f: u8| match f {
        0 => -one,
        1 => 0.0,
        2 => one,
        // (+2) · w exactly: doubling is exact in every float type.
        _ => 2.0 * one,
    };
    let quarter = (rows / 4).max(1);
    // Whole rows at a time: one shift and one source row per output row.
    let mut e = e0;
    let mut o = 0;
    while o < out.len() {
        let (r, c0) = (e / cols, e % cols);
        let n = (cols - c0).min(out.len() - o);
        let (i, q) = (r / quarter, r % quarter);
        let src = data.get(q * cols + c0..q * cols + c0 + n);
        match src {
            Some(src) => {
                for (d, &b) in out[o..o + n].iter_mut().zip(src) {
                    *d = value((b >> (2 * i)) & 3);
                }
            }
            None => {
                for (k, d) in out[o..o + n].iter_mut().enumerate() {
                    *d = value(field(data, cols, quarter, e + k));
                }
            }
        }
        e += n;
        o += n;
    }
}

/// bitnet.cpp's I2_S bytes of the same weight, losslessly: the same codes (I2_S's code
/// is also `value + 1`, 3 meaning +2) and the value of a `+1` code as the tensor's f32
/// scale. `layout` chooses x86 or ARM packing.
pub(super) fn to_i2s(
    scale: BitnetScale,
    dtype: DType,
    rows: usize,
    cols: usize,
    p: &Parts<'_>,
    layout: crate::bitnet::i2s::I2sLayout,
) -> Result<Vec<u8>, QuantError> {
    let data = require(&p.data, "data")?.bytes;
    let n = mul(rows, cols, "shape")?;
    let quarter = (rows / 4).max(1);
    let mut out = vec![0u8; crate::bitnet::i2s::tensor_bytes(n).map_err(|e| bad("shape", e.to_string()))?];
    crate::bitnet::i2s::pack_with(layout, n, &mut out, |e| field(data, cols, quarter, e));
    crate::bitnet::i2s::write_scale(&mut out, n, unit(scale, dtype, p));
    Ok(out)
}
