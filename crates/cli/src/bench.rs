//! `qload bench kernels`: throughput of the codecs (dequantize, quantize, matvec)
//! per type, median and spread of several runs after a warm-up.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use qload_dtype::DType;
use qload_quant_core::{codec, kernels, prequant};
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
    /// Decode throughput of pre-quantized weights (bitsandbytes, MLX, HQQ, quanto) next
    /// to Q4_0's, on one thread in the same run.
    Prequant(PrequantArgs),
    /// The weight traffic of a decode step on a real model: one matvec per weight matrix
    /// per token, through qload's `Weight` (any storage); tokens/s and GB/s of weights.
    Model(ModelArgs),
}

#[derive(Debug, Args)]
struct ModelArgs {
    /// A weight file, split-GGUF part, shard index or directory.
    file: std::path::PathBuf,
    /// Quantize on load first (keep, q4_k_m, q8_0, i2_s, …).
    #[arg(long, default_value = "keep")]
    quantize: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Tokens to time (after one warm-up token).
    #[arg(long, default_value_t = 16)]
    tokens: usize,
    /// Interleave Q4_0 matrices eight rows at a time on load (`qload load --repack`).
    #[arg(long)]
    repack: bool,
    /// Print JSON (`qload.bench.model/1`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PrequantArgs {
    /// Matrix rows.
    #[arg(long, default_value_t = 4096)]
    rows: usize,
    /// Matrix columns (a multiple of 128).
    #[arg(long, default_value_t = 4096)]
    cols: usize,
    /// Timed runs after warm-up runs (at least one, for at least 100 ms).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Print JSON (`qload.bench.prequant/1`) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct KernelArgs {
    /// Comma-separated types (ggml names: q4_0, q8_0, q4_k, q6_k, iq4_xs, tq2_0, f16, …).
    #[arg(long, value_delimiter = ',', default_value = "q4_0,q5_0,q8_0,q4_k,q5_k,q6_k")]
    types: Vec<String>,
    /// Comma-separated operations: dequant, quant, matvec, matvec-repacked (Q4_0 with
    /// eight rows interleaved, as `qload_quant_core::repack::Q4_0x8` keeps it; I2_S
    /// with four, `repack::I2sX4`), read (the quantized bytes read once by a plain
    /// loop on the same threads: the memory-bandwidth reference for a matvec).
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
    /// Timed runs after warm-up runs (at least one, for at least 100 ms).
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
        BenchWhat::Prequant(p) => prequant_bench(p),
        BenchWhat::Model(m) => model_bench(m),
    }
}

/// Reads every byte of `b` once (eight independent 64-bit xor lanes per 64 bytes,
/// which the compiler vectorizes), 1 MiB chunks on rayon's pool; the result only
/// keeps the reads from being optimized away.
fn read_bytes(b: &[u8]) -> u64 {
    b.par_chunks(1 << 20)
        .map(|c| {
            let mut acc = [0u64; 8];
            for line in c.chunks_exact(64) {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a ^= u64::from_le_bytes(line[8 * k..8 * k + 8].try_into().expect("8 bytes"));
                }
            }
            acc.iter().fold(0, |x, &y| x ^ y)
        })
        .reduce(|| 0, |x, y| x ^ y)
}

/// [`time`] of [`read_bytes`] over `b` on `pool`: the `read` operation.
fn time_read(runs: usize, pool: &rayon::ThreadPool, b: &[u8]) -> (f64, f64, f64) {
    pool.install(|| {
        time(runs, || {
            std::hint::black_box(read_bytes(b));
        })
    })
}

/// The least time the warm-up calls of [`time`] take together.
const WARM_UP: std::time::Duration = std::time::Duration::from_millis(100);

