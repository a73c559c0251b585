//! Whole Hugging Face-style pre-quantized checkpoints (a directory with config.json and
//! the weights written by bitsandbytes, mlx, hqq and optimum-quanto) through the
//! `qload` binary: `convert --dtype f32` gives, under each weight's original name, the
//! library's own dequantization bit for bit (the `*_truth.npz` files beside the
//! fixtures were written from the libraries' outputs).

mod common;
use common::{qload, root, tmp};

fn f32s(source: &qload_formats::WeightSource, name: &str) -> Vec<f32> {
    let t = source.tensor(name).unwrap_or_else(|| {
        panic!(
            "{name} missing; have {:?}",
            source.tensors().iter().map(|t| &t.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(t.dtype, qload_formats::DType::F32, "{name}");
    source
        .tensor_bytes(t)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (fixture directory, truth file, weight name, other tensors that must come through).
const CASES: &[(&str, &str, &str, &[&str])] = &[
    (
        "bnb-nf4-dq",
        "bitsandbytes/nf4_dq_bf16_truth.npz",
        "model.layers.0.mlp.down_proj.weight",
        &["model.layers.0.mlp.down_proj.bias"],
    ),
    (
        "bnb-int8",
        "bitsandbytes/int8_f16_truth.npz",
        "model.layers.0.mlp.down_proj.weight",
        &["model.layers.0.mlp.down_proj.bias"],
    ),
    (
        "mlx-4bit",
        "mlx/affine_4bit_g64_bf16_truth.npz",
        "model.layers.0.mlp.down_proj.weight",
        &[],
    ),
    (
        "hqq-4bit",
        "hqq/hqq_4bit_g64_axis1_f16_truth.npz",
        "model.layers.0.mlp.down_proj.weight",
        &["model.layers.0.mlp.down_proj.bias"],
    ),
    (
        "quanto-qint4",
        "quanto/qint4_f32_pergroup_truth.npz",
        "down_proj.weight",
        &["down_proj.bias", "down_proj.input_scale", "down_proj.output_scale"],
    ),
    (
        "quanto-qint8",
        "quanto/qint8_bf16_truth.npz",
        "down_proj.weight",
        &["down_proj.bias", "down_proj.input_scale", "down_proj.output_scale"],
    ),
];

#[test]
fn convert_to_f32_is_the_library_dequantization_bit_for_bit() {
    for (dir, truth, weight, others) in CASES {
        let out = tmp(&format!("{dir}.safetensors"));
        let out_s = out.to_str().unwrap();
        let (code, stdout, err) = qload(&[
            "convert",
            &format!("tests/fixtures/hf/{dir}"),
            "--dtype",
            "f32",
            "-o",
            out_s,
            "--quiet",
        ]);
        assert_eq!(code, 0, "{dir}: {stdout}{err}");
        let got = qload_formats::open(&out).unwrap();
        let truth = qload_formats::open(root().join("tests/fixtures").join(truth)).unwrap();
        let want = f32s(&truth, "dequantized_weight");
        let have = f32s(&got, weight);
        assert_eq!(have.len(), want.len(), "{dir}");
        let bad: Vec<usize> = (0..want.len())
            .filter(|&i| have[i].to_bits() != want[i].to_bits())
            .collect();
        assert!(
            bad.is_empty(),
            "{dir}: {} of {} values differ, first at {}: {} vs {}",
            bad.len(),
            want.len(),
            bad[0],
            have[bad[0]],
            want[bad[0]]
        );
        for o in *others {
            assert!(got.tensor(o).is_some(), "{dir}: {o} missing from the output");
        }
        // No stored part key leaks into the output: one tensor per logical weight.
        let names: Vec<&str> = got.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), others.len() + 1, "{dir}: {names:?}");
    }
}

#[test]
fn load_keeps_pre_quantized_weights_native_and_transcodes_on_request() {
    let (code, out, err) = qload(&["load", "tests/fixtures/hf/bnb-nf4-dq"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 kept pre-quantized (native)"), "{out}");

    // 128-column rows: Q4_0 (block 32) fits; Q4_K (256) would fall back as llama.cpp does.
    let gguf = tmp("mlx-q4_0.gguf");
    let (code, out, err) = qload(&[
        "convert",
        "tests/fixtures/hf/mlx-4bit",
        "--quantize",
        "q4_0",
        "--measure",
        "-o",
        gguf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 → Q4_0 (1 decoded from pre-quantized weights)"), "{out}");
    let g = qload_formats::open(&gguf).unwrap();
    let t = g.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(t.dtype, qload_formats::DType::Q4_0);
    assert_eq!(t.shape, vec![256, 128]);
}

#[test]
fn writing_a_native_weight_asks_for_a_dtype() {
    let out = tmp("native.safetensors");
    let (code, _, err) = qload(&["convert", "tests/fixtures/hf/hqq-4bit", "-o", out.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("hqq 4bit g64 axis1") && err.contains("--dtype"), "{err}");
}

#[test]
fn mlx_without_config_needs_the_setting_and_saved_settings_win() {
    // The bare file (no config.json beside it): several settings fit its shapes.
    let dir = tmp("bare-mlx");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.safetensors");
    std::fs::copy(root().join("tests/fixtures/hf/mlx-4bit/model.safetensors"), &file).unwrap();
    let f = file.to_str().unwrap();
    let (code, _, err) = qload(&["load", f]);
    assert_ne!(code, 0);
    assert!(err.contains("bits=4,group=64") && err.contains("config.json"), "{err}");
    let (code, out, err) = qload(&["load", f, "--prequant", "mlx,bits=4,group=64"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 kept pre-quantized (native)"), "{out}");
    // With the config, a different request loses, with a warning.
    let (code, out, err) = qload(&[
        "load",
        "tests/fixtures/hf/mlx-4bit",
        "--prequant",
        "mlx,bits=8,group=32",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("using the saved one"), "{out}");
}

#[test]
fn inspect_shows_one_row_per_weight_and_raw_shows_keys() {
    let (code, out, err) = qload(&["inspect", "tests/fixtures/hf/bnb-nf4-dq"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("model.layers.0.mlp.down_proj.weight "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("nf4 bs64 dq") && row.contains("[256, 128]"), "{row}");
    assert!(!out.contains(".absmax"), "{out}");
    let (code, out, _) = qload(&["inspect", "--raw", "tests/fixtures/hf/bnb-nf4-dq"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("model.layers.0.mlp.down_proj.weight.nested_absmax"),
        "{out}"
    );
}

fn bf16s_as_f32(source: &qload_formats::WeightSource, name: &str) -> Vec<f32> {
    let t = source.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    let bytes = source.tensor_bytes(t).unwrap();
    match t.dtype {
        qload_formats::DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => f32s(source, name),
    }
}

/// transformers' packed BitNet b1.58 (the fixture written by transformers' own
/// `pack_weights`, `xtask/python/gen_bitnet_hf.py`): `--dtype f32` gives transformers'
/// `unpack_weights(·) / weight_scale` bit for bit; `--quantize i2_s` keeps codes and
/// scale (bitnet.cpp's I2_S, decoded to the same values) and its int8-activation
/// matvec follows `BitLinear.forward`.
#[test]
fn transformers_bitnet_checkpoints_decode_and_carry_over_to_i2_s() {
    let truth = qload_formats::open(root().join("tests/fixtures/bitnet/hf_b158_truth.safetensors")).unwrap();
    let weights: Vec<String> = truth
        .tensors()
        .iter()
        .filter(|t| t.name.ends_with(".weight"))
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(weights.len(), 7);

    let out = tmp("bitnet-f32.safetensors");
    let (code, stdout, err) = qload(&[
        "convert",
        "tests/fixtures/hf/bitnet-b158",
        "--dtype",
        "f32",
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let got = qload_formats::open(&out).unwrap();
    for w in &weights {
        let (have, want) = (f32s(&got, w), bf16s_as_f32(&truth, w));
        assert_eq!(have.len(), want.len(), "{w}");
        assert!(
            have.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{w}: differs from transformers' unpack_weights / weight_scale"
        );
    }
    // One tensor per logical weight: no weight_scale keys in the output.
    assert!(got.tensors().iter().all(|t| !t.name.ends_with("weight_scale")));

    let gguf = tmp("bitnet-i2s.gguf");
    let (code, stdout, err) = qload(&[
        "convert",
        "tests/fixtures/hf/bitnet-b158",
        "--quantize",
        "i2_s",
        "--measure",
        "-o",
        gguf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains("7 → I2_S") && stdout.contains("max |error| 0.000e0"),
        "{stdout}"
    );
    let (model, _) = qload_loader::Loader::new(&gguf).load().unwrap();
    for w in &weights {
        let weight = model.weight(w).unwrap();
        assert_eq!(weight.kind(), qload_loader::WeightKind::Ternary, "{w}");
        let values = weight.to_f32().unwrap();
        let want = bf16s_as_f32(&truth, w);
        assert!(
            values.iter().zip(&want).all(|(a, b)| a == b),
            "{w}: the I2_S values are not the checkpoint's"
        );
        // BitLinear.forward (f32, int8 activations) against qload's I2_S matvec. The
        // integer sums are exact on both sides; the scales differ in rounding only
        // (qload's weight scale is 1/weight_scale in bf16).
        let x = f32s(&truth, &format!("{w}.x"));
        let y_ref = f32s(&truth, &format!("{w}.y"));
        let mut y = vec![0f32; weight.rows()];
        weight.matvec(&x, &mut y).unwrap();
        let (mut num, mut den) = (0f64, 0f64);
        for (a, b) in y.iter().zip(&y_ref) {
            num += (*a as f64 - *b as f64).powi(2);
            den += (*b as f64).powi(2);
        }
        let rel = (num / den).sqrt();
        assert!(rel < 5e-3, "{w}: relative error {rel} against BitLinear.forward");
    }
}
