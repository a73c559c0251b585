//! # qload-loader
//!
//! Progressive, memory-bounded loading: a plan from `qload-placement`, tensors
//! streamed from a `qload-formats` source through `qload-quant-core` codecs onto
//! devices, with stats, progress and a cache.
//!
//! **Status:** partly written (issue 6). What exists: [`Loader`] for loads that keep
//! every tensor as stored (zero-copy views of the map; strided pickle views gathered) or
//! convert them by a [`policy::Policy`] (a ggml type, a llama.cpp mix, a float type,
//! BitNet I2_S) in chunks bounded by a memory budget, releasing converted source pages,
//! with per-tensor decisions and optional error stats; [`filter::Filter`] (which
//! tensors, by glob or regex), [`names`] (GGUF <-> Hugging Face names for the llama,
//! gemma, gemma2/3, qwen2, qwen3 and phi3 families), an expected-names check, progress
//! events with cancellation, and a [`LoadReport`]. Not yet: placement on devices and the
//! cache.
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
pub use estimate::{Estimate, estimate};
pub use load::{
    Action, Control, DEFAULT_BUDGET, Event, LoadReport, LoadedModel, LoadedTensor, Loader, TensorStat, peak_rss_bytes,
};
pub use weight::{Weight, WeightKind};
