//! aarch64: NEON kernels (NEON is part of the aarch64 baseline, so detection
//! only honours `QLOAD_NO_SIMD`).

use crate::bitnet::i2s::{I2sDotFn, I2sLayout};
use crate::codec::{DequantFn, DotFn, QuantFn};
use qload_dtype::DType;
use std::sync::OnceLock;

mod bitnet;
mod neon;

/// Whether the NEON kernels are used (always, unless `QLOAD_NO_SIMD=1`).
pub(super) fn detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::env::var_os("QLOAD_NO_SIMD").is_none_or(|v| v.is_empty() || v == "0")
            && std::arch::is_aarch64_feature_detected!("neon")
    })
}

pub(super) fn i2s_dot(layout: I2sLayout) -> I2sDotFn {
    match layout {
        I2sLayout::X86 => bitnet::i2s_dot_x86,
        I2sLayout::Arm => bitnet::i2s_dot_arm,
    }
}

/// The NEON passes of BitNet's symmetric int8 activation quantizer.
pub(super) fn act_i8_fns() -> (super::ActAbsMaxFn, super::ActI8Fn) {
    (bitnet::act_absmax, bitnet::act_quantize_i8)
}

fn tl1_accumulate(
    bytes: &[u8],
    shape: (usize, usize),
    tiling: (usize, usize, usize, usize),
    tables: (&[[u8; 16]], &[[u8; 16]]),
    tiles: (usize, usize),
    acc: &mut [i32],
) -> bool {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { bitnet::tl1_accumulate(bytes, shape, tiling, tables, tiles, acc) }
}

/// The NEON TL1 lookup-table accumulation (see `bitnet::tl1_accumulate`).
pub(super) fn tl1_accumulate_fn() -> super::Tl1AccFn {
    tl1_accumulate
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
    // SAFETY: NEON is baseline on aarch64.
    unsafe { bitnet::tl2_accumulate(bytes, shape, tiling, tri, pair, tiles, acc) }
}

/// The NEON TL2 lookup-table accumulation (see `bitnet::tl2_accumulate`).
pub(super) fn tl2_accumulate_fn() -> super::Tl2AccFn {
    tl2_accumulate
}

/// The NEON activation quantizers (Q8_0, Q8_1, Q8_K), byte for byte the scalar code.
pub(super) fn quant(dtype: DType) -> Option<QuantFn> {
    Some(match dtype {
        DType::Q8_0 => neon::quantize_q8_0,
        DType::Q8_1 => neon::quantize_q8_1,
        DType::Q8K => neon::quantize_q8_k,
        _ => return None,
    })
}

pub(super) fn dequant(dtype: DType) -> Option<DequantFn> {
    Some(match dtype {
        DType::Q4_0 => neon::dequantize_q4_0,
        DType::Q8_0 => neon::dequantize_q8_0,
        DType::Q4_1 => neon::dequantize_q4_1,
        DType::Q5_0 => neon::dequantize_q5_0,
        DType::Q5_1 => neon::dequantize_q5_1,
        DType::Q4K => neon::dequantize_q4_k,
        DType::Q5K => neon::dequantize_q5_k,
        DType::F16 => neon::dequantize_f16,
        DType::BF16 => neon::dequantize_bf16,
        DType::Q6K => neon::dequantize_q6_k,
        DType::IQ4NL => neon::dequantize_iq4_nl,
        DType::IQ4XS => neon::dequantize_iq4_xs,
        _ => return None,
    })
}

