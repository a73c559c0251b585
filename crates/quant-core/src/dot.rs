//! Scalar dot products of each weight type with its activation type — the
//! specification the SIMD kernels in `arch` are checked against.
//!
//! Within a block everything is integer arithmetic (quants × int8 activations,
//! exact); blocks are combined in f32 with the block scales, as ggml does. The
//! results are not bit-identical to ggml's (nor are ggml's own SIMD paths to its
//! scalar one); they are held to ggml's per-type error budgets against f32.

use crate::ggml::blocks::*;
use crate::ggml::iq_grids::{
    IQ1S_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
use crate::ggml::iq4::KVALUES_IQ4NL;
use crate::ggml::kquants::{q3k_scales, scale_min_k4};
use crate::ggml::mxfp4::{KVALUES_MXFP4, e8m0_to_f32_half};
use crate::ggml::nvfp4::ue4m3_to_f32_half;
use bytemuck::cast_slice;

#[inline(always)]
fn dot_i8(q: &[i8], a: &[u8]) -> i32 {
    q.iter().zip(a).map(|(&q, &a)| q as i32 * a as i8 as i32).sum()
}

/// Q4_0 · Q8_0.
pub(crate) fn vec_dot_q4_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ4_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let mut sumi = 0i32;
        for j in 0..16 {
            let v0 = (x.qs[j] & 0x0f) as i32 - 8;
            let v1 = (x.qs[j] >> 4) as i32 - 8;
            sumi += v0 * y.qs[j] as i8 as i32 + v1 * y.qs[j + 16] as i8 as i32;
        }
        sum += sumi as f32 * (x.d() * y.d());
    }
    sum
}

/// Q4_1 · Q8_1.
pub(crate) fn vec_dot_q4_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ4_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += (x.qs[j] & 0x0f) as i32 * y.qs[j] as i8 as i32 + (x.qs[j] >> 4) as i32 * y.qs[j + 16] as i8 as i32;
        }
        sum += sumi as f32 * (x.d() * y.d()) + x.m() * y.s();
    }
    sum
}

#[inline(always)]
fn q5_values(qs: &[u8; 16], qh: [u8; 4], offset: i32) -> [i8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0i8; 32];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        q[j] = (((qs[j] as u32 & 0x0f) | h0) as i32 - offset) as i8;
        q[j + 16] = (((qs[j] as u32 >> 4) | h1) as i32 - offset) as i8;
    }
    q
}

/// Q5_0 · Q8_0.
pub(crate) fn vec_dot_q5_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let q = q5_values(&x.qs, x.qh, 16);
        sum += dot_i8(&q, &y.qs) as f32 * (x.d() * y.d());
    }
    sum
}

/// Q5_1 · Q8_1.
pub(crate) fn vec_dot_q5_1_q8_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5_1>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_1>(a))
    {
        let q = q5_values(&x.qs, x.qh, 0);
        sum += dot_i8(&q, &y.qs) as f32 * (x.d() * y.d()) + x.m() * y.s();
    }
    sum
}

/// Q8_0 · Q8_0.
pub(crate) fn vec_dot_q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ8_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let q: &[i8] = cast_slice(&x.qs);
        sum += dot_i8(q, &y.qs) as f32 * (x.d() * y.d());
    }
    sum
}

/// IQ4_NL · Q8_0.
pub(crate) fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ4NL>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let mut q = [0i8; 32];
        for j in 0..16 {
            q[j] = KVALUES_IQ4NL[(x.qs[j] & 0x0f) as usize];
            q[j + 16] = KVALUES_IQ4NL[(x.qs[j] >> 4) as usize];
        }
        sum += dot_i8(&q, &y.qs) as f32 * (x.d() * y.d());
    }
    sum
}

/// MXFP4 · Q8_0.
pub(crate) fn vec_dot_mxfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockMXFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a))
    {
        let mut q = [0i8; 32];
        for j in 0..16 {
            q[j] = KVALUES_MXFP4[(x.qs[j] & 0x0f) as usize];
            q[j + 16] = KVALUES_MXFP4[(x.qs[j] >> 4) as usize];
        }
        sum += dot_i8(&q, &y.qs) as f32 * (e8m0_to_f32_half(x.e) * y.d());
    }
    sum
}

