//! Load a model with qload (quantizing on the way) and hand it to candle: a
//! `VarBuilder` over the loaded tensors, and the quantized weights as `QTensor`s for
//! candle's `QMatMul`.
//!
//! ```sh
//! cargo run -p qload-examples --example candle_varbuilder -- tests/fixtures/gguf/tiny-llama-f16.gguf
//! ```

use anyhow::{Context, Result};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};
use qload_loader::Loader;
use qload_loader::policy::Policy;

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-f16.gguf".into());
    let (model, report) = Loader::new(&path)
        .quantize(Policy::parse("q4_k_m").map_err(anyhow::Error::msg)?)
        .load()
        .with_context(|| format!("loading {path}"))?;
    println!("{}", report.summary());

    let device = Device::Cpu;
    // Every tensor as a candle Tensor (quantized ones dequantized to f32): a VarBuilder.
    let vb = candle_nn::VarBuilder::from_tensors(model.to_candle_map(&device)?, DType::F32, &device);
    let hidden = model
        .tensor("output_norm.weight")
        .context("no output_norm.weight")?
        .shape[0] as usize;
    let norm = vb.get(hidden, "output_norm.weight")?;
    println!(
        "output_norm.weight via VarBuilder: {:?} {:?}",
        norm.shape(),
        norm.dtype()
    );

    // The quantized weights as they are, for candle's quantized matmul.
    let t = model.tensor("blk.0.ffn_up.weight").context("no blk.0.ffn_up.weight")?;
    let q = model.to_qtensor(t, &device)?;
    println!("{} as QTensor: {:?} {:?}", t.name, q.dtype(), q.shape());
    let mm = QMatMul::from_qtensor(q)?;
    let x = Tensor::ones((1, t.shape[1] as usize), DType::F32, &device)?;
    let y = mm.forward(&x)?;
    // The same product from qload's dequantized weights, to show they agree.
    let w = model.to_candle(t, &device)?;
    let y_ref = x.matmul(&w.t()?)?;
    let diff = (y - y_ref)?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!("QMatMul vs dequantized matmul: max |difference| {diff:.3e}");
    anyhow::ensure!(
        diff < 1e-1,
        "candle's QMatMul and qload's dequantization disagree: {diff}"
    );
    Ok(())
}
