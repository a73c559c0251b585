//! NEON kernels: Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the K-quants (Q4_K/Q5_K/Q6_K; Q2_K/Q3_K
//! dots only), IQ4_NL/IQ4_XS, F16/BF16, and dots for MXFP4/NVFP4/Q1_0/Q2_0/TQ1_0/TQ2_0
//! and the i-quants (IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS/IQ3_S/IQ1_S/IQ1_M). Dequantizers are
//! bit-exact with the scalar code; dot products are integer-exact per block
//! (`vmull_s8` and pairwise adds, no `dotprod` extension needed), and all but Q4_0/Q8_0
//! also keep the scalar code's f32 operations, so they are bit-exact too. F16/BF16
//! dots sum in f32 lanes (the scalar code in f64) and are held to a budget, as the AVX2
//! ones.

use crate::ggml::blocks::*;
use crate::ggml::kquants::scale_min_k4;
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

/// `n` floats of `x` as vectors, whether all are finite, and their largest magnitude
/// (exact: a maximum of finite values does not round).
fn load_floats<const N: usize>(x: &[f32]) -> ([float32x4_t; N], bool, f32) {
    assert!(x.len() >= 4 * N);
    // SAFETY: NEON is baseline; `x` holds at least 4·N floats (asserted).
    unsafe {
        let v: [float32x4_t; N] = std::array::from_fn(|k| vld1q_f32(x.as_ptr().add(4 * k)));
        let (mut m, mut finite) = (vdupq_n_f32(0.0), vdupq_n_u32(u32::MAX));
        for &v in &v {
            let a = vabsq_f32(v);
            m = vmaxq_f32(m, a);
            // False for ±∞ and NaN.
            finite = vandq_u32(finite, vcltq_f32(a, vdupq_n_f32(f32::INFINITY)));
        }
        (v, vminvq_u32(finite) == u32::MAX, vmaxvq_f32(m))
    }
}

/// Eight i32x4 of values in i8 range as 32 bytes.
fn narrow_32(q: [int32x4_t; 8], out: &mut [u8]) {
    assert!(out.len() >= 32);
    // SAFETY: NEON is baseline; `out` has 32 writable bytes (asserted).
    unsafe {
        let h: [int16x8_t; 4] = std::array::from_fn(|k| vcombine_s16(vqmovn_s32(q[2 * k]), vqmovn_s32(q[2 * k + 1])));
        vst1q_s8(out.as_mut_ptr().cast(), vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
        vst1q_s8(
            out.as_mut_ptr().add(16).cast(),
            vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])),
        );
    }
}

/// Q8_0's quants of a block: `roundf(x · id)` (`vcvtaq`: nearest, ties away from
/// zero, as C's `roundf`), the same f32 multiply as the scalar code.
fn q8_quants(v: [float32x4_t; 8], id: f32, qs: &mut [u8; 32]) {
    // SAFETY: NEON is baseline on aarch64.
    let q = v.map(|v| unsafe { vcvtaq_s32_f32(vmulq_n_f32(v, id)) });
    narrow_32(q, qs);
}

/// The Q8_0 activation quantizer (`quantize_row_q8_0_ref`), byte for byte; blocks
/// with a non-finite value or a subnormal scale take the scalar code.
pub(super) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(bytemuck::cast_slice_mut::<u8, BlockQ8_0>(y)) {
        let (v, finite, amax) = load_floats::<8>(x);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !finite || !id.is_finite() {
            crate::ggml::legacy::quantize_q8_0(x, bytemuck::bytes_of_mut(b));
            continue;
        }
        b.d = f16_le_bytes(d);
        q8_quants(v, id, &mut b.qs);
    }
}

/// The Q8_1 activation quantizer (`quantize_row_q8_1_ref`): Q8_0's quants and
/// `s = f16(Σq · d)`; byte for byte, the same fallbacks.
pub(super) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(bytemuck::cast_slice_mut::<u8, BlockQ8_1>(y)) {
        let (v, finite, amax) = load_floats::<8>(x);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !finite || !id.is_finite() {
            crate::ggml::legacy::quantize_q8_1(x, bytemuck::bytes_of_mut(b));
            continue;
        }
        q8_quants(v, id, &mut b.qs);
        let sum: i32 = b.qs.iter().map(|&q| q as i8 as i32).sum();
        b.d = f16_le_bytes(d);
        b.s = f16_le_bytes(sum as f32 * d);
    }
}

/// The Q8_K activation quantizer (`quantize_row_q8_K_ref`), byte for byte: the first
/// value of the largest magnitude sets `iscale = −127/max`; each value takes the same
/// f32 multiply, the magic-number rounding of `nearest_int` and `min(127)`. Blocks
/// with a non-finite value take the scalar code.
pub(super) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(bytemuck::cast_slice_mut::<u8, BlockQ8K>(y)) {
        let (v, finite, amax) = load_floats::<64>(x);
        if !finite {
            crate::ggml::kquants::quantize_q8_k_block(x, b);
            continue;
        }
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let first = x
            .iter()
            .position(|v| v.abs() == amax)
            .expect("amax is one of the magnitudes");
        let iscale = -127.0 / x[first];
        for (k, v) in v.chunks_exact(8).enumerate() {
            // SAFETY: NEON is baseline on aarch64.
            let q: [int32x4_t; 8] = std::array::from_fn(|j| unsafe {
                let bits = vreinterpretq_s32_f32(vaddq_f32(vmulq_n_f32(v[j], iscale), vdupq_n_f32(12_582_912.0)));
                let q = vsubq_s32(vandq_s32(bits, vdupq_n_s32(0x007f_ffff)), vdupq_n_s32(0x0040_0000));
                vminq_s32(q, vdupq_n_s32(127))
            });
            narrow_32(q, &mut b.qs[32 * k..32 * k + 32]);
        }
        crate::ggml::kquants::set_q8_k_bsums(b);
        b.d = (1.0 / iscale).to_le_bytes();
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

// ---------------------------------------------------------------------------
// K-quants and IQ4: the integer parts in NEON, every f32 operation as the scalar
// specification does it (same operands, same order), so results are bit-identical.

/// Loads 16 bytes from `p[at..]` (bounds-checked).
fn ld_u8(p: &[u8], at: usize) -> uint8x16_t {
    let s = &p[at..at + 16];
    // SAFETY: NEON is baseline; `s` is 16 readable bytes.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// Loads 16 signed bytes from `p[at..]` (bounds-checked).
fn ld_s8(p: &[u8], at: usize) -> int8x16_t {
    // SAFETY: NEON is baseline; reinterpreting u8 lanes as i8 is free.
    unsafe { vreinterpretq_s8_u8(ld_u8(p, at)) }
}

/// Σ a·b over 16 signed byte pairs.
fn dot16(a: int8x16_t, b: int8x16_t) -> i32 {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddvq_s32(dot_i8x16(a, b)) }
}

/// Stores 16 unsigned bytes as `v · d − m` into `y[..16]` (a product, then a
/// difference: no fused multiply-add, as the scalar code).
fn store_u8x16_affine(v: uint8x16_t, d: f32, m: f32, y: &mut [f32]) {
    assert!(y.len() >= 16);
    // SAFETY: NEON is baseline; `y` has at least 16 floats (asserted).
    unsafe {
        let lo = vmovl_u8(vget_low_u8(v));
        let hi = vmovl_u8(vget_high_u8(v));
        let parts = [
            vmovl_u16(vget_low_u16(lo)),
            vmovl_u16(vget_high_u16(lo)),
            vmovl_u16(vget_low_u16(hi)),
            vmovl_u16(vget_high_u16(hi)),
        ];
        for (k, p) in parts.into_iter().enumerate() {
            let f = vmulq_n_f32(vcvtq_f32_u32(p), d);
            vst1q_f32(y.as_mut_ptr().add(4 * k), vsubq_f32(f, vdupq_n_f32(m)));
        }
    }
}

/// Low and high nibbles of 16 bytes.
fn nibbles16(q: uint8x16_t) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8(q, 4)) }
}