/// NVFP4 · Q8_0: each 64-element block spans two Q8_0 blocks; each 16-element
/// sub-block is scaled by its own UE4M3 scale and its Q8_0 block's scale.
pub(crate) fn vec_dot_nvfp4_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockNVFP4>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        for s in 0..4 {
            let d = ue4m3_to_f32_half(x.d[s]);
            let (yb, off) = (&y[s / 2], 16 * (s % 2));
            let mut q = [0i8; 16];
            for j in 0..8 {
                q[j] = KVALUES_MXFP4[(x.qs[8 * s + j] & 0x0f) as usize];
                q[j + 8] = KVALUES_MXFP4[(x.qs[8 * s + j] >> 4) as usize];
            }
            sum += yb.d() * d * dot_i8(&q, &yb.qs[off..off + 16]) as f32;
        }
    }
    sum
}

/// Q1_0 · Q8_0: each 128-element block spans four Q8_0 blocks; ggml sums their
/// scaled integer dot products in f32, then scales by the Q1_0 scale.
pub(crate) fn vec_dot_q1_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(4))
    {
        let mut sumi = 0.0f32;
        for (k, yb) in y.iter().enumerate() {
            let q: [i8; 32] = std::array::from_fn(|j| {
                if (x.qs[4 * k + j / 8] >> (j % 8)) & 1 != 0 {
                    1
                } else {
                    -1
                }
            });
            sumi += yb.d() * dot_i8(&q, &yb.qs) as f32;
        }
        sum += x.d() * sumi;
    }
    sum
}

/// Q2_0 · Q8_0: each 64-element block spans two Q8_0 blocks, summed as for Q1_0.
pub(crate) fn vec_dot_q2_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8_0>(a).chunks_exact(2))
    {
        let mut sumi = 0.0f32;
        for (k, yb) in y.iter().enumerate() {
            let q: [i8; 32] = std::array::from_fn(|j| {
                let e = 32 * k + j;
                ((x.qs[e / 4] >> (2 * (e % 4))) & 3) as i8 - 1
            });
            sumi += yb.d() * dot_i8(&q, &yb.qs) as f32;
        }
        sum += x.d() * sumi;
    }
    sum
}

/// Σ over groups of `group` elements of `scale[g] · Σ q·a` (integer-exact).
#[inline(always)]
fn grouped(q: &[i8; 256], scales: &[i32], a: &[u8; 256]) -> i32 {
    let group = 256 / scales.len();
    q.chunks_exact(group)
        .zip(a.chunks_exact(group))
        .zip(scales)
        .map(|((q, a), &s)| s * dot_i8(q, a))
        .sum()
}

/// Σ over groups of `m[g] · Σ a` from the activation's 16-element group sums.
#[inline(always)]
fn mins_times_bsums(y: &BlockQ8K, mins: &[i32]) -> i32 {
    let per = 16 / mins.len();
    mins.iter()
        .enumerate()
        .map(|(g, &m)| m * (0..per).map(|k| y.bsum(g * per + k) as i32).sum::<i32>())
        .sum()
}

/// Q2_K · Q8_K.
pub(crate) fn vec_dot_q2_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ2K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        let mut k = 0;
        for n in 0..2 {
            for shift in [0, 2, 4, 6] {
                for l in 0..32 {
                    q[k] = ((x.qs[32 * n + l] >> shift) & 3) as i8;
                    k += 1;
                }
            }
        }
        let sc: [i32; 16] = std::array::from_fn(|g| (x.scales[g] & 0x0f) as i32);
        let mn: [i32; 16] = std::array::from_fn(|g| (x.scales[g] >> 4) as i32);
        let sumi = grouped(&q, &sc, &y.qs);
        let summ = mins_times_bsums(y, &mn);
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

/// Q3_K · Q8_K.
pub(crate) fn vec_dot_q3_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ3K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        let mut k = 0;
        let mut m = 1u8;
        for n in 0..2 {
            for shift in [0, 2, 4, 6] {
                for l in 0..32 {
                    let low = ((x.qs[32 * n + l] >> shift) & 3) as i8;
                    q[k] = low - if x.hmask[l] & m != 0 { 0 } else { 4 };
                    k += 1;
                }
                m <<= 1;
            }
        }
        let sc = q3k_scales(&x.scales).map(|s| s as i32);
        sum += y.d() * x.d() * grouped(&q, &sc, &y.qs) as f32;
    }
    sum
}

