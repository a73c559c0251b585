//! AVX2 + FMA + F16C kernels. Dequantizers and quantizers are bit-exact with the
//! scalar specification (the same f32 operations per element, in the same
//! order); dot products are integer-exact within a block and accumulate blocks
//! in eight lanes, held to the same budget as the scalar dot products.
//!
//! Every `unsafe fn` here requires AVX2, FMA and F16C; [`super::detected`] is the
//! only gate, and `arch::dispatch` hands these out only after it said yes.

use crate::ggml::blocks::*;
use crate::ggml::kquants::scale_min_k4;
use crate::ggml::lanes::{Lanes, Pair};
use crate::ggml::quant_k_lanes;
use bytemuck::{cast_slice, cast_slice_mut};
use std::arch::x86_64::*;

// ---------------------------------------------------------------------------
// helpers

/// How far ahead of the block being read the dot products prefetch their weights.
/// A one-thread matvec streams its weights from DRAM, and with the hardware
/// prefetcher alone the K-quant kernels read ~60% of the bandwidth a plain sum
/// loop gets (PERFORMANCE.md, 2026-12-02: 1536–4096 bytes measured alike).
const PREFETCH_AHEAD: usize = 2048;

/// Hints the cache lines of the bytes of `blocks` `PREFETCH_AHEAD` further on (one
/// hint per 64 bytes, so consecutive calls cover every line). Rows lie back to back,
/// so near a row's end this reaches into the next row; past the matrix it is a no-op.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn prefetch_ahead<T>(blocks: &[T]) {
    prefetch_lines(blocks, PREFETCH_AHEAD);
}

/// The largest group of rows (in bytes) whose successor the rows kernels prefetch a
/// whole group ahead.
const GROUP_PREFETCH_MAX: usize = 16 * 1024;

/// How far ahead a kernel running a group of rows of `group_bytes` side by side
/// prefetches each row: the same place in the next group (rows lie back to back)
/// while the group is at most [`GROUP_PREFETCH_MAX`] bytes, else `far`. (A hint
/// `far` ahead into each row would mostly land in the group's own rows, and the next
/// group would start cold.)
pub(super) fn group_prefetch_ahead(group_bytes: usize, far: usize) -> usize {
    if group_bytes <= GROUP_PREFETCH_MAX {
        group_bytes
    } else {
        far
    }
}

/// Hints the cache lines of the bytes of `blocks`, `ahead` bytes further on (one hint
/// per 64 bytes); past the end of the matrix it is a no-op.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn prefetch_lines<T>(blocks: &[T], ahead: usize) {
    let p = blocks.as_ptr().cast::<i8>().wrapping_add(ahead);
    let mut off = 0;
    while off < size_of_val(blocks) {
        // A hint only: prefetching never faults, and `wrapping_add` keeps the address
        // computation defined past the end of the slice.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
        off += 64;
    }
}

/// One f16 (little-endian bytes) to f32 with F16C: exact, like `half`'s software
/// path, but a single instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn h2f(b: [u8; 2]) -> f32 {
    // Inserted into an explicit zero vector: with `cvtsi32_si128` LLVM emitted a
    // `vpinsrw` merging into an arbitrary register — the dot products' accumulator —
    // a false dependency that made every block wait ~16 cycles.
    let v = _mm_insert_epi16::<0>(_mm_setzero_si128(), u16::from_le_bytes(b) as i32);
    _mm_cvtss_f32(_mm_cvtph_ps(v))
}

/// [`h2f`] for the unit test of every bit pattern.
#[cfg(test)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn h2f_for_tests(b: [u8; 2]) -> f32 {
    h2f(b)
}

/// Horizontal sum of eight f32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles (elements 0..16) then high (16..32).
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles_32(p: &[u8; 16]) -> __m256i {
    // SAFETY: `p` is 16 readable bytes; the load is unaligned.
    let q = unsafe { _mm_loadu_si128(p.as_ptr().cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn load32(p: &[u8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: at least 32 readable bytes (asserted); the load is unaligned.
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// Converts 32 signed bytes to f32, multiplies by `d` and stores them in `y[..32]`.
#[target_feature(enable = "avx2,fma,f16c")]
fn store_i8x32_scaled(v: __m256i, d: __m256, y: &mut [f32]) {
    assert!(y.len() >= 32);
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256(v, 1);
    let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
    for (k, part) in parts.into_iter().enumerate() {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
        // SAFETY: `y` has at least 32 elements (asserted); k·8 + 8 ≤ 32.
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), _mm256_mul_ps(f, d)) };
    }
}

/// Like [`store_i8x32_scaled`] for unsigned bytes, then `· d − m`.
#[target_feature(enable = "avx2,fma,f16c")]
fn store_u8x32_affine(v: __m256i, d: __m256, m: __m256, y: &mut [f32]) {
    assert!(y.len() >= 32);
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256(v, 1);
    let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
    for (k, part) in parts.into_iter().enumerate() {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part));
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), _mm256_sub_ps(_mm256_mul_ps(f, d), m)) };
    }
}

// ---------------------------------------------------------------------------
// dequantize

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q4_0(x: &[u8], y: &mut [f32]) {
    let eight = _mm256_set1_epi8(8);
    for (b, y) in cast_slice::<u8, BlockQ4_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        let q = _mm256_sub_epi8(nibbles_32(&b.qs), eight);
        store_i8x32_scaled(q, _mm256_set1_ps(h2f(b.d)), y);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q8_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ8_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        store_i8x32_scaled(load32(&b.qs), _mm256_set1_ps(h2f(b.d)), y);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q4_k(x: &[u8], y: &mut [f32]) {
    let mask = _mm256_set1_epi8(0x0f);
    for (b, y) in cast_slice::<u8, BlockQ4K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (h2f(b.d), h2f(b.dmin));
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let q = load32(&b.qs[32 * j..]);
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            let (y1, y2) = y.split_at_mut(32);
            store_u8x32_affine(lo, _mm256_set1_ps(d * sc1 as f32), _mm256_set1_ps(min * m1 as f32), y1);
            store_u8x32_affine(hi, _mm256_set1_ps(d * sc2 as f32), _mm256_set1_ps(min * m2 as f32), y2);
        }
    }
}

/// The 128 six-bit values (0..63, before the −32) of half `n` of a Q6_K block.
#[target_feature(enable = "avx2,fma,f16c")]
fn q6k_values(b: &BlockQ6K, n: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x30);
    let ql0 = load32(&b.ql[64 * n..]);
    let ql1 = load32(&b.ql[64 * n + 32..]);
    let qh = load32(&b.qh[32 * n..]);
    let h = |shift: i32| -> __m256i {
        // (qh >> shift & 3) << 4 == (qh << (4 − shift) or >> (shift − 4)) & 0x30
        match shift {
            0 => _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2),
            2 => _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2),
            4 => _mm256_and_si256(qh, m2),
            _ => _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
        }
    };
    [
        _mm256_or_si256(_mm256_and_si256(ql0, m4), h(0)),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), h(2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h(4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h(6)),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q6_k(x: &[u8], y: &mut [f32]) {
    let m32 = _mm256_set1_epi8(32);
    for (b, y) in cast_slice::<u8, BlockQ6K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = h2f(b.d);
        for n in 0..2 {
            for (k, v) in q6k_values(b, n).into_iter().enumerate() {
                let v = _mm256_sub_epi8(v, m32);
                let base = 128 * n + 32 * k;
                // Groups of 16 elements share a scale: convert in two halves.
                let g = base / 16;
                let s0 = d * (b.scales[g] as i8) as f32;
                let s1 = d * (b.scales[g + 1] as i8) as f32;
                let lo = _mm256_castsi256_si128(v);
                let hi = _mm256_extracti128_si256(v, 1);
                for (half, (part, s)) in [(lo, s0), (hi, s1)].into_iter().enumerate() {
                    let s = _mm256_set1_ps(s);
                    let a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
                    let c = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(part, 8)));
                    let out = &mut y[base + 16 * half..base + 16 * half + 16];
                    // SAFETY: `out` has exactly 16 elements.
                    unsafe {
                        _mm256_storeu_ps(out.as_mut_ptr(), _mm256_mul_ps(s, a));
                        _mm256_storeu_ps(out.as_mut_ptr().add(8), _mm256_mul_ps(s, c));
                    }
                }
            }
        }
    }
}

/// 32 fifth bits (bit j of `qh` → byte j) as 0xFF / 0x00 bytes (ggml's `bytes_from_bits_32`).
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_bytes_32(qh: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(qh));
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_setr_epi64x(
            0x0000_0000_0000_0000,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1))
}

