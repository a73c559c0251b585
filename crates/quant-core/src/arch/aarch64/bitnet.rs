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

/// 16 table bytes.
#[inline(always)]
fn table(t: &[u8; 16]) -> uint8x16_t {
    // SAFETY: 16 readable bytes; NEON is baseline on aarch64.
    unsafe { vld1q_u8(t.as_ptr()) }
}

/// Looks up `idx` (nibbles) in an i16 table held as low and high bytes: the i16
/// values of lanes 0..8 and 8..16.
#[inline]
#[target_feature(enable = "neon")]
fn lookup16(lo: &[u8; 16], hi: &[u8; 16], idx: uint8x16_t) -> (int16x8_t, int16x8_t) {
    let (l, h) = (vqtbl1q_u8(table(lo), idx), vqtbl1q_u8(table(hi), idx));
    (
        vreinterpretq_s16_u8(vzip1q_u8(l, h)),
        vreinterpretq_s16_u8(vzip2q_u8(l, h)),
    )
}

/// Adds i32 lanes into `acc[..4 · w.len()]`; false when `acc` is shorter.
#[inline]
#[target_feature(enable = "neon")]
fn flush(acc: &mut [i32], w: &[int32x4_t]) -> bool {
    let Some(a) = acc.get_mut(..4 * w.len()) else {
        return false;
    };
    for (c, v) in a.chunks_exact_mut(4).zip(w) {
        // SAFETY: `c` is 4 i32.
        unsafe { vst1q_s32(c.as_mut_ptr(), vaddq_s32(vld1q_s32(c.as_ptr()), *v)) };
    }
    true
}

/// Widens 8 i16 sums into two i32x4.
#[inline]
#[target_feature(enable = "neon")]
fn widen(w: &mut [int32x4_t], s: int16x8_t) {
    w[0] = vaddw_s16(w[0], vget_low_s16(s));
    w[1] = vaddw_high_s16(w[1], s);
}

/// TL1 lookup-table accumulation with `vqtbl1q` (the NEON twin of the AVX2 kernel;
/// see `bitnet::tl` for the byte order): 16 bytes are 16 rows × 4 columns, each
/// nibble indexes its activation pair's 9-entry i16 table (low/high bytes `lo`/`hi`).
/// Adds `Σ w·q` into `acc`; returns whether any nibble was above 8 or anything was
/// too short (the caller then runs the scalar code).
///
/// Only row tiles `t0..t1` (of `BM` rows each) run; `acc` holds their rows, row
/// `t0·BM` first, so that tiles can go to different threads.
#[target_feature(enable = "neon")]
pub(super) fn tl1_accumulate(
    bytes: &[u8],
    (rows, cols): (usize, usize),
    (bm_tile, bk, bm, by): (usize, usize, usize, usize),
    (lo, hi): (&[[u8; 16]], &[[u8; 16]]),
    (t0, t1): (usize, usize),
    acc: &mut [i32],
) -> bool {
    if !crate::arch::tl1_tiling_fits((bm_tile, bk, bm, by)) {
        return true;
    }
    let mask = vdupq_n_u8(0x0f);
    let mut top = vdupq_n_u8(0);
    for mo in t0..t1.min(rows / bm_tile) {
        for ko in 0..cols / bk {
            for mb in 0..bm_tile / bm {
                let tile = ((mo * (cols / bk) + ko) * (bm_tile / bm) + mb) * (bm * bk / 4);
                for m16o in 0..bm / 16 {
                    let row0 = (mo - t0) * bm_tile + mb * bm + m16o * 16;
                    let mut w = [vdupq_n_s32(0); 4];
                    let (mut s0, mut s1) = (vdupq_n_s16(0), vdupq_n_s16(0));
                    let mut steps = 0;
                    for kb in 0..bk / by {
                        for kq in 0..by / 4 {
                            let o = tile + kb * (bm * by / 4) + (m16o * (by / 4) + kq) * 16;
                            let pair = (ko * bk + kb * by + kq * 4) / 2;
                            let (Some(b), Some(lh), Some(hh), Some(ll), Some(hl)) = (
                                bytes.get(o..o + 16),
                                lo.get(pair),
                                hi.get(pair),
                                lo.get(pair + 1),
                                hi.get(pair + 1),
                            ) else {
                                return true;
                            };
                            // SAFETY: `b` is 16 readable bytes.
                            let v = unsafe { vld1q_u8(b.as_ptr()) };
                            let (nh, nl) = (vshrq_n_u8(v, 4), vandq_u8(v, mask));
                            top = vmaxq_u8(top, vmaxq_u8(nh, nl));
                            let (a0, a1) = lookup16(lh, hh, nh);
                            let (b0, b1) = lookup16(ll, hl, nl);
                            s0 = vaddq_s16(s0, vaddq_s16(a0, b0));
                            s1 = vaddq_s16(s1, vaddq_s16(a1, b1));
                            steps += 1;
                            if steps == crate::arch::TL1_STEPS_PER_WIDEN {
                                widen(&mut w[..2], s0);
                                widen(&mut w[2..], s1);
                                (s0, s1, steps) = (vdupq_n_s16(0), vdupq_n_s16(0), 0);
                            }
                        }
                    }
                    widen(&mut w[..2], s0);
                    widen(&mut w[2..], s1);
                    if !acc.get_mut(row0..).is_some_and(|a| flush(a, &w)) {
                        return true;
                    }
                }
            }
        }
    }
    vmaxvq_u8(top) > 8
}

