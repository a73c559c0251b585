//! Lane-parallel versions of the Q4_K, Q5_K and Q6_K reference quantizers,
//! byte-identical with the scalar specification in [`super::quant_k`].
//!
//! The groups of a super-block (8 groups of 32 for Q4_K/Q5_K, 16 groups of 16 for
//! Q6_K) are independent until their scales are combined, so the super-block is
//! transposed (`xt[i][g]` is element `i` of group `g`) and the scale searches
//! (`make_qkx2_quants`, `make_qx_quants`) run on many groups at once, one group
//! per lane of a [`Lanes`] type. Each lane performs exactly the reference's
//! sequence of f32 operations for its own group: the sums stay sequential per
//! lane, `nearest_int` works on the bits, C's comparisons (false with NaN) and
//! "keep the best candidate" branches become per-lane selects, and the early
//! exits become per-lane masks applied at the end (the masked lanes compute
//! values that are never used). Q4_K and Q5_K take two super-blocks per step, so
//! that 16 independent groups hide the latency of the sums.
//!
//! One shortcut, exact by construction: the reference copies the candidate quants
//! `Laux` into `L` whenever a candidate scale wins. The candidates are a pure
//! function of the inverse scale (and, for `make_qkx2_quants`, of the min) that
//! produced them, so the lanes only remember those and compute `L` once at the end.
//!
//! The codec uses the portable [`L4`] lanes; `arch` instantiates the same code
//! with AVX2 lanes behind run-time detection. No closures on these paths: a
//! closure would not be inlined into `arch`'s `#[target_feature]` functions, and
//! its lane operations would become calls.

use super::blocks::*;
use super::lanes::{L4, Lanes};
use super::quant_k::{BlockK4, GROUP_MAX_EPS, finish_q2_k, finish_q6_k, pack_scale_min_k4, requantize_k4};
use super::util::nearest_int;
use bytemuck::cast_slice_mut;

/// Groups per step of the Q4_K / Q5_K quantizers (two super-blocks).
const G4: usize = 2 * QK_K / 32;
/// Groups per Q2_K / Q6_K super-block.
const G6: usize = QK_K / 16;

/// A super-block transposed: `t[i][g]` is element `i` of group `g`.
#[inline(always)]
fn transpose<const GS: usize, const NG: usize>(x: &[f32]) -> [[f32; NG]; GS] {
    let x = &x[..GS * NG];
    let mut t = [[0f32; NG]; GS];
    for g in 0..NG {
        for i in 0..GS {
            t[i][g] = x[GS * g + i];
        }
    }
    t
}

/// Lanes `c0..c0 + V::N` of every row of `t`.
#[inline(always)]
fn load_rows<V: Lanes, const GS: usize, const NG: usize>(t: &[[f32; NG]; GS], c0: usize) -> [V; GS] {
    let mut v = [V::splat(0.0); GS];
    for i in 0..GS {
        v[i] = V::load(&t[i][c0..]);
    }
    v
}

/// The error measure of `make_qkx2_quants`: `|d|` or `d²`.
#[inline(always)]
fn err<V: Lanes>(d: V, use_mad: bool) -> V {
    if use_mad { d.abs() } else { d * d }
}

