//! Helpers shared by the pre-quantized decoders: part validation, reading little-endian
//! floats, and rounding to the libraries' compute dtypes.

use half::{bf16, f16};
use qload_dtype::DType;

use super::Part;
use crate::QuantError;

/// A [`QuantError::BadPart`].
pub(super) fn bad(part: &'static str, reason: impl Into<String>) -> QuantError {
    QuantError::BadPart {
        part,
        reason: reason.into(),
    }
}

/// Bytes per element of the element types parts may have.
fn elem_size(dt: DType) -> Option<usize> {
    Some(match dt {
        DType::U8 | DType::I8 | DType::F8E4M3 => 1,
        DType::F16 | DType::BF16 => 2,
        DType::F32 | DType::I32 | DType::U32 => 4,
        _ => return None,
    })
}

/// The part, or an error naming it when it is absent.
pub(super) fn require<'p, 'a>(p: &'p Option<Part<'a>>, name: &'static str) -> Result<&'p Part<'a>, QuantError> {
    p.as_ref()
        .ok_or_else(|| bad(name, "required by the scheme but missing"))
}

/// Checks that `p` has one of the `allowed` dtypes, exactly `elems` elements in its
/// bytes, and a stored shape of `elems` elements.
pub(super) fn check(p: &Part<'_>, name: &'static str, allowed: &[DType], elems: usize) -> Result<(), QuantError> {
    if !allowed.contains(&p.dtype) {
        let list: Vec<String> = allowed.iter().map(|d| d.to_string()).collect();
        return Err(bad(name, format!("dtype {} (expected {})", p.dtype, list.join(" or "))));
    }
    let size = elem_size(p.dtype).ok_or_else(|| bad(name, format!("dtype {} has no element size", p.dtype)))?;
    let want = elems
        .checked_mul(size)
        .ok_or_else(|| bad(name, "the length implied by shape and scheme overflows"))?;
    if p.bytes.len() != want {
        return Err(bad(
            name,
            format!(
                "{} bytes, expected {want} ({elems} × {} of {} bytes)",
                p.bytes.len(),
                p.dtype,
                size
            ),
        ));
    }
    let stored = p
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(name, format!("stored shape {:?} overflows", p.shape)))?;
    if stored != elems as u64 {
        return Err(bad(
            name,
            format!("stored shape {:?} has {stored} elements, expected {elems}", p.shape),
        ));
    }
    Ok(())
}

/// `a * b` or an error naming `what`.
pub(super) fn mul(a: usize, b: usize, what: &'static str) -> Result<usize, QuantError> {
    a.checked_mul(b).ok_or_else(|| bad(what, "size overflows"))
}

/// Splits flat elements `e0 .. e0 + len` into runs within one `unit` (a group, a row):
/// `(unit index, offset of the run in the range, the run's elements)`. Decoders look
/// scales up once per run instead of dividing per element.
pub(super) fn runs(e0: usize, len: usize, unit: usize) -> impl Iterator<Item = (usize, usize, std::ops::Range<usize>)> {
    let unit = unit.max(1);
    let end = e0.saturating_add(len);
    let mut e = e0;
    std::iter::from_fn(move || {
        if e >= end {
            return None;
        }
        let k = e / unit;
        let stop = (k + 1).saturating_mul(unit).min(end);
        let run = (k, e - e0, e..stop);
        e = stop;
        Some(run)
    })
}

/// The rounding of a library's compute dtype: every f16/bf16 operation is computed in
/// f32 and rounded to nearest even (as PyTorch's and MLX's CPU kernels do; for one
/// `+`, `−` or `×` of two f16/bf16 values that equals the correctly rounded result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// No rounding beyond f32's own.
    F32,
}

impl Round {
    /// The rounding of `dt` (F16, BF16 or F32).
    pub(super) fn of(dt: DType) -> Option<Round> {
        Some(match dt {
            DType::F16 => Round::F16,
            DType::BF16 => Round::Bf16,
            DType::F32 => Round::F32,
            _ => return None,
        })
    }

    /// `v` rounded to nearest even in this dtype, widened back to f32.
    #[inline]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Round::F16 => f16::from_f32(v).to_f32(),
            Round::Bf16 => bf16::from_f32(v).to_f32(),
            Round::F32 => v,
        }
    }
}