pub(super) fn dequantize_q4_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d(), b.dmin());
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for h in 0..2 {
                let (lo, hi) = nibbles16(ld_u8(&b.qs, 32 * j + 16 * h));
                store_u8x16_affine(lo, d1, m1, &mut y[16 * h..]);
                store_u8x16_affine(hi, d2, m2, &mut y[32 + 16 * h..]);
            }
        }
    }
}

/// The four 16-value runs (q1..q4 of the scalar code, each − 32) of half `n`, rows
/// `16h .. 16h + 16` of a Q6_K block.
fn q6k_values(b: &BlockQ6K, n: usize, h: usize) -> [int8x16_t; 4] {
    let ql0 = ld_u8(&b.ql, 64 * n + 16 * h);
    let ql1 = ld_u8(&b.ql, 64 * n + 32 + 16 * h);
    let qh = ld_u8(&b.qh, 32 * n + 16 * h);
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let m4 = vdupq_n_u8(0x0f);
        let m2 = vdupq_n_u8(0x03);
        let high = |shift: u8| vshlq_n_u8::<4>(vandq_u8(vshlq_u8(qh, vdupq_n_s8(-(shift as i8))), m2));
        let v = [
            vorrq_u8(vandq_u8(ql0, m4), high(0)),
            vorrq_u8(vandq_u8(ql1, m4), high(2)),
            vorrq_u8(vshrq_n_u8(ql0, 4), high(4)),
            vorrq_u8(vshrq_n_u8(ql1, 4), high(6)),
        ];
        v.map(|u| vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8(32)))
    }
}

pub(super) fn dequantize_q6_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ6K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (n, y) in y.chunks_exact_mut(128).enumerate() {
            for h in 0..2 {
                for (k, q) in q6k_values(b, n, h).into_iter().enumerate() {
                    let sc = b.scales[8 * n + h + 2 * k] as i8;
                    store_i8x16_scaled(q, d * sc as f32, &mut y[32 * k + 16 * h..]);
                }
            }
        }
    }
}

/// The IQ4_NL grid as a NEON table.
fn iq4_table() -> int8x16_t {
    let grid: [u8; 16] = bytemuck::cast(crate::ggml::iq4::KVALUES_IQ4NL);
    // SAFETY: NEON is baseline; 16 readable bytes.
    unsafe { vreinterpretq_s8_u8(vld1q_u8(grid.as_ptr())) }
}

/// The 32 grid values of 16 nibble bytes at `p[at..]`: (low nibbles, high nibbles).
fn iq4_values(table: int8x16_t, p: &[u8], at: usize) -> (int8x16_t, int8x16_t) {
    let (lo, hi) = nibbles16(ld_u8(p, at));
    // SAFETY: NEON is baseline; indices are below 16.
    unsafe { (vqtbl1q_s8(table, lo), vqtbl1q_s8(table, hi)) }
}

pub(super) fn dequantize_iq4_nl(x: &[u8], y: &mut [f32]) {
    let t = iq4_table();
    for (b, y) in cast_slice::<u8, BlockIQ4NL>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (lo, hi) = iq4_values(t, &b.qs, 0);
        let d = b.d();
        let (y0, y1) = y.split_at_mut(16);
        store_i8x16_scaled(lo, d, y0);
        store_i8x16_scaled(hi, d, y1);
    }
}

pub(super) fn dequantize_iq4_xs(x: &[u8], y: &mut [f32]) {
    let t = iq4_table();
    for (b, y) in cast_slice::<u8, BlockIQ4XS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let sc = b.group_scales();
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let (lo, hi) = iq4_values(t, &b.qs, 16 * ib);
            let dl = d * sc[ib] as f32;
            let (y0, y1) = y.split_at_mut(16);
            store_i8x16_scaled(lo, dl, y0);
            store_i8x16_scaled(hi, dl, y1);
        }
    }
}

pub(super) fn vec_dot_q4_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ4K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let sm: [(u8, u8); 8] = std::array::from_fn(|g| scale_min_k4(g, &x.scales));
        let mut sumi = 0i32;
        for j in 0..4 {
            for h in 0..2 {
                let (lo, hi) = nibbles16(ld_u8(&x.qs, 32 * j + 16 * h));
                // SAFETY: NEON is baseline; nibbles are below 16, so they fit i8.
                let (lo, hi) = unsafe { (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)) };
                sumi += sm[2 * j].0 as i32 * dot16(lo, ld_s8(&y.qs, 64 * j + 16 * h));
                sumi += sm[2 * j + 1].0 as i32 * dot16(hi, ld_s8(&y.qs, 64 * j + 32 + 16 * h));
            }
        }
        let summ: i32 = (0..8)
            .map(|g| sm[g].1 as i32 * (y.bsum(2 * g) as i32 + y.bsum(2 * g + 1) as i32))
            .sum();
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

