//! AVX2 I2_S block kernels: `Σ code·a` over whole blocks with `maddubs` of the
//! unsigned 2-bit codes (0..=3) and the int8 activations.
//!
//! Overflow: one `maddubs` lane is two products, within [−768, 762] for codes up
//! to 3 (bitnet.cpp's encoders write at most 2; arbitrary bytes may hold 3). A block
//! adds four of them to each i16 lane, so eight blocks stay within ±24 576 and the
//! i16 partial sums are widened to i32 every eight blocks (the AVX2 rows kernel has
//! its own budget, given with it). (bitnet.cpp's kernel
//! widens every 32 blocks and wraps, e.g. with all weights +1 and all activations
//! +127 at n = 4096.)
//!
//! Every `unsafe fn` here requires AVX2; [`super::detected`] is the only gate.

use super::avx2::{group_prefetch_ahead, hsum_i32, hsum_max, narrow_i32_to_i8};
use crate::bitnet::i2s::{I2sLayout, dot_codes_scalar};
use std::arch::x86_64::*;

/// i16 accumulation spans at most this many 32-byte steps.
const STEPS_PER_WIDEN: usize = 8;

/// The AVX2 rows kernel's i16 budgets, any codes: its ×4 accumulator is folded into
/// the ×1 one every this many steps, and that one widened every twice as many (see
/// the kernel).
const AVX2_STEPS_PER_FOLD: usize = 4;

/// The same for ternary codes (0..=2, no 3): twice the steps.
const AVX2_TERNARY_STEPS_PER_FOLD: usize = 8;

/// How far ahead of the current block the weights are prefetched.
const PREFETCH_BYTES: usize = 4096;

/// The four 2-bit planes of 32 bytes: `[bits 7..6, 5..4, 3..2, 1..0]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn planes(x: __m256i) -> [__m256i; 4] {
    let m = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(_mm256_srli_epi16(x, 6), m),
        _mm256_and_si256(_mm256_srli_epi16(x, 4), m),
        _mm256_and_si256(_mm256_srli_epi16(x, 2), m),
        _mm256_and_si256(x, m),
    ]
}

/// X86 layout: blocks of 128 elements in 32 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn i2s_dot_x86(packed: &[u8], a: &[i8]) -> i32 {
    let blocks = (packed.len() / 32).min(a.len() / 128);
    let (pp, ap) = (packed.as_ptr(), a.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut blk = 0;
    while blk < blocks {
        let end = (blk + STEPS_PER_WIDEN).min(blocks);
        let mut acc16 = _mm256_setzero_si256();
        while blk < end {
            if blk % 2 == 0 {
                // A hint only: prefetching never faults, and `wrapping_add` keeps
                // the address computation defined past the end of the slice.
                _mm_prefetch::<_MM_HINT_T0>(pp.wrapping_add(32 * blk + PREFETCH_BYTES).cast());
            }
            // SAFETY: blk < blocks, so bytes 32·blk..32·blk+32 of `packed` and
            // 128·blk..128·blk+128 of `a` are in bounds; loads are unaligned.
            let (x, a0, a1, a2, a3) = unsafe {
                let q = ap.add(128 * blk);
                (
                    _mm256_loadu_si256(pp.add(32 * blk).cast()),
                    _mm256_loadu_si256(q.cast()),
                    _mm256_loadu_si256(q.add(32).cast()),
                    _mm256_loadu_si256(q.add(64).cast()),
                    _mm256_loadu_si256(q.add(96).cast()),
                )
            };
            let c = planes(x);
            let p0 = _mm256_maddubs_epi16(c[0], a0);
            let p1 = _mm256_maddubs_epi16(c[1], a1);
            let p2 = _mm256_maddubs_epi16(c[2], a2);
            let p3 = _mm256_maddubs_epi16(c[3], a3);
            acc16 = _mm256_add_epi16(
                acc16,
                _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)),
            );
            blk += 1;
        }
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, ones));
    }
    hsum_i32(acc)
}

/// Arm layout: blocks of 64 elements in 16 bytes, two blocks per 32-byte step
/// (an odd last block goes through the scalar specification).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn i2s_dot_arm(packed: &[u8], a: &[i8]) -> i32 {
    let blocks = (packed.len() / 16).min(a.len() / 64);
    let pairs = blocks / 2;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let (pp, ap) = (packed.as_ptr(), a.as_ptr());
    let mut pair = 0;
    while pair < pairs {
        let end = (pair + STEPS_PER_WIDEN).min(pairs);
        let mut acc16 = _mm256_setzero_si256();
        while pair < end {
            _mm_prefetch::<_MM_HINT_T0>(pp.wrapping_add(32 * pair + PREFETCH_BYTES).cast());
            // SAFETY: pair < blocks / 2, so bytes 32·pair..32·pair+32 of `packed`
            // and 128·pair..128·pair+128 of `a` are in bounds; loads are unaligned.
            let (x, av) = unsafe {
                let lo = ap.add(128 * pair);
                let hi = lo.add(64);
                (
                    _mm256_loadu_si256(pp.add(32 * pair).cast()),
                    [0, 1, 2, 3].map(|k| _mm256_loadu2_m128i(hi.add(16 * k).cast(), lo.add(16 * k).cast())),
                )
            };
            let c = planes(x);
            let p0 = _mm256_maddubs_epi16(c[0], av[0]);
            let p1 = _mm256_maddubs_epi16(c[1], av[1]);
            let p2 = _mm256_maddubs_epi16(c[2], av[2]);
            let p3 = _mm256_maddubs_epi16(c[3], av[3]);
            acc16 = _mm256_add_epi16(
                acc16,
                _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)),
            );
            pair += 1;
        }
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, ones));
    }
    let mut sum = hsum_i32(acc);
    if blocks % 2 == 1 {
        let b = blocks - 1;
        sum += dot_codes_scalar(I2sLayout::Arm, &packed[16 * b..16 * b + 16], &a[64 * b..64 * b + 64]);
    }
    sum
}

