//! Quantize-on-load: what each tensor becomes, byte-exactness of the converted bytes
//! with quant-core's (ggml-exact) codecs, error stats, and thread-count independence.

use std::path::{Path, PathBuf};

use qload_formats::DType;
use qload_loader::policy::{DecisionKind, Policy};
use qload_loader::{Action, Loader};
use qload_quant_core::codec;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn q8_0_load_of_f32_safetensors_is_byte_exact_and_reported() {
    let path = fixture("safetensors/tiny_f32.safetensors");
    let (model, report) = Loader::new(&path)
        .quantize(Policy::parse("q8_0").unwrap())
        .budget(64 << 10)
        .measure_error(true)
        .load()
        .unwrap();
    let src = qload_formats::open(&path).unwrap();
    let q8 = codec(DType::Q8_0).unwrap();
    let mut converted = 0;
    for (t, stat) in src.tensors().iter().zip(&report.per_tensor) {
        let l = model.tensor(&t.name).unwrap();
        assert_eq!(stat.name, t.name);
        let row = *t.shape.last().unwrap() as usize;
        if t.shape.len() == 2 && row.is_multiple_of(32) {
            assert_eq!(l.dtype, DType::Q8_0, "{}", t.name);
            assert_eq!(stat.action, Action::Converted);
            let x = f32s(src.tensor_bytes(t).unwrap());
            let mut want = vec![0u8; q8.bytes_for(x.len()).unwrap()];
            q8.quantize(&x, row, None, &mut want).unwrap();
            assert_eq!(model.bytes(l), &want[..], "{}", t.name);
            let e = stat.error.expect("measured");
            assert!(
                e.rel_rmse < 0.01 && e.cosine > 0.9999 && e.max_abs > 0.0,
                "{}: {e:?}",
                t.name
            );
            converted += 1;
        } else {
            // 1-D norms stay float; rows of 172 fit no 32-element block.
            assert_eq!(l.dtype, DType::F32, "{}", t.name);
            assert_eq!(stat.decision, DecisionKind::Keep);
            assert!(l.is_mapped());
            assert!(!stat.reason.is_empty());
        }
    }
    assert!(converted >= 10, "{converted}");
    assert_eq!(report.tensors_loaded, src.tensors().len());
    assert_eq!(
        report.original_bytes,
        report.per_tensor.iter().map(|t| t.bytes_before).sum::<u64>()
    );
    assert_eq!(
        report.stored_bytes,
        report.per_tensor.iter().map(|t| t.bytes_after).sum::<u64>()
    );
    assert!(report.compression_ratio > 1.5, "{}", report.compression_ratio);
    assert!(report.mean_rel_rmse.unwrap() < 0.01);
    assert!(report.summary().contains("→ Q8_0"), "{}", report.summary());
}

#[test]
fn k_quant_mix_falls_back_and_promotes_visibly() {
    let (model, report) = Loader::new(fixture("safetensors/tiny_f32.safetensors"))
        .quantize(Policy::parse("q4_k_m").unwrap())
        .load()
        .unwrap();
    // Rows of 64 cannot hold 256-element blocks: Q4_K falls back to Q5_0, Q6_K to Q8_0.
    let q = model.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.dtype, DType::Q5_0);
    let emb = model.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(emb.dtype, DType::Q8_0, "promoted to Q6_K, then the Q6_K fallback");
    let stat = report
        .per_tensor
        .iter()
        .find(|t| t.name == "model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(stat.decision, DecisionKind::Fallback);
    assert!(stat.reason.contains("not a multiple"), "{}", stat.reason);
    assert!(report.summary().contains("fell back to Q5_0"), "{}", report.summary());
}

#[test]
fn dequantizing_a_gguf_matches_the_codecs_and_any_thread_count_gives_the_same_bytes() {
    let path = fixture("gguf/tiny-llama-mixed.gguf");
    let src = qload_formats::open(&path).unwrap();
    let load = |threads| {
        Loader::new(&path)
            .quantize(Policy::parse("f32").unwrap())
            .threads(Some(threads))
            .budget(4096)
            .load()
            .unwrap()
    };
    let (one, _) = load(1);
    let (three, report) = load(3);
    for t in src.tensors() {
        let a = one.tensor(&t.name).unwrap();
        let b = three.tensor(&t.name).unwrap();
        assert_eq!(a.dtype, DType::F32);
        assert_eq!(one.bytes(a), three.bytes(b), "{}", t.name);
        let c = codec(t.dtype).unwrap();
        let mut want = vec![0f32; t.numel() as usize];
        c.dequantize(src.tensor_bytes(t).unwrap(), &mut want).unwrap();
        assert_eq!(f32s(one.bytes(a)), want, "{}", t.name);
    }
    assert!(report.compression_ratio < 1.0);
}

