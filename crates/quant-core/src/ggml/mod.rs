//! ggml's block types: layouts, scalar dequantizers (the specification) and
//! reference quantizers, byte-exact with ggml.

// Index loops mirror ggml's reference code line for line, which is what makes them
// auditable against it; iterator rewrites would hide the correspondence.
#![allow(clippy::needless_range_loop)]

pub mod blocks;
pub(crate) mod iq;
pub(crate) mod iq4;
pub(crate) mod iq_grids;
pub(crate) mod kquants;
pub(crate) mod lanes;
pub(crate) mod legacy;
pub(crate) mod mxfp4;
pub(crate) mod nvfp4;
pub(crate) mod q1_0;
pub(crate) mod q2_0;
pub(crate) mod quant_k;
pub(crate) mod quant_k_lanes;
pub(crate) mod ternary;
pub(crate) mod util;
