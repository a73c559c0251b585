//! Ternary settings from a quantization config: group sizes and clip values reach the
//! converted bytes exactly as quant-core's ternarizer makes them, activation settings
//! reach `Weight::matvec`, and settings no storage can hold are refused.

use std::path::{Path, PathBuf};

use qload_formats::DType;
use qload_loader::Loader;
use qload_loader::policy::Policy;
use qload_quant_core::bitnet::act::{self, ActConfig, ActMode, ActRounding};
use qload_quant_core::bitnet::i2s::{self, I2sLayout, I2sRef};
use qload_quant_core::bitnet::ternary::{Granularity, TernaryConfig, ternarize};
use qload_quant_core::bitnet::tq;
use qload_quant_core::codec;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

const CONFIG: &str = r#"
name = "ternary groups"
base = "q8_0"

[ternary]
group = "row"
clip = 2.5

[[rules]]
match = "*ffn_*"
type = "tq2_0"
group = 256            # clip 2.5 from [ternary]

[[rules]]
match = "*attn_q.*"
type = "tq1_0"
group = "tensor"

[[rules]]
match = "*attn_k.*"
type = "tq2_0"         # [ternary]: per row, clip 2.5

[[rules]]
match = "*attn_v.*"
type = "i2_s"
group = "tensor"
clip = 3.0
"#;

#[test]
fn config_groups_and_clips_reach_the_bytes() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let src = qload_formats::open(&path).unwrap();
    let policy = Policy::from_config(CONFIG, false).unwrap();
    let (model, report) = Loader::new(&path)
        .quantize(policy)
        .budget(8192)
        .measure_error(true)
        .load()
        .unwrap();
    let f16 = codec(DType::F16).unwrap();
    let mut checked = [0usize; 5];
    for t in src
        .tensors()
        .iter()
        .filter(|t| t.name.starts_with("blk.") && t.shape.len() == 2)
    {
        let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
        let mut x = vec![0f32; rows * cols];
        f16.dequantize(src.tensor_bytes(t).unwrap(), &mut x).unwrap();
        let l = model.tensor(&t.name).unwrap();
        let stat = report.per_tensor.iter().find(|s| s.name == t.name).unwrap();
        let tq_bytes = |dtype: DType, granularity: Granularity, clip: Option<f32>| {
            let tern = ternarize(&x, rows, cols, &TernaryConfig { granularity, clip }).unwrap();
            let mut out = vec![0u8; codec(dtype).unwrap().bytes_for(x.len()).unwrap()];
            tq::from_ternary(&tern, dtype, &mut out).unwrap();
            out
        };
        let (want, slot) = if t.name.contains("ffn_") {
            (
                tq_bytes(DType::TQ2_0, Granularity::PerGroup { size: 256 }, Some(2.5)),
                0,
            )
        } else if t.name.contains("attn_q.") {
            (tq_bytes(DType::TQ1_0, Granularity::PerTensor, Some(2.5)), 1)
        } else if t.name.contains("attn_k.") {
            (tq_bytes(DType::TQ2_0, Granularity::PerRow, Some(2.5)), 2)
        } else if t.name.contains("attn_v.") {
            let tern = ternarize(
                &x,
                rows,
                cols,
                &TernaryConfig {
                    granularity: Granularity::PerTensor,
                    clip: Some(3.0),
                },
            )
            .unwrap();
            let mut out = vec![0u8; i2s::tensor_bytes(x.len()).unwrap()];
            // An f16 source: the scale stored as f16, as bitnet.cpp does.
            let scale = half::f16::from_f32(tern.scales[0]).to_f32();
            i2s::encode(&tern.codes, scale, I2sLayout::X86, &mut out).unwrap();
            (out, 3)
        } else {
            let q8 = codec(DType::Q8_0).unwrap();
            let mut out = vec![0u8; q8.bytes_for(x.len()).unwrap()];
            q8.quantize(&x, cols, None, &mut out).unwrap();
            (out, 4)
        };
        assert_eq!(model.bytes(l), &want[..], "{}", t.name);
        checked[slot] += 1;
        let e = stat.error.unwrap();
        assert!(e.cosine > 0.7, "{}: {e:?}", t.name);
        if slot < 4 {
            assert!(stat.reason.contains("absmean"), "{}: {}", t.name, stat.reason);
        }
    }
    assert_eq!(checked, [6, 2, 2, 2, 2]);
    assert_eq!(report.policy, "ternary groups");
}