/// The parameters of a `make_qkx2_quants` call.
#[derive(Clone, Copy)]
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// `make_qkx2_quants` on groups `c0..c0 + V::N` of a transposed super-block (`x`,
/// `w`: element `i` of group `g` at `[i][g]`), one group per lane. Writes the
/// groups' scales, their negated mins (as the scalar version returns them) and
/// their quants `l[i][g]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn make_qkx2_lanes<V: Lanes, const GS: usize, const NG: usize>(
    p: Qkx2,
    x: &[[f32; NG]; GS],
    w: &[[f32; NG]; GS],
    c0: usize,
    scales: &mut [f32; NG],
    neg_mins: &mut [f32; NG],
    l_out: &mut [[u8; NG]; GS],
) {
    let xv: [V; GS] = load_rows(x, c0);
    let wv: [V; GS] = load_rows(w, c0);
    let zero = V::splat(0.0);
    let nmax_f = p.nmax as f32;

    let mut min = xv[0];
    let mut max = xv[0];
    let mut sum_w = wv[0];
    let mut sum_x = sum_w * xv[0];
    for i in 1..GS {
        min = V::select(xv[i].lt(min), xv[i], min);
        max = V::select(xv[i].gt(max), xv[i], max);
        sum_w = sum_w + wv[i];
        sum_x = sum_x + wv[i] * xv[i];
    }
    min = V::select(min.gt(zero), zero, min);
    let flat = max.eq(min);
    let min0 = min;
    let mut iscale = V::splat(nmax_f) / (max - min);
    let mut scale = V::splat(1.0) / iscale;
    let mut best_error = zero;
    for i in 0..GS {
        let l = (iscale * (xv[i] - min)).round_clamp(0, p.nmax);
        best_error = best_error + wv[i] * err(scale * l + min - xv[i], p.use_mad);
    }
    // `L` is always the quantization by `l_iscale` around `l_min`.
    let (mut l_iscale, mut l_min) = (iscale, min);
    if p.nstep >= 1 {
        let mut laux = [zero; GS];
        for is in 0..=p.nstep {
            iscale = V::splat(p.rmin + p.rdelta * is as f32 + nmax_f) / (max - min);
            let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
            for i in 0..GS {
                let l = (iscale * (xv[i] - min)).round_clamp(0, p.nmax);
                laux[i] = l;
                let wl = wv[i] * l;
                sum_l = sum_l + wl;
                sum_l2 = sum_l2 + wl * l;
                sum_xl = sum_xl + wl * xv[i];
            }
            let d = sum_w * sum_l2 - sum_l * sum_l;
            let this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            let clamped = this_min.gt(zero);
            let this_min = V::select(clamped, zero, this_min);
            let this_scale = V::select(clamped, sum_xl / sum_l2, this_scale);
            let mut cur_error = zero;
            for i in 0..GS {
                cur_error = cur_error + wv[i] * err(this_scale * laux[i] + this_min - xv[i], p.use_mad);
            }
            let take = V::and(d.gt(zero), cur_error.lt(best_error));
            best_error = V::select(take, cur_error, best_error);
            scale = V::select(take, this_scale, scale);
            l_iscale = V::select(take, iscale, l_iscale);
            l_min = V::select(take, min, l_min);
            min = V::select(take, this_min, min);
        }
    }
    let mut buf = [0f32; 16];
    for i in 0..GS {
        let l = (l_iscale * (xv[i] - l_min)).round_clamp(0, p.nmax);
        V::select(flat, zero, l).store(&mut buf);
        for k in 0..V::N {
            l_out[i][c0 + k] = buf[k] as u8;
        }
    }
    V::select(flat, zero, scale).store(&mut buf);
    scales[c0..c0 + V::N].copy_from_slice(&buf[..V::N]);
    V::select(flat, min0, min).store(&mut buf);
    for k in 0..V::N {
        neg_mins[c0 + k] = -buf[k];
    }
}

