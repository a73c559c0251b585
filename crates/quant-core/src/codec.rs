//! The codec trait and the registry from [`DType`] to codec.
//!
//! A codec works on whole blocks: `dequantize` turns `k · block_bytes` bytes into
//! `k · block_elems` floats; `quantize` turns rows of `n_per_row` floats (a
//! multiple of the block) into the same bytes `ggml_quantize_chunk` writes;
//! `vec_dot` multiplies a weight row by an activation row already quantized to
//! [`Codec::vec_dot_type`]. Every length is checked; nothing panics on bad input.

use crate::QuantError;
use crate::dot;
use crate::ggml::{iq, iq4, kquants, legacy, mxfp4, nvfp4, q1_0, q2_0, quant_k, quant_k_lanes, ternary};
use qload_dtype::DType;
use std::fmt;

/// Dequantizes whole blocks (lengths already checked).
pub type DequantFn = fn(&[u8], &mut [f32]);
/// Quantizes one row without an importance matrix (lengths already checked).
pub type QuantFn = fn(&[f32], &mut [u8]);
/// Quantizes one row with an importance matrix of the row's length.
pub type WeightedQuantFn = fn(&[f32], &mut [u8], &[f32]);
/// Dot product of a weight row and an activation row holding as many elements.
pub type DotFn = fn(&[u8], &[u8]) -> f32;

/// One block type: geometry, dequantizer, quantizer and dot product.
pub trait Codec: Send + Sync + fmt::Debug {
    /// The type this codec reads and writes.
    fn dtype(&self) -> DType;
    /// Elements per block (1 for plain numbers).
    fn block_elems(&self) -> usize;
    /// Bytes per block.
    fn block_bytes(&self) -> usize;

    /// Bytes that `n` elements take; `n` must be a whole number of blocks.
    fn bytes_for(&self, n: usize) -> Result<usize, QuantError> {
        let (be, bb) = (self.block_elems(), self.block_bytes());
        if !n.is_multiple_of(be) {
            return Err(QuantError::NotBlockMultiple {
                dtype: self.dtype(),
                what: "elements",
                len: n,
                block: be,
            });
        }
        (n / be).checked_mul(bb).ok_or(QuantError::LengthMismatch {
            dtype: self.dtype(),
            what: "byte length",
            expected: usize::MAX,
            actual: n,
        })
    }

    /// Whether [`Codec::dequantize`] is implemented.
    fn can_dequantize(&self) -> bool;
    /// Decodes `src` (whole blocks) into `dst` (`block_elems` per block).
    fn dequantize(&self, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError>;

    /// Whether [`Codec::quantize`] is implemented (without an importance matrix).
    fn can_quantize(&self) -> bool;
    /// Whether ggml's quantizer for this type uses an importance matrix when one is
    /// given (for the others ggml ignores it, and so does qload).
    fn uses_imatrix(&self) -> bool;
    /// Encodes rows of `n_per_row` elements exactly as `ggml_quantize_chunk` does,
    /// with `imatrix` (length `n_per_row`) as its `quant_weights`.
    fn quantize(
        &self,
        src: &[f32],
        n_per_row: usize,
        imatrix: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<(), QuantError>;

    /// The activation type of this type's dot product (Q8_0, Q8_1, Q8_K, …).
    fn vec_dot_type(&self) -> Option<DType>;
    /// `Σ w·a` over one row: `w` in this type, `act` in [`Codec::vec_dot_type`], the
    /// same number of elements.
    fn vec_dot(&self, w: &[u8], act: &[u8]) -> Result<f32, QuantError>;
}

/// A codec made of plain functions: every ggml type is one of these.
pub struct TableCodec {
    dtype: DType,
    block_elems: usize,
    block_bytes: usize,
    dequant: Option<DequantFn>,
    quant: Option<QuantFn>,
    quant_weighted: Option<WeightedQuantFn>,
    uses_imatrix: bool,
}

impl fmt::Debug for TableCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableCodec")
            .field("dtype", &self.dtype)
            .field("block_elems", &self.block_elems)
            .field("block_bytes", &self.block_bytes)
            .field("dequantize", &self.dequant.is_some())
            .field("quantize", &self.quant.is_some())
            .field("quantize_weighted", &self.quant_weighted.is_some())
            .field("vec_dot_type", &self.vec_dot_type())
            .finish()
    }
}

