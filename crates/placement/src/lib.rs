//! # qload-placement
//!
//! Devices (CPU; CUDA behind the `gpu` feature), memory inventories and placement
//! strategies as pure functions from (tensors, inventory) to a plan.
//!
//! **Status:** not written yet (issue 5). The `cpu` and `gpu` features exist so that
//! the feature matrix builds; neither provides a device or a strategy in this version.
#![deny(missing_docs)]

/// Whether this build was compiled with CUDA support (the `gpu` feature).
pub const GPU_COMPILED: bool = cfg!(feature = "gpu");