pub(super) fn vec_dot_q6_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ6K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut sumi = 0i32;
        for n in 0..2 {
            for h in 0..2 {
                for (k, q) in q6k_values(x, n, h).into_iter().enumerate() {
                    let g = 8 * n + 2 * k + h;
                    sumi += x.scales[g] as i8 as i32 * dot16(q, ld_s8(&y.qs, 16 * g));
                }
            }
        }
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

pub(super) fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let t = iq4_table();
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ4NL>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let (lo, hi) = iq4_values(t, &x.qs, 0);
        let s = dot16(lo, ld_s8(&y.qs, 0)) + dot16(hi, ld_s8(&y.qs, 16));
        sum += s as f32 * (x.d() * y.d());
    }
    sum
}

pub(super) fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let t = iq4_table();
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ4XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let sc = x.group_scales();
        let mut sumi = 0i32;
        for (ib, &s) in sc.iter().enumerate() {
            let (lo, hi) = iq4_values(t, &x.qs, 16 * ib);
            sumi += s * (dot16(lo, ld_s8(&y.qs, 32 * ib)) + dot16(hi, ld_s8(&y.qs, 32 * ib + 16)));
        }
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

/// The 2-bit plane `j` (bits `2j..2j+2`) of 16 bytes.
fn plane2(q: uint8x16_t, j: usize) -> uint8x16_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let m = vdupq_n_u8(3);
        match j {
            0 => vandq_u8(q, m),
            1 => vandq_u8(vshrq_n_u8(q, 2), m),
            2 => vandq_u8(vshrq_n_u8(q, 4), m),
            _ => vshrq_n_u8(q, 6),
        }
    }
}

/// Q2_K · Q8_K: per group of 16, `Σ code·a` of one 2-bit plane; scales and mins as the
/// scalar code weighs them (the same integers, the same f32 steps).
pub(super) fn vec_dot_q2_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ2K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut sumi = 0i32;
        for n in 0..2 {
            for h in 0..2 {
                let q = ld_u8(&x.qs, 32 * n + 16 * h);
                for j in 0..4 {
                    let g = 8 * n + 2 * j + h;
                    // SAFETY: NEON is baseline; codes 0..=3 reinterpret as i8 unchanged.
                    let c = unsafe { vreinterpretq_s8_u8(plane2(q, j)) };
                    sumi += (x.scales[g] & 0x0f) as i32 * dot16(c, ld_s8(&y.qs, 16 * g));
                }
            }
        }
        let summ: i32 = (0..16).map(|g| (x.scales[g] >> 4) as i32 * y.bsum(g) as i32).sum();
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

/// Q3_K · Q8_K: codes `low − 4·[high bit clear]` (−4..=3) per group of 16, the signed
/// 6-bit scales as the scalar code applies them.
pub(super) fn vec_dot_q3_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ3K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let sc = crate::ggml::kquants::q3k_scales(&x.scales);
        let mut sumi = 0i32;
        for n in 0..2 {
            for h in 0..2 {
                let q = ld_u8(&x.qs, 32 * n + 16 * h);
                let hm = ld_u8(&x.hmask, 16 * h);
                for j in 0..4 {
                    let g = 8 * n + 2 * j + h;
                    // SAFETY: NEON is baseline on aarch64.
                    let c = unsafe {
                        let clear = vceqq_u8(vandq_u8(hm, vdupq_n_u8(1 << (4 * n + j))), vdupq_n_u8(0));
                        vreinterpretq_s8_u8(vsubq_u8(plane2(q, j), vandq_u8(clear, vdupq_n_u8(4))))
                    };
                    sumi += sc[g] as i32 * dot16(c, ld_s8(&y.qs, 16 * g));
                }
            }
        }
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

/// TQ2_0 · Q8_K: `Σ (code − 1)·a` over 2-bit planes, exact; the scalar's f32 steps.
pub(super) fn vec_dot_tq2_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockTQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut sumi = 0i32;
        for n in 0..2 {
            for h in 0..2 {
                let q = ld_u8(&x.qs, 32 * n + 16 * h);
                for j in 0..4 {
                    // SAFETY: NEON is baseline; codes 0..=3 minus 1 fit in i8.
                    let c = unsafe { vsubq_s8(vreinterpretq_s8_u8(plane2(q, j)), vdupq_n_s8(1)) };
                    sumi += dot16(c, ld_s8(&y.qs, 128 * n + 32 * j + 16 * h));
                }
            }
        }
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

/// Base-3 digits minus one of 16 bytes: `((b·p mod 256)·3 >> 8) − 1` per lane, as
/// ggml's TQ1_0 decoder computes the digit.
fn trits_minus_one(b: uint8x16_t, p: uint8x16_t) -> int8x16_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let q = vmulq_u8(b, p);
        let three = vdup_n_u8(3);
        let lo = vshrn_n_u16(vmull_u8(vget_low_u8(q), three), 8);
        let hi = vshrn_n_u16(vmull_high_u8(q, vdupq_n_u8(3)), 8);
        vsubq_s8(vreinterpretq_s8_u8(vcombine_u8(lo, hi)), vdupq_n_s8(1))
    }
}

/// TQ1_0 · Q8_K: the base-3 digits decoded with 8-bit multiplies, `Σ (digit − 1)·a`
/// exact; the scalar's f32 steps.
pub(super) fn vec_dot_tq1_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    // qh lanes: byte i % 4 with digit i / 4.
    const QH_POW: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];
    let qh_pow = ld_u8(&QH_POW, 0);
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockTQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let b = [ld_u8(&x.qs, 0), ld_u8(&x.qs, 16), ld_u8(&x.qs, 32)];
        let mut sumi = 0i32;
        for (n, &p) in POW3.iter().enumerate() {
            // SAFETY: NEON is baseline on aarch64.
            let p = unsafe { vdupq_n_u8(p) };
            sumi += dot16(trits_minus_one(b[0], p), ld_s8(&y.qs, 32 * n));
            sumi += dot16(trits_minus_one(b[1], p), ld_s8(&y.qs, 32 * n + 16));
            sumi += dot16(trits_minus_one(b[2], p), ld_s8(&y.qs, 160 + 16 * n));
        }
        let qh = [x.qh, x.qh, x.qh, x.qh].concat();
        sumi += dot16(trits_minus_one(ld_u8(&qh, 0), qh_pow), ld_s8(&y.qs, 240));
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

