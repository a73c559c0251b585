//! # qload-loader
//!
//! Progressive, memory-bounded loading: a plan from `qload-placement`, tensors
//! streamed from a `qload-formats` source through `qload-quant-core` codecs onto
//! devices, with stats, progress and a cache.
//!
//! **Status:** not written yet (issue 6). Today the `qload` binary reads files through
//! `qload-formats` directly; this crate has no loading entry point.
#![deny(missing_docs)]