pub(super) fn dot(dtype: DType) -> Option<DotFn> {
    Some(match dtype {
        DType::F16 => neon::vec_dot_f16,
        DType::BF16 => neon::vec_dot_bf16,
        DType::Q4_0 => neon::vec_dot_q4_0_q8_0,
        DType::Q8_0 => neon::vec_dot_q8_0_q8_0,
        DType::Q4K => neon::vec_dot_q4_k_q8_k,
        DType::Q5_0 => neon::vec_dot_q5_0_q8_0,
        DType::Q5K => neon::vec_dot_q5_k_q8_k,
        DType::Q6K => neon::vec_dot_q6_k_q8_k,
        DType::IQ4NL => neon::vec_dot_iq4_nl_q8_0,
        DType::IQ4XS => neon::vec_dot_iq4_xs_q8_k,
        DType::Q2K => neon::vec_dot_q2_k_q8_k,
        DType::Q3K => neon::vec_dot_q3_k_q8_k,
        DType::TQ1_0 => neon::vec_dot_tq1_0_q8_k,
        DType::TQ2_0 => neon::vec_dot_tq2_0_q8_k,
        DType::Q4_1 => neon::vec_dot_q4_1_q8_1,
        DType::Q5_1 => neon::vec_dot_q5_1_q8_1,
        DType::MXFP4 => neon::vec_dot_mxfp4_q8_0,
        DType::NVFP4 => neon::vec_dot_nvfp4_q8_0,
        DType::Q1_0 => neon::vec_dot_q1_0_q8_0,
        DType::Q2_0 => neon::vec_dot_q2_0_q8_0,
        DType::IQ2XXS => neon::vec_dot_iq2_xxs_q8_k,
        DType::IQ2XS => neon::vec_dot_iq2_xs_q8_k,
        DType::IQ2S => neon::vec_dot_iq2_s_q8_k,
        DType::IQ3XXS => neon::vec_dot_iq3_xxs_q8_k,
        DType::IQ3S => neon::vec_dot_iq3_s_q8_k,
        DType::IQ1S => neon::vec_dot_iq1_s_q8_k,
        DType::IQ1M => neon::vec_dot_iq1_m_q8_k,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! Every NEON kernel against the scalar specification on random blocks.
    use super::*;
    use crate::bitnet::i2s::dot_codes_scalar;
    use crate::codec::codec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn activation_quantizers_match_scalar(values in prop::collection::vec(prop_oneof![
            8 => -10.0f32..10.0,
            1 => prop::num::f32::ANY,
            1 => Just(0.0f32),
            1 => (-8i32..8).prop_map(|i| i as f32 * 0.5),
            1 => (-8i32..8).prop_map(|i| i as f32 * 1e-40),
        ], 0..600), blocks in 1usize..3, ties in any::<bool>()) {
            let n = 256 * blocks;
            let mut x: Vec<f32> = (0..n).map(|i| values.get(i).copied().unwrap_or(i as f32 * 0.01)).collect();
            if ties {
                // The largest magnitude held by neighbours of both signs (Q8_K keeps the first).
                for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| matches!(i % 37, 5 | 6)) {
                    *v = if i % 2 == 0 { 20.0 } else { -20.0 };
                }
            }
            for dtype in [DType::Q8_0, DType::Q8_1, DType::Q8K] {
                let c = codec(dtype).unwrap();
                let (mut fast, mut slow) = (vec![0u8; c.bytes_for(n).unwrap()], vec![0u8; c.bytes_for(n).unwrap()]);
                quant(dtype).unwrap()(&x, &mut fast);
                crate::codec::scalar_quantize(dtype, &x, &mut slow).unwrap();
                prop_assert_eq!(&fast, &slow, "{}", dtype);
            }
        }

        #[test]
        fn dequantizers_match_scalar(blocks in 0usize..9, seed in any::<u64>()) {
            for dtype in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4K, DType::Q5K, DType::Q6K,
                          DType::F16, DType::BF16, DType::IQ4NL, DType::IQ4XS] {
                let c = codec(dtype).unwrap();
                let mut s = seed | 1;
                // One-element types (F16, BF16) get 37 per "block": whole vectors and a tail.
                let bytes: Vec<u8> = (0..blocks * c.block_bytes() * if c.block_elems() == 1 { 37 } else { 1 })
                    .map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 })
                    .collect();
                let n = bytes.len() / c.block_bytes() * c.block_elems();
                let (mut fast, mut slow) = (vec![0f32; n], vec![0f32; n]);
                dequant(dtype).unwrap()(&bytes, &mut fast);
                crate::codec::scalar_dequantize(dtype, &bytes, &mut slow).unwrap();
                prop_assert!(fast.iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())), "{}", dtype);
            }
        }

        #[test]
        fn dot_products_match_scalar(blocks in 1usize..20, seed in any::<u64>()) {
            for dtype in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::MXFP4, DType::Q2K, DType::Q3K, DType::Q4K, DType::Q5K, DType::Q6K, DType::IQ4NL, DType::IQ4XS, DType::TQ1_0, DType::TQ2_0,
                          DType::IQ2XXS, DType::IQ2XS, DType::IQ2S, DType::IQ3XXS, DType::IQ3S, DType::IQ1S, DType::IQ1M,
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
                    DType::TQ1_0 => &[52],
                    DType::TQ2_0 => &[64],
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
                let (act_type, spec) = crate::dot::scalar_kernel(dtype).unwrap();
                let act = crate::kernels::quantize_activations(act_type, &x).unwrap();
                let fast = dot(dtype).unwrap()(&w, &act);
                let slow = spec(&w, &act);
                if matches!(dtype, DType::Q4_0 | DType::Q8_0) {
                    // Lanes accumulate in another order: a budget in ulps of Σ|w·a|.
                    let (mut wd, mut ad) = (vec![0f32; n], vec![0f32; n]);
                    crate::codec::scalar_dequantize(dtype, &w, &mut wd).unwrap();
                    crate::codec::scalar_dequantize(act_type, &act, &mut ad).unwrap();
                    let magnitude: f64 = wd.iter().zip(&ad).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                    prop_assert!((fast - slow).abs() as f64 <= 1e-6 * magnitude.max(1.0), "{}: {} vs {}", dtype, fast, slow);
                } else {
                    // Same integer sums and the scalar's f32 operations: the same bits.
                    prop_assert_eq!(fast.to_bits(), slow.to_bits(), "{}: {} vs {}", dtype, fast, slow);
                }
            }
        }
    }

    proptest! {
        /// NVFP4, Q1_0 and Q2_0 against Q8_0 activations of raw random bytes (−128
        /// included, which the quantizer never writes; scales of any finite size, so a
        /// changed f32 order shows): the same bits.
        #[test]
        fn q8_0_paired_dots_give_scalar_bits_on_raw_activations(blocks in 1usize..12, seed in any::<u64>(), extreme in 0u8..4) {
            crate::arch::q8_0_paired_checks::assert_raw_bits(dot, blocks, seed, extreme);
        }
    }

    #[test]
    fn nvfp4_dot_gives_scalar_bits_for_every_scale_byte() {
        crate::arch::q8_0_paired_checks::assert_nvfp4_every_scale_byte(dot(DType::NVFP4).unwrap());
    }

    proptest! {
        #[test]
        fn float_dot_products_match_scalar(values in prop::collection::vec(-4.0f32..4.0, 0..300)) {
            // The scalar code sums in f64, the kernels in f32 lanes: the AVX2 test's budget.
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
    }

    proptest! {
        #[test]
        fn i2s_kernels_match_scalar(blocks in 0usize..40, seed in any::<u64>(), extreme in 0u8..4) {

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
}