/// The checks every x86-layout rows kernel makes before its unchecked loads, and
/// its number of whole blocks: `a` is whole blocks of at most [`MAX_KERNEL_ELEMS`]
/// columns (which keeps the i32 lanes exact) and each row holds them. Row-major
/// (`interleaved` false): the last of `rows` rows `row_bytes` apart ends inside `w`.
/// Interleaved: `rows` is whole groups of [`I2S_X4_ROWS`] rows, each group
/// `I2S_X4_ROWS · row_bytes` bytes with its blocks at the front, the last group's
/// inside `w`.
///
/// [`MAX_KERNEL_ELEMS`]: crate::bitnet::i2s::MAX_KERNEL_ELEMS
/// [`I2S_X4_ROWS`]: crate::repack::I2S_X4_ROWS
fn check_rows_args(w: &[u8], row_bytes: usize, a: &[i8], rows: usize, interleaved: bool) -> usize {
    const G: usize = crate::repack::I2S_X4_ROWS;
    let blocks = a.len() / 128;
    let inside = if interleaved {
        rows.is_multiple_of(G) && (rows == 0 || w.len() >= (rows - G) * row_bytes + 32 * G * blocks)
    } else {
        rows == 0 || w.len() >= (rows - 1) * row_bytes + 32 * blocks
    };
    assert!(
        a.len() == 128 * blocks
            && a.len() <= crate::bitnet::i2s::MAX_KERNEL_ELEMS
            && 32 * blocks <= row_bytes
            && inside
    );
    blocks
}

/// Several rows of an x86-layout I2_S matvec: `out[r] = Σ code·a` over the
/// `a.len() / 128` whole blocks of row `r`, each the integer [`i2s_dot_x86`] returns
/// for that row. Rows run `$rows` at a time, sharing the activation loads.
///
/// With `IL = false` row `r`'s blocks start at byte `r · row_bytes` of `w` (rows left
/// over run one at a time); a group's rows lie back to back, so each row prefetches
/// the same place in the next group while a group is small. With `IL = true` `w`
/// holds groups of `$rows` rows interleaved block by block
/// ([`crate::repack::I2sX4`]): group `g` starts at byte `g · $rows · row_bytes`, and
/// block `j` of its row `k` at `32 · ($rows · j + k)` into it, so a group reads one
/// stream, prefetched [`PREFETCH_BYTES`] ahead; `out.len()` is a multiple of `$rows`.
/// `$acc` is the kernel's accumulator state for one group of rows: `$step` adds a
/// block to it, `$widen` runs after every `$steps` blocks and after the last, and
/// `$finish` gives row `$r`'s sum from it.
macro_rules! i2s_rows {
    ($name:ident, $feat:literal, rows: $rows:literal, widen_every: $steps:expr, init: $init:expr,
     step: |$acc:ident, $x:ident, $av:ident| $step:block,
     widen: |$wacc:ident| $widen:block, finish: |$facc:ident, $r:ident| $finish:expr) => {
        #[target_feature(enable = $feat)]
        pub(super) fn $name<const IL: bool>(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
            const R: usize = $rows;
            let blocks = check_rows_args(w, row_bytes, a, out.len(), IL);
            // Row k of a group at `k · row_step`, block j at `j · blk_step` from it;
            // the prefetched lines of a step `pf_step` apart.
            let (row_step, blk_step, pf_step, ahead) = if IL {
                (32, 32 * R, 64, PREFETCH_BYTES)
            } else {
                (row_bytes, 32, row_bytes, group_prefetch_ahead(R * row_bytes, PREFETCH_BYTES))
            };
            let ap = a.as_ptr();
            let mut r = 0;
            while r + R <= out.len() {
                let base = w[r * row_bytes..].as_ptr();
                let p: [*const u8; R] = std::array::from_fn(|k| base.wrapping_add(k * row_step));
                let mut $acc = $init;
                let mut blk = 0;
                while blk < blocks {
                    let end = (blk + $steps).min(blocks);
                    while blk < end {
                        // SAFETY: blk < blocks: bytes blk_step·blk..+32 of each row
                        // (asserted inside `w`) and 128·blk..128·blk+128 of `a` are
                        // in bounds; loads are unaligned.
                        let ($av, $x) = unsafe {
                            let q = ap.add(128 * blk);
                            (
                                [0, 1, 2, 3].map(|k| _mm256_loadu_si256(q.add(32 * k).cast())),
                                p.map(|pr| _mm256_loadu_si256(pr.add(blk_step * blk).cast())),
                            )
                        };
                        if blk % 2 == 0 {
                            for k in 0..R {
                                // A hint only: prefetching never faults, and
                                // `wrapping_add` keeps the address defined.
                                let at = base.wrapping_add(k * pf_step + blk_step * blk + ahead);
                                _mm_prefetch::<_MM_HINT_T0>(at.cast());
                            }
                        }
                        $step
                        blk += 1;
                    }
                    let $wacc = &mut $acc;
                    $widen
                }
                let $facc = $acc;
                for (k, o) in out[r..r + R].iter_mut().enumerate() {
                    let $r = k;
                    *o = $finish;
                }
                r += R;
            }
            while r < out.len() {
                out[r] = i2s_dot_x86(&w[r * row_bytes..r * row_bytes + 32 * blocks], a);
                r += 1;
            }
        }
    };
}

