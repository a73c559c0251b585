//! BitNet: ternary weights through every layout and back, and the integer
//! kernels against the integer reference.

use proptest::prelude::*;
use qload_dtype::DType;
use qload_quant_core::bitnet::{BitnetError, act, i2s, i2s::I2sLayout, measure, ternary, tl, tq};
use qload_quant_core::codec;

const LAYOUTS: [I2sLayout; 2] = [I2sLayout::X86, I2sLayout::Arm];

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn random_codes(n: usize, seed: u64) -> Vec<i8> {
    let mut next = rng(seed);
    (0..n).map(|_| (next() % 3) as i8 - 1).collect()
}

fn random_acts(n: usize, seed: u64) -> Vec<i8> {
    let mut next = rng(seed);
    (0..n).map(|_| next() as i8).collect()
}

fn reference(codes: &[i8], rows: usize, cols: usize, q: &[i8]) -> Vec<i64> {
    (0..rows)
        .map(|r| {
            codes[r * cols..(r + 1) * cols]
                .iter()
                .zip(q)
                .map(|(&w, &a)| w as i64 * a as i64)
                .sum()
        })
        .collect()
}

fn i2s_bytes(codes: &[i8], scale: f32, layout: I2sLayout) -> Vec<u8> {
    let mut out = vec![0u8; i2s::tensor_bytes(codes.len()).unwrap()];
    i2s::encode(codes, scale, layout, &mut out).unwrap();
    out
}

#[test]
fn ternary_weights_round_trip_through_i2s() {
    for layout in LAYOUTS {
        for n in [0usize, 4, 60, 64, 128, 132, 1000, 4096, 3200 * 3] {
            let codes = random_codes(n, n as u64 + 7);
            let bytes = i2s_bytes(&codes, 0.25, layout);
            assert_eq!(bytes.len(), n / 4 + 32);
            let t = i2s::I2sRef::new(&bytes, n, layout).unwrap();
            let mut back = vec![0i8; n];
            t.decode(&mut back).unwrap();
            assert_eq!(back, codes, "{layout:?} n={n}");
            let mut f = vec![0f32; n];
            t.dequantize(&mut f).unwrap();
            assert!(f.iter().zip(&codes).all(|(&v, &c)| v == c as f32 * 0.25));
            assert_eq!(t.scale(), 0.25);
        }
    }
}

#[test]
fn quantize_is_absmean_then_pack() {
    let (rows, cols) = (8, 384);
    let mut next = rng(3);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let (codes, a) = ternary::absmean(&w);
    for layout in LAYOUTS {
        let bytes = i2s::quantize(&w, layout).unwrap();
        assert_eq!(bytes, i2s_bytes(&codes, a.scale, layout));
        // bitnet.cpp's two steps: ternarize to ±1/s, then quantize_i2_s.
        let pre: Vec<f32> = codes.iter().map(|&c| c as f32 / a.s).collect();
        assert_eq!(i2s::quantize_prequantized(&pre, layout).unwrap(), bytes);
    }
}

#[test]
fn the_wrap_case_is_exact() {
    // All weights +1, all activations +127, n = 4096: bitnet.cpp's AVX2 kernel
    // accumulates 32 blocks in i16 lanes and wraps here.
    // Five rows: one group of the four-row kernel and one row on its own.
    let n = 4096;
    for layout in LAYOUTS {
        let bytes = i2s_bytes(&vec![1i8; 5 * n], 1.0, layout);
        let t = i2s::I2sRef::new(&bytes, 5 * n, layout).unwrap();
        for v in [127i8, -128] {
            let mut out = [0i64; 5];
            i2s::matvec_int(&t, 5, n, &vec![v; n], &mut out).unwrap();
            assert_eq!(out, [v as i64 * n as i64; 5]);
        }
        // Code 3 everywhere (value +2): the largest codes a byte can hold, also over
        // the most columns one kernel call takes.
        for n in [n, i2s::MAX_KERNEL_ELEMS] {
            let threes = vec![0xffu8; 5 * n / 4 + 32];
            let t = i2s::I2sRef::new(&threes, 5 * n, layout).unwrap();
            for v in [127i8, -128] {
                let mut out = [0i64; 5];
                i2s::matvec_int(&t, 5, n, &vec![v; n], &mut out).unwrap();
                assert_eq!(out, [2 * v as i64 * n as i64; 5]);
            }
        }
    }
}

