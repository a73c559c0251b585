//! AVX2 + F16C table kernels for 4-bit pre-quantized weights (bitsandbytes NF4/FP4,
//! MLX affine 4-bit): see `prequant::lut4` for the scalar specification.
//!
//! A group's 16-entry table is built with the same f32 operations as the scalar
//! `Lut4::table` (a multiply, a rounding to the compute dtype, for MLX an add and a
//! rounding again; no FMA), eight entries per vector; f16 rounding goes through
//! `vcvtps2ph` (round to nearest even, as `half` does), bf16 rounding through the
//! integer round-to-nearest-even `half` uses, NaNs quieted the same way. The f16
//! decoder looks codes up with `pshufb` in the low and high bytes of the f16 table; the
//! dot product looks them up with `vpermps` in the f32 table.

use crate::prequant::lut4::Lut4;
use std::arch::x86_64::*;

/// The rounding of `round` on eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_ps(v: __m256, round: crate::prequant::Round) -> __m256 {
    use crate::prequant::Round;
    match round {
        Round::F32 => v,
        Round::F16 => _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)),
        Round::Bf16 => {
            let x = _mm256_castps_si256(v);
            let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(x), _mm256_set1_epi32(1));
            let rounded = _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb);
            let quiet = _mm256_or_si256(x, _mm256_set1_epi32(0x0040_0000));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let r = _mm256_blendv_epi8(rounded, quiet, nan);
            _mm256_castsi256_ps(_mm256_and_si256(r, _mm256_set1_epi32(0xffff_0000u32 as i32)))
        }
    }
}

/// The group's table, entries 0..8 and 8..16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn table(l: &Lut4, m: f32, a: f32) -> (__m256, __m256) {
    table_until_f16(l, m, a, false)
}

/// [`table`], but when `for_f16` and the compute dtype is f16 without its last
/// rounding: the f16 conversion that follows rounds the same way (rounding to f16
/// twice is rounding once).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn table_until_f16(l: &Lut4, m: f32, a: f32, for_f16: bool) -> (__m256, __m256) {
    use crate::prequant::Round;
    let last = if for_f16 && l.round == Round::F16 {
        Round::F32
    } else {
        l.round
    };
    // SAFETY: `base` is 16 readable floats; the loads are unaligned.
    let (b0, b1) = unsafe {
        (
            _mm256_loadu_ps(l.base.as_ptr()),
            _mm256_loadu_ps(l.base.as_ptr().add(8)),
        )
    };
    let mv = _mm256_set1_ps(m);
    let first = if l.affine { l.round } else { last };
    let mut t0 = round_ps(_mm256_mul_ps(b0, mv), first);
    let mut t1 = round_ps(_mm256_mul_ps(b1, mv), first);
    if l.affine {
        let av = _mm256_set1_ps(a);
        t0 = round_ps(_mm256_add_ps(t0, av), last);
        t1 = round_ps(_mm256_add_ps(t1, av), last);
    }
    (t0, t1)
}

/// The scalar code of element `j` (for tails).
#[inline]
fn code(l: &Lut4, bytes: &[u8], j: usize) -> usize {
    l.code(bytes, j)
}

/// See `lut4::Lut4F16Fn`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn lut4_f16(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [u16]) {
    if group == 0 || !group.is_multiple_of(2) {
        return;
    }
    // Low bytes of entries 0..8 in bytes 0..8, high bytes in 8..16.
    let split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    let low4 = _mm_set1_epi8(0x0f);
    for (g, (out, bytes)) in out
        .chunks_exact_mut(group)
        .zip(bytes.chunks_exact(group / 2))
        .enumerate()
    {
        let (t0, t1) = table_until_f16(l, mul[g], add.get(g).copied().unwrap_or(0.0), true);
        let h0 = _mm_shuffle_epi8(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t0), split);
        let h1 = _mm_shuffle_epi8(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t1), split);
        let tlo = _mm_unpacklo_epi64(h0, h1);
        let thi = _mm_unpackhi_epi64(h0, h1);
        let mut src = bytes.chunks_exact(16);
        let mut dst = out.chunks_exact_mut(32);
        for (s, d) in (&mut src).zip(&mut dst) {
            // SAFETY: `s` is 16 readable bytes, `d` 32 writable u16; unaligned.
            unsafe {
                let b = _mm_loadu_si128(s.as_ptr().cast());
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), low4);
                let lo = _mm_and_si128(b, low4);
                let (first, second) = if l.hi_first { (hi, lo) } else { (lo, hi) };
                let idx = [_mm_unpacklo_epi8(first, second), _mm_unpackhi_epi8(first, second)];
                for (k, idx) in idx.into_iter().enumerate() {
                    let vl = _mm_shuffle_epi8(tlo, idx);
                    let vh = _mm_shuffle_epi8(thi, idx);
                    let p = d.as_mut_ptr().add(16 * k).cast::<__m128i>();
                    _mm_storeu_si128(p, _mm_unpacklo_epi8(vl, vh));
                    _mm_storeu_si128(p.add(1), _mm_unpackhi_epi8(vl, vh));
                }
            }
        }
        let rest = dst.into_remainder();
        if !rest.is_empty() {
            let mut t = [0u16; 16];
            // SAFETY: `t` is 16 writable u16 (two stores of 8).
            unsafe {
                _mm_storeu_si128(t.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t0));
                _mm_storeu_si128(
                    t.as_mut_ptr().add(8).cast(),
                    _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t1),
                );
            }
            let tail = src.remainder();
            for (j, o) in rest.iter_mut().enumerate() {
                *o = t[code(l, tail, j)];
            }
        }
    }
}

