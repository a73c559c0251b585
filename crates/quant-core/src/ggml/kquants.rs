//! The K-quants (256-element super-blocks): scalar dequantizers for Q2_K … Q8_K and
//! the reference Q8_K activation quantizer. The K-quant weight quantizers live in
//! `quant_k`.

use super::blocks::*;
use super::util::nearest_int;
use bytemuck::{cast_slice, cast_slice_mut};

/// Scale and min `j` (0..8) of a Q4_K / Q5_K block (ggml's `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The 16 unsigned 6-bit scales of a Q3_K block (before the −32), four per
/// little-endian word.
#[inline(always)]
pub(crate) fn q3k_scale_words(packed: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let word = |i: usize| u32::from_le_bytes([packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]]);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ]
}

/// The 16 signed 6-bit scales of a Q3_K block (already minus 32).
#[inline(always)]
pub(crate) fn q3k_scales(packed: &[u8; 12]) -> [i8; 16] {
    let aux = q3k_scale_words(packed);
    let mut out = [0i8; 16];
    for (i, w) in aux.iter().enumerate() {
        for (k, byte) in w.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = (*byte as i8).wrapping_sub(32);
        }
    }
    out
}

/// Q2_K → f32.
pub(crate) fn dequantize_q2_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ2K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d(), b.dmin());
        let mut is = 0;
        let mut out = 0;
        for n in 0..2 {
            let q = &b.qs[32 * n..32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = b.scales[is];
                    is += 1;
                    let dl = d * (sc & 0x0f) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        y[out] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

/// Q3_K → f32.
pub(crate) fn dequantize_q3_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ3K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = b.d();
        let scales = q3k_scales(&b.scales);
        let mut is = 0;
        let mut out = 0;
        let mut m = 1u8;
        for n in 0..2 {
            let q = &b.qs[32 * n..32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * scales[is] as f32;
                    is += 1;
                    for l in 16 * half..16 * half + 16 {
                        let low = ((q[l] >> shift) & 3) as i8;
                        let high = if b.hmask[l] & m != 0 { 0 } else { 4 };
                        y[out] = dl * (low - high) as f32;
                        out += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// Q4_K → f32.
pub(crate) fn dequantize_q4_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d(), b.dmin());
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let q = &b.qs[32 * j..32 * j + 32];
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Q5_K → f32.
pub(crate) fn dequantize_q5_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d(), b.dmin());
        let (mut u1, mut u2) = (1u8, 2u8);
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let ql = &b.qs[32 * j..32 * j + 32];
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/// Q6_K → f32.
pub(crate) fn dequantize_q6_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ6K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (n, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b.ql[64 * n..64 * n + 64];
            let qh = &b.qh[32 * n..32 * n + 32];
            let sc = &b.scales[8 * n..8 * n + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }
}

/// Q8_K → f32.
pub(crate) fn dequantize_q8_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ8K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (j, y) in y.iter_mut().enumerate() {
            *y = d * b.q(j) as f32;
        }
    }
}

/// `quantize_row_q8_K_ref`: the activation quantizer of the K-quant dot products.
pub(crate) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ8K>(y)) {
        quantize_q8_k_block(x, b);
    }
}

/// One Q8_K block (`x` holds 256 values): ggml's `quantize_row_q8_K_ref`.
pub(crate) fn quantize_q8_k_block(x: &[f32], b: &mut BlockQ8K) {
    {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            return;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        set_q8_k_bsums(b);
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// A Q8_K block's `bsums`: the sum of each 16 quants, from its `qs`.
pub(crate) fn set_q8_k_bsums(b: &mut BlockQ8K) {
    for g in 0..16 {
        let sum: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i8 as i32).sum();
        b.bsums[2 * g..2 * g + 2].copy_from_slice(&(sum as i16).to_le_bytes());
    }
}
