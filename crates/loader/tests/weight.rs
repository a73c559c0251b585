//! The `Weight` abstraction: one `matvec`/`dequantize` over float, ggml, ternary and
//! pre-quantized storage, agreeing with an f64 product of its own dequantized values and
//! giving the same bits whatever the thread count.

use std::path::{Path, PathBuf};

use qload_loader::policy::Policy;
use qload_loader::{Loader, WeightKind};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn check(model: &qload_loader::LoadedModel, expect_kind: &[WeightKind], tol: f64) -> usize {
    let mut n = 0;
    for w in model.weights() {
        assert!(expect_kind.contains(&w.kind()), "{}: {:?}", w.name(), w.kind());
        let dense = w.to_f32().unwrap();
        let x: Vec<f32> = (0..w.cols()).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
        let mut y = vec![0f32; w.rows()];
        w.matvec(&x, &mut y).unwrap();
        let want: Vec<f64> = dense
            .chunks_exact(w.cols())
            .map(|r| r.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum())
            .collect();
        let err: f64 = want
            .iter()
            .zip(&y)
            .map(|(a, &b)| (a - b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = want.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        assert!(
            err / norm <= tol,
            "{} ({:?}, {}): relative error {}",
            w.name(),
            w.kind(),
            w.dtype(),
            err / norm
        );
        // The same bits on one thread and on two.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut y1 = vec![0f32; w.rows()];
        one.install(|| w.matvec(&x, &mut y1)).unwrap();
        assert_eq!(
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{}",
            w.name()
        );
        // matmul = one matvec per activation row.
        let xx: Vec<f32> = x.iter().chain(x.iter()).copied().collect();
        let mut yy = vec![0f32; 2 * w.rows()];
        w.matmul(&xx, &mut yy).unwrap();
        assert_eq!(&yy[..w.rows()], &y[..]);
        assert_eq!(&yy[w.rows()..], &y[..]);
        n += 1;
    }
    n
}

#[test]
fn every_storage_kind_multiplies_like_its_dequantized_values() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let (m, _) = Loader::new(&path).load().unwrap();
    assert_eq!(check(&m, &[WeightKind::Float], 1e-3), 16);
    // Q8_K/Q8_0 activations: a few parts in a thousand.
    let (m, _) = Loader::new(&path)
        .quantize(Policy::parse("q4_k_m").unwrap())
        .load()
        .unwrap();
    assert_eq!(check(&m, &[WeightKind::Ggml], 2e-2), 16);
    // BitNet keeps the embedding and head in f16; int8 per-token activations.
    let (m, _) = Loader::new(&path)
        .quantize(Policy::parse("i2_s").unwrap())
        .load()
        .unwrap();
    assert_eq!(check(&m, &[WeightKind::Ternary, WeightKind::Float], 2e-2), 16);
    // Pre-quantized weights kept native (f32 activations).
    for dir in ["bnb-nf4-dq", "mlx-4bit", "hqq-4bit", "quanto-qint4", "bnb-int8"] {
        let (m, _) = Loader::new(fixture(&format!("hf/{dir}"))).load().unwrap();
        assert_eq!(check(&m, &[WeightKind::Prequantized], 1e-4), 1, "{dir}");
    }
}
