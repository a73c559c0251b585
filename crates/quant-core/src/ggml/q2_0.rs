//! Q2_0: 2-bit codes and one f16 scale per 64 elements (ggml type 42). Element `j` is
//! bits `2·(j % 4)` of byte `j / 4`; its value is `(code − 1)·d`, so codes 0, 1, 2, 3
//! stand for −d, 0, +d and +2d. ggml's reference quantizer takes `d = max|x|` of the
//! block and writes `roundf(x / d) + 1`: ternary codes (3 is never written).

use super::blocks::*;
use super::util::c_trunc_i32;
use bytemuck::{cast_slice, cast_slice_mut};

/// Elements per block.
const QK2_0: usize = 64;

/// Q2_0 → f32: `(code − 1)·d`.
pub(crate) fn dequantize_q2_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ2_0>(x).iter().zip(y.chunks_exact_mut(QK2_0)) {
        let d = b.d();
        for (j, y) in y.iter_mut().enumerate() {
            let q = (b.qs[j / 4] >> (2 * (j % 4))) & 3;
            *y = (q as i32 - 1) as f32 * d;
        }
    }
}

/// `quantize_row_q2_0_ref` (no importance matrix): `d = max|x|` over the block (NaN
/// never wins the comparison), `id = 1/d` (0 when `d` is 0), code
/// `clamp((int)roundf(x·id) + 1, 0, 3)` with C's conversion of NaN to `INT_MIN`.
pub(crate) fn quantize_q2_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK2_0).zip(cast_slice_mut::<u8, BlockQ2_0>(y)) {
        let mut amax = 0.0f32;
        for v in x {
            let a = v.abs();
            if a > amax {
                amax = a;
            }
        }
        let d = amax;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_le_bytes(d);
        b.qs = [0; QK2_0 / 4];
        for (j, v) in x.iter().enumerate() {
            let q = c_trunc_i32((v * id).round()).saturating_add(1).clamp(0, 3);
            b.qs[j / 4] |= (q as u8) << (2 * (j % 4));
        }
    }
}