/// `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref`, two super-blocks at a time
/// (their 16 groups side by side; an odd last one is paired with zeros).
#[inline(always)]
fn quantize_k4_lanes<V: Lanes, B: BlockK4>(x: &[f32], y: &mut [u8], p: Qkx2) {
    let blocks = cast_slice_mut::<u8, B>(y);
    for (x2, b2) in x.chunks(2 * QK_K).zip(blocks.chunks_mut(2)) {
        let mut xx = [0f32; 2 * QK_K];
        xx[..x2.len()].copy_from_slice(x2);
        let xt: [[f32; G4]; 32] = transpose(&xx);
        let mut wt = [[0f32; G4]; 32];
        let mut scales = [0f32; G4];
        let mut mins = [0f32; G4];
        let mut lt = [[0u8; G4]; 32];
        for c0 in (0..G4).step_by(V::N) {
            let xv: [V; 32] = load_rows(&xt, c0);
            let mut sum_x2 = V::splat(0.0);
            for i in 0..32 {
                sum_x2 = sum_x2 + xv[i] * xv[i];
            }
            let av_x = (sum_x2 / V::splat(32.0)).sqrt();
            for i in 0..32 {
                (av_x + xv[i].abs()).store(&mut wt[i][c0..]);
            }
            make_qkx2_lanes::<V, 32, G4>(p, &xt, &wt, c0, &mut scales, &mut mins, &mut lt);
        }
        for (s, b) in b2.iter_mut().enumerate() {
            let x: &[f32; QK_K] = xx[QK_K * s..QK_K * s + QK_K].try_into().expect("QK_K");
            let (scales, mins) = (&scales[8 * s..8 * s + 8], &mins[8 * s..8 * s + 8]);
            let mut l = [0u8; QK_K];
            for j in 0..8 {
                for i in 0..32 {
                    l[32 * j + i] = lt[i][8 * s + j];
                }
            }
            let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
            for j in 0..8 {
                if scales[j] > max_scale {
                    max_scale = scales[j];
                }
                if mins[j] > max_min {
                    max_min = mins[j];
                }
            }
            let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
            let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
            let (d, dmin, packed) = b.parts();
            for j in 0..8 {
                let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
                let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
                pack_scale_min_k4(packed, j, ls, lm);
            }
            *d = f16_le_bytes(max_scale / 63.0);
            *dmin = f16_le_bytes(max_min / 63.0);
            requantize_k4(x, packed, *d, *dmin, p.nmax, &mut l);
            b.pack(&l);
        }
    }
}

/// `quantize_row_q4_K_ref` on lanes `V` (inlined into each caller, so that `arch`
/// can instantiate it with its own lanes inside a `#[target_feature]` function).
#[inline(always)]
pub(crate) fn quantize_q4_k_with<V: Lanes>(x: &[f32], y: &mut [u8]) {
    let p = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    quantize_k4_lanes::<V, BlockQ4K>(x, y, p);
}

/// `quantize_row_q5_K_ref` on lanes `V` (inlined into each caller).
#[inline(always)]
pub(crate) fn quantize_q5_k_with<V: Lanes>(x: &[f32], y: &mut [u8]) {
    let p = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    quantize_k4_lanes::<V, BlockQ5K>(x, y, p);
}

/// `quantize_row_q2_K_ref` on lanes `V` (inlined into each caller).
#[inline(always)]
pub(crate) fn quantize_q2_k_with<V: Lanes>(x: &[f32], y: &mut [u8]) {
    let p = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ2K>(y)) {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact");
        let xt: [[f32; G6]; 16] = transpose(x);
        let mut wt = [[0f32; G6]; 16];
        for i in 0..16 {
            for g in 0..G6 {
                wt[i][g] = xt[i][g].abs();
            }
        }
        let mut scales = [0f32; G6];
        let mut mins = [0f32; G6];
        let mut lt = [[0u8; G6]; 16];
        for c0 in (0..G6).step_by(V::N) {
            make_qkx2_lanes::<V, 16, G6>(p, &xt, &wt, c0, &mut scales, &mut mins, &mut lt);
        }
        let mut l = [0u8; QK_K];
        for g in 0..G6 {
            for i in 0..16 {
                l[16 * g + i] = lt[i][g];
            }
        }
        finish_q2_k(x, b, &scales, &mins, &mut l);
    }
}

