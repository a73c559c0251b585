//! `qload`: inspect, validate (and, as the project grows, convert and load) LLM
//! weight files.

mod bench;
mod cache;
mod convert;
mod estimate;
mod inspect;
mod load;
mod plan;
mod progress;
mod scan;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect and validate LLM weight files: GGUF, safetensors, PyTorch, NPY/NPZ.
#[derive(Debug, Parser)]
#[command(name = "qload", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a file's tensors (name, dtype, shape, bytes, offset) and a summary.
    Inspect(InspectArgs),
    /// Check headers, tensor ranges and float values; exit 1 when anything is wrong.
    Validate(ValidateArgs),
    /// Load a model (today: every tensor kept as stored) and print what was loaded.
    Load(LoadArgs),
    /// Convert a model to a GGUF or safetensors file (quantize, requantize or dequantize).
    Convert(ConvertArgs),
    /// Benchmarks: `qload bench kernels` measures the codecs' throughput.
    Bench(bench::BenchArgs),
    /// Show where each tensor would go (CPU, GPUs) and why, before any data is read.
    Plan(PlanArgs),
    /// Manage a --cache-dir: list, clear or verify its entries.
    Cache(cache::CacheArgs),
    /// Sizes, bits per weight and memory a load would need under each policy, from headers only.
    Estimate(estimate::EstimateArgs),
}

/// Options shared by commands that open files.
#[derive(Debug, Args, Clone)]
pub struct OpenArgs {
    /// Read files into memory instead of mapping them (safe against files that
    /// change while in use, at the cost of RAM).
    #[arg(long)]
    no_mmap: bool,
    /// Force the GGUF numbering of type ids 36-39 instead of deciding per file.
    #[arg(long, value_enum)]
    ggml_ids: Option<FlavorArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FlavorArg {
    /// Upstream ggml (39 = MXFP4).
    Upstream,
    /// microsoft/BitNet's fork (36 = I2_S, 38 = TL1, 39 = TL2).
    Bitnet,
}

impl OpenArgs {
    fn options(&self) -> qload_formats::OpenOptions {
        qload_formats::OpenOptions {
            map_mode: if self.no_mmap {
                qload_formats::MapMode::Read
            } else {
                qload_formats::MapMode::Mmap
            },
            ggml_flavor: self.ggml_ids.map(|f| match f {
                FlavorArg::Upstream => qload_formats::GgmlFlavor::Upstream,
                FlavorArg::Bitnet => qload_formats::GgmlFlavor::Bitnet,
            }),
        }
    }
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Weight files, split-GGUF parts, shard indexes (*.index.json) or directories.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (schema `qload.inspect/1`, documented in docs/CLI.md).
    #[arg(long)]
    json: bool,
    /// Print metadata values (long arrays abbreviated).
    #[arg(long)]
    metadata: bool,
    /// Items shown at most per metadata array (first and last halves).
    #[arg(long, default_value_t = 6)]
    max_items: usize,
    /// List the stored keys as they are, without assembling pre-quantized weights.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Weight files, split-GGUF parts, shard indexes or directories.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (schema `qload.validate/1`).
    #[arg(long)]
    json: bool,
    /// Check headers and ranges only; do not read tensor data.
    #[arg(long)]
    headers_only: bool,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// A weight file, split-GGUF part, shard index or directory.
    file: PathBuf,
    /// Place the loaded tensors: `cpu`, `auto` (GPUs when there are any, else the CPU) or
    /// `cuda:N` (as `qload plan` would place them, with the converted sizes).
    #[arg(long)]
    device: Option<String>,
    /// When a pre-quantized weight kept native lands on a device without kernels for its
    /// scheme: `error` (default), or a type to convert it to instead (f16, bf16, q8_0, …).
    #[arg(long, default_value = "error")]
    device_fallback: String,
    /// Keep every Q4_0 matrix on the CPU with eight rows interleaved and every I2_S
    /// matrix with four, the layouts of qload's fastest Q4_0 and I2_S matvecs (costs a
    /// copy of those matrices in memory).
    #[arg(long)]
    repack: bool,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    quant: QuantArgs,
    #[command(flatten)]
    open: OpenArgs,
}

/// Which tensors, under which names, and what to report (shared by load and convert).
#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Load only tensors matching this glob (or `re:REGEX`); repeatable.
    #[arg(long)]
    filter: Vec<String>,
    /// Leave out tensors matching this glob (or `re:REGEX`); repeatable; wins over --filter.
    #[arg(long)]
    exclude: Vec<String>,
    /// Rename tensors between GGUF and Hugging Face conventions.
    #[arg(long, value_enum)]
    rename: Option<RenameArg>,
    /// Model family for --rename (llama, mistral, gemma, gemma2, gemma3, qwen2, qwen3, phi3);
    /// default: GGUF's general.architecture or config.json's model_type.
    #[arg(long)]
    arch: Option<String>,
    /// A file of expected tensor names, one per line: any missing one fails the load.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Require every weight the architecture implies (family and layer count from the
    /// checkpoint: embedding, final norm, each block's projections and norms).
    #[arg(long)]
    expect_arch: bool,
    /// Write the report (totals and per-tensor stats) as JSON to this file.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Print nothing on success.
    #[arg(long)]
    quiet: bool,
}

