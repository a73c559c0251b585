//! HQQ (`HQQLinear`, checked against hqq 0.2.8): `w = (q − zero) · scale` in the compute
//! dtype (rounded after the difference and after the product), then reshaped.
//!
//! The `n` weights are viewed as a code matrix of `R × C`: `[n / g, g]` for axis 1
//! (each code row a group of `g` consecutive weights; scale/zero per code row) and
//! `[g, n / g]` for axis 0 (groups are code columns: flat elements `j, j + C, …`).
//! The packing splits the code ROWS into `8 / nbits` chunks of `R · nbits / 8` rows,
//! chunk `i` in bits `8 − nbits·(i+1) ..` of a byte (the first chunk highest);
//! 3-bit pads the rows to a multiple of 10 and packs 10 chunks per int32, chunk `i` at
//! bit `27 − 3i`; 8-bit is stored plain.

use qload_dtype::DType;

use super::Parts;
use super::common::{FLOATS, Floats, Round, bad, check, mul, require, runs};
use crate::QuantError;

/// The code-matrix geometry of a validated HQQ weight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    nbits: u8,
    axis: u8,
    /// Code-matrix columns.
    c: usize,
    /// Packed rows per chunk.
    step: usize,
}

/// Checks the parts of an HQQ weight of `numel` elements.
pub(super) fn validate(
    nbits: u8,
    group_size: usize,
    axis: u8,
    dtype: DType,
    numel: usize,
    p: &Parts<'_>,
) -> Result<Geometry, QuantError> {
    if !FLOATS.contains(&dtype) {
        return Err(bad(
            "scheme",
            format!("HQQ compute dtype {dtype} (expected F16, BF16 or F32)"),
        ));
    }
    if group_size == 0 || !numel.is_multiple_of(group_size) {
        return Err(bad(
            "scheme",
            format!("HQQ group size {group_size} does not divide the {numel} elements"),
        ));
    }
    let groups = numel / group_size;
    let (r, c) = match axis {
        1 => (groups, group_size),
        0 => (group_size, groups),
        _ => return Err(bad("scheme", format!("HQQ axis {axis} (expected 0 or 1)"))),
    };
    let (step, data_elems, data_types): (usize, usize, &[DType]) = match nbits {
        8 => (r, mul(r, c, "data")?, &[DType::U8]),
        1 | 2 | 4 => {
            let k = 8 / nbits as usize;
            if !r.is_multiple_of(k) {
                return Err(bad(
                    "data",
                    format!("HQQ {nbits}-bit packs {k} chunks of rows; {r} code rows do not divide"),
                ));
            }
            (r / k, mul(r / k, c, "data")?, &[DType::U8])
        }
        3 => {
            let step = r.div_ceil(10);
            (step, mul(step, c, "data")?, &[DType::I32, DType::U32])
        }
        _ => return Err(bad("scheme", format!("HQQ nbits {nbits} (expected 1, 2, 3, 4 or 8)"))),
    };
    check(require(&p.data, "data")?, "data", data_types, data_elems)?;
    for (part, name) in [(&p.scales, "scales"), (&p.offsets, "offsets")] {
        let part = require(part, name)?;
        check(part, name, &[dtype], groups)?;
    }
    Ok(Geometry { nbits, axis, c, step })
}

/// The codes of code row `r`, columns `c0 ..`, into `q`.
#[inline]
fn codes(g: &Geometry, data: &[u8], r: usize, c0: usize, q: &mut [u8]) {
    match g.nbits {
        8 => {
            let o = r * g.c + c0;
            if let Some(src) = data.get(o..o + q.len()) {
                q.copy_from_slice(src);
            }
        }
        3 => {
            let (p, i) = (r % g.step, r / g.step);
            let shift = 27 - 3 * i as u32;
            for (c, q) in (c0..).zip(q.iter_mut()) {
                let o = 4 * (p * g.c + c);
                let w = data
                    .get(o..o + 4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                *q = ((w >> shift) & 7) as u8;
            }
        }
        n => {
            let (p, i) = (r % g.step, r / g.step);
            let shift = 8 - n as u32 * (i as u32 + 1);
            let mask = (1u8 << n) - 1;
            let o = p * g.c + c0;
            if let Some(src) = data.get(o..o + q.len()) {
                for (q, b) in q.iter_mut().zip(src) {
                    *q = (b >> shift) & mask;
                }
            }
        }
    }
}

/// The specification: flat elements `e0 ..` into `out`.
pub(super) fn decode(g: &Geometry, dtype: DType, p: &Parts<'_>, e0: usize, out: &mut [f32]) {
    let (Some(data), Some(scale), Some(zero), Some(rnd)) = (&p.data, &p.scales, &p.offsets, Round::of(dtype)) else {
        return;
    };
    let (scale, zero) = (Floats::new(scale), Floats::new(zero));
    let mut q = [0u8; 256];
    // Runs within one code row (axis 1: one group; axis 0: one group per column).
    for (r, off, run) in runs(e0, out.len(), g.c) {
        let c0 = run.start - r * g.c;
        let out = &mut out[off..off + run.len()];
        for (k, out) in out.chunks_mut(q.len()).enumerate() {
            let c0 = c0 + k * q.len();
            let q = &mut q[..out.len()];
            codes(g, data.bytes, r, c0, q);
            if g.axis == 1 {
                let (s, z) = (scale.get(r), zero.get(r));
                for (o, &q) in out.iter_mut().zip(q.iter()) {
                    *o = rnd.apply(rnd.apply(q as f32 - z) * s);
                }
            } else {
                for ((o, &q), c) in out.iter_mut().zip(q.iter()).zip(c0..) {
                    *o = rnd.apply(rnd.apply(q as f32 - zero.get(c)) * scale.get(c));
                }
            }
        }
    }
}
