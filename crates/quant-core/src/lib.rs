//! # qload-quant-core
//!
//! Block codecs for ggml's types, byte-exact with ggml: layouts as `#[repr(C)]`
//! plain-old-data blocks ([`ggml::blocks`]), scalar dequantizers that are the
//! specification, the reference quantizers of `ggml_quantize_chunk`, and dot
//! products against quantized activations. This crate does no I/O and knows no
//! file format.
//!
//! ```
//! use qload_dtype::DType;
//! use qload_quant_core::codec;
//!
//! let q8 = codec(DType::Q8_0).unwrap();
//! let x: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
//! let mut bytes = vec![0u8; q8.bytes_for(x.len()).unwrap()];
//! q8.quantize(&x, 64, None, &mut bytes).unwrap();
//! let mut back = vec![0f32; 64];
//! q8.dequantize(&bytes, &mut back).unwrap();
//! assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 0.02));
//! ```
//!
//! **Status:** every ggml type in the registry has geometry; see
//! [`Codec::can_dequantize`] / [`Codec::can_quantize`] for what each implements.
//! Types without an implementation answer [`QuantError::Unsupported`]; nothing
//! pretends.
#![deny(missing_docs)]

pub mod arch;
pub mod bitnet;
pub mod codec;
mod dot;
mod error;
mod float;
pub mod ggml;
pub mod kernels;
pub mod prequant;
pub mod repack;

pub use codec::{Codec, codec, codecs};
pub use error::QuantError;
