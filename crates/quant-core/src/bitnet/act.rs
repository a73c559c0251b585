//! Int8 activations, one scale per token (row).
//!
//! The symmetric scheme is BitNet b1.58's `activation_quant` as bitnet.cpp's
//! `quantize_row_i8_s` computes it: `max = max(1e-5, max|x|)` in f64,
//! `s = (float)(127 / max)`, `q = clamp(round(x·s), −128, 127)` with the product in
//! f32, and `Σq` kept for the I2_S kernel (which multiplies by codes `w + 1` and
//! subtracts `Σq`). bitnet.cpp versions differ in the rounding of `x·s`: its ggml
//! fork uses `nearest_int` (half to even, the default here) in one revision and
//! `round((double)(x·s))` (half away from zero) in another; both are offered.

use super::BitnetError;
use super::error::check_len;

/// The lower clamp of the absolute maximum (`1e-5`, as in BitNet).
pub const EPS: f64 = 1e-5;

/// Symmetric (zero point 0) or asymmetric (with a zero point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActMode {
    /// `q = round(x · 127 / max|x|)`, BitNet's scheme.
    #[default]
    Symmetric,
    /// `q = round(x · 255 / (max − min)) + zero_point`, the range `[min(x, 0),
    /// max(x, 0)]` mapped onto −128..=127.
    Asymmetric,
}

/// How `x·s` is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActRounding {
    /// Half to even (`nearest_int`, `torch.round`).
    #[default]
    HalfEven,
    /// Half away from zero (C `round`).
    HalfAwayFromZero,
}

/// How to quantize activations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ActConfig {
    /// Symmetric or asymmetric.
    pub mode: ActMode,
    /// When set, `|x|` is clipped at this value before the range is taken (values
    /// beyond it saturate).
    pub clip: Option<f32>,
    /// The rounding of `x·s`.
    pub rounding: ActRounding,
}

/// One token's quantized activations: `x ≈ (q − zero_point) / scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedAct {
    /// The int8 values.
    pub q: Vec<i8>,
    /// The multiplier `s` (BitNet's `127 / max|x|`); divide by it to dequantize.
    pub scale: f32,
    /// The zero point (0 for symmetric).
    pub zero_point: i32,
    /// `Σ q` (the I2_S kernel subtracts it to undo the `+1` of the weight codes).
    pub sum: i64,
}

impl QuantizedAct {
    /// `(q − zero_point) / scale` for each element.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .iter()
            .map(|&q| (q as i32 - self.zero_point) as f32 / self.scale)
            .collect()
    }
}

#[inline(always)]
fn round(t: f32, r: ActRounding) -> f32 {
    match r {
        ActRounding::HalfEven => t.round_ties_even(),
        ActRounding::HalfAwayFromZero => t.round(),
    }
}

#[inline(always)]
fn sat_i8(v: f32) -> i8 {
    // NaN → 0 (`as` saturates and maps NaN to 0).
    v.clamp(-128.0, 127.0) as i8
}

/// BitNet's symmetric per-token quantization of one row (bitnet.cpp's
/// `quantize_row_i8_s` with half-to-even rounding).
pub fn quantize_symmetric(x: &[f32]) -> QuantizedAct {
    quantize_row(x, &ActConfig::default())
}

/// Quantizes one row under `config`.
///
/// Symmetric rows of finite values go through SIMD passes where the CPU has them
/// (AVX2 or NEON: the maximum of finite magnitudes is the same whatever the order,
/// and the rounding is the same half-to-even), giving the bytes of
/// [`quantize_row_scalar`], the specification.
pub fn quantize_row(x: &[f32], config: &ActConfig) -> QuantizedAct {
    quantize_row_with(x, config, crate::arch::act_i8())
}

/// [`quantize_row`] without SIMD: the specification.
pub fn quantize_row_scalar(x: &[f32], config: &ActConfig) -> QuantizedAct {
    quantize_row_with(x, config, None)
}

fn quantize_row_with(
    x: &[f32],
    config: &ActConfig,
    simd: Option<(crate::arch::ActAbsMaxFn, crate::arch::ActI8Fn)>,
) -> QuantizedAct {
    let clip = config.clip.map(|c| c.abs() as f64);
    let mut q = vec![0i8; x.len()];
    match config.mode {
        ActMode::Symmetric => {
            // C's MAX(max, fabs(x)) over doubles, starting at 1e-5. For finite
            // values it is max(1e-5, max|x|), which the SIMD pass gives.
            let finite_max = simd.and_then(|(absmax, _)| absmax(x));
            let mut max = EPS;
            match finite_max {
                Some(m) => max = max.max(m as f64),
                None => {
                    for &v in x {
                        let a = (v as f64).abs();
                        max = if max > a { max } else { a };
                    }
                }
            }
            if let Some(c) = clip {
                max = max.min(c.max(EPS));
            }
            let s = (127.0 / max) as f32;
            let (done, mut sum) = match (simd, finite_max, config.rounding) {
                (Some((_, quant)), Some(_), ActRounding::HalfEven) => quant(x, s, &mut q),
                _ => (0, 0),
            };
            for (q, &v) in q[done..].iter_mut().zip(&x[done..]) {
                *q = sat_i8(round(v * s, config.rounding));
                sum += *q as i64;
            }
            QuantizedAct {
                q,
                scale: s,
                zero_point: 0,
                sum,
            }
        }
        ActMode::Asymmetric => {
            let (mut lo, mut hi) = (0f64, 0f64);
            for &v in x {
                let v = v as f64;
                lo = if v < lo { v } else { lo };
                hi = if v > hi { v } else { hi };
            }
            if let Some(c) = clip {
                lo = lo.max(-c);
                hi = hi.min(c);
            }
            let range = (hi - lo).max(EPS);
            let s = (255.0 / range) as f32;
            let zp = (round(-(lo as f32) * s, config.rounding) as i32 - 128).clamp(-128, 127);
            let mut sum = 0i64;
            for (q, &v) in q.iter_mut().zip(x) {
                *q = sat_i8(round(v * s, config.rounding) + zp as f32);
                sum += *q as i64;
            }
            QuantizedAct {
                q,
                scale: s,
                zero_point: zp,
                sum,
            }
        }
    }
}