/// 0xFF in lane `i` where bit `i` of the little-endian `bits` is set, else 0 (16 lanes).
fn bit_mask(bits: [u8; 2]) -> uint8x16_t {
    const LANE_BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let b = vcombine_u8(vdup_n_u8(bits[0]), vdup_n_u8(bits[1]));
        vtstq_u8(b, ld_u8(&LANE_BIT, 0))
    }
}

/// 0x10 in lane `i` where bit `i` of the little-endian `bits` is set (16 lanes).
fn fifth_bits(bits: [u8; 2]) -> uint8x16_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vandq_u8(bit_mask(bits), vdupq_n_u8(0x10)) }
}

/// Q4_1 · Q8_1: exact `Σ q·a`, then the scalar's f32 steps.
pub(super) fn vec_dot_q4_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ4_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        let q = ld_u8(&x.qs, 0);
        // SAFETY: NEON is baseline; nibbles reinterpret as i8 unchanged.
        let (lo, hi) = unsafe {
            (
                vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))),
                vreinterpretq_s8_u8(vshrq_n_u8(q, 4)),
            )
        };
        let sumi = dot16(lo, ld_s8(&y.qs, 0)) + dot16(hi, ld_s8(&y.qs, 16));
        sum += sumi as f32 * (x.d() * y.d()) + x.m() * y.s();
    }
    sum
}

/// Q5_1 · Q8_1: as Q4_1 with the fifth bits ORed in as 0x10.
pub(super) fn vec_dot_q5_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        let q = ld_u8(&x.qs, 0);
        let (h0, h1) = (fifth_bits([x.qh[0], x.qh[1]]), fifth_bits([x.qh[2], x.qh[3]]));
        // SAFETY: NEON is baseline; values 0..=31 reinterpret as i8 unchanged.
        let (lo, hi) = unsafe {
            (
                vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), h0)),
                vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), h1)),
            )
        };
        let sumi = dot16(lo, ld_s8(&y.qs, 0)) + dot16(hi, ld_s8(&y.qs, 16));
        sum += sumi as f32 * (x.d() * y.d()) + x.m() * y.s();
    }
    sum
}

/// MXFP4 · Q8_0: FP4 values by `vqtbl1q` from ggml's doubled integer table, exact block
/// sums, the scalar's f32 steps.
pub(super) fn vec_dot_mxfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::mxfp4::{KVALUES_MXFP4, e8m0_to_f32_half};
    let grid: [u8; 16] = bytemuck::cast(KVALUES_MXFP4);
    let table = ld_s8(&grid, 0);
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockMXFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let q = ld_u8(&x.qs, 0);
        // SAFETY: NEON is baseline; nibbles index the 16-entry table.
        let (lo, hi) = unsafe {
            (
                vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0f))),
                vqtbl1q_s8(table, vshrq_n_u8(q, 4)),
            )
        };
        let sumi = dot16(lo, ld_s8(&y.qs, 0)) + dot16(hi, ld_s8(&y.qs, 16));
        sum += sumi as f32 * (e8m0_to_f32_half(x.e) * y.d());
    }
    sum
}

/// Four i32 vectors' lane sums as one vector `[Σp0, Σp1, Σp2, Σp3]` (pairwise adds).
fn sums4(p: [int32x4_t; 4]) -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3])) }
}

/// `[a0·b0, a1·b1, a2·b2, a3·b3]` (four f32 products, as the scalar code rounds them).
fn mul4(a: [f32; 4], b: float32x4_t) -> [f32; 4] {
    let mut t = [0f32; 4];
    // SAFETY: NEON is baseline; `a` and `t` are four floats each.
    unsafe { vst1q_f32(t.as_mut_ptr(), vmulq_f32(vld1q_f32(a.as_ptr()), b)) };
    t
}

/// NVFP4 · Q8_0: FP4 values by `vqtbl1q` from ggml's doubled integer table, each
/// 16-element sub-block's exact `Σ q·a`, the UE4M3 scales from the table of the scalar
/// decoder, then the scalar's f32 steps in its order (`sum += (d_a·d_s)·Σ`, sub-block
/// after sub-block): the same bits.
pub(super) fn vec_dot_nvfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::mxfp4::KVALUES_MXFP4;
    use crate::ggml::nvfp4::UE4M3_HALF;
    let grid: [u8; 16] = bytemuck::cast(KVALUES_MXFP4);
    let table = ld_s8(&grid, 0);
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockNVFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        let p: [int32x4_t; 4] = std::array::from_fn(|s| {
            let q = ld_u8(&x.qs, 16 * (s / 2));
            // SAFETY: NEON is baseline; nibbles index the 16-entry table. Sub-block s
            // is the low then the high nibbles of bytes 8s..8s + 8.
            let v = unsafe {
                let (lo, hi) = (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8(q, 4));
                let idx = if s % 2 == 0 {
                    vcombine_u8(vget_low_u8(lo), vget_low_u8(hi))
                } else {
                    vcombine_u8(vget_high_u8(lo), vget_high_u8(hi))
                };
                vqtbl1q_s8(table, idx)
            };
            dot_i8x16(v, ld_s8(&y[s / 2].qs, 16 * (s % 2)))
        });
        let (d0, d1) = (y[0].d(), y[1].d());
        let ds = x.d.map(|b| UE4M3_HALF[b as usize]);
        let dd = [d0 * ds[0], d0 * ds[1], d1 * ds[2], d1 * ds[3]];
        // SAFETY: NEON is baseline on aarch64.
        for t in mul4(dd, unsafe { vcvtq_f32_s32(sums4(p)) }) {
            sum += t;
        }
    }
    sum
}

