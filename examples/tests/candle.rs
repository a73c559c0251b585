//! qload → candle (feature `candle` of qload-loader): float tensors keep their bytes,
//! ggml-quantized ones become `QTensor`s with the same bytes, types candle lacks are
//! dequantized for `Tensor` and refused by name for `QTensor`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use qload_loader::Loader;
use qload_loader::policy::Policy;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

#[test]
fn tensors_and_qtensors_carry_the_loaded_bytes() {
    let dev = Device::Cpu;
    let (model, _) = Loader::new(fixture("gguf/tiny-llama-f16.gguf"))
        .quantize(Policy::parse("q4_k_m").unwrap())
        .load()
        .unwrap();
    for t in model.tensors() {
        let c = model.to_candle(t, &dev).unwrap();
        assert_eq!(
            c.dims(),
            t.shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
            "{}",
            t.name
        );
        if matches!(t.dtype, qload_formats::DType::F16 | qload_formats::DType::F32) {
            // Same bytes back.
            let back: Vec<u8> = match t.dtype {
                qload_formats::DType::F16 => c
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<half::f16>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                _ => c
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            };
            assert_eq!(back, model.bytes(t), "{}", t.name);
        } else {
            let q = model.to_qtensor(t, &dev).unwrap();
            assert_eq!(q.data().unwrap().as_ref(), model.bytes(t), "{}", t.name);
        }
    }
}

#[test]
fn types_candle_lacks_are_dequantized_or_refused() {
    let dev = Device::Cpu;
    let (model, _) = Loader::new(fixture("gguf/tiny-llama-f16.gguf"))
        .quantize(Policy::parse("iq4_nl").unwrap())
        .load()
        .unwrap();
    let t = model.tensor("blk.0.ffn_up.weight").unwrap();
    assert_eq!(t.dtype, qload_formats::DType::IQ4NL);
    let err = model.to_qtensor(t, &dev).unwrap_err().to_string();
    assert!(
        err.contains("IQ4_NL") && err.contains("candle has no such type"),
        "{err}"
    );
    let dense = model.to_candle(t, &dev).unwrap();
    let mut want = vec![0f32; dense.elem_count()];
    qload_quant_core::codec(t.dtype)
        .unwrap()
        .dequantize(model.bytes(t), &mut want)
        .unwrap();
    assert_eq!(dense.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);

    // A pre-quantized weight kept native becomes its library's dequantization.
    let (model, _) = Loader::new(fixture("hf/mlx-4bit")).load().unwrap();
    let t = model.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    let c = model.to_candle(t, &dev).unwrap();
    assert_eq!(c.dims(), &[256, 128]);
    assert!(model.to_qtensor(t, &dev).is_err());
}
