//! The weight quantizers of the K-quants (Q2_K … Q6_K) and of IQ4_NL / IQ4_XS,
//! without an importance matrix (ggml's `quantize_row_*_ref`, or `quantize_iq4_*`
//! with no weights) and with one (`quantize_row_*_impl`, also for the legacy
//! Q4_0 … Q5_1), byte-exact with `ggml_quantize_chunk`.
//!
//! Everything mirrors ggml's `ggml-quants.c` line for line: the same loops, the
//! same f32 arithmetic in the same order (no fused multiply-add), C's integer
//! truncations where C stores an `int` into a byte. The scale searches
//! (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `make_qkx3_quants`,
//! `make_qp_quants`) and the IQ4 grid search (`best_index_int8`) are shared here.
//! Two of them follow the ggml that the oracle (libgguf) vendors rather than
//! today's upstream, which rewrote them: see [`make_qkx3_quants`] and
//! [`best_index_int8`].
//!
//! Non-finite inputs: ggml feeds NaN and ±Inf straight into `nearest_int`, whose
//! result is then fixed by the bit pattern of `x + 1.5·2^23` (0 for NaN, −2^22 for
//! ±Inf on x86-64); [`nearest_int`] reproduces exactly that, and every comparison
//! below keeps C's NaN behaviour (a comparison with NaN is false), so rows holding
//! NaN or ±Inf come out as ggml writes them. One thing is beyond reach: when a
//! stored scale is itself NaN (possible only with NaN or ±Inf in the importance
//! matrix, e.g. `Inf·0` in `make_qx_quants`' sums), the *sign* of that NaN depends
//! on which operand of an `addss`/`mulss` the compiler put first, which neither C
//! nor Rust (nor IEEE 754) specifies. Such a block dequantizes to NaN either way;
//! the f16 bits may read 0x7E00 where ggml wrote 0xFE00 or the reverse (seen in
//! debug builds for Q4_0/Q5_0 with NaN weights; optimized builds matched).

use super::blocks::*;
use super::iq4::KVALUES_IQ4NL;
use super::kquants::scale_min_k4;
use super::util::{c_max, nearest_int};
use bytemuck::cast_slice_mut;

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below it are all zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

// ===================== the scale searches