/// Q1_0 · Q8_0: the sign bits as ±1 bytes (`vbslq` on [`bit_mask`]), exact `Σ ±a` per
/// Q8_0 block, then the scalar's f32 steps in its order (`Σ_k d_k·Σ_k` from 0.0, four
/// blocks in turn, then `· d_w`): the same bits.
pub(super) fn vec_dot_q1_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is baseline on aarch64.
    let (plus, minus) = unsafe { (vdupq_n_s8(1), vdupq_n_s8(-1)) };
    // SAFETY: NEON is baseline on aarch64.
    let signs = |b: [u8; 2]| unsafe { vbslq_s8(bit_mask(b), plus, minus) };
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(4))
    {
        let p: [int32x4_t; 4] = std::array::from_fn(|k| {
            let b = &x.qs[4 * k..4 * k + 4];
            let lo = dot_i8x16(signs([b[0], b[1]]), ld_s8(&y[k].qs, 0));
            let hi = dot_i8x16(signs([b[2], b[3]]), ld_s8(&y[k].qs, 16));
            // SAFETY: NEON is baseline on aarch64.
            unsafe { vaddq_s32(lo, hi) }
        });
        let dy = [y[0].d(), y[1].d(), y[2].d(), y[3].d()];
        let mut sumi = 0.0f32;
        // SAFETY: NEON is baseline on aarch64.
        for t in mul4(dy, unsafe { vcvtq_f32_s32(sums4(p)) }) {
            sumi += t;
        }
        sum += x.d() * sumi;
    }
    sum
}

/// Q2_0 · Q8_0: per 16 elements the four code bytes spread by `vqtbl1q` (byte `i` to
/// lanes `4i..4i + 4`), shifted right by `2j` in lane `4i + j`, masked, minus one;
/// exact `Σ (code − 1)·a` per Q8_0 block, then the scalar's f32 steps in its order.
pub(super) fn vec_dot_q2_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    const SPREAD: [u8; 16] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    const SHIFTS: [u8; 16] = {
        let mut s = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            s[i] = (-2 * (i % 4) as i8) as u8;
            i += 1;
        }
        s
    };
    let (spread, shifts) = (ld_u8(&SPREAD, 0), ld_s8(&SHIFTS, 0));
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        let q = ld_u8(&x.qs, 0);
        let p: [int32x4_t; 4] = std::array::from_fn(|c| {
            // SAFETY: NEON is baseline; codes 0..=3 minus 1 fit in i8.
            let v = unsafe {
                let b = vqtbl1q_u8(q, vaddq_u8(spread, vdupq_n_u8(4 * c as u8)));
                let codes = vandq_u8(vshlq_u8(b, shifts), vdupq_n_u8(3));
                vsubq_s8(vreinterpretq_s8_u8(codes), vdupq_n_s8(1))
            };
            dot_i8x16(v, ld_s8(&y[c / 2].qs, 16 * (c % 2)))
        });
        // SAFETY: NEON is baseline on aarch64.
        let (s0, s1) = unsafe { (vaddvq_s32(vaddq_s32(p[0], p[1])), vaddvq_s32(vaddq_s32(p[2], p[3]))) };
        let mut sumi = 0.0f32;
        sumi += y[0].d() * s0 as f32;
        sumi += y[1].d() * s1 as f32;
        sum += x.d() * sumi;
    }
    sum
}

// ---------------------------------------------------------------------------
// Q5_0, Q5_K, F16, BF16

/// The 32 five-bit values (0..=31) of a Q5_0/Q5_1 block: low nibbles with bits
/// 0..16 of `qh`, then high nibbles with bits 16..32.
fn q5_values(qs: &[u8; 16], qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    let (lo, hi) = nibbles16(ld_u8(qs, 0));
    let (h0, h1) = (fifth_bits([qh[0], qh[1]]), fifth_bits([qh[2], qh[3]]));
    // SAFETY: NEON is baseline on aarch64.
    unsafe { (vorrq_u8(lo, h0), vorrq_u8(hi, h1)) }
}

/// Q5_0 · Q8_0: exact `Σ (q − 16)·a` per block, then the scalar's f32 steps.
pub(super) fn vec_dot_q5_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let (lo, hi) = q5_values(&x.qs, x.qh);
        // SAFETY: NEON is baseline; 0..=31 minus 16 fits in i8.
        let (lo, hi) = unsafe {
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16)),
                vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16)),
            )
        };
        let sumi = dot16(lo, ld_s8(&y.qs, 0)) + dot16(hi, ld_s8(&y.qs, 16));
        sum += sumi as f32 * (x.d() * y.d());
    }
    sum
}

/// 0x10 in the lanes of `q` whose bit `b` is set.
fn bit_as_0x10(q: uint8x16_t, b: usize) -> uint8x16_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vandq_u8(vtstq_u8(q, vdupq_n_u8(1 << b)), vdupq_n_u8(0x10)) }
}

/// Rows `16h .. 16h + 16` of Q5_K chunk `j` (elements `64j ..`): the first group's
/// values (low nibbles, fifth bit `2j` of `qh`), then the second's (high nibbles,
/// bit `2j + 1`), 0..=31 each.
fn q5k_values(b: &BlockQ5K, j: usize, h: usize) -> (uint8x16_t, uint8x16_t) {
    let qh = ld_u8(&b.qh, 16 * h);
    let (lo, hi) = nibbles16(ld_u8(&b.qs, 32 * j + 16 * h));
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        (
            vorrq_u8(lo, bit_as_0x10(qh, 2 * j)),
            vorrq_u8(hi, bit_as_0x10(qh, 2 * j + 1)),
        )
    }
}

/// Q5_K · Q8_K: as Q4_K with the fifth bits ORed in as 0x10 (the same integers, the
/// same f32 steps as the scalar code).
pub(super) fn vec_dot_q5_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let sm: [(u8, u8); 8] = std::array::from_fn(|g| scale_min_k4(g, &x.scales));
        let mut sumi = 0i32;
        for j in 0..4 {
            for h in 0..2 {
                let (lo, hi) = q5k_values(x, j, h);
                // SAFETY: NEON is baseline; values 0..=31 reinterpret as i8 unchanged.
                let (lo, hi) = unsafe { (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)) };
                sumi += sm[2 * j].0 as i32 * dot16(lo, ld_s8(&y.qs, 64 * j + 16 * h));
                sumi += sm[2 * j + 1].0 as i32 * dot16(hi, ld_s8(&y.qs, 64 * j + 32 + 16 * h));
            }
        }
        let summ: i32 = (0..8)
            .map(|g| sm[g].1 as i32 * (y.bsum(2 * g) as i32 + y.bsum(2 * g + 1) as i32))
            .sum();
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