/// `i2s::matvec_int` of random ternary codes and activations (from `seed`) equals the
/// integer reference, with the codes unchecked and checked ternary (the kernel with
/// the larger i16 budget).
fn assert_matvec_int_exact(layout: I2sLayout, rows: usize, cols: usize, seed: u64) {
    let codes = random_codes(rows * cols, seed);
    let q = random_acts(cols, seed + 1);
    let bytes = i2s_bytes(&codes, 1.0, layout);
    let t = i2s::I2sRef::new(&bytes, rows * cols, layout).unwrap();
    for t in [t, t.check_codes()] {
        let mut out = vec![0i64; rows];
        i2s::matvec_int(&t, rows, cols, &q, &mut out).unwrap();
        assert_eq!(
            out,
            reference(&codes, rows, cols, &q),
            "{layout:?} {rows}×{cols} {}",
            t.has_ternary_codes()
        );
    }
}

#[test]
fn rows_that_straddle_blocks_are_exact() {
    for layout in LAYOUTS {
        // Phases (r · cols mod 128) of period 2 (8640, BitNet-3B), 4 (96, 8640 + 32),
        // 16 (1000) and 32 (100, 4), and rows that end in the tensor's short last block.
        for (rows, cols) in [
            (7, 3200),
            (5, 1000),
            (9, 100),
            (3, 4),
            (33, 96),
            (19, 8640),
            (21, 8672),
            (37, 8644),
        ] {
            assert_matvec_int_exact(layout, rows, cols, 11);
        }
    }
}

#[test]
fn whole_block_rows_are_exact() {
    // Row lengths that are multiples of the block run several rows per kernel call;
    // 65 536 + 256 columns take two calls per row (the i32 budget of one call).
    for layout in LAYOUTS {
        for (rows, cols) in [(9, 128), (7, 2560), (17, 384), (5, (1 << 16) + 256)] {
            assert_matvec_int_exact(layout, rows, cols, 21);
        }
    }
}

#[test]
fn extreme_ternary_rows_are_exact() {
    // Every weight +1 against every activation −128 or +127, rows that straddle
    // blocks and whole-block rows: the i16 sums of the ternary kernel at their bound.
    for (rows, cols) in [(19, 8640), (21, 8672), (9, 4096), (8, 2560)] {
        let codes = vec![1i8; rows * cols];
        for layout in LAYOUTS {
            let bytes = i2s_bytes(&codes, 1.0, layout);
            let t = i2s::I2sRef::new(&bytes, rows * cols, layout).unwrap().check_codes();
            assert!(t.has_ternary_codes());
            for v in [-128i8, 127] {
                let mut out = vec![0i64; rows];
                i2s::matvec_int(&t, rows, cols, &vec![v; cols], &mut out).unwrap();
                assert_eq!(out, vec![v as i64 * cols as i64; rows], "{layout:?} {rows}×{cols} {v}");
            }
        }
    }
    // A code 3 is found, and the tensor keeps the general kernel.
    let mut bytes = i2s_bytes(&vec![0i8; 512], 1.0, i2s::I2sLayout::X86);
    bytes[77] |= 3;
    let t = i2s::I2sRef::new(&bytes, 512, i2s::I2sLayout::X86).unwrap();
    assert!(!t.check_codes().has_ternary_codes());
}

