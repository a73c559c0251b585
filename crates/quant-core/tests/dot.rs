//! Dot products against f32, with ggml's error budgets (tests/test-quantize-fns.cpp):
//! |vec_dot(quantize(a), quantize_act(b)) − a·b| / n below 0.02, 0.04 for the
//! low-bit types, 0.03 for NVFP4, 0.15 for the ternary ones and 0.40 for the
//! binary Q1_0.

use qload_dtype::DType;
use qload_quant_core::{codec, codecs, kernels};

fn synthetic(n: usize, offset: f32) -> Vec<f32> {
    (0..n).map(|i| 0.1 + 2.0 * (i as f32 + offset).cos()).collect()
}

fn budget(t: DType) -> f32 {
    kernels::dot_error_budget(t)
}

#[test]
fn every_dot_product_is_within_ggmls_budget() {
    let n = 256 * 32;
    let (a, b) = (synthetic(n, 0.0), synthetic(n, 1.0));
    let reference: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let mut checked = 0;
    for c in codecs() {
        let Some(act_type) = c.vec_dot_type() else { continue };
        if !c.can_quantize() {
            continue;
        }
        let mut w = vec![0u8; c.bytes_for(n).unwrap()];
        c.quantize(&a, n, None, &mut w).unwrap();
        let act = kernels::quantize_activations(act_type, &b).unwrap();
        let got = c.vec_dot(&w, &act).unwrap();
        let err = (got - reference).abs() / n as f32;
        assert!(
            err < budget(c.dtype()),
            "{}: error {err} (got {got}, f32 {reference})",
            c.dtype()
        );
        checked += 1;
    }
    assert_eq!(checked, 21, "dot products checked");
}

#[test]
fn matvec_equals_row_dot_products_for_any_thread_count() {
    let (rows, cols) = (37, 512);
    let x = synthetic(cols, 3.0);
    for t in [
        DType::Q4_0,
        DType::Q8_0,
        DType::Q4K,
        DType::Q6K,
        DType::Q5_1,
        DType::TQ2_0,
    ] {
        let c = codec(t).unwrap();
        if !c.can_quantize() {
            continue;
        }
        let weights: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut w = vec![0u8; c.bytes_for(rows * cols).unwrap()];
        c.quantize(&weights, cols, None, &mut w).unwrap();
        let act = kernels::quantize_activations(c.vec_dot_type().unwrap(), &x).unwrap();
        let row_bytes = w.len() / rows;
        let expected: Vec<f32> = w.chunks_exact(row_bytes).map(|r| c.vec_dot(r, &act).unwrap()).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![0f32; rows];
            pool.install(|| kernels::matvec(t, &w, rows, cols, &x, &mut y)).unwrap();
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{t} with {threads} threads"
            );
        }
    }
}

#[test]
fn matvec_checks_its_lengths() {
    let mut y = [0f32; 2];
    assert!(kernels::matvec(DType::Q8_0, &[0u8; 34], 2, 32, &[0.0; 32], &mut y).is_err());
    assert!(kernels::matvec(DType::Q8_0, &[0u8; 68], 2, 32, &[0.0; 31], &mut y).is_err());
    assert!(kernels::matvec(DType::F64, &[0u8; 16], 2, 1, &[0.0; 1], &mut y).is_err());
}

/// Byte offsets of the f16 scales of each block type, set to sane values so that
/// random blocks have finite products.
fn scale_offsets(t: DType) -> &'static [usize] {
    match t {
        DType::Q4_0
        | DType::Q5_0
        | DType::Q8_0
        | DType::IQ4NL
        | DType::IQ4XS
        | DType::IQ2XXS
        | DType::IQ2XS
        | DType::IQ2S
        | DType::IQ3XXS
        | DType::IQ3S
        | DType::IQ1S
        | DType::Q1_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
        DType::TQ1_0 => &[52],
        DType::TQ2_0 => &[64],
        _ => &[],
    }
}

/// The integer kernels against f64 sums of the dequantized operands, on random
/// blocks: independent of the quantizers, so every weight type is covered.
#[test]
fn dot_products_equal_the_dequantized_sum_on_random_blocks() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = 256 * 8;
    let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    let mut checked = 0;
    for c in codecs() {
        let Some(act_type) = c.vec_dot_type() else { continue };
        if !c.can_dequantize() || c.block_elems() == 1 {
            continue;
        }
        let mut w: Vec<u8> = (0..c.bytes_for(n).unwrap()).map(|_| next() as u8).collect();
        for block in w.chunks_exact_mut(c.block_bytes()) {
            for &at in scale_offsets(c.dtype()) {
                let scale = half::f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5);
                block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
            }
            if c.dtype() == DType::MXFP4 {
                block[0] = 110 + (next() % 16) as u8; // E8M0 exponent near 2^-10
            }
            if c.dtype() == DType::IQ1M {
                // The f16 scale is the top nibbles of the four u16 words of `scales`.
                let scale = half::f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5).to_bits();
                for k in 0..4 {
                    let hi = &mut block[48 + 2 * k + 1];
                    *hi = (*hi & 0x0f) | ((((scale >> (4 * k)) & 0xf) as u8) << 4);
                }
            }
        }
        let act = kernels::quantize_activations(act_type, &x).unwrap();
        let mut wf = vec![0f32; n];
        c.dequantize(&w, &mut wf).unwrap();
        let mut af = vec![0f32; n];
        codec(act_type).unwrap().dequantize(&act, &mut af).unwrap();
        let exact: f64 = wf.iter().zip(&af).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = wf.iter().zip(&af).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
        let got = c.vec_dot(&w, &act).unwrap();
        assert!(
            (got as f64 - exact).abs() <= 1e-4 * scale + 1e-6,
            "{}: {got} vs {exact} (scale {scale})",
            c.dtype()
        );
        // matvec quantizes `x` the same way and runs the same kernel on its one row.
        let mut y = [0f32; 1];
        kernels::matvec(c.dtype(), &w, 1, n, &x, &mut y).unwrap();
        assert_eq!(y[0].to_bits(), got.to_bits(), "{}: matvec", c.dtype());
        checked += 1;
    }
    assert_eq!(checked, 25, "weight types covered");
}