/// Eight little-endian f16 at `p[at..]` as two f32 vectors (`fcvtl`, exact).
fn ld_f16x8(p: &[u8], at: usize) -> (float32x4_t, float32x4_t) {
    // SAFETY: NEON is baseline; `ld_u8` bounds-checks the 16 bytes; the conversion is
    // exact (every f16 is an f32).
    unsafe {
        let h = vreinterpretq_f16_u8(ld_u8(p, at));
        (vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h))
    }
}

/// Eight little-endian bf16 at `p[at..]` as two f32 vectors (the bits shifted up,
/// NaNs made quiet as `half` does).
fn ld_bf16x8(p: &[u8], at: usize) -> (float32x4_t, float32x4_t) {
    // SAFETY: NEON is baseline; `ld_u8` bounds-checks the 16 bytes.
    unsafe {
        let h = vreinterpretq_u16_u8(ld_u8(p, at));
        let nan = vcgtq_u16(vandq_u16(h, vdupq_n_u16(0x7fff)), vdupq_n_u16(0x7f80));
        let h = vorrq_u16(h, vandq_u16(nan, vdupq_n_u16(0x0040)));
        (
            vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
            vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
        )
    }
}

/// A dot product of two 16-bit float rows in f32 lanes with fused multiply-adds, 32
/// elements per step in four accumulators; the tail in scalar f32. `ld` converts eight
/// elements, `one` a single one.
fn vec_dot_16bit(
    w: &[u8],
    a: &[u8],
    ld: impl Fn(&[u8], usize) -> (float32x4_t, float32x4_t),
    one: impl Fn([u8; 2]) -> f32,
) -> f32 {
    let mut wc = w.chunks_exact(64);
    let mut ac = a.chunks_exact(64);
    // SAFETY: NEON is baseline on aarch64; the loads are bounds-checked by `ld`.
    let mut sum = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        for (x, y) in (&mut wc).zip(&mut ac) {
            for k in 0..2 {
                let (x0, x1) = ld(x, 32 * k);
                let (x2, x3) = ld(x, 32 * k + 16);
                let (y0, y1) = ld(y, 32 * k);
                let (y2, y3) = ld(y, 32 * k + 16);
                acc[0] = vfmaq_f32(acc[0], x0, y0);
                acc[1] = vfmaq_f32(acc[1], x1, y1);
                acc[2] = vfmaq_f32(acc[2], x2, y2);
                acc[3] = vfmaq_f32(acc[3], x3, y3);
            }
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])))
    };
    for (x, y) in wc.remainder().chunks_exact(2).zip(ac.remainder().chunks_exact(2)) {
        sum += one([x[0], x[1]]) * one([y[0], y[1]]);
    }
    sum
}

/// F16 · F16 in f32 lanes (as the AVX2 kernel; the scalar code sums in f64, so the
/// result is held to a budget, not to its bits).
pub(super) fn vec_dot_f16(w: &[u8], a: &[u8]) -> f32 {
    vec_dot_16bit(w, a, ld_f16x8, f16_le)
}

/// BF16 · BF16 in f32 lanes (as the AVX2 kernel; held to a budget like F16).
pub(super) fn vec_dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    vec_dot_16bit(w, a, ld_bf16x8, |b| half::bf16::from_le_bytes(b).to_f32())
}

// ---------------------------------------------------------------------------
// Dequantizers of Q4_1, Q5_0, Q5_1, Q5_K, F16, BF16: the scalar code's f32 operations.

/// Stores 16 unsigned bytes as `v · d + m` into `y[..16]` (a product, then a sum: no
/// fused multiply-add, as the scalar code).
fn store_u8x16_mul_add(v: uint8x16_t, d: f32, m: f32, y: &mut [f32]) {
    let y = &mut y[..16];
    // SAFETY: NEON is baseline; `y` is 16 writable floats (sliced above).
    unsafe {
        let lo = vmovl_u8(vget_low_u8(v));
        let hi = vmovl_u8(vget_high_u8(v));
        let parts = [
            vmovl_u16(vget_low_u16(lo)),
            vmovl_u16(vget_high_u16(lo)),
            vmovl_u16(vget_low_u16(hi)),
            vmovl_u16(vget_high_u16(hi)),
        ];
        for (k, p) in parts.into_iter().enumerate() {
            let f = vmulq_n_f32(vcvtq_f32_u32(p), d);
            vst1q_f32(y.as_mut_ptr().add(4 * k), vaddq_f32(f, vdupq_n_f32(m)));
        }
    }
}

pub(super) fn dequantize_q4_1(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ4_1>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (lo, hi) = nibbles16(ld_u8(&b.qs, 0));
        let (d, m) = (b.d(), b.m());
        let (y0, y1) = y.split_at_mut(16);
        store_u8x16_mul_add(lo, d, m, y0);
        store_u8x16_mul_add(hi, d, m, y1);
    }
}

pub(super) fn dequantize_q5_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (lo, hi) = q5_values(&b.qs, b.qh);
        // SAFETY: NEON is baseline; 0..=31 minus 16 fits in i8.
        let (lo, hi) = unsafe {
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(16)),
                vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(16)),
            )
        };
        let d = b.d();
        let (y0, y1) = y.split_at_mut(16);
        store_i8x16_scaled(lo, d, y0);
        store_i8x16_scaled(hi, d, y1);
    }
}

pub(super) fn dequantize_q5_1(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5_1>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let (lo, hi) = q5_values(&b.qs, b.qh);
        let (d, m) = (b.d(), b.m());
        let (y0, y1) = y.split_at_mut(16);
        store_u8x16_mul_add(lo, d, m, y0);
        store_u8x16_mul_add(hi, d, m, y1);
    }
}

pub(super) fn dequantize_q5_k(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d(), b.dmin());
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for h in 0..2 {
                let (lo, hi) = q5k_values(b, j, h);
                store_u8x16_affine(lo, d1, m1, &mut y[16 * h..]);
                store_u8x16_affine(hi, d2, m2, &mut y[32 + 16 * h..]);
            }
        }
    }
}