/// The 32 signed values (q − 16) of a Q5_0 block.
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_0_values(b: &BlockQ5_0) -> __m256i {
    let high = bits_to_bytes_32(b.qh);
    // Where the fifth bit is clear, q − 16 = nibble | 0xF0 (as i8); where set, the nibble.
    _mm256_or_si256(
        nibbles_32(&b.qs),
        _mm256_andnot_si256(high, _mm256_set1_epi8(0xF0u8 as i8)),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q5_0(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockQ5_0>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        store_i8x32_scaled(q5_0_values(b), _mm256_set1_ps(h2f(b.d)), y);
    }
}

/// The fifth bits of Q5_K chunk `j` (elements 64j..64j+64) as 0x10 / 0x00 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
fn q5k_high(qh: __m256i, j: usize) -> (__m256i, __m256i) {
    let m = _mm256_set1_epi8(1);
    let count = _mm_cvtsi32_si128(2 * j as i32);
    let shifted = _mm256_srl_epi16(qh, count);
    let lo = _mm256_slli_epi16(_mm256_and_si256(shifted, m), 4);
    let hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(shifted, 1), m), 4);
    (lo, hi)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_q5_k(x: &[u8], y: &mut [f32]) {
    let mask = _mm256_set1_epi8(0x0f);
    for (b, y) in cast_slice::<u8, BlockQ5K>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (h2f(b.d), h2f(b.dmin));
        let qh = load32(&b.qh);
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
            let q = load32(&b.qs[32 * j..]);
            let (h1, h2) = q5k_high(qh, j);
            let lo = _mm256_or_si256(_mm256_and_si256(q, mask), h1);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), h2);
            let (y1, y2) = y.split_at_mut(32);
            store_u8x32_affine(lo, _mm256_set1_ps(d * sc1 as f32), _mm256_set1_ps(min * m1 as f32), y1);
            store_u8x32_affine(hi, _mm256_set1_ps(d * sc2 as f32), _mm256_set1_ps(min * m2 as f32), y2);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_f16(x: &[u8], y: &mut [f32]) {
    let mut src = x.chunks_exact(16);
    let mut dst = y.chunks_exact_mut(8);
    for (s, d) in (&mut src).zip(&mut dst) {
        // SAFETY: `s` is 16 readable bytes, `d` 8 writable floats; both unaligned.
        unsafe {
            let h = _mm_loadu_si128(s.as_ptr().cast());
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
    }
    for (s, d) in src.remainder().chunks_exact(2).zip(dst.into_remainder()) {
        *d = f16_le([s[0], s[1]]);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_f16(x: &[f32], y: &mut [u8]) {
    let mut src = x.chunks_exact(8);
    let mut dst = y.chunks_exact_mut(16);
    for (s, d) in (&mut src).zip(&mut dst) {
        // SAFETY: `s` is 8 readable floats, `d` 16 writable bytes; both unaligned.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s.as_ptr()));
            _mm_storeu_si128(d.as_mut_ptr().cast(), h);
        }
    }
    for (s, d) in src.remainder().iter().zip(dst.into_remainder().chunks_exact_mut(2)) {
        d.copy_from_slice(&f16_le_bytes(*s));
    }
}

/// The Q8_K activation quantizer (ggml's `quantize_row_q8_K_ref`), byte for byte the
/// scalar code: the block's largest magnitude and its first holder by vector compares,
/// then per value the same f32 multiply by `−127/max`, the same magic-number rounding
/// (`nearest_int`) and `min(127)`, eight lanes at a time. Blocks holding a NaN or an
/// infinity take the scalar code (its comparisons skip NaNs in its own way).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    let sign = _mm256_set1_ps(-0.0);
    let (magic, mask, off, top) = (
        _mm256_set1_ps(12_582_912.0),
        _mm256_set1_epi32(0x007f_ffff),
        _mm256_set1_epi32(0x0040_0000),
        _mm256_set1_epi32(127),
    );
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ8K>(y)) {
        let v: [__m256; 32] = std::array::from_fn(|k| {
            // SAFETY: `x` holds 256 floats; 8·k + 8 ≤ 256; the load is unaligned.
            unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) }
        });
        let mut m = _mm256_setzero_ps();
        let mut special = _mm256_setzero_ps();
        for &v in &v {
            let a = _mm256_andnot_ps(sign, v);
            m = _mm256_max_ps(m, a);
            // NaN (unordered) or ±∞.
            special = _mm256_or_ps(special, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(f32::INFINITY)));
        }
        if _mm256_movemask_ps(special) != 0 {
            crate::ggml::kquants::quantize_q8_k_block(x, b);
            continue;
        }
        let amax = hsum_max(m);
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The first value whose magnitude is `amax`: the one the scalar loop keeps.
        let target = _mm256_set1_ps(amax);
        let first = v
            .iter()
            .enumerate()
            .find_map(|(k, &v)| {
                let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, v), target));
                (hit != 0).then(|| 8 * k + hit.trailing_zeros() as usize)
            })
            .expect("amax is one of the magnitudes");
        let iscale = -127.0 / x[first];
        let is = _mm256_set1_ps(iscale);
        for (k, &v) in v.iter().enumerate() {
            let bits = _mm256_castps_si256(_mm256_add_ps(_mm256_mul_ps(is, v), magic));
            let q = _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(bits, mask), off), top);
            let mut lanes = [0i32; 8];
            // SAFETY: 8 writable i32.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), q) };
            for (o, &l) in b.qs[8 * k..8 * k + 8].iter_mut().zip(&lanes) {
                *o = l as i8 as u8;
            }
        }
        crate::ggml::kquants::set_q8_k_bsums(b);
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// BF16 → f32 as `half` converts (the scalar spec): the bits shifted up 16, a NaN
/// quieted (mantissa bit `0x40` set) on the way.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_bf16(x: &[u8], y: &mut [f32]) {
    let mut src = x.chunks_exact(16);
    let mut dst = y.chunks_exact_mut(8);
    let (mag, inf, quiet) = (
        _mm256_set1_epi32(0x7fff),
        _mm256_set1_epi32(0x7f80),
        _mm256_set1_epi32(0x40),
    );
    for (s, d) in (&mut src).zip(&mut dst) {
        // SAFETY: `s` is 16 readable bytes, `d` 8 writable floats; both unaligned.
        unsafe {
            let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(s.as_ptr().cast()));
            let nan = _mm256_cmpgt_epi32(_mm256_and_si256(v, mag), inf);
            let v = _mm256_or_si256(v, _mm256_and_si256(nan, quiet));
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
    }
    for (s, d) in src.remainder().chunks_exact(2).zip(dst.into_remainder()) {
        *d = half::bf16::from_le_bytes([s[0], s[1]]).to_f32();
    }
}

/// f32 → BF16 as `half` converts (the scalar spec): round to nearest even — `(x +
/// 0x7fff + lsb) >> 16`, the same rule as `half`'s round bit and sticky bits, and
/// ggml's — and a NaN kept with its upper mantissa and quieted.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_bf16(x: &[f32], y: &mut [u8]) {
    let mut src = x.chunks_exact(16);
    let mut dst = y.chunks_exact_mut(32);
    let (abs, inf, bias, one, quiet) = (
        _mm256_set1_epi32(0x7fff_ffff),
        _mm256_set1_epi32(0x7f80_0000),
        _mm256_set1_epi32(0x7fff),
        _mm256_set1_epi32(1),
        _mm256_set1_epi32(0x40),
    );
    let eight = |p: *const f32| {
        // SAFETY: the caller hands 8 readable floats; the load is unaligned.
        let v = _mm256_castps_si256(unsafe { _mm256_loadu_ps(p) });
        let nan = _mm256_cmpgt_epi32(_mm256_and_si256(v, abs), inf);
        let lsb = _mm256_and_si256(_mm256_srli_epi32(v, 16), one);
        let rounded = _mm256_srli_epi32(_mm256_add_epi32(v, _mm256_add_epi32(bias, lsb)), 16);
        let quieted = _mm256_or_si256(_mm256_srli_epi32(v, 16), quiet);
        _mm256_blendv_epi8(rounded, quieted, nan)
    };
    for (s, d) in (&mut src).zip(&mut dst) {
        let (a, b) = (eight(s.as_ptr()), eight(s[8..].as_ptr()));
        // Every lane is below 2^16, so the signed-saturating pack is exact; it packs
        // per 128-bit half, which the permute puts back in order.
        let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(a, b));
        // SAFETY: `d` is 32 writable bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), packed) };
    }
    for (s, d) in src.remainder().iter().zip(dst.into_remainder().chunks_exact_mut(2)) {
        d.copy_from_slice(&half::bf16::from_f32(*s).to_le_bytes());
    }
}

/// The 32 IQ4_NL grid values of 16 nibble bytes (low nibbles first), by `pshufb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4_values(p: &[u8; 16]) -> __m256i {
    let grid: [u8; 16] = bytemuck::cast(crate::ggml::iq4::KVALUES_IQ4NL);
    // SAFETY: 16 readable bytes; the load is unaligned.
    let table = unsafe { _mm_loadu_si128(grid.as_ptr().cast()) };
    _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table), nibbles_32(p))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_iq4_nl(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ4NL>(x).iter().zip(y.chunks_exact_mut(QK32)) {
        store_i8x32_scaled(iq4_values(&b.qs), _mm256_set1_ps(h2f(b.d)), y);
    }
}

/// The 16 nibble bytes of IQ4_XS group `ib`.
#[inline(always)]
fn iq4_xs_group(b: &BlockIQ4XS, ib: usize) -> &[u8; 16] {
    b.qs[16 * ib..16 * ib + 16].try_into().unwrap_or(&[0; 16])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequantize_iq4_xs(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ4XS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = h2f(b.d);
        let sc = b.group_scales();
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            store_i8x32_scaled(iq4_values(iq4_xs_group(b, ib)), _mm256_set1_ps(d * sc[ib] as f32), y);
        }
    }
}

// ---------------------------------------------------------------------------
// quantize (activations)

/// `roundf` on eight lanes: round half away from zero, exactly.
#[target_feature(enable = "avx2,fma,f16c")]
fn round_half_away(v: __m256) -> __m256 {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = _mm256_sub_ps(v, t);
    let sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0));
    let abs_frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), frac);
    let bump = _mm256_and_ps(
        _mm256_cmp_ps::<_CMP_GE_OQ>(abs_frac, _mm256_set1_ps(0.5)),
        _mm256_or_ps(_mm256_set1_ps(1.0), sign),
    );
    _mm256_add_ps(t, bump)
}

/// Q8_0 reference quantizer on eight lanes; blocks holding a NaN or an infinity go
/// through the scalar code (C's `MAX` macro makes the result order-dependent).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    let blocks = cast_slice_mut::<u8, BlockQ8_0>(y);
    let mut x8 = x.chunks_exact(8 * QK32);
    let mut b8 = blocks.chunks_exact_mut(8);
    // Eight blocks at a time: their scales `d = amax/127` and `1/d` in one division
    // each and one f16 conversion (the same IEEE operations as the scalar code, lane
    // by lane), so that the per-block dependency chain is only load → quantize → store.
    for (x, b) in (&mut x8).zip(&mut b8) {
        prefetch_ahead(x);
        let mut amax = [0f32; 8];
        let mut nan = false;
        for (k, a) in amax.iter_mut().enumerate() {
            let v = load_32_floats(&x[QK32 * k..]);
            *a = magnitudes_and_max(&v).1;
            nan |= any_nan(&v);
        }
        // SAFETY: 8 readable floats.
        let amax = unsafe { _mm256_loadu_ps(amax.as_ptr()) };
        let d = _mm256_div_ps(amax, _mm256_set1_ps(127.0));
        let nonzero = _mm256_cmp_ps::<_CMP_NEQ_OQ>(d, _mm256_setzero_ps());
        let id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), d), nonzero);
        // Non-finite input (NaN lanes are dropped by `max_ps`, hence the flag), or a
        // subnormal scale whose reciprocal overflows: the per-block path decides.
        let inf = _mm256_set1_ps(f32::INFINITY);
        let finite = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(amax, inf),
            _mm256_cmp_ps::<_CMP_LT_OQ>(id, inf),
        );
        if nan || _mm256_movemask_ps(finite) != 0xff {
            for (x, b) in x.chunks_exact(QK32).zip(b.iter_mut()) {
                quantize_q8_0_block(x, b);
            }
            continue;
        }
        let mut dh = [0u16; 8];
        let mut ids = [0f32; 8];
        // SAFETY: 8 writable u16 (16 bytes) and 8 writable floats.
        unsafe {
            _mm_storeu_si128(dh.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d));
            _mm256_storeu_ps(ids.as_mut_ptr(), id);
        }
        for (k, b) in b.iter_mut().enumerate() {
            b.d = dh[k].to_le_bytes();
            store_q8_0_quants(load_32_floats(&x[QK32 * k..]), ids[k], b);
        }
    }
    for (x, b) in x8.remainder().chunks_exact(QK32).zip(b8.into_remainder()) {
        quantize_q8_0_block(x, b);
    }
}

/// 32 floats, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_32_floats(x: &[f32]) -> [__m256; 4] {
    assert!(x.len() >= 32);
    // SAFETY: `x` holds at least 32 floats (asserted).
    std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) })
}

/// `round_half_away(v · id)` as bytes into `b.qs` (ggml's reference rounding).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_q8_0_quants(v: [__m256; 4], id: f32, b: &mut BlockQ8_0) {
    let idv = _mm256_set1_ps(id);
    let q = v.map(|v| _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v, idv))));
    // SAFETY: `b.qs` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), narrow_i32_to_i8(q)) };
}

/// 32 i32 lanes (four vectors, in order) narrowed to 32 i8 in the same order, with
/// signed saturation.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn narrow_i32_to_i8(q: [__m256i; 4]) -> __m256i {
    let p0 = _mm256_packs_epi32(q[0], q[1]);
    let p1 = _mm256_packs_epi32(q[2], q[3]);
    let p = _mm256_packs_epi16(p0, p1);
    // packs interleave 128-bit lanes: restore element order.
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// The Q8_1 activation quantizer (`quantize_row_q8_1_ref`): Q8_0's quants by the same
/// vector steps as [`quantize_q8_0_block`], plus `s = f16(Σq · d)` with the f32 `d`;
/// anything non-finite, or a subnormal scale, through the scalar code.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ8_1>(y)) {
        let v = load_32_floats(x);
        let amax = magnitudes_and_max(&v).1;
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !amax.is_finite() || any_nan(&v) || !id.is_finite() {
            crate::ggml::legacy::quantize_q8_1(x, bytemuck::bytes_of_mut(b));
            continue;
        }
        let mut q: BlockQ8_0 = bytemuck::Zeroable::zeroed();
        store_q8_0_quants(v, id, &mut q);
        let sum: i32 = q.qs.iter().map(|&v| v as i8 as i32).sum();
        b.d = f32_to_f16_bytes(d);
        b.s = f32_to_f16_bytes(sum as f32 * d);
        b.qs = q.qs;
    }
}

