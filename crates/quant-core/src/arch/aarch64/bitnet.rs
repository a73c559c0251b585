//! NEON I2_S block kernels: `Σ code·a` over whole blocks, exact (`vmull_s8` into
//! i16, pairwise-accumulated into i32 at once; no `dotprod` extension needed).

use std::arch::aarch64::*;

/// Σ over one 16-byte vector of codes: plane `k` (bits `7−2k..6−2k`) multiplies
/// the 16 activations at `a[k·stride..]`.
#[inline(always)]
fn dot16(p: &[u8], a: &[i8], stride: usize, acc: int32x4_t) -> int32x4_t {
    assert!(p.len() >= 16 && a.len() >= 3 * stride + 16);
    // SAFETY: NEON is baseline on aarch64; 16 readable bytes at `p` and at each
    // `a[k·stride..]` (asserted).
    unsafe {
        let x = vld1q_u8(p.as_ptr());
        let m = vdupq_n_u8(3);
        let c = [
            vshrq_n_u8(x, 6),
            vandq_u8(vshrq_n_u8(x, 4), m),
            vandq_u8(vshrq_n_u8(x, 2), m),
            vandq_u8(x, m),
        ];
        let mut acc = acc;
        for (k, c) in c.into_iter().enumerate() {
            let c = vreinterpretq_s8_u8(c);
            let av = vld1q_s8(a.as_ptr().add(k * stride));
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(c), vget_low_s8(av)));
            acc = vpadalq_s16(acc, vmull_high_s8(c, av));
        }
        acc
    }
}

/// X86 layout (128 elements in 32 bytes): two 16-byte halves per block.
pub(super) fn i2s_dot_x86(packed: &[u8], a: &[i8]) -> i32 {
    let blocks = (packed.len() / 32).min(a.len() / 128);
    // SAFETY: NEON is baseline on aarch64.
    let mut acc = unsafe { vdupq_n_s32(0) };
    for b in 0..blocks {
        acc = dot16(&packed[32 * b..], &a[128 * b..], 32, acc);
        acc = dot16(&packed[32 * b + 16..], &a[128 * b + 16..], 32, acc);
    }
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddvq_s32(acc) }
}

/// Arm layout (64 elements in 16 bytes).
pub(super) fn i2s_dot_arm(packed: &[u8], a: &[i8]) -> i32 {
    let blocks = (packed.len() / 16).min(a.len() / 64);
    // SAFETY: NEON is baseline on aarch64.
    let mut acc = unsafe { vdupq_n_s32(0) };
    for b in 0..blocks {
        acc = dot16(&packed[16 * b..], &a[64 * b..], 16, acc);
    }
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddvq_s32(acc) }
}
