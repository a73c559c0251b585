//! Detection on the committed Hugging Face-style fixtures (written by the real
//! libraries) and on hand-made key sets that must be refused.

use std::path::{Path, PathBuf};

use qload_prequant::{
    Bnb4Kind, Error, Library, MlxFloatMode, QuantoType, Requested, SavedConfig, Scheme, detect, detect_at,
};
use safetensors::tensor::{Dtype, TensorView};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn found(dir: &str) -> (qload_formats::WeightSource, qload_prequant::Detection) {
    let path = fixtures().join("hf").join(dir);
    let source = qload_formats::open(&path).unwrap();
    let d = detect_at(&path, &source, &Requested::default()).unwrap();
    (source, d)
}

#[test]
fn bitsandbytes_nf4_double_quant() {
    let (source, d) = found("bnb-nf4-dq");
    assert_eq!(d.weights.len(), 1);
    let w = &d.weights[0];
    assert_eq!(w.name, "model.layers.0.mlp.down_proj.weight");
    assert_eq!(w.library, Library::Bitsandbytes);
    assert_eq!(
        w.scheme,
        Scheme::Bnb4 {
            kind: Bnb4Kind::Nf4,
            blocksize: 64,
            nested_blocksize: Some(256),
            dtype: qload_formats::DType::BF16
        }
    );
    assert_eq!(w.shape, vec![256, 128]);
    assert_eq!(w.nested_offset, 0.131_233_21_f64 as f32);
    assert_eq!(w.keys.len(), 6);
    // Every key but the bias is consumed by the weight.
    let free: Vec<&str> = source
        .tensors()
        .iter()
        .enumerate()
        .filter(|(i, _)| d.owner_of(*i).is_none())
        .map(|(_, t)| t.name.as_str())
        .collect();
    assert_eq!(free, ["model.layers.0.mlp.down_proj.bias"]);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn bitsandbytes_int8() {
    let (_, d) = found("bnb-int8");
    let w = &d.weights[0];
    assert_eq!(
        w.scheme,
        Scheme::BnbInt8 {
            dtype: qload_formats::DType::F16
        }
    );
    assert_eq!(w.shape, vec![256, 128]);
    assert_eq!(w.keys.len(), 3, "{:?}", w.keys);
}

#[test]
fn mlx_affine_from_config() {
    let (_, d) = found("mlx-4bit");
    let w = &d.weights[0];
    assert_eq!(
        w.scheme,
        Scheme::MlxAffine {
            bits: 4,
            group_size: 64,
            dtype: qload_formats::DType::BF16
        }
    );
    assert_eq!(w.shape, vec![256, 128]);
    assert_eq!(d.config.files.len(), 1);
}

#[test]
fn mlx_request_loses_to_the_saved_config_with_a_warning() {
    let path = fixtures().join("hf/mlx-4bit");
    let source = qload_formats::open(&path).unwrap();
    let asked = Requested::parse("mlx,bits=8,group=32").unwrap();
    let d = detect_at(&path, &source, &asked).unwrap();
    assert!(matches!(
        d.weights[0].scheme,
        Scheme::MlxAffine {
            bits: 4,
            group_size: 64,
            ..
        }
    ));
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("using the saved one"));
}

#[test]
fn mlx_without_config_is_ambiguous_unless_asked() {
    let source = qload_formats::open(fixtures().join("hf/mlx-4bit/model.safetensors")).unwrap();
    let err = detect(&source, SavedConfig::default(), &Requested::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bits=2,group=128") && msg.contains("bits=4,group=64"),
        "{msg}"
    );
    let asked = Requested::parse("bits=4,group=64").unwrap();
    let d = detect(&source, SavedConfig::default(), &asked).unwrap();
    assert!(matches!(
        d.weights[0].scheme,
        Scheme::MlxAffine {
            bits: 4,
            group_size: 64,
            ..
        }
    ));
}

#[test]
fn hqq_from_encoded_scalars() {
    let (source, d) = found("hqq-4bit");
    let w = &d.weights[0];
    assert_eq!(
        w.scheme,
        Scheme::Hqq {
            nbits: 4,
            group_size: 64,
            axis: 1,
            dtype: qload_formats::DType::F16
        }
    );
    assert_eq!(w.shape, vec![256, 128]);
    let free = source.tensors().len() - w.keys.len();
    assert_eq!(free, 1, "only the bias stays a plain tensor: {:?}", w.keys);
}