/// `make_qx_quants(32, 16, x, L, 1, NULL)` on groups `c0..c0 + V::N` of a
/// transposed Q6_K super-block, one group per lane: writes the scales and the
/// quants `l[i][g]` (in `0..64`).
#[inline(always)]
fn make_qx_q6_lanes<V: Lanes>(x: &[[f32; G6]; 16], c0: usize, scales: &mut [f32; G6], l_out: &mut [[i8; G6]; 16]) {
    const NMAX: i32 = 32;
    let xv: [V; 16] = load_rows(x, c0);
    let zero = V::splat(0.0);
    let (mut max, mut amax) = (zero, zero);
    for i in 0..16 {
        let ax = xv[i].abs();
        let c = ax.gt(amax);
        amax = V::select(c, ax, amax);
        max = V::select(c, xv[i], max);
    }
    // rmse_type 1: w = x², and the reference's `w * x * l` is `(w · x) · l`.
    let mut w = [zero; 16];
    let mut wx = [zero; 16];
    for i in 0..16 {
        w[i] = xv[i] * xv[i];
        wx[i] = w[i] * xv[i];
    }
    let mut iscale = V::splat((-NMAX) as f32) / max;
    let (sumlx, suml2) = qx_sums(iscale, &xv, &w, &wx, NMAX);
    let mut l_iscale = iscale;
    let mut scale = V::select(suml2.ne(zero), sumlx / suml2, zero);
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = V::splat(-(NMAX as f32 + 0.1 * is as f32)) / max;
        let (sumlx, suml2) = qx_sums(iscale, &xv, &w, &wx, NMAX);
        let take = V::and(suml2.gt(zero), (sumlx * sumlx).gt(best * suml2));
        let s = sumlx / suml2;
        l_iscale = V::select(take, iscale, l_iscale);
        scale = V::select(take, s, scale);
        best = V::select(take, s * sumlx, best);
    }
    let is_zero = amax.lt(V::splat(GROUP_MAX_EPS));
    let mut buf = [0f32; 16];
    for i in 0..16 {
        let l = (l_iscale * xv[i]).round_clamp(-NMAX, NMAX - 1);
        V::select(is_zero, V::splat(-NMAX as f32), l).store(&mut buf);
        for k in 0..V::N {
            l_out[i][c0 + k] = (buf[k] as i32 + NMAX) as i8;
        }
    }
    V::select(is_zero, zero, scale).store(&mut buf);
    scales[c0..c0 + V::N].copy_from_slice(&buf[..V::N]);
}

/// The sums `Σ w·x·l` and `Σ w·l²` of `make_qx_quants` for one inverse scale.
#[inline(always)]
fn qx_sums<V: Lanes, const GS: usize>(iscale: V, xv: &[V; GS], w: &[V; GS], wx: &[V; GS], nmax: i32) -> (V, V) {
    let zero = V::splat(0.0);
    let (mut sumlx, mut suml2) = (zero, zero);
    for i in 0..GS {
        let l = (iscale * xv[i]).round_clamp(-nmax, nmax - 1);
        sumlx = sumlx + wx[i] * l;
        suml2 = suml2 + w[i] * l * l;
    }
    (sumlx, suml2)
}

/// `quantize_row_q6_K_ref` on lanes `V` (inlined into each caller).
#[inline(always)]
pub(crate) fn quantize_q6_k_with<V: Lanes>(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ6K>(y)) {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact");
        let xt: [[f32; G6]; 16] = transpose(x);
        let mut scales = [0f32; G6];
        let mut lt = [[0i8; G6]; 16];
        for c0 in (0..G6).step_by(V::N) {
            make_qx_q6_lanes::<V>(&xt, c0, &mut scales, &mut lt);
        }
        let mut l = [0i8; QK_K];
        for g in 0..G6 {
            for i in 0..16 {
                l[16 * g + i] = lt[i][g];
            }
        }
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..G6 {
            let abs_scale = scales[ib].abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scales[ib];
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = bytemuck::Zeroable::zeroed();
            b.d = f16_le_bytes(0.0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f16_le_bytes(1.0 / iscale);
        for ib in 0..G6 {
            b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
        }
        finish_q6_k(x, b, &mut l);
    }
}

/// `quantize_row_q2_K_ref` on portable lanes (the codec's entry).
pub(crate) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    quantize_q2_k_with::<L4>(x, y);
}

/// `quantize_row_q4_K_ref` on portable lanes (the codec's entry).
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    quantize_q4_k_with::<L4>(x, y);
}