/// `make_qx_quants`: a symmetric scale for `nmax` levels on each side, refined by
/// a search of 18 nearby scales; `l[i]` gets `q + nmax` in `0..2·nmax`. With
/// `qw == None` the weights come from `rmse_type` (1: x², 2: 1, 3: |x|, else √|x|).
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], rmse_type: i32, qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for i in 0..n {
        let ax = x[i].abs();
        if ax > amax {
            amax = ax;
            max = x[i];
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = (-nmax) as f32 / max;
    if rmse_type == 0 {
        for i in 0..n {
            let l = nearest_int(iscale * x[i]);
            l_out[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = if rmse_type < 0 {
        (-rmse_type, true)
    } else {
        (rmse_type, false)
    };
    let weight = |i: usize| -> f32 {
        match qw {
            Some(qw) => qw[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => x[i].abs().sqrt(),
            },
        }
    };
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        l_out[i] = (l + nmax) as i8;
        let w = weight(i);
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            let w = weight(i);
            let lf = l as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]);
                l_out[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants`: Q3_K's symmetric scale; with `do_rmse`, up to 5 rounds of
/// moving single quants while the weighted (x²) fit improves.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8], do_rmse: bool) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for i in 0..n {
        let ax = x[i].abs();
        if ax > amax {
            amax = ax;
            max = x[i];
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    if do_rmse {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            l_out[i] = l as i8;
            let w = x[i] * x[i];
            let lf = l as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        for _ in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l_out[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).min(nmax - 1).max(-nmax);
                    if new_l != l_out[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l_out[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for i in 0..n {
            l_out[i] = l_out[i].wrapping_add(nmax as i8);
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        l_out[i] = (l + nmax) as i8;
    }
    1.0 / iscale
}

/// `make_qkx2_quants`: an asymmetric fit `x ≈ scale·l + min` (`l` in `0..=nmax`)
/// searched over `nstep + 1` candidate scales; returns `(scale, −min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.min(nmax).max(0) as u8;
        let diff = err(scale * l_out[i] as f32 + min - x[i]);
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).min(nmax).max(0);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = err(this_scale * laux[i] as f32 + this_min - x[i]);
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qkx3_quants`: [`make_qkx2_quants`] with `max <= min` as the degenerate
/// case; returns `(scale, −min)`. This is the version libgguf vendors, which
/// clamps after `nearest_int`; upstream ggml now writes
/// `v > 0 ? nearest_int(MIN(v, nmax)) : 0`, which agrees while `|v| ≤ 2^22` and
/// differs only where `nearest_int` would wrap (huge, infinite or NaN `v`).
#[allow(clippy::too_many_arguments)]
fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.min(nmax).max(0) as u8;
        let diff = err(scale * l_out[i] as f32 + min - x[i]);
        best_mad += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).min(nmax).max(0);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for i in 0..n {
                let diff = err(this_scale * laux[i] as f32 + this_min - x[i]);
                mad += weights[i] * diff;
            }
            if mad < best_mad {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qp_quants`: a positive scale for non-negative `x` (the sub-block scales
/// and mins of the weighted K-quants), `l` in `0..=nmax`, weighted by `quant_weights`.
fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], quant_weights: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for i in 0..n {
        max = c_max(max, x[i]);
    }
    if max < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l_out[i] as f32;
        best_mse += quant_weights[i] * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += quant_weights[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let w = quant_weights[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = quant_weights[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l_out[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// `best_index_int8`: the index of the grid value nearest to `x`, by bisection
/// of the sorted 16-value grid, then `x − lo < hi − x` in f32 (ties and NaN go up).
/// This is the version libgguf vendors; upstream ggml now compares `2x` with
/// `lo + hi`, which can pick the other neighbour when `x` is within rounding of
/// the midpoint.
#[inline(always)]
fn best_index_int8(val: &[i8; 16], x: f32) -> u8 {
    if x <= val[0] as f32 {
        return 0;
    }
    if x >= val[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < val[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (val[mu - 1] as f32) < val[mu] as f32 - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

// ===================== shared packing

/// Packs Q4_K / Q5_K 6-bit scale `ls` and min `lm` of sub-block `j` (j ascending).
#[inline(always)]
pub(super) fn pack_scale_min_k4(scales: &mut [u8; 12], j: usize, ls: u8, lm: u8) {
    if j < 4 {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
        scales[j - 4] |= (ls >> 4) << 6;
        scales[j] |= (lm >> 4) << 6;
    }
}

/// Q4_K / Q5_K: requantizes every sub-block against the stored (f16) scales.
#[inline(always)]
pub(super) fn requantize_k4(
    x: &[f32; QK_K],
    scales: &[u8; 12],
    d: [u8; 2],
    dmin: [u8; 2],
    nmax: i32,
    l_out: &mut [u8; QK_K],
) {
    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min_k4(j, scales);
        let d = f16_le(d) * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = f16_le(dmin) * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d);
            l_out[32 * j + ii] = l.min(nmax).max(0) as u8;
        }
    }
}

fn pack_q4_k(l: &[u8; QK_K], qs: &mut [u8; 128]) {
    for (n, j) in (0..QK_K).step_by(64).enumerate() {
        for k in 0..32 {
            qs[32 * n + k] = l[j + k] | (l[j + k + 32] << 4);
        }
    }
}

fn pack_q5_k(l: &[u8; QK_K], qh: &mut [u8; 32], ql: &mut [u8; 128]) {
    qh.fill(0);
    let (mut m1, mut m2) = (1u8, 2u8);
    for (n, base) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = l[base + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[base + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[32 * n + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

/// Q2_K / Q3_K: four 2-bit quants per byte, 32 bytes per 128 elements.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; 64]) {
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] = l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

/// Q2_K: requantizes every group of 16 against the stored scales and mins.
#[inline(always)]
fn requantize_q2_k(x: &[f32; QK_K], scales: &[u8; 16], dm: f32, mm: f32, l_out: &mut [u8; QK_K]) {
    for j in 0..QK_K / 16 {
        let d = dm * (scales[j] & 0x0f) as f32;
        if d == 0.0 {
            continue;
        }
        let m = mm * (scales[j] >> 4) as f32;
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + m) / d);
            l_out[16 * j + ii] = l.clamp(0, 3) as u8;
        }
    }
}

/// Q3_K: packs the 16 signed scales (already + 32, in `0..64`) into 12 bytes.
fn pack_q3_k_scales(ls: &[i8; 16], out: &mut [u8; 12]) {
    out.fill(0);
    for j in 0..16 {
        let l = ls[j] as i32;
        if j < 8 {
            out[j] = (l & 0x0f) as u8;
        } else {
            out[j - 8] |= ((l & 0x0f) << 4) as u8;
        }
        let h = l >> 4;
        out[j % 4 + 8] |= (h << (2 * (j / 4))) as u8;
    }
}

/// Q3_K: requantizes against the stored scales, sets the high-bit mask and packs.
fn finish_q3_k(x: &[f32], b: &mut BlockQ3K, l: &mut [i8; QK_K]) {
    let d_all = f16_le(b.d);
    for j in 0..QK_K / 16 {
        let low = if j < 8 {
            b.scales[j] & 0x0f
        } else {
            b.scales[j - 8] >> 4
        };
        let sc = (low | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    b.hmask.fill(0);
    let mut m = 0usize;
    let mut hm = 1u8;
    for j in 0..QK_K {
        if l[j] > 3 {
            b.hmask[m] |= hm;
            l[j] -= 4;
        }
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm = hm.wrapping_shl(1);
        }
    }
    let mut lu = [0u8; QK_K];
    for j in 0..QK_K {
        lu[j] = l[j] as u8;
    }
    pack_2bit(&lu, &mut b.qs);
}

/// Q6_K: requantizes against the stored scales and packs (after the scales are set).
#[inline(always)]
pub(super) fn finish_q6_k(x: &[f32; QK_K], b: &mut BlockQ6K, l: &mut [i8; QK_K]) {
    let d_all = f16_le(b.d);
    for j in 0..QK_K / 16 {
        let d = d_all * (b.scales[j] as i8) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    for (n, j) in (0..QK_K).step_by(128).enumerate() {
        let ql = &mut b.ql[64 * n..64 * n + 64];
        for k in 0..32 {
            let q1 = l[j + k] as u8 & 0x0f;
            let q2 = l[j + k + 32] as u8 & 0x0f;
            let q3 = l[j + k + 64] as u8 & 0x0f;
            let q4 = l[j + k + 96] as u8 & 0x0f;
            ql[k] = q1 | (q3 << 4);
            ql[k + 32] = q2 | (q4 << 4);
        }
        let qh = &mut b.qh[32 * n..32 * n + 32];
        for k in 0..32 {
            qh[k] = (l[j + k] as u8 >> 4)
                | ((l[j + k + 32] as u8 >> 4) << 2)
                | ((l[j + k + 64] as u8 >> 4) << 4)
                | ((l[j + k + 96] as u8 >> 4) << 6);
        }
    }
}

// ===================== without an importance matrix (`quantize_row_*_ref`)

/// `quantize_row_q2_K_ref`.
// The specification of `quant_k_lanes`' version, which the codec uses.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn quantize_q2_k(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ2K>(y)) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0f32; 16];
        let mut mins = [0f32; QK_K / 16];
        let mut scales = [0f32; QK_K / 16];
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            for k in 0..16 {
                weights[k] = xs[k].abs();
            }
            let (scale, min) = make_qkx2_quants(
                3,
                xs,
                &weights,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = scale;
            mins[j] = min;
        }
        finish_q2_k(x.try_into().expect("QK_K"), b, &scales, &mins, &mut l);
    }
}

/// Q2_K after the group searches: the 4-bit scales and mins, the requantization
/// and the packing (`l` holds the groups' quants, kept where a scale is 0).
#[inline(always)]
pub(super) fn finish_q2_k(x: &[f32; QK_K], b: &mut BlockQ2K, scales: &[f32; 16], mins: &[f32; 16], l: &mut [u8; QK_K]) {
    const Q4SCALE: f32 = 15.0;
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 16 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..QK_K / 16 {
            b.scales[j] = nearest_int(iscale * scales[j]) as u8;
        }
        b.d = f16_le_bytes(max_scale / Q4SCALE);
    } else {
        b.scales.fill(0);
        b.d = f16_le_bytes(0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..QK_K / 16 {
            let q = nearest_int(iscale * mins[j]);
            b.scales[j] |= q.wrapping_shl(4) as u8;
        }
        b.dmin = f16_le_bytes(max_min / Q4SCALE);
    } else {
        b.dmin = f16_le_bytes(0.0);
    }
    let scales_q = b.scales;
    requantize_q2_k(x, &scales_q, f16_le(b.d), f16_le(b.dmin), l);
    pack_2bit(l, &mut b.qs);
}

/// `quantize_row_q3_K_ref`.
pub(crate) fn quantize_q3_k(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ3K>(y)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16], true);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        b.scales.fill(0);
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let mut ls = [0i8; 16];
            for j in 0..QK_K / 16 {
                // C: `int8_t l = nearest_int(…)` truncates before clamping.
                let q = nearest_int(iscale * scales[j]) as i8;
                ls[j] = q.clamp(-32, 31) + 32;
            }
            pack_q3_k_scales(&ls, &mut b.scales);
            b.d = f16_le_bytes(1.0 / iscale);
        } else {
            b.d = f16_le_bytes(0.0);
        }
        finish_q3_k(x, b, &mut l);
    }
}

/// `quantize_row_q4_K_ref`.
// The specification of `quant_k_lanes`' version, which the codec uses.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn quantize_q4_k(x: &[f32], y: &mut [u8]) {
    quantize_k4_ref::<BlockQ4K>(x, y, 15, -1.0, 0.1, 20);
}

/// `quantize_row_q5_K_ref`.
// The specification of `quant_k_lanes`' version, which the codec uses.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn quantize_q5_k(x: &[f32], y: &mut [u8]) {
    quantize_k4_ref::<BlockQ5K>(x, y, 31, -0.5, 0.1, 15);
}

/// The Q4_K / Q5_K blocks seen through their common fields.
pub(super) trait BlockK4: bytemuck::Pod {
    fn parts(&mut self) -> (&mut [u8; 2], &mut [u8; 2], &mut [u8; 12]);
    fn pack(&mut self, l: &[u8; QK_K]);
}

impl BlockK4 for BlockQ4K {
    fn parts(&mut self) -> (&mut [u8; 2], &mut [u8; 2], &mut [u8; 12]) {
        (&mut self.d, &mut self.dmin, &mut self.scales)
    }
    fn pack(&mut self, l: &[u8; QK_K]) {
        pack_q4_k(l, &mut self.qs);
    }
}

impl BlockK4 for BlockQ5K {
    fn parts(&mut self) -> (&mut [u8; 2], &mut [u8; 2], &mut [u8; 12]) {
        (&mut self.d, &mut self.dmin, &mut self.scales)
    }
    fn pack(&mut self, l: &[u8; QK_K]) {
        pack_q5_k(l, &mut self.qh, &mut self.qs);
    }
}

// The specification of `quant_k_lanes`' version, which the codec uses.
#[cfg_attr(not(test), allow(dead_code))]
fn quantize_k4_ref<B: BlockK4>(x: &[f32], y: &mut [u8], nmax: i32, rmin: f32, rdelta: f32, nstep: i32) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, B>(y)) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 32];
        let mut weights = [0f32; 32];
        let mut mins = [0f32; QK_K / 32];
        let mut scales = [0f32; QK_K / 32];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 32 {
            let xs = &x[32 * j..32 * j + 32];
            let mut sum_x2 = 0.0f32;
            for k in 0..32 {
                sum_x2 += xs[k] * xs[k];
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            for k in 0..32 {
                weights[k] = av_x + xs[k].abs();
            }
            let (scale, min) = make_qkx2_quants(
                nmax,
                xs,
                &weights,
                &mut l[32 * j..32 * j + 32],
                &mut laux,
                rmin,
                rdelta,
                nstep,
                false,
            );
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let (d, dmin, packed) = b.parts();
        for j in 0..QK_K / 32 {
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            pack_scale_min_k4(packed, j, ls, lm);
        }
        *d = f16_le_bytes(max_scale / 63.0);
        *dmin = f16_le_bytes(max_min / 63.0);
        requantize_k4(x.try_into().expect("QK_K"), packed, *d, *dmin, nmax, &mut l);
        b.pack(&l);
    }
}

