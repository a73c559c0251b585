//! How far a quantized tensor is from its f32 original.

use super::BitnetError;
use super::error::check_len;
use super::ternary::{TernaryConfig, TernaryReport, ternarize};
use crate::QuantError;
use qload_dtype::DType;

/// Error statistics of an approximation against a reference (all in f64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Mean squared error.
    pub mse: f64,
    /// `sqrt(mse) / sqrt(mean(reference²))` (0 when both are 0, ∞ when only the
    /// reference is 0).
    pub rel_rmse: f64,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Cosine similarity (1 when both vectors are 0, 0 when exactly one is).
    pub cosine: f64,
}

/// Compares `approx` with `reference` (same length).
pub fn compare(reference: &[f32], approx: &[f32]) -> Result<ErrorStats, BitnetError> {
    check_len("approximation length", reference.len(), approx.len())?;
    let (mut se, mut rr, mut aa, mut ra, mut max_abs) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&r, &a) in reference.iter().zip(approx) {
        let (r, a) = (r as f64, a as f64);
        let d = r - a;
        se += d * d;
        rr += r * r;
        aa += a * a;
        ra += r * a;
        // NaN differences propagate into max_abs.
        max_abs = if d.abs() > max_abs || d.is_nan() {
            d.abs()
        } else {
            max_abs
        };
    }
    let n = reference.len().max(1) as f64;
    let mse = se / n;
    let rel_rmse = match (se == 0.0, rr == 0.0) {
        (true, _) => 0.0,
        (false, true) => f64::INFINITY,
        (false, false) => (se / rr).sqrt(),
    };
    let cosine = match (rr == 0.0, aa == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => ra / (rr.sqrt() * aa.sqrt()),
    };
    Ok(ErrorStats {
        mse,
        rel_rmse,
        max_abs,
        cosine,
    })
}

/// A quantization scheme to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// A codec of the ggml registry ([`crate::codec`]), quantized row by row
    /// without an importance matrix.
    Codec(DType),
    /// Ternary absmean under a configuration.
    Ternary(TernaryConfig),
}

/// The result of [`quantize_and_measure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Error against the input.
    pub stats: ErrorStats,
    /// Storage cost: the codec's block bytes per element; for ternary, 2 bits per
    /// code (I2_S packing) plus 32 bits per scale.
    pub bits_per_weight: f64,
    /// For ternary schemes, the codes' counts and scales.
    pub ternary: Option<TernaryReport>,
}

/// Quantizes `x` (row-major `[rows, cols]`) under `scheme`, dequantizes it, and
/// measures the error.
pub fn quantize_and_measure(scheme: &Scheme, x: &[f32], rows: usize, cols: usize) -> Result<Measurement, BitnetError> {
    let n = rows.checked_mul(cols).ok_or(BitnetError::Shape {
        rows,
        cols,
        why: "the element count overflows",
    })?;
    check_len("tensor length", n, x.len())?;
    match *scheme {
        Scheme::Codec(dtype) => {
            let c = crate::codec(dtype).ok_or(QuantError::Unsupported { dtype, op: "measure" })?;
            let mut bytes = vec![0u8; c.bytes_for(n)?];
            if n > 0 {
                c.quantize(x, cols, None, &mut bytes)?;
            }
            let mut back = vec![0f32; n];
            c.dequantize(&bytes, &mut back)?;
            Ok(Measurement {
                stats: compare(x, &back)?,
                bits_per_weight: 8.0 * c.block_bytes() as f64 / c.block_elems() as f64,
                ternary: None,
            })
        }
        Scheme::Ternary(cfg) => {
            let t = ternarize(x, rows, cols, &cfg)?;
            let back = t.dequantize();
            let bits = if n == 0 {
                0.0
            } else {
                2.0 + 32.0 * t.scales.len() as f64 / n as f64
            };
            Ok(Measurement {
                stats: compare(x, &back)?,
                bits_per_weight: bits,
                ternary: Some(t.report()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitnet::ternary::TernaryPreset;

    #[test]
    fn statistics_of_simple_vectors() {
        let s = compare(&[1.0, 0.0], &[1.0, 0.0]).unwrap();
        assert_eq!((s.mse, s.rel_rmse, s.max_abs, s.cosine), (0.0, 0.0, 0.0, 1.0));
        let s = compare(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert_eq!((s.mse, s.max_abs, s.cosine), (1.0, 1.0, 0.0));
        assert!((s.rel_rmse - 2f64.sqrt()).abs() < 1e-12);
        assert!(compare(&[1.0], &[]).is_err());
    }

    #[test]
    fn codecs_and_ternary_are_measured() {
        let (rows, cols) = (4, 256);
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i as f32) * 0.37).sin()).collect();
        let q8 = quantize_and_measure(&Scheme::Codec(DType::Q8_0), &x, rows, cols).unwrap();
        assert!(q8.stats.cosine > 0.9999);
        assert_eq!(q8.bits_per_weight, 8.5);
        let t = quantize_and_measure(&Scheme::Ternary(TernaryPreset::Default.config()), &x, rows, cols).unwrap();
        let a = quantize_and_measure(&Scheme::Ternary(TernaryPreset::Aggressive.config()), &x, rows, cols).unwrap();
        assert!(t.stats.cosine > 0.8 && a.stats.mse <= t.stats.mse);
        assert_eq!(t.ternary.unwrap().scales.len(), 1);
        assert!(quantize_and_measure(&Scheme::Codec(DType::Q4K), &x, 4, 256).is_ok());
        assert!(quantize_and_measure(&Scheme::Codec(DType::Q4K), &x[..400], 4, 100).is_err());
    }
}
