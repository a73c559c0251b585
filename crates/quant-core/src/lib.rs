//! # qload-quant-core
//!
//! Block codecs (ggml types, BitNet ternary I2_S / TL1 / TL2, pre-quantized Python
//! schemes), int8 activation quantization and dot/matvec kernels, with a scalar
//! specification and AVX2/NEON paths. This crate does no I/O and knows no file format.
//!
//! **Status:** not written yet. No codec exists in this version; the ggml codecs
//! (issue 3) and the BitNet codecs (issue 4) will fill it. Nothing here pretends to
//! quantize or dequantize.
#![deny(missing_docs)]