/// A 16-bit float row to f32: eight elements per step by `ld`, the tail by `one`.
fn dequantize_16bit(
    x: &[u8],
    y: &mut [f32],
    ld: impl Fn(&[u8], usize) -> (float32x4_t, float32x4_t),
    one: impl Fn([u8; 2]) -> f32,
) {
    let mut src = x.chunks_exact(16);
    let mut dst = y.chunks_exact_mut(8);
    for (s, d) in (&mut src).zip(&mut dst) {
        let (lo, hi) = ld(s, 0);
        // SAFETY: NEON is baseline; `d` is 8 writable floats.
        unsafe {
            vst1q_f32(d.as_mut_ptr(), lo);
            vst1q_f32(d.as_mut_ptr().add(4), hi);
        }
    }
    for (s, d) in src.remainder().chunks_exact(2).zip(dst.into_remainder()) {
        *d = one([s[0], s[1]]);
    }
}

pub(super) fn dequantize_f16(x: &[u8], y: &mut [f32]) {
    dequantize_16bit(x, y, ld_f16x8, f16_le);
}

pub(super) fn dequantize_bf16(x: &[u8], y: &mut [f32]) {
    dequantize_16bit(x, y, ld_bf16x8, |b| half::bf16::from_le_bytes(b).to_f32());
}

// ---------------------------------------------------------------------------
// i-quant dots: grid rows read as scalars and assembled into vectors, signs applied
// from bit masks (`vtstq_u8`), exact integer sums per block, then exactly the scalar
// code's f32 steps, so the results are bit-identical.

/// Two 8-byte grid rows as one vector (`r0` in lanes 0..8).
fn rows8x2(r0: &[u8; 8], r1: &[u8; 8]) -> uint8x16_t {
    // SAFETY: NEON is baseline; no memory is read through a pointer.
    unsafe { vcombine_u8(vcreate_u8(u64::from_le_bytes(*r0)), vcreate_u8(u64::from_le_bytes(*r1))) }
}

/// Two 8-value IQ1 grid rows (−1/0/+1) as one vector (`r0` in lanes 0..8).
fn rows8x2_i8(r0: &[i8; 8], r1: &[i8; 8]) -> int8x16_t {
    // SAFETY: NEON is baseline; reinterpreting u8 lanes as i8 is free.
    unsafe { vreinterpretq_s8_u8(rows8x2(&r0.map(|v| v as u8), &r1.map(|v| v as u8))) }
}

/// Four 4-byte grid rows as one vector (`r[k]` in lanes `4k..4k + 4`).
fn rows4x4(r: [&[u8; 4]; 4]) -> uint8x16_t {
    let w = |k: usize| u32::from_le_bytes(*r[k]) as u64;
    // SAFETY: NEON is baseline; no memory is read through a pointer.
    unsafe { vcombine_u8(vcreate_u8(w(0) | (w(1) << 32)), vcreate_u8(w(2) | (w(3) << 32))) }
}

/// Grid magnitudes (below 128) negated in the lanes whose sign bit is set: bit `i % 8`
/// of `signs[i / 8]` for lane `i`.
fn signed16(g: uint8x16_t, signs: [u8; 2]) -> int8x16_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let m = vreinterpretq_s8_u8(bit_mask(signs));
        // (g ^ m) − m: −g where m is −1, g where m is 0.
        vsubq_s8(veorq_s8(vreinterpretq_s8_u8(g), m), m)
    }
}

/// `2·(n & 15) + 1`: the odd i-quant scale of a 4-bit field.
fn odd_scale(n: u32) -> i32 {
    2 * (n & 15) as i32 + 1
}

/// IQ2_XXS · Q8_K: per 32 elements four 8-byte grid rows, four 7-bit `ksigns` indices
/// and one odd scale in the second u32.
pub(super) fn vec_dot_iq2_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ2XXS_GRID as G, KSIGNS_IQ2XS as K};
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut sumi = 0i32;
        for (ib, q) in x.qs.chunks_exact(8).enumerate() {
            let aux32 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
            let s = |l: usize| K[((aux32 >> (7 * l)) & 127) as usize];
            let v0 = signed16(rows8x2(&G[q[0] as usize], &G[q[1] as usize]), [s(0), s(1)]);
            let v1 = signed16(rows8x2(&G[q[2] as usize], &G[q[3] as usize]), [s(2), s(3)]);
            let ls = odd_scale(aux32 >> 28);
            sumi += ls * (dot16(v0, ld_s8(&y.qs, 32 * ib)) + dot16(v1, ld_s8(&y.qs, 32 * ib + 16)));
        }
        sum += x.d() * y.d() * sumi as f32;
    }
    0.125 * sum
}

/// IQ2_XS · Q8_K: u16 codes (9-bit grid index, 7-bit `ksigns` index), one odd scale
/// per 16 elements.
pub(super) fn vec_dot_iq2_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ2XS_GRID as G, KSIGNS_IQ2XS as K};
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut sumi = 0i32;
        for (ib, q) in x.qs.chunks_exact(8).enumerate() {
            let c: [usize; 4] = std::array::from_fn(|l| u16::from_le_bytes([q[2 * l], q[2 * l + 1]]) as usize);
            let v0 = signed16(rows8x2(&G[c[0] & 511], &G[c[1] & 511]), [K[c[0] >> 9], K[c[1] >> 9]]);
            let v1 = signed16(rows8x2(&G[c[2] & 511], &G[c[3] & 511]), [K[c[2] >> 9], K[c[3] >> 9]]);
            let sc = x.scales[ib] as u32;
            sumi += odd_scale(sc) * dot16(v0, ld_s8(&y.qs, 32 * ib))
                + odd_scale(sc >> 4) * dot16(v1, ld_s8(&y.qs, 32 * ib + 16));
        }
        sum += x.d() * y.d() * sumi as f32;
    }
    0.125 * sum
}

/// IQ2_S · Q8_K: 10-bit grid indices (high bits in `qh`), explicit sign bytes, one odd
/// scale per 16 elements.
pub(super) fn vec_dot_iq2_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ2S_GRID as G;
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let (qs, signs) = x.qs.split_at(QK_K / 8);
        let mut sumi = 0i32;
        for ib in 0..8 {
            let (q, s) = (&qs[4 * ib..4 * ib + 4], &signs[4 * ib..4 * ib + 4]);
            let qh = x.qh[ib] as usize;
            let r = |l: usize| &G[q[l] as usize | ((qh << (8 - 2 * l)) & 0x300)];
            let v0 = signed16(rows8x2(r(0), r(1)), [s[0], s[1]]);
            let v1 = signed16(rows8x2(r(2), r(3)), [s[2], s[3]]);
            let sc = x.scales[ib] as u32;
            sumi += odd_scale(sc) * dot16(v0, ld_s8(&y.qs, 32 * ib))
                + odd_scale(sc >> 4) * dot16(v1, ld_s8(&y.qs, 32 * ib + 16));
        }
        sum += x.d() * y.d() * sumi as f32;
    }
    0.125 * sum
}

