//! candle's side of `qload bench model`: the weight traffic of a decode step on a GGUF,
//! one `QMatMul::forward` per weight matrix per token (token embeddings excluded, as
//! they are read by row lookups).
//!
//! Usage: `model_peers FILE TOKENS` (threads from `RAYON_NUM_THREADS`, as candle's CPU
//! kernels use rayon's global pool). Prints one JSON line.

use std::fs::File;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::quantized::{QMatMul, gguf_file};
use candle_core::{Device, Module, Tensor};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: model_peers FILE TOKENS")?;
    let tokens: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(16).max(1);
    let dev = Device::Cpu;
    let mut f = File::open(&path)?;
    let content = gguf_file::Content::read(&mut f)?;
    let mut names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut mats = Vec::new();
    let mut bytes = 0usize;
    for name in names {
        let info = &content.tensor_infos[&name];
        let dims = info.shape.dims();
        let embedding = name.contains("token_embd") || name.contains("embed_tokens") || name.ends_with("wte.weight");
        if dims.len() < 2 || dims.iter().filter(|&&d| d > 1).count() < 2 || embedding {
            continue;
        }
        let q = content.tensor(&mut f, &name, &dev)?;
        bytes += q.storage_size_in_bytes();
        let cols = *q.shape().dims().last().unwrap_or(&1);
        let x = Tensor::ones((1, cols), candle_core::DType::F32, &dev)?;
        mats.push((QMatMul::from_qtensor(q)?, x));
    }
    let step = |mats: &Vec<(QMatMul, Tensor)>| -> Result<()> {
        for (m, x) in mats {
            std::hint::black_box(m.forward(x)?);
        }
        Ok(())
    };
    step(&mats)?;
    let t0 = Instant::now();
    for _ in 0..tokens {
        step(&mats)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"impl": "candle", "weights": mats.len(), "bytes_per_token": bytes, "tokens": tokens,
                           "seconds": secs, "tokens_per_s": tokens as f64 / secs,
                           "gb_per_s": bytes as f64 * tokens as f64 / secs / 1e9})
    );
    Ok(())
}