/// TL2 lookup-table accumulation with `vqtbl1q` (the NEON twin of the AVX2 kernel;
/// see `bitnet::tl`): 32 magnitude bytes are 32 rows × 2 triples with quarters 1 and
/// 2 swapped, so each 16-byte half's `zip1`/`zip2` give rows 0..8 and 16..24 (first
/// half) or 8..16 and 24..32 (second half). The sign plane's 16 u16 words are rows
/// 0..16 with triple `t` at bit `15 − 2t`, rows 16..32 at `14 − 2t`; a sign is applied
/// as `(v ^ m) − m` with `m` its bit spread over the word. i16 sums span at most 64
/// triples (≤ 24 576). The pair-coded remainder runs the same way without signs.
/// Returns whether a nibble was out of range (above 13 / 8) or anything too short.
///
/// Only row tiles `t0..t1` (of `BM` rows each) run; `acc` holds their rows, row
/// `t0·BM` first, so that tiles can go to different threads.
#[target_feature(enable = "neon")]
pub(super) fn tl2_accumulate(
    bytes: &[u8],
    (rows, cols, k3): (usize, usize, usize),
    (bm_tile, bk): (usize, usize),
    tri: (&[[u8; 16]], &[[u8; 16]]),
    pair: (&[[u8; 16]], &[[u8; 16]]),
    (t0, t1): (usize, usize),
    acc: &mut [i32],
) -> bool {
    let Some((mags, sgn, prs)) = crate::bitnet::tl::tl2_regions(bytes, (rows, cols, k3), (bm_tile, bk)) else {
        return true;
    };
    let mask = vdupq_n_u8(0x0f);
    let (mut top3, mut top2) = (vdupq_n_u8(0), vdupq_n_u8(0));
    let load = |b: &[u8]| {
        // SAFETY: callers pass 32 bytes; two 16-byte loads.
        unsafe { (vld1q_u8(b.as_ptr()), vld1q_u8(b.as_ptr().add(16))) }
    };
    // Applies the sign in bit 15 of `s` to `v`.
    let signed = |v: int16x8_t, s: int16x8_t| {
        let m = vshrq_n_s16(s, 15);
        vsubq_s16(veorq_s16(v, m), m)
    };
    let (mut tb, mut sb) = (t0 * bm_tile * k3 / 6, t0 * bm_tile * k3 / 24);
    for mo in t0..t1.min(rows / bm_tile) {
        for ko in 0..k3 / bk {
            for mb in 0..bm_tile / 32 {
                // i32 rows 0..32, 4 per vector.
                let mut w = [vdupq_n_s32(0); 8];
                let groups = bk / 24;
                let mut g = 0;
                while g < groups {
                    let end = (g + crate::arch::TL2_GROUPS_PER_WIDEN).min(groups);
                    // i16 rows 0..8, 8..16, 16..24, 24..32.
                    let mut r = [vdupq_n_s16(0); 4];
                    while g < end {
                        let Some(s) = sgn.get(sb..sb + 32) else {
                            return true;
                        };
                        let (s0, s1) = load(s);
                        // Words 0..8 and 8..16: rows 0..8 / 16..24 and 8..16 / 24..32.
                        let (mut s0, mut s1) = (vreinterpretq_s16_u8(s0), vreinterpretq_s16_u8(s1));
                        sb += 32;
                        for quad in 0..4 {
                            let tr = (ko * bk + (g * 4 + quad) * 6) / 3;
                            let (Some(m), Some(l0), Some(h0), Some(l1), Some(h1)) = (
                                mags.get(tb..tb + 32),
                                tri.0.get(tr),
                                tri.1.get(tr),
                                tri.0.get(tr + 1),
                                tri.1.get(tr + 1),
                            ) else {
                                return true;
                            };
                            tb += 32;
                            let (va, vb) = load(m);
                            let (ha, la) = (vshrq_n_u8(va, 4), vandq_u8(va, mask));
                            let (hb, lb) = (vshrq_n_u8(vb, 4), vandq_u8(vb, mask));
                            top3 = vmaxq_u8(top3, vmaxq_u8(vmaxq_u8(ha, la), vmaxq_u8(hb, lb)));
                            for (na, nb, tl, th) in [(ha, hb, l0, h0), (la, lb, l1, h1)] {
                                let (r0, r16) = lookup16(tl, th, na);
                                let (r8, r24) = lookup16(tl, th, nb);
                                r[0] = vaddq_s16(r[0], signed(r0, s0));
                                r[1] = vaddq_s16(r[1], signed(r8, s1));
                                r[2] = vaddq_s16(r[2], signed(r16, vshlq_n_s16(s0, 1)));
                                r[3] = vaddq_s16(r[3], signed(r24, vshlq_n_s16(s1, 1)));
                                s0 = vshlq_n_s16(s0, 2);
                                s1 = vshlq_n_s16(s1, 2);
                            }
                        }
                        g += 1;
                    }
                    for (i, v) in r.into_iter().enumerate() {
                        widen(&mut w[2 * i..2 * i + 2], v);
                    }
                }
                if !acc
                    .get_mut((mo - t0) * bm_tile + mb * 32..)
                    .is_some_and(|a| flush(a, &w))
                {
                    return true;
                }
            }
        }
    }
    let mut pb = t0 * bm_tile * (cols - k3) / 4;
    for mo in t0..t1.min(rows / bm_tile) {
        for ko in 0..(cols - k3) / 32 {
            for mb in 0..bm_tile / 32 {
                // 8 steps × 2 pairs × |256| stay within i16.
                let mut r = [vdupq_n_s16(0); 4];
                for kb in 0..8 {
                    let p0 = (ko * 32 + kb * 4) / 2;
                    let (Some(m), Some(l0), Some(h0), Some(l1), Some(h1)) = (
                        prs.get(pb..pb + 32),
                        pair.0.get(p0),
                        pair.1.get(p0),
                        pair.0.get(p0 + 1),
                        pair.1.get(p0 + 1),
                    ) else {
                        return true;
                    };
                    pb += 32;
                    let (va, vb) = load(m);
                    let (ha, la) = (vshrq_n_u8(va, 4), vandq_u8(va, mask));
                    let (hb, lb) = (vshrq_n_u8(vb, 4), vandq_u8(vb, mask));
                    top2 = vmaxq_u8(top2, vmaxq_u8(vmaxq_u8(ha, la), vmaxq_u8(hb, lb)));
                    for (na, nb, tl, th) in [(ha, hb, l0, h0), (la, lb, l1, h1)] {
                        let (r0, r16) = lookup16(tl, th, na);
                        let (r8, r24) = lookup16(tl, th, nb);
                        r[0] = vaddq_s16(r[0], r0);
                        r[1] = vaddq_s16(r[1], r8);
                        r[2] = vaddq_s16(r[2], r16);
                        r[3] = vaddq_s16(r[3], r24);
                    }
                }
                let mut w = [vdupq_n_s32(0); 8];
                for (i, v) in r.into_iter().enumerate() {
                    widen(&mut w[2 * i..2 * i + 2], v);
                }
                if !acc
                    .get_mut((mo - t0) * bm_tile + mb * 32..)
                    .is_some_and(|a| flush(a, &w))
                {
                    return true;
                }
            }
        }
    }
    vmaxvq_u8(top3) > 13 || vmaxvq_u8(top2) > 8
}