impl TableCodec {
    fn blocks_of_bytes(&self, len: usize) -> Result<usize, QuantError> {
        if !len.is_multiple_of(self.block_bytes) {
            return Err(QuantError::NotBlockMultiple {
                dtype: self.dtype,
                what: "bytes",
                len,
                block: self.block_bytes,
            });
        }
        Ok(len / self.block_bytes)
    }

    fn expect_len(&self, what: &'static str, expected: usize, actual: usize) -> Result<(), QuantError> {
        if expected != actual {
            return Err(QuantError::LengthMismatch {
                dtype: self.dtype,
                what,
                expected,
                actual,
            });
        }
        Ok(())
    }
}

impl Codec for TableCodec {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn block_elems(&self) -> usize {
        self.block_elems
    }
    fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    fn can_dequantize(&self) -> bool {
        self.dequant.is_some()
    }

    fn dequantize(&self, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
        let f = self.dequant.ok_or(QuantError::Unsupported {
            dtype: self.dtype,
            op: "dequantize",
        })?;
        let blocks = self.blocks_of_bytes(src.len())?;
        self.expect_len("output length", blocks * self.block_elems, dst.len())?;
        crate::arch::dequant(self.dtype).unwrap_or(f)(src, dst);
        Ok(())
    }

    fn can_quantize(&self) -> bool {
        self.quant.is_some()
    }

    fn uses_imatrix(&self) -> bool {
        self.uses_imatrix
    }

