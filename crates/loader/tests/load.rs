//! Keep-as-stored loads of the committed fixtures.

use std::path::{Path, PathBuf};

use qload_loader::filter::Filter;
use qload_loader::names::{Direction, Family};
use qload_loader::{Action, Control, Error, Event, Loader};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

#[test]
fn gguf_loads_zero_copy_with_consistent_totals() {
    let (model, report) = Loader::new(fixture("gguf/tiny-llama-mixed.gguf")).load().unwrap();
    assert_eq!(report.tensors_loaded, 21);
    assert_eq!(model.tensors().len(), 21);
    assert!(model.tensors().iter().all(|t| t.is_mapped()));
    let src = qload_formats::open(fixture("gguf/tiny-llama-mixed.gguf")).unwrap();
    for t in src.tensors() {
        let l = model.tensor(&t.name).unwrap();
        assert_eq!(model.bytes(l), src.tensor_bytes(t).unwrap());
        assert_eq!((l.dtype, &l.shape), (t.dtype, &t.shape));
    }
    assert_eq!(report.original_bytes, report.stored_bytes);
    assert_eq!(report.compression_ratio, 1.0);
    assert_eq!(report.total_parameters, src.parameter_count());
    assert!(report.peak_rss_bytes.unwrap() > 0);
    assert!(
        report
            .summary()
            .starts_with("loaded 21/21 tensors: 21 kept as stored (mapped)"),
        "{}",
        report.summary()
    );
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "total_parameters",
        "original_bytes",
        "stored_bytes",
        "compression_ratio",
        "tensors_loaded",
        "tensors_expected",
        "peak_rss_bytes",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

#[test]
fn pickles_gather_strided_views_and_rename_to_gguf() {
    let (model, report) = Loader::new(fixture("torch/tiny_f32_zip.pth"))
        .filter(Filter::all().include("model.*").unwrap())
        .rename(Family::Llama, Direction::HfToGguf)
        .load()
        .unwrap();
    // The transposed o_proj of layer 1 is gathered; everything else is mapped.
    let o = model.tensor("blk.1.attn_output.weight").unwrap();
    assert!(!o.is_mapped());
    let gathered: Vec<_> = report
        .per_tensor
        .iter()
        .filter(|t| t.action == Action::Gathered)
        .collect();
    assert_eq!(gathered.len(), 1);
    assert_eq!(gathered[0].source_name, "model.layers.1.self_attn.o_proj.weight");
    // The truth file holds the logical (materialized) values.
    let truth = qload_formats::open(fixture("torch/tiny_f32_pth_truth.npz")).unwrap();
    let t = truth.tensor("model.layers.1.self_attn.o_proj.weight").unwrap();
    assert_eq!(model.bytes(o), truth.tensor_bytes(t).unwrap());
    assert!(
        report
            .per_tensor
            .iter()
            .any(|t| t.name == "blk.0.attn_q.weight" && t.rope_permuted)
    );
    assert!(report.unmatched_names.is_empty(), "{:?}", report.unmatched_names);
    assert!(report.tensors_filtered_out >= 6, "extra.* and lm_head are filtered out");
}

#[test]
fn missing_expected_tensors_fail_the_load() {
    let err = Loader::new(fixture("safetensors/tiny_f32.safetensors"))
        .expect([
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.layers.2.mlp.up_proj.weight",
        ])
        .load()
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensors { count: 2, expected: 3, first } if first[0] == "lm_head.weight"),
        "{err}"
    );
}

#[test]
fn progress_events_and_cancellation() {
    let mut seen = Vec::new();
    let (_, report) = Loader::new(fixture("safetensors/sharded_f32"))
        .progress(|e| {
            seen.push(match e {
                Event::Started { tensors, .. } => format!("start {tensors}"),
                Event::TensorStarted { index, .. } => format!("begin {index}"),
                Event::TensorFinished { index, .. } => format!("done {index}"),
                _ => String::new(),
            });
            Control::Continue
        })
        .load()
        .unwrap();
    assert_eq!(seen.len(), 1 + 2 * report.tensors_loaded);
    assert_eq!(seen[0], "start 20");
    assert_eq!(&seen[1..3], ["begin 0", "done 0"]);
    let mut n = 0;
    let err = Loader::new(fixture("safetensors/sharded_f32"))
        .progress(|e| {
            if matches!(e, Event::TensorFinished { .. }) {
                n += 1;
            }
            if n == 3 { Control::Cancel } else { Control::Continue }
        })
        .load()
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { done: 3, total: 20 }), "{err}");
}

#[test]
fn the_family_is_read_from_the_checkpoint() {
    let (model, _) = Loader::new(fixture("gguf/tiny-llama-mixed.gguf"))
        .rename_detected(Direction::GgufToHf)
        .load()
        .unwrap();
    assert!(model.tensor("model.layers.1.mlp.down_proj.weight").is_some());
    let err = Loader::new(fixture("safetensors/tiny_f32.safetensors"))
        .rename_detected(Direction::HfToGguf)
        .load()
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownFamily { architecture, .. } if architecture.contains("config.json")),
        "{err}"
    );
}