/// Q4_K · Q8_K.
pub(crate) fn vec_dot_q4_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ4K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        for j in 0..4 {
            for l in 0..32 {
                q[64 * j + l] = (x.qs[32 * j + l] & 0x0f) as i8;
                q[64 * j + 32 + l] = (x.qs[32 * j + l] >> 4) as i8;
            }
        }
        let sm: [(u8, u8); 8] = std::array::from_fn(|g| scale_min_k4(g, &x.scales));
        let sumi = grouped(&q, &sm.map(|s| s.0 as i32), &y.qs);
        let summ = mins_times_bsums(y, &sm.map(|s| s.1 as i32));
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

/// Q5_K · Q8_K.
pub(crate) fn vec_dot_q5_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ5K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        for j in 0..4 {
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            for l in 0..32 {
                let h1 = if x.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if x.qh[l] & u2 != 0 { 16 } else { 0 };
                q[64 * j + l] = ((x.qs[32 * j + l] & 0x0f) + h1) as i8;
                q[64 * j + 32 + l] = ((x.qs[32 * j + l] >> 4) + h2) as i8;
            }
        }
        let sm: [(u8, u8); 8] = std::array::from_fn(|g| scale_min_k4(g, &x.scales));
        let sumi = grouped(&q, &sm.map(|s| s.0 as i32), &y.qs);
        let summ = mins_times_bsums(y, &sm.map(|s| s.1 as i32));
        sum += y.d() * x.d() * sumi as f32 - y.d() * x.dmin() * summ as f32;
    }
    sum
}

/// Q6_K · Q8_K.
pub(crate) fn vec_dot_q6_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockQ6K>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        for n in 0..2 {
            let (ql, qh) = (&x.ql[64 * n..64 * n + 64], &x.qh[32 * n..32 * n + 32]);
            for l in 0..32 {
                q[128 * n + l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                q[128 * n + l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                q[128 * n + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                q[128 * n + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let sc: [i32; 16] = std::array::from_fn(|g| x.scales[g] as i8 as i32);
        sum += y.d() * x.d() * grouped(&q, &sc, &y.qs) as f32;
    }
    sum
}

/// IQ4_XS · Q8_K.
pub(crate) fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ4XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut q = [0i8; 256];
        for ib in 0..8 {
            for j in 0..16 {
                q[32 * ib + j] = KVALUES_IQ4NL[(x.qs[16 * ib + j] & 0x0f) as usize];
                q[32 * ib + j + 16] = KVALUES_IQ4NL[(x.qs[16 * ib + j] >> 4) as usize];
            }
        }
        let sc = x.group_scales();
        sum += y.d() * x.d() * grouped(&q, &sc, &y.qs) as f32;
    }
    sum
}

/// ggml's `grid[j] * (signs & kmask_iq2xs[j] ? -1 : 1)`: a grid magnitude (at
/// most 62) with sign bit `j` applied.
#[inline(always)]
fn signed(magnitude: u8, signs: u8, j: usize) -> i8 {
    if signs & (1 << j) != 0 {
        -(magnitude as i8)
    } else {
        magnitude as i8
    }
}

#[inline(always)]
fn u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// IQ2_XXS · Q8_K. ggml sums `(2·s + 1) · Σ q·a` per 32 elements in integers, scales
/// each block by `d_w·d_a` and the row by 1/8 at the end.
pub(crate) fn vec_dot_iq2_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut q = [0i8; 256];
        let mut ls = [0i32; 8];
        for ib32 in 0..8 {
            let aux32 = u32_le(&x.qs[8 * ib32 + 4..]);
            ls[ib32] = 2 * (aux32 >> 28) as i32 + 1;
            for l in 0..4 {
                let grid = &IQ2XXS_GRID[x.qs[8 * ib32 + l] as usize];
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    q[32 * ib32 + 8 * l + j] = signed(grid[j], signs, j);
                }
            }
        }
        sum += x.d() * y.d() * grouped(&q, &ls, &y.qs) as f32;
    }
    0.125 * sum
}