    fn quantize(
        &self,
        src: &[f32],
        n_per_row: usize,
        imatrix: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<(), QuantError> {
        let plain = self.quant.ok_or(QuantError::Unsupported {
            dtype: self.dtype,
            op: "quantize",
        })?;
        if n_per_row == 0 || !n_per_row.is_multiple_of(self.block_elems) {
            return Err(QuantError::NotBlockMultiple {
                dtype: self.dtype,
                what: "row length",
                len: n_per_row,
                block: self.block_elems,
            });
        }
        if !src.len().is_multiple_of(n_per_row) {
            return Err(QuantError::NotBlockMultiple {
                dtype: self.dtype,
                what: "elements",
                len: src.len(),
                block: n_per_row,
            });
        }
        let row_bytes = n_per_row / self.block_elems * self.block_bytes;
        let rows = src.len() / n_per_row;
        self.expect_len("output length", rows * row_bytes, dst.len())?;
        let weighted = match imatrix {
            Some(w) if self.uses_imatrix => {
                self.expect_len("importance matrix length", n_per_row, w.len())?;
                let f = self.quant_weighted.ok_or(QuantError::Unsupported {
                    dtype: self.dtype,
                    op: "quantize with an importance matrix",
                })?;
                Some((f, w))
            }
            _ => None,
        };
        let fast = crate::arch::quant(self.dtype).unwrap_or(plain);
        for (x, y) in src.chunks_exact(n_per_row).zip(dst.chunks_exact_mut(row_bytes)) {
            match weighted {
                Some((f, w)) => f(x, y, w),
                None => fast(x, y),
            }
        }
        Ok(())
    }

    fn vec_dot_type(&self) -> Option<DType> {
        dot::kernel(self.dtype).map(|d| d.0)
    }

    fn vec_dot(&self, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
        let (act_type, f) = dot::kernel(self.dtype).ok_or(QuantError::Unsupported {
            dtype: self.dtype,
            op: "vec_dot",
        })?;
        let n = self.blocks_of_bytes(w.len())? * self.block_elems;
        let act_codec = codec(act_type).ok_or(QuantError::Unsupported {
            dtype: act_type,
            op: "activation",
        })?;
        self.expect_len("activation bytes", act_codec.bytes_for(n)?, act.len())?;
        Ok(f(w, act))
    }
}

const fn entry(dtype: DType, block_elems: usize, block_bytes: usize) -> TableCodec {
    TableCodec {
        dtype,
        block_elems,
        block_bytes,
        dequant: None,
        quant: None,
        quant_weighted: None,
        uses_imatrix: false,
    }
}

impl TableCodec {
    const fn dq(mut self, f: DequantFn) -> Self {
        self.dequant = Some(f);
        self
    }
    const fn q(mut self, f: QuantFn) -> Self {
        self.quant = Some(f);
        self
    }
    /// ggml uses an importance matrix for this type; `f` when qload implements it.
    const fn qw(mut self, f: Option<WeightedQuantFn>) -> Self {
        self.uses_imatrix = true;
        self.quant_weighted = f;
        self
    }
}

use crate::float as fl;

static CODECS: &[TableCodec] = &[
    entry(DType::F32, 1, 4).dq(fl::dequantize_f32).q(fl::quantize_f32),
    entry(DType::F16, 1, 2).dq(fl::dequantize_f16).q(fl::quantize_f16),
    entry(DType::BF16, 1, 2).dq(fl::dequantize_bf16).q(fl::quantize_bf16),
    entry(DType::F64, 1, 8).dq(fl::dequantize_f64),
    entry(DType::I8, 1, 1).dq(fl::dequantize_i8),
    entry(DType::I16, 1, 2).dq(fl::dequantize_i16),
    entry(DType::I32, 1, 4).dq(fl::dequantize_i32),
    entry(DType::I64, 1, 8).dq(fl::dequantize_i64),
    entry(DType::Q4_0, 32, 18)
        .dq(legacy::dequantize_q4_0)
        .q(legacy::quantize_q4_0)
        .qw(Some(quant_k::quantize_q4_0_weighted)),
    entry(DType::Q4_1, 32, 20)
        .dq(legacy::dequantize_q4_1)
        .q(legacy::quantize_q4_1)
        .qw(Some(quant_k::quantize_q4_1_weighted)),
    entry(DType::Q5_0, 32, 22)
        .dq(legacy::dequantize_q5_0)
        .q(legacy::quantize_q5_0)
        .qw(Some(quant_k::quantize_q5_0_weighted)),
    entry(DType::Q5_1, 32, 24)
        .dq(legacy::dequantize_q5_1)
        .q(legacy::quantize_q5_1)
        .qw(Some(quant_k::quantize_q5_1_weighted)),
    entry(DType::Q8_0, 32, 34)
        .dq(legacy::dequantize_q8_0)
        .q(legacy::quantize_q8_0),
    entry(DType::Q8_1, 32, 36)
        .dq(legacy::dequantize_q8_1)
        .q(legacy::quantize_q8_1),
    entry(DType::Q2K, 256, 84)
        .dq(kquants::dequantize_q2_k)
        .q(quant_k_lanes::quantize_q2_k)
        .qw(Some(quant_k::quantize_q2_k_weighted)),
    entry(DType::Q3K, 256, 110)
        .dq(kquants::dequantize_q3_k)
        .q(quant_k::quantize_q3_k)
        .qw(Some(quant_k::quantize_q3_k_weighted)),
    entry(DType::Q4K, 256, 144)
        .dq(kquants::dequantize_q4_k)
        .q(quant_k_lanes::quantize_q4_k)
        .qw(Some(quant_k::quantize_q4_k_weighted)),
    entry(DType::Q5K, 256, 176)
        .dq(kquants::dequantize_q5_k)
        .q(quant_k_lanes::quantize_q5_k)
        .qw(Some(quant_k::quantize_q5_k_weighted)),
    entry(DType::Q6K, 256, 210)
        .dq(kquants::dequantize_q6_k)
        .q(quant_k_lanes::quantize_q6_k)
        .qw(Some(quant_k::quantize_q6_k_weighted)),
    entry(DType::Q8K, 256, 292)
        .dq(kquants::dequantize_q8_k)
        .q(kquants::quantize_q8_k),
    entry(DType::IQ2XXS, 256, 66).dq(iq::dequantize_iq2_xxs),
    entry(DType::IQ2XS, 256, 74).dq(iq::dequantize_iq2_xs),
    entry(DType::IQ3XXS, 256, 98).dq(iq::dequantize_iq3_xxs),
    entry(DType::IQ1S, 256, 50).dq(iq::dequantize_iq1_s),
    entry(DType::IQ4NL, 32, 18)
        .dq(iq4::dequantize_iq4_nl)
        .q(quant_k::quantize_iq4_nl)
        .qw(Some(quant_k::quantize_iq4_nl_weighted)),
    entry(DType::IQ3S, 256, 110).dq(iq::dequantize_iq3_s),
    entry(DType::IQ2S, 256, 82).dq(iq::dequantize_iq2_s),
    entry(DType::IQ4XS, 256, 136)
        .dq(iq4::dequantize_iq4_xs)
        .q(quant_k::quantize_iq4_xs)
        .qw(Some(quant_k::quantize_iq4_xs_weighted)),
    entry(DType::IQ1M, 256, 56).dq(iq::dequantize_iq1_m),
    entry(DType::TQ1_0, 256, 54)
        .dq(ternary::dequantize_tq1_0)
        .q(ternary::quantize_tq1_0),
    entry(DType::TQ2_0, 256, 66)
        .dq(ternary::dequantize_tq2_0)
        .q(ternary::quantize_tq2_0),
    entry(DType::MXFP4, 32, 17)
        .dq(mxfp4::dequantize_mxfp4)
        .q(mxfp4::quantize_mxfp4),
    entry(DType::NVFP4, 64, 36)
        .dq(nvfp4::dequantize_nvfp4)
        .q(nvfp4::quantize_nvfp4),
    entry(DType::Q1_0, 128, 18)
        .dq(q1_0::dequantize_q1_0)
        .q(q1_0::quantize_q1_0),
    entry(DType::Q2_0, 64, 18)
        .dq(q2_0::dequantize_q2_0)
        .q(q2_0::quantize_q2_0),
];

/// The scalar dequantizer (the specification), bypassing SIMD dispatch.
#[cfg(test)]
pub(crate) fn scalar_dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> Option<()> {
    CODECS.iter().find(|c| c.dtype == dtype)?.dequant?(src, dst);
    Some(())
}

/// The scalar quantizer (the specification), bypassing SIMD dispatch.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn scalar_quantize(dtype: DType, src: &[f32], dst: &mut [u8]) -> Option<()> {
    CODECS.iter().find(|c| c.dtype == dtype)?.quant?(src, dst);
    Some(())
}