/// IQ3_XXS · Q8_K: eight 4-byte grid rows per 32 elements, `ksigns` and the odd scale
/// as IQ2_XXS.
pub(super) fn vec_dot_iq3_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ3XXS_GRID as G, KSIGNS_IQ2XS as K};
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let (qs, scales_and_signs) = x.qs.split_at(QK_K / 4);
        let mut sumi = 0i32;
        for ib in 0..8 {
            let (q, ss) = (&qs[8 * ib..8 * ib + 8], &scales_and_signs[4 * ib..4 * ib + 4]);
            let aux32 = u32::from_le_bytes([ss[0], ss[1], ss[2], ss[3]]);
            let s = |l: usize| K[((aux32 >> (7 * l)) & 127) as usize];
            let r = |m: usize| &G[q[m] as usize];
            let v0 = signed16(rows4x4([r(0), r(1), r(2), r(3)]), [s(0), s(1)]);
            let v1 = signed16(rows4x4([r(4), r(5), r(6), r(7)]), [s(2), s(3)]);
            let ls = odd_scale(aux32 >> 28);
            sumi += ls * (dot16(v0, ld_s8(&y.qs, 32 * ib)) + dot16(v1, ld_s8(&y.qs, 32 * ib + 16)));
        }
        sum += x.d() * y.d() * sumi as f32;
    }
    0.25 * sum
}

/// IQ3_S · Q8_K: 9-bit indices of 4-byte grid rows (row `m`'s ninth bit is bit `m` of
/// `qh`), explicit sign bytes, one odd scale per 32 elements.
pub(super) fn vec_dot_iq3_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ3S_GRID as G;
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut sumi = 0i32;
        for ib in 0..8 {
            let (q, s) = (&x.qs[8 * ib..8 * ib + 8], &x.signs[4 * ib..4 * ib + 4]);
            let qh = x.qh[ib] as usize;
            let r = |m: usize| &G[q[m] as usize | (((qh >> m) & 1) << 8)];
            let v0 = signed16(rows4x4([r(0), r(1), r(2), r(3)]), [s[0], s[1]]);
            let v1 = signed16(rows4x4([r(4), r(5), r(6), r(7)]), [s[2], s[3]]);
            let ls = odd_scale((x.scales[ib / 2] >> (4 * (ib % 2))) as u32);
            sumi += ls * (dot16(v0, ld_s8(&y.qs, 32 * ib)) + dot16(v1, ld_s8(&y.qs, 32 * ib + 16)));
        }
        sum += x.d() * y.d() * sumi as f32;
    }
    sum
}

/// IQ1_S · Q8_K: the grid part `Σ ls·Σ g·a` exactly, the δ part `Σ ±ls·Σ a` from the
/// activation's group sums (as the scalar), then `d_w·d_a·(Σ + δ·Σ_δ)`.
pub(super) fn vec_dot_iq1_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ1S_DELTA, IQ1S_GRID as G};
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let (mut sumi, mut sumi1) = (0i32, 0i32);
        for ib in 0..8 {
            let qh = u16::from_le_bytes([x.qh[2 * ib], x.qh[2 * ib + 1]]) as usize;
            let q = &x.qs[4 * ib..4 * ib + 4];
            let r = |l: usize| &G[q[l] as usize | (((qh >> (3 * l)) & 7) << 8)];
            let v0 = rows8x2_i8(r(0), r(1));
            let v1 = rows8x2_i8(r(2), r(3));
            let ls = odd_scale((qh >> 12) as u32 & 7);
            sumi += ls * (dot16(v0, ld_s8(&y.qs, 32 * ib)) + dot16(v1, ld_s8(&y.qs, 32 * ib + 16)));
            let ls_delta = if qh & 0x8000 != 0 { -ls } else { ls };
            sumi1 += ls_delta * (y.bsum(2 * ib) as i32 + y.bsum(2 * ib + 1) as i32);
        }
        sum += x.d() * y.d() * (sumi as f32 + IQ1S_DELTA * sumi1 as f32);
    }
    sum
}

/// IQ1_M · Q8_K: as IQ1_S with one odd scale per 16 elements and one δ sign per 8,
/// applied to the activations as ±1 bytes; the f16 scale assembled from the scales'
/// high nibbles.
pub(super) fn vec_dot_iq1_m_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ1S_DELTA, IQ1S_GRID as G};
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1M>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let sc: [u16; 4] = std::array::from_fn(|i| u16::from_le_bytes([x.scales[2 * i], x.scales[2 * i + 1]]));
        let scale = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_le(scale.to_le_bytes());
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for ib in 0..8 {
            let (s, shift) = (sc[ib / 2] as u32, 6 * (ib % 2));
            let (ls0, ls1) = (odd_scale((s >> shift) & 7), odd_scale((s >> (shift + 3)) & 7));
            let q = &x.qs[4 * ib..4 * ib + 4];
            let h = [x.qh[2 * ib] as usize, x.qh[2 * ib + 1] as usize];
            let r = |l: usize| &G[q[l] as usize | ((h[l / 2] << (8 - 4 * (l % 2))) & 0x700)];
            // The δ sign of row `l`: −1 where its bit is set, else +1.
            let delta = |l: usize| -> i8 { if h[l / 2] & (0x08 << (4 * (l % 2))) != 0 { -1 } else { 1 } };
            let d0 = rows8x2_i8(&[delta(0); 8], &[delta(1); 8]);
            let d1 = rows8x2_i8(&[delta(2); 8], &[delta(3); 8]);
            let (a0, a1) = (ld_s8(&y.qs, 32 * ib), ld_s8(&y.qs, 32 * ib + 16));
            sumi1 += ls0 * dot16(rows8x2_i8(r(0), r(1)), a0) + ls1 * dot16(rows8x2_i8(r(2), r(3)), a1);
            sumi2 += ls0 * dot16(d0, a0) + ls1 * dot16(d1, a1);
        }
        sum += d * y.d() * (sumi1 as f32 + IQ1S_DELTA * sumi2 as f32);
    }
    sum
}
