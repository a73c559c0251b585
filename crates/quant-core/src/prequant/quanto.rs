//! optimum-quanto (`WeightQBytesTensor`, `WeightQBitsTensor`; checked against
//! optimum-quanto 0.2.7).
//!
//! * qint8 / qfloat8: `w = _scale[row] · _data`, in the scale dtype (one rounding).
//! * qint2 / qint4: the weight viewed as a code matrix `R × C` (`[n / g, g]` with a
//!   group size, `[rows, cols]` without); `_scale` and `_shift` per code row;
//!   `w = _scale · q − _shift` in the scale dtype, rounded after the product and after
//!   the difference. Codes are packed along code rows:
//!   `packed[p] = Σ_i q[p + i·S] << (bits·i)` with `S = ⌈R · bits / 8⌉` (the FIRST
//!   chunk in the LOW bits, unlike HQQ).

use qload_dtype::DType;

use super::common::{FLOATS, Floats, Round, bad, check, e4m3_to_f32, mul, require, runs};
use super::{Parts, QuantoType};
use crate::QuantError;

/// The code-matrix geometry of a validated qint2/qint4 weight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    bits: u8,
    c: usize,
    step: usize,
}

/// Checks the parts of a quanto weight.
pub(super) fn validate(
    qtype: QuantoType,
    group_size: Option<usize>,
    dtype: DType,
    rows: usize,
    cols: usize,
    p: &Parts<'_>,
) -> Result<Option<Geometry>, QuantError> {
    if !FLOATS.contains(&dtype) {
        return Err(bad(
            "scheme",
            format!("quanto scale dtype {dtype} (expected F16, BF16 or F32)"),
        ));
    }
    let numel = mul(rows, cols, "shape")?;
    let bits = match qtype {
        QuantoType::Qint8 | QuantoType::Qfloat8E4m3 => {
            if let Some(g) = group_size {
                return Err(bad(
                    "scheme",
                    format!("quanto {qtype:?} has one scale per row, not groups of {g}"),
                ));
            }
            let data_type = if qtype == QuantoType::Qint8 {
                DType::I8
            } else {
                DType::F8E4M3
            };
            check(require(&p.data, "data")?, "data", &[data_type], numel)?;
            check(require(&p.scales, "scales")?, "scales", &[dtype], rows)?;
            return Ok(None);
        }
        QuantoType::Qint2 => 2u8,
        QuantoType::Qint4 => 4u8,
    };
    let (r, c) = match group_size {
        None => (rows, cols),
        Some(g) if g > 0 && numel.is_multiple_of(g) => (numel / g, g),
        Some(g) => {
            return Err(bad(
                "scheme",
                format!("quanto group size {g} does not divide the {numel} elements"),
            ));
        }
    };
    let step = r.div_ceil(8 / bits as usize);
    check(require(&p.data, "data")?, "data", &[DType::U8], mul(step, c, "data")?)?;
    check(require(&p.scales, "scales")?, "scales", &[dtype], r)?;
    check(require(&p.offsets, "offsets")?, "offsets", &[dtype], r)?;
    Ok(Some(Geometry { bits, c, step }))
}

/// The specification: flat elements `e0 ..` of a weight with `cols` columns into
/// `out`; `geo` is `Some` for qint2/qint4.
pub(super) fn decode(
    qtype: QuantoType,
    geo: Option<Geometry>,
    dtype: DType,
    cols: usize,
    p: &Parts<'_>,
    e0: usize,
    out: &mut [f32],
) {
    let (Some(data), Some(scale), Some(rnd)) = (&p.data, &p.scales, Round::of(dtype)) else {
        return;
    };
    let scale = Floats::new(scale);
    match geo {
        None => {
            for (row, off, run) in runs(e0, out.len(), cols) {
                let s = scale.get(row);
                for (e, o) in run.zip(out[off..].iter_mut()) {
                    let b = data.bytes.get(e).copied().unwrap_or(0);
                    let v = if qtype == QuantoType::Qfloat8E4m3 {
                        e4m3_to_f32(b)
                    } else {
                        b as i8 as f32
                    };
                    *o = rnd.apply(s * v);
                }
            }
        }
        Some(g) => {
            let Some(shift) = &p.offsets else {
                return;
            };
            let shift = Floats::new(shift);
            let mask = (1u8 << g.bits) - 1;
            for (r, off, run) in runs(e0, out.len(), g.c) {
                let (s, z) = (scale.get(r), shift.get(r));
                let (pr, i) = (r % g.step, r / g.step);
                let sh = g.bits as u32 * i as u32;
                let base = pr * g.c;
                let c0 = run.start - r * g.c;
                for (c, o) in (c0..c0 + run.len()).zip(out[off..].iter_mut()) {
                    let byte = data.bytes.get(base + c).copied().unwrap_or(0);
                    let q = ((byte >> sh) & mask) as f32;
                    *o = rnd.apply(rnd.apply(s * q) - z);
                }
            }
        }
    }
}
