//! BitNet b1.58 and bitnet.cpp: ternary weights, int8 activations, and the
//! bitnet.cpp weight layouts I2_S, TL1 and TL2.
//!
//! - [`ternary`]: absmean ternarization exactly as BitNet's converters do it
//!   (per tensor), plus per-row / per-group variants and presets.
//! - [`act`]: per-token int8 activations (symmetric absmax as bitnet.cpp's
//!   `quantize_row_i8_s`, or asymmetric with a zero point).
//! - [`measure`]: error statistics of any scheme against f32.
//! - [`i2s`]: the I2_S layout (x86 and ARM variants), decode, and the
//!   I2_S × int8 matrix-vector product (scalar specification, AVX2, NEON).
//! - [`tq`]: lossless conversion between ggml's TQ1_0/TQ2_0 and I2_S.
//! - [`tl`]: TL1/TL2 packing as bitnet.cpp's converter writes it, decode, and
//!   lookup-table matrix-vector products (scalar specification).
//!
//! A caller holding a row-major `&[f32]` weight of shape `[rows, cols]` gets
//! bitnet.cpp's I2_S tensor bytes (packed codes, then the f32 scale in a 32-byte
//! area) from [`i2s::quantize`]; a caller holding I2_S bytes from a GGUF file
//! wraps them with [`i2s::I2sRef::new`] to decode them or multiply with them.
//!
//! ```
//! use qload_quant_core::bitnet::{act, i2s};
//!
//! let (rows, cols) = (4, 256);
//! let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
//! let bytes = i2s::quantize(&w, i2s::I2sLayout::X86).unwrap();
//! let t = i2s::I2sRef::new(&bytes, rows * cols, i2s::I2sLayout::X86).unwrap();
//! let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
//! let a = act::quantize_symmetric(&x);
//! let mut y = vec![0f32; rows];
//! i2s::matvec(&t, rows, cols, &a, &mut y).unwrap();
//! ```

// Index loops mirror the reference code (numpy reshapes, C loops) they reproduce.
#![allow(clippy::needless_range_loop)]

pub mod act;
pub(crate) mod error;
pub mod i2s;
pub mod measure;
pub mod ternary;
pub mod tl;
pub mod tq;

pub use error::BitnetError;
