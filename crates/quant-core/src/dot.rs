//! Scalar dot products of each weight type with its activation type — the
//! specification the SIMD kernels in `arch` are checked against.
//!
//! Within a block everything is integer arithmetic (quants × int8 activations,
//! exact); blocks are combined in f32 with the block scales, as ggml does. The
//! results are not bit-identical to ggml's (nor are ggml's own SIMD paths to its
//! scalar one); they are held to ggml's per-type error budgets against f32.

use crate::ggml::blocks::*;
use crate::ggml::iq4::KVALUES_IQ4NL;
use crate::ggml::kquants::{q3k_scales, scale_min_k4};
use crate::ggml::mxfp4::{KVALUES_MXFP4, e8m0_to_f32_half};
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
        let sh = u16::from_le_bytes(x.scales_h);
        let sc: [i32; 8] = std::array::from_fn(|ib| {
            (((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) as i32 | ((((sh >> (2 * ib)) & 3) as i32) << 4)) - 32
        });
        sum += y.d() * x.d() * grouped(&q, &sc, &y.qs) as f32;
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
        T::IQ4XS => (T::Q8K, vec_dot_iq4_xs_q8_k),
        T::TQ1_0 => (T::Q8K, vec_dot_tq1_0_q8_k),
        T::TQ2_0 => (T::Q8K, vec_dot_tq2_0_q8_k),
        T::MXFP4 => (T::Q8_0, vec_dot_mxfp4_q8_0),
        _ => return None,
    })
}