/// `quantize_row_q6_K_ref`.
// The specification of `quant_k_lanes`' version, which the codec uses.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn quantize_q6_k(x: &[f32], y: &mut [u8]) {
    quantize_q6_k_impl(x, y, None);
}

fn quantize_q6_k_impl(x: &[f32], y: &mut [u8], quant_weights: Option<&[f32]>) {
    for (i, (x, b)) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockQ6K>(y)).enumerate() {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..QK_K / 16 {
            let qw = quant_weights.map(|w| &w[QK_K * i + 16 * ib..QK_K * i + 16 * ib + 16]);
            let scale = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16], 1, qw);
            scales[ib] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = bytemuck::Zeroable::zeroed();
            b.d = f16_le_bytes(0.0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f16_le_bytes(1.0 / iscale);
        for ib in 0..QK_K / 16 {
            b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
        }
        finish_q6_k(x.try_into().expect("QK_K"), b, &mut l);
    }
}

// ===================== IQ4_NL / IQ4_XS (`quantize_row_iq4_nl_impl`)

/// One IQ4 super-block of `x.len()` (32 for IQ4_NL, 256 for IQ4_XS) in blocks of
/// 32: writes the f16 scale, the nibbles and (IQ4_XS) the 6-bit block scales.
fn quantize_iq4_impl(
    x: &[f32],
    d_out: &mut [u8; 2],
    q4: &mut [u8],
    xs_scales: Option<(&mut [u8; 2], &mut [u8; 4])>,
    quant_weights: Option<&[f32]>,
    ntry: i32,
) {
    const BLOCK: usize = 32;
    let values = &KVALUES_IQ4NL;
    let super_block_size = x.len();
    let nblocks = super_block_size / BLOCK;
    let mut l = [0u8; QK_K];
    let mut weight = [0f32; BLOCK];
    let mut scales = [0f32; QK_K / BLOCK];

    let mut sigma2 = 0.0f32;
    for j in 0..super_block_size {
        sigma2 += x[j] * x[j];
    }
    sigma2 *= 2.0 / super_block_size as f32;

    q4.fill(0);
    *d_out = f16_le_bytes(0.0);

    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for ib in 0..nblocks {
        let xb = &x[ib * BLOCK..ib * BLOCK + BLOCK];
        let lb = &mut l[ib * BLOCK..ib * BLOCK + BLOCK];
        match quant_weights {
            Some(qw) => {
                let qw = &qw[ib * BLOCK..ib * BLOCK + BLOCK];
                for j in 0..BLOCK {
                    weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
                }
            }
            None => {
                for j in 0..BLOCK {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for j in 0..BLOCK {
            let ax = xb[j].abs();
            if ax > amax {
                amax = ax;
                max = xb[j];
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let v0 = values[0] as f32;
        let mut d = if ntry > 0 { -max / v0 } else { max / v0 };
        let mut id = 1.0 / d;
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for j in 0..BLOCK {
            let al = id * xb[j];
            let k = best_index_int8(values, al);
            lb[j] = k;
            let q = values[k as usize] as f32;
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -ntry..=ntry {
            id = (itry + values[0] as i32) as f32 / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..BLOCK {
                let al = id * xb[j];
                let k = best_index_int8(values, al);
                let q = values[k as usize] as f32;
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    match xs_scales {
        Some((scales_h, scales_l)) if nblocks > 1 => {
            let mut sh = 0u16;
            let d = -max_scale / 32.0;
            *d_out = f16_le_bytes(d);
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            for ib in 0..nblocks {
                let ls = nearest_int(id * scales[ib]).clamp(-32, 31);
                let dl = d * ls as f32;
                let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
                let xb = &x[ib * BLOCK..ib * BLOCK + BLOCK];
                for j in 0..BLOCK {
                    l[ib * BLOCK + j] = best_index_int8(values, idl * xb[j]);
                }
                let ls = (ls + 32) as u8;
                let (l_l, l_h) = (ls & 0x0f, ls >> 4);
                if ib % 2 == 0 {
                    scales_l[ib / 2] = l_l;
                } else {
                    scales_l[ib / 2] |= l_l << 4;
                }
                sh |= (l_h as u16) << (2 * (ib % 8));
            }
            *scales_h = sh.to_le_bytes();
        }
        _ => {
            *d_out = f16_le_bytes(scales[0]);
            if ntry > 0 {
                let id = if scales[0] != 0.0 { 1.0 / scales[0] } else { 0.0 };
                for j in 0..super_block_size {
                    l[j] = best_index_int8(values, id * x[j]);
                }
            }
        }
    }

    for i in 0..super_block_size / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

/// `quantize_iq4_nl` without weights (what `ggml_quantize_chunk` runs).
pub(crate) fn quantize_iq4_nl(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK32).zip(cast_slice_mut::<u8, BlockIQ4NL>(y)) {
        quantize_iq4_impl(x, &mut b.d, &mut b.qs, None, None, 7);
    }
}

/// `quantize_iq4_xs` without weights.
pub(crate) fn quantize_iq4_xs(x: &[f32], y: &mut [u8]) {
    for (x, b) in x.chunks_exact(QK_K).zip(cast_slice_mut::<u8, BlockIQ4XS>(y)) {
        quantize_iq4_impl(
            x,
            &mut b.d,
            &mut b.qs,
            Some((&mut b.scales_h, &mut b.scales_l)),
            None,
            7,
        );
    }
}

/// `quantize_iq4_nl` with an importance matrix.
pub(crate) fn quantize_iq4_nl_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let blocks = x.chunks_exact(QK32).zip(imatrix.chunks_exact(QK32));
    for ((x, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockIQ4NL>(y)) {
        quantize_iq4_impl(x, &mut b.d, &mut b.qs, None, Some(qw), 7);
    }
}

/// `quantize_iq4_xs` with an importance matrix.
pub(crate) fn quantize_iq4_xs_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let blocks = x.chunks_exact(QK_K).zip(imatrix.chunks_exact(QK_K));
    for ((x, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockIQ4XS>(y)) {
        quantize_iq4_impl(
            x,
            &mut b.d,
            &mut b.qs,
            Some((&mut b.scales_h, &mut b.scales_l)),
            Some(qw),
            7,
        );
    }
}

// ===================== with an importance matrix (`quantize_row_*_impl`)

/// `quantize_row_q2_K_impl`.
pub(crate) fn quantize_q2_k_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let blocks = x.chunks_exact(QK_K).zip(imatrix.chunks_exact(QK_K));
    for ((x, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ2K>(y)) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut mins = [0f32; QK_K / 16];
        let mut scales = [0f32; QK_K / 16];
        let mut sw = [0f32; QK_K / 16];
        let mut weight = [0f32; 16];
        let mut ls = [0u8; QK_K / 16];
        let mut lm = [0u8; QK_K / 16];
        let mut sumx2 = 0.0f32;
        for j in 0..QK_K {
            sumx2 += x[j] * x[j];
        }
        let sigma2 = sumx2 / QK_K as f32;
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let qw = &qw[16 * j..16 * j + 16];
            for k in 0..16 {
                weight[k] = qw[k] * (sigma2 + xs[k] * xs[k]).sqrt();
            }
            for k in 0..QK_K / 16 {
                sw[j] += weight[k];
            }
            let (scale, min) = make_qkx3_quants(
                3,
                xs,
                &weight,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
                -0.9,
                0.05,
                36,
                false,
            );
            scales[j] = scale;
            mins[j] = min;
        }
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        b.d = f16_le_bytes(dm);
        b.dmin = f16_le_bytes(mm);
        let (dm, mm) = (f16_le(b.d), f16_le(b.dmin));
        for j in 0..QK_K / 16 {
            b.scales[j] = ls[j] | (lm[j] << 4);
        }
        let scales_q = b.scales;
        requantize_q2_k(x.try_into().expect("QK_K"), &scales_q, dm, mm, &mut l);
        pack_2bit(&l, &mut b.qs);
    }
}

/// `quantize_row_q3_K_impl`.
pub(crate) fn quantize_q3_k_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let blocks = x.chunks_exact(QK_K).zip(imatrix.chunks_exact(QK_K));
    for ((x, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ3K>(y)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let mut weight = [0f32; 16];
        let mut sw = [0f32; QK_K / 16];
        let mut ls = [0i8; QK_K / 16];
        let mut sumx2 = 0.0f32;
        for j in 0..QK_K {
            sumx2 += x[j] * x[j];
        }
        let sigma2 = 2.0 * sumx2 / QK_K as f32;
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            let qw = &qw[16 * j..16 * j + 16];
            for k in 0..16 {
                weight[k] = qw[k] * (sigma2 + xs[k] * xs[k]).sqrt();
            }
            let mut sumw = 0.0f32;
            for k in 0..16 {
                sumw += weight[k];
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants(4, xs, &mut l[16 * j..16 * j + 16], 1, Some(&weight));
        }
        let d_block = make_qx_quants(32, &scales, &mut ls, 1, Some(&sw));
        pack_q3_k_scales(&ls, &mut b.scales);
        b.d = f16_le_bytes(d_block);
        finish_q3_k(x, b, &mut l);
    }
}

/// `quantize_row_q4_K_impl`.
pub(crate) fn quantize_q4_k_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    quantize_k4_weighted::<BlockQ4K>(x, y, imatrix, 15, false);
}

/// `quantize_row_q5_K_impl` (which, unlike Q4_K's, clamps the scales to 63).
pub(crate) fn quantize_q5_k_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    quantize_k4_weighted::<BlockQ5K>(x, y, imatrix, 31, true);
}

fn quantize_k4_weighted<B: BlockK4>(x: &[f32], y: &mut [u8], imatrix: &[f32], nmax: i32, clamp_63: bool) {
    let blocks = x.chunks_exact(QK_K).zip(imatrix.chunks_exact(QK_K));
    for ((x, qw), b) in blocks.zip(cast_slice_mut::<u8, B>(y)) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 32];
        let mut ls = [0u8; QK_K / 32];
        let mut lm = [0u8; QK_K / 32];
        let mut weights = [0f32; 32];
        let mut sw = [0f32; QK_K / 32];
        let mut mins = [0f32; QK_K / 32];
        let mut scales = [0f32; QK_K / 32];
        let mut sum_x2 = 0.0f32;
        for k in 0..QK_K {
            sum_x2 += x[k] * x[k];
        }
        let sigma2 = 2.0 * sum_x2 / QK_K as f32;
        for j in 0..QK_K / 32 {
            let xs = &x[32 * j..32 * j + 32];
            let qw = &qw[32 * j..32 * j + 32];
            for k in 0..32 {
                weights[k] = qw[k] * (sigma2 + xs[k] * xs[k]).sqrt();
            }
            let mut sumw = 0.0f32;
            for k in 0..32 {
                sumw += weights[k];
            }
            sw[j] = sumw;
            let (scale, min) = make_qkx3_quants(
                nmax,
                xs,
                &weights,
                &mut l[32 * j..32 * j + 32],
                &mut laux,
                -0.9,
                0.05,
                36,
                false,
            );
            scales[j] = scale;
            mins[j] = min;
        }
        let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
        let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
        let (d, dmin, packed) = b.parts();
        for j in 0..QK_K / 32 {
            let (mut s, mut m) = (ls[j], lm[j]);
            if clamp_63 {
                s = s.min(63);
                m = m.min(63);
            }
            pack_scale_min_k4(packed, j, s, m);
        }
        *d = f16_le_bytes(d_block);
        *dmin = f16_le_bytes(m_block);
        requantize_k4(x.try_into().expect("QK_K"), packed, *d, *dmin, nmax, &mut l);
        b.pack(&l);
    }
}

/// `quantize_row_q6_K_impl`.
pub(crate) fn quantize_q6_k_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    quantize_q6_k_impl(x, y, Some(imatrix));
}

/// `Σx² / n` over the whole row: the variance term of the legacy types' weights.
fn row_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

/// `qw · √(σ² + x²)` for one block of 32.
#[inline(always)]
fn legacy_weights(xb: &[f32], qw: &[f32], sigma2: f32) -> [f32; QK32] {
    let mut weight = [0f32; QK32];
    for j in 0..QK32 {
        weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
    }
    weight
}

/// Q5_0 / Q5_1: low nibbles in `qs`, fifth bits in `qh` (bit j = element j).
#[inline(always)]
fn pack_q5(l: &[u8; QK32], qs: &mut [u8; 16]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..16 {
        let (xi0, xi1) = (l[j], l[j + 16]);
        qs[j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
    }
    qh.to_le_bytes()
}

/// `quantize_row_q4_0_impl`.
pub(crate) fn quantize_q4_0_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let sigma2 = row_sigma2(x);
    let blocks = x.chunks_exact(QK32).zip(imatrix.chunks_exact(QK32));
    for ((xb, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ4_0>(y)) {
        let weight = legacy_weights(xb, qw, sigma2);
        let mut l = [0i8; QK32];
        let d = make_qx_quants(8, xb, &mut l, 1, Some(&weight));
        b.d = f16_le_bytes(d);
        for j in 0..16 {
            b.qs[j] = l[j] as u8 | ((l[j + 16] as u8) << 4);
        }
    }
}

/// `quantize_row_q4_1_impl`.
pub(crate) fn quantize_q4_1_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let sigma2 = row_sigma2(x);
    let blocks = x.chunks_exact(QK32).zip(imatrix.chunks_exact(QK32));
    for ((xb, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ4_1>(y)) {
        let weight = legacy_weights(xb, qw, sigma2);
        let (mut l, mut laux) = ([0u8; QK32], [0u8; QK32]);
        let (d, min) = make_qkx3_quants(15, xb, &weight, &mut l, &mut laux, -0.9, 0.05, 36, false);
        b.d = f16_le_bytes(d);
        b.m = f16_le_bytes(-min);
        for j in 0..16 {
            b.qs[j] = l[j] | (l[j + 16] << 4);
        }
    }
}

/// `quantize_row_q5_0_impl`.
pub(crate) fn quantize_q5_0_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let sigma2 = row_sigma2(x);
    let blocks = x.chunks_exact(QK32).zip(imatrix.chunks_exact(QK32));
    for ((xb, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ5_0>(y)) {
        let weight = legacy_weights(xb, qw, sigma2);
        let mut l = [0i8; QK32];
        let d = make_qx_quants(16, xb, &mut l, 1, Some(&weight));
        b.d = f16_le_bytes(d);
        b.qh = pack_q5(&l.map(|v| v as u8), &mut b.qs);
    }
}

/// `quantize_row_q5_1_impl`.
pub(crate) fn quantize_q5_1_weighted(x: &[f32], y: &mut [u8], imatrix: &[f32]) {
    let sigma2 = row_sigma2(x);
    let blocks = x.chunks_exact(QK32).zip(imatrix.chunks_exact(QK32));
    for ((xb, qw), b) in blocks.zip(cast_slice_mut::<u8, BlockQ5_1>(y)) {
        let weight = legacy_weights(xb, qw, sigma2);
        let (mut l, mut laux) = ([0u8; QK32], [0u8; QK32]);
        let (d, min) = make_qkx3_quants(31, xb, &weight, &mut l, &mut laux, -0.9, 0.05, 36, false);
        b.d = f16_le_bytes(d);
        b.m = f16_le_bytes(-min);
        b.qh = pack_q5(&l, &mut b.qs);
    }
}
