//! Counting NaN and infinite values in float tensors from their bit patterns.

use qload_formats::DType;

/// NaN and ±Inf counts of a tensor's little-endian bytes, or `None` for types that
/// are not plain floats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite {
    /// NaN values.
    pub nan: u64,
    /// Infinite values.
    pub inf: u64,
}

/// Counts NaN/Inf values in `bytes` holding elements of `dtype`.
pub fn non_finite(dtype: DType, bytes: &[u8]) -> Option<NonFinite> {
    // (exponent mask, mantissa mask) per width; Inf = all-ones exponent, zero mantissa.
    let mut out = NonFinite::default();
    match dtype {
        DType::F32 => count(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64),
            0x7f80_0000,
            0x007f_ffff,
            &mut out,
        ),
        DType::F16 => count(
            bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u64),
            0x7c00,
            0x03ff,
            &mut out,
        ),
        DType::BF16 => count(
            bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u64),
            0x7f80,
            0x007f,
            &mut out,
        ),
        DType::F64 => count(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            0x7ff0_0000_0000_0000,
            0x000f_ffff_ffff_ffff,
            &mut out,
        ),
        // E4M3 (FN): no Inf; NaN is S.1111.111.
        DType::F8E4M3 => out.nan = bytes.iter().filter(|&&b| b & 0x7f == 0x7f).count() as u64,
        DType::F8E5M2 => count(bytes.iter().map(|&b| b as u64), 0x7c, 0x03, &mut out),
        _ => return None,
    }
    Some(out)
}

fn count(values: impl Iterator<Item = u64>, exp: u64, man: u64, out: &mut NonFinite) {
    let (mut nan, mut inf) = (0u64, 0u64);
    for v in values {
        if v & exp == exp {
            if v & man == 0 {
                inf += 1;
            } else {
                nan += 1;
            }
        }
    }
    out.nan += nan;
    out.inf += inf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let v: Vec<u8> = [1.0f32, f32::NAN, f32::INFINITY, -f32::INFINITY, -0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(non_finite(DType::F32, &v), Some(NonFinite { nan: 1, inf: 2 }));
        let h: Vec<u8> = [half::f16::NAN, half::f16::INFINITY, half::f16::ONE]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(non_finite(DType::F16, &h), Some(NonFinite { nan: 1, inf: 1 }));
        let b: Vec<u8> = [half::bf16::NAN, half::bf16::NEG_INFINITY, half::bf16::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(non_finite(DType::BF16, &b), Some(NonFinite { nan: 1, inf: 1 }));
        let d: Vec<u8> = [f64::NAN, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(non_finite(DType::F64, &d), Some(NonFinite { nan: 1, inf: 0 }));
        assert_eq!(non_finite(DType::Q4K, &[0; 144]), None);
    }
}