// AVX2: one shift per 32 bytes instead of the three of `planes`. The low two fields
// are masked in place (`x & 3`, `x & 12`), the high two after `x >> 4`; the `& 12`
// fields are four times the codes, so each row keeps two i16 accumulators, of the
// ×1 fields and of the ×4 fields. Every `$fold` steps the ×4 one, a multiple of
// four, is shifted right by 2 (exactly) and added to the ×1 one, which is widened
// to i32 by `madd` every `2 · $fold` steps. The budgets, for activations in
// [−128, 127]:
// - any codes (`i2s_rows_x86`, [`AVX2_STEPS_PER_FOLD`]): a `maddubs` lane of a ×4
//   field is within [−3072, 3048] and of a ×1 field within [−768, 762]; four steps
//   of the ×4 accumulator stay within ±24 576, and a step adds at most 4 · 768 to
//   the ×1 accumulator (its own two fields and the folded ones), eight steps
//   ±24 576;
// - ternary codes, 0..=2 (`i2s_rows_x86_ternary`, [`AVX2_TERNARY_STEPS_PER_FOLD`],
//   for callers that checked their bytes hold no 3): a ×4 lane is within
//   [−2048, 2032], eight steps within [−32 768, 32 512]; a step adds at most
//   [−2048, 2032] to the ×1 accumulator, sixteen steps [−32 768, 32 512]: exact in
//   i16 at the bound. Handed a code 3, it may wrap (a wrong sum, never undefined
//   behaviour).
// The fold and the widening cost about one instruction per step and row at four and
// eight steps (against the step's fourteen), half that at eight and sixteen; widening
// both accumulators every four steps, without the fold, cost about two. Measured on
// Zen 3 (int8 matvec, 2560 × 2560 and 2560 × 6912): the general kernel 1.05–1.07×
// that earlier one, the ternary kernel 1.05× the general one.
// `hadd` folds the four rows' i32 vectors into one, lanes r and r + 4 holding row r
// (a call covers at most `MAX_KERNEL_ELEMS` columns, so the sums stay within i32),
// so the kernel's registers (eight i16 accumulators, four activation vectors, two
// masks) leave room for the step. With one i32 vector per row the sums spilled to
// the stack, and a variant with four spilled vectors ran 1.2× slower on one call
// path than on another (Zen 3; a spill slot split across cache lines is the likely
// cause, not proven).
macro_rules! avx2_i2s_rows {
    ($name:ident, fold_every: $fold:expr) => {
        i2s_rows!($name, "avx2,fma,f16c", rows: 4, widen_every: 2 * $fold,
        init: (_mm256_setzero_si256(), [_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4], 0usize),
        step: |acc, x, av| {
            let (m1, m4) = (_mm256_set1_epi8(3), _mm256_set1_epi8(12));
            for (r, &x) in x.iter().enumerate() {
                let s = _mm256_srli_epi16(x, 4);
                let p0 = _mm256_maddubs_epi16(_mm256_and_si256(s, m4), av[0]);
                let p1 = _mm256_maddubs_epi16(_mm256_and_si256(s, m1), av[1]);
                let p2 = _mm256_maddubs_epi16(_mm256_and_si256(x, m4), av[2]);
                let p3 = _mm256_maddubs_epi16(_mm256_and_si256(x, m1), av[3]);
                acc.1[r] = _mm256_add_epi16(acc.1[r], _mm256_add_epi16(p1, p3));
                acc.2[r] = _mm256_add_epi16(acc.2[r], _mm256_add_epi16(p0, p2));
            }
            // Steps since the last widening; the fold halfway (the widening folds
            // the rest).
            acc.3 += 1;
            if acc.3 == $fold {
                for r in 0..4 {
                    acc.1[r] = _mm256_add_epi16(acc.1[r], _mm256_srai_epi16(acc.2[r], 2));
                    acc.2[r] = _mm256_setzero_si256();
                }
            }
        },
        widen: |acc| {
            let ones = _mm256_set1_epi16(1);
            let w: [__m256i; 4] = std::array::from_fn(|r| _mm256_madd_epi16(
                _mm256_add_epi16(acc.1[r], _mm256_srai_epi16(acc.2[r], 2)), ones));
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(w[0], w[1]), _mm256_hadd_epi32(w[2], w[3]));
            acc.0 = _mm256_add_epi32(acc.0, h);
            acc.1 = [_mm256_setzero_si256(); 4];
            acc.2 = [_mm256_setzero_si256(); 4];
            acc.3 = 0;
        },
        finish: |acc, r| {
            let mut l = [0i32; 8];
            // SAFETY: `l` is 32 writable bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), acc.0) };
            l[r] + l[r + 4]
        });
    };
}
avx2_i2s_rows!(i2s_rows_x86, fold_every: AVX2_STEPS_PER_FOLD);
avx2_i2s_rows!(i2s_rows_x86_ternary, fold_every: AVX2_TERNARY_STEPS_PER_FOLD);

// AVX-VNNI: `vpdpbusd` sums four code·a products into each i32 lane directly
// (at most 4 · 3 · 128 per instruction, and a call covers at most 512 blocks,
// `MAX_KERNEL_ELEMS`), so there is no i16 budget; two accumulators per row keep
// its latency chain at two instructions a step. (Tried and dropped: one shift per
// 32 bytes instead of three, `x & 12` and `(x >> 4) & 12` going to an accumulator
// of four times the codes; four rows of it spill, two rows measured no faster. The
// AVX2 kernel above keeps it, with the rows' i32 sums folded into one vector.)
i2s_rows!(i2s_rows_x86_vnni, "avx2,fma,f16c,avxvnni", rows: 4, widen_every: STEPS_PER_WIDEN,
    init: ([_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4]),
    step: |acc, x, av| {
        for (r, &x) in x.iter().enumerate() {
            let c = planes(x);
            acc.0[r] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(acc.0[r], c[0], av[0]), c[1], av[1]);
            acc.1[r] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(acc.1[r], c[2], av[2]), c[3], av[3]);
        }
    },
    widen: |acc| {
        let _ = acc;
    },
    finish: |acc, r| hsum_i32(_mm256_add_epi32(acc.0[r], acc.1[r])));

/// AVX-512 VNNI rows kernel: each 512-bit step covers two blocks (64 bytes) of a
/// row, and no code is shifted: `vpdpbusd` multiplies the four 2-bit fields masked
/// in place (`x & 0xC0`, `x & 0x30`, `x & 0x0C`, `x & 0x03`, i.e. 64, 16, 4 and 1
/// times the codes) into four accumulators per row, which are divided exactly (an
/// arithmetic shift of an exact multiple) and added at the end. Four rows share
/// each step's four activation vectors (32 + 4 + 4 of the 32 registers); an odd
/// last block runs on the low halves with the high halves zero, and left-over rows
/// run one at a time.
///
/// Overflow: a step adds at most 4 · 3 · 64 · 128 = 98 304 to a lane of the ×64
/// accumulator, and a call covers at most [`MAX_KERNEL_ELEMS`] columns (256 steps),
/// so every lane stays within ±2^25.
///
/// [`MAX_KERNEL_ELEMS`]: crate::bitnet::i2s::MAX_KERNEL_ELEMS
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) fn i2s_rows_x86_avx512(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    check_rows_args(w, row_bytes, a, out.len(), false);
    let mut r = 0;
    while r + 4 <= out.len() {
        let sums = i2s_rows_avx512::<4>(w, r, row_bytes, a);
        out[r..r + 4].copy_from_slice(&sums);
        r += 4;
    }
    while r < out.len() {
        out[r] = i2s_rows_avx512::<1>(w, r, row_bytes, a)[0];
        r += 1;
    }
}