/// IQ2_XS · Q8_K: one odd scale `2·s + 1` per 16 elements, then as IQ2_XXS.
pub(crate) fn vec_dot_iq2_xs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2XS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut q = [0i8; 256];
        for k in 0..32 {
            let code = u16::from_le_bytes([x.qs[2 * k], x.qs[2 * k + 1]]);
            let grid = &IQ2XS_GRID[(code & 511) as usize];
            let signs = KSIGNS_IQ2XS[(code >> 9) as usize];
            for j in 0..8 {
                q[8 * k + j] = signed(grid[j], signs, j);
            }
        }
        let ls: [i32; 16] = std::array::from_fn(|g| 2 * ((x.scales[g / 2] >> (4 * (g % 2))) & 0xf) as i32 + 1);
        sum += x.d() * y.d() * grouped(&q, &ls, &y.qs) as f32;
    }
    0.125 * sum
}

/// IQ2_S · Q8_K: 10-bit grid indices and explicit sign bytes, one odd scale per 16.
pub(crate) fn vec_dot_iq2_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ2S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let (qs, signs) = x.qs.split_at(QK_K / 8);
        let mut q = [0i8; 256];
        for ib32 in 0..8 {
            let qh = x.qh[ib32] as usize;
            for l in 0..4 {
                let grid = &IQ2S_GRID[qs[4 * ib32 + l] as usize | ((qh << (8 - 2 * l)) & 0x300)];
                for j in 0..8 {
                    q[32 * ib32 + 8 * l + j] = signed(grid[j], signs[4 * ib32 + l], j);
                }
            }
        }
        let ls: [i32; 16] = std::array::from_fn(|g| 2 * ((x.scales[g / 2] >> (4 * (g % 2))) & 0xf) as i32 + 1);
        sum += x.d() * y.d() * grouped(&q, &ls, &y.qs) as f32;
    }
    0.125 * sum
}

/// IQ3_XXS · Q8_K: 4-element grid entries, signs and scales as IQ2_XXS, the row
/// scaled by 1/4 at the end.
pub(crate) fn vec_dot_iq3_xxs_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3XXS>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let (qs, scales_and_signs) = x.qs.split_at(QK_K / 4);
        let mut q = [0i8; 256];
        let mut ls = [0i32; 8];
        for ib32 in 0..8 {
            let aux32 = u32_le(&scales_and_signs[4 * ib32..]);
            ls[ib32] = 2 * (aux32 >> 28) as i32 + 1;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                let grid1 = &IQ3XXS_GRID[qs[8 * ib32 + 2 * l] as usize];
                let grid2 = &IQ3XXS_GRID[qs[8 * ib32 + 2 * l + 1] as usize];
                let q = &mut q[32 * ib32 + 8 * l..];
                for j in 0..4 {
                    q[j] = signed(grid1[j], signs, j);
                    q[j + 4] = signed(grid2[j], signs, j + 4);
                }
            }
        }
        sum += x.d() * y.d() * grouped(&q, &ls, &y.qs) as f32;
    }
    0.25 * sum
}

/// IQ3_S · Q8_K: 9-bit grid indices, explicit sign bytes, one odd scale per 32.
pub(crate) fn vec_dot_iq3_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ3S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        for ib32 in 0..8 {
            let qs = &x.qs[8 * ib32..8 * ib32 + 8];
            let qh = x.qh[ib32] as usize;
            let signs = &x.signs[4 * ib32..4 * ib32 + 4];
            for l in 0..4 {
                let grid1 = &IQ3S_GRID[qs[2 * l] as usize | ((qh << (8 - 2 * l)) & 256)];
                let grid2 = &IQ3S_GRID[qs[2 * l + 1] as usize | ((qh << (7 - 2 * l)) & 256)];
                let q = &mut q[32 * ib32 + 8 * l..];
                for j in 0..4 {
                    q[j] = signed(grid1[j], signs[l], j);
                    q[j + 4] = signed(grid2[j], signs[l], j + 4);
                }
            }
        }
        let ls: [i32; 8] = std::array::from_fn(|g| 2 * ((x.scales[g / 2] >> (4 * (g % 2))) & 0xf) as i32 + 1);
        sum += x.d() * y.d() * grouped(&q, &ls, &y.qs) as f32;
    }
    sum
}