/// One Q8_0 block; anything non-finite, or a subnormal scale, through the scalar code.
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8_0_block(x: &[f32], b: &mut BlockQ8_0) {
    let v = load_32_floats(x);
    let amax = magnitudes_and_max(&v).1;
    // `max_ps` drops NaN lanes, so NaN is looked for separately (an infinity shows in
    // `amax`); either goes to the scalar code.
    if !amax.is_finite() || any_nan(&v) {
        crate::ggml::legacy::quantize_q8_0(x, bytemuck::bytes_of_mut(b));
        return;
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !id.is_finite() {
        // A subnormal scale: 1/d overflows and C's casts of ±Inf/NaN take over.
        crate::ggml::legacy::quantize_q8_0(x, bytemuck::bytes_of_mut(b));
        return;
    }
    b.d = f32_to_f16_bytes(d);
    store_q8_0_quants(v, id, b);
}

/// `|v|` lane by lane and the largest of the 32 (`max_ps`: a NaN lane is dropped, so
/// callers look for NaN with [`any_nan`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn magnitudes_and_max(v: &[__m256; 4]) -> ([__m256; 4], f32) {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let a = v.map(|v| _mm256_and_ps(v, abs_mask));
    (
        a,
        hsum_max(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]))),
    )
}

/// Whether any lane of the four vectors is NaN.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn any_nan(v: &[__m256; 4]) -> bool {
    let u =
        |a: __m256, b: __m256| _mm256_or_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(a, a), _mm256_cmp_ps::<_CMP_UNORD_Q>(b, b));
    _mm256_movemask_ps(_mm256_or_ps(u(v[0], v[1]), u(v[2], v[3]))) != 0
}

/// f32 → f16 (round to nearest even, as `half` and ggml's F16C path) with F16C, as
/// little-endian bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f32_to_f16_bytes(v: f32) -> [u8; 2] {
    let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v));
    (_mm_extract_epi16::<0>(h) as u16).to_le_bytes()
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_max(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// The 32 floats of a block, their magnitudes' maximum, and the first element whose
/// magnitude reaches it (C's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` on
/// finite input). `None` when the block holds a NaN or an infinity.
#[target_feature(enable = "avx2,fma,f16c")]
fn block_signed_absmax(x: &[f32]) -> Option<([__m256; 4], f32)> {
    let v = load_32_floats(x);
    let (a, amax) = magnitudes_and_max(&v);
    // An infinity shows in `amax`; NaN lanes are dropped by `max_ps`.
    if !amax.is_finite() || any_nan(&v) {
        return None;
    }
    let target = _mm256_set1_ps(amax);
    let mut mask = 0u32;
    for (k, a) in a.iter().enumerate() {
        mask |= (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(*a, target)) as u32) << (8 * k);
    }
    let max = if amax == 0.0 {
        0.0
    } else {
        x[mask.trailing_zeros() as usize]
    };
    Some((v, max))
}

/// Truncates `v·id + bias` toward zero (all in range), clamps to `top`, and packs
/// the 32 results into bytes in element order.
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_32(v: [__m256; 4], id: f32, bias: f32, top: i32) -> __m256i {
    let (idv, bv, topv) = (_mm256_set1_ps(id), _mm256_set1_ps(bias), _mm256_set1_epi32(top));
    let q = v.map(|v| _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v, idv), bv)), topv));
    let p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// `quantize_row_q4_0_ref` on eight lanes (non-finite blocks: the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q4_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ4_0>(y)) {
        let Some((v, max)) = block_signed_absmax(x) else {
            crate::ggml::legacy::quantize_q4_0(x, bytemuck::bytes_of_mut(b));
            continue;
        };
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() {
            crate::ggml::legacy::quantize_q4_0(x, bytemuck::bytes_of_mut(b));
            continue;
        }
        b.d = f32_to_f16_bytes(d);
        let q = quantize_32(v, id, 8.5, 15);
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        // SAFETY: `b.qs` is 16 writable bytes.
        unsafe { _mm_storeu_si128(b.qs.as_mut_ptr().cast(), _mm_or_si128(lo, _mm_slli_epi16(hi, 4))) };
    }
}

/// `quantize_row_q5_0_ref` on eight lanes (non-finite blocks: the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q5_0(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockQ5_0>(y)) {
        let Some((v, max)) = block_signed_absmax(x) else {
            crate::ggml::legacy::quantize_q5_0(x, bytemuck::bytes_of_mut(b));
            continue;
        };
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() {
            crate::ggml::legacy::quantize_q5_0(x, bytemuck::bytes_of_mut(b));
            continue;
        }
        b.d = f32_to_f16_bytes(d);
        let q = quantize_32(v, id, 16.5, 31);
        // Bit 4 of each byte, moved to bit 7, gives the fifth bits in element order.
        let qh = _mm256_movemask_epi8(_mm256_slli_epi16(q, 3)) as u32;
        let low = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
        let (lo, hi) = (_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1));
        // SAFETY: `b.qs` is 16 writable bytes.
        unsafe { _mm_storeu_si128(b.qs.as_mut_ptr().cast(), _mm_or_si128(lo, _mm_slli_epi16(hi, 4))) };
        b.qh = qh.to_le_bytes();
    }
}

// ---------------------------------------------------------------------------
// dot products

/// Σ x·y over 32 signed bytes, as eight i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_i8x32(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}

/// A dot product over 32-element blocks paired with Q8_0 activations: `$ints(x, y)`
/// gives a block's eight i32 lane sums. The scale products d_x·d_y of eight blocks
/// at a time are converted with one F16C instruction per side (per-block scalar
/// conversions made LLVM merge into the accumulator register: a false dependency).
macro_rules! dot32 {
    ($w:expr, $a:expr, $block:ty, |$x:ident, $y:ident| $ints:expr) => {{
        let xs = cast_slice::<u8, $block>($w);
        let ys = cast_slice::<u8, BlockQ8_0>($a);
        let n = xs.len().min(ys.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            prefetch_ahead(&xs[i..i + 8]);
            let dx: [u16; 8] = std::array::from_fn(|k| u16::from_le_bytes(xs[i + k].d));
            let dy: [u16; 8] = std::array::from_fn(|k| u16::from_le_bytes(ys[i + k].d));
            let mut prod = [0f32; 8];
            // SAFETY: 8 u16 are 16 readable bytes; `prod` is 8 writable floats.
            unsafe {
                let p = _mm256_mul_ps(
                    _mm256_cvtph_ps(_mm_loadu_si128(dx.as_ptr().cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(dy.as_ptr().cast())),
                );
                _mm256_storeu_ps(prod.as_mut_ptr(), p);
            }
            for k in 0..8 {
                let ($x, $y) = (&xs[i + k], &ys[i + k]);
                let s = _mm256_cvtepi32_ps($ints);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(prod[k]), s, acc);
            }
            i += 8;
        }
        for k in i..n {
            let ($x, $y) = (&xs[k], &ys[k]);
            let s = _mm256_cvtepi32_ps($ints);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f($x.d) * h2f($y.d)), s, acc);
        }
        hsum_ps(acc)
    }};
}

/// Several rows of a matvec over 32-element blocks whose weights are unsigned bytes
/// `u` with value `u − $offset` (Q4_0: nibbles − 8; Q5_0: five bits − 16), against one
/// Q8_0 activation: `y[r] = dot(row r, a)` with the same bits as [`dot32!`] with
/// [`dot_i8x32`] gives for that row.
///
/// Why it is faster than one row at a time: the sign trick of `dot_i8x32` costs two
/// `vpsignb` per block on the two vector ALU ports that also do the `maddubs`,
/// `madd`, conversion and FMA; here the unsigned weights go into the multiply as they
/// are and the offset's share `offset·Σ q` (per group of four bytes), which depends on
/// the activation only, is computed once per call for all rows (`prep`). `ints(u, q,
/// p)` gives a block's eight i32 lane sums `Σ (u − offset)·q` over the same four bytes
/// per lane as `dot_i8x32`, exactly (the sign trick's `vpsignb` of −128 would wrap:
/// the Q8_0 quantizer never writes −128, and this path is exact even for it), so the
/// float steps see the same values. Four rows run side by side, each with its own
/// accumulator, so the FMA latency chain of one row no longer paces the loop.
macro_rules! rows32 {
    ($name:ident, $feat:literal, $block:ty, $offset:expr, |$x:ident| $vals:expr,
     prep: |$o:ident, $pq:ident| $prep:expr, ints: |$u:ident, $q:ident, $p:ident| $ints:expr) => {
        #[target_feature(enable = $feat)]
        pub(super) fn $name(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]) {
            /// `R` rows from block 0 to the end; each row's operations are those of a
            /// one-row call, in the same order.
            #[target_feature(enable = $feat)]
            fn group<const R: usize>(rows: [&[$block]; R], ys: &[BlockQ8_0], prep: &[(__m256i, f32)], out: &mut [f32]) {
                let ahead = group_prefetch_ahead(R * size_of_val(rows[0]), PREFETCH_AHEAD);
                let n = ys.len();
                let mut acc = [_mm256_setzero_ps(); R];
                let mut i = 0;
                while i + 8 <= n {
                    let dy: [f32; 8] = std::array::from_fn(|k| prep[i + k].1);
                    let mut prod = [[0f32; 8]; R];
                    for r in 0..R {
                        prefetch_lines(&rows[r][i..i + 8], ahead);
                        let dx: [u16; 8] = std::array::from_fn(|k| u16::from_le_bytes(rows[r][i + k].d));
                        // SAFETY: 8 u16 are 16 readable bytes, 8 f32 are 32; `prod[r]` is 8
                        // writable floats.
                        unsafe {
                            let p = _mm256_mul_ps(
                                _mm256_cvtph_ps(_mm_loadu_si128(dx.as_ptr().cast())),
                                _mm256_loadu_ps(dy.as_ptr()),
                            );
                            _mm256_storeu_ps(prod[r].as_mut_ptr(), p);
                        }
                    }
                    for k in 0..8 {
                        let $q = load32(&ys[i + k].qs);
                        let $p = prep[i + k].0;
                        for r in 0..R {
                            let $x = &rows[r][i + k];
                            let $u = $vals;
                            let s = _mm256_cvtepi32_ps($ints);
                            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(prod[r][k]), s, acc[r]);
                        }
                    }
                    i += 8;
                }
                for k in i..n {
                    let $q = load32(&ys[k].qs);
                    let $p = prep[k].0;
                    for r in 0..R {
                        let $x = &rows[r][k];
                        let $u = $vals;
                        let s = _mm256_cvtepi32_ps($ints);
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f($x.d) * prep[k].1), s, acc[r]);
                    }
                }
                for r in 0..R {
                    out[r] = hsum_ps(acc[r]);
                }
            }

            let n = row_bytes / size_of::<$block>();
            assert!(row_bytes == n * size_of::<$block>() && w.len() == y.len() * row_bytes);
            let ys = &cast_slice::<u8, BlockQ8_0>(a)[..n];
            let $o = _mm256_set1_epi8($offset);
            let prep: Vec<(__m256i, f32)> = ys
                .iter()
                .map(|b| {
                    let $pq = load32(&b.qs);
                    ($prep, h2f(b.d))
                })
                .collect();
            let row = |r: usize| cast_slice::<u8, $block>(&w[r * row_bytes..(r + 1) * row_bytes]);
            let mut r = 0;
            while r + 4 <= y.len() {
                group::<4>(
                    [row(r), row(r + 1), row(r + 2), row(r + 3)],
                    ys,
                    &prep,
                    &mut y[r..r + 4],
                );
                r += 4;
            }
            while r < y.len() {
                group::<1>([row(r)], ys, &prep, &mut y[r..r + 1]);
                r += 1;
            }
        }
    };
    // AVX2: `maddubs(u, q)` (exact here: |u| ≤ 31, so no i16 pair saturates) minus the
    // offset's pair sums `maddubs(offset, q)`, then pairs of pairs by `madd`.
    ($name:ident, avx2, $block:ty, $offset:expr, |$x:ident| $vals:expr) => {
        rows32!($name, "avx2,fma,f16c", $block, $offset, |$x| $vals,
            prep: |o, q| _mm256_maddubs_epi16(o, q),
            ints: |u, q, p| _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u, q), p), _mm256_set1_epi16(1)));
    };
    // AVX-VNNI: one `vpdpbusd` sums four u8·i8 products into each i32 lane, starting
    // from `−offset·Σ q` of those four bytes (the same lane sums, one instruction).
    ($name:ident, vnni, $block:ty, $offset:expr, |$x:ident| $vals:expr) => {
        rows32!($name, "avx2,fma,f16c,avxvnni", $block, $offset, |$x| $vals,
            prep: |o, q| _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), o, q)),
            ints: |u, q, p| _mm256_dpbusd_avx_epi32(p, u, q));
    };
}