/// Options that convert tensors while loading.
#[derive(Debug, Args, Clone)]
pub struct QuantArgs {
    /// Target quantization: keep (default), a ggml type (q4_0, q8_0, q4_k, q6_k, tq2_0, …),
    /// a mix (q4_k_m, q4_k_s, q5_k_m, q5_k_s), a float type (f32, f16, bf16), i2_s, or a
    /// preset (default, quality, aggressive, bitnet).
    #[arg(long, default_value = "keep")]
    quantize: String,
    /// A quantization config (TOML, or JSON by extension): a base policy and per-tensor
    /// rules (glob or re: pattern → type); replaces --quantize.
    #[arg(long, conflicts_with = "quantize")]
    config: Option<PathBuf>,
    /// Bound on transient conversion memory (e.g. 256MiB, 2GiB).
    #[arg(long, default_value = "256MiB")]
    budget: String,
    /// Measure each converted tensor's error (MSE, relative RMSE, max |error|, cosine).
    #[arg(long)]
    measure: bool,
    /// Worker threads for conversion (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Settings for a pre-quantized checkpoint that saves none (e.g. `mlx,bits=4,group=64`,
    /// `quanto,mode=qint4`); settings saved in the checkpoint win, with a warning.
    #[arg(long)]
    prequant: Option<String>,
    /// Cache converted loads here (a GGUF per source and settings); later loads map it.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Quantize with this importance matrix (llama-imatrix output: .gguf or legacy .dat).
    #[arg(long)]
    imatrix: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A weight file, split-GGUF part, shard index or directory.
    file: PathBuf,
    /// Output file: `.gguf` (any type) or `.safetensors` (float types only).
    #[arg(short, long)]
    output: PathBuf,
    /// Convert every tensor to this float type (shorthand for --quantize f32|f16|bf16).
    #[arg(long, conflicts_with = "quantize")]
    dtype: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    quant: QuantArgs,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// A weight file, split-GGUF part, shard index or directory.
    file: PathBuf,
    /// `auto` (GPUs when there are any, else the CPU), `cpu`, or one GPU: `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Use a simulated inventory instead of the machine's, e.g. "cuda:0=24GiB,cuda:1=24GiB,cpu=64GiB"
    /// (DEVICE=TOTAL or DEVICE=TOTAL/FREE).
    #[arg(long)]
    simulate: Option<String>,
    /// Strategy; default: auto for `--device auto`, gpu-first for `cuda:N`, cpu for `cpu`.
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// llama.cpp's -ngl: offload the last N layer slots (the output layer counts as the last).
    #[arg(long, conflicts_with_all = ["layer_map", "strategy"])]
    n_gpu_layers: Option<u32>,
    /// mistral.rs-style map "0:10;1:20": 10 layers on cuda:0, the next 20 on cuda:1, the rest on the CPU.
    #[arg(long, conflicts_with = "strategy")]
    layer_map: Option<String>,
    /// Cap on the memory used per GPU, e.g. 8GiB.
    #[arg(long)]
    vram: Option<String>,
    /// Fraction of each GPU's free memory to use.
    #[arg(long, default_value_t = 0.8)]
    vram_fraction: f64,
    /// Memory to leave free on each GPU, e.g. 512MiB.
    #[arg(long, default_value = "0")]
    reserve: String,
    /// Use at most N GPUs (the lowest ordinals).
    #[arg(long)]
    gpus: Option<usize>,
    /// Where the input embedding goes.
    #[arg(long, value_enum, default_value = "cpu")]
    embedding: EdgeArg,
    /// Where the output layer (final norm + head) goes.
    #[arg(long, value_enum, default_value = "layers")]
    output: EdgeArg,
    /// Let gpu-first split a layer across two devices (tensor by tensor).
    #[arg(long)]
    split_layers: bool,
    /// Also print every tensor with its device and reason.
    #[arg(long)]
    tensors: bool,
    /// Print the plan as JSON (schema `qload.plan/1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyArg {
    /// Choose from the inventory and say why.
    Auto,
    /// Everything on the CPU.
    Cpu,
    /// Fill the GPUs in order, spill whole layers to the CPU.
    GpuFirst,
    /// Split layers across GPUs in proportion to free memory.
    MultiGpu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EdgeArg {
    /// Always on the CPU.
    Cpu,
    /// With the layers (next to layer 0, or after the last layer).
    Layers,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RenameArg {
    /// blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight
    GgufToHf,
    /// model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight
    HfToGguf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(&a),
        Command::Validate(a) => validate::run(&a),
        Command::Load(a) => load::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Cache(a) => cache::run(&a),
        Command::Estimate(a) => estimate::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `1.5 KiB`, `3.2 MiB`, ... (placement's formatter, shared by every command).
pub fn human_bytes(n: u64) -> String {
    qload_placement::format_size(n)
}

/// `512`, `1.2 K`, `3.4 M`, `7.0 B` parameters.
pub fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1} K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} M", n as f64 / 1e6),
        _ => format!("{:.2} B", n as f64 / 1e9),
    }
}