/// `R` rows of [`i2s_rows_x86_avx512`] starting at row `r`; the caller checked that
/// rows `r..r + R` have `a.len() / 4` bytes inside `w` at `row_bytes` apart.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn i2s_rows_avx512<const R: usize>(w: &[u8], r: usize, row_bytes: usize, a: &[i8]) -> [i32; R] {
    let blocks = a.len() / 128;
    let ahead = group_prefetch_ahead(R * row_bytes, PREFETCH_BYTES);
    let p: [*const u8; R] = std::array::from_fn(|k| w[(r + k) * row_bytes..].as_ptr());
    let ap = a.as_ptr();
    // The fields in place: bits 7..6 (times 64), 5..4, 3..2, 1..0, which pair with
    // the activations 0..32, 32..64, 64..96, 96..128 of a block.
    let masks = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm512_set1_epi8(m as i8));
    let mut acc = [[_mm512_setzero_si512(); 4]; R];
    let mut step = |x: [__m512i; R], av: [__m512i; 4]| {
        for (acc, x) in acc.iter_mut().zip(x) {
            for k in 0..4 {
                acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_and_si512(x, masks[k]), av[k]);
            }
        }
    };
    let mut blk = 0;
    while blk + 2 <= blocks {
        // SAFETY: blk + 2 <= blocks: bytes 32·blk..32·blk+64 of each row (inside `w`,
        // as the caller checked) and 128·blk..128·blk+256 of `a` are in bounds;
        // loads are unaligned.
        let (x, av) = unsafe {
            let q = ap.add(128 * blk);
            (
                p.map(|pr| _mm512_loadu_si512(pr.add(32 * blk).cast())),
                [0, 1, 2, 3].map(|k| {
                    let lo = _mm256_loadu_si256(q.add(32 * k).cast());
                    let hi = _mm256_loadu_si256(q.add(128 + 32 * k).cast());
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
                }),
            )
        };
        for pr in p {
            // A hint only: prefetching never faults, and `wrapping_add` keeps the
            // address defined.
            _mm_prefetch::<_MM_HINT_T0>(pr.wrapping_add(32 * blk + ahead).cast());
        }
        step(x, av);
        blk += 2;
    }
    if blk < blocks {
        // SAFETY: blk < blocks: bytes 32·blk..32·blk+32 of each row and
        // 128·blk..128·blk+128 of `a` are in bounds; the high halves are zero.
        let (x, av) = unsafe {
            let q = ap.add(128 * blk);
            (
                p.map(|pr| _mm512_zextsi256_si512(_mm256_loadu_si256(pr.add(32 * blk).cast()))),
                [0, 1, 2, 3].map(|k| _mm512_zextsi256_si512(_mm256_loadu_si256(q.add(32 * k).cast()))),
            )
        };
        step(x, av);
    }
    acc.map(|[a64, a16, a4, a1]| {
        let sum = _mm512_add_epi32(
            _mm512_add_epi32(_mm512_srai_epi32::<6>(a64), _mm512_srai_epi32::<4>(a16)),
            _mm512_add_epi32(_mm512_srai_epi32::<2>(a4), a1),
        );
        _mm512_reduce_add_epi32(sum)
    })
}

/// `max |x|` when every element is finite, `None` when one is NaN or infinite (the
/// scalar code then decides, since C's `MAX` over a NaN depends on the order).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn act_absmax(x: &[f32]) -> Option<f32> {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = [_mm256_setzero_ps(); 4];
    // NaN lanes are dropped by `max_ps`, so they are flagged apart (an infinity
    // shows in the maximum).
    let mut nan = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact(32);
    for c in &mut chunks {
        for (k, m) in m.iter_mut().enumerate() {
            // SAFETY: `c` holds 32 floats; lanes 8k..8k+8 are in bounds.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * k)) };
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            *m = _mm256_max_ps(*m, _mm256_and_ps(v, abs));
        }
    }
    let mut max = hsum_max(_mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
    for &v in chunks.remainder() {
        if v.is_nan() {
            return None;
        }
        max = max.max(v.abs());
    }
    (_mm256_movemask_ps(nan) == 0 && max.is_finite()).then_some(max)
}

/// `q = clamp(round_half_even(x · s), −128, 127)` for the whole 32-element chunks of
/// `x` (the scalar code's f32 multiply and `round_ties_even`); returns how many
/// elements were written and their sum. `x` must be finite and `s` finite.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn act_quantize_i8(x: &[f32], s: f32, q: &mut [i8]) -> (usize, i64) {
    let sv = _mm256_set1_ps(s);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let mut total = 0i64;
    let mut done = 0;
    // Sums in i32 lanes over at most 2^16 chunks (|Σ| ≤ 2^16 · 4 · 128 per lane).
    for (xs, qs) in x.chunks(1 << 21).zip(q.chunks_mut(1 << 21)) {
        let mut sum = _mm256_setzero_si256();
        for (c, o) in xs.chunks_exact(32).zip(qs.chunks_exact_mut(32)) {
            let v: [__m256i; 4] = std::array::from_fn(|k| {
                // SAFETY: `c` holds 32 floats; lanes 8k..8k+8 are in bounds.
                let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * k)) };
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(v, sv));
                _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi))
            });
            sum = _mm256_add_epi32(
                sum,
                _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3])),
            );
            // SAFETY: `o` is 32 writable bytes.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), narrow_i32_to_i8(v)) };
            done += 32;
        }
        total += hsum_i32(sum) as i64;
    }
    (done, total)
}