/// `max |x|` when every element is finite, `None` when one is NaN or infinite
/// (`FMAX` and `FMAXV` carry a NaN through, and an infinity shows in the maximum).
pub(super) fn act_absmax(x: &[f32]) -> Option<f32> {
    let mut chunks = x.chunks_exact(16);
    // SAFETY: NEON is baseline on aarch64; each chunk holds 16 floats, so lanes
    // 4k..4k+4 are in bounds.
    let max = unsafe {
        let mut m = [vdupq_n_f32(0.0); 4];
        for c in &mut chunks {
            for (k, m) in m.iter_mut().enumerate() {
                *m = vmaxq_f32(*m, vabsq_f32(vld1q_f32(c.as_ptr().add(4 * k))));
            }
        }
        vmaxvq_f32(vmaxq_f32(vmaxq_f32(m[0], m[1]), vmaxq_f32(m[2], m[3])))
    };
    if !max.is_finite() {
        return None;
    }
    let mut max = max;
    for &v in chunks.remainder() {
        if !v.is_finite() {
            return None;
        }
        max = max.max(v.abs());
    }
    Some(max)
}

/// `q = clamp(round_half_even(x · s), −128, 127)` for the whole 16-element chunks of
/// `x` (`FCVTNS` rounds half to even; the saturating narrows clamp); returns how
/// many elements were written and their sum. `x` and `s` must be finite.
pub(super) fn act_quantize_i8(x: &[f32], s: f32, q: &mut [i8]) -> (usize, i64) {
    let mut total = 0i64;
    let mut done = 0;
    // i32 lanes over at most 2^16 chunks (|Σ| ≤ 2^16 · 4 · 128 per lane).
    for (xs, qs) in x.chunks(1 << 20).zip(q.chunks_mut(1 << 20)) {
        // SAFETY: NEON is baseline on aarch64; each chunk holds 16 floats and each
        // output chunk 16 bytes.
        unsafe {
            let mut sum = vdupq_n_s32(0);
            for (c, o) in xs.chunks_exact(16).zip(qs.chunks_exact_mut(16)) {
                let v: [int32x4_t; 4] =
                    std::array::from_fn(|k| vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(c.as_ptr().add(4 * k)), s)));
                let lo = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
                let hi = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
                let b = vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
                vst1q_s8(o.as_mut_ptr(), b);
                sum = vpadalq_s16(sum, vpaddlq_s8(b));
                done += 16;
            }
            total += vaddvq_s32(sum) as i64;
        }
    }
    (done, total)
}