/// The 32 unsigned five-bit codes `nibble | qh bit << 4` of a Q5_0 or Q5_1 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn five_bits_32(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    _mm256_or_si256(
        nibbles_32(qs),
        _mm256_and_si256(bits_to_bytes_32(qh), _mm256_set1_epi8(0x10)),
    )
}

rows32!(matvec_rows_q4_0, avx2, BlockQ4_0, 8, |x| nibbles_32(&x.qs));
rows32!(matvec_rows_q5_0, avx2, BlockQ5_0, 16, |x| five_bits_32(&x.qs, x.qh));
rows32!(matvec_rows_q4_0_vnni, vnni, BlockQ4_0, 8, |x| nibbles_32(&x.qs));
rows32!(matvec_rows_q5_0_vnni, vnni, BlockQ5_0, 16, |x| five_bits_32(
    &x.qs, x.qh
));

/// One group of eight interleaved Q4_0 rows ([`crate::repack::Q4_0x8`]) against a
/// Q8_0 activation: lane `k` of every vector is row `k`. Per block column, each of
/// the four 32-byte vectors gives its low nibbles (elements `4g..4g + 4` of every
/// row) and high nibbles (`16 + 4g..`) as unsigned bytes, multiplied with those four
/// activation bytes broadcast to every lane (`$ints`); the offset's share `8·Σ q`
/// comes off once; then the eight rows' block sums take the float step of the
/// scalar dot product — `sum += sumi · (d_w · d_a)`, multiply and add apart — in
/// one instruction each. So every lane holds the scalar spec's bits.
macro_rules! q4_0x8 {
    ($name:ident, $feat:literal, |$s:ident, $lo:ident, $hi:ident, $alo:ident, $ahi:ident, $g:ident| $ints:block, $fin:expr) => {
        #[target_feature(enable = $feat)]
        pub(super) fn $name(group: &[u8], act: &[u8], prep: &[(i32, f32)], out: &mut [f32; 8]) {
            let ys = cast_slice::<u8, BlockQ8_0>(act);
            let n = ys.len();
            assert!(group.len() >= n * crate::repack::GROUP_BLOCK_BYTES && prep.len() >= n);
            let m = _mm256_set1_epi8(0x0f);
            let mut acc = _mm256_setzero_ps();
            for (j, (y, &(off, dy))) in ys.iter().zip(prep).enumerate() {
                let gb = &group[j * crate::repack::GROUP_BLOCK_BYTES..(j + 1) * crate::repack::GROUP_BLOCK_BYTES];
                prefetch_lines(gb, PREFETCH_AHEAD);
                let mut $s = [_mm256_setzero_si256(); 4];
                for $g in 0..4 {
                    let p = load32(&gb[16 + 32 * $g..]);
                    let $lo = _mm256_and_si256(p, m);
                    let $hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), m);
                    let q = |o: usize| i32::from_le_bytes([y.qs[o], y.qs[o + 1], y.qs[o + 2], y.qs[o + 3]]);
                    let $alo = _mm256_set1_epi32(q(4 * $g));
                    let $ahi = _mm256_set1_epi32(q(16 + 4 * $g));
                    $ints
                }
                let sumi = _mm256_sub_epi32($fin, _mm256_set1_epi32(off));
                // SAFETY: `gb` starts with the eight f16 scales (16 bytes).
                let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(gb.as_ptr().cast()) });
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(dy));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(sumi), d));
            }
            // SAFETY: `out` is 8 writable floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
        }
    };
}

// AVX2: `maddubs` pairs (|pair| ≤ 2 · 15 · 128 = 3840) summed in i16 over the
// block's eight products (≤ 30 720), then to i32 by `madd`.
q4_0x8!(
    q4_0x8_group_avx2,
    "avx2,fma,f16c",
    |s, lo, hi, alo, ahi, g| {
        let t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
        s[g % 2] = _mm256_add_epi16(s[g % 2], t);
    },
    _mm256_madd_epi16(_mm256_add_epi16(s[0], s[1]), _mm256_set1_epi16(1))
);

// AVX-VNNI: `vpdpbusd` into four i32 accumulators (two chains per half).
q4_0x8!(
    q4_0x8_group_vnni,
    "avx2,fma,f16c,avxvnni",
    |s, lo, hi, alo, ahi, g| {
        s[g % 2] = _mm256_dpbusd_avx_epi32(s[g % 2], lo, alo);
        s[2 + g % 2] = _mm256_dpbusd_avx_epi32(s[2 + g % 2], hi, ahi);
    },
    _mm256_add_epi32(_mm256_add_epi32(s[0], s[1]), _mm256_add_epi32(s[2], s[3]))
);

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    dot32!(w, a, BlockQ8_0, |x, y| dot_i8x32(load32(&x.qs), load32(&y.qs)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let eight = _mm256_set1_epi8(8);
    dot32!(w, a, BlockQ4_0, |x, y| dot_i8x32(
        _mm256_sub_epi8(nibbles_32(&x.qs), eight),
        load32(&y.qs)
    ))
}

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K/Q5_K block as 16 i16:
/// scales in the low 128 bits, mins in the high (ggml's `utmp` shuffle, then one
/// widening).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_scales_mins(packed: &[u8; 12]) -> __m256i {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let u = |i: usize| u32::from_le_bytes([packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    let scales_lo = u0 & K1;
    let scales_hi = (u2 & K2) | (((u0 >> 6) & K3) << 4);
    let mins_lo = u1 & K1;
    let mins_hi = ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4);
    _mm256_cvtepu8_epi16(_mm_set_epi32(
        mins_hi as i32,
        mins_lo as i32,
        scales_hi as i32,
        scales_lo as i32,
    ))
}

/// `pshufb` masks that broadcast i16 lane `k` of a 128-bit half to all eight lanes.
const I16_LANE_BROADCAST: [[u8; 32]; 8] = {
    let mut m = [[0u8; 32]; 8];
    let mut k = 0;
    while k < 8 {
        let mut i = 0;
        while i < 32 {
            m[k][i] = (2 * k + i % 2) as u8;
            i += 1;
        }
        k += 1;
    }
    m
};

/// `d_a · [d, dmin]` of a K-quant block with f16 `d` then `dmin`: the super-block
/// factors of the scales (lane 0) and the mins (lane 1). Both halves go through one
/// `vmovd`, so no conversion waits on an unrelated register.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k_factors(d: [u8; 2], dmin: [u8; 2], y: &BlockQ8K) -> (__m256, __m128) {
    let both = _mm_cvtsi32_si128(i32::from_le_bytes([d[0], d[1], dmin[0], dmin[1]]));
    let f = _mm_mul_ps(_mm_cvtph_ps(both), _mm_set1_ps(y.d()));
    (_mm256_broadcastss_ps(f), _mm_permute_ps::<0b01_01_01_01>(f))
}

/// Σ_g min_g · (the activation's two 16-sums of group g), four partial sums in i32
/// lanes; `mins` are the eight mins as i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mins_dot_bsums(mins: __m128i, y: &BlockQ8K) -> __m128i {
    let bsums = load32(&y.bsums);
    let pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    _mm_madd_epi16(pair_sums, mins)
}

/// Q4_K · Q8_K in ggml's AVX2 shape: per 64 values two `maddubs`, each group
/// scale spread by one `pshufb` from a register; the mins term accumulates in its own
/// f32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mask = _mm256_set1_epi8(0x0f);
    let spread: [__m256i; 8] = std::array::from_fn(|k| load32(&I16_LANE_BROADCAST[k]));
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (x, y) in cast_slice::<u8, BlockQ4K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let (d, dmin) = k_factors(x.d, x.dmin, y);
        let sm = k4_scales_mins(&x.scales);
        let prod = mins_dot_bsums(_mm256_extracti128_si256(sm, 1), y);
        acc_m = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod), acc_m);
        let scales = _mm256_permute2x128_si256::<0>(sm, sm);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q = load32(&x.qs[32 * j..]);
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            let p1 = _mm256_maddubs_epi16(lo, load32(&y.qs[64 * j..]));
            let p2 = _mm256_maddubs_epi16(hi, load32(&y.qs[64 * j + 32..]));
            let p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scales, spread[2 * j]));
            let p2 = _mm256_madd_epi16(p2, _mm256_shuffle_epi8(scales, spread[2 * j + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
        }
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - hsum_ps(_mm256_zextps128_ps256(acc_m))
}

/// 16 bytes, unaligned.
fn load16(p: &[u8]) -> __m128i {
    assert!(p.len() >= 16);
    // SAFETY: at least 16 readable bytes (asserted); the load is unaligned.
    unsafe { _mm_loadu_si128(p.as_ptr().cast()) }
}

/// `pshufb` masks that spread scales `2j` and `2j + 1` of a Q6_K block over 8 bytes each.
const Q6K_SCALE_SHUFFLE: [[u8; 16]; 8] = {
    let mut m = [[0u8; 16]; 8];
    let mut j = 0;
    while j < 8 {
        let mut i = 0;
        while i < 16 {
            m[j][i] = (2 * j + i / 8) as u8;
            i += 1;
        }
        j += 1;
    }
    m
};

/// Group scales `2j` and `2j + 1` of 16 byte scales as 16 i16 (8 each), signed, with
/// `shuffle` = `Q6K_SCALE_SHUFFLE[j]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn spread_scales(sc: __m128i, shuffle: __m128i) -> __m256i {
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, shuffle))
}

