//! IQ4_NL and IQ4_XS dequantizers (the non-linear 4-bit grid). Their quantizers
//! live in `quant_k`.

use super::blocks::*;
use bytemuck::cast_slice;

/// The IQ4_NL / IQ4_XS grid (ggml's `kvalues_iq4nl`).
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// IQ4_NL → f32.
pub(crate) fn dequantize_iq4_nl(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ4NL>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let d = b.d();
        for j in 0..16 {
            y[j] = d * KVALUES_IQ4NL[(b.qs[j] & 0x0f) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(b.qs[j] >> 4) as usize] as f32;
        }
    }
}

/// IQ4_XS → f32.
pub(crate) fn dequantize_iq4_xs(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ4XS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let sc = b.group_scales();
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let dl = d * sc[ib] as f32;
            let qs = &b.qs[16 * ib..16 * ib + 16];
            for j in 0..16 {
                y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0x0f) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}
