//! NEON kernels for the 32-element types: dequantizers bit-exact with the scalar
//! code, dot products integer-exact per block (`vmull_s8` + pairwise adds, no
//! `dotprod` extension needed).

use crate::ggml::blocks::*;
use bytemuck::cast_slice;
use std::arch::aarch64::*;

/// Stores 16 signed bytes · `d` into `y[..16]`.
fn store_i8x16_scaled(v: int8x16_t, d: f32, y: &mut [f32]) {
    assert!(y.len() >= 16);
    // SAFETY: NEON is baseline on aarch64; `y` has at least 16 floats (asserted).
    unsafe {
        let lo = vmovl_s8(vget_low_s8(v));
        let hi = vmovl_s8(vget_high_s8(v));
        let parts = [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_s16(vget_high_s16(lo)),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_s16(vget_high_s16(hi)),
        ];
        for (k, p) in parts.into_iter().enumerate() {
            vst1q_f32(y.as_mut_ptr().add(4 * k), vmulq_n_f32(vcvtq_f32_s32(p), d));
        }
    }
}

/// The 32 values (q − 8) of a Q4_0 block: low nibbles then high nibbles.
fn q4_0_values(b: &BlockQ4_0) -> (int8x16_t, int8x16_t) {
    // SAFETY: NEON is baseline; `b.qs` is 16 readable bytes.
    unsafe {
        let q = vld1q_u8(b.qs.as_ptr());
        let lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f)));
        let hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
        (vsubq_s8(lo, vdupq_n_s8(8)), vsubq_s8(hi, vdupq_n_s8(8)))
    }
}

pub(super) fn dequantize_q4_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (lo, hi) = q4_0_values(b);
        let d = b.d();
        let (y0, y1) = y.split_at_mut(16);
        store_i8x16_scaled(lo, d, y0);
        store_i8x16_scaled(hi, d, y1);
    }
}

pub(super) fn dequantize_q8_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ8_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        // SAFETY: NEON is baseline; `b.qs` is 32 readable bytes.
        let (lo, hi) = unsafe { (vld1q_s8(b.qs.as_ptr().cast()), vld1q_s8(b.qs.as_ptr().add(16).cast())) };
        let d = b.d();
        let (y0, y1) = y.split_at_mut(16);
        store_i8x16_scaled(lo, d, y0);
        store_i8x16_scaled(hi, d, y1);
    }
}

/// Σ a·b over 16 signed bytes pairs, as four i32 lanes.
fn dot_i8x16(a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
        vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

pub(super) fn vec_dot_q4_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is baseline; every load reads inside a block.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        for (x, y) in cast_slice::<u8, BlockQ4_0>(w)
            .iter()
            .zip(cast_slice::<u8, BlockQ8_0>(a))
        {
            let (lo, hi) = q4_0_values(x);
            let y0 = vld1q_s8(y.qs.as_ptr().cast());
            let y1 = vld1q_s8(y.qs.as_ptr().add(16).cast());
            let s = vaddq_s32(dot_i8x16(lo, y0), dot_i8x16(hi, y1));
            acc = vmlaq_n_f32(acc, vcvtq_f32_s32(s), x.d() * y.d());
        }
        vaddvq_f32(acc)
    }
}

pub(super) fn vec_dot_q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is baseline; every load reads inside a block.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        for (x, y) in cast_slice::<u8, BlockQ8_0>(w)
            .iter()
            .zip(cast_slice::<u8, BlockQ8_0>(a))
        {
            let x0 = vld1q_s8(x.qs.as_ptr().cast());
            let x1 = vld1q_s8(x.qs.as_ptr().add(16).cast());
            let y0 = vld1q_s8(y.qs.as_ptr().cast());
            let y1 = vld1q_s8(y.qs.as_ptr().add(16).cast());
            let s = vaddq_s32(dot_i8x16(x0, y0), dot_i8x16(x1, y1));
            acc = vmlaq_n_f32(acc, vcvtq_f32_s32(s), x.d() * y.d());
        }
        vaddvq_f32(acc)
    }
}