/// Q6_K · Q8_K. Σ (q − 32)·y·s = Σ q·y·s − 32·Σ s·(Σ y): the second term comes from
/// Q8_K's per-16 sums (`bsums`) once per block, as ggml does, instead of a second
/// `maddubs` per 32 values; the scales are spread by `pshufb` from one 16-byte load.
/// Every lane sum is exact in i32 (|q·y·s| ≤ 63·127·127 per element).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q6_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let shuffles: [__m128i; 8] = std::array::from_fn(|j| load16(&Q6K_SCALE_SHUFFLE[j]));
    let mut acc = _mm256_setzero_ps();
    for (x, y) in cast_slice::<u8, BlockQ6K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let sc8 = load16(&x.scales);
        // 32 · Σ_g s_g · bsum_g, in 8 i32 lanes.
        let corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load32(&y.bsums));
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            for (k, v) in q6k_values(x, n).into_iter().enumerate() {
                let j = 4 * n + k;
                let p = _mm256_maddubs_epi16(v, load32(&y.qs[32 * j..]));
                let sc = spread_scales(sc8, shuffles[j]);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y.d() * h2f(x.d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    dot32!(w, a, BlockQ5_0, |x, y| dot_i8x32(q5_0_values(x), load32(&y.qs)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mask = _mm256_set1_epi8(0x0f);
    let spread: [__m256i; 8] = std::array::from_fn(|k| load32(&I16_LANE_BROADCAST[k]));
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (x, y) in cast_slice::<u8, BlockQ5K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let (d, dmin) = k_factors(x.d, x.dmin, y);
        let sm = k4_scales_mins(&x.scales);
        let prod = mins_dot_bsums(_mm256_extracti128_si256(sm, 1), y);
        acc_m = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod), acc_m);
        let scales = _mm256_permute2x128_si256::<0>(sm, sm);
        let qh = load32(&x.qh);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q = load32(&x.qs[32 * j..]);
            let (h1, h2) = q5k_high(qh, j);
            let lo = _mm256_or_si256(_mm256_and_si256(q, mask), h1);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask), h2);
            let p1 = _mm256_maddubs_epi16(lo, load32(&y.qs[64 * j..]));
            let p2 = _mm256_maddubs_epi16(hi, load32(&y.qs[64 * j + 32..]));
            let p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scales, spread[2 * j]));
            let p2 = _mm256_madd_epi16(p2, _mm256_shuffle_epi8(scales, spread[2 * j + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
        }
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - hsum_ps(_mm256_zextps128_ps256(acc_m))
}

/// F16 · F16 in f32 lanes with FMA (as ggml's AVX2 path); the tail in scalar.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut wc = w.chunks_exact(64);
    let mut ac = a.chunks_exact(64);
    for (x, y) in (&mut wc).zip(&mut ac) {
        prefetch_ahead(x);
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: 64-byte chunks hold four 16-byte groups of eight f16.
            let (xv, yv) = unsafe {
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(16 * k).cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().add(16 * k).cast())),
                )
            };
            *acc = _mm256_fmadd_ps(xv, yv, *acc);
        }
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for (x, y) in wc.remainder().chunks_exact(2).zip(ac.remainder().chunks_exact(2)) {
        sum += h2f([x[0], x[1]]) * h2f([y[0], y[1]]);
    }
    sum
}

/// BF16 · BF16 in f32 lanes with FMA; the tail in scalar.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    let widen = |p: &[u8]| -> __m256 {
        // SAFETY: `p` holds at least 16 bytes (eight bf16).
        let h = unsafe { _mm_loadu_si128(p.as_ptr().cast()) };
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
    };
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut wc = w.chunks_exact(32);
    let mut ac = a.chunks_exact(32);
    for (x, y) in (&mut wc).zip(&mut ac) {
        prefetch_ahead(x);
        acc[0] = _mm256_fmadd_ps(widen(&x[..16]), widen(&y[..16]), acc[0]);
        acc[1] = _mm256_fmadd_ps(widen(&x[16..]), widen(&y[16..]), acc[1]);
    }
    let mut sum = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
    for (x, y) in wc.remainder().chunks_exact(2).zip(ac.remainder().chunks_exact(2)) {
        let x = f32::from_bits((u16::from_le_bytes([x[0], x[1]]) as u32) << 16);
        let y = f32::from_bits((u16::from_le_bytes([y[0], y[1]]) as u32) << 16);
        sum += x * y;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[u8]) -> f32 {
    dot32!(w, a, BlockIQ4NL, |x, y| dot_i8x32(iq4_values(&x.qs), load32(&y.qs)))
}

/// IQ4_XS · Q8_K: each block's integer sum Σ_g (scale_g − 32)·Σ q·a exactly as the
/// scalar `grouped`, and the blocks accumulated in the scalar's order (`y.d · x.d ·
/// sum`, one after the other): the same f32 result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ4XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let sc = x.group_scales();
        let mut acc = _mm256_setzero_si256();
        for (ib, &s) in sc.iter().enumerate() {
            let p = dot_i8x32(iq4_values(iq4_xs_group(x, ib)), load32(&y.qs[32 * ib..]));
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, _mm256_set1_epi32(s)));
        }
        sum += y.d() * h2f(x.d) * hsum_i32(acc) as f32;
    }
    sum
}

/// Σ of 32 unsigned values (0..=31) times 32 signed activations, as one i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8x32(x: __m256i, y: __m256i) -> i32 {
    hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1)))
}

/// Q4_1 · Q8_1: the block's exact `Σ q·a` by `maddubs` of the unsigned nibbles, then
/// the scalar's f32 steps (`sumi·(d_x·d_y) + m_x·s_y`, the f16 scales converted by
/// F16C, which is exact): the same result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q4_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ4_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let sumi = dot_u8x32(nibbles_32(&x.qs), load32(&y.qs));
        sum += sumi as f32 * (h2f(x.d) * h2f(y.d)) + h2f(x.m) * h2f(y.s);
    }
    sum
}

/// Q5_1 · Q8_1: as Q4_1 with the fifth bits ORed in as 0x10.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q5_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ5_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let sumi = dot_u8x32(five_bits_32(&x.qs, x.qh), load32(&y.qs));
        sum += sumi as f32 * (h2f(x.d) * h2f(y.d)) + h2f(x.m) * h2f(y.s);
    }
    sum
}

/// MXFP4 · Q8_0: the FP4 values (ggml's doubled integer table) looked up by `pshufb`,
/// the block's exact integer sum, then the scalar's f32 steps: the same result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_mxfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::mxfp4::{KVALUES_MXFP4, e8m0_to_f32_half};
    let grid: [u8; 16] = bytemuck::cast(KVALUES_MXFP4);
    let table = _mm256_broadcastsi128_si256(load16(&grid));
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockMXFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let v = _mm256_shuffle_epi8(table, nibbles_32(&x.qs));
        let sumi = hsum_i32(dot_i8x32(v, load32(&y.qs)));
        sum += sumi as f32 * (e8m0_to_f32_half(x.e) * y.d());
    }
    sum
}

/// `Σ (t − o)·a` of 32 unsigned weight codes `t` with offset `o` (both below 128)
/// and 32 signed activations, as eight i32 lanes: `maddubs(t, a) − maddubs(o, a)` per
/// i16 pair (|pair| ≤ 2·127·128 for each, their difference likewise), then pairs of
/// pairs. No sign trick, so an activation of −128 is exact too.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_offset_u8x32(t: __m256i, o: __m256i, a: __m256i) -> __m256i {
    let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(t, a), _mm256_maddubs_epi16(o, a));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Four little-endian f16 (`[h0, h1, h2, h3]`) as four f32 by one F16C conversion
/// (exact); a `vmovq` into a zeroed register, so no false dependency.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn h2f_x4(h: [[u8; 2]; 4]) -> __m128 {
    let bits = u64::from_le_bytes([h[0][0], h[0][1], h[1][0], h[1][1], h[2][0], h[2][1], h[3][0], h[3][1]]);
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// NVFP4 · Q8_0: the FP4 values plus 12 (ggml's doubled table, 0..=24) by `pshufb`,
/// each 16-element sub-block's exact `Σ q·a` by [`dot_offset_u8x32`], the UE4M3
/// scales from the table of the scalar decoder, then the scalar's f32 steps in its
/// order (`sum += (d_a·d_s)·Σ`, sub-block after sub-block): the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_nvfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::mxfp4::KVALUES_MXFP4;
    use crate::ggml::nvfp4::UE4M3_HALF;
    const GRID: [u8; 16] = {
        let mut g = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            g[i] = (KVALUES_MXFP4[i] + 12) as u8;
            i += 1;
        }
        g
    };
    let table = _mm256_broadcastsi128_si256(load16(&GRID));
    let twelve = _mm256_set1_epi8(12);
    let nibble = _mm256_set1_epi8(0x0f);
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockNVFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let q = load32(&x.qs);
        let lo = _mm256_and_si256(q, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
        // Sub-blocks 0 | 2 and 1 | 3, each in element order (8 low nibbles, 8 high),
        // against the matching halves of the two Q8_0 blocks.
        let t02 = _mm256_shuffle_epi8(table, _mm256_unpacklo_epi64(lo, hi));
        let t13 = _mm256_shuffle_epi8(table, _mm256_unpackhi_epi64(lo, hi));
        let a02 = _mm256_set_m128i(load16(&y[1].qs[..16]), load16(&y[0].qs[..16]));
        let a13 = _mm256_set_m128i(load16(&y[1].qs[16..]), load16(&y[0].qs[16..]));
        // Lane 0: [s0, s1, s0, s1], lane 1: [s2, s3, s2, s3]; then [s0, s1, s2, s3].
        let h = _mm256_hadd_epi32(dot_offset_u8x32(t02, twelve, a02), dot_offset_u8x32(t13, twelve, a13));
        let h = _mm256_hadd_epi32(h, h);
        let sums = _mm_cvtepi32_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(h)));
        let dy = h2f_x4([y[0].d, y[0].d, y[1].d, y[1].d]);
        let ds = _mm_setr_ps(
            UE4M3_HALF[x.d[0] as usize],
            UE4M3_HALF[x.d[1] as usize],
            UE4M3_HALF[x.d[2] as usize],
            UE4M3_HALF[x.d[3] as usize],
        );
        let mut t = [0f32; 4];
        // SAFETY: `t` is four writable floats.
        unsafe { _mm_storeu_ps(t.as_mut_ptr(), _mm_mul_ps(_mm_mul_ps(dy, ds), sums)) };
        for t in t {
            sum += t;
        }
    }
    sum
}

/// Q1_0 · Q8_0: per Q8_0 block the sign bits as bytes 2 / 0 ([`bits_to_bytes_32`]),
/// `Σ (2b − 1)·a` exactly by [`dot_offset_u8x32`], then the scalar's f32 steps in its
/// order (`Σ_k d_k·Σ_k` from 0.0, four blocks in turn, then `· d_w`): the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q1_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let (one, two) = (_mm256_set1_epi8(1), _mm256_set1_epi8(2));
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(4))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let p: [__m256i; 4] = std::array::from_fn(|k| {
            let bits = [x.qs[4 * k], x.qs[4 * k + 1], x.qs[4 * k + 2], x.qs[4 * k + 3]];
            let t = _mm256_and_si256(bits_to_bytes_32(bits), two);
            dot_offset_u8x32(t, one, load32(&y[k].qs))
        });
        // Lane 0: the sums of lanes 0..4 of p[0..4], lane 1 of lanes 4..8.
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        let sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        // The weight's scale converted with the activations' (alone, by `h2f`, LLVM
        // merged its `vpinsrw` into the accumulator's register: a false dependency).
        let d = {
            let half = |h: [u8; 2]| u16::from_le_bytes(h) as i64;
            let dy = half(y[0].d) | half(y[1].d) << 16 | half(y[2].d) << 32 | half(y[3].d) << 48;
            _mm256_cvtph_ps(_mm_set_epi64x(half(x.d), dy))
        };
        let (dy, dx) = (_mm256_castps256_ps128(d), _mm256_extractf128_ps::<1>(d));
        let mut t = [0f32; 4];
        // SAFETY: `t` is four writable floats.
        unsafe { _mm_storeu_ps(t.as_mut_ptr(), _mm_mul_ps(dy, _mm_cvtepi32_ps(sums))) };
        let mut sumi = 0f32;
        for t in t {
            sumi += t;
        }
        sum += _mm_cvtss_f32(dx) * sumi;
    }
    sum
}