/// Median, fastest and slowest of `runs` timed calls of `f`, after warm-up calls for
/// at least [`WARM_UP`] (at least one call): the first calls after a buffer was
/// written, or after the pool's workers slept, ran up to 2× slower on this VM, which
/// penalized whichever operation came first.
fn time<F: FnMut()>(runs: usize, mut f: F) -> (f64, f64, f64) {
    let warm = Instant::now();
    f();
    while warm.elapsed() < WARM_UP {
        f();
    }
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
        if !["dequant", "quant", "matvec", "matvec-repacked", "read"].contains(&op.as_str()) {
            bail!("unknown operation `{op}`: expected dequant, quant, matvec, matvec-repacked or read");
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
        if dtype == DType::I2S {
            bench_i2s(a, &pool, &source, &x, &mut report)?;
            continue;
        }
        if matches!(dtype, DType::TL1 | DType::TL2) {
            bench_tl(a, &pool, dtype, &source, &x, &mut report)?;
            continue;
        }
        let c = codec(dtype).with_context(|| format!("{dtype}: qload has no codec for this type"))?;
        if !a.cols.is_multiple_of(c.block_elems()) {
            bail!(
                "{dtype}: --cols {} is not a multiple of the block ({})",
                a.cols,
                c.block_elems()
            );
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
        if c.can_quantize() {
            pool.install(|| quantize(&mut q));
        } else {
            // No quantizer (the i-quants below IQ4, NVFP4, …): random blocks, which do
            // the same work in dequant and matvec as quantized ones.
            random_blocks(dtype, c.block_bytes(), &mut q);
        }
        for op in &a.ops {
            if op == "quant" && !c.can_quantize() {
                report.skipped.push(format!("{dtype} quant: no quantizer yet"));
                continue;
            }
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
                "read" => time_read(a.runs, &pool, &q),
                "matvec-repacked" => {
                    if dtype != DType::Q4_0 {
                        report
                            .skipped
                            .push(format!("{dtype} matvec-repacked: Q4_0 and I2_S only"));
                        continue;
                    }
                    let p = pool.install(|| qload_quant_core::repack::Q4_0x8::new(&q, a.rows, a.cols))?;
                    let mut y = vec![0f32; a.rows];
                    pool.install(|| time(a.runs, || p.matvec(&x, &mut y).expect("checked")))
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

#[derive(Debug, Serialize)]
struct PrequantRow {
    weight: String,
    op: String,
    median_s: f64,
    min_s: f64,
    max_s: f64,
    melem_per_s: f64,
    /// Throughput relative to Q4_0 → f32 dequantize in the same run.
    vs_q4_0_f32: f64,
}

/// Stored parts of a synthetic pre-quantized weight (random codes, sane scales).
#[derive(Debug)]
struct Owned {
    scheme: prequant::Scheme,
    data: (Vec<u8>, DType),
    scales: Option<(Vec<u8>, DType)>,
    offsets: Option<(Vec<u8>, DType)>,
    code: Option<Vec<u8>>,
    nested: Option<(Vec<u8>, Vec<u8>)>,
}

impl Owned {
    fn tensor(&self, rows: usize, cols: usize) -> Result<prequant::PrequantTensor<'_>> {
        let parts = prequant::Parts {
            data: Some(part(&self.data)),
            scales: self.scales.as_ref().map(part),
            offsets: self.offsets.as_ref().map(part),
            code: self.code.as_deref().map(f32_part),
            nested_scales: self.nested.as_ref().map(|n| f32_part(&n.0)),
            nested_code: self.nested.as_ref().map(|n| f32_part(&n.1)),
            nested_offset: 0.01,
        };
        Ok(prequant::PrequantTensor::new(
            self.scheme,
            vec![rows as u64, cols as u64],
            parts,
        )?)
    }
}

fn part((b, d): &(Vec<u8>, DType)) -> prequant::Part<'_> {
    let size = match d {
        DType::F16 | DType::BF16 => 2,
        DType::F32 | DType::U32 | DType::I32 => 4,
        _ => 1,
    };
    prequant::Part {
        bytes: b,
        dtype: *d,
        shape: vec![(b.len() / size) as u64],
    }
}

fn f32_part(b: &[u8]) -> prequant::Part<'_> {
    prequant::Part {
        bytes: b,
        dtype: DType::F32,
        shape: vec![(b.len() / 4) as u64],
    }
}

#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// `n` floats in `lo .. lo + 0.01` stored as `dtype`.
    fn floats(&mut self, n: usize, lo: f32, dtype: DType) -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                let v = lo + (self.next() % 1000) as f32 * 1e-5;
                match dtype {
                    DType::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
                    DType::BF16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
                    _ => v.to_le_bytes().to_vec(),
                }
            })
            .collect()
    }
}

use qload_quant_core::prequant::NF4_CODE as NF4;