#[test]
fn matvec_is_close_to_f32_on_ternary_weights() {
    let (rows, cols) = (64, 3200);
    let mut next = rng(5);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let x: Vec<f32> = (0..cols).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
    let (codes, a) = ternary::absmean(&w);
    let want: Vec<f32> = (0..rows)
        .map(|r| (0..cols).map(|c| codes[r * cols + c] as f32 * a.scale * x[c]).sum())
        .collect();
    for layout in LAYOUTS {
        let bytes = i2s::quantize(&w, layout).unwrap();
        let t = i2s::I2sRef::new(&bytes, rows * cols, layout).unwrap();
        let mut y = vec![0f32; rows];
        i2s::matvec_f32(&t, rows, cols, &x, &mut y).unwrap();
        let s = measure::compare(&want, &y).unwrap();
        assert!(s.cosine >= 0.9999, "{layout:?}: cosine {}", s.cosine);
        // Asymmetric activations go through the zero-point correction.
        let cfg = act::ActConfig {
            mode: act::ActMode::Asymmetric,
            ..Default::default()
        };
        let qa = act::quantize_row(&x, &cfg);
        i2s::matvec(&t, rows, cols, &qa, &mut y).unwrap();
        let s = measure::compare(&want, &y).unwrap();
        assert!(s.cosine >= 0.9999, "{layout:?} asymmetric: cosine {}", s.cosine);
    }
}

fn ggml_quantize(dtype: DType, x: &[f32], cols: usize) -> Vec<u8> {
    let c = codec(dtype).unwrap();
    let mut out = vec![0u8; c.bytes_for(x.len()).unwrap()];
    c.quantize(x, cols, None, &mut out).unwrap();
    out
}

#[test]
fn tq_and_i2s_convert_losslessly() {
    let (rows, cols) = (3, 512);
    let scale = half::f16::from_f32(0.0123).to_f32();
    let mut codes = random_codes(rows * cols, 21);
    codes[256..512].fill(0); // a block of zeros (ggml writes d = 0 for it)
    let x: Vec<f32> = codes.iter().map(|&c| c as f32 * scale).collect();
    for dtype in [DType::TQ1_0, DType::TQ2_0] {
        let tq_bytes = ggml_quantize(dtype, &x, cols);
        for layout in LAYOUTS {
            let i2 = match dtype {
                DType::TQ1_0 => tq::tq1_0_to_i2s(&tq_bytes, layout),
                _ => tq::tq2_0_to_i2s(&tq_bytes, layout),
            }
            .unwrap();
            assert_eq!(i2, i2s_bytes(&codes, scale, layout), "{dtype} → I2_S {layout:?}");
            let t = i2s::I2sRef::new(&i2, codes.len(), layout).unwrap();
            let back = match dtype {
                DType::TQ1_0 => tq::i2s_to_tq1_0(&t, tq::ScalePolicy::Exact),
                _ => tq::i2s_to_tq2_0(&t, tq::ScalePolicy::Exact),
            }
            .unwrap();
            assert_eq!(back, tq_bytes, "I2_S {layout:?} → {dtype}");
        }
    }
}

#[test]
fn tq_conversions_refuse_what_they_cannot_hold() {
    let mut x = vec![0.5f32; 512];
    x[300] = 0.25;
    x[256..300].fill(-0.25);
    x[301..].fill(0.0);
    let tq2 = ggml_quantize(DType::TQ2_0, &x, 512);
    assert!(matches!(
        tq::tq2_0_to_i2s(&tq2, I2sLayout::X86),
        Err(BitnetError::ScaleMismatch { block: 1, .. })
    ));
    assert!(tq::tq2_0_to_i2s(&tq2[..65], I2sLayout::X86).is_err());
    let codes = random_codes(256, 3);
    let bytes = i2s_bytes(&codes, 0.1, I2sLayout::X86);
    let t = i2s::I2sRef::new(&bytes, 256, I2sLayout::X86).unwrap();
    assert_eq!(
        tq::i2s_to_tq2_0(&t, tq::ScalePolicy::Exact),
        Err(BitnetError::ScaleNotRepresentable { scale: 0.1 })
    );
    let rounded = tq::i2s_to_tq2_0(&t, tq::ScalePolicy::RoundToF16).unwrap();
    let x: Vec<f32> = codes
        .iter()
        .map(|&c| c as f32 * half::f16::from_f32(0.1).to_f32())
        .collect();
    assert_eq!(rounded, ggml_quantize(DType::TQ2_0, &x, 256));
    let threes = vec![0xffu8; 64 + 32];
    let t = i2s::I2sRef::new(&threes, 256, I2sLayout::X86).unwrap();
    assert!(matches!(
        tq::i2s_to_tq1_0(&t, tq::ScalePolicy::RoundToF16),
        Err(BitnetError::BadCode { index: 0, code: 2 })
    ));
    // TQ2_0 holds code 3: I2_S → TQ2_0 → I2_S keeps every byte.
    let tq2 = tq::i2s_to_tq2_0(&t, tq::ScalePolicy::RoundToF16).unwrap();
    assert_eq!(&tq::tq2_0_to_i2s(&tq2, I2sLayout::X86).unwrap()[..64], &threes[..64]);
    let short = i2s::I2sRef::new(&bytes[..36], 128, I2sLayout::X86).unwrap();
    assert!(matches!(
        tq::i2s_to_tq2_0(&short, tq::ScalePolicy::RoundToF16),
        Err(BitnetError::Shape { .. })
    ));
}