/// Q2_0 · Q8_0: per Q8_0 block its 8 code bytes spread by `pshufb` (byte `i` of each
/// lane's four into every 32-bit group), shifted by `2j` in group `j` (`vpsrlvd`),
/// masked, and put back in element order by a 4×4 byte transpose; `Σ (code − 1)·a`
/// exactly by [`dot_offset_u8x32`]; then the scalar's f32 steps in its order: the same
/// bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q2_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    #[rustfmt::skip]
    const SPREAD: [i8; 32] = [
        0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,
        4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7,
    ];
    #[rustfmt::skip]
    const TRANSPOSE: [i8; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    let spread: [__m256i; 2] =
        std::array::from_fn(|k| _mm256_add_epi8(load32(bytemuck::bytes_of(&SPREAD)), _mm256_set1_epi8(8 * k as i8)));
    let transpose = _mm256_broadcastsi128_si256(load16(bytemuck::bytes_of(&TRANSPOSE)));
    let shifts = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let (one, three) = (_mm256_set1_epi8(1), _mm256_set1_epi8(3));
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let q = _mm256_broadcastsi128_si256(load16(&x.qs));
        let p: [__m256i; 2] = std::array::from_fn(|k| {
            let c = _mm256_srlv_epi32(_mm256_shuffle_epi8(q, spread[k]), shifts);
            let c = _mm256_shuffle_epi8(_mm256_and_si256(c, three), transpose);
            dot_offset_u8x32(c, one, load32(&y[k].qs))
        });
        // [a, b, c, d] with Σ0 = a + b, Σ1 = c + d; then [Σ0, Σ1, Σ0, Σ1].
        let h = _mm256_hadd_epi32(p[0], p[1]);
        let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        let sums = _mm_cvtepi32_ps(_mm_hadd_epi32(s, s));
        // [d_0, d_1, d_w, d_w]: lanes 2 and 3 of the product are not used.
        let d = h2f_x4([y[0].d, y[1].d, x.d, x.d]);
        let mut t = [0f32; 4];
        // SAFETY: `t` is four writable floats.
        unsafe { _mm_storeu_ps(t.as_mut_ptr(), _mm_mul_ps(d, sums)) };
        let mut sumi = 0f32;
        sumi += t[0];
        sumi += t[1];
        sum += _mm_cvtss_f32(_mm_movehl_ps(d, d)) * sumi;
    }
    sum
}

/// Horizontal sum of eight i32 lanes (exact where the true sum fits).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_i32(v: __m256i) -> i32 {
    let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let v = _mm_add_epi32(v, _mm_srli_si128(v, 8));
    let v = _mm_add_epi32(v, _mm_srli_si128(v, 4));
    _mm_cvtsi128_si32(v)
}

/// The four 2-bit planes of 32 bytes, bits `0..2` first (immediate shifts).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn planes2(q: __m256i) -> [__m256i; 4] {
    let m = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(q, m),
        _mm256_and_si256(_mm256_srli_epi16(q, 2), m),
        _mm256_and_si256(_mm256_srli_epi16(q, 4), m),
        _mm256_and_si256(_mm256_srli_epi16(q, 6), m),
    ]
}

/// 4 where bit `b` of each byte of `hm` is clear, else 0, for `b = 0..8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn clear_bits_times4(hm: __m256i) -> [__m256i; 8] {
    let c = _mm256_xor_si256(hm, _mm256_set1_epi8(-1));
    let four = _mm256_set1_epi8(4);
    // Bit b moves to bit 2; 16-bit shifts keep every byte's bit b inside its byte
    // once masked.
    [
        _mm256_and_si256(_mm256_slli_epi16(c, 2), four),
        _mm256_and_si256(_mm256_slli_epi16(c, 1), four),
        _mm256_and_si256(c, four),
        _mm256_and_si256(_mm256_srli_epi16(c, 1), four),
        _mm256_and_si256(_mm256_srli_epi16(c, 2), four),
        _mm256_and_si256(_mm256_srli_epi16(c, 3), four),
        _mm256_and_si256(_mm256_srli_epi16(c, 4), four),
        _mm256_and_si256(_mm256_srli_epi16(c, 5), four),
    ]
}

/// Q2_K · Q8_K: each 2-bit plane of 32 codes times its 32 activations through
/// `maddubs` (|pair| ≤ 768), the two group scales spread by `pshufb` and applied by
/// `madd`; the mins through the activation's 16-sums. Both integer sums are exact
/// and the blocks are accumulated as the scalar does: the same f32 result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q2_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let shuffles: [__m128i; 8] = std::array::from_fn(|j| load16(&Q6K_SCALE_SHUFFLE[j]));
    let m4 = _mm_set1_epi8(0x0f);
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ2K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let sc = load16(&x.scales);
        let (scales, mins) = (_mm_and_si128(sc, m4), _mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        let summ = hsum_i32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), load32(&y.bsums)));
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            for (j, plane) in planes2(load32(&x.qs[32 * n..])).into_iter().enumerate() {
                let p = _mm256_maddubs_epi16(plane, load32(&y.qs[128 * n + 32 * j..]));
                let s = spread_scales(scales, shuffles[4 * n + j]);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        sum += y.d() * h2f(x.d) * hsum_i32(sumi) as f32 - y.d() * h2f(x.dmin) * summ as f32;
    }
    sum
}

/// `pshufb` masks over 16 i16 scales (8 per 128-bit lane, the same 8 in both lanes)
/// that fill the low lane with scale `2j` and the high lane with scale `2j + 1`.
const I16_PAIR_SHUFFLE: [[u8; 32]; 4] = {
    let mut m = [[0u8; 32]; 4];
    let mut j = 0;
    while j < 4 {
        let mut i = 0;
        while i < 32 {
            m[j][i] = (4 * j + 2 * (i / 16) + i % 2) as u8;
            i += 1;
        }
        j += 1;
    }
    m
};

/// Q3_K's sixteen 6-bit scales minus 32 as i8 lanes, built in a register from
/// `kquants::q3k_scale_words` (a byte array stored and reloaded as a vector stalls
/// store forwarding every block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q3k_scales_i8(packed: &[u8; 12]) -> __m128i {
    let w = crate::ggml::kquants::q3k_scale_words(packed).map(|w| w as i32);
    _mm_sub_epi8(_mm_setr_epi32(w[0], w[1], w[2], w[3]), _mm_set1_epi8(32))
}

/// Q3_K · Q8_K: `Σ (low − 4·[high bit clear])·a` as two `maddubs` of unsigned parts
/// (|pair| ≤ 1024 each), the signed 6-bit group scales widened to i16 once per block
/// and spread by an in-lane `pshufb`, applied by `madd`. Exact integer sums, the
/// scalar's f32 steps: the same result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_q3_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let shuffles: [__m256i; 4] = std::array::from_fn(|j| load32(&I16_PAIR_SHUFFLE[j]));
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockQ3K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let sc16 = _mm256_cvtepi8_epi16(q3k_scales_i8(&x.scales));
        let high = clear_bits_times4(load32(&x.hmask));
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            let half = if n == 0 {
                _mm256_permute2x128_si256::<0x00>(sc16, sc16)
            } else {
                _mm256_permute2x128_si256::<0x11>(sc16, sc16)
            };
            let planes = planes2(load32(&x.qs[32 * n..]));
            for (j, (plane, shuffle)) in planes.into_iter().zip(shuffles).enumerate() {
                let av = load32(&y.qs[128 * n + 32 * j..]);
                let p = _mm256_sub_epi16(
                    _mm256_maddubs_epi16(plane, av),
                    _mm256_maddubs_epi16(high[4 * n + j], av),
                );
                let s = _mm256_shuffle_epi8(half, shuffle);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        sum += y.d() * h2f(x.d) * hsum_i32(sumi) as f32;
    }
    sum
}

/// The base-3 digit `((q · 3) >> 8)` of each byte `q`, as ggml's TQ1_0 decoder takes
/// it from `q = b·3ⁿ mod 256`: 1 from `q ≥ 86`, 2 from `q ≥ 171` (3·85 = 255,
/// 3·170 = 510), by two signed compares of `q ^ 0x80`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn trits32(q: __m256i) -> __m256i {
    let s = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
    let ge86 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8((85u8 ^ 0x80) as i8));
    let ge171 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8((170u8 ^ 0x80) as i8));
    // The masks are 0 or −1 each: their negated sum is the digit.
    _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(ge86, ge171))
}

/// `3·q` byte by byte, modulo 256: `q + 2q`, the doubling as a 16-bit shift with
/// each byte's carry-in masked off. (Written as byte adds, LLVM turns it into a
/// byte multiply, which x86 lacks: it then splits the bytes into 16-bit halves and
/// multiplies, three times the work.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn times3_u8(q: __m256i) -> __m256i {
    _mm256_add_epi8(q, _mm256_and_si256(_mm256_slli_epi16(q, 1), _mm256_set1_epi8(-2)))
}

/// TQ1_0 · Q8_K: the base-3 digits (0..=2) decoded in u8 lanes (`b·3ⁿ mod 256` by
/// byte adds, the digit by compares), `Σ digit·a` by `maddubs` in i16 (eight products
/// of |pair| ≤ 512 per lane), minus `Σ a` from the activation's 16-sums: the scalar's
/// `Σ (digit − 1)·a` exactly, with its f32 steps (the same result).
///
/// Elements: `32n + m` from byte `m` of `qs[..32]` (n = 0..5); `160 + 16n + m` from
/// byte `m` of `qs[32..48]`, two powers per vector (low lane `3ⁿ`, high `3ⁿ⁺¹`, and
/// the activations `160 + 16n..` are contiguous); the last step pairs `qs[32..48]·81`
/// (elements 224..240) with `qh` (element `240 + 4n + m` from `qh[m]·3ⁿ`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_tq1_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockTQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let mut p16 = _mm256_setzero_si256();
        let mut q = load32(&x.qs[..32]);
        for n in 0..5 {
            p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(trits32(q), load32(&y.qs[32 * n..])));
            q = times3_u8(q);
        }
        let b = _mm256_broadcastsi128_si256(load16(&x.qs[32..48]));
        // [b·3ⁿ, b·3ⁿ⁺¹] for n = 0, 2.
        let mut q = _mm256_blend_epi32::<0xf0>(b, times3_u8(b));
        for n in [0, 2] {
            p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(trits32(q), load32(&y.qs[160 + 16 * n..])));
            q = times3_u8(times3_u8(q));
        }
        // q's low lane is b·81 now; the high lane becomes qh's digits, bytes
        // `4n + m` = qh[m]·3ⁿ.
        let h = _mm256_set1_epi32(i32::from_le_bytes(x.qh));
        let h3 = times3_u8(h);
        let h9 = times3_u8(h3);
        let h27 = times3_u8(h9);
        // High lane: dwords h, h3, h9, h27 (bytes `4n + m` = qh[m]·3ⁿ).
        let hq = _mm256_blend_epi32::<0b1100_0000>(
            _mm256_blend_epi32::<0b0010_0000>(h, h3),
            _mm256_blend_epi32::<0b1000_0000>(h9, h27),
        );
        let q = _mm256_blend_epi32::<0xf0>(q, hq);
        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(trits32(q), load32(&y.qs[224..])));
        let total = _mm256_madd_epi16(load32(&y.bsums), ones);
        let sumi = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), total);
        sum += y.d() * h2f(x.d) * hsum_i32(sumi) as f32;
    }
    sum
}