/// Quantizes `x` (row-major `[tokens, dim]`) token by token.
pub fn quantize_tokens(x: &[f32], dim: usize, config: &ActConfig) -> Result<Vec<QuantizedAct>, BitnetError> {
    if dim == 0 {
        check_len("activation length", 0, x.len())?;
        return Ok(Vec::new());
    }
    if !x.len().is_multiple_of(dim) {
        return Err(BitnetError::Length {
            what: "activation length (a multiple of dim)",
            expected: x.len() / dim * dim,
            actual: x.len(),
        });
    }
    Ok(x.chunks_exact(dim).map(|t| quantize_row(t, config)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_matches_bitnet() {
        let x = [127.0f32, 2.5, -2.5, 0.5, 1.5, -200.0];
        let a = quantize_symmetric(&x);
        assert_eq!(a.scale, 127.0 / 200.0);
        let x = [127.0f32, 2.5, -2.5, 0.5, 1.5];
        let a = quantize_symmetric(&x);
        assert_eq!(a.scale, 1.0);
        assert_eq!(a.q, vec![127, 2, -2, 0, 2]);
        assert_eq!(a.sum, 129);
        let away = quantize_row(
            &x,
            &ActConfig {
                rounding: ActRounding::HalfAwayFromZero,
                ..Default::default()
            },
        );
        assert_eq!(away.q, vec![127, 3, -3, 1, 2]);
        let zero = quantize_symmetric(&[0.0; 4]);
        assert_eq!(zero.scale, (127.0 / 1e-5f64) as f32);
        assert_eq!(zero.sum, 0);
    }

    /// The SIMD passes give the specification's bytes, scale and sum: ties at
    /// ±k.5, saturation under a clip, lengths off the 32-element chunks, and NaN /
    /// infinity (which the scalar code decides).
    #[test]
    fn simd_rows_match_the_scalar_spec() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let configs = [
            ActConfig::default(),
            ActConfig {
                clip: Some(6.0),
                ..Default::default()
            },
            ActConfig {
                rounding: ActRounding::HalfAwayFromZero,
                ..Default::default()
            },
        ];
        for case in 0..400 {
            let n = [0, 1, 31, 32, 33, 64, 100, 2560, 4099][case % 9];
            let mut x: Vec<f32> = (0..n)
                .map(|_| match next() % 8 {
                    // With max |x| = 127 the scale is 1 and these are ties.
                    0 => (next() % 254) as f32 - 126.5,
                    1 => -0.0,
                    _ => ((next() % 2_000_001) as f32 / 1e6 - 1.0) * 50.0,
                })
                .collect();
            if n > 0 {
                x[(next() % n as u64) as usize] = if case % 3 == 0 { 127.0 } else { -127.0 };
                match case % 11 {
                    0 => x[(next() % n as u64) as usize] = f32::NAN,
                    1 => x[(next() % n as u64) as usize] = f32::INFINITY,
                    2 => x.iter_mut().for_each(|v| *v *= 1e-9),
                    _ => {}
                }
            }
            for c in &configs {
                let (fast, spec) = (quantize_row(&x, c), quantize_row_scalar(&x, c));
                assert_eq!(fast.q, spec.q, "case {case}, {c:?}");
                assert_eq!(
                    (fast.scale.to_bits(), fast.sum),
                    (spec.scale.to_bits(), spec.sum),
                    "case {case}"
                );
            }
        }
    }

    #[test]
    fn clip_saturates() {
        let x = [10.0f32, 1.0, -1.0];
        let cfg = ActConfig {
            clip: Some(1.0),
            ..Default::default()
        };
        let a = quantize_row(&x, &cfg);
        assert_eq!(a.q, vec![127, 127, -127]);
    }

    #[test]
    fn asymmetric_round_trips_within_a_step() {
        let x: Vec<f32> = (0..100).map(|i| i as f32 * 0.03 - 0.5).collect();
        let cfg = ActConfig {
            mode: ActMode::Asymmetric,
            ..Default::default()
        };
        let a = quantize_row(&x, &cfg);
        let back = a.dequantize();
        let step = 1.0 / a.scale;
        for (u, v) in x.iter().zip(&back) {
            assert!((u - v).abs() <= step, "{u} vs {v}");
        }
        assert_eq!(a.sum, a.q.iter().map(|&q| q as i64).sum::<i64>());
        assert!(quantize_tokens(&x, 7, &cfg).is_err());
        assert_eq!(quantize_tokens(&x, 10, &cfg).unwrap().len(), 10);
    }
}