#[test]
fn pre_quantized_weights_kept_native_decode_and_multiply() {
    let (model, report) = Loader::new(fixture("hf/bnb-nf4-dq")).load().unwrap();
    let t = model.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(report.per_tensor[1].action, Action::Native, "{:?}", report.per_tensor);
    assert!(t.scheme.is_some());
    assert!(model.bytes(t).is_empty());
    let w = model.prequant(t).unwrap();
    assert_eq!((w.rows(), w.cols()), (256, 128));
    let mut dense = vec![0f32; 256 * 128];
    w.dequantize_rows(0, &mut dense).unwrap();
    let x: Vec<f32> = (0..128).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
    let mut y = vec![0f32; 256];
    w.matvec(&x, &mut y).unwrap();
    for r in 0..256 {
        let want: f64 = (0..128).map(|c| dense[r * 128 + c] as f64 * x[c] as f64).sum();
        assert!(
            (y[r] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "row {r}: {} vs {want}",
            y[r]
        );
    }
    // Plain tensors beside it stay ordinary mapped views.
    assert!(model.tensor("model.layers.0.mlp.down_proj.bias").unwrap().is_mapped());
}

/// A safetensors file with one f32 matrix, written by hand (header + data).
fn big_f32(rows: usize, cols: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "qload-progress-{}-{rows}x{cols}.safetensors",
        std::process::id()
    ));
    let n = rows * cols * 4;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{n}]}}}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let mut x = 0x1234_5678u32;
    for _ in 0..rows * cols {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.extend_from_slice(&((x as f32 / u32::MAX as f32) - 0.5).to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn progress_within_a_large_tensor_and_cancellation_mid_tensor() {
    let path = big_f32(4096, 4096);
    let total = 4096 * 4096 * 4u64;
    let mut within = Vec::new();
    Loader::new(&path)
        .quantize(qload_loader::policy::Policy::parse("q4_k").unwrap())
        .threads(Some(1))
        .progress(|e| {
            if let Event::Bytes { bytes_done } = e {
                within.push(*bytes_done);
            }
            Control::Continue
        })
        .load()
        .unwrap();
    assert!(!within.is_empty(), "no progress inside the tensor");
    assert!(within.windows(2).all(|w| w[0] <= w[1]), "{within:?}");
    assert!(within.iter().all(|&b| b <= total));

    let err = Loader::new(&path)
        .quantize(qload_loader::policy::Policy::parse("q4_k").unwrap())
        .threads(Some(1))
        .progress(|e| {
            if matches!(e, Event::Bytes { .. }) {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .load()
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { done: 0, total: 1 }), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_architecture_template_catches_missing_weights() {
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let (_, report) = Loader::new(&path).expect_architecture().load().unwrap();
    // token_embd, output_norm and 9 weights in each of 2 blocks.
    assert_eq!(report.tensors_expected, Some(2 + 2 * 9));
    let err = Loader::new(&path)
        .filter(Filter::all().exclude("blk.1.ffn_down.weight").unwrap())
        .expect_architecture()
        .load()
        .unwrap_err();
    match err {
        Error::MissingTensors { count, first, .. } => {
            assert_eq!(count, 1);
            assert_eq!(first, ["blk.1.ffn_down.weight"]);
        }
        other => panic!("{other}"),
    }
    // Renamed to Hugging Face names, the template follows.
    let (_, report) = Loader::new(&path)
        .rename(Family::Llama, Direction::GgufToHf)
        .expect_architecture()
        .load()
        .unwrap();
    assert_eq!(report.tensors_expected, Some(20));
}

#[test]
fn placement_plans_with_converted_sizes_and_refuses_a_gpu_it_cannot_use() {
    use qload_placement::{CpuOnly, GpuFirst, Inventory};
    let path = fixture("gguf/tiny-llama-f16.gguf");
    let cpu = Inventory::simulate("cpu=8GiB").unwrap();
    let (model, report) = Loader::new(&path)
        .quantize(qload_loader::policy::Policy::parse("q4_k_m").unwrap())
        .placement(CpuOnly, cpu)
        .load()
        .unwrap();
    assert!(model.tensors().iter().all(|t| t.device == qload_placement::Device::Cpu));
    // The plan was made with the sizes after conversion.
    assert_eq!(report.devices, [("cpu".to_string(), report.stored_bytes)]);

    let gpu = Inventory::simulate("cuda:0=1GiB,cpu=8GiB").unwrap();
    let err = Loader::new(&path)
        .placement(GpuFirst::default(), gpu)
        .load()
        .unwrap_err();
    let msg = err.to_string();
    if cfg!(feature = "gpu") {
        assert!(msg.contains("cuda") || msg.contains("CUDA"), "{msg}");
    } else {
        assert!(
            msg.contains("cuda:0") && msg.contains("not compiled with gpu support"),
            "{msg}"
        );
    }
}

#[test]
fn native_weights_planned_on_a_gpu_fail_early_or_fall_back_when_asked() {
    use qload_placement::{GpuFirst, Inventory};
    let path = fixture("hf/mlx-4bit");
    let gpu = || Inventory::simulate("cuda:0=8GiB,cpu=8GiB").unwrap();
    // Default: an error naming the scheme, the operation and the device.
    let err = Loader::new(&path)
        .placement(GpuFirst::default(), gpu())
        .load()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mlx affine 4bit g64") && msg.contains("cuda:0"), "{msg}");
    // With a fallback the weight is dequantized instead and gets as far as the upload,
    // which this build (no driver or no `gpu` feature) cannot do.
    let err = Loader::new(&path)
        .placement(GpuFirst::default(), gpu())
        .device_fallback(Some(qload_formats::DType::F16))
        .load()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("not compiled with gpu support") || msg.contains("driver"),
        "the fallback should have reached the upload: {msg}"
    );
}