/// Eight table entries for the eight codes in `w` (LSB-first nibbles shifted by
/// `shifts`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lookup8(t0: __m256, t1: __m256, w: u32, shifts: __m256i) -> __m256 {
    let idx = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_set1_epi32(w as i32), shifts),
        _mm256_set1_epi32(0x0f),
    );
    let lo = _mm256_permutevar8x32_ps(t0, idx);
    let hi = _mm256_permutevar8x32_ps(t1, idx);
    _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)))
}

/// The per-lane shifts that put element `k` of a u32 word in the low nibble.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn shifts(l: &Lut4) -> __m256i {
    if l.hi_first {
        _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24)
    } else {
        _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)
    }
}

/// See `lut4::Lut4F32Fn`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn lut4_f32(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [f32]) {
    if group == 0 || !group.is_multiple_of(2) {
        return;
    }
    let sh = shifts(l);
    for (g, (out, bytes)) in out
        .chunks_exact_mut(group)
        .zip(bytes.chunks_exact(group / 2))
        .enumerate()
    {
        let (t0, t1) = table(l, mul[g], add.get(g).copied().unwrap_or(0.0));
        let mut src = bytes.chunks_exact(4);
        let mut dst = out.chunks_exact_mut(8);
        for (s, d) in (&mut src).zip(&mut dst) {
            let v = lookup8(t0, t1, u32::from_le_bytes([s[0], s[1], s[2], s[3]]), sh);
            // SAFETY: `d` is 8 writable floats; unaligned.
            unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) };
        }
        let rest = dst.into_remainder();
        if !rest.is_empty() {
            let mut t = [0f32; 16];
            // SAFETY: `t` is 16 writable floats (two stores of 8).
            unsafe {
                _mm256_storeu_ps(t.as_mut_ptr(), t0);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), t1);
            }
            let tail = src.remainder();
            for (j, o) in rest.iter_mut().enumerate() {
                *o = t[code(l, tail, j)];
            }
        }
    }
}

/// See `lut4::Lut4DotFn`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn lut4_dot(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], x: &[f32]) -> f32 {
    if group == 0 || !group.is_multiple_of(2) {
        return 0.0;
    }
    let sh = shifts(l);
    let mut acc = _mm256_setzero_ps();
    let mut tail_sum = 0f32;
    for (g, (x, bytes)) in x.chunks_exact(group).zip(bytes.chunks_exact(group / 2)).enumerate() {
        let (t0, t1) = table(l, mul[g], add.get(g).copied().unwrap_or(0.0));
        let mut src = bytes.chunks_exact(4);
        let mut xs = x.chunks_exact(8);
        for (s, xv) in (&mut src).zip(&mut xs) {
            let v = lookup8(t0, t1, u32::from_le_bytes([s[0], s[1], s[2], s[3]]), sh);
            // SAFETY: `xv` is 8 readable floats; unaligned.
            acc = _mm256_fmadd_ps(v, unsafe { _mm256_loadu_ps(xv.as_ptr()) }, acc);
        }
        let rest = xs.remainder();
        if !rest.is_empty() {
            let mut t = [0f32; 16];
            // SAFETY: `t` is 16 writable floats (two stores of 8).
            unsafe {
                _mm256_storeu_ps(t.as_mut_ptr(), t0);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), t1);
            }
            let tail = src.remainder();
            for (j, xv) in rest.iter().enumerate() {
                tail_sum += t[code(l, tail, j)] * xv;
            }
        }
    }
    hsum(acc) + tail_sum
}

/// Horizontal sum of eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The table for the tests (entries 0..16).
#[cfg(test)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn table_for_tests(l: &Lut4, m: f32, a: f32) -> [f32; 16] {
    let (t0, t1) = table(l, m, a);
    let mut t = [0f32; 16];
    // SAFETY: `t` is 16 writable floats (two stores of 8).
    unsafe {
        _mm256_storeu_ps(t.as_mut_ptr(), t0);
        _mm256_storeu_ps(t.as_mut_ptr().add(8), t1);
    }
    t
}