#[test]
fn activation_settings_reach_the_ternary_matvec() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let text =
        "base = \"bitnet\"\n[activations]\nmode = \"asymmetric\"\nclip = 6.0\nrounding = \"half_away_from_zero\"\n";
    let cfg = ActConfig {
        mode: ActMode::Asymmetric,
        clip: Some(6.0),
        rounding: ActRounding::HalfAwayFromZero,
    };
    let policy = Policy::from_config(text, false).unwrap();
    assert_eq!(policy.activations(), Some(cfg));
    let (model, _) = Loader::new(&path).quantize(policy.clone()).load().unwrap();
    assert_eq!(model.activations(), cfg);
    let w = model.weight("blk.0.attn_q.weight").unwrap();
    let l = model.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(l.dtype, DType::I2S);
    let x: Vec<f32> = (0..w.cols())
        .map(|i| if i == 7 { 40.0 } else { (i as f32 * 0.37).sin() })
        .collect();
    let expect = |c: &ActConfig| {
        let r = I2sRef::new(model.bytes(l), w.rows() * w.cols(), I2sLayout::X86).unwrap();
        let mut y = vec![0f32; w.rows()];
        i2s::matvec(&r, w.rows(), w.cols(), &act::quantize_row(&x, c), &mut y).unwrap();
        y
    };
    let mut y = vec![0f32; w.rows()];
    w.matvec(&x, &mut y).unwrap();
    assert_eq!(y, expect(&cfg));
    assert_ne!(y, expect(&ActConfig::default()), "the outlier is clipped");

    // The loader's own setting wins over the config's.
    let (model, _) = Loader::new(&path)
        .quantize(policy)
        .activations(ActConfig::default())
        .load()
        .unwrap();
    assert_eq!(model.activations(), ActConfig::default());
    let mut y = vec![0f32; w.rows()];
    model.weight("blk.0.attn_q.weight").unwrap().matvec(&x, &mut y).unwrap();
    assert_eq!(y, expect(&ActConfig::default()));
}