/// IQ1_S · Q8_K. Elements are `d·ls·(g ± δ)` with `g` ∈ {−1, 0, 1}: the grid part
/// is an integer dot product, the δ part `±ls·Σa` over 32 elements comes from the
/// activation's group sums, and ggml joins them as `d_w·d_a·(Σ + δ·Σ_δ)`.
pub(crate) fn vec_dot_iq1_s_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1S>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let mut q = [0i8; 256];
        let mut ls = [0i32; 8];
        let mut ls_delta = [0i32; 8];
        for ib in 0..8 {
            let qh = u16::from_le_bytes([x.qh[2 * ib], x.qh[2 * ib + 1]]) as usize;
            ls[ib] = 2 * ((qh >> 12) & 7) as i32 + 1;
            ls_delta[ib] = if qh & 0x8000 != 0 { -ls[ib] } else { ls[ib] };
            for l in 0..4 {
                let grid = &IQ1S_GRID[x.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) << 8)];
                q[32 * ib + 8 * l..32 * ib + 8 * l + 8].copy_from_slice(grid);
            }
        }
        let sumi = grouped(&q, &ls, &y.qs);
        let sumi1 = mins_times_bsums(y, &ls_delta);
        sum += x.d() * y.d() * (sumi as f32 + IQ1S_DELTA * sumi1 as f32);
    }
    sum
}

/// IQ1_M · Q8_K: as IQ1_S with one scale per 16 elements and one δ sign per 8, so
/// the δ part sums the activations itself (the group sums span 16).
pub(crate) fn vec_dot_iq1_m_q8_k(w: &[u8], a: &[u8]) -> f32 {
    // ggml's IQ1M_DELTA, equal to IQ1S_DELTA.
    const IQ1M_DELTA: f32 = IQ1S_DELTA;
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockIQ1M>(w).iter().zip(cast_slice::<u8, BlockQ8K>(a)) {
        let sc: [u16; 4] = std::array::from_fn(|i| u16::from_le_bytes([x.scales[2 * i], x.scales[2 * i + 1]]));
        let scale = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_le(scale.to_le_bytes());
        let mut q = [0i8; 256];
        let mut ls = [0i32; 16];
        let mut sumi2 = 0i32;
        for ib in 0..8 {
            let s = sc[ib / 2] as i32;
            ls[2 * ib] = 2 * ((s >> (6 * (ib % 2))) & 7) + 1;
            ls[2 * ib + 1] = 2 * ((s >> (6 * (ib % 2) + 3)) & 7) + 1;
            for l in 0..4 {
                let qh = x.qh[2 * ib + l / 2] as usize;
                let grid = &IQ1S_GRID[x.qs[4 * ib + l] as usize | ((qh << (8 - 4 * (l % 2))) & 0x700)];
                let at = 32 * ib + 8 * l;
                q[at..at + 8].copy_from_slice(grid);
                let asum: i32 = y.qs[at..at + 8].iter().map(|&v| v as i8 as i32).sum();
                let negative = qh & (0x08 << (4 * (l % 2))) != 0;
                sumi2 += ls[2 * ib + l / 2] * if negative { -asum } else { asum };
            }
        }
        let sumi1 = grouped(&q, &ls, &y.qs);
        sum += d * y.d() * (sumi1 as f32 + IQ1M_DELTA * sumi2 as f32);
    }
    sum
}

/// Σ over the block of the activation quants (from the group sums).
#[inline(always)]
fn activation_sum(y: &BlockQ8K) -> i32 {
    (0..16).map(|g| y.bsum(g) as i32).sum()
}

/// TQ1_0 · Q8_K.
pub(crate) fn vec_dot_tq1_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let mut codes = [0f32; 256];
    for (x, y) in cast_slice::<u8, BlockTQ1_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        // Unpack through the dequantizer with a unit scale: codes are exactly −1, 0, 1.
        let mut unit = *x;
        unit.d = f16_le_bytes(1.0);
        crate::ggml::ternary::dequantize_tq1_0(bytemuck::bytes_of(&unit), &mut codes);
        let q: [i8; 256] = std::array::from_fn(|i| codes[i] as i8);
        sum += y.d() * x.d() * dot_i8(&q, &y.qs) as f32;
    }
    sum
}

/// TQ2_0 · Q8_K.
pub(crate) fn vec_dot_tq2_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in cast_slice::<u8, BlockTQ2_0>(w)
        .iter()
        .zip(cast_slice::<u8, BlockQ8K>(a))
    {
        let mut q = [0i8; 256];
        let mut k = 0;
        for j in [0, 32] {
            for l in 0..4 {
                for m in 0..32 {
                    q[k] = ((x.qs[j + m] >> (2 * l)) & 3) as i8;
                    k += 1;
                }
            }
        }
        let sumi = dot_i8(&q, &y.qs) - activation_sum(y);
        sum += y.d() * x.d() * sumi as f32;
    }
    sum
}