fn prequant_weights(n: usize, rows: usize) -> Vec<(String, Owned)> {
    use prequant::{Bnb4Kind, MlxFloatMode, QuantoType, Scheme};
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let code: Vec<u8> = NF4.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut v = Vec::new();
    for dtype in [DType::F16, DType::BF16] {
        v.push((
            format!("nf4 bs64 {dtype}"),
            Owned {
                scheme: Scheme::Bnb4 {
                    kind: Bnb4Kind::Nf4,
                    blocksize: 64,
                    nested_blocksize: None,
                    dtype,
                },
                data: (r.bytes(n / 2), DType::U8),
                scales: Some((r.floats(n / 64, 0.02, DType::F32), DType::F32)),
                offsets: None,
                code: Some(code.clone()),
                nested: None,
            },
        ));
    }
    v.push((
        "nf4 bs64 dq BF16".into(),
        Owned {
            scheme: Scheme::Bnb4 {
                kind: Bnb4Kind::Nf4,
                blocksize: 64,
                nested_blocksize: Some(256),
                dtype: DType::BF16,
            },
            data: (r.bytes(n / 2), DType::U8),
            scales: Some((r.bytes(n / 64), DType::U8)),
            offsets: None,
            code: Some(code.clone()),
            nested: Some((
                r.floats((n / 64).div_ceil(256), 0.02, DType::F32),
                r.floats(256, -0.5, DType::F32),
            )),
        },
    ));
    for dtype in [DType::F16, DType::BF16] {
        v.push((
            format!("mlx 4bit g64 {dtype}"),
            Owned {
                scheme: Scheme::MlxAffine {
                    bits: 4,
                    group_size: 64,
                    dtype,
                },
                data: (r.bytes(n / 2), DType::U32),
                scales: Some((r.floats(n / 64, 0.002, dtype), dtype)),
                offsets: Some((r.floats(n / 64, -0.02, dtype), dtype)),
                code: None,
                nested: None,
            },
        ));
    }
    v.push((
        "mlx 8bit g64 BF16".into(),
        Owned {
            scheme: Scheme::MlxAffine {
                bits: 8,
                group_size: 64,
                dtype: DType::BF16,
            },
            data: (r.bytes(n), DType::U32),
            scales: Some((r.floats(n / 64, 0.0002, DType::BF16), DType::BF16)),
            offsets: Some((r.floats(n / 64, -0.02, DType::BF16), DType::BF16)),
            code: None,
            nested: None,
        },
    ));
    v.push((
        "mlx mxfp4 BF16".into(),
        Owned {
            scheme: Scheme::MlxFloat {
                mode: MlxFloatMode::Mxfp4,
                group_size: 32,
                dtype: DType::BF16,
            },
            data: (r.bytes(n / 2), DType::U32),
            scales: Some(((0..n / 32).map(|i| 120 + (i % 4) as u8).collect(), DType::U8)),
            offsets: None,
            code: None,
            nested: None,
        },
    ));
    v.push((
        "hqq 4bit g64 F16".into(),
        Owned {
            scheme: Scheme::Hqq {
                nbits: 4,
                group_size: 64,
                axis: 1,
                dtype: DType::F16,
            },
            data: (r.bytes(n / 2), DType::U8),
            scales: Some((r.floats(n / 64, 0.002, DType::F16), DType::F16)),
            offsets: Some((r.floats(n / 64, 7.0, DType::F16), DType::F16)),
            code: None,
            nested: None,
        },
    ));
    v.push((
        "quanto qint4 g128 BF16".into(),
        Owned {
            scheme: Scheme::Quanto {
                qtype: QuantoType::Qint4,
                group_size: Some(128),
                dtype: DType::BF16,
            },
            data: (r.bytes(n / 2), DType::U8),
            scales: Some((r.floats(n / 128, 0.002, DType::BF16), DType::BF16)),
            offsets: Some((r.floats(n / 128, 0.015, DType::BF16), DType::BF16)),
            code: None,
            nested: None,
        },
    ));
    v.push((
        "bnb int8 (SCB)".into(),
        Owned {
            scheme: Scheme::BnbInt8 { dtype: DType::F16 },
            data: (r.bytes(n), DType::I8),
            scales: Some((r.floats(rows, 0.5, DType::F32), DType::F32)),
            offsets: None,
            code: None,
            nested: None,
        },
    ));
    v
}