/// `lanes[j] += |w[16·i + j]|` in f64 for every whole 16-element chunk of `w`, each lane
/// adding its elements in order: the same additions, in the same order, as the scalar
/// `ternary::add_abs_lanes` (so the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn abs_lanes16(lanes: &mut [f64; 16], w: &[f32]) {
    let sign = _mm256_set1_ps(-0.0);
    // SAFETY: `lanes` holds 16 f64; the loads and stores stay inside it.
    let mut acc = unsafe {
        [
            _mm256_loadu_pd(lanes.as_ptr()),
            _mm256_loadu_pd(lanes.as_ptr().add(4)),
            _mm256_loadu_pd(lanes.as_ptr().add(8)),
            _mm256_loadu_pd(lanes.as_ptr().add(12)),
        ]
    };
    for c in w.chunks_exact(16) {
        // SAFETY: `c` holds 16 f32.
        let (lo, hi) = unsafe { (_mm256_loadu_ps(c.as_ptr()), _mm256_loadu_ps(c.as_ptr().add(8))) };
        let (lo, hi) = (_mm256_andnot_ps(sign, lo), _mm256_andnot_ps(sign, hi));
        acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
        acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)));
        acc[2] = _mm256_add_pd(acc[2], _mm256_cvtps_pd(_mm256_castps256_ps128(hi)));
        acc[3] = _mm256_add_pd(acc[3], _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1)));
    }
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: lanes `4k .. 4k + 4` are inside the 16.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * k), *a) };
    }
}

/// The 32 bytes of an x86-layout I2_S block from its four 8-column vectors (`v[j]`:
/// i32 lanes 0..=255, byte `8j + l` in lane `l`), in byte order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_columns(v: [__m256i; 4]) -> __m256i {
    let p = _mm256_packus_epi16(_mm256_packus_epi32(v[0], v[1]), _mm256_packus_epi32(v[2], v[3]));
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Packs whole 128-element blocks of `x` into `out` (32 bytes each, bitnet.cpp's x86
/// layout) with codes `1 + (x·s > 0.5) − (x·s < −0.5)`, exactly as the scalar packer;
/// returns the OR of every byte XOR 0x55 (nonzero when any code is not 0).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn pack_i2s_x86(s: f32, x: &[f32], out: &mut [u8]) -> u8 {
    let (sv, half, nhalf, one) = (
        _mm256_set1_ps(s),
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(-0.5),
        _mm256_set1_epi32(1),
    );
    let mut any = _mm256_setzero_si256();
    let x55 = _mm256_set1_epi8(0x55);
    for (xb, ob) in x.chunks_exact(128).zip(out.chunks_exact_mut(32)) {
        let mut v = [_mm256_setzero_si256(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            let mut byte = _mm256_setzero_si256();
            for (k, shift) in [6, 4, 2, 0].into_iter().enumerate() {
                // SAFETY: element 32k + 8j + 7 < 128 = xb.len().
                let t = _mm256_mul_ps(unsafe { _mm256_loadu_ps(xb.as_ptr().add(32 * k + 8 * j)) }, sv);
                let gt = _mm256_castps_si256(_mm256_cmp_ps(t, half, _CMP_GT_OQ));
                let lt = _mm256_castps_si256(_mm256_cmp_ps(t, nhalf, _CMP_LT_OQ));
                // Masks are −1 where true: code = 1 − gt + lt.
                let code = _mm256_add_epi32(_mm256_sub_epi32(one, gt), lt);
                byte = _mm256_or_si256(byte, _mm256_sllv_epi32(code, _mm256_set1_epi32(shift)));
            }
            *vj = byte;
        }
        let p = pack_columns(v);
        any = _mm256_or_si256(any, _mm256_xor_si256(p, x55));
        // SAFETY: `ob` holds 32 bytes.
        unsafe { _mm256_storeu_si256(ob.as_mut_ptr().cast(), p) };
    }
    or_bytes(any)
}

/// One fused pass of the speculative I2_S quantizer over whole 128-element blocks of
/// `x` (see `bitnet::i2s::quantize_into`): adds `|x|` into `lanes` in f64 in
/// `abs_lanes16`'s order (so the same bits), and packs every code that is the same
/// under each multiplier of `[s_lo, s_hi]` (`s_lo ≤ s_hi`): `+1` where `x·s_lo > 0.5`,
/// `−1` where `x·s_lo < −0.5`. Every other element whose code is nonzero under `s_hi`
/// is *undecided*: it is packed as 0 and its 2-bit field in `fields` (laid out as
/// `out`) is 1; every other field there is 0. `fl(x·s)` is monotone in `s`, so an
/// element is decided exactly when its scalar code agrees at both ends. (The fields
/// are collected after the pass: a branch on them here would stall the stream.)
/// Returns the OR of every byte XOR 0x55.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn pack_i2s_x86_speculative(
    lanes: &mut [f64; 16],
    (s_lo, s_hi): (f32, f32),
    x: &[f32],
    out: &mut [u8],
    fields: &mut [u8],
) -> u8 {
    let (slo, shi, half) = (_mm256_set1_ps(s_lo), _mm256_set1_ps(s_hi), _mm256_set1_ps(0.5));
    let sign = _mm256_set1_ps(-0.0);
    let (x55, i55) = (_mm256_set1_epi8(0x55), _mm256_set1_epi32(0x55));
    let mut any = _mm256_setzero_si256();
    let blocks = x.chunks_exact(128).zip(out.chunks_exact_mut(32));
    for ((xb, ob), fb) in blocks.zip(fields.chunks_exact_mut(32)) {
        abs_lanes16(lanes, xb);
        // v[j]: the negated codes minus one of column j, planes k = 0..4 shifted in
        // (Horner); u[j]: 1 in the same fields where the element is undecided.
        let mut v = [_mm256_setzero_si256(); 4];
        let mut u = [_mm256_setzero_si256(); 4];
        for k in 0..4 {
            for (j, (vj, uj)) in v.iter_mut().zip(u.iter_mut()).enumerate() {
                // SAFETY: 32k + 8j + 7 < 128 = xb.len().
                let xv = unsafe { _mm256_loadu_ps(xb.as_ptr().add(32 * k + 8 * j)) };
                // fl(|x|·s) = |fl(x·s)|: the code is ±1 where it exceeds 0.5 (never NaN).
                let a = _mm256_andnot_ps(sign, xv);
                let nz_lo = _mm256_cmp_ps(_mm256_mul_ps(a, slo), half, _CMP_GT_OQ);
                let nz_hi = _mm256_cmp_ps(_mm256_mul_ps(a, shi), half, _CMP_GT_OQ);
                let open = _mm256_castps_si256(_mm256_andnot_ps(nz_lo, nz_hi));
                // psignd: −1 where x > 0, +1 where x < 0 (x's bits as i32), 0 elsewhere.
                let neg_code = _mm256_sign_epi32(_mm256_castps_si256(nz_lo), _mm256_castps_si256(xv));
                *vj = _mm256_sub_epi32(_mm256_slli_epi32::<2>(*vj), neg_code);
                *uj = _mm256_sub_epi32(_mm256_slli_epi32::<2>(*uj), open);
            }
        }
        let p = pack_columns(v.map(|vj| _mm256_add_epi32(vj, i55)));
        any = _mm256_or_si256(any, _mm256_xor_si256(p, x55));
        // SAFETY: `ob` holds 32 bytes.
        unsafe { _mm256_storeu_si256(ob.as_mut_ptr().cast(), p) };
        // SAFETY: `fb` holds 32 bytes.
        unsafe { _mm256_storeu_si256(fb.as_mut_ptr().cast(), pack_columns(u)) };
    }
    or_bytes(any)
}

