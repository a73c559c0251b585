//! Run-time dispatch to SIMD kernels: detected once, then a function pointer.
//!
//! The scalar code in `ggml` and `dot` is the specification. A SIMD dequantizer or
//! quantizer here must produce the same bits; a SIMD dot product the same integer
//! block sums (its f32 accumulation order may differ). Each arch module tests
//! itself against the scalar code. Binaries never need `-C target-cpu=native`.

use crate::codec::{DequantFn, DotFn, QuantFn};
use qload_dtype::DType;

#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
mod aarch64;

/// Which kernel family this process uses (for reports and benchmarks). AVX-512
/// VNNI serves only the I2_S rows kernel (the rest stays on 256-bit vectors).
pub fn kernel_family() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return match (x86_64::vnni_detected(), x86_64::avx512_vnni_detected()) {
            (true, true) => "avx2+avx-vnni+avx512-vnni(i2_s)",
            (false, true) => "avx2+avx512-vnni(i2_s)",
            (true, false) => "avx2+avx-vnni",
            (false, false) => "avx2",
        };
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return "neon";
    }
    "scalar"
}

/// The SIMD dequantizer of `dtype`, when this CPU has one.
pub(crate) fn dequant(dtype: DType) -> Option<DequantFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return x86_64::dequant(dtype);
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return aarch64::dequant(dtype);
    }
    let _ = dtype;
    None
}

/// The SIMD quantizer (no importance matrix) of `dtype`, when this CPU has one.
pub(crate) fn quant(dtype: DType) -> Option<QuantFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return x86_64::quant(dtype);
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return aarch64::quant(dtype);
    }
    let _ = dtype;
    None
}

/// The SIMD I2_S block kernel (`Σ code·a` over whole blocks) of `layout`, when this
/// CPU has one.
pub(crate) fn i2s_dot(layout: crate::bitnet::i2s::I2sLayout) -> Option<crate::bitnet::i2s::I2sDotFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::i2s_dot(layout));
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return Some(aarch64::i2s_dot(layout));
    }
    let _ = layout;
    None
}

/// The SIMD rows kernel of the interleaved x86-layout I2_S groups of
/// [`crate::repack::I2sX4`] (the same integers per row as [`i2s_rows`]), when this
/// CPU has one. `ternary`: the caller checked that no code is 3, which lets a kernel
/// use a larger i16 budget (the kernel then may give wrong sums for a code 3).
pub(crate) fn i2s_rows_interleaved(ternary: bool) -> Option<crate::bitnet::i2s::I2sRowsFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::i2s_rows_interleaved(ternary));
    }
    let _ = ternary;
    None
}

/// The SIMD group kernel of the interleaved Q4_0 layout ([`crate::repack::Q4_0x8`]),
/// when this CPU has one: the same bits as the scalar group specification.
pub(crate) fn q4_0x8_group() -> Option<crate::repack::GroupFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::q4_0x8_group());
    }
    None
}

/// The SIMD I2_S rows kernel of `layout` (several rows of a matvec at once, the same
/// integers as [`i2s_dot`] per row), when this CPU has one. `ternary`: as for
/// [`i2s_rows_interleaved`].
pub(crate) fn i2s_rows(layout: crate::bitnet::i2s::I2sLayout, ternary: bool) -> Option<crate::bitnet::i2s::I2sRowsFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return x86_64::i2s_rows(layout, ternary);
    }
    let _ = (layout, ternary);
    None
}

/// `max |x|` when every element of `x` is finite, else `None`.
pub(crate) type ActAbsMaxFn = fn(&[f32]) -> Option<f32>;

/// BitNet's symmetric int8 activations with half-to-even rounding over the whole
/// vector-width chunks of finite `x` (32 elements in AVX2, 16 in NEON), the rest
/// left to the caller: `(x, s, q) -> (elements written, Σq)`.
pub(crate) type ActI8Fn = fn(&[f32], f32, &mut [i8]) -> (usize, i64);

/// The SIMD passes of BitNet's symmetric activation quantizer, when this CPU has them.
pub(crate) fn act_i8() -> Option<(ActAbsMaxFn, ActI8Fn)> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::act_i8_fns());
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return Some(aarch64::act_i8_fns());
    }
    None
}

/// `lanes[j] += |w[16i + j]|` over whole 16-element chunks of `w`.
pub(crate) type AbsLanesFn = fn(&mut [f64; 16], &[f32]);

/// Packs whole x86-layout I2_S blocks: `(scale⁻¹, values, out) -> OR of (byte ^ 0x55)`.
pub(crate) type PackI2sFn = fn(f32, &[f32], &mut [u8]) -> u8;

/// The SIMD `lanes[j] += |w[16i + j]|` over whole 16-element chunks (same additions in
/// the same order as the scalar), when this CPU has one.
pub(crate) fn i2s_abs_lanes() -> Option<AbsLanesFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::i2s_abs_lanes_fn());
    }
    None
}