#[test]
fn settings_no_storage_can_hold_are_refused() {
    for (text, want) in [
        (
            "base = \"bitnet\"\n[ternary]\ngroup = \"row\"\n",
            "i2_s stores one scale per tensor",
        ),
        (
            "[[rules]]\nmatch = \"*\"\ntype = \"i2_s\"\ngroup = 128\n",
            "i2_s stores one scale per tensor",
        ),
        (
            "[[rules]]\nmatch = \"*\"\ntype = \"tq2_0\"\ngroup = 128\n",
            "multiple of 256",
        ),
        ("[ternary]\ngroup = 100\n", "multiple of 256"),
        (
            "[[rules]]\nmatch = \"*\"\ntype = \"q4_k\"\ngroup = 256\n",
            "apply to i2_s, tq1_0 and tq2_0",
        ),
        (
            "[ternary]\ngroup = \"row\"\n[[rules]]\nmatch = \"*\"\ntype = \"i2_s\"\n",
            "takes [ternary]'s settings",
        ),
        ("[ternary]\nclip = 0.0\n", "finite number above 0"),
        ("[ternary]\ngroup = \"column\"\n", "expected \"tensor\", \"row\""),
        ("[ternary]\ngroup = 0\n", "positive number"),
        ("[activations]\nmode = \"log\"\n", "expected symmetric or asymmetric"),
        ("[activations]\nclip = -1.0\n", "finite number above 0"),
        ("[activations]\nrounding = \"up\"\n", "expected half_even"),
        ("[activations]\nbits = 4\n", "unknown field"),
    ] {
        let err = Policy::from_config(text, false).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    // JSON takes the same settings.
    let json = r#"{"base": "tq2_0", "ternary": {"group": 512, "clip": 2.0}, "activations": {"mode": "symmetric"}}"#;
    let p = Policy::from_config(json, true).unwrap();
    let d = p.decide("blk.0.ffn_up.weight", &[512, 1024], DType::F16, 2);
    assert_eq!(d.target, DType::TQ2_0);
    let spec = d.ternary.unwrap();
    assert_eq!(
        spec.config(),
        TernaryConfig {
            granularity: Granularity::PerGroup { size: 512 },
            clip: Some(2.0)
        }
    );
    // A row that fits no TQ block falls back (to Q4_0, as llama.cpp does) without them.
    let d = p.decide("blk.0.ffn_up.weight", &[512, 96], DType::F16, 2);
    assert_eq!((d.target, d.ternary), (DType::Q4_0, None));
    // Plain tq2_0 is ggml's quantizer: no ternary settings.
    let d = Policy::parse("tq2_0")
        .unwrap()
        .decide("blk.0.ffn_up.weight", &[512, 1024], DType::F16, 2);
    assert_eq!(d.ternary, None);
}

/// `--quantize tl1|tl2`: the same absmean codes and scale as `i2_s`, in bitnet.cpp's
/// lookup-table layouts (written with the fork's type ids), so the weights' values and
/// int8 matvec equal I2_S's exactly; shapes no tiling fits fall back to I2_S.
#[test]
fn tl1_and_tl2_targets_hold_the_i2_s_weights() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let (i2s, _) = Loader::new(&path)
        .quantize(Policy::parse("i2_s").unwrap())
        .load()
        .unwrap();
    for (spec, dtype) in [("tl1", DType::TL1), ("tl2", DType::TL2)] {
        let (model, report) = Loader::new(&path)
            .quantize(Policy::parse(spec).unwrap())
            .budget(4096)
            .measure_error(true)
            .load()
            .unwrap();
        let mut checked = 0;
        for w in i2s.weights().filter(|w| w.dtype() == DType::I2S) {
            let t = model.weight(w.name()).unwrap();
            assert_eq!(t.dtype(), dtype, "{spec} {}", w.name());
            assert_eq!(t.to_f32().unwrap(), w.to_f32().unwrap(), "{spec} {}", w.name());
            let x: Vec<f32> = (0..w.cols()).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
            let (mut a, mut b) = (vec![0f32; w.rows()], vec![0f32; w.rows()]);
            w.matvec(&x, &mut a).unwrap();
            t.matvec(&x, &mut b).unwrap();
            assert_eq!(a, b, "{spec} {}", w.name());
            checked += 1;
        }
        assert_eq!(checked, 14, "{spec}");
        // Written as a GGUF with the fork's ids, read back the same.
        let out = std::env::temp_dir().join(format!("qload-{spec}-{}.gguf", std::process::id()));
        model
            .write_gguf_file(qload_formats::gguf::GgufWriter::new(), &out)
            .unwrap();
        assert!(report.per_tensor.iter().any(|t| t.dtype_after == dtype));
        let (back, _) = Loader::new(&out).load().unwrap();
        let mut scales = 0;
        for w in model.weights().filter(|w| w.dtype() == dtype) {
            assert_eq!(back.weight(w.name()).unwrap().to_f32().unwrap(), w.to_f32().unwrap());
            // As bitnet.cpp's converter: the scale also as `<name>_scale`, one F32 value,
            // equal to the f32 opening the weight's 32-byte scale area.
            let s = back.tensor(&format!("{}_scale", w.name())).expect("scale tensor");
            assert_eq!((s.dtype, s.shape.as_slice()), (DType::F32, &[1u64][..]));
            let t = back.tensor(w.name()).unwrap();
            let area = back.bytes(t).len() - 32;
            assert_eq!(back.bytes(s), &back.bytes(t)[area..area + 4]);
            scales += 1;
        }
        assert_eq!(scales, 14, "{spec}");
        // Written again, the scale tensors are not doubled.
        back.write_gguf_file(qload_formats::gguf::GgufWriter::new(), &out)
            .unwrap();
        let (again, _) = Loader::new(&out).load().unwrap();
        assert_eq!(again.tensors().len(), back.tensors().len());
        std::fs::remove_file(&out).ok();
    }
    // A shape TL cannot tile ([48, 256]: rows not a multiple of 32) falls back to I2_S.
    let d = Policy::parse("tl2")
        .unwrap()
        .decide("blk.0.attn_k.weight", &[48, 256], DType::F16, 2);
    assert_eq!(d.target, DType::I2S, "{}", d.reason);
    assert!(d.reason.contains("no TL2 tiling fits"), "{}", d.reason);
    let err = Policy::from_config("base = \"tl1\"\n[ternary]\ngroup = \"row\"\n", false).unwrap_err();
    assert!(err.contains("tl1 stores one scale per tensor"), "{err}");
}