/// [`pack_i2s_x86_speculative`] in 512-bit vectors: the same sums, bytes and
/// undecided fields, with compare masks in place of `psignd`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) fn pack_i2s_x86_speculative_avx512(
    lanes: &mut [f64; 16],
    (s_lo, s_hi): (f32, f32),
    x: &[f32],
    out: &mut [u8],
    fields: &mut [u8],
) -> u8 {
    let (slo, shi, half) = (_mm512_set1_ps(s_lo), _mm512_set1_ps(s_hi), _mm512_set1_ps(0.5));
    let (one, i55, sign) = (
        _mm512_set1_epi32(1),
        _mm512_set1_epi32(0x55),
        _mm512_set1_epi32(i32::MIN),
    );
    let x55 = _mm_set1_epi8(0x55);
    let mut any = _mm_setzero_si128();
    // SAFETY: `lanes` holds 16 f64.
    let mut acc = unsafe { [_mm512_loadu_pd(lanes.as_ptr()), _mm512_loadu_pd(lanes.as_ptr().add(8))] };
    let blocks = x.chunks_exact(128).zip(out.chunks_exact_mut(32));
    for ((xb, ob), fb) in blocks.zip(fields.chunks_exact_mut(32)) {
        // v[j]: the codes minus one of bytes 16j..16j+16, planes k = 0..4 shifted in
        // (Horner); u[j]: 1 in the same fields where the element is undecided.
        let mut v = [_mm512_setzero_si512(); 2];
        let mut u = [_mm512_setzero_si512(); 2];
        // Plane k outer, j inner: the loads go in element order, so each f64 lane adds
        // its elements in `abs_lanes16`'s order.
        for k in 0..4 {
            for (j, (vj, uj)) in v.iter_mut().zip(u.iter_mut()).enumerate() {
                // SAFETY: 32k + 16j + 15 < 128 = xb.len().
                let xv = unsafe { _mm512_loadu_ps(xb.as_ptr().add(32 * k + 16 * j)) };
                let a = _mm512_abs_ps(xv);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
                acc[0] = _mm512_add_pd(acc[0], _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
                acc[1] = _mm512_add_pd(acc[1], _mm512_cvtps_pd(hi));
                // fl(|x|·s) = |fl(x·s)|: the code is ±1 where it exceeds 0.5 (never NaN).
                let nz_lo = _mm512_cmp_ps_mask(_mm512_mul_ps(a, slo), half, _CMP_GT_OQ);
                let nz_hi = _mm512_cmp_ps_mask(_mm512_mul_ps(a, shi), half, _CMP_GT_OQ);
                let neg = _mm512_test_epi32_mask(_mm512_castps_si512(xv), sign);
                let v4 = _mm512_slli_epi32::<2>(*vj);
                let v4 = _mm512_mask_add_epi32(v4, nz_lo & !neg, v4, one);
                *vj = _mm512_mask_sub_epi32(v4, nz_lo & neg, v4, one);
                let u4 = _mm512_slli_epi32::<2>(*uj);
                *uj = _mm512_mask_add_epi32(u4, nz_hi & !nz_lo, u4, one);
            }
        }
        for (j, vj) in v.into_iter().enumerate() {
            let p = _mm512_cvtepi32_epi8(_mm512_add_epi32(vj, i55));
            any = _mm_or_si128(any, _mm_xor_si128(p, x55));
            // SAFETY: `ob` holds 32 bytes.
            unsafe { _mm_storeu_si128(ob.as_mut_ptr().add(16 * j).cast(), p) };
        }
        for (j, uj) in u.into_iter().enumerate() {
            // SAFETY: `fb` holds 32 bytes.
            unsafe { _mm_storeu_si128(fb.as_mut_ptr().add(16 * j).cast(), _mm512_cvtepi32_epi8(uj)) };
        }
    }
    // SAFETY: as the loads.
    unsafe {
        _mm512_storeu_pd(lanes.as_mut_ptr(), acc[0]);
        _mm512_storeu_pd(lanes.as_mut_ptr().add(8), acc[1]);
    }
    or_bytes(_mm256_castsi128_si256(any))
}

/// The OR of the 32 bytes of `v`.
#[target_feature(enable = "avx2,fma,f16c")]
fn or_bytes(v: __m256i) -> u8 {
    let a = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let a = _mm_or_si128(a, _mm_srli_si128(a, 8));
    let a = _mm_or_si128(a, _mm_srli_si128(a, 4));
    let a = _mm_or_si128(a, _mm_srli_si128(a, 2));
    let a = _mm_or_si128(a, _mm_srli_si128(a, 1));
    _mm_cvtsi128_si32(a) as u8
}

/// TL1 lookup-table accumulation (bitnet.cpp's TL1 byte order, see `bitnet::tl`): every
/// 16 bytes are 16 consecutive rows × 4 columns; each nibble indexes the 9-entry table
/// of its activation pair, held as low and high bytes of i16 values (`lo[j]`, `hi[j]`,
/// entries 9..16 zero) and looked up with `pshufb`. Two 16-row blocks of a tile share
/// their activation pairs, so they run side by side in the two 128-bit lanes of one
/// 256-bit step (the tables broadcast to both lanes; every validated TL1 tiling has an
/// even number of 16-row blocks, `bm` = 32 or 64). Each pair of blocks runs along its
/// whole tile row summing in i16, widened every `arch::TL1_STEPS_PER_WIDEN` steps. Adds
/// `Σ w·q` into `acc` (one i32 per row; exact: `|Σ| ≤ k·128`). Returns whether any
/// nibble was above 8 (the caller then runs the scalar code, which reports it).
///
/// Requires AVX2 (the caller's dispatch checks). `bytes` holds `rows·cols/4` bytes in
/// TL1 order for the tiling `(bm_tile, bk, bm, by)`, `lo`/`hi` one table per activation
/// pair, `acc` `rows` values; anything shorter, or an odd number of 16-row blocks,
/// returns `true` (the scalar path decides).
///
/// Only row tiles `t0..t1` (of `BM` rows each) run; `acc` holds their rows, row
/// `t0·BM` first, so that tiles can go to different threads.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn tl1_accumulate(
    bytes: &[u8],
    (rows, cols): (usize, usize),
    (bm_tile, bk, bm, by): (usize, usize, usize, usize),
    (lo, hi): (&[[u8; 16]], &[[u8; 16]]),
    (t0, t1): (usize, usize),
    acc: &mut [i32],
) -> bool {
    let mask = _mm256_set1_epi8(0x0f);
    let eight = _mm256_set1_epi8(8);
    let mut bad = _mm256_setzero_si256();
    let table = |t: &[u8; 16]| {
        // SAFETY: 16 readable bytes; the load is unaligned.
        _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(t.as_ptr().cast()) })
    };
    if !crate::arch::tl1_tiling_fits((bm_tile, bk, bm, by)) || !bm.is_multiple_of(32) {
        return true;
    }
    // Byte distance between a 16-row block and the next within a `by`-column group.
    let next_block = (by / 4) * 16;
    for mo in t0..t1.min(rows / bm_tile) {
        for ko in 0..cols / bk {
            for mb in 0..bm_tile / bm {
                let tile = ((mo * (cols / bk) + ko) * (bm_tile / bm) + mb) * (bm * bk / 4);
                for m32o in 0..bm / 32 {
                    let row0 = (mo - t0) * bm_tile + mb * bm + m32o * 32;
                    let Some(acc32) = acc.get_mut(row0..row0 + 32) else {
                        return true;
                    };
                    // i32 row sums (rows 0..8, 8..16 of block A in lane 0, of block B in
                    // lane 1), fed by i16 sums of at most `TL1_STEPS_PER_WIDEN` steps.
                    let mut r = [_mm256_setzero_si256(); 4];
                    let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    let mut steps = 0;
                    let widen = |r: &mut [__m256i; 4], s0: __m256i, s1: __m256i| {
                        r[0] = _mm256_add_epi32(r[0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s0)));
                        r[1] = _mm256_add_epi32(r[1], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s1)));
                        r[2] = _mm256_add_epi32(r[2], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s0, 1)));
                        r[3] = _mm256_add_epi32(r[3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s1, 1)));
                    };
                    for kb in 0..bk / by {
                        for kq in 0..by / 4 {
                            let o = tile + kb * (bm * by / 4) + (2 * m32o * (by / 4) + kq) * 16;
                            let pair = (ko * bk + kb * by + kq * 4) / 2;
                            let (Some(ba), Some(bb), Some(lh), Some(hh), Some(ll), Some(hl)) = (
                                bytes.get(o..o + 16),
                                bytes.get(o + next_block..o + next_block + 16),
                                lo.get(pair),
                                hi.get(pair),
                                lo.get(pair + 1),
                                hi.get(pair + 1),
                            ) else {
                                return true;
                            };
                            // SAFETY: `ba` and `bb` are 16 readable bytes each; unaligned loads.
                            let v = unsafe { _mm256_loadu2_m128i(bb.as_ptr().cast(), ba.as_ptr().cast()) };
                            let nh = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                            let nl = _mm256_and_si256(v, mask);
                            bad = _mm256_or_si256(
                                bad,
                                _mm256_or_si256(_mm256_cmpgt_epi8(nh, eight), _mm256_cmpgt_epi8(nl, eight)),
                            );
                            // The two pairs' i16 values for the 2 × 16 rows (|each| ≤ 256).
                            let (l1, h1) = (_mm256_shuffle_epi8(table(lh), nh), _mm256_shuffle_epi8(table(hh), nh));
                            let (l2, h2) = (_mm256_shuffle_epi8(table(ll), nl), _mm256_shuffle_epi8(table(hl), nl));
                            s0 = _mm256_add_epi16(
                                s0,
                                _mm256_add_epi16(_mm256_unpacklo_epi8(l1, h1), _mm256_unpacklo_epi8(l2, h2)),
                            );
                            s1 = _mm256_add_epi16(
                                s1,
                                _mm256_add_epi16(_mm256_unpackhi_epi8(l1, h1), _mm256_unpackhi_epi8(l2, h2)),
                            );
                            steps += 1;
                            if steps == crate::arch::TL1_STEPS_PER_WIDEN {
                                widen(&mut r, s0, s1);
                                (s0, s1, steps) = (_mm256_setzero_si256(), _mm256_setzero_si256(), 0);
                            }
                        }
                    }
                    widen(&mut r, s0, s1);
                    // SAFETY: `acc32` is 32 i32 (128 bytes); unaligned loads and stores.
                    unsafe {
                        for (j, r) in r.iter().enumerate() {
                            let p = acc32.as_mut_ptr().add(8 * j).cast::<__m256i>();
                            _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), *r));
                        }
                    }
                }
            }
        }
    }
    _mm256_movemask_epi8(bad) != 0
}