/// The i16 budgets the TL kernels of every arch share. TL1: steps of two pair lookups
/// (|each| ≤ 2·128) per i16 span, 32 × 512 ≤ 16 384. TL2: 24-column sign groups of
/// 8 triples (|each| ≤ 3·128) per span, 8 × 8 × 384 = 24 576.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const TL1_STEPS_PER_WIDEN: usize = 32;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const TL2_GROUPS_PER_WIDEN: usize = 8;

/// Whether a TL1 tiling `(BM, BK, bm, by)` has the shape the SIMD kernels walk
/// (16-row blocks, 4-column byte groups); they refuse others and the scalar code
/// decides.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn tl1_tiling_fits((bm_tile, bk, bm, by): (usize, usize, usize, usize)) -> bool {
    bm_tile != 0 && bm != 0 && by >= 4 && bk >= by && bm.is_multiple_of(16)
}

/// TL1 lookup-table accumulation: `(bytes, (rows, cols), tiling, (lo, hi) tables,
/// row tiles [t0, t1), acc of those tiles' rows) -> any nibble above 8`.
pub(crate) type Tl1AccFn = fn(
    &[u8],
    (usize, usize),
    (usize, usize, usize, usize),
    (&[[u8; 16]], &[[u8; 16]]),
    (usize, usize),
    &mut [i32],
) -> bool;

/// The SIMD TL1 lookup-table accumulation (integer-exact), when this CPU has one.
pub(crate) fn tl1_accumulate() -> Option<Tl1AccFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::tl1_accumulate_fn());
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return Some(aarch64::tl1_accumulate_fn());
    }
    None
}

/// TL2 lookup-table accumulation: `(bytes, (rows, cols, K3), (BM, BK), (lo, hi) triple
/// tables, (lo, hi) pair tables, row tiles [t0, t1), acc of those tiles' rows) -> any
/// nibble out of range`.
pub(crate) type Tl2AccFn = fn(
    &[u8],
    (usize, usize, usize),
    (usize, usize),
    (&[[u8; 16]], &[[u8; 16]]),
    (&[[u8; 16]], &[[u8; 16]]),
    (usize, usize),
    &mut [i32],
) -> bool;

/// The SIMD TL2 lookup-table accumulation (integer-exact), when this CPU has one.
pub(crate) fn tl2_accumulate() -> Option<Tl2AccFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::tl2_accumulate_fn());
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return Some(aarch64::tl2_accumulate_fn());
    }
    None
}

/// One fused pass of the speculative I2_S quantizer over whole x86-layout blocks:
/// `(lanes, (s_lo, s_hi), values, out, undecided fields) -> OR of (byte ^ 0x55)` (see
/// `x86_64::bitnet::pack_i2s_x86_speculative`).
pub(crate) type PackI2sSpecFn = fn(&mut [f64; 16], (f32, f32), &[f32], &mut [u8], &mut [u8]) -> u8;

/// The fused abs-sum and speculative packer of whole x86-layout I2_S blocks, when this
/// CPU has one.
pub(crate) fn i2s_pack_x86_speculative() -> Option<PackI2sSpecFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::i2s_pack_speculative_fn());
    }
    None
}

/// The SIMD packer of whole 128-element blocks in bitnet.cpp's x86 I2_S layout, when
/// this CPU has one: `(scale⁻¹, values, out) -> OR of (byte ^ 0x55)`.
pub(crate) fn i2s_pack_x86() -> Option<PackI2sFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::i2s_pack_fn());
    }
    None
}

/// The SIMD dot product of `dtype` with its activation type, when this CPU has one.
pub(crate) fn dot(dtype: DType) -> Option<DotFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return x86_64::dot(dtype);
    }
    #[cfg(target_arch = "aarch64")]
    if aarch64::detected() {
        return aarch64::dot(dtype);
    }
    let _ = dtype;
    None
}

/// `(w, row_bytes, a, y)`: `y[r]` = the dot product of row `r` of `w` (rows of
/// `row_bytes` bytes back to back) with the activation `a`, bit for bit what the
/// type's [`DotFn`] from [`dot`] returns for that row (for activations from qload's
/// quantizers, which never write −128; the dot products' sign trick would wrap on it).
pub(crate) type RowsFn = fn(&[u8], usize, &[u8], &mut [f32]);

/// The SIMD kernel that computes several rows of a matvec at once, for the types
/// where sharing the activation's work between rows pays.
pub(crate) fn matvec_rows(dtype: DType) -> Option<RowsFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return x86_64::matvec_rows(dtype);
    }
    let _ = dtype;
    None
}

/// The SIMD 4-bit table decoder to f16 (bnb NF4/FP4, MLX affine 4-bit), when this CPU
/// has one.
pub(crate) fn lut4_f16() -> Option<crate::prequant::lut4::Lut4F16Fn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::lut4_f16);
    }
    None
}

/// The SIMD 4-bit table decoder to f32, when this CPU has one.
pub(crate) fn lut4_f32() -> Option<crate::prequant::lut4::Lut4F32Fn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::lut4_f32);
    }
    None
}

