//! x86-64: AVX2 + FMA + F16C kernels behind run-time detection.

use crate::bitnet::i2s::{I2sDotFn, I2sLayout, I2sRowsFn};
use crate::codec::{DequantFn, DotFn, QuantFn};
use crate::prequant::lut4::Lut4;
use qload_dtype::DType;
use std::sync::OnceLock;

mod avx2;
mod bitnet;
mod prequant;

/// Whether AVX2, FMA and F16C are all available (detected once per process).
/// `QLOAD_NO_SIMD=1` forces the scalar code (for comparisons and debugging).
pub(super) fn detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::env::var_os("QLOAD_NO_SIMD").is_none_or(|v| v.is_empty() || v == "0")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// Whether AVX-VNNI (`vpdpbusd` on 256-bit vectors) is there too, on top of
/// [`detected`]; `QLOAD_NO_VNNI=1` keeps the AVX2 kernels (for comparisons).
pub(super) fn vnni_detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        detected()
            && std::env::var_os("QLOAD_NO_VNNI").is_none_or(|v| v.is_empty() || v == "0")
            && is_x86_feature_detected!("avxvnni")
    })
}

/// Whether AVX-512 with VNNI (`vpdpbusd` on 512-bit vectors, AVX-512BW's byte
/// operations) is there too, on top of [`detected`]; `QLOAD_NO_AVX512=1` keeps the
/// 256-bit kernels (for comparisons). Only the I2_S rows kernel uses it.
pub(super) fn avx512_vnni_detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        detected()
            && std::env::var_os("QLOAD_NO_AVX512").is_none_or(|v| v.is_empty() || v == "0")
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

fn matvec_rows_q4_0_vnni(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]) {
    debug_assert!(vnni_detected());
    // SAFETY: handed out only by `matvec_rows` after `vnni_detected()` confirmed
    // AVX2, FMA, F16C and AVX-VNNI.
    unsafe { avx2::matvec_rows_q4_0_vnni(w, row_bytes, a, y) }
}

fn matvec_rows_q5_0_vnni(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]) {
    debug_assert!(vnni_detected());
    // SAFETY: as `matvec_rows_q4_0_vnni`.
    unsafe { avx2::matvec_rows_q5_0_vnni(w, row_bytes, a, y) }
}

fn q4_0x8_group_vnni(g: &[u8], act: &[u8], prep: &[(i32, f32)], out: &mut [f32; 8]) {
    debug_assert!(vnni_detected());
    // SAFETY: handed out only by `q4_0x8_group` after `vnni_detected()` confirmed
    // AVX2, FMA, F16C and AVX-VNNI.
    unsafe { avx2::q4_0x8_group_vnni(g, act, prep, out) }
}

/// The interleaved-Q4_0 group kernel: AVX-VNNI when there, else AVX2.
pub(super) fn q4_0x8_group() -> crate::repack::GroupFn {
    if vnni_detected() {
        q4_0x8_group_vnni
    } else {
        q4_0x8_group_avx2
    }
}

// Safe wrappers: each is only handed out by the functions below, which
// `super` calls only after `detected()` returned true.
macro_rules! wrap {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        fn $name($($arg: $ty),*) $(-> $ret)? {
            debug_assert!(detected());
            // SAFETY: reachable only through `dequant`/`quant`/`dot`, which hand
            // this function out only when `detected()` confirmed AVX2, FMA and F16C.
            unsafe { avx2::$name($($arg),*) }
        }
    )*};
}

wrap! {
    dequantize_q4_0(x: &[u8], y: &mut [f32]);
    dequantize_q8_0(x: &[u8], y: &mut [f32]);
    dequantize_q4_k(x: &[u8], y: &mut [f32]);
    dequantize_q5_0(x: &[u8], y: &mut [f32]);
    dequantize_q5_k(x: &[u8], y: &mut [f32]);
    dequantize_q6_k(x: &[u8], y: &mut [f32]);
    dequantize_f16(x: &[u8], y: &mut [f32]);
    dequantize_bf16(x: &[u8], y: &mut [f32]);
    dequantize_iq4_nl(x: &[u8], y: &mut [f32]);
    dequantize_iq4_xs(x: &[u8], y: &mut [f32]);
    quantize_f16(x: &[f32], y: &mut [u8]);
    quantize_bf16(x: &[f32], y: &mut [u8]);
    quantize_q8_k(x: &[f32], y: &mut [u8]);
    quantize_q8_1(x: &[f32], y: &mut [u8]);
    quantize_q8_0(x: &[f32], y: &mut [u8]);
    quantize_q4_0(x: &[f32], y: &mut [u8]);
    quantize_q5_0(x: &[f32], y: &mut [u8]);
    vec_dot_f16(w: &[u8], a: &[u8]) -> f32;
    vec_dot_bf16(w: &[u8], a: &[u8]) -> f32;
    quantize_q2_k(x: &[f32], y: &mut [u8]);
    quantize_q4_k(x: &[f32], y: &mut [u8]);
    quantize_q5_k(x: &[f32], y: &mut [u8]);
    quantize_q6_k(x: &[f32], y: &mut [u8]);
    vec_dot_q4_0_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q8_0_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q4_k_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q5_0_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q5_k_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q6_k_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq4_nl_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq4_xs_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q2_k_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q3_k_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_tq2_0_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_tq1_0_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q4_1_q8_1(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q5_1_q8_1(w: &[u8], a: &[u8]) -> f32;
    vec_dot_mxfp4_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_nvfp4_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q1_0_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_q2_0_q8_0(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq2_xxs_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq2_xs_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq2_s_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq3_xxs_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq3_s_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq1_s_q8_k(w: &[u8], a: &[u8]) -> f32;
    vec_dot_iq1_m_q8_k(w: &[u8], a: &[u8]) -> f32;
    matvec_rows_q4_0(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]);
    matvec_rows_q5_0(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]);
    matvec_rows_tq2_0(w: &[u8], row_bytes: usize, a: &[u8], y: &mut [f32]);
    q4_0x8_group_avx2(g: &[u8], act: &[u8], prep: &[(i32, f32)], out: &mut [f32; 8]);
}

fn i2s_abs_lanes(lanes: &mut [f64; 16], w: &[f32]) {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_abs_lanes_fn` after `detected()` confirmed AVX2.
    unsafe { bitnet::abs_lanes16(lanes, w) }
}

fn i2s_pack_x86(s: f32, x: &[f32], out: &mut [u8]) -> u8 {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_pack_fn` after `detected()` confirmed AVX2.
    unsafe { bitnet::pack_i2s_x86(s, x, out) }
}

