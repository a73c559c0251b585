//! Upstream ggml's ternary types TQ1_0 and TQ2_0: dequantizers and the reference
//! quantizers (`quantize_row_tq*_0_ref`).

use super::blocks::*;
use super::util::c_lroundf;
use bytemuck::{cast_slice, cast_slice_mut};

const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

/// The trit at position `n` (0 = most significant) of a byte holding 5 trits
/// as a fixed-point fraction of 243.
#[inline(always)]
fn trit(byte: u8, n: usize) -> i16 {
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i16
}

/// TQ1_0 → f32.
pub(crate) fn dequantize_tq1_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockTQ1_0>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let mut out = 0;
        // 32 bytes × 5 trits, then 16 bytes × 5 trits, then 4 bytes × 4 trits.
        for (start, width) in [(0usize, 32usize), (32, 16)] {
            for n in 0..5 {
                for m in 0..width {
                    y[out] = (trit(b.qs[start + m], n) - 1) as f32 * d;
                    out += 1;
                }
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                y[out] = (trit(b.qh[j], n) - 1) as f32 * d;
                out += 1;
            }
        }
    }
}

/// TQ2_0 → f32.
pub(crate) fn dequantize_tq2_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockTQ2_0>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let mut out = 0;
        for j in [0, 32] {
            for l in 0..4 {
                for m in 0..32 {
                    let q = (b.qs[j + m] >> (2 * l)) & 3;
                    y[out] = (q as i8 - 1) as f32 * d;
                    out += 1;
                }
            }
        }
    }
}

#[inline(always)]
fn absmax(x: &[f32]) -> f32 {
    // ggml: `amax = MAX(amax, fabsf(x))` with the C macro's NaN behaviour.
    x.iter().fold(0.0f32, |a, v| super::util::c_max(a, v.abs()))
}

/// `lroundf(x·id) + 1` as ggml's ternary quantizers compute it (int arithmetic).
#[inline(always)]
fn code(v: f32, id: f32) -> i32 {
    (c_lroundf(v * id) as i32).wrapping_add(1)
}

/// Packs trits (most significant first) into a byte as a fixed-point fraction of 243.
#[inline(always)]
fn pack_trits(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// `quantize_row_tq1_0_ref`.
pub(crate) fn quantize_tq1_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockTQ1_0>(y)) {
        let d = absmax(x);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_le_bytes(d);
        let mut base = 0;
        for (start, width) in [(0usize, 32usize), (32, 16)] {
            for m in 0..width {
                let mut q = 0u8;
                for n in 0..5 {
                    q = q.wrapping_mul(3).wrapping_add(code(x[base + m + n * width], id) as u8);
                }
                b.qs[start + m] = pack_trits(q);
            }
            base += 5 * width;
        }
        for j in 0..4 {
            let mut q = 0u8;
            for m in 0..4 {
                q = q.wrapping_mul(3).wrapping_add(code(x[base + j + m * 4], id) as u8);
            }
            b.qh[j] = pack_trits(q.wrapping_mul(3));
        }
    }
}

/// `quantize_row_tq2_0_ref`.
pub(crate) fn quantize_tq2_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockTQ2_0>(y)) {
        let d = absmax(x);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_le_bytes(d);
        for (half, j) in [0usize, 32].into_iter().enumerate() {
            let x = &x[128 * half..128 * half + 128];
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    let xi = code(x[m + n * 32], id);
                    q = q.wrapping_add(((xi & 3) << (2 * n)) as u8);
                }
                b.qs[j + m] = q;
            }
        }
    }
}
