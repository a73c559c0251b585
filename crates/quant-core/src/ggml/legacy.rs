//! The 32-element ggml types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 — scalar
//! dequantizers and the reference quantizers (`quantize_row_*_ref`), which are the
//! specification every SIMD path is checked against.

use super::blocks::*;
use super::util::{c_max, c_round_i8, c_trunc_i8};
use bytemuck::{cast_slice, cast_slice_mut};

/// Q4_0 → f32 (whole blocks; `y.len() == 32 · blocks`).
pub(crate) fn dequantize_q4_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = b.d();
        for j in 0..16 {
            let x0 = (b.qs[j] & 0x0f) as i32 - 8;
            let x1 = (b.qs[j] >> 4) as i32 - 8;
            y[j] = x0 as f32 * d;
            y[j + 16] = x1 as f32 * d;
        }
    }
}

/// Q4_1 → f32.
pub(crate) fn dequantize_q4_1(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4_1>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (d, m) = (b.d(), b.m());
        for j in 0..16 {
            let x0 = (b.qs[j] & 0x0f) as i32;
            let x1 = (b.qs[j] >> 4) as i32;
            y[j] = x0 as f32 * d + m;
            y[j + 16] = x1 as f32 * d + m;
        }
    }
}

/// Q5_0 → f32.
pub(crate) fn dequantize_q5_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = b.d();
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..16 {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            let x0 = ((b.qs[j] as u32 & 0x0f) | xh0) as i32 - 16;
            let x1 = ((b.qs[j] as u32 >> 4) | xh1) as i32 - 16;
            y[j] = x0 as f32 * d;
            y[j + 16] = x1 as f32 * d;
        }
    }
}

/// Q5_1 → f32.
pub(crate) fn dequantize_q5_1(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5_1>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (d, m) = (b.d(), b.m());
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..16 {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            let x0 = (b.qs[j] as u32 & 0x0f) | xh0;
            let x1 = (b.qs[j] as u32 >> 4) | xh1;
            y[j] = x0 as f32 * d + m;
            y[j + 16] = x1 as f32 * d + m;
        }
    }
}

/// Q8_0 → f32.
pub(crate) fn dequantize_q8_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ8_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = b.d();
        for j in 0..QK32 {
            y[j] = (b.qs[j] as i8) as f32 * d;
        }
    }
}

/// Q8_1 → f32 (the `s` field is not needed).
pub(crate) fn dequantize_q8_1(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ8_1>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = b.d();
        for j in 0..QK32 {
            y[j] = (b.qs[j] as i8) as f32 * d;
        }
    }
}

/// The element of largest magnitude (first one on ties) and its magnitude.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// `quantize_row_q4_0_ref`.
pub(crate) fn quantize_q4_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ4_0>(y)) {
        let (_, max) = signed_absmax(x);
        let d = max / -8.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        for j in 0..16 {
            let xi0 = (c_trunc_i8(x[j] * id + 8.5) as u8).min(15);
            let xi1 = (c_trunc_i8(x[16 + j] * id + 8.5) as u8).min(15);
            b.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

/// `quantize_row_q4_1_ref`.
pub(crate) fn quantize_q4_1(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ4_1>(y)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        b.m = f16_le_bytes(min);
        for j in 0..16 {
            let xi0 = (c_trunc_i8((x[j] - min) * id + 0.5) as u8).min(15);
            let xi1 = (c_trunc_i8((x[16 + j] - min) * id + 0.5) as u8).min(15);
            b.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

/// `quantize_row_q5_0_ref`.
pub(crate) fn quantize_q5_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ5_0>(y)) {
        let (_, max) = signed_absmax(x);
        let d = max / -16.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        let mut qh = 0u32;
        for j in 0..16 {
            let xi0 = (c_trunc_i8(x[j] * id + 16.5) as u8).min(31);
            let xi1 = (c_trunc_i8(x[16 + j] * id + 16.5) as u8).min(31);
            b.qs[j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// `quantize_row_q5_1_ref`.
pub(crate) fn quantize_q5_1(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ5_1>(y)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        b.m = f16_le_bytes(min);
        let mut qh = 0u32;
        for j in 0..16 {
            let xi0 = c_trunc_i8((x[j] - min) * id + 0.5) as u8;
            let xi1 = c_trunc_i8((x[16 + j] - min) * id + 0.5) as u8;
            b.qs[j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// `quantize_row_q8_0_ref`.
pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ8_0>(y)) {
        let amax = x.iter().fold(0.0f32, |a, v| c_max(a, v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        for j in 0..QK32 {
            b.qs[j] = c_round_i8(x[j] * id) as u8;
        }
    }
}

/// `quantize_row_q8_1_ref`: Q8_0's quants plus `s = d·Σq`.
pub(crate) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ8_1>(y)) {
        let amax = x.iter().fold(0.0f32, |a, v| c_max(a, v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        b.d = f16_le_bytes(d);
        let mut sum = 0i32;
        for j in 0..16 {
            let q0 = c_round_i8(x[j] * id);
            let q1 = c_round_i8(x[16 + j] * id);
            b.qs[j] = q0 as u8;
            b.qs[16 + j] = q1 as u8;
            sum += q0 as i32 + q1 as i32;
        }
        b.s = f16_le_bytes(sum as f32 * d);
    }
}