#[test]
fn ternary_weights_round_trip_through_tl1_and_tl2_presets() {
    use tl::{TlKind, TlParams};
    for (kind, (m, k)) in [
        (TlKind::Tl1, (1536, 1536)),
        (TlKind::Tl1, (3200, 3200)),
        (TlKind::Tl2, (1536, 4096)),
        (TlKind::Tl2, (3200, 3200)),
    ] {
        let p = TlParams::preset(kind, m, k).unwrap();
        let codes = random_codes(m * k, (m + k) as u64);
        let (bytes, back) = match kind {
            TlKind::Tl1 => {
                let b = tl::tl1_pack(&codes, m, k, &p).unwrap();
                assert_eq!(b.len(), m * k / 4);
                let back = tl::tl1_unpack(&b, m, k, &p).unwrap();
                (b, back)
            }
            TlKind::Tl2 => {
                let b = tl::tl2_pack(&codes, m, k, &p).unwrap();
                assert_eq!(b.len(), tl::tl2_bytes(m, k, p));
                let back = tl::tl2_unpack(&b, m, k, &p).unwrap();
                (b, back)
            }
        };
        assert_eq!(back, codes, "{kind:?} {m}×{k}");
        let q = random_acts(k, 9);
        let mut out = vec![0i64; m];
        match kind {
            TlKind::Tl1 => tl::tl1_matvec_int(&bytes, m, k, &p, &q, &mut out).unwrap(),
            TlKind::Tl2 => tl::tl2_matvec_int(&bytes, m, k, &p, &q, &mut out).unwrap(),
        }
        assert_eq!(out, reference(&codes, m, k, &q), "{kind:?} {m}×{k} matvec");
    }
}

/// FNV-1a (64-bit) of a byte string: a compact fingerprint for golden outputs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Golden vectors from bitnet.cpp's converter (`utils/convert-hf-to-gguf-bitnet.py`,
/// `preprocess_weights_tl1`/`preprocess_weights_tl2` with the presets'
/// `kernel_config.ini` values), run on 2026-12-02 on these exact codes
/// (`random_codes(m·k, 131·m + k)`) times 0.37: the converter's byte length (its
/// zero padding included) and the FNV-1a of its bytes. The run also compared every
/// byte of all 16 LARGE/3B/8B-preset shapes; the script stays outside the repository.
#[test]
fn tl_packing_matches_bitnet_cpp_converter_output() {
    let golden: [(tl::TlKind, usize, usize, usize, u64); 5] = [
        (tl::TlKind::Tl1, 1536, 1536, 589_824, 0xf6eb_c156_cd0b_e3c8),
        (tl::TlKind::Tl1, 3200, 3200, 2_560_000, 0x9891_fcb8_3955_b2fe),
        (tl::TlKind::Tl2, 1536, 1536, 507_904, 0xef29_f1f6_7fe6_6a61),
        // 3200 columns: a 32-column pair-coded remainder after 3168 triple columns.
        (tl::TlKind::Tl2, 3200, 3200, 2_167_466, 0x23cb_3b8a_3d9a_0974),
        (tl::TlKind::Tl2, 4096, 1536, 1_354_410, 0x1ecf_ed05_255d_6637),
    ];
    for (kind, m, k, len, hash) in golden {
        let codes = random_codes(m * k, (131 * m + k) as u64);
        let p = tl::TlParams::preset(kind, m, k).expect("a bitnet.cpp preset");
        let bytes = match kind {
            tl::TlKind::Tl1 => tl::tl1_pack(&codes, m, k, &p),
            tl::TlKind::Tl2 => tl::tl2_pack(&codes, m, k, &p),
        }
        .unwrap();
        assert_eq!(bytes.len(), len, "{kind:?} {m}x{k}");
        assert_eq!(fnv1a(&bytes), hash, "{kind:?} {m}x{k}");
    }
}

