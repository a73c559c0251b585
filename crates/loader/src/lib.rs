//! # qload-loader
//!
//! Loads LLM weights — GGUF, safetensors (sharded or not), PyTorch pickles, NumPy, and
//! checkpoints that bitsandbytes, HQQ, MLX or optimum-quanto pre-quantized — keeping them
//! as stored or quantizing them on the way, within a memory budget, with per-tensor
//! decisions, error statistics, progress, a cache and placement on devices.
//!
//! The everyday calls:
//!
//! ```
//! # let path = "../../tests/fixtures/gguf/tiny-llama-f16.gguf";
//! // A file as it is (zero-copy views of the map):
//! let (model, report) = qload_loader::load(path)?;
//! println!("{}", report.summary());
//!
//! // Quantized on load with a preset or a type (q4_k_m, q8_0, i2_s, aggressive, …):
//! let (model, report) = qload_loader::load_quantized(path, "q4_k_m")?;
//!
//! // Any weight, whatever its storage, multiplies the same way:
//! let w = model.weight("blk.0.ffn_up.weight").unwrap();
//! let mut y = vec![0f32; w.rows()];
//! w.matvec(&vec![1.0; w.cols()], &mut y)?;
//!
//! // Arrays already in memory, with the error it costs:
//! let values: Vec<f32> = (0..256 * 256).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
//! let (_, stat) = qload_loader::memory::quantize("w", &values, &[256, 256], "q4_k")?;
//! assert!(stat.error.unwrap().cosine > 0.99);
//! # let _ = report;
//! # Ok::<(), qload_loader::Error>(())
//! ```
//!
//! Everything else is on [`Loader`]: filters and renaming ([`filter`], [`names`]),
//! policies and config files ([`policy`]), budget and threads, error measurement,
//! importance matrices ([`imatrix`]), the cache ([`cache`]), placement, progress with
//! cancellation, expected names or an architecture template. [`estimate`] answers "how
//! big would it be" from headers only; the `candle` feature hands tensors to candle.
//!
//! ```
//! use qload_loader::filter::Filter;
//! use qload_loader::names::{map_name, Direction, Family};
//!
//! let attention = Filter::all().include("blk.*.attn_*")?.exclude("re:attn_norm")?;
//! assert!(attention.matches("blk.3.attn_q.weight"));
//! assert!(!attention.matches("blk.3.attn_norm.weight"));
//!
//! let hf = map_name(Family::Llama, "blk.3.attn_q.weight", Direction::GgufToHf).unwrap();
//! assert_eq!(hf.name, "model.layers.3.self_attn.q_proj.weight");
//! assert!(hf.rope_permuted); // llama.cpp permuted these rows
//! # Ok::<(), qload_loader::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cache;
#[cfg(feature = "candle")]
pub mod candle;
mod convert;
mod error;
mod estimate;
pub mod filter;
pub mod imatrix;
mod load;
pub mod memory;
pub mod names;
pub mod policy;
pub mod weight;

pub use convert::ErrorStats;

/// Loads a checkpoint as it is stored (zero-copy views of the map where possible).
///
/// ```
/// let (model, report) = qload_loader::load("../../tests/fixtures/gguf/tiny-llama-f16.gguf")?;
/// assert_eq!(model.tensors().len(), report.tensors_loaded);
/// # Ok::<(), qload_loader::Error>(())
/// ```
pub fn load(path: impl AsRef<std::path::Path>) -> Result<(LoadedModel, LoadReport)> {
    Loader::new(path).load()
}

/// Loads a checkpoint and quantizes it on the way by `spec` (`q4_k_m`, `q8_0`, `i2_s`,
/// `f16`, …; see [`policy::Policy::parse`]) within the default memory budget.
///
/// ```
/// let (model, report) = qload_loader::load_quantized("../../tests/fixtures/gguf/tiny-llama-f16.gguf", "q8_0")?;
/// assert!(report.stored_bytes < report.original_bytes);
/// # let _ = model;
/// # Ok::<(), qload_loader::Error>(())
/// ```
pub fn load_quantized(path: impl AsRef<std::path::Path>, spec: &str) -> Result<(LoadedModel, LoadReport)> {
    let policy = policy::Policy::parse(spec).map_err(|reason| Error::Policy { reason })?;
    Loader::new(path).quantize(policy).load()
}
pub use error::{Error, Result};
pub use estimate::{Estimate, PlacementEstimate, estimate, estimate_placed};
pub use load::{
    Action, Control, DEFAULT_BUDGET, Event, LoadReport, LoadedModel, LoadedTensor, Loader, TensorStat, peak_rss_bytes,
};
pub use weight::{Weight, WeightKind};
