//! The loader's error type.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while planning or loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `--filter` / `--exclude` pattern that does not compile.
    #[error(
        "invalid tensor pattern {pattern:?}: {reason} (globs like `blk.*.attn_*`, or regexes written `re:^blk\\.[0-9]+\\.`)"
    )]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A model family without a name mapping.
    #[error("no GGUF/Hugging Face name mapping for architecture {architecture:?} (known: {known})")]
    UnknownFamily {
        /// The architecture asked for.
        architecture: String,
        /// The families that have a mapping.
        known: String,
    },
    /// Tensors that an expected-names list requires are missing.
    #[error("{count} of {expected} expected tensors are missing, e.g. {first:?}; nothing was returned")]
    MissingTensors {
        /// How many are missing.
        count: usize,
        /// How many were expected.
        expected: usize,
        /// The first few missing names.
        first: Vec<String>,
    },
    /// Two tensors would have the same name after renaming.
    #[error("two tensors are both named {name:?} after renaming")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The progress callback asked to stop.
    #[error("load cancelled after {done} of {total} tensors")]
    Cancelled {
        /// Tensors finished.
        done: usize,
        /// Tensors planned.
        total: usize,
    },
    /// A tensor's conversion needs a codec operation qload does not have.
    #[error("{name}: cannot {op} {dtype} (qload has no such codec yet)")]
    Unsupported {
        /// The tensor.
        name: String,
        /// The type.
        dtype: qload_formats::DType,
        /// The operation.
        op: &'static str,
    },
    /// A codec refused a tensor's bytes or shape.
    #[error("{name}: {source}")]
    Codec {
        /// The tensor.
        name: String,
        /// What the codec said.
        source: qload_quant_core::QuantError,
    },
    /// A BitNet conversion refused a tensor (shape or values).
    #[error("{name}: {reason}")]
    Bitnet {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// The worker pool could not be built.
    #[error("cannot start the worker threads: {reason}")]
    Threads {
        /// Why.
        reason: String,
    },
    /// candle refused a tensor (feature `candle`).
    #[error("{name}: candle: {reason}")]
    Candle {
        /// The tensor.
        name: String,
        /// What candle said.
        reason: String,
    },
    /// An importance matrix that cannot be read or does not fit a tensor.
    #[error("imatrix {path}: {reason}")]
    Imatrix {
        /// The file (or the tensor it did not fit).
        path: String,
        /// Why.
        reason: String,
    },
    /// A quantization spec that does not parse.
    #[error("{reason}")]
    Policy {
        /// What is wrong with it.
        reason: String,
    },
    /// The cache directory could not be used.
    #[error("cache: {reason}")]
    Cache {
        /// Why.
        reason: String,
    },
    /// Planning or uploading to a device failed.
    #[error(transparent)]
    Placement(#[from] qload_placement::PlacementError),
    /// A file could not be read.
    #[error(transparent)]
    Format(#[from] qload_formats::Error),
    /// A pre-quantized checkpoint whose weights cannot be assembled.
    #[error(transparent)]
    Prequant(#[from] qload_prequant::Error),
}

impl Error {
    pub(crate) fn codec(name: &str, source: qload_quant_core::QuantError) -> Error {
        Error::Codec {
            name: name.to_string(),
            source,
        }
    }
}