/// The float dtypes scales and offsets may have.
pub(super) const FLOATS: [DType; 3] = [DType::F16, DType::BF16, DType::F32];

/// A validated array of F16, BF16 or F32 values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Floats<'a> {
    bytes: &'a [u8],
    kind: Round,
}

impl<'a> Floats<'a> {
    /// Views a part already checked to be F16, BF16 or F32 (anything else reads as F32).
    pub(super) fn new(p: &Part<'a>) -> Self {
        Floats {
            bytes: p.bytes,
            kind: Round::of(p.dtype).unwrap_or(Round::F32),
        }
    }

    /// Element `i` widened to f32 (NaN past the end, which validation rules out).
    #[inline]
    pub(super) fn get(&self, i: usize) -> f32 {
        match self.kind {
            Round::F32 => i
                .checked_mul(4)
                .and_then(|o| self.bytes.get(o..o + 4))
                .map_or(f32::NAN, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Round::F16 => self.half(i).map_or(f32::NAN, |h| f16::from_bits(h).to_f32()),
            Round::Bf16 => self.half(i).map_or(f32::NAN, |h| bf16::from_bits(h).to_f32()),
        }
    }

    /// Elements `first .. first + out.len()` widened to f32 (f16 through `half`'s
    /// slice conversion, F16C where available; NaN past the end).
    pub(super) fn fill(&self, first: usize, out: &mut [f32]) {
        match self.kind {
            Round::F16 => {
                let mut buf = [f16::ZERO; 64];
                for (k, out) in out.chunks_mut(64).enumerate() {
                    let start = first + 64 * k;
                    let buf = &mut buf[..out.len()];
                    for (i, h) in buf.iter_mut().enumerate() {
                        *h = self.half(start + i).map_or(f16::NAN, f16::from_bits);
                    }
                    half::slice::HalfFloatSliceExt::convert_to_f32_slice(&*buf, out);
                }
            }
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.get(first + i);
                }
            }
        }
    }

    #[inline]
    fn half(&self, i: usize) -> Option<u16> {
        let o = i.checked_mul(2)?;
        self.bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
}

/// FP8 E4M3 (`float8_e4m3fn`: no infinities, `S.1111.111` is NaN) to f32, exactly.
#[inline]
pub(super) fn e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> 3) & 0x0f) as i32;
    let m = (b & 0x07) as f32;
    if e == 0x0f && b & 0x07 == 0x07 {
        return f32::NAN;
    }
    let mag = if e == 0 {
        m * (1.0 / 512.0)
    } else {
        (1.0 + m / 8.0) * f32::from_bits(((e - 7 + 127) as u32) << 23)
    };
    sign * mag
}

/// FP4 E2M1 (low 4 bits of `n`) to f32.
#[inline]
pub(super) fn e2m1_to_f32(n: u8) -> f32 {
    const V: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    let v = V[(n & 7) as usize];
    if n & 8 != 0 { -v } else { v }
}

/// E8M0 (a power of two, `2^(s−127)`; 255 is NaN) to f32.
#[inline]
pub(super) fn e8m0_to_f32(s: u8) -> f32 {
    match s {
        255 => f32::NAN,
        0 => f32::from_bits(0x0040_0000),
        s => f32::from_bits((s as u32) << 23),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_matches_the_definition() {
        assert_eq!(e4m3_to_f32(0x00), 0.0);
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(e4m3_to_f32(0x08), 2f32.powi(-6));
        assert_eq!(e4m3_to_f32(0x38), 1.0);
        assert_eq!(e4m3_to_f32(0x7e), 448.0);
        assert_eq!(e4m3_to_f32(0xfe), -448.0);
        assert!(e4m3_to_f32(0x7f).is_nan() && e4m3_to_f32(0xff).is_nan());
    }

    #[test]
    fn e8m0_and_e2m1() {
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
        assert_eq!(e8m0_to_f32(254), 2f32.powi(127));
        assert!(e8m0_to_f32(255).is_nan());
        assert_eq!(e2m1_to_f32(0x7), 6.0);
        assert_eq!(e2m1_to_f32(0xf), -6.0);
        assert_eq!(e2m1_to_f32(0x9), -0.5);
    }
}