#[test]
fn tl_refuses_bad_shapes_and_nibbles() {
    use tl::{TlKind, TlParams};
    let p = TlParams {
        bm_tile: 32,
        bk: 8,
        bm: 32,
    };
    assert!(matches!(
        tl::tl1_pack(&[0; 32 * 12], 32, 12, &p),
        Err(BitnetError::Param { .. })
    ));
    assert!(matches!(
        tl::tl1_pack(&[0; 10], 32, 8, &p),
        Err(BitnetError::Length { .. })
    ));
    assert!(matches!(
        TlParams::general(TlKind::Tl1, 33, 8),
        Err(BitnetError::Shape { .. })
    ));
    let bad = vec![0xffu8; 64];
    assert!(matches!(
        tl::tl1_unpack(&bad, 32, 8, &p),
        Err(BitnetError::BadCode { .. })
    ));
    assert!(matches!(
        tl::tl1_unpack(&bad[..10], 32, 8, &p),
        Err(BitnetError::Length { .. })
    ));
    let p2 = TlParams::general(TlKind::Tl2, 32, 24).unwrap();
    let bad = vec![0xeeu8; tl::tl2_bytes(32, 24, p2)];
    assert!(matches!(
        tl::tl2_unpack(&bad, 32, 24, &p2),
        Err(BitnetError::BadCode { .. })
    ));
    let mut out = vec![0i64; 32];
    assert!(tl::tl2_matvec_int(&bad, 32, 24, &p2, &[0; 24], &mut out).is_err());
}

#[test]
fn tl_quantize_uses_absmean() {
    // 256 columns: TL2 has triple columns and a pair remainder; 3200 × 3200 is a
    // preset shape (TL2's 32-column remainder there too).
    for (m, k) in [(64, 256), (3200, 3200)] {
        let mut next = rng(8);
        let w: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        let (codes, a) = ternary::absmean(&w);
        for kind in [tl::TlKind::Tl1, tl::TlKind::Tl2] {
            let (bytes, scale, p) = tl::quantize(&w, m, k, kind).unwrap();
            assert_eq!(scale, a.scale);
            // quantize() packs row by row without a code array: the same bytes as the
            // packers given the codes.
            let (packed, back) = match kind {
                tl::TlKind::Tl1 => (tl::tl1_pack(&codes, m, k, &p), tl::tl1_unpack(&bytes, m, k, &p)),
                tl::TlKind::Tl2 => (tl::tl2_pack(&codes, m, k, &p), tl::tl2_unpack(&bytes, m, k, &p)),
            };
            assert!(packed.unwrap() == bytes, "{kind:?} {m} x {k}");
            assert!(back.unwrap() == codes, "{kind:?} {m} x {k}");
        }
    }
}