/// TQ2_0 · Q8_K: `Σ code·a − Σ a` (codes `q + 1`, 0..=2) with `maddubs` and the
/// activation's 16-sums. Exact integer sums, the scalar's f32 steps: the same result.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_tq2_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockTQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let mut p16 = _mm256_setzero_si256();
        for n in 0..2 {
            // Eight planes of |pair| ≤ 512 stay within i16 (≤ 4 096).
            for (j, plane) in planes2(load32(&x.qs[32 * n..])).into_iter().enumerate() {
                let av = load32(&y.qs[128 * n + 32 * j..]);
                p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(plane, av));
            }
        }
        let total = _mm256_madd_epi16(load32(&y.bsums), ones);
        let sumi = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), total);
        sum += y.d() * h2f(x.d) * hsum_i32(sumi) as f32;
    }
    sum
}

/// TQ2_0 · Q8_K, several rows: `y[r]` is bit for bit what [`vec_dot_tq2_0_q8_k`]
/// gives for row `r` (the same exact block sums, the same f32 steps per row, block
/// after block). Two rows at a time share each block's activation loads and its
/// `bsums` sum, and one `hadd` reduces both rows' block sums instead of a horizontal
/// sum per row (four rows spill registers and measured slower than one). One shift
/// per 32 bytes: the fields at bits 0..2 and 4..6 are masked to the codes, those at
/// 2..4 and 6..8 in place (four times the codes), into a ×1 and a ×4 i16 accumulator
/// (at most 4 · 768 and 4 · 3072 for codes up to 3 and any bytes); the i32 sums are
/// four times the dot product's and are divided exactly. A left-over row runs
/// [`vec_dot_tq2_0_q8_k`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn matvec_rows_tq2_0(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]) {
    const R: usize = 2;
    let n = row_bytes / size_of::<BlockTQ2_0>();
    assert!(row_bytes == n * size_of::<BlockTQ2_0>() && w.len() == y.len() * row_bytes);
    let ys = &cast_slice::<u8, BlockQ8K>(a)[..n];
    let row = |r: usize| cast_slice::<u8, BlockTQ2_0>(&w[r * row_bytes..(r + 1) * row_bytes]);
    let ahead = group_prefetch_ahead(R * row_bytes, PREFETCH_AHEAD);
    let (m1, m4) = (_mm256_set1_epi8(3), _mm256_set1_epi8(12));
    let (ones, fours) = (_mm256_set1_epi16(1), _mm256_set1_epi16(4));
    let mut r = 0;
    while r + R <= y.len() {
        let rows: [&[BlockTQ2_0]; R] = std::array::from_fn(|k| row(r + k));
        let mut sum = [0f32; R];
        for (i, yb) in ys.iter().enumerate() {
            let mut p1 = [_mm256_setzero_si256(); R];
            let mut p4 = [_mm256_setzero_si256(); R];
            for h in 0..2 {
                let av: [__m256i; 4] = std::array::from_fn(|k| load32(&yb.qs[128 * h + 32 * k..]));
                for k in 0..R {
                    let q = load32(&rows[k][i].qs[32 * h..]);
                    let s = _mm256_srli_epi16(q, 4);
                    p1[k] = _mm256_add_epi16(p1[k], _mm256_maddubs_epi16(_mm256_and_si256(q, m1), av[0]));
                    p4[k] = _mm256_add_epi16(p4[k], _mm256_maddubs_epi16(_mm256_and_si256(q, m4), av[1]));
                    p1[k] = _mm256_add_epi16(p1[k], _mm256_maddubs_epi16(_mm256_and_si256(s, m1), av[2]));
                    p4[k] = _mm256_add_epi16(p4[k], _mm256_maddubs_epi16(_mm256_and_si256(s, m4), av[3]));
                }
            }
            for row in &rows {
                prefetch_lines(std::slice::from_ref(&row[i]), ahead);
            }
            let total4 = _mm256_madd_epi16(load32(&yb.bsums), fours);
            let v: [__m256i; R] = std::array::from_fn(|k| {
                let s4 = _mm256_add_epi32(_mm256_madd_epi16(p1[k], fours), _mm256_madd_epi16(p4[k], ones));
                _mm256_sub_epi32(s4, total4)
            });
            // Lanes 0 and 1 of `h` hold rows 0 and 1; every term is a multiple of
            // four, so the arithmetic shift divides exactly.
            let h = _mm256_hadd_epi32(v[0], v[1]);
            let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let h = _mm_srai_epi32(_mm_hadd_epi32(h, h), 2);
            let mut l = [0i32; 4];
            // SAFETY: `l` is 16 writable bytes; the store is unaligned.
            unsafe { _mm_storeu_si128(l.as_mut_ptr().cast(), h) };
            let sumi = [l[0], l[1]];
            for k in 0..R {
                sum[k] += yb.d() * h2f(rows[k][i].d) * sumi[k] as f32;
            }
        }
        y[r..r + R].copy_from_slice(&sum);
        r += R;
    }
    while r < y.len() {
        y[r] = vec_dot_tq2_0_q8_k(&w[r * row_bytes..(r + 1) * row_bytes], a);
        r += 1;
    }
}

// ---------------------------------------------------------------------------
// i-quant dot products (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M)
//
// Each block's integer sum Σ_g ls_g·Σ q·a is computed exactly, in i32 lanes, and
// the blocks are combined with the scalar specification's f32 steps in its order
// (`d_w·d_a·sumi`, block after block, then the final factor): the same bits. The
// grid magnitudes (≤ 62) multiply the activations with their signs applied by
// `maddubs` (|pair| ≤ 2·62·127, no saturation); the activations must not be −128,
// which Q8_K's quantizer never produces.

/// `_mm256_sign_epi8` operands for the 8 sign bits of byte `s`: byte `j` is −1 where
/// bit `j` is set, else +1.
const fn sign_bytes(s: u8) -> u64 {
    let mut v = 0u64;
    let mut j = 0;
    while j < 8 {
        let b: u64 = if s & (1 << j) != 0 { 0xff } else { 0x01 };
        v |= b << (8 * j);
        j += 1;
    }
    v
}

/// [`sign_bytes`] of ggml's `ksigns_iq2xs[i]`: 7 sign bits and their parity in bit 7.
/// `tests::ksign_bytes_match_the_table` checks it against `KSIGNS_IQ2XS`.
pub(super) const KSIGN_BYTES: [u64; 128] = {
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        let parity = ((i as u8).count_ones() & 1) as u8;
        t[i] = sign_bytes(i as u8 | (parity << 7));
        i += 1;
    }
    t
};

/// `pshufb` mask that repeats byte 0 (1) over bytes 0..8 (8..16) of the low lane and
/// byte 2 (3) over bytes 0..8 (8..16) of the high lane.
const SIGN_SPREAD: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        m[i] = (i / 8) as u8;
        i += 1;
    }
    m
};

/// ±1 bytes for 32 elements from 4 explicit sign bytes (`s` little-endian, byte `l`
/// for elements `8l..8l + 8`, bit `j` for element `8l + j`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn explicit_signs(s: u32) -> __m256i {
    // In-lane shuffle: the high lane's indices 2 and 3 select bytes 2 and 3 of its copy.
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(s as i32), load32(&SIGN_SPREAD));
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
    _mm256_or_si256(set, _mm256_set1_epi8(1))
}

/// An 8-byte grid row as the i64 `_mm256_set_epi64x` takes.
#[inline(always)]
fn row8(r: &[u8; 8]) -> i64 {
    i64::from_le_bytes(*r)
}

/// A 4-byte grid row as the i32 `_mm256_setr_epi32` takes.
#[inline(always)]
fn row4(r: &[u8; 4]) -> i32 {
    i32::from_le_bytes(*r)
}

/// Four IQ2 grid rows (elements `8l..8l + 8` from row `l`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows8(r0: &[u8; 8], r1: &[u8; 8], r2: &[u8; 8], r3: &[u8; 8]) -> __m256i {
    _mm256_set_epi64x(row8(r3), row8(r2), row8(r1), row8(r0))
}

/// Sixteen i16 lanes of `Σ grid·(±a)` over pairs of 32 elements: `grid` unsigned
/// magnitudes, `signs` ±1 bytes, `a` the activations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn signed_grid_dot(grid: __m256i, signs: __m256i, a: __m256i) -> __m256i {
    _mm256_maddubs_epi16(grid, _mm256_sign_epi8(a, signs))
}

/// The i16 scale vector for 32 elements with scale `lo` on the first 16 and `hi` on
/// the last 16 (the low and high 128-bit lanes of a `maddubs` result).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales16(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// [`scales16`] of one byte of two 4-bit scales: `2·s + 1` of the low nibble, then of
/// the high nibble (IQ2_XS, IQ2_S).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn odd_scales16(sc: u8) -> __m256i {
    scales16(2 * (sc & 0xf) as i16 + 1, 2 * (sc >> 4) as i16 + 1)
}

/// ±1 sign bytes for 32 elements from the four 7-bit `ksigns` indices in bits 0..28
/// of `aux32` (IQ2_XXS, IQ3_XXS).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ksigns_of(aux32: u32) -> __m256i {
    let sign = |l: u32| KSIGN_BYTES[((aux32 >> (7 * l)) & 127) as usize] as i64;
    _mm256_set_epi64x(sign(3), sign(2), sign(1), sign(0))
}

/// IQ2_XXS · Q8_K: per 32 elements four grid rows and four 7-bit sign indices, one odd
/// scale `2·s + 1`; exact integer sums, the scalar's f32 steps (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq2_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ2XXS_GRID as G;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let mut acc = _mm256_setzero_si256();
        for (ib32, q) in x.qs.chunks_exact(8).enumerate() {
            let aux32 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
            let grid = rows8(
                &G[q[0] as usize],
                &G[q[1] as usize],
                &G[q[2] as usize],
                &G[q[3] as usize],
            );
            let signs = ksigns_of(aux32);
            let p = signed_grid_dot(grid, signs, load32(&y.qs[32 * ib32..]));
            let ls = 2 * (aux32 >> 28) as i16 + 1;
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
        }
        sum += h2f(x.d) * y.d() * hsum_i32(acc) as f32;
    }
    0.125 * sum
}

/// IQ2_XS · Q8_K: u16 codes (9-bit grid index, 7-bit sign index), one odd scale per
/// 16 elements; exact integer sums, the scalar's f32 steps (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq2_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ2XS_GRID as G;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let mut acc = _mm256_setzero_si256();
        for (ib32, q) in x.qs.chunks_exact(8).enumerate() {
            let code: [usize; 4] = std::array::from_fn(|l| u16::from_le_bytes([q[2 * l], q[2 * l + 1]]) as usize);
            let grid = rows8(
                &G[code[0] & 511],
                &G[code[1] & 511],
                &G[code[2] & 511],
                &G[code[3] & 511],
            );
            let sign = |l: usize| KSIGN_BYTES[code[l] >> 9] as i64;
            let signs = _mm256_set_epi64x(sign(3), sign(2), sign(1), sign(0));
            let p = signed_grid_dot(grid, signs, load32(&y.qs[32 * ib32..]));
            let ls = odd_scales16(x.scales[ib32]);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ls));
        }
        sum += h2f(x.d) * y.d() * hsum_i32(acc) as f32;
    }
    0.125 * sum
}

