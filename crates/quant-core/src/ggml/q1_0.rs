//! Q1_0: one sign bit per element and one f16 scale per 128 elements, the scale
//! being the mean absolute value of the block (`quantize_row_q1_0_ref`).

use super::blocks::*;
use bytemuck::{cast_slice, cast_slice_mut};

/// Elements per block.
const QK1_0: usize = 128;

/// Q1_0 → f32: `+d` where the bit is set, `−d` where it is clear.
pub(crate) fn dequantize_q1_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ1_0>(x).iter().zip(y.chunks_exact_mut(QK1_0)) {
        let d = b.d();
        let neg_d = -d;
        for j in 0..QK1_0 {
            y[j] = if (b.qs[j / 8] >> (j % 8)) & 1 != 0 { d } else { neg_d };
        }
    }
}

/// `quantize_row_q1_0_ref` (ggml ignores an importance matrix for Q1_0): `d` is
/// the f32 mean of `|x|`, summed in order; the bit is set for `x >= 0` (so for
/// −0.0, and not for NaN).
pub(crate) fn quantize_q1_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK1_0).zip(cast_slice_mut::<u8, BlockQ1_0>(y)) {
        let mut sum_abs = 0.0f32;
        for v in x {
            sum_abs += v.abs();
        }
        b.d = f16_le_bytes(sum_abs / QK1_0 as f32);
        b.qs = [0; QK1_0 / 8];
        for j in 0..QK1_0 {
            if x[j] >= 0.0 {
                b.qs[j / 8] |= 1 << (j % 8);
            }
        }
    }
}
