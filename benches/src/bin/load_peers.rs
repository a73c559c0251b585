//! One load, timed, in its own process (so that peak RSS is the load's own): qload
//! against candle on the loader's performance goals.
//!
//! Usage: `load_peers MODE FILE [THREADS]`, MODE one of
//! - `touch`: map the file and read one byte of every 4 KiB page (the floor);
//! - `qload-keep`: `Loader::new(FILE).load()` (kept as stored), then touch every page
//!   of every tensor (ready *and* resident);
//! - `candle-gguf`: `gguf_file::Content::read` + `Content::tensor` for every tensor;
//! - `qload-q4k`: quantize-on-load to Q4_K with THREADS workers (budget 256 MiB);
//! - `candle-q4k`: candle's mmaped safetensors, each tensor `to_dtype(F32)` then
//!   `QTensor::quantize(Q4K)`.
//!
//! Prints one JSON line: `{mode, seconds, peak_rss_bytes, elements}`.

use std::fs::File;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn touch(bytes: &[u8]) -> u64 {
    let mut s = 0u64;
    for i in (0..bytes.len()).step_by(4096) {
        s = s.wrapping_add(bytes[i] as u64);
    }
    s
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().context("usage: load_peers MODE FILE [THREADS]")?;
    let path = args.next().context("usage: load_peers MODE FILE [THREADS]")?;
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(1);
    let t0 = Instant::now();
    let elements: u64 = match mode.as_str() {
        "touch" => {
            let f = File::open(&path)?;
            // SAFETY: read-only map of a file this benchmark owns for its duration.
            let map = unsafe { memmap2::Mmap::map(&f)? };
            black_box(touch(&map));
            map.len() as u64
        }
        "qload-keep" => {
            let (model, _) = qload_loader::Loader::new(&path).load()?;
            let mut s = 0u64;
            let mut n = 0u64;
            for t in model.tensors() {
                s = s.wrapping_add(touch(model.bytes(t)));
                n += t.shape.iter().product::<u64>();
            }
            black_box(s);
            n
        }
        "candle-gguf" => {
            let mut f = File::open(&path)?;
            let content = candle_core::quantized::gguf_file::Content::read(&mut f)?;
            let mut n = 0u64;
            let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
            let mut keep = Vec::with_capacity(names.len());
            for name in names {
                let q = content.tensor(&mut f, &name, &candle_core::Device::Cpu)?;
                n += q.shape().elem_count() as u64;
                keep.push(q);
            }
            black_box(&keep);
            n
        }
        "qload-q4k" => {
            let (model, report) = qload_loader::Loader::new(&path)
                .quantize(qload_loader::policy::Policy::Uniform(qload_dtype::DType::Q4K))
                .threads(Some(threads))
                .load()?;
            black_box(model.tensors().len());
            report.total_parameters
        }
        "candle-q4k" => {
            // SAFETY: read-only maps of files this benchmark owns for its duration.
            let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(&path)? };
            let mut n = 0u64;
            let mut keep = Vec::new();
            for (name, _) in st.tensors() {
                let t = st.load(&name, &candle_core::Device::Cpu)?;
                let t = t.to_dtype(candle_core::DType::F32)?;
                n += t.elem_count() as u64;
                keep.push(candle_core::quantized::QTensor::quantize(
                    &t,
                    candle_core::quantized::GgmlDType::Q4K,
                )?);
            }
            black_box(&keep);
            n
        }
        other => bail!("unknown mode {other}"),
    };
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"mode": mode, "seconds": secs, "peak_rss_bytes": peak_rss(), "elements": elements, "threads": threads})
    );
    Ok(())
}
