//! NVFP4 as ggml stores it: 64 E2M1 values in four sub-blocks of 16, each with
//! its own unsigned E4M3 (UE4M3) scale byte, and no per-tensor scale. Dequantizer
//! and the reference quantizer (`quantize_row_nvfp4_ref`).
//!
//! The values are ggml's `kvalues_mxfp4` (E2M1 doubled), so the scale decodes to
//! half its UE4M3 value, as ggml's `ggml_ue4m3_to_fp32` does.

use super::blocks::*;
use super::mxfp4::{KVALUES_MXFP4, best_index};
use bytemuck::{cast_slice, cast_slice_mut};

/// Elements per sub-block (one scale byte each).
const QK_SUB: usize = 16;

/// `2^e` for `e` in f32's normal range.
#[inline(always)]
const fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// Half the value of a UE4M3 byte (ggml's `ggml_ue4m3_to_fp32`): 4 exponent bits
/// (bias 7) in bits 3–6, 3 mantissa bits, bit 7 ignored; `0x00` and `0x7F` (the
/// NaN code) decode to 0. Exact for every byte.
#[inline(always)]
pub(crate) const fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = ((x >> 3) & 0xf) as i32;
    let man = (x & 7) as f32;
    let raw = if exp == 0 {
        man * pow2(-9)
    } else {
        (1.0 + man / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

/// [`ue4m3_to_f32_half`] of every byte, for the SIMD dot products (the same bits:
/// the table is that function evaluated at compile time).
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) static UE4M3_HALF: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ue4m3_to_f32_half(i as u8);
        i += 1;
    }
    t
};

/// ggml's `ggml_fp32_to_ue4m3`: non-positive and NaN give 0, values above 448 are
/// clamped, the mantissa is rounded half up on its fourth bit, and the largest
/// code produced is `0x7E`.
#[inline(always)]
pub(crate) fn f32_to_ue4m3(x: f32) -> u8 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let x = if x > 448.0 { 448.0 } else { x };
    let bits = x.to_bits();
    let fp32_exp = ((bits >> 23) & 0xff) as i32 - 127;
    let fp32_man = ((bits >> 20) & 7) as i32;
    let mut exp = fp32_exp + 7;
    if exp <= 0 {
        // Subnormal: man · 2^-9 with man = (int)(x · 512 + 0.5); here x < 2^-6.
        let man = ((x * 512.0 + 0.5) as i32).min(7);
        return if man < 1 { 0 } else { man as u8 };
    }
    if exp >= 15 {
        return 0x7e;
    }
    let mut man = fp32_man + ((bits >> 19) & 1) as i32;
    if man > 7 {
        man = 0;
        exp += 1;
        if exp >= 15 {
            return 0x7e;
        }
    }
    ((exp << 3) | man) as u8
}

/// NVFP4 → f32.
pub(crate) fn dequantize_nvfp4(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockNVFP4>(x).iter().zip(y.chunks_exact_mut(64)) {
        for (s, y) in y.chunks_exact_mut(QK_SUB).enumerate() {
            let d = ue4m3_to_f32_half(b.d[s]);
            for j in 0..QK_SUB / 2 {
                let q = b.qs[s * (QK_SUB / 2) + j];
                y[j] = KVALUES_MXFP4[(q & 0x0f) as usize] as f32 * d;
                y[j + QK_SUB / 2] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
            }
        }
    }
}

/// `quantize_row_nvfp4_ref` (ggml ignores an importance matrix for NVFP4).
pub(crate) fn quantize_nvfp4(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(64).zip(cast_slice_mut::<u8, BlockNVFP4>(y)) {
        for (s, xb) in x.chunks_exact(QK_SUB).enumerate() {
            // ggml: `if (amax < fabsf(v)) amax = fabsf(v);` (a NaN never replaces amax).
            let amax = xb.iter().fold(0.0f32, |a, v| if a < v.abs() { v.abs() } else { a });
            let ue = f32_to_ue4m3(amax / 6.0);
            b.d[s] = ue;
            let d = ue4m3_to_f32_half(ue);
            for j in 0..QK_SUB / 2 {
                let lo = best_index(xb[j], d);
                let hi = best_index(xb[QK_SUB / 2 + j], d);
                b.qs[s * (QK_SUB / 2) + j] = lo | (hi << 4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code the encoder can produce (exponents below 15, then the saturated
    /// `0x7E`) re-encodes to itself from its value, and the special bytes decode as
    /// ggml decodes them.
    #[test]
    fn ue4m3_codes_round_trip() {
        for code in (1u8..0x78).chain([0x7e]) {
            let v = 2.0 * ue4m3_to_f32_half(code);
            assert_eq!(f32_to_ue4m3(v), code, "code {code:#04x} ({v})");
        }
        assert_eq!(ue4m3_to_f32_half(0x7f), 0.0);
        assert_eq!(ue4m3_to_f32_half(0xff), 240.0);
        assert_eq!(ue4m3_to_f32_half(0x80), 0.0);
        assert_eq!(ue4m3_to_f32_half(0x01), 2f32.powi(-10));
        assert_eq!(f32_to_ue4m3(f32::NAN), 0);
        assert_eq!(f32_to_ue4m3(-1.0), 0);
        assert_eq!(f32_to_ue4m3(f32::INFINITY), 0x7e);
        assert_eq!(f32_to_ue4m3(448.0), 0x7e);
    }

    #[test]
    fn ue4m3_table_holds_the_decoder_bits() {
        for x in 0..=255u8 {
            assert_eq!(
                UE4M3_HALF[x as usize].to_bits(),
                ue4m3_to_f32_half(x).to_bits(),
                "{x:#04x}"
            );
        }
    }
}
