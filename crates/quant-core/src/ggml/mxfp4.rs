//! MXFP4 (OCP microscaling FP4, E2M1 values with a shared E8M0 exponent) as ggml
//! stores it: dequantizer and the reference quantizer.

use super::blocks::*;
use bytemuck::{cast_slice, cast_slice_mut};

/// E2M1 values doubled (ggml's `kvalues_mxfp4`); the scale is halved to match.
pub(crate) const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half of the E8M0 scale 2^(e−127) (ggml's `GGML_E8M0_TO_FP32_HALF`), exact for every `e`.
#[inline(always)]
pub(crate) fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e - 1) as u32) << 23
    };
    f32::from_bits(bits)
}

/// MXFP4 → f32.
pub(crate) fn dequantize_mxfp4(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockMXFP4>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = e8m0_to_f32_half(b.e);
        for j in 0..16 {
            y[j] = KVALUES_MXFP4[(b.qs[j] & 0x0f) as usize] as f32 * d;
            y[j + 16] = KVALUES_MXFP4[(b.qs[j] >> 4) as usize] as f32 * d;
        }
    }
}

#[inline(always)]
pub(crate) fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (KVALUES_MXFP4[0] as f32 * d - x).abs();
    for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (k as f32 * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// `quantize_row_mxfp4_ref`.
pub(crate) fn quantize_mxfp4(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockMXFP4>(y)) {
        // ggml: `if (amax < fabsf(v)) amax = fabsf(v);` (a NaN never replaces amax).
        let amax = x.iter().fold(0.0f32, |a, v| if a < v.abs() { v.abs() } else { a });
        let e = if amax > 0.0 {
            super::util::c_trunc_u8(amax.log2().floor() - 2.0 + 127.0)
        } else {
            0
        };
        let d = e8m0_to_f32_half(e);
        b.e = e;
        for j in 0..16 {
            b.qs[j] = best_index(x[j], d) | (best_index(x[16 + j], d) << 4);
        }
    }
}