/// F32 · F32.
pub(crate) fn vec_dot_f32(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(4).zip(a.chunks_exact(4)) {
        sum += f32::from_le_bytes(x.try_into().unwrap()) as f64 * f32::from_le_bytes(y.try_into().unwrap()) as f64;
    }
    sum as f32
}

/// F16 · F16 (accumulated in f64, as ggml's scalar path does).
pub(crate) fn vec_dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)) {
        sum += (f16_le([x[0], x[1]]) * f16_le([y[0], y[1]])) as f64;
    }
    sum as f32
}

/// BF16 · BF16.
pub(crate) fn vec_dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)) {
        let x = half::bf16::from_le_bytes([x[0], x[1]]).to_f32();
        let y = half::bf16::from_le_bytes([y[0], y[1]]).to_f32();
        sum += (x * y) as f64;
    }
    sum as f32
}

/// The activation type and the fastest dot product of a weight type on this CPU.
pub(crate) fn kernel(dtype: qload_dtype::DType) -> Option<(qload_dtype::DType, crate::codec::DotFn)> {
    let (act, scalar) = scalar_kernel(dtype)?;
    Some((act, crate::arch::dot(dtype).unwrap_or(scalar)))
}

/// The activation type and scalar dot product (the specification) of a weight type.
pub(crate) fn scalar_kernel(dtype: qload_dtype::DType) -> Option<(qload_dtype::DType, crate::codec::DotFn)> {
    use qload_dtype::DType as T;
    Some(match dtype {
        T::F32 => (T::F32, vec_dot_f32 as crate::codec::DotFn),
        T::F16 => (T::F16, vec_dot_f16),
        T::BF16 => (T::BF16, vec_dot_bf16),
        T::Q4_0 => (T::Q8_0, vec_dot_q4_0_q8_0),
        T::Q4_1 => (T::Q8_1, vec_dot_q4_1_q8_1),
        T::Q5_0 => (T::Q8_0, vec_dot_q5_0_q8_0),
        T::Q5_1 => (T::Q8_1, vec_dot_q5_1_q8_1),
        T::Q8_0 => (T::Q8_0, vec_dot_q8_0_q8_0),
        T::Q2K => (T::Q8K, vec_dot_q2_k_q8_k),
        T::Q3K => (T::Q8K, vec_dot_q3_k_q8_k),
        T::Q4K => (T::Q8K, vec_dot_q4_k_q8_k),
        T::Q5K => (T::Q8K, vec_dot_q5_k_q8_k),
        T::Q6K => (T::Q8K, vec_dot_q6_k_q8_k),
        T::IQ4NL => (T::Q8_0, vec_dot_iq4_nl_q8_0),
        T::IQ2XXS => (T::Q8K, vec_dot_iq2_xxs_q8_k),
        T::IQ2XS => (T::Q8K, vec_dot_iq2_xs_q8_k),
        T::IQ2S => (T::Q8K, vec_dot_iq2_s_q8_k),
        T::IQ3XXS => (T::Q8K, vec_dot_iq3_xxs_q8_k),
        T::IQ3S => (T::Q8K, vec_dot_iq3_s_q8_k),
        T::IQ1S => (T::Q8K, vec_dot_iq1_s_q8_k),
        T::IQ1M => (T::Q8K, vec_dot_iq1_m_q8_k),
        T::IQ4XS => (T::Q8K, vec_dot_iq4_xs_q8_k),
        T::TQ1_0 => (T::Q8K, vec_dot_tq1_0_q8_k),
        T::TQ2_0 => (T::Q8K, vec_dot_tq2_0_q8_k),
        T::MXFP4 => (T::Q8_0, vec_dot_mxfp4_q8_0),
        T::NVFP4 => (T::Q8_0, vec_dot_nvfp4_q8_0),
        T::Q1_0 => (T::Q8_0, vec_dot_q1_0_q8_0),
        T::Q2_0 => (T::Q8_0, vec_dot_q2_0_q8_0),
        _ => return None,
    })
}