proptest! {
    #[test]
    fn tl_matvec_equals_the_integer_reference(mt in 1usize..4, kt in 1usize..12, seed in any::<u64>(), bm64 in any::<bool>()) {
        use tl::{TlKind, TlParams};
        let m = 32 * mt;
        for kind in [TlKind::Tl1, TlKind::Tl2] {
            let k = match kind { TlKind::Tl1 => 8 * kt, TlKind::Tl2 => 32 * kt };
            let mut p = TlParams::general(kind, m, k).unwrap();
            if kind == TlKind::Tl1 && bm64 && m % 64 == 0 && k % 4 == 0 {
                p = TlParams { bm_tile: m, bk: k, bm: 64 };
            }
            let codes = random_codes(m * k, seed);
            let q = random_acts(k, seed ^ 77);
            let mut out = vec![0i64; m];
            match kind {
                TlKind::Tl1 => {
                    let b = tl::tl1_pack(&codes, m, k, &p).unwrap();
                    prop_assert_eq!(&tl::tl1_unpack(&b, m, k, &p).unwrap(), &codes);
                    tl::tl1_matvec_int(&b, m, k, &p, &q, &mut out).unwrap();
                }
                TlKind::Tl2 => {
                    let b = tl::tl2_pack(&codes, m, k, &p).unwrap();
                    prop_assert_eq!(&tl::tl2_unpack(&b, m, k, &p).unwrap(), &codes);
                    tl::tl2_matvec_int(&b, m, k, &p, &q, &mut out).unwrap();
                }
            }
            prop_assert_eq!(out, reference(&codes, m, k, &q));
        }
    }

    #[test]
    fn matvec_int_equals_the_integer_reference(
        rows in 1usize..6,
        cols in 1usize..700,
        seed in any::<u64>(),
        threes in any::<bool>(),
    ) {
        // I2_S needs a multiple of 4 elements: fix the shape up instead of rejecting it
        // (odd row lengths stay covered through 4-row matrices).
        let rows = if (rows * cols) % 4 == 0 { rows } else { 4 };
        for layout in LAYOUTS {
            let codes = random_codes(rows * cols, seed);
            let q = random_acts(cols, seed ^ 0x9e37);
            let mut bytes = i2s_bytes(&codes, 1.0, layout);
            let t0 = i2s::I2sRef::new(&bytes, rows * cols, layout).unwrap();
            let mut values = vec![0i8; rows * cols];
            t0.decode(&mut values).unwrap();
            if threes {
                // Arbitrary bytes: code 3 decodes (and multiplies) as +2.
                let mut next = rng(seed);
                for b in &mut bytes[..rows * cols / 4] {
                    *b = next() as u8;
                }
            }
            let t = i2s::I2sRef::new(&bytes, rows * cols, layout).unwrap();
            t.decode(&mut values).unwrap();
            let mut out = vec![0i64; rows];
            i2s::matvec_int(&t, rows, cols, &q, &mut out).unwrap();
            prop_assert_eq!(out, reference(&values, rows, cols, &q));
        }
    }
}

fn random_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut next = rng(seed);
    (0..n)
        .map(|i| {
            let v = (next() % 20001) as f32 / 10000.0 - 1.0;
            // A few outliers, so that clipping changes the scale.
            if i % 97 == 0 { v * 40.0 } else { v }
        })
        .collect()
}