/// TL2 lookup-table accumulation (bitnet.cpp's TL2 byte order, see `bitnet::tl`).
///
/// Triples: every 32 bytes are 32 rows × 2 triples of magnitude nibbles, their 8-byte
/// quarters 1 and 2 swapped so that, in each 128-bit lane, bytes 0..8 and 8..16 are
/// the rows `unpacklo`/`unpackhi` bring together: one `pshufb` per table byte and
/// one unpack give 16 consecutive rows' i16 magnitudes. The sign plane's 16 u16 words
/// are the same 16 rows, triple `t`'s sign at bit `15 − 2t` (rows 0..16) and
/// `14 − 2t` (rows 16..32): shifted to bit 15 and applied with `psignw` (ORed with 1
/// so that a zero word never zeroes the value). i16 sums span at most 64 triples
/// (|each| ≤ 384, so ≤ 24 576) before widening to i32. The pair-coded remainder runs
/// the same way through 9-entry pair tables, without signs.
///
/// `tri`/`pair` are (low bytes, high bytes) of the i16 tables of each activation
/// triple (14 entries) and pair (9 entries), entries beyond zero. Adds `Σ w·q` into
/// `acc` (one i32 per row; exact for `cols ≤ 2²⁴`). Returns whether any nibble was
/// out of range (above 13 for triples, above 8 for pairs); the caller then runs the
/// scalar code, which reports it. Anything too short also returns `true`.
///
/// Requires AVX2 (the caller's dispatch checks).
///
/// Only row tiles `t0..t1` (of `BM` rows each) run; `acc` holds their rows, row
/// `t0·BM` first, so that tiles can go to different threads.
#[target_feature(enable = "avx2,fma,f16c")]
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
    let mask = _mm256_set1_epi8(0x0f);
    let (thirteen, eight) = (_mm256_set1_epi8(13), _mm256_set1_epi8(8));
    let one = _mm256_set1_epi16(1);
    let mut bad = _mm256_setzero_si256();
    let bcast = |t: &[u8; 16]| {
        // SAFETY: 16 readable bytes; the load is unaligned.
        unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast())) }
    };
    let load32 = |b: &[u8]| {
        // SAFETY: callers pass exactly 32 bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    };
    // Adds 32 rows of i16 sums (`lo`: rows 0..16, `hi`: rows 16..32) to i32 lanes.
    let widen = |w: &mut [__m256i; 4], lo: __m256i, hi: __m256i| {
        w[0] = _mm256_add_epi32(w[0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(lo)));
        w[1] = _mm256_add_epi32(w[1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(lo, 1)));
        w[2] = _mm256_add_epi32(w[2], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(hi)));
        w[3] = _mm256_add_epi32(w[3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(hi, 1)));
    };
    let flush = |acc: &mut [i32], row0: usize, w: &[__m256i; 4]| -> bool {
        let Some(a) = acc.get_mut(row0..row0 + 32) else {
            return false;
        };
        for (i, v) in w.iter().enumerate() {
            // SAFETY: `a` is 32 i32; lanes 8i..8i+8 are inside; unaligned access.
            unsafe {
                let p = a.as_mut_ptr().add(8 * i).cast::<__m256i>();
                _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), *v));
            }
        }
        true
    };
    let (mut tb, mut sb) = (t0 * bm_tile * k3 / 6, t0 * bm_tile * k3 / 24);
    for mo in t0..t1.min(rows / bm_tile) {
        for ko in 0..k3 / bk {
            for mb in 0..bm_tile / 32 {
                let mut w = [_mm256_setzero_si256(); 4];
                let groups = bk / 24;
                let mut g = 0;
                while g < groups {
                    let end = (g + crate::arch::TL2_GROUPS_PER_WIDEN).min(groups);
                    let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    while g < end {
                        let Some(s) = sgn.get(sb..sb + 32) else {
                            return true;
                        };
                        let mut s = load32(s);
                        sb += 32;
                        for half in 0..4 {
                            let tr = (ko * bk + (g * 4 + half) * 6) / 3;
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
                            let v = load32(m);
                            let nh = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                            let nl = _mm256_and_si256(v, mask);
                            bad = _mm256_or_si256(
                                bad,
                                _mm256_or_si256(_mm256_cmpgt_epi8(nh, thirteen), _mm256_cmpgt_epi8(nl, thirteen)),
                            );
                            for (n, tl, th) in [(nh, l0, h0), (nl, l1, h1)] {
                                let (l, h) = (_mm256_shuffle_epi8(bcast(tl), n), _mm256_shuffle_epi8(bcast(th), n));
                                let (a, b) = (_mm256_unpacklo_epi8(l, h), _mm256_unpackhi_epi8(l, h));
                                let sign_lo = _mm256_or_si256(s, one);
                                let sign_hi = _mm256_or_si256(_mm256_slli_epi16(s, 1), one);
                                lo = _mm256_add_epi16(lo, _mm256_sign_epi16(a, sign_lo));
                                hi = _mm256_add_epi16(hi, _mm256_sign_epi16(b, sign_hi));
                                s = _mm256_slli_epi16(s, 2);
                            }
                        }
                        g += 1;
                    }
                    widen(&mut w, lo, hi);
                }
                if !flush(acc, (mo - t0) * bm_tile + mb * 32, &w) {
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
                let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
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
                    let v = load32(m);
                    let nh = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                    let nl = _mm256_and_si256(v, mask);
                    bad = _mm256_or_si256(
                        bad,
                        _mm256_or_si256(_mm256_cmpgt_epi8(nh, eight), _mm256_cmpgt_epi8(nl, eight)),
                    );
                    for (n, tl, th) in [(nh, l0, h0), (nl, l1, h1)] {
                        let (l, h) = (_mm256_shuffle_epi8(bcast(tl), n), _mm256_shuffle_epi8(bcast(th), n));
                        lo = _mm256_add_epi16(lo, _mm256_unpacklo_epi8(l, h));
                        hi = _mm256_add_epi16(hi, _mm256_unpackhi_epi8(l, h));
                    }
                }
                let mut w = [_mm256_setzero_si256(); 4];
                widen(&mut w, lo, hi);
                if !flush(acc, (mo - t0) * bm_tile + mb * 32, &w) {
                    return true;
                }
            }
        }
    }
    _mm256_movemask_epi8(bad) != 0
}
