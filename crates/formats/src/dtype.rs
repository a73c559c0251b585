//! Element types: re-exported from `qload-dtype`, shared with the codecs.

pub use qload_dtype::{DType, GgmlFlavor, Packing};
