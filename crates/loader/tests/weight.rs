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

/// `Loader::repack` on the fixture quantized by `policy`: the matrices of `dtype`
/// interleaved multiply like their dequantized values, agree with the row-major load
/// (bit for bit when `exact`, else within float reordering), and give back the same
/// bytes and values. Returns how many were interleaved (0 where this CPU has no
/// interleaved kernel for them, which the report says).
fn repacked_match_the_row_major(policy: &str, dtype: qload_formats::DType, fast: bool, exact: bool) -> usize {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let load = |repack| {
        Loader::new(&path)
            .quantize(Policy::parse(policy).unwrap())
            .repack(repack)
            .load()
            .unwrap()
    };
    let (plain, _) = load(false);
    let (packed, report) = load(true);
    let note = report
        .notes
        .iter()
        .find(|n| n.starts_with("repack: ") && n.contains(&format!(" {dtype} ")))
        .expect("a repack note");
    if !fast {
        // No interleaved kernel here (aarch64, QLOAD_NO_SIMD=1): said, and left row-major.
        assert!(note.contains("kept row-major"), "{note}");
        return 0;
    }
    let interleaved: usize = note["repack: ".len()..].split(' ').next().unwrap().parse().unwrap();
    let kinds = [WeightKind::Ggml, WeightKind::Ternary, WeightKind::Float];
    assert_eq!(check(&packed, &kinds, 2e-2), 16);
    let mut seen = 0;
    for w in packed.weights() {
        let p = plain.weight(w.name()).unwrap();
        assert_eq!(w.byte_size(), p.byte_size());
        assert_eq!(w.to_f32().unwrap(), p.to_f32().unwrap(), "{}", w.name());
        let t = packed.tensor(w.name()).unwrap();
        assert_eq!(
            packed.bytes(t),
            plain.bytes(plain.tensor(w.name()).unwrap()),
            "{}",
            w.name()
        );
        if w.dtype() == dtype {
            seen += 1;
            assert!(!t.is_mapped());
            let x: Vec<f32> = (0..w.cols()).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
            let (mut a, mut b) = (vec![0f32; w.rows()], vec![0f32; w.rows()]);
            w.matvec(&x, &mut a).unwrap();
            p.matvec(&x, &mut b).unwrap();
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                let tol = if exact { 0.0 } else { 1e-4 * b.abs().max(1.0) };
                assert!((a - b).abs() <= tol, "{} row {i}: {a} vs {b}", w.name());
            }
        }
    }
    assert_eq!(seen, interleaved);
    interleaved
}

/// Q4_0 matrices interleaved eight rows at a time (the scalar dot product's bits,
/// against row-major SIMD within float reordering).
#[test]
fn repacked_q4_0_weights_match_the_row_major_ones() {
    let fast = qload_quant_core::repack::q4_0x8_is_fast();
    let n = repacked_match_the_row_major("q4_0", qload_formats::DType::Q4_0, fast, false);
    assert!(!fast || n >= 8, "{n}");
}

/// I2_S matrices interleaved four rows at a time: the row-major results bit for bit
/// (both exact integer sums, then the same two float operations).
#[test]
fn repacked_i2_s_weights_match_the_row_major_ones() {
    let fast = qload_quant_core::repack::i2s_x4_is_fast();
    let n = repacked_match_the_row_major("i2_s", qload_formats::DType::I2S, fast, true);
    assert!(!fast || n >= 8, "{n}");
}

/// bitnet.cpp's TL1/TL2 tensors (ids 38/39) are `Weight`s too: decoded through the
/// tiling bitnet.cpp uses for the shape (its preset, else qload's general one) with the
/// scale from the `<name>_scale` tensor or the 32-byte area after the packed bytes, and
/// multiplied by the lookup-table kernels' scalar specification with int8 activations.
#[test]
fn tl1_and_tl2_tensors_are_weights() {
    use qload_formats::DType;
    use qload_formats::gguf::{GgufWriter, Value};
    use qload_quant_core::bitnet::{act, tl};
    let (m, k) = (64usize, 288usize);
    let w: Vec<f32> = (0..m * k)
        .map(|i| (((i * 7919) % 1013) as f32 / 506.0 - 1.0) * 0.02)
        .collect();
    let (b1, s1, p1) = tl::quantize(&w, m, k, tl::TlKind::Tl1).unwrap();
    let (b2, s2, p2) = tl::quantize(&w, m, k, tl::TlKind::Tl2).unwrap();
    let shape = [m as u64, k as u64];
    // (name, dtype, packed bytes, scale in the tail, scale in a sibling tensor)
    let tensors = [
        ("blk.0.attn_q.weight", DType::TL1, &b1, Some(s1), None),
        ("blk.0.ffn_up.weight", DType::TL2, &b2, Some(s2), None),
        ("blk.0.ffn_gate.weight", DType::TL2, &b2, None, Some(s2)),
    ];
    let mut g = GgufWriter::new().flavor(qload_formats::GgmlFlavor::Bitnet);
    g.set("general.architecture", Value::String("bitnet".into())).unwrap();
    let mut data: Vec<Vec<u8>> = Vec::new();
    for (name, dtype, bytes, tail, sibling) in &tensors {
        g.add_tensor(name, *dtype, &shape).unwrap();
        let n = dtype.nbytes(&shape).unwrap() as usize;
        let mut d = bytes.to_vec();
        assert!(d.len() <= n - 32, "{name}: {} packed bytes, {n} in the file", d.len());
        d.resize(n - 32, 0);
        d.extend_from_slice(&tail.unwrap_or(0.0).to_le_bytes());
        d.resize(n, 0);
        data.push(d);
        if let Some(s) = sibling {
            g.add_tensor(&format!("{name}_scale"), DType::F32, &[1]).unwrap();
            data.push(s.to_le_bytes().to_vec());
        }
    }
    let path = std::env::temp_dir().join(format!("qload-tl-{}.gguf", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    g.write(&mut f, |i, out| out.write_all(&data[i])).unwrap();
    drop(f);
    let (model, _) = Loader::new(&path).load().unwrap();
    let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0).collect();
    let a = act::quantize_symmetric(&x);
    for (name, dtype, bytes, tail, sibling) in &tensors {
        let weight = model.weight(name).unwrap_or_else(|| panic!("{name} is no weight"));
        assert_eq!(weight.kind(), WeightKind::Ternary, "{name}");
        let scale = tail.or(*sibling).unwrap();
        let codes = match dtype {
            DType::TL1 => tl::tl1_unpack(bytes, m, k, &p1),
            _ => tl::tl2_unpack(bytes, m, k, &p2),
        }
        .unwrap();
        let values = weight.to_f32().unwrap();
        assert!(
            values.iter().zip(&codes).all(|(v, &c)| *v == c as f32 * scale),
            "{name}"
        );
        let mut y = vec![0f32; m];
        weight.matvec(&x, &mut y).unwrap();
        for (r, y) in y.iter().enumerate() {
            let int: i64 = (0..k).map(|j| codes[r * k + j] as i64 * a.q[j] as i64).sum();
            assert_eq!(*y, int as f32 / a.scale * scale, "{name} row {r}");
        }
    }
    std::fs::remove_file(&path).ok();
}