/// IQ2_S · Q8_K: 10-bit grid indices (high bits in `qh`), explicit sign bytes, one odd
/// scale per 16 elements; exact integer sums, the scalar's f32 steps (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq2_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ2S_GRID as G;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let (qs, signs) = x.qs.split_at(QK_K / 8);
        let mut acc = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let q = &qs[4 * ib32..4 * ib32 + 4];
            let qh = x.qh[ib32] as usize;
            let idx = |l: usize| q[l] as usize | ((qh << (8 - 2 * l)) & 0x300);
            let grid = rows8(&G[idx(0)], &G[idx(1)], &G[idx(2)], &G[idx(3)]);
            let s = &signs[4 * ib32..4 * ib32 + 4];
            let sg = explicit_signs(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
            let p = signed_grid_dot(grid, sg, load32(&y.qs[32 * ib32..]));
            let ls = odd_scales16(x.scales[ib32]);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ls));
        }
        sum += h2f(x.d) * y.d() * hsum_i32(acc) as f32;
    }
    0.125 * sum
}

/// IQ3_XXS · Q8_K: eight 4-element grid rows per 32 elements, signs and the odd scale
/// as IQ2_XXS; exact integer sums, the scalar's f32 steps (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq3_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ3XXS_GRID as G;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        prefetch_ahead(std::slice::from_ref(x));
        let (qs, scales_and_signs) = x.qs.split_at(QK_K / 4);
        let mut acc = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let q = &qs[8 * ib32..8 * ib32 + 8];
            let r = |m: usize| row4(&G[q[m] as usize]);
            let grid = _mm256_setr_epi32(r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
            let s = &scales_and_signs[4 * ib32..4 * ib32 + 4];
            let aux32 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            let signs = ksigns_of(aux32);
            let p = signed_grid_dot(grid, signs, load32(&y.qs[32 * ib32..]));
            let ls = 2 * (aux32 >> 28) as i16 + 1;
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
        }
        sum += h2f(x.d) * y.d() * hsum_i32(acc) as f32;
    }
    0.25 * sum
}

/// IQ3_S · Q8_K: 9-bit indices of 4-element grid rows (high bits in `qh`), explicit
/// sign bytes, one odd scale per 32 elements; exact integer sums, the scalar's f32
/// steps (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq3_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::IQ3S_GRID as G;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let mut acc = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let q = &x.qs[8 * ib32..8 * ib32 + 8];
            let qh = x.qh[ib32] as usize;
            // Row m's ninth index bit is bit m of `qh`.
            let r = |m: usize| row4(&G[q[m] as usize | (((qh >> m) & 1) << 8)]);
            let grid = _mm256_setr_epi32(r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
            let s = &x.signs[4 * ib32..4 * ib32 + 4];
            let sg = explicit_signs(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
            let p = signed_grid_dot(grid, sg, load32(&y.qs[32 * ib32..]));
            let ls = 2 * ((x.scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xf) as i16 + 1;
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
        }
        sum += h2f(x.d) * y.d() * hsum_i32(acc) as f32;
    }
    sum
}

/// An IQ1 grid row (−1/0/+1) as the i64 `_mm256_set_epi64x` takes.
#[inline(always)]
fn row8_i8(r: &[i8; 8]) -> i64 {
    i64::from_le_bytes(r.map(|v| v as u8))
}

/// Sixteen i16 lanes of `Σ g·a` over pairs of 32 elements, `g` ∈ {−1, 0, +1} bytes
/// (`sign_epi8` applies them, |pair| ≤ 254).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ternary_dot(g: __m256i, a: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_sign_epi8(a, g))
}

/// IQ1_S · Q8_K: the grid part `Σ ls·Σ g·a` exactly in i32 lanes, the δ part
/// `Σ ±ls·Σ a` from the activation's 16-sums (as the scalar), then the scalar's f32
/// steps `d_w·d_a·(Σ + δ·Σ_δ)`: the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq1_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ1S_DELTA, IQ1S_GRID as G};
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let mut acc = _mm256_setzero_si256();
        let mut sumi1 = 0i32;
        for ib in 0..8 {
            let qh = u16::from_le_bytes([x.qh[2 * ib], x.qh[2 * ib + 1]]) as usize;
            let q = &x.qs[4 * ib..4 * ib + 4];
            let r = |l: usize| row8_i8(&G[q[l] as usize | (((qh >> (3 * l)) & 7) << 8)]);
            let grid = _mm256_set_epi64x(r(3), r(2), r(1), r(0));
            let p = ternary_dot(grid, load32(&y.qs[32 * ib..]));
            let ls = 2 * ((qh >> 12) & 7) as i32 + 1;
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(ls as i16)));
            let ls_delta = if qh & 0x8000 != 0 { -ls } else { ls };
            sumi1 += ls_delta * (y.bsum(2 * ib) as i32 + y.bsum(2 * ib + 1) as i32);
        }
        let sumi = hsum_i32(acc);
        sum += h2f(x.d) * y.d() * (sumi as f32 + IQ1S_DELTA * sumi1 as f32);
    }
    sum
}

/// IQ1_M · Q8_K: as IQ1_S with one odd scale per 16 elements (the i16 scale vector
/// holds both) and one δ sign per 8 elements, applied to the activations as ±1 bytes;
/// the f16 scale assembled from the scales' high nibbles. Exact integer sums, the
/// scalar's f32 steps: the same bits.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn vec_dot_iq1_m_q8_k(w: &[u8], a: &[u8]) -> f32 {
    use crate::ggml::iq_grids::{IQ1S_DELTA, IQ1S_GRID as G};
    const PLUS: i64 = 0x0101_0101_0101_0101;
    let mut sum = 0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1M>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        prefetch_ahead(std::slice::from_ref(x));
        let sc: [u16; 4] = std::array::from_fn(|i| u16::from_le_bytes([x.scales[2 * i], x.scales[2 * i + 1]]));
        let scale = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = h2f(scale.to_le_bytes());
        let mut acc1 = _mm256_setzero_si256();
        let mut acc2 = _mm256_setzero_si256();
        for ib in 0..8 {
            let (s, shift) = (sc[ib / 2], 6 * (ib % 2));
            let ls = scales16(
                2 * ((s >> shift) & 7) as i16 + 1,
                2 * ((s >> (shift + 3)) & 7) as i16 + 1,
            );
            let q = &x.qs[4 * ib..4 * ib + 4];
            let h = [x.qh[2 * ib] as usize, x.qh[2 * ib + 1] as usize];
            let r = |l: usize| row8_i8(&G[q[l] as usize | ((h[l / 2] << (8 - 4 * (l % 2))) & 0x700)]);
            let grid = _mm256_set_epi64x(r(3), r(2), r(1), r(0));
            let delta = |l: usize| {
                if h[l / 2] & (0x08 << (4 * (l % 2))) != 0 {
                    -1
                } else {
                    PLUS
                }
            };
            let delta = _mm256_set_epi64x(delta(3), delta(2), delta(1), delta(0));
            let av = load32(&y.qs[32 * ib..]);
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(ternary_dot(grid, av), ls));
            acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(ternary_dot(delta, av), ls));
        }
        let (sumi1, sumi2) = (hsum_i32(acc1), hsum_i32(acc2));
        sum += d * y.d() * (sumi1 as f32 + IQ1S_DELTA * sumi2 as f32);
    }
    sum
}

// ---------------------------------------------------------------------------
// the lane-parallel K-quant quantizers of `ggml::quant_k_lanes` on eight lanes

/// Eight f32 lanes in one AVX register, for [`Lanes`].
///
/// Its methods are safe functions that call AVX/AVX2 intrinsics: an `F32x8`
/// exists only inside the `#[target_feature]` quantizers below (the type is
/// private to this module), which run only after `detected()` confirmed AVX2.
#[derive(Clone, Copy, Debug)]
struct F32x8(__m256);

macro_rules! f32x8_binop {
    ($tr:ident, $f:ident, $intr:ident) => {
        impl std::ops::$tr for F32x8 {
            type Output = F32x8;
            #[inline(always)]
            fn $f(self, o: F32x8) -> F32x8 {
                // SAFETY: AVX is available wherever an `F32x8` exists (see the type).
                F32x8(unsafe { $intr(self.0, o.0) })
            }
        }
    };
}
f32x8_binop!(Add, add, _mm256_add_ps);
f32x8_binop!(Sub, sub, _mm256_sub_ps);
f32x8_binop!(Mul, mul, _mm256_mul_ps);
f32x8_binop!(Div, div, _mm256_div_ps);

impl F32x8 {
    #[inline(always)]
    fn cmp<const P: i32>(self, o: F32x8) -> __m256 {
        // SAFETY: AVX is available wherever an `F32x8` exists (see the type).
        unsafe { _mm256_cmp_ps::<P>(self.0, o.0) }
    }
}

impl Lanes for F32x8 {
    const N: usize = 8;
    type Mask = __m256;
    #[inline(always)]
    fn splat(v: f32) -> F32x8 {
        // SAFETY: only reached from the `#[target_feature]` quantizers below.
        F32x8(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(src: &[f32]) -> F32x8 {
        let src = &src[..8];
        // SAFETY: eight readable floats (sliced above); AVX as for `splat`.
        F32x8(unsafe { _mm256_loadu_ps(src.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..8];
        // SAFETY: eight writable floats (sliced above); AVX as for `splat`.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn abs(self) -> F32x8 {
        // SAFETY: AVX as for `splat`.
        F32x8(unsafe { _mm256_and_ps(self.0, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff))) })
    }
    #[inline(always)]
    fn sqrt(self) -> F32x8 {
        // SAFETY: AVX as for `splat`.
        F32x8(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn lt(self, o: F32x8) -> __m256 {
        self.cmp::<_CMP_LT_OQ>(o)
    }
    #[inline(always)]
    fn gt(self, o: F32x8) -> __m256 {
        self.cmp::<_CMP_GT_OQ>(o)
    }
    #[inline(always)]
    fn eq(self, o: F32x8) -> __m256 {
        self.cmp::<_CMP_EQ_OQ>(o)
    }
    #[inline(always)]
    fn ne(self, o: F32x8) -> __m256 {
        self.cmp::<_CMP_NEQ_UQ>(o)
    }
    #[inline(always)]
    fn and(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX as for `splat`.
        unsafe { _mm256_and_ps(a, b) }
    }
    #[inline(always)]
    fn select(m: __m256, a: F32x8, b: F32x8) -> F32x8 {
        // SAFETY: AVX as for `splat`.
        F32x8(unsafe { _mm256_blendv_ps(b.0, a.0, m) })
    }
    #[inline(always)]
    fn round_clamp(self, lo: i32, hi: i32) -> F32x8 {
        // SAFETY: AVX2 as for `splat`.
        unsafe {
            // `nearest_int`: the low mantissa bits of `x + 1.5·2^23`, minus 2^22.
            let t = _mm256_castps_si256(_mm256_add_ps(self.0, _mm256_set1_ps(12_582_912.0)));
            let i = _mm256_sub_epi32(
                _mm256_and_si256(t, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x0040_0000),
            );
            let i = _mm256_max_epi32(_mm256_min_epi32(i, _mm256_set1_epi32(hi)), _mm256_set1_epi32(lo));
            F32x8(_mm256_cvtepi32_ps(i))
        }
    }
}

/// `quantize_row_q2_K_ref` on sixteen lanes (bit-exact with the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    quant_k_lanes::quantize_q2_k_with::<Pair<F32x8>>(x, y);
}

/// `quantize_row_q4_K_ref` on sixteen lanes (bit-exact with the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    quant_k_lanes::quantize_q4_k_with::<Pair<F32x8>>(x, y);
}

/// `quantize_row_q5_K_ref` on sixteen lanes (bit-exact with the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    quant_k_lanes::quantize_q5_k_with::<Pair<F32x8>>(x, y);
}

/// `quantize_row_q6_K_ref` on sixteen lanes (bit-exact with the scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    quant_k_lanes::quantize_q6_k_with::<Pair<F32x8>>(x, y);
}