fn prequant_bench(a: &PrequantArgs) -> Result<std::process::ExitCode> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    if a.cols == 0 || a.rows == 0 || !a.cols.is_multiple_of(128) {
        bail!("--cols must be a positive multiple of 128 and --rows positive");
    }
    let n = a.rows.checked_mul(a.cols).context("rows × cols overflows")?;
    let (q4, f16c) = (codec(DType::Q4_0).context("Q4_0")?, codec(DType::F16).context("F16")?);
    let source = weights(n);
    let x: Vec<f32> = source[..a.cols].iter().map(|v| v * 30.0).collect();
    let mut q = vec![0u8; q4.bytes_for(n)?];
    q4.quantize(&source, a.cols, None, &mut q)?;
    drop(source);
    let mut out32 = vec![0f32; n];
    let mut out16 = vec![half::f16::ZERO; n];
    let mut out16_bytes = vec![0u8; 2 * n];
    let mut y = vec![0f32; a.rows];
    let mut rows: Vec<PrequantRow> = Vec::new();
    let mut push = |weight: &str, op: &str, (med, min, max): (f64, f64, f64)| {
        rows.push(PrequantRow {
            weight: weight.into(),
            op: op.into(),
            median_s: med,
            min_s: min,
            max_s: max,
            melem_per_s: n as f64 / med / 1e6,
            vs_q4_0_f32: 0.0,
        })
    };
    pool.install(|| -> Result<()> {
        push(
            "Q4_0",
            "→ f32",
            time(a.runs, || q4.dequantize(&q, &mut out32).expect("checked")),
        );
        // Q4_0 to f16 the way a loader would: through f32 scratch that stays in L1.
        let block_bytes = q4.bytes_for(4096)?;
        let mut scratch = vec![0f32; 4096];
        push(
            "Q4_0",
            "→ f16",
            time(a.runs, || {
                for (qb, o) in q.chunks(block_bytes).zip(out16_bytes.chunks_mut(4096 * 2)) {
                    let s = &mut scratch[..o.len() / 2];
                    q4.dequantize(qb, s).expect("checked");
                    f16c.quantize(s, s.len(), None, o).expect("checked");
                }
            }),
        );
        push(
            "Q4_0",
            "matvec",
            time(a.runs, || {
                kernels::matvec(DType::Q4_0, &q, a.rows, a.cols, &x, &mut y).expect("checked")
            }),
        );
        for (name, w) in prequant_weights(n, a.rows) {
            let t = w.tensor(a.rows, a.cols)?;
            push(
                &name,
                "→ f32",
                time(a.runs, || t.dequantize(&mut out32).expect("checked")),
            );
            push(
                &name,
                "→ f16",
                time(a.runs, || t.dequantize_rows_f16(0, &mut out16).expect("checked")),
            );
            push(&name, "matvec", time(a.runs, || t.matvec(&x, &mut y).expect("checked")));
        }
        Ok(())
    })?;
    let base = rows[0].median_s;
    for r in &mut rows {
        r.vs_q4_0_f32 = base / r.median_s;
    }
    if a.json {
        let report = serde_json::json!({
            "schema": "qload.bench.prequant/1",
            "rows": a.rows,
            "cols": a.cols,
            "threads": 1,
            "runs": a.runs,
            "kernels": qload_quant_core::arch::kernel_family(),
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} x {} matrix, 1 thread, median of {} runs after a warm-up, kernels: {}",
            a.rows,
            a.cols,
            a.runs,
            qload_quant_core::arch::kernel_family()
        );
        println!(
            "{:<24} {:<7} {:>10} {:>10} {:>12} {:>14}",
            "weight", "op", "median ms", "Melem/s", "vs Q4_0→f32", "spread"
        );
        for r in &rows {
            println!(
                "{:<24} {:<7} {:>10.2} {:>10.0} {:>11.2}x {:>6.1}%..{:>+5.1}%",
                r.weight,
                r.op,
                r.median_s * 1e3,
                r.melem_per_s,
                r.vs_q4_0_f32,
                (r.min_s / r.median_s - 1.0) * 100.0,
                (r.max_s / r.median_s - 1.0) * 100.0
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// BitNet I2_S (bitnet.cpp's x86 layout): `quant` is the whole-matrix absmean + packing
/// (`bitnet::i2s::quantize_into`: one speculative pass for tensors of 4M elements and
/// more, two passes below that; single-threaded by definition of a per-tensor mean), `dequant` decodes, `matvec` quantizes the
/// activations to int8 per token and runs the integer kernel (rows on the pool; the
/// codes checked ternary once before the timing, as `Weight` and `I2sX4` do).
fn bench_i2s(a: &KernelArgs, pool: &rayon::ThreadPool, source: &[f32], x: &[f32], report: &mut Report) -> Result<()> {
    use qload_quant_core::bitnet::i2s::{self, I2sLayout, I2sRef};
    let n = source.len();
    let mut q = vec![0u8; i2s::tensor_bytes(n)?];
    i2s::quantize_into(source, I2sLayout::X86, &mut q)?;
    for op in &a.ops {
        let (med, min, max) = match op.as_str() {
            "quant" => {
                let mut out = vec![0u8; q.len()];
                time(a.runs, || {
                    i2s::quantize_into(source, I2sLayout::X86, &mut out).expect("checked")
                })
            }
            "dequant" => {
                let r = I2sRef::new(&q, n, I2sLayout::X86)?;
                let mut out = vec![0f32; n];
                time(a.runs, || r.dequantize(&mut out).expect("checked"))
            }
            "read" => time_read(a.runs, pool, &q),
            "matvec-repacked" => {
                let p = pool.install(|| qload_quant_core::repack::I2sX4::new(&q, a.rows, a.cols))?;
                let mut y = vec![0f32; a.rows];
                pool.install(|| time(a.runs, || p.matvec_f32(x, &mut y).expect("checked")))
            }
            _ => {
                // The codes checked once, outside the timing, as `Weight` does on a
                // tensor's first matvec.
                let r = I2sRef::new(&q, n, I2sLayout::X86)?.check_codes();
                let mut y = vec![0f32; a.rows];
                pool.install(|| {
                    time(a.runs, || {
                        i2s::matvec_f32(&r, a.rows, a.cols, x, &mut y).expect("checked")
                    })
                })
            }
        };
        report.results.push(Row {
            dtype: "I2_S".into(),
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
    Ok(())
}

/// TL1/TL2: absmean + packing (`quant`), unpacking to codes (`dequant`) and the
/// lookup-table matvec with int8 activations (`matvec`; AVX2 or NEON kernels where
/// the CPU has them, the scalar specification otherwise or with `QLOAD_NO_SIMD=1`).
fn bench_tl(
    a: &KernelArgs,
    pool: &rayon::ThreadPool,
    dtype: DType,
    source: &[f32],
    x: &[f32],
    report: &mut Report,
) -> Result<()> {
    use qload_quant_core::bitnet::{act, tl};
    let kind = if dtype == DType::TL1 {
        tl::TlKind::Tl1
    } else {
        tl::TlKind::Tl2
    };
    let (m, k) = (a.rows, a.cols);
    let (q, _, p) = tl::quantize(source, m, k, kind).with_context(|| format!("{dtype} cannot tile {m} x {k}"))?;
    for op in &a.ops {
        let (med, min, max) = match op.as_str() {
            "quant" => time(a.runs, || {
                tl::quantize(source, m, k, kind).expect("checked");
            }),
            "dequant" => time(a.runs, || {
                match kind {
                    tl::TlKind::Tl1 => tl::tl1_unpack(&q, m, k, &p),
                    tl::TlKind::Tl2 => tl::tl2_unpack(&q, m, k, &p),
                }
                .expect("checked");
            }),
            _ => {
                let mut out = vec![0i64; m];
                pool.install(|| {
                    time(a.runs, || {
                        let aq = act::quantize_symmetric(x);
                        match kind {
                            tl::TlKind::Tl1 => tl::tl1_matvec_int(&q, m, k, &p, &aq.q, &mut out),
                            tl::TlKind::Tl2 => tl::tl2_matvec_int(&q, m, k, &p, &aq.q, &mut out),
                        }
                        .expect("checked")
                    })
                })
            }
        };
        report.results.push(Row {
            dtype: dtype.to_string(),
            op: op.clone(),
            elements: m * k,
            bytes: q.len(),
            median_s: med,
            min_s: min,
            max_s: max,
            melem_per_s: (m * k) as f64 / med / 1e6,
            gb_per_s: q.len() as f64 / med / 1e9,
        });
    }
    Ok(())
}

/// Whether a weight is a token embedding (read by row lookups, not by a matvec).
fn is_embedding(name: &str) -> bool {
    name.contains("token_embd") || name.contains("embed_tokens") || name.ends_with("wte.weight")
}

fn model_bench(a: &ModelArgs) -> Result<std::process::ExitCode> {
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let policy = qload_loader::policy::Policy::parse(&a.quantize).map_err(anyhow::Error::msg)?;
    let (model, report) = qload_loader::Loader::new(&a.file)
        .quantize(policy)
        .threads(Some(threads))
        .repack(a.repack)
        .load()
        .with_context(|| format!("cannot load {}", a.file.display()))?;
    let weights: Vec<_> = model.weights().filter(|w| !is_embedding(w.name())).collect();
    anyhow::ensure!(
        !weights.is_empty(),
        "{}: no weight matrices to multiply",
        a.file.display()
    );
    let bytes_per_token: u64 = weights.iter().map(|w| w.byte_size()).sum();
    let mut by_kind: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for w in &weights {
        let e = by_kind.entry(w.type_label()).or_default();
        e.0 += 1;
        e.1 += w.byte_size();
    }
    let xs: Vec<Vec<f32>> = weights
        .iter()
        .map(|w| (0..w.cols()).map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0).collect())
        .collect();
    let mut ys: Vec<Vec<f32>> = weights.iter().map(|w| vec![0f32; w.rows()]).collect();
    let mut step = || -> Result<()> {
        for ((w, x), y) in weights.iter().zip(&xs).zip(ys.iter_mut()) {
            w.matvec(x, y)?;
        }
        Ok(())
    };
    pool.install(&mut step)?;
    let t0 = Instant::now();
    for _ in 0..a.tokens.max(1) {
        pool.install(&mut step)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let tokens = a.tokens.max(1) as f64;
    // The machine's read bandwidth with as many threads: sum a 1 GiB buffer, best of 3.
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let s: u64 = pool.install(|| {
            buf.par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
                .sum()
        });
        std::hint::black_box(s);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let read_gbs = (words * 8) as f64 / best / 1e9;
    let gbs = bytes_per_token as f64 * tokens / secs / 1e9;
    let out = serde_json::json!({
        "schema": "qload.bench.model/1",
        "file": a.file.display().to_string(),
        "policy": report.policy,
        "threads": threads,
        "repack": a.repack,
        "tokens": a.tokens.max(1),
        "weights": weights.len(),
        "bytes_per_token": bytes_per_token,
        "seconds": secs,
        "tokens_per_s": tokens / secs,
        "gb_per_s": gbs,
        "read_bandwidth_gb_per_s": read_gbs,
        "bandwidth_share": gbs / read_gbs,
        "by_type": by_kind.iter().map(|(k, (n, b))| serde_json::json!({"type": k, "weights": n, "bytes": b})).collect::<Vec<_>>(),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let types: Vec<String> = by_kind
            .iter()
            .map(|(k, (n, b))| format!("{n} {k} ({})", crate::human_bytes(*b)))
            .collect();
        println!(
            "{}: {} weight matrices ({}), {} per token, {threads} thread(s)",
            a.file.display(),
            weights.len(),
            types.join(", "),
            crate::human_bytes(bytes_per_token)
        );
        println!(
            "{:.2} tokens/s ({} tokens in {:.3} s); {:.2} GB/s of weights = {:.0}% of the {:.1} GB/s this machine reads with {threads} thread(s)",
            tokens / secs,
            a.tokens.max(1),
            secs,
            gbs,
            100.0 * gbs / read_gbs,
            read_gbs
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Random block bytes for a type qload cannot quantize to; where a block opens with
/// its f16 scale, that scale is set to 0.01 so that values stay finite (IQ1_M spreads
/// its scale over `scales` and keeps whatever the bytes say: the work is the same).
fn random_blocks(dtype: DType, block_bytes: usize, q: &mut [u8]) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for b in q.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let f16_scale_first = matches!(
        dtype,
        DType::IQ2XXS
            | DType::IQ2XS
            | DType::IQ2S
            | DType::IQ3XXS
            | DType::IQ3S
            | DType::IQ1S
            | DType::Q1_0
            | DType::Q2_0
    );
    if f16_scale_first {
        for blk in q.chunks_exact_mut(block_bytes) {
            blk[..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
    }
}
