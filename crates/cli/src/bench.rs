//! `qload bench kernels`: throughput of the codecs (dequantize, quantize, matvec)
//! per type, median and spread of several runs after a warm-up.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use qload_dtype::DType;
use qload_quant_core::{codec, kernels};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Dequantize, quantize and matvec throughput per type on a synthetic matrix.
    Kernels(KernelArgs),
}

#[derive(Debug, Args)]
struct KernelArgs {
    /// Comma-separated types (ggml names: q4_0, q8_0, q4_k, q6_k, iq4_xs, tq2_0, f16, …).
    #[arg(long, value_delimiter = ',', default_value = "q4_0,q5_0,q8_0,q4_k,q5_k,q6_k")]
    types: Vec<String>,
    /// Comma-separated operations: dequant, quant, matvec.
    #[arg(long, value_delimiter = ',', default_value = "dequant,quant,matvec")]
    ops: Vec<String>,
    /// Matrix rows.
    #[arg(long, default_value_t = 4096)]
    rows: usize,
    /// Matrix columns (the row length; a multiple of the type's block).
    #[arg(long, default_value_t = 4096)]
    cols: usize,
    /// Worker threads (rayon pool size).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs after one warm-up run.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print JSON (`qload.bench.kernels/1`) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    dtype: String,
    op: String,
    elements: usize,
    bytes: usize,
    median_s: f64,
    min_s: f64,
    max_s: f64,
    melem_per_s: f64,
    gb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    rows: usize,
    cols: usize,
    threads: usize,
    runs: usize,
    results: Vec<Row>,
    skipped: Vec<String>,
}

pub fn run(args: &BenchArgs) -> Result<std::process::ExitCode> {
    match &args.what {
        BenchWhat::Kernels(k) => kernels_bench(k),
    }
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> (f64, f64, f64) {
    f();
    let mut t: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    (t[t.len() / 2], t[0], t[t.len() - 1])
}

/// Deterministic weights that look like a trained layer's (roughly Gaussian, σ ≈ 0.02).
fn weights(n: usize) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * 0.035
        })
        .collect()
}

fn kernels_bench(a: &KernelArgs) -> Result<std::process::ExitCode> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads.max(1)).build()?;
    let n = a.rows.checked_mul(a.cols).context("rows × cols overflows")?;
    for op in &a.ops {
        if !["dequant", "quant", "matvec"].contains(&op.as_str()) {
            bail!("unknown operation `{op}`: expected dequant, quant or matvec");
        }
    }
    let source = weights(n);
    let x: Vec<f32> = source[..a.cols].iter().map(|v| v * 30.0).collect();
    let mut report = Report {
        schema: "qload.bench.kernels/1",
        rows: a.rows,
        cols: a.cols,
        threads: a.threads,
        runs: a.runs,
        results: vec![],
        skipped: vec![],
    };
    for name in &a.types {
        let dtype = DType::from_name(name).with_context(|| format!("unknown type `{name}`"))?;
        let c = codec(dtype).with_context(|| format!("{dtype}: qload has no codec for this type"))?;
        if !a.cols.is_multiple_of(c.block_elems()) {
            bail!(
                "{dtype}: --cols {} is not a multiple of the block ({})",
                a.cols,
                c.block_elems()
            );
        }
        if !c.can_quantize() {
            report
                .skipped
                .push(format!("{dtype}: no quantizer yet, so no weights to benchmark"));
            continue;
        }
        let mut q = vec![0u8; c.bytes_for(n)?];
        let row_bytes = c.bytes_for(a.cols)?;
        let quantize = |q: &mut [u8]| {
            q.par_chunks_mut(row_bytes * 16)
                .zip(source.par_chunks(a.cols * 16))
                .for_each(|(q, x)| {
                    c.quantize(x, a.cols, None, q).expect("lengths are checked above");
                })
        };
        pool.install(|| quantize(&mut q));
        for op in &a.ops {
            let (med, min, max) = match op.as_str() {
                "dequant" => {
                    if !c.can_dequantize() {
                        report.skipped.push(format!("{dtype} dequant: not implemented"));
                        continue;
                    }
                    let mut out = vec![0f32; n];
                    pool.install(|| {
                        time(a.runs, || {
                            kernels::dequantize_par(dtype, &q, &mut out).expect("checked")
                        })
                    })
                }
                "quant" => {
                    let mut out = vec![0u8; q.len()];
                    pool.install(|| time(a.runs, || quantize(&mut out)))
                }
                _ => {
                    if c.vec_dot_type().is_none() {
                        report.skipped.push(format!("{dtype} matvec: no dot product"));
                        continue;
                    }
                    let mut y = vec![0f32; a.rows];
                    pool.install(|| {
                        time(a.runs, || {
                            kernels::matvec(dtype, &q, a.rows, a.cols, &x, &mut y).expect("checked")
                        })
                    })
                }
            };
            report.results.push(Row {
                dtype: dtype.to_string(),
                op: op.clone(),
                elements: n,
                bytes: q.len(),
                median_s: med,
                min_s: min,
                max_s: max,
                melem_per_s: n as f64 / med / 1e6,
                gb_per_s: q.len() as f64 / med / 1e9,
            });
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} x {} matrix, {} thread(s), median of {} runs after a warm-up",
            a.rows, a.cols, a.threads, a.runs
        );
        println!(
            "{:<8} {:<8} {:>10} {:>12} {:>9} {:>14}",
            "type", "op", "median ms", "Melem/s", "GB/s", "spread"
        );
        for r in &report.results {
            println!(
                "{:<8} {:<8} {:>10.2} {:>12.0} {:>9.2} {:>6.1}%..{:>+5.1}%",
                r.dtype,
                r.op,
                r.median_s * 1e3,
                r.melem_per_s,
                r.gb_per_s,
                (r.min_s / r.median_s - 1.0) * 100.0,
                (r.max_s / r.median_s - 1.0) * 100.0
            );
        }
        for s in &report.skipped {
            println!("skipped: {s}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