/// The codec of `dtype`, if qload has one.
pub fn codec(dtype: DType) -> Option<&'static dyn Codec> {
    CODECS.iter().find(|c| c.dtype == dtype).map(|c| c as &dyn Codec)
}

/// Every registered codec, in ggml id order for the block types.
pub fn codecs() -> impl Iterator<Item = &'static dyn Codec> {
    CODECS.iter().map(|c| c as &dyn Codec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qload_dtype::Packing;

    #[test]
    fn geometry_agrees_with_the_dtype_table() {
        for c in codecs() {
            match c.dtype().packing() {
                Packing::Blocks { block, bytes } => {
                    assert_eq!(
                        (c.block_elems() as u64, c.block_bytes() as u64),
                        (block, bytes),
                        "{}",
                        c.dtype()
                    );
                }
                other => panic!("{}: unexpected packing {other:?}", c.dtype()),
            }
        }
    }

    #[test]
    fn lengths_are_checked_not_trusted() {
        let q4 = codec(DType::Q4_0).unwrap();
        let mut out = [0f32; 32];
        assert!(matches!(
            q4.dequantize(&[0u8; 17], &mut out),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            q4.dequantize(&[0u8; 36], &mut out),
            Err(QuantError::LengthMismatch { .. })
        ));
        let mut bytes = [0u8; 18];
        assert!(matches!(
            q4.quantize(&[0.0; 32], 16, None, &mut bytes),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            q4.quantize(&[0.0; 32], 32, Some(&[1.0; 31]), &mut bytes),
            Err(QuantError::LengthMismatch { .. })
        ));
        assert!(matches!(
            codec(DType::IQ2XXS)
                .unwrap()
                .quantize(&[0.0; 256], 256, None, &mut [0u8; 66]),
            Err(QuantError::Unsupported { .. })
        ));
    }
}