#[test]
fn unsupported_conversions_are_errors_not_silent() {
    // IQ2_XXS has no quantizer: asking for it must fail with a message naming it.
    let err = Loader::new(fixture("gguf/tiny-llama-mixed.gguf"))
        .quantize(Policy::Uniform(DType::IQ2XXS))
        .load()
        .unwrap_err();
    assert!(err.to_string().contains("cannot quantize IQ2_XXS"), "{err}");
}

#[test]
fn i2_s_under_a_small_budget_equals_the_whole_tensor_quantizer_with_an_f16_scale_for_f16() {
    use qload_quant_core::bitnet::i2s::{I2sLayout, quantize};
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let src = qload_formats::open(&path).unwrap();
    let (model, report) = Loader::new(&path)
        .quantize(Policy::parse("i2_s").unwrap())
        .budget(4096)
        .measure_error(true)
        .load()
        .unwrap();
    let f16 = codec(DType::F16).unwrap();
    let mut checked = 0;
    for t in src.tensors() {
        let l = model.tensor(&t.name).unwrap();
        let stat = report.per_tensor.iter().find(|s| s.name == t.name).unwrap();
        if t.shape.len() == 2 && t.name != "token_embd.weight" && t.name != "output.weight" {
            assert_eq!(l.dtype, DType::I2S, "{}", t.name);
            let mut x = vec![0f32; t.numel() as usize];
            f16.dequantize(src.tensor_bytes(t).unwrap(), &mut x).unwrap();
            // The whole-tensor quantizer's bytes, but for an f16 checkpoint the scale as
            // bitnet.cpp stores it: its converter casts W' = code/s back to f16, so
            // `quantize_i2_s`'s max|W'| is the f16 rounding of 1/s.
            let mut want = quantize(&x, I2sLayout::X86).unwrap();
            let at = x.len() / 4;
            let scale = f32::from_le_bytes(want[at..at + 4].try_into().unwrap());
            let rounded = half::f16::from_f32(scale).to_f32();
            want[at..at + 4].copy_from_slice(&rounded.to_le_bytes());
            assert_eq!(model.bytes(l), &want[..], "{}", t.name);
            let e = stat.error.unwrap();
            assert!(e.cosine > 0.7 && e.cosine < 1.0, "{}: {e:?}", t.name);
            checked += 1;
        } else {
            assert_eq!(stat.decision, DecisionKind::Keep, "{}", t.name);
        }
    }
    assert_eq!(checked, 14);
}

#[test]
fn estimates_match_what_the_load_produces() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let specs: Vec<(String, Policy)> = ["keep", "q8_0", "q4_k_m", "q5_k_s", "q4_0", "i2_s", "bf16"]
        .iter()
        .map(|s| (s.to_string(), Policy::parse(s).unwrap()))
        .collect();
    let est = qload_loader::estimate(&path, &specs, 1 << 20, &Default::default()).unwrap();
    for ((spec, policy), e) in specs.iter().zip(&est) {
        let (_, report) = Loader::new(&path).quantize(policy.clone()).load().unwrap();
        assert_eq!(e.stored_bytes, report.stored_bytes, "{spec}");
        assert_eq!(e.original_bytes, report.original_bytes, "{spec}");
        assert_eq!(e.parameters, report.total_parameters, "{spec}");
        let promoted = report
            .per_tensor
            .iter()
            .filter(|t| t.decision == DecisionKind::Promote)
            .count();
        assert_eq!(e.promoted, promoted, "{spec}");
    }
}

#[test]
fn an_importance_matrix_gives_ggml_bytes_in_both_file_layouts() {
    use qload_loader::imatrix::Imatrix;
    // ggml (libgguf) quantized every blk.* weight to Q4_K with this importance matrix.
    let want = qload_formats::open(fixture("gguf/tiny-llama-f16-q4_k-imatrix.gguf")).unwrap();
    let gguf = Imatrix::load(&fixture("gguf/tiny-llama-f16.imatrix.gguf")).unwrap();
    let legacy = Imatrix::load(&fixture("gguf/tiny-llama-f16.imatrix.dat")).unwrap();
    assert_eq!((gguf.format, legacy.format), ("gguf", "legacy"));
    assert_eq!(gguf.len(), 15);
    assert_eq!(gguf.datasets, ["qload-fixture.txt"]);
    assert_eq!(legacy.datasets, ["qload-fixture.txt"]);
    for m in [gguf, legacy] {
        let (model, report) = Loader::new(fixture("gguf/tiny-llama-f16.gguf"))
            .filter(qload_loader::filter::Filter::all().include("blk.*").unwrap())
            .quantize(Policy::parse("q4_k").unwrap())
            .imatrix(m)
            .budget(64 << 10)
            .load()
            .unwrap();
        let mut checked = 0;
        for t in want.tensors() {
            let got = model.tensor(&t.name).unwrap();
            assert_eq!(got.dtype, DType::Q4K, "{}", t.name);
            assert_eq!(model.bytes(got), want.tensor_bytes(t).unwrap(), "{}", t.name);
            checked += 1;
        }
        assert_eq!(checked, 14);
        assert_eq!(report.per_tensor.iter().filter(|t| t.imatrix).count(), 14);
        assert!(
            report.notes.iter().any(|n| n.contains("used for 14 tensor(s)")),
            "{:?}",
            report.notes
        );
    }
    // Without it the bytes differ (the matrix matters).
    let (plain, _) = Loader::new(fixture("gguf/tiny-llama-f16.gguf"))
        .filter(
            qload_loader::filter::Filter::all()
                .include("blk.0.ffn_up.weight")
                .unwrap(),
        )
        .quantize(Policy::parse("q4_k").unwrap())
        .load()
        .unwrap();
    let t = plain.tensor("blk.0.ffn_up.weight").unwrap();
    assert_ne!(
        plain.bytes(t),
        want.tensor_bytes(want.tensor("blk.0.ffn_up.weight").unwrap()).unwrap()
    );
}