/// The SIMD fused 4-bit table decode and dot product, when this CPU has one.
pub(crate) fn lut4_dot() -> Option<crate::prequant::lut4::Lut4DotFn> {
    #[cfg(target_arch = "x86_64")]
    if x86_64::detected() {
        return Some(x86_64::lut4_dot);
    }
    None
}

/// Bit-exactness checks of the dot products paired with Q8_0 (NVFP4, Q1_0, Q2_0), shared
/// by the arch modules' tests.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod q8_0_paired_checks {
    use crate::codec::{DotFn, codec};
    use qload_dtype::DType;

    /// The types these checks cover.
    pub(crate) const TYPES: [DType; 3] = [DType::NVFP4, DType::Q1_0, DType::Q2_0];

    /// `(weights, activations)` over `n` elements. Weights are random bytes (an f16
    /// scale at byte 0 made finite; NVFP4's four UE4M3 bytes left as they come), the
    /// activations random Q8_0 bytes, not the quantizer's output: every quant
    /// `−128..=127`, with −128 made common, and finite f16 scales of either sign, normal
    /// or subnormal. `extreme` 1 and 2 give the largest sums instead: the most negative
    /// weights against −128 everywhere, the largest against 127.
    pub(crate) fn raw_operands(dtype: DType, n: usize, seed: u64, extreme: u8) -> (Vec<u8>, Vec<u8>) {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Exponent 31 (Inf/NaN) becomes 30.
        let finite_f16 = |h: u16| (if h & 0x7c00 == 0x7c00 { h & !0x0400 } else { h }).to_le_bytes();
        let c = codec(dtype).unwrap();
        let mut w: Vec<u8> = (0..c.bytes_for(n).unwrap()).map(|_| next() as u8).collect();
        let mut a: Vec<u8> = (0..codec(DType::Q8_0).unwrap().bytes_for(n).unwrap())
            .map(|_| match next() % 8 {
                0 => 0x80,
                _ => next() as u8,
            })
            .collect();
        for b in w.chunks_exact_mut(c.block_bytes()) {
            let q = if dtype == DType::NVFP4 {
                &mut b[4..]
            } else {
                b[..2].copy_from_slice(&finite_f16(next() as u16));
                &mut b[2..]
            };
            match (extreme, dtype) {
                // FP4 nibble 0xF is −12 (0x7 is +12); Q1_0 bit 0 and Q2_0 code 0 are −1.
                (1, DType::NVFP4) => q.fill(0xff),
                (2, DType::NVFP4) => q.fill(0x77),
                (1, _) => q.fill(0x00),
                // Q1_0 bit 1 is +1, Q2_0 code 3 is +2.
                (2, _) => q.fill(0xff),
                _ => {}
            }
        }
        for b in a.chunks_exact_mut(34) {
            b[..2].copy_from_slice(&finite_f16(next() as u16));
            match extreme {
                1 => b[2..].fill(0x80),
                2 => b[2..].fill(0x7f),
                _ => {}
            }
        }
        (w, a)
    }

    /// `dot(dtype)` against the scalar kernel on [`raw_operands`] of `blocks · 128`
    /// elements, for every type in [`TYPES`]: the same bits (panics otherwise).
    pub(crate) fn assert_raw_bits(dot: fn(DType) -> Option<DotFn>, blocks: usize, seed: u64, extreme: u8) {
        for dtype in TYPES {
            let (w, a) = raw_operands(dtype, blocks * 128, seed, extreme);
            let fast = dot(dtype).unwrap()(&w, &a);
            let slow = crate::dot::scalar_kernel(dtype).unwrap().1(&w, &a);
            assert_eq!(
                fast.to_bits(),
                slow.to_bits(),
                "{dtype} ({blocks} × 128, seed {seed}, extreme {extreme}): {fast} vs {slow}"
            );
        }
    }

    /// The NVFP4 `dot` against the scalar kernel with every UE4M3 scale byte in every
    /// sub-block position, one block per call (so no other block's sum hides an error),
    /// then all 256 blocks in one call: the same bits (panics otherwise).
    pub(crate) fn assert_nvfp4_every_scale_byte(dot: DotFn) {
        let (mut w, a) = raw_operands(DType::NVFP4, 256 * 64, 7, 0);
        for (b, block) in w.chunks_exact_mut(36).enumerate() {
            for (s, d) in block[..4].iter_mut().enumerate() {
                *d = (b + 64 * s) as u8;
            }
        }
        let slow = crate::dot::scalar_kernel(DType::NVFP4).unwrap().1;
        for b in 0..256 {
            let (w, a) = (&w[36 * b..36 * (b + 1)], &a[68 * b..68 * (b + 1)]);
            assert_eq!(
                dot(w, a).to_bits(),
                slow(w, a).to_bits(),
                "scale bytes {:02x?}",
                &w[..4]
            );
        }
        assert_eq!(dot(&w, &a).to_bits(), slow(&w, &a).to_bits());
    }
}