fn i2s_pack_x86_speculative(
    lanes: &mut [f64; 16],
    band: (f32, f32),
    x: &[f32],
    out: &mut [u8],
    fields: &mut [u8],
) -> u8 {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_pack_speculative_fn` after `detected()` confirmed AVX2.
    unsafe { bitnet::pack_i2s_x86_speculative(lanes, band, x, out, fields) }
}

fn tl1_accumulate(
    bytes: &[u8],
    shape: (usize, usize),
    tiling: (usize, usize, usize, usize),
    tables: (&[[u8; 16]], &[[u8; 16]]),
    tiles: (usize, usize),
    acc: &mut [i32],
) -> bool {
    debug_assert!(detected());
    // SAFETY: handed out only by `tl1_accumulate_fn` after `detected()` confirmed AVX2.
    unsafe { bitnet::tl1_accumulate(bytes, shape, tiling, tables, tiles, acc) }
}

fn tl2_accumulate(
    bytes: &[u8],
    shape: (usize, usize, usize),
    tiling: (usize, usize),
    tri: (&[[u8; 16]], &[[u8; 16]]),
    pair: (&[[u8; 16]], &[[u8; 16]]),
    tiles: (usize, usize),
    acc: &mut [i32],
) -> bool {
    debug_assert!(detected());
    // SAFETY: handed out only by `tl2_accumulate_fn` after `detected()` confirmed AVX2.
    unsafe { bitnet::tl2_accumulate(bytes, shape, tiling, tri, pair, tiles, acc) }
}

/// The AVX2 TL2 lookup-table accumulation (see `bitnet::tl2_accumulate`).
pub(super) fn tl2_accumulate_fn() -> super::Tl2AccFn {
    tl2_accumulate
}

/// The AVX2 TL1 lookup-table accumulation (see `bitnet::tl1_accumulate`).
pub(super) fn tl1_accumulate_fn() -> super::Tl1AccFn {
    tl1_accumulate
}

/// The AVX2 abs-sum over whole 16-element chunks (see `bitnet::abs_lanes16`).
pub(super) fn i2s_abs_lanes_fn() -> super::AbsLanesFn {
    i2s_abs_lanes
}

fn act_absmax(x: &[f32]) -> Option<f32> {
    debug_assert!(detected());
    // SAFETY: handed out only by `act_i8_fns` after `detected()` confirmed AVX2.
    unsafe { bitnet::act_absmax(x) }
}

fn act_quantize_i8(x: &[f32], s: f32, q: &mut [i8]) -> (usize, i64) {
    debug_assert!(detected());
    // SAFETY: as `act_absmax`.
    unsafe { bitnet::act_quantize_i8(x, s, q) }
}

/// The AVX2 passes of BitNet's symmetric int8 activation quantizer.
pub(super) fn act_i8_fns() -> (super::ActAbsMaxFn, super::ActI8Fn) {
    (act_absmax, act_quantize_i8)
}

/// The AVX2 packer of whole 128-element x86-layout blocks.
pub(super) fn i2s_pack_fn() -> super::PackI2sFn {
    i2s_pack_x86
}

fn i2s_pack_x86_speculative_avx512(
    lanes: &mut [f64; 16],
    band: (f32, f32),
    x: &[f32],
    out: &mut [u8],
    fields: &mut [u8],
) -> u8 {
    debug_assert!(avx512_vnni_detected());
    // SAFETY: handed out only by `i2s_pack_speculative_fn` after `avx512_vnni_detected()`
    // confirmed AVX2, AVX-512F/BW/VNNI.
    unsafe { bitnet::pack_i2s_x86_speculative_avx512(lanes, band, x, out, fields) }
}

/// The fused abs-sum and speculative packer (see `bitnet::pack_i2s_x86_speculative`):
/// 512-bit where the AVX-512 I2_S rows kernel runs, AVX2 otherwise.
pub(super) fn i2s_pack_speculative_fn() -> super::PackI2sSpecFn {
    if avx512_vnni_detected() {
        i2s_pack_x86_speculative_avx512
    } else {
        i2s_pack_x86_speculative
    }
}

fn i2s_dot_x86(p: &[u8], a: &[i8]) -> i32 {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_dot`, which `super` calls after `detected()`
    // confirmed AVX2.
    unsafe { bitnet::i2s_dot_x86(p, a) }
}

fn i2s_dot_arm(p: &[u8], a: &[i8]) -> i32 {
    debug_assert!(detected());
    // SAFETY: as for `i2s_dot_x86`.
    unsafe { bitnet::i2s_dot_arm(p, a) }
}

/// The AVX2 4-bit table decoder to f16 (see `prequant::lut4`).
pub(super) fn lut4_f16(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [u16]) {
    debug_assert!(detected());
    // SAFETY: handed out only by `arch::lut4_f16`, after `detected()` confirmed AVX2,
    // FMA and F16C.
    unsafe { prequant::lut4_f16(l, group, mul, add, bytes, out) }
}

/// The AVX2 4-bit table decoder to f32 (see `prequant::lut4`).
pub(super) fn lut4_f32(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [f32]) {
    debug_assert!(detected());
    // SAFETY: handed out only by `arch::lut4_f32`, after `detected()` confirmed AVX2,
    // FMA and F16C.
    unsafe { prequant::lut4_f32(l, group, mul, add, bytes, out) }
}

/// The AVX2 fused 4-bit table decode and dot product (see `prequant::lut4`).
pub(super) fn lut4_dot(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], x: &[f32]) -> f32 {
    debug_assert!(detected());
    // SAFETY: handed out only by `arch::lut4_dot`, after `detected()` confirmed AVX2,
    // FMA and F16C.
    unsafe { prequant::lut4_dot(l, group, mul, add, bytes, x) }
}

