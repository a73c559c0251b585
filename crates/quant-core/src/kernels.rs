//! Whole-matrix operations over the codecs: activation quantization and
//! matrix-vector products with rows spread over rayon's threads.
//!
//! Every output row is computed by one thread from start to end, so results are
//! identical whatever the thread count.

use crate::{Codec, QuantError, codec};
use qload_dtype::DType;
use rayon::prelude::*;

/// Rows per rayon task: enough work per task to amortize scheduling.
const ROWS_PER_TASK: usize = 16;

fn codec_for(dtype: DType, op: &'static str) -> Result<&'static dyn Codec, QuantError> {
    codec(dtype).ok_or(QuantError::Unsupported { dtype, op })
}

/// Quantizes an activation row `x` to `act_type` (Q8_0, Q8_1, Q8_K, or a float type).
pub fn quantize_activations(act_type: DType, x: &[f32]) -> Result<Vec<u8>, QuantError> {
    let c = codec_for(act_type, "quantize activations")?;
    let mut out = vec![0u8; c.bytes_for(x.len())?];
    c.quantize(x, x.len(), None, &mut out)?;
    Ok(out)
}

/// `y = W·x` for a row-major weight matrix `w` of `rows × cols` elements stored as
/// `w_type`: `x` is quantized once to the type's activation type, then each row's
/// dot product runs on rayon's pool.
pub fn matvec(w_type: DType, w: &[u8], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<(), QuantError> {
    let c = codec_for(w_type, "matvec")?;
    let act_type = c.vec_dot_type().ok_or(QuantError::Unsupported {
        dtype: w_type,
        op: "matvec",
    })?;
    let row_bytes = c.bytes_for(cols)?;
    let mismatch = |what, expected, actual| QuantError::LengthMismatch {
        dtype: w_type,
        what,
        expected,
        actual,
    };
    if x.len() != cols {
        return Err(mismatch("activation length", cols, x.len()));
    }
    if y.len() != rows {
        return Err(mismatch("output length", rows, y.len()));
    }
    let total = rows
        .checked_mul(row_bytes)
        .ok_or(mismatch("weight bytes", usize::MAX, w.len()))?;
    if w.len() != total {
        return Err(mismatch("weight bytes", total, w.len()));
    }
    let act = quantize_activations(act_type, x)?;
    let (_, dot) = crate::dot::kernel(w_type).ok_or(QuantError::Unsupported {
        dtype: w_type,
        op: "matvec",
    })?;
    if row_bytes == 0 {
        y.fill(0.0);
        return Ok(());
    }
    let rows_kernel = crate::arch::matvec_rows(w_type);
    y.par_chunks_mut(ROWS_PER_TASK)
        .zip(w.par_chunks(row_bytes * ROWS_PER_TASK))
        .for_each(|(y, w)| match rows_kernel {
            Some(rows) => rows(w, row_bytes, &act, y),
            None => {
                for (y, row) in y.iter_mut().zip(w.chunks_exact(row_bytes)) {
                    *y = dot(row, &act);
                }
            }
        });
    Ok(())
}

/// Dequantizes `src` into `dst` on rayon's pool (chunks of whole blocks).
pub fn dequantize_par(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let c = codec_for(dtype, "dequantize")?;
    const BLOCKS_PER_TASK: usize = 1024;
    let (bb, be) = (c.block_bytes(), c.block_elems());
    if !src.len().is_multiple_of(bb) || dst.len() != src.len() / bb * be {
        // The serial call reports the precise error.
        return c.dequantize(src, dst);
    }
    dst.par_chunks_mut(be * BLOCKS_PER_TASK)
        .zip(src.par_chunks(bb * BLOCKS_PER_TASK))
        .try_for_each(|(d, s)| c.dequantize(s, d))
}

/// ggml's error budget for a dot product against f32 (tests/test-quantize-fns.cpp):
/// the largest acceptable `|vec_dot(quantize(a), quantize_act(b)) − a·b| / n`.
pub fn dot_error_budget(dtype: DType) -> f32 {
    match dtype {
        DType::Q2K
        | DType::IQ2XXS
        | DType::IQ2XS
        | DType::IQ2S
        | DType::IQ3XXS
        | DType::IQ3S
        | DType::IQ1S
        | DType::IQ1M => 0.04,
        DType::NVFP4 => 0.03,
        DType::TQ1_0 | DType::TQ2_0 => 0.15,
        DType::Q1_0 => 0.40,
        // Its reference quantizer writes ternary codes only: the ternary budget.
        DType::Q2_0 => 0.15,
        _ => 0.02,
    }
}