#[test]
fn broken_importance_matrices_are_refused() {
    use qload_loader::imatrix::Imatrix;
    let dir = std::env::temp_dir().join(format!("qload-imatrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(fixture("gguf/tiny-llama-f16.imatrix.dat")).unwrap();
    for cut in [0, 3, 4, 10, 100, good.len() / 2] {
        let p = dir.join(format!("cut{cut}.dat"));
        std::fs::write(&p, &good[..cut]).unwrap();
        assert!(Imatrix::load(&p).is_err(), "cut at {cut}");
    }
    // A claimed entry count far beyond the file.
    let mut huge = good.clone();
    huge[..4].copy_from_slice(&i32::MAX.to_le_bytes());
    let p = dir.join("huge.dat");
    std::fs::write(&p, &huge).unwrap();
    assert!(Imatrix::load(&p).unwrap_err().to_string().contains("does not fit"));
    // A model GGUF is not an imatrix.
    let err = Imatrix::load(&fixture("gguf/tiny-llama-f16.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not \"imatrix\"") || err.contains("not an imatrix"),
        "{err}"
    );
}

#[test]
fn in_memory_arrays_quantize_like_the_codecs_with_stats() {
    let a: Vec<f32> = (0..256 * 512)
        .map(|i| (((i * 7919) % 1000) as f32 - 500.0) / 9000.0)
        .collect();
    let b: Vec<f32> = (0..64 * 256).map(|i| ((i % 33) as f32 - 16.0) / 100.0).collect();
    let norm: Vec<f32> = vec![1.0; 512];
    let (model, report) = qload_loader::memory::quantize_arrays(
        &[
            ("blk.0.ffn_up.weight", &a, &[256, 512]),
            ("blk.0.attn_q.weight", &b, &[64, 256]),
            ("blk.0.attn_norm.weight", &norm, &[512]),
        ],
        "q8_0",
    )
    .unwrap();
    for (name, values, cols) in [("blk.0.ffn_up.weight", &a, 512), ("blk.0.attn_q.weight", &b, 256)] {
        let t = model.tensor(name).unwrap();
        assert_eq!(t.dtype, DType::Q8_0);
        let c = codec(DType::Q8_0).unwrap();
        let mut want = vec![0u8; c.bytes_for(values.len()).unwrap()];
        c.quantize(values, cols, None, &mut want).unwrap();
        assert_eq!(model.bytes(t), &want[..], "{name}");
        let stat = report.per_tensor.iter().find(|s| s.name == name).unwrap();
        let e = stat.error.unwrap();
        assert!(e.cosine > 0.999 && e.rel_rmse < 0.01, "{name}: {e:?}");
    }
    assert_eq!(model.tensor("blk.0.attn_norm.weight").unwrap().dtype, DType::F32);
    assert!(report.compression_ratio > 3.0);
    // A shape that does not match the values is an error, not a guess.
    assert!(qload_loader::memory::quantize("w", &a, &[3, 3], "q8_0").is_err());
}

#[test]
fn config_files_and_presets_decide_per_tensor() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/mix.toml");
    let policy = Policy::from_config_file(&cfg).unwrap();
    let (model, report) = Loader::new(&path).quantize(policy).load().unwrap();
    let dtype = |n: &str| model.tensor(n).unwrap().dtype;
    assert_eq!(dtype("blk.1.attn_v.weight"), DType::Q8_0);
    assert_eq!(
        dtype("blk.0.attn_v.weight"),
        DType::Q8_0,
        "the first matching rule wins"
    );
    assert_eq!(dtype("blk.0.ffn_up.weight"), DType::Q6K);
    assert_eq!(
        dtype("blk.1.ffn_up.weight"),
        DType::Q4K,
        "the base (q4_k_m) decides the rest"
    );
    assert_eq!(dtype("output.weight"), DType::F16, "kept as stored by a rule");
    assert_eq!(
        dtype("token_embd.weight"),
        DType::Q6K,
        "the base promotes the embedding"
    );
    assert_eq!(
        dtype("blk.0.attn_norm.weight"),
        DType::F32,
        "the regex matches a norm, which stays 1-D"
    );
    assert_eq!(report.policy, "q4_k with q8_0 attention values");
    let why = &report
        .per_tensor
        .iter()
        .find(|t| t.name == "blk.1.attn_v.weight")
        .unwrap()
        .reason;
    assert!(why.contains("rule \"blk.*.attn_v.weight\""), "{why}");

    // The same in JSON.
    let json = r#"{"base": "q8_0", "rules": [{"match": "*ffn_*", "type": "q4_0"}]}"#;
    let (model, _) = Loader::new(&path)
        .quantize(Policy::from_config(json, true).unwrap())
        .load()
        .unwrap();
    assert_eq!(model.tensor("blk.0.ffn_down.weight").unwrap().dtype, DType::Q4_0);
    assert_eq!(model.tensor("blk.0.attn_q.weight").unwrap().dtype, DType::Q8_0);

    // Mistakes are refused with the reason.
    for (text, want) in [
        (
            "base = \"q4_k\"\n[[rules]]\nmatch = \"x\"\ntype = \"q4_k_m\"\n",
            "not a mix",
        ),
        ("base = \"q9_z\"\n", "unknown quantization"),
        ("[[rules]]\nmatch = \"re:(\"\ntype = \"q8_0\"\n", "re:("),
        ("colour = \"red\"\n", "unknown field"),
    ] {
        let err = Policy::from_config(text, false).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }

    // Presets.
    let (model, report) = Loader::new(&path)
        .quantize(Policy::parse("aggressive").unwrap())
        .load()
        .unwrap();
    assert_eq!(report.policy, "aggressive");
    assert_eq!(model.tensor("blk.0.attn_q.weight").unwrap().dtype, DType::Q3K);
    assert_eq!(model.tensor("blk.0.ffn_down.weight").unwrap().dtype, DType::Q4K);
    assert_eq!(model.tensor("output.weight").unwrap().dtype, DType::Q6K);
    assert_eq!(Policy::parse("default").unwrap(), Policy::parse("q4_k_m").unwrap());
    assert_eq!(Policy::parse("bitnet").unwrap(), Policy::parse("i2_s").unwrap());
}

/// Safetensors bytes of named tensors `(name, dtype, shape, raw little-endian data)`.
fn safetensors(tensors: &[(&str, &str, [u64; 2], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, dtype, shape, data) in tensors {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + data.len()]}),
        );
        offset += data.len();
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn large_i2_s_conversions_take_one_pass_with_the_two_pass_bytes() {
    use qload_quant_core::bitnet::{i2s, ternary};
    // 4.46M elements: over the one-pass threshold (4M); rows with different scales,
    // f32 and bf16 sources, a budget that cuts the pass into many chunks.
    let (rows, cols) = (2048u64, 2176u64);
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let g: f32 = (0..4)
                .map(|_| {
                    st ^= st << 13;
                    st ^= st >> 7;
                    st ^= st << 17;
                    (st >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .sum();
            g * (0.02 + 0.002 * (i / cols % 5) as f32)
        })
        .collect();
    let bf16: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let bytes = safetensors(&[
        ("blk.0.ffn_up.weight", "F32", [rows, cols], le_bytes(&w)),
        (
            "blk.0.ffn_down.weight",
            "BF16",
            [rows, cols],
            bf16.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ]);
    let source = qload_formats::open_bytes("big.safetensors", bytes, &Default::default()).unwrap();
    let (model, _) = Loader::from_source(source)
        .quantize(Policy::parse("i2_s").unwrap())
        .budget(1 << 20)
        .load()
        .unwrap();
    let widened: Vec<f32> = bf16.iter().map(|v| v.to_f32()).collect();
    for (name, values) in [("blk.0.ffn_up.weight", &w), ("blk.0.ffn_down.weight", &widened)] {
        let t = model.tensor(name).unwrap();
        assert_eq!(t.dtype, DType::I2S);
        // The definition, independently: absmean codes packed by `encode`.
        let (codes, a) = ternary::absmean(values);
        let mut want = vec![0u8; i2s::tensor_bytes(values.len()).unwrap()];
        i2s::encode(&codes, a.scale, i2s::I2sLayout::X86, &mut want).unwrap();
        assert!(model.bytes(t) == &want[..], "{name}");
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