#[test]
fn quanto_qint4_shape_from_bias_and_type_from_config() {
    let (_, d) = found("quanto-qint4");
    let w = &d.weights[0];
    assert_eq!(w.name, "down_proj.weight");
    assert_eq!(
        w.scheme,
        Scheme::Quanto {
            qtype: QuantoType::Qint4,
            group_size: Some(128),
            dtype: qload_formats::DType::F32
        }
    );
    // nn.Linear(256, 128): 128 outputs (the bias), 256 inputs, groups of 128.
    assert_eq!(w.shape, vec![128, 256]);
}

#[test]
fn quanto_qint8() {
    let (_, d) = found("quanto-qint8");
    let w = &d.weights[0];
    assert_eq!(
        w.scheme,
        Scheme::Quanto {
            qtype: QuantoType::Qint8,
            group_size: None,
            dtype: qload_formats::DType::BF16
        }
    );
    assert_eq!(w.shape, vec![256, 128]);
}

/// A safetensors source from (name, dtype, shape, bytes).
fn source(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> qload_formats::WeightSource {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    qload_formats::open_bytes("test.safetensors", bytes, &Default::default()).unwrap()
}

fn config(json: serde_json::Value) -> SavedConfig {
    SavedConfig {
        quantization_config: json.get("quantization_config").cloned(),
        mlx_quantization: json.get("quantization").cloned(),
        model_config: Some(json),
        ..SavedConfig::default()
    }
}

#[test]
fn unsupported_methods_are_named() {
    let s = source(&[("a.weight", Dtype::F32, vec![2], vec![0; 8])]);
    let err = detect(
        &s,
        config(serde_json::json!({"quantization_config": {"quant_method": "gptq", "bits": 4}})),
        &Requested::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedMethod { ref method } if method == "gptq"),
        "{err}"
    );
}

#[test]
fn inconsistent_keys_are_refused() {
    // A quant state that says fp4 under an nf4 key.
    let state = br#"{"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [2, 64]}"#.to_vec();
    let s = source(&[
        ("m.weight", Dtype::U8, vec![64, 1], vec![0; 64]),
        ("m.weight.absmax", Dtype::F32, vec![2], vec![0; 8]),
        ("m.weight.quant_map", Dtype::F32, vec![16], vec![0; 64]),
        (
            "m.weight.quant_state.bitsandbytes__nf4",
            Dtype::U8,
            vec![state.len()],
            state,
        ),
    ]);
    let err = detect(&s, SavedConfig::default(), &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("quant state says \"fp4\""), "{err}");

    // HQQ without nbits.
    let s = source(&[
        ("m.W_q", Dtype::U8, vec![2, 64], vec![0; 128]),
        ("m.scale", Dtype::F16, vec![4, 1], vec![0; 8]),
        ("m.zero", Dtype::F16, vec![4, 1], vec![0; 8]),
    ]);
    let err = detect(&s, SavedConfig::default(), &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("\"nbits\" is missing"), "{err}");

    // A quanto packed weight whose logical shape cannot be known.
    let s = source(&[
        ("m.weight._data._data", Dtype::U8, vec![2, 64], vec![0; 128]),
        ("m.weight._scale", Dtype::F16, vec![4, 1], vec![0; 8]),
        ("m.weight._shift", Dtype::F16, vec![4, 1], vec![0; 8]),
    ]);
    let err = detect(&s, SavedConfig::default(), &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("logical shape"), "{err}");
}

#[test]
fn mlx_float_modes_are_told_apart_by_their_shapes() {
    // 128 columns: mxfp4 packs 16 words and 4 scales per row, nvfp4 16 words and 8 scales,
    // mxfp8 32 words and 4 scales.
    for (words, scales, mode) in [
        (16usize, 4usize, MlxFloatMode::Mxfp4),
        (16, 8, MlxFloatMode::Nvfp4),
        (32, 4, MlxFloatMode::Mxfp8),
    ] {
        let s = source(&[
            ("m.weight", Dtype::U32, vec![2, words], vec![0; 8 * words]),
            ("m.scales", Dtype::U8, vec![2, scales], vec![0; 2 * scales]),
        ]);
        let d = detect(&s, SavedConfig::default(), &Requested::default()).unwrap();
        assert!(
            matches!(d.weights[0].scheme, Scheme::MlxFloat { mode: m, .. } if m == mode),
            "{:?}",
            d.weights[0].scheme
        );
        assert_eq!(d.weights[0].shape, vec![2, 128]);
    }
}