#[test]
fn grouped_ternary_packs_into_tq_blocks() {
    use ternary::{Granularity, TernaryConfig};
    let (rows, cols) = (3, 768);
    let w = random_weights(rows * cols, 5);
    for granularity in [
        Granularity::PerTensor,
        Granularity::PerRow,
        Granularity::PerGroup { size: 256 },
        Granularity::PerGroup { size: 512 },
    ] {
        for clip in [None, Some(2.5)] {
            let t = ternary::ternarize(&w, rows, cols, &TernaryConfig { granularity, clip }).unwrap();
            for dtype in [DType::TQ1_0, DType::TQ2_0] {
                let c = codec(dtype).unwrap();
                let mut bytes = vec![0u8; c.bytes_for(w.len()).unwrap()];
                tq::from_ternary(&t, dtype, &mut bytes).unwrap();
                let mut back = vec![0f32; w.len()];
                c.dequantize(&bytes, &mut back).unwrap();
                for r in 0..rows {
                    for col in 0..cols {
                        let i = r * cols + col;
                        let s = half::f16::from_f32(t.scales[t.scale_index(r, col)]).to_f32();
                        let block = &t.codes[i / 256 * 256..][..256];
                        let want = if block.iter().all(|&q| q == 0) {
                            0.0
                        } else {
                            t.codes[i] as f32 * s
                        };
                        assert_eq!(back[i], want, "{dtype} {granularity:?} clip {clip:?} at {i}");
                    }
                }
            }
        }
    }
    let g128 = ternary::ternarize(
        &w,
        rows,
        cols,
        &TernaryConfig {
            granularity: Granularity::PerGroup { size: 128 },
            clip: None,
        },
    )
    .unwrap();
    let mut out = vec![0u8; rows * cols / 256 * 66];
    assert!(matches!(
        tq::from_ternary(&g128, DType::TQ2_0, &mut out),
        Err(BitnetError::Param { .. })
    ));
    let short = ternary::ternarize(&w[..300], 1, 300, &TernaryConfig::default()).unwrap();
    assert!(matches!(
        tq::from_ternary(&short, DType::TQ2_0, &mut out),
        Err(BitnetError::Shape { .. })
    ));
    assert!(matches!(
        tq::from_ternary(&t_default(&w, rows, cols), DType::Q4_0, &mut out),
        Err(BitnetError::Param { .. })
    ));
}

fn t_default(w: &[f32], rows: usize, cols: usize) -> ternary::Ternary {
    ternary::ternarize(w, rows, cols, &ternary::TernaryConfig::default()).unwrap()
}

#[test]
fn the_i2s_stream_clips_like_the_whole_tensor() {
    use ternary::{Granularity, TernaryConfig};
    for &n in &[4096usize, 3200, 256 * 9 + 12] {
        let w = random_weights(n, n as u64);
        for clip in [1.5f32, 3.0] {
            let cfg = TernaryConfig {
                granularity: Granularity::PerTensor,
                clip: Some(clip),
            };
            let t = ternary::ternarize(&w, 1, n, &cfg).unwrap();
            assert!(t.scales[0] < ternary::Absmean::of(&w).scale, "outliers clipped");
            let want = i2s_bytes(&t.codes, t.scales[0], I2sLayout::X86);
            let mut stream = i2s::I2sStream::new(n, I2sLayout::X86).unwrap();
            for c in w.chunks(512) {
                stream.add_to_mean(c);
            }
            stream.absmean();
            stream.clip(clip);
            for c in w.chunks(1024) {
                stream.add_to_mean(c);
            }
            assert_eq!(stream.absmean().scale, t.scales[0]);
            let mut got = vec![0u8; want.len()];
            let mut any = false;
            for (k, c) in w.chunks(1024).enumerate() {
                any |= stream.pack(k * 1024, c, &mut got[k * 256..k * 256 + c.len() / 4]);
            }
            stream.finish(any, &mut got).unwrap();
            assert_eq!(got, want, "n {n} clip {clip}");
        }
    }
}