fn i2s_rows_x86<const IL: bool>(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_rows` and `i2s_rows_interleaved`, which `super`
    // calls after `detected()` confirmed AVX2.
    unsafe { bitnet::i2s_rows_x86::<IL>(w, row_bytes, a, out) }
}

fn i2s_rows_x86_ternary<const IL: bool>(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    debug_assert!(detected());
    // SAFETY: handed out only by `i2s_rows` and `i2s_rows_interleaved`, which `super`
    // calls after `detected()` confirmed AVX2. (Their callers vouch that the codes are
    // ternary: a code 3 gives a wrong sum, not undefined behaviour.)
    unsafe { bitnet::i2s_rows_x86_ternary::<IL>(w, row_bytes, a, out) }
}

fn i2s_rows_x86_vnni<const IL: bool>(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    debug_assert!(vnni_detected());
    // SAFETY: handed out only by `i2s_rows` and `i2s_rows_interleaved` after
    // `vnni_detected()` confirmed AVX2 and AVX-VNNI.
    unsafe { bitnet::i2s_rows_x86_vnni::<IL>(w, row_bytes, a, out) }
}

fn i2s_rows_x86_avx512(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    debug_assert!(avx512_vnni_detected());
    // SAFETY: handed out only by `i2s_rows` after `avx512_vnni_detected()` confirmed
    // AVX2, AVX-512F/BW and AVX-512 VNNI.
    unsafe { bitnet::i2s_rows_x86_avx512(w, row_bytes, a, out) }
}

/// The rows kernel of the x86 layout: AVX-512 VNNI when there, else AVX-VNNI, else
/// AVX2, with `ternary` (the caller checked that no code is 3) the AVX2 kernel that
/// widens half as often (the Arm layout runs one row at a time).
pub(super) fn i2s_rows(layout: I2sLayout, ternary: bool) -> Option<I2sRowsFn> {
    match layout {
        I2sLayout::X86 if avx512_vnni_detected() => Some(i2s_rows_x86_avx512),
        I2sLayout::X86 if vnni_detected() => Some(i2s_rows_x86_vnni::<false>),
        I2sLayout::X86 if ternary => Some(i2s_rows_x86_ternary::<false>),
        I2sLayout::X86 => Some(i2s_rows_x86::<false>),
        I2sLayout::Arm => None,
    }
}

/// The rows kernel of interleaved x86-layout groups: AVX-VNNI when there, else AVX2
/// (the AVX-512 kernel reads row-major rows only); with `ternary` (the caller
/// checked that no code is 3) the AVX2 kernel that widens half as often.
pub(super) fn i2s_rows_interleaved(ternary: bool) -> I2sRowsFn {
    if vnni_detected() {
        i2s_rows_x86_vnni::<true>
    } else if ternary {
        i2s_rows_x86_ternary::<true>
    } else {
        i2s_rows_x86::<true>
    }
}

pub(super) fn i2s_dot(layout: I2sLayout) -> I2sDotFn {
    match layout {
        I2sLayout::X86 => i2s_dot_x86,
        I2sLayout::Arm => i2s_dot_arm,
    }
}

pub(super) fn dequant(dtype: DType) -> Option<DequantFn> {
    Some(match dtype {
        DType::Q4_0 => dequantize_q4_0,
        DType::Q8_0 => dequantize_q8_0,
        DType::Q4K => dequantize_q4_k,
        DType::Q5_0 => dequantize_q5_0,
        DType::Q5K => dequantize_q5_k,
        DType::Q6K => dequantize_q6_k,
        DType::F16 => dequantize_f16,
        DType::BF16 => dequantize_bf16,
        DType::IQ4NL => dequantize_iq4_nl,
        DType::IQ4XS => dequantize_iq4_xs,
        _ => return None,
    })
}

pub(super) fn quant(dtype: DType) -> Option<QuantFn> {
    Some(match dtype {
        DType::Q8_0 => quantize_q8_0,
        DType::Q4_0 => quantize_q4_0,
        DType::Q5_0 => quantize_q5_0,
        DType::Q2K => quantize_q2_k,
        DType::Q4K => quantize_q4_k,
        DType::Q5K => quantize_q5_k,
        DType::Q6K => quantize_q6_k,
        DType::F16 => quantize_f16,
        DType::BF16 => quantize_bf16,
        DType::Q8K => quantize_q8_k,
        DType::Q8_1 => quantize_q8_1,
        _ => return None,
    })
}

pub(super) fn dot(dtype: DType) -> Option<DotFn> {
    Some(match dtype {
        DType::F16 => vec_dot_f16,
        DType::BF16 => vec_dot_bf16,
        DType::Q4_0 => vec_dot_q4_0_q8_0,
        DType::Q8_0 => vec_dot_q8_0_q8_0,
        DType::Q4K => vec_dot_q4_k_q8_k,
        DType::Q5_0 => vec_dot_q5_0_q8_0,
        DType::Q5K => vec_dot_q5_k_q8_k,
        DType::Q6K => vec_dot_q6_k_q8_k,
        DType::IQ4NL => vec_dot_iq4_nl_q8_0,
        DType::IQ4XS => vec_dot_iq4_xs_q8_k,
        DType::Q2K => vec_dot_q2_k_q8_k,
        DType::Q3K => vec_dot_q3_k_q8_k,
        DType::TQ2_0 => vec_dot_tq2_0_q8_k,
        DType::TQ1_0 => vec_dot_tq1_0_q8_k,
        DType::Q4_1 => vec_dot_q4_1_q8_1,
        DType::Q5_1 => vec_dot_q5_1_q8_1,
        DType::MXFP4 => vec_dot_mxfp4_q8_0,
        DType::NVFP4 => vec_dot_nvfp4_q8_0,
        DType::Q1_0 => vec_dot_q1_0_q8_0,
        DType::Q2_0 => vec_dot_q2_0_q8_0,
        DType::IQ2XXS => vec_dot_iq2_xxs_q8_k,
        DType::IQ2XS => vec_dot_iq2_xs_q8_k,
        DType::IQ2S => vec_dot_iq2_s_q8_k,
        DType::IQ3XXS => vec_dot_iq3_xxs_q8_k,
        DType::IQ3S => vec_dot_iq3_s_q8_k,
        DType::IQ1S => vec_dot_iq1_s_q8_k,
        DType::IQ1M => vec_dot_iq1_m_q8_k,
        _ => return None,
    })
}

/// The several-rows matvec kernel of `dtype`, where one beats a dot product per row
/// (the AVX-VNNI one where the CPU has it: the same bits, fewer instructions).
pub(super) fn matvec_rows(dtype: DType) -> Option<super::RowsFn> {
    let vnni = vnni_detected();
    Some(match dtype {
        DType::Q4_0 if vnni => matvec_rows_q4_0_vnni,
        DType::Q5_0 if vnni => matvec_rows_q5_0_vnni,
        DType::Q4_0 => matvec_rows_q4_0,
        DType::Q5_0 => matvec_rows_q5_0,
        DType::TQ2_0 => matvec_rows_tq2_0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! Every AVX2 kernel against the scalar specification, on random blocks
    //! (any byte pattern, NaN/Inf/subnormal scales included) and every length.
    use super::*;
    use crate::bitnet::i2s::dot_codes_scalar;
    use crate::codec::codec;
    use proptest::prelude::*;

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    fn scalar_dequant(dtype: DType, x: &[u8], n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n];
        crate::codec::scalar_dequantize(dtype, x, &mut y).unwrap();
        y
    }

    #[test]
    fn scalar_half_conversion_is_exact_for_every_bit_pattern() {
        if !detected() {
            return;
        }
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            // SAFETY: AVX2, FMA and F16C were detected above.
            let got = unsafe { avx2::h2f_for_tests(h.to_le_bytes()) };
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}"
            );
        }
    }

    #[test]
    fn bf16_conversions_give_the_scalar_bits_for_every_value() {
        if !detected() {
            return;
        }
        // Every BF16 bit pattern (NaNs quieted as `half` does) …
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|v| v.to_le_bytes()).collect();
        let mut fast = vec![0f32; 1 << 16];
        dequantize_bf16(&bytes, &mut fast);
        let slow = scalar_dequant(DType::BF16, &bytes, 1 << 16);
        assert!(fast.iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits()));
        // … and f32s around every rounding case: ties to even both ways, sticky bits,
        // the largest finite values rounding to infinity, NaN payloads.
        let mut x = vec![];
        for hi in [
            0u32, 0x0001, 0x3f80, 0x3f81, 0x7f7f, 0x7f80, 0x7f81, 0x7fc0, 0x8000, 0xbf80, 0xff7f, 0xff80, 0xffc1,
        ] {
            for lo in [0u32, 1, 0x7fff, 0x8000, 0x8001, 0xffff] {
                x.push(f32::from_bits(hi << 16 | lo));
            }
        }
        let (mut fast, mut slow) = (vec![0u8; 2 * x.len()], vec![0u8; 2 * x.len()]);
        quantize_bf16(&x, &mut fast);
        crate::codec::scalar_quantize(DType::BF16, &x, &mut slow).unwrap();
        assert_eq!(fast, slow);
    }

    #[test]
    fn ksign_bytes_match_the_table() {
        for (i, &k) in crate::ggml::iq_grids::KSIGNS_IQ2XS.iter().enumerate() {
            let want: [u8; 8] = std::array::from_fn(|j| if k & (1 << j) != 0 { 0xff } else { 0x01 });
            assert_eq!(avx2::KSIGN_BYTES[i].to_le_bytes(), want, "{i}");
        }
    }

    proptest! {
        #[test]
        fn rows_kernels_give_the_bits_of_the_dot_product(rows in 0usize..11, blocks in 1usize..20, seed in any::<u64>()) {
            if !detected() { return Ok(()); }
            // Both kernels of each type (the AVX-VNNI one where this CPU has it).
            // `raw`: activation blocks of random bytes (any quant, any group sum) with
            // a finite scale, for the kernels that are exact on any bytes.
            let kernels: [(DType, super::super::RowsFn, bool, bool); 6] = [
                (DType::Q4_0, matvec_rows_q4_0, true, false),
                (DType::Q5_0, matvec_rows_q5_0, true, false),
                (DType::Q4_0, matvec_rows_q4_0_vnni, vnni_detected(), false),
                (DType::Q5_0, matvec_rows_q5_0_vnni, vnni_detected(), false),
                (DType::TQ2_0, matvec_rows_tq2_0, true, false),
                (DType::TQ2_0, matvec_rows_tq2_0, true, true),
            ];
            for (dtype, kernel, _, raw) in kernels.into_iter().filter(|k| k.2) {
                let c = codec(dtype).unwrap();
                let n = blocks * c.block_elems();
                let row_bytes = c.bytes_for(n).unwrap();
                let mut s = seed | 1;
                let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
                let mut w: Vec<u8> = (0..rows * row_bytes).map(|_| next() as u8).collect();
                // The f16 scale: first in Q4_0/Q5_0 blocks, last in TQ2_0's.
                let at = if dtype == DType::TQ2_0 { c.block_bytes() - 2 } else { 0 };
                for b in w.chunks_exact_mut(c.block_bytes()) {
                    b[at..at + 2].copy_from_slice(&half::f16::from_f32(0.01 + (next() % 100) as f32 * 1e-4).to_le_bytes());
                }
                let act_type = c.vec_dot_type().unwrap();
                let act = if raw {
                    let ac = codec(act_type).unwrap();
                    let mut act: Vec<u8> = (0..blocks * ac.block_bytes()).map(|_| next() as u8).collect();
                    for b in act.chunks_exact_mut(ac.block_bytes()) {
                        b[..4].copy_from_slice(&(0.5 + (next() % 100) as f32 * 1e-3).to_le_bytes());
                    }
                    act
                } else {
                    let x: Vec<f32> = (0..n).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
                    crate::kernels::quantize_activations(act_type, &x).unwrap()
                };
                let mut y = vec![f32::NAN; rows];
                kernel(&w, row_bytes, &act, &mut y);
                for (r, got) in y.iter().enumerate() {
                    let want = dot(dtype).unwrap()(&w[r * row_bytes..(r + 1) * row_bytes], &act);
                    prop_assert_eq!(got.to_bits(), want.to_bits(), "{} raw {} row {}: {} vs {}", dtype, raw, r, got, want);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn dequantizers_match_scalar(blocks in 0usize..9, seed in any::<u64>()) {
            if !detected() { return Ok(()); }
            for dtype in [DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4K, DType::Q5K, DType::Q6K, DType::F16, DType::BF16, DType::IQ4NL, DType::IQ4XS] {
                let c = codec(dtype).unwrap();
                let mut s = seed | 1;
                let bytes: Vec<u8> = (0..blocks * c.block_bytes() * if c.block_elems() == 1 { 37 } else { 1 })
                    .map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 })
                    .collect();
                let n = bytes.len() / c.block_bytes() * c.block_elems();
                let mut fast = vec![0f32; n];
                dequant(dtype).unwrap()(&bytes, &mut fast);
                prop_assert!(same(&fast, &scalar_dequant(dtype, &bytes, n)), "{}", dtype);
            }
        }

        #[test]
        fn quantizers_match_scalar(values in prop::collection::vec(prop_oneof![
            4 => -10.0f32..10.0,
            1 => prop::num::f32::ANY,
            1 => Just(0.0f32),
            1 => (-8i32..8).prop_map(|i| i as f32 * 0.5),
            1 => (-8i32..8).prop_map(|i| i as f32 * 1e-40),
        ], 0..700), blocks in 1usize..20) {
            // Up to 19 blocks: Q8_0 takes eight blocks at a time, then the rest one by one.
            if !detected() { return Ok(()); }
            let n = 32 * blocks;
            let x: Vec<f32> = (0..n).map(|i| values.get(i).copied().unwrap_or(i as f32 * 0.01)).collect();
            for dtype in [DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q8_1, DType::F16, DType::BF16] {
                let c = codec(dtype).unwrap();
                let mut fast = vec![0u8; c.bytes_for(n).unwrap()];
                let mut slow = fast.clone();
                quant(dtype).unwrap()(&x, &mut fast);
                crate::codec::scalar_quantize(dtype, &x, &mut slow).unwrap();
                if dtype == DType::F16 {
                    // NaN payloads may differ; positions may not.
                    let f: Vec<f32> = fast.chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
                    let s: Vec<f32> = slow.chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
                    prop_assert!(same(&f, &s));
                } else {
                    prop_assert_eq!(&fast, &slow, "{}", dtype);
                }
            }
        }

        #[test]
        fn float_dot_products_match_scalar(values in prop::collection::vec(-4.0f32..4.0, 0..300)) {
            if !detected() { return Ok(()); }
            for dtype in [DType::F16, DType::BF16] {
                let c = codec(dtype).unwrap();
                let mut w = vec![0u8; c.bytes_for(values.len()).unwrap()];
                c.quantize(&values, values.len().max(1), None, &mut w).ok();
                let rev: Vec<f32> = values.iter().rev().copied().collect();
                let mut a = vec![0u8; w.len()];
                c.quantize(&rev, rev.len().max(1), None, &mut a).ok();
                let fast = dot(dtype).unwrap()(&w, &a);
                let slow = crate::dot::scalar_kernel(dtype).unwrap().1(&w, &a);
                let scale: f32 = values.iter().zip(&rev).map(|(x, y)| (x * y).abs()).sum();
                prop_assert!((fast - slow).abs() <= 1e-5 * scale.max(1.0), "{}: {} vs {}", dtype, fast, slow);
            }
        }

        #[test]
        fn k_quantizers_match_scalar_spec(values in prop::collection::vec(prop_oneof![
            6 => -10.0f32..10.0,
            1 => prop::num::f32::ANY.prop_map(|f| if f.is_nan() { f32::NAN } else { f }),
            1 => Just(0.0f32),
            1 => (-8i32..8).prop_map(|i| i as f32 * 0.5),
            1 => (-10.0f32..10.0).prop_map(|f| f * 1e-20),
            1 => (-10.0f32..10.0).prop_map(|f| f * 1e30),
            1 => prop::sample::select(vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, -0.0]),
        ], 0..600), blocks in 1usize..4, constant in prop::collection::vec(any::<bool>(), 48)) {
            if !detected() { return Ok(()); }
            // Runs of equal values make whole groups constant now and then.
            let n = 256 * blocks;
            let mut x: Vec<f32> = (0..n).map(|i| values.get(i).copied().unwrap_or(i as f32 * 0.01)).collect();
            for (g, c) in constant.iter().enumerate() {
                if *c && 16 * g + 16 <= n {
                    let v = x[16 * g];
                    x[16 * g..16 * g + 16].fill(v);
                }
            }
            type Q = fn(&[f32], &mut [u8]);
            let spec: [(DType, Q); 4] = [
                (DType::Q2K, crate::ggml::quant_k::quantize_q2_k),
                (DType::Q4K, crate::ggml::quant_k::quantize_q4_k),
                (DType::Q5K, crate::ggml::quant_k::quantize_q5_k),
                (DType::Q6K, crate::ggml::quant_k::quantize_q6_k),
            ];
            for (dtype, slow_fn) in spec {
                let c = codec(dtype).unwrap();
                let mut fast = vec![0u8; c.bytes_for(n).unwrap()];
                let mut slow = fast.clone();
                quant(dtype).unwrap()(&x, &mut fast);
                slow_fn(&x, &mut slow);
                prop_assert_eq!(&fast, &slow, "{}", dtype);
            }
        }

        #[test]
        fn dot_products_match_scalar(blocks in 1usize..20, seed in any::<u64>()) {
            if !detected() { return Ok(()); }
            for dtype in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::MXFP4, DType::Q2K, DType::Q3K, DType::Q4K, DType::Q5K, DType::Q6K, DType::IQ4NL, DType::IQ4XS, DType::TQ1_0, DType::TQ2_0, DType::IQ2XXS, DType::IQ2XS, DType::IQ2S, DType::IQ3XXS, DType::IQ3S, DType::IQ1S, DType::IQ1M,
                          DType::NVFP4, DType::Q1_0, DType::Q2_0] {
                let c = codec(dtype).unwrap();
                let n = blocks * 256;
                let mut s = seed | 1;
                let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
                let mut w: Vec<u8> = (0..c.bytes_for(n).unwrap()).map(|_| next() as u8).collect();
                // Sane scales so that the sums are finite and comparable.
                let at: &[usize] = match dtype {
                    DType::Q6K => &[208],
                    DType::Q4K | DType::Q5K | DType::Q4_1 | DType::Q5_1 => &[0, 2],
                    DType::Q2K => &[80, 82],
                    DType::MXFP4 | DType::NVFP4 => &[],
                    DType::Q3K => &[108],
                    DType::TQ2_0 => &[64],
                    DType::TQ1_0 => &[52],
                    DType::IQ1M => &[],
                    _ => &[0],
                };
                for b in w.chunks_exact_mut(c.block_bytes()) {
                    for &o in at {
                        b[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01 + (next() % 100) as f32 * 1e-4).to_le_bytes());
                    }
                    if dtype == DType::MXFP4 {
                        b[0] = 118 + (next() % 16) as u8; // E8M0 exponent: 2^-9 .. 2^6
                    }
                    if dtype == DType::IQ1M {
                        // The f16 scale's nibbles are the high nibbles of scales bytes 1, 3, 5, 7.
                        let h = half::f16::from_f32(0.01 + (next() % 100) as f32 * 1e-4).to_bits();
                        for k in 0..4 {
                            let o = 48 + 2 * k + 1;
                            b[o] = (b[o] & 0x0f) | ((((h >> (4 * k)) & 0xf) as u8) << 4);
                        }
                    }
                }
                let x: Vec<f32> = (0..n).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
                let act = crate::kernels::quantize_activations(c.vec_dot_type().unwrap(), &x).unwrap();
                let fast = dot(dtype).unwrap()(&w, &act);
                let (act_type, spec) = crate::dot::scalar_kernel(dtype).unwrap();
                let slow = spec(&w, &act);
                // The budget scales with Σ|w·a| (block sums cancel; f32 accumulation in
                // another order differs by ulps of the terms, not of the result).
                let wd = scalar_dequant(dtype, &w, n);
                let ad = scalar_dequant(act_type, &act, n);
                let magnitude: f64 = wd.iter().zip(&ad).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                prop_assert!((fast - slow).abs() as f64 <= 1e-6 * magnitude.max(1.0), "{}: {} vs {} (Σ|w·a| {})", dtype, fast, slow, magnitude);
                if matches!(dtype, DType::IQ4XS | DType::Q2K | DType::Q3K | DType::TQ1_0 | DType::TQ2_0 | DType::Q4_1 | DType::Q5_1 | DType::MXFP4
                    | DType::IQ2XXS | DType::IQ2XS | DType::IQ2S | DType::IQ3XXS | DType::IQ3S | DType::IQ1S | DType::IQ1M
                    | DType::NVFP4 | DType::Q1_0 | DType::Q2_0) {
                    // Same integer sums, same accumulation order: the same bits.
                    prop_assert_eq!(fast.to_bits(), slow.to_bits(), "{}", dtype);
                }
            }
        }
    }

    proptest! {
        /// NVFP4, Q1_0 and Q2_0 against Q8_0 activations of raw random bytes (−128
        /// included, which the quantizer never writes and a sign trick would wrap on;
        /// scales of any finite size, so a changed f32 order shows): the same bits.
        #[test]
        fn q8_0_paired_dots_give_scalar_bits_on_raw_activations(blocks in 1usize..12, seed in any::<u64>(), extreme in 0u8..4) {
            if !detected() { return Ok(()); }
            crate::arch::q8_0_paired_checks::assert_raw_bits(dot, blocks, seed, extreme);
        }
    }

    #[test]
    fn nvfp4_dot_gives_scalar_bits_for_every_scale_byte() {
        if detected() {
            crate::arch::q8_0_paired_checks::assert_nvfp4_every_scale_byte(dot(DType::NVFP4).unwrap());
        }
    }

    #[test]
    fn lut4_rounding_matches_half_on_ties_and_edges() {
        if !detected() {
            return;
        }
        // Every high half with low halves around the rounding point: ties, NaNs,
        // infinities, overflow to infinity, subnormals.
        let lows = [0u32, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x0fff, 0x1000, 0x1001, 0x2000];
        let values: Vec<f32> = (0..=0xffffu32)
            .flat_map(|hi| lows.iter().map(move |&lo| f32::from_bits(hi << 16 | lo)))
            .collect();
        for round in 0..3 {
            for chunk in values.chunks_exact(16) {
                let l = lut_of(chunk, round, false, true);
                // SAFETY: AVX2, FMA and F16C were detected above.
                let fast = unsafe { prequant::table_for_tests(&l, 1.0, 0.0) };
                assert!(same(&fast, &l.table(1.0, 0.0)), "{chunk:?}");
            }
        }
    }

    fn any_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            6 => -4.0f32..4.0,
            1 => prop::num::f32::ANY,
            1 => (-8i32..8).prop_map(|i| i as f32 * 1e-40),
            1 => prop::sample::select(vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 65504.0, 65520.0, 3.4e38]),
        ]
    }

    fn lut_of(base: &[f32], round: u8, affine: bool, hi_first: bool) -> Lut4 {
        use crate::prequant::Round;
        Lut4 {
            base: std::array::from_fn(|k| base[k]),
            round: [Round::F16, Round::Bf16, Round::F32][round as usize % 3],
            affine,
            hi_first,
        }
    }

    proptest! {
        #[test]
        fn lut4_tables_match_scalar(base in prop::collection::vec(any_f32(), 16), m in any_f32(), a in any_f32(),
                                    round in 0u8..3, affine in any::<bool>()) {
            if !detected() { return Ok(()); }
            let l = lut_of(&base, round, affine, true);
            // SAFETY: AVX2, FMA and F16C were detected above.
            let fast = unsafe { prequant::table_for_tests(&l, m, a) };
            prop_assert!(same(&fast, &l.table(m, a)), "{:?} vs {:?}", fast, l.table(m, a));
        }

        #[test]
        fn lut4_f16_and_f32_match_scalar(half_group in 1usize..70, groups in 0usize..4, seed in any::<u64>(),
                                   params in prop::collection::vec(any_f32(), 8), round in 0u8..3,
                                   affine in any::<bool>(), hi_first in any::<bool>()) {
            if !detected() { return Ok(()); }
            let group = 2 * half_group;
            let base: Vec<f32> = (0..16).map(|k| (k as f32 - 7.5) * 0.13).collect();
            let l = lut_of(&base, round, affine, hi_first);
            let mut s = seed | 1;
            let bytes: Vec<u8> = (0..groups * group / 2).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 }).collect();
            let mul: Vec<f32> = (0..groups).map(|g| params[g]).collect();
            let add: Vec<f32> = if affine { (0..groups).map(|g| params[4 + g]).collect() } else { vec![] };
            let mut fast = vec![0u16; groups * group];
            let mut slow = fast.clone();
            lut4_f16(&l, group, &mul, &add, &bytes, &mut fast);
            crate::prequant::lut4::groups_to_f16(&l, group, &mul, &add, &bytes, &mut slow);
            let f: Vec<f32> = fast.iter().map(|&h| half::f16::from_bits(h).to_f32()).collect();
            let w: Vec<f32> = slow.iter().map(|&h| half::f16::from_bits(h).to_f32()).collect();
            prop_assert!(same(&f, &w));
            let mut fast = vec![0f32; groups * group];
            let mut slow = fast.clone();
            lut4_f32(&l, group, &mul, &add, &bytes, &mut fast);
            crate::prequant::lut4::groups_to_f32(&l, group, &mul, &add, &bytes, &mut slow);
            prop_assert!(same(&fast, &slow));
        }

        #[test]
        fn lut4_dot_matches_scalar(half_group in 1usize..70, groups in 0usize..4, seed in any::<u64>(),
                                   round in 0u8..3, affine in any::<bool>(), hi_first in any::<bool>()) {
            if !detected() { return Ok(()); }
            let group = 2 * half_group;
            let base: Vec<f32> = (0..16).map(|k| (k as f32 - 7.5) * 0.13).collect();
            let l = lut_of(&base, round, affine, hi_first);
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let bytes: Vec<u8> = (0..groups * group / 2).map(|_| next() as u8).collect();
            let mul: Vec<f32> = (0..groups).map(|_| (next() % 1000) as f32 * 1e-3).collect();
            let add: Vec<f32> = if affine { (0..groups).map(|_| (next() % 1000) as f32 * 1e-3 - 0.5).collect() } else { vec![] };
            let x: Vec<f32> = (0..groups * group).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
            let fast = lut4_dot(&l, group, &mul, &add, &bytes, &x);
            let slow = crate::prequant::lut4::groups_dot(&l, group, &mul, &add, &bytes, &x);
            // Decoded values are identical; only the summation order differs.
            let mut dec = vec![0f32; x.len()];
            for (g, d) in dec.chunks_mut(group.max(1)).enumerate() {
                let t = l.table(mul[g], add.get(g).copied().unwrap_or(0.0));
                for (j, d) in d.iter_mut().enumerate() {
                    *d = t[l.code(&bytes[g * group / 2..], j)];
                }
            }
            let mag: f32 = dec.iter().zip(&x).map(|(w, x)| (w * x).abs()).sum();
            prop_assert!((fast - slow).abs() <= 1e-5 * mag.max(1e-3), "{} vs {}", fast, slow);
        }
    }

    proptest! {
        #[test]
        fn i2s_kernels_match_scalar(blocks in 0usize..40, seed in any::<u64>(), extreme in 0u8..4) {
            if !detected() { return Ok(()); }
            for layout in [I2sLayout::X86, I2sLayout::Arm] {
                let w = layout.block_elems();
                let mut s = seed | 1;
                let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
                let (packed, a): (Vec<u8>, Vec<i8>) = match extreme {
                    // The largest sums: every code 3 with ±127/−128, and code 2 with +127.
                    0 => (vec![0xff; blocks * w / 4], vec![-128; blocks * w]),
                    1 => (vec![0xff; blocks * w / 4], vec![127; blocks * w]),
                    2 => (vec![0xaa; blocks * w / 4], vec![127; blocks * w]),
                    _ => ((0..blocks * w / 4).map(|_| next() as u8).collect(), (0..blocks * w).map(|_| next() as i8).collect()),
                };
                let fast = i2s_dot(layout)(&packed, &a);
                prop_assert_eq!(fast, dot_codes_scalar(layout, &packed, &a), "{:?}", layout);
            }
        }
    }

    proptest! {
        #[test]
        fn q8_k_quantizer_gives_the_scalar_bytes(values in prop::collection::vec(prop_oneof![
            8 => -10.0f32..10.0,
            1 => prop::num::f32::ANY,
            1 => Just(0.0f32),
            1 => (-8i32..8).prop_map(|i| i as f32 * 0.5),
            1 => (-8i32..8).prop_map(|i| i as f32 * 1e-40),
        ], 0..800), blocks in 1usize..4, ties in any::<bool>()) {
            if !detected() { return Ok(()); }
            let n = 256 * blocks;
            let mut x: Vec<f32> = (0..n).map(|i| values.get(i).copied().unwrap_or(i as f32 * 0.01)).collect();
            if ties {
                // Several values share the largest magnitude, with both signs: the
                // first one sets the scale's sign.
                for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| matches!(i % 37, 5 | 6)) {
                    *v = if i % 2 == 0 { 20.0 } else { -20.0 };
                }
            }
            let (mut fast, mut slow) = (vec![0u8; 292 * blocks], vec![0u8; 292 * blocks]);
            quantize_q8_k(&x, &mut fast);
            crate::codec::scalar_quantize(DType::Q8K, &x, &mut slow).unwrap();
            prop_assert_eq!(fast, slow);
        }
    }

    proptest! {
        #[test]
        fn q4_0x8_group_kernels_give_the_scalar_bits(blocks in 1usize..20, seed in any::<u64>(), raw in any::<bool>()) {
            if !detected() { return Ok(()); }
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            // Random bytes throughout (every f16 scale, −128 activations) or real
            // quantized rows and activations.
            let cols = 32 * blocks;
            let (w, act) = if raw {
                ((0..8 * 18 * blocks).map(|_| next() as u8).collect::<Vec<u8>>(), (0..34 * blocks).map(|_| next() as u8).collect::<Vec<u8>>())
            } else {
                let x: Vec<f32> = (0..8 * cols).map(|_| (next() % 20001) as f32 / 1000.0 - 10.0).collect();
                let a: Vec<f32> = (0..cols).map(|_| (next() % 20001) as f32 / 1000.0 - 10.0).collect();
                let c = codec(DType::Q4_0).unwrap();
                let mut w = vec![0u8; 8 * 18 * blocks];
                c.quantize(&x, cols, None, &mut w).unwrap();
                (w, crate::kernels::quantize_activations(DType::Q8_0, &a).unwrap())
            };
            let p = crate::repack::Q4_0x8::new(&w, 8, cols).unwrap();
            let prep: Vec<(i32, f32)> = act.chunks_exact(34).map(|b| {
                (8 * b[2..].iter().map(|&q| q as i8 as i32).sum::<i32>(), crate::ggml::blocks::f16_le([b[0], b[1]]))
            }).collect();
            let mut want = [0f32; 8];
            crate::repack::group_scalar(p.bytes(), &act, &prep, &mut want);
            let mut kernels: Vec<(&str, crate::repack::GroupFn)> = vec![("avx2", q4_0x8_group_avx2)];
            if vnni_detected() {
                kernels.push(("avx-vnni", q4_0x8_group_vnni));
            }
            for (name, k) in kernels {
                let mut out = [f32::NAN; 8];
                k(p.bytes(), &act, &prep, &mut out);
                // Bit for bit; a NaN may carry another payload (F16C's conversion of
                // a NaN scale against `half`'s).
                let bits = |v: [f32; 8]| v.map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() });
                prop_assert_eq!(bits(out), bits(want), "{}", name);
            }
        }
    }

    /// `len` weight bytes and `128 · blocks` activations for the I2_S rows kernels:
    /// the extremes (every code 3 against −128 or +127, every code 2 against +127 or
    /// −128), else random bytes from `seed`.
    fn i2s_rows_inputs(len: usize, blocks: usize, seed: u64, extreme: u8) -> (Vec<u8>, Vec<i8>) {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        match extreme {
            0 => (vec![0xff; len], vec![-128; 128 * blocks]),
            1 => (vec![0xff; len], vec![127; 128 * blocks]),
            2 => (vec![0xaa; len], vec![127; 128 * blocks]),
            3 => (vec![0xaa; len], vec![-128; 128 * blocks]),
            _ => (
                (0..len).map(|_| next() as u8).collect(),
                (0..128 * blocks).map(|_| next() as i8).collect(),
            ),
        }
    }

    /// `w` with every code 3 made 2: the input of the kernels for ternary codes.
    fn ternary_codes(w: &[u8]) -> Vec<u8> {
        w.iter().map(|&b| b & !(b & (b >> 1) & 0x55)).collect()
    }

    proptest! {
        #[test]
        fn i2s_rows_kernels_match_scalar(
            rows in 0usize..10,
            blocks in 0usize..24,
            pad in 0usize..3,
            seed in any::<u64>(),
            extreme in 0u8..5,
        ) {
            if !detected() { return Ok(()); }
            // Rows `32·blocks + 32·pad` bytes apart; the last row ends with its blocks.
            let row_bytes = 32 * (blocks + pad);
            let len = rows.saturating_sub(1) * row_bytes + 32 * blocks;
            let (w, a) = i2s_rows_inputs(len, blocks, seed, extreme);
            let want: Vec<i32> = (0..rows)
                .map(|r| dot_codes_scalar(I2sLayout::X86, &w[r * row_bytes..r * row_bytes + 32 * blocks], &a))
                .collect();
            let mut kernels: Vec<(&str, I2sRowsFn)> = vec![("avx2", i2s_rows_x86::<false>)];
            if vnni_detected() {
                kernels.push(("avx-vnni", i2s_rows_x86_vnni::<false>));
            }
            if avx512_vnni_detected() {
                kernels.push(("avx512-vnni", i2s_rows_x86_avx512));
            }
            for (name, k) in kernels {
                let mut out = vec![i32::MIN; rows];
                k(&w, row_bytes, &a, &mut out);
                prop_assert_eq!(&out, &want, "{}", name);
            }
            let w = ternary_codes(&w);
            prop_assert!(crate::bitnet::i2s::codes_are_ternary(&w));
            let want: Vec<i32> = (0..rows)
                .map(|r| dot_codes_scalar(I2sLayout::X86, &w[r * row_bytes..r * row_bytes + 32 * blocks], &a))
                .collect();
            let mut out = vec![i32::MIN; rows];
            i2s_rows_x86_ternary::<false>(&w, row_bytes, &a, &mut out);
            prop_assert_eq!(&out, &want, "avx2 ternary");
        }
    }

    proptest! {
        #[test]
        fn i2s_interleaved_kernels_match_scalar(
            groups in 0usize..5,
            blocks in 0usize..24,
            pad in 0usize..3,
            seed in any::<u64>(),
            extreme in 0u8..5,
        ) {
            if !detected() { return Ok(()); }
            // Groups of four rows `32·blocks + 32·pad` bytes each, the blocks first.
            let (rows, row_bytes) = (4 * groups, 32 * (blocks + pad));
            let (w, a) = i2s_rows_inputs(rows * row_bytes, blocks, seed, extreme);
            let mut want = vec![0i32; rows];
            crate::repack::rows_interleaved_scalar(&w, row_bytes, &a, &mut want);
            let mut kernels: Vec<(&str, I2sRowsFn)> = vec![("avx2", i2s_rows_x86::<true>)];
            if vnni_detected() {
                kernels.push(("avx-vnni", i2s_rows_x86_vnni::<true>));
            }
            for (name, k) in kernels {
                let mut out = vec![i32::MIN; rows];
                k(&w, row_bytes, &a, &mut out);
                prop_assert_eq!(&out, &want, "{}", name);
            }
            let w = ternary_codes(&w);
            let mut want = vec![0i32; rows];
            crate::repack::rows_interleaved_scalar(&w, row_bytes, &a, &mut want);
            let mut out = vec![i32::MIN; rows];
            i2s_rows_x86_ternary::<true>(&w, row_bytes, &a, &mut out);
            prop_assert_eq!(&out, &want, "avx2 ternary");
        }
    }

    proptest! {
        #[test]
        fn i2s_pack_and_abs_lanes_match_scalar(seed in any::<u64>(), blocks in 1usize..8, s in 0.1f32..100.0) {
            if !detected() { return Ok(()); }
            let mut st = seed | 1;
            let mut next = || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
            let n = blocks * 128;
            let x: Vec<f32> = (0..n).map(|i| match next() % 16 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => -f32::INFINITY,
                3 => 0.5 / s,            // exactly on the threshold (after rounding)
                4 => -0.5 / s,
                5 => -0.0,
                _ => ((next() % 20001) as f32 / 10000.0 - 1.0) * (1 + i % 3) as f32 / s,
            }).collect();
            // Packing: every byte as the scalar rule gives it.
            let mut fast = vec![0u8; n / 4];
            let any = bitnet_pack(s, &x, &mut fast);
            let code = |v: f32| { let t = v * s; (1 + (t > 0.5) as i8 - (t < -0.5) as i8) as u8 };
            let mut want = vec![0u8; n / 4];
            for (xb, ob) in x.chunks_exact(128).zip(want.chunks_exact_mut(32)) {
                for b in 0..32 {
                    ob[b] = code(xb[b]) << 6 | code(xb[b + 32]) << 4 | code(xb[b + 64]) << 2 | code(xb[b + 96]);
                }
            }
            prop_assert_eq!(&fast, &want);
            prop_assert_eq!(any != 0, want.iter().any(|&b| b != 0x55));
            // Abs lanes: the same f64 bits.
            let mut lanes = [0.25f64; 16];
            let mut slow = lanes;
            abs_lanes(&mut lanes, &x);
            for c in x.chunks_exact(16) {
                for j in 0..16 { slow[j] += c[j].abs() as f64; }
            }
            for j in 0..16 {
                prop_assert!(lanes[j].to_bits() == slow[j].to_bits() || (lanes[j].is_nan() && slow[j].is_nan()));
            }
        }
    }

    proptest! {
        /// Both fused speculative kernels against the scalar rules: the f64 lanes of
        /// `abs_lanes16`, the code where both ends of the band agree (0 elsewhere), and
        /// a field of 1 exactly where they do not.
        #[test]
        fn i2s_speculative_kernels_match_scalar(seed in any::<u64>(), blocks in 1usize..6, s in 0.5f32..100.0, widen in 1.0f32..1.1) {
            if !detected() { return Ok(()); }
            let (s_lo, s_hi) = (s, s * widen);
            let mut st = seed | 1;
            let mut next = || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
            let n = blocks * 128;
            let x: Vec<f32> = (0..n).map(|_| match next() % 12 {
                0 => f32::NAN,
                1 => -f32::INFINITY,
                2 => 0.5 / s_lo,
                3 => -0.5 / s_hi,
                4 => -0.0,
                _ => ((next() % 20001) as f32 / 10000.0 - 1.0) / s,
            }).collect();
            let code = |v: f32, s: f32| { let t = v * s; (t > 0.5) as i8 - (t < -0.5) as i8 };
            let (mut want, mut want_fields) = (vec![0u8; n / 4], vec![0u8; n / 4]);
            for (i, &v) in x.iter().enumerate() {
                let (lo, hi) = (code(v, s_lo), code(v, s_hi));
                let (byte, shift) = (i / 128 * 32 + i % 32, 6 - 2 * (i % 128 / 32));
                want[byte] |= (((if lo == hi { lo } else { 0 }) + 1) as u8) << shift;
                want_fields[byte] |= ((lo != hi) as u8) << shift;
            }
            let mut slow = [0.125f64; 16];
            for c in x.chunks_exact(16) {
                for j in 0..16 { slow[j] += c[j].abs() as f64; }
            }
            let mut kernels: Vec<(&str, super::super::PackI2sSpecFn)> = vec![("avx2", i2s_pack_x86_speculative)];
            if avx512_vnni_detected() {
                kernels.push(("avx512", i2s_pack_x86_speculative_avx512));
            }
            for (name, k) in kernels {
                let (mut out, mut fields, mut lanes) = (vec![0xa5u8; n / 4], vec![0xa5u8; n / 4], [0.125f64; 16]);
                let any = k(&mut lanes, (s_lo, s_hi), &x, &mut out, &mut fields);
                prop_assert_eq!(&out, &want, "{}", name);
                prop_assert_eq!(&fields, &want_fields, "{}", name);
                prop_assert_eq!(any != 0, want.iter().any(|&b| b != 0x55), "{}", name);
                for j in 0..16 {
                    prop_assert!(lanes[j].to_bits() == slow[j].to_bits() || (lanes[j].is_nan() && slow[j].is_nan()), "{}", name);
                }
            }
        }
    }

    fn bitnet_pack(s: f32, x: &[f32], out: &mut [u8]) -> u8 {
        super::i2s_pack_fn()(s, x, out)
    }

    fn abs_lanes(lanes: &mut [f64; 16], x: &[f32]) {
        super::i2s_abs_lanes_fn()(lanes, x)
    }
}