#[test]
fn requests_parse() {
    let r = Requested::parse("mlx, bits=3, group=64").unwrap();
    assert_eq!(r.library, Some(Library::Mlx));
    assert_eq!((r.bits, r.group_size), (Some(3), Some(64)));
    assert!(Requested::parse("gptq").is_err());
    assert!(Requested::parse("bits=x").is_err());
    assert!(Requested::parse("colour=red").is_err());
}

#[test]
fn unsupported_combinations_name_themselves() {
    let s = Scheme::MlxAffine {
        bits: 4,
        group_size: 64,
        dtype: qload_formats::DType::BF16,
    };
    assert!(qload_prequant::supported(&s, "cpu", qload_prequant::Op::NativeMatvec).is_ok());
    let e = qload_prequant::supported(&s, "cuda:0", qload_prequant::Op::NativeMatvec).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mlx affine 4bit g64: native matvec on cuda:0 is not supported (no cuda:0 kernels for pre-quantized weights yet; decode or transcode on the cpu)"
    );
}

#[test]
fn transformers_bitnet_from_config_or_request() {
    use qload_prequant::BitnetScale;
    let (src, d) = found("bitnet-b158");
    assert_eq!(d.weights.len(), 7);
    let w = d
        .weights
        .iter()
        .find(|w| w.name == "model.layers.0.mlp.down_proj.weight")
        .unwrap();
    assert_eq!(w.library, Library::Bitnet);
    assert_eq!(
        w.scheme,
        Scheme::Bitnet {
            scale: BitnetScale::Divide,
            dtype: qload_formats::DType::BF16
        }
    );
    assert_eq!(w.shape, vec![256, 512]);
    assert_eq!(
        w.keys,
        [
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.mlp.down_proj.weight_scale"
        ]
    );
    let free = src
        .tensors()
        .iter()
        .enumerate()
        .filter(|(i, _)| d.owner_of(*i).is_none())
        .count();
    assert_eq!(free, 6, "embedding and norms stay plain tensors");

    let packed = || {
        source(&[
            ("m.weight", Dtype::U8, vec![2, 8], vec![0x55; 16]),
            ("m.weight_scale", Dtype::BF16, vec![1], vec![0x80, 0x3f]),
        ])
    };
    // No config: the linear class decides the scale's meaning, so it must be asked for.
    let err = detect(&packed(), SavedConfig::default(), &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("--prequant bitnet,mode=bitlinear"), "{err}");
    let asked = Requested::parse("bitnet,mode=autobitlinear").unwrap();
    let d = detect(&packed(), SavedConfig::default(), &asked).unwrap();
    assert_eq!(
        d.weights[0].scheme,
        Scheme::Bitnet {
            scale: BitnetScale::Multiply,
            dtype: qload_formats::DType::BF16
        }
    );
    assert_eq!(d.weights[0].shape, vec![8, 8]);
    // The saved class wins over the request, with a warning.
    let saved =
        config(serde_json::json!({"quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear"}}));
    let d = detect(&packed(), saved, &asked).unwrap();
    assert!(matches!(
        d.weights[0].scheme,
        Scheme::Bitnet {
            scale: BitnetScale::Divide,
            ..
        }
    ));
    assert!(d.warnings[0].contains("linear_class"), "{:?}", d.warnings);
    // Online mode stores float weights; a packed one contradicts it.
    let online =
        config(serde_json::json!({"quantization_config": {"quant_method": "bitnet", "quantization_mode": "online"}}));
    let err = detect(&packed(), online, &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("online"), "{err}");
    // A shape config.json contradicts.
    let sized = config(serde_json::json!({
        "hidden_size": 8, "intermediate_size": 16,
        "quantization_config": {"quant_method": "bitnet"}
    }));
    let s = source(&[
        ("l.mlp.up_proj.weight", Dtype::U8, vec![2, 8], vec![0x55; 16]),
        ("l.mlp.up_proj.weight_scale", Dtype::BF16, vec![1], vec![0x80, 0x3f]),
    ]);
    let err = detect(&s, sized, &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("config.json implies [16, 8]"), "{err}");
    // An unknown class.
    let odd =
        config(serde_json::json!({"quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear2"}}));
    let err = detect(&packed(), odd, &Requested::default()).unwrap_err();
    assert!(err.to_string().contains("bitlinear2"), "{err}");
}