proptest! {
    /// The SIMD TL1 path (`tl1_matvec_int`, `pshufb` tables where the CPU has them)
    /// against the scalar specification: extreme activations (all −128 or +127 with all
    /// codes ±1), presets and general tilings, and bytes with invalid nibbles (both refuse).
    #[test]
    fn tl1_simd_matches_the_scalar_spec(mt in 1usize..5, kt in 1usize..20, seed in any::<u64>(), extreme in 0u8..4, preset in any::<bool>()) {
        use tl::{TlKind, TlParams};
        let (m, k) = if preset { (3200, 8640) } else { (32 * mt, 8 * kt) };
        if preset && seed % 8 != 0 {
            return Ok(()); // the large preset shape now and then only
        }
        let p = TlParams::for_shape(TlKind::Tl1, m, k).unwrap();
        let (codes, q): (Vec<i8>, Vec<i8>) = match extreme {
            0 => (vec![1; m * k], vec![127; k]),
            1 => (vec![-1; m * k], vec![-128; k]),
            _ => (random_codes(m * k, seed), random_acts(k, seed ^ 5)),
        };
        let mut b = tl::tl1_pack(&codes, m, k, &p).unwrap();
        let (mut fast, mut slow) = (vec![0i64; m], vec![0i64; m]);
        tl::tl1_matvec_int(&b, m, k, &p, &q, &mut fast).unwrap();
        tl::tl1_matvec_int_scalar(&b, m, k, &p, &q, &mut slow).unwrap();
        prop_assert_eq!(&fast, &slow);
        if extreme == 3 {
            let at = (seed as usize) % b.len();
            b[at] |= 0xf0; // nibble 15
            let e1 = tl::tl1_matvec_int(&b, m, k, &p, &q, &mut fast).unwrap_err();
            let e2 = tl::tl1_matvec_int_scalar(&b, m, k, &p, &q, &mut slow).unwrap_err();
            prop_assert_eq!(e1.to_string(), e2.to_string());
        }
    }
}

proptest! {
    /// The SIMD TL2 path (`tl2_matvec_int`) against the scalar specification: extreme
    /// activations with all codes ±1 (the i16 spans at their widest), presets, general
    /// tilings, wide `BK` (more than eight 24-column sign groups per tile), pair-coded
    /// remainders, and bytes with out-of-range nibbles (both refuse alike).
    #[test]
    fn tl2_simd_matches_the_scalar_spec(
        mt in 1usize..5,
        groups in 1usize..12,
        tiles in 0usize..3,
        rest in 0usize..3,
        seed in any::<u64>(),
        extreme in 0u8..4,
        shape in 0u8..3,
    ) {
        use tl::{TlKind, TlParams};
        let (m, k, p) = match shape {
            0 if seed % 8 == 0 => (1536, 1536, TlParams::preset(TlKind::Tl2, 1536, 1536).unwrap()),
            1 => {
                let bk = 24 * groups;
                let k = bk * tiles + 32 * rest;
                if k == 0 || 32 * rest >= bk {
                    return Ok(());
                }
                (32 * mt, k, TlParams { bm_tile: 32 * mt, bk, bm: 32 })
            }
            _ => {
                let k = 24 * groups + 32 * rest;
                match TlParams::general(TlKind::Tl2, 32 * mt, k) {
                    Ok(p) => (32 * mt, k, p),
                    Err(_) => return Ok(()),
                }
            }
        };
        let (codes, q): (Vec<i8>, Vec<i8>) = match extreme {
            0 => (vec![1; m * k], vec![127; k]),
            1 => (vec![-1; m * k], vec![-128; k]),
            _ => (random_codes(m * k, seed), random_acts(k, seed ^ 5)),
        };
        let mut b = tl::tl2_pack(&codes, m, k, &p).unwrap();
        let (mut fast, mut slow) = (vec![0i64; m], vec![0i64; m]);
        tl::tl2_matvec_int(&b, m, k, &p, &q, &mut fast).unwrap();
        tl::tl2_matvec_int_scalar(&b, m, k, &p, &q, &mut slow).unwrap();
        prop_assert_eq!(&fast, &slow);
        let want: Vec<i64> = codes
            .chunks(k)
            .map(|r| r.iter().zip(&q).map(|(&w, &a)| w as i64 * a as i64).sum())
            .collect();
        prop_assert_eq!(&fast, &want);
        if extreme == 3 {
            let at = (seed as usize) % b.len();
            b[at] |= 0xf0; // nibble 15: out of range for triples and pairs alike
            let e1 = tl::tl2_matvec_int(&b, m, k, &p, &q, &mut fast);
            let e2 = tl::tl2_matvec_int_scalar(&b, m, k, &p, &q, &mut slow);
            prop_assert_eq!(e1.map_err(|e| e.to_string()), e2.map_err(|e| e.to_string()));
        }
    }
}