/// `quantize_row_q5_K_ref` on portable lanes (the codec's entry).
pub(crate) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    quantize_q5_k_with::<L4>(x, y);
}

/// `quantize_row_q6_K_ref` on portable lanes (the codec's entry).
pub(crate) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    quantize_q6_k_with::<L4>(x, y);
}

#[cfg(test)]
mod tests {
    //! The lane versions against the scalar specification, on super-blocks whose
    //! groups are drawn from ordinary, constant, zero, tiny, huge and non-finite
    //! patterns (every group of a super-block independently).
    use super::*;
    use crate::ggml::quant_k;
    use proptest::prelude::*;

    type QuantFn = fn(&[f32], &mut [u8]);

    const PAIRS: [(&str, QuantFn, QuantFn, usize); 4] = [
        ("q2_k", quantize_q2_k, quant_k::quantize_q2_k, 84),
        ("q4_k", quantize_q4_k, quant_k::quantize_q4_k, 144),
        ("q5_k", quantize_q5_k, quant_k::quantize_q5_k, 176),
        ("q6_k", quantize_q6_k, quant_k::quantize_q6_k, 210),
    ];

    fn check(x: &[f32]) -> Result<(), TestCaseError> {
        for (name, fast, spec, block_bytes) in PAIRS {
            let n = x.len() / QK_K * block_bytes;
            let (mut a, mut b) = (vec![0xa5u8; n], vec![0x5au8; n]);
            fast(x, &mut a);
            spec(x, &mut b);
            prop_assert_eq!(a, b, "{}", name);
        }
        Ok(())
    }

    /// One element of a group of pattern `kind`, from the random `r` and `v`.
    fn element(kind: u8, base: f32, r: u32, v: f32) -> f32 {
        match kind {
            0 => v,
            1 => base,
            2 => 0.0,
            3 => v * 1e-20,
            4 => v * 1e-37,
            5 => v * 3e37,
            6 => (r % 7) as f32 - 3.0,
            7 => [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
                f32::MAX,
                f32::MIN,
                1e-45,
                v,
            ][r as usize % 8],
            8 => v.abs() + 1.0,
            9 => -v.abs() - 0.5,
            10 => {
                if r.is_multiple_of(13) {
                    [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][r as usize % 3]
                } else {
                    v
                }
            }
            _ => base + v * 1e-6,
        }
    }

    fn superblocks(kinds: &[u8], vals: &[(u32, f32)], group: usize) -> Vec<f32> {
        (0..vals.len())
            .map(|i| {
                let kind = kinds[i / group % kinds.len()];
                let (r0, v0) = vals[i / group * group];
                let base = v0 * if r0 % 2 == 0 { 1.0 } else { 1e3 };
                element(kind, base, vals[i].0, vals[i].1)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn lanes_match_scalar_spec(
            kinds in prop::collection::vec(prop_oneof![6 => Just(0u8), 1 => 1u8..12], 16),
            vals in prop::collection::vec((any::<u32>(), -10.0f32..10.0), 3 * QK_K),
            group in prop_oneof![Just(16usize), Just(32usize)],
        ) {
            check(&superblocks(&kinds, &vals, group))?;
        }

        #[test]
        fn lanes_match_scalar_spec_on_any_bits(vals in prop::collection::vec(any::<u32>(), QK_K)) {
            // Arbitrary bit patterns, but NaNs canonical: which of two NaN operands
            // an `addss`/`mulss` propagates is beyond both C and Rust.
            let x: Vec<f32> = vals.iter().map(|&b| { let f = f32::from_bits(b); if f.is_nan() { f32::NAN } else { f } }).collect();
            check(&x)?;
        }
    }

    #[test]
    fn lanes_match_scalar_spec_on_weight_like_rows() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let x: Vec<f32> = (0..64 * QK_K)
            .map(|_| {
                let mut acc = 0.0f32;
                for _ in 0..4 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                }
                acc * 0.035
            })
            .collect();
        check(&x).unwrap();
    }
}
