//! candle interop (feature `candle`): loaded tensors as `candle_core::Tensor` and
//! `candle_core::quantized::QTensor`.
//!
//! Layouts agree for every type candle has (floats, integers, and the ggml block types
//! Q4_0 … Q8_K): the bytes are handed over as they are, one copy into candle's own
//! storage (candle owns its buffers; there is no way to lend it a map). Types candle
//! lacks (IQ*, TQ*, MXFP4, I2_S, pre-quantized weights kept native) are dequantized by
//! qload's codecs on the way into a float `Tensor`, and refused for `QTensor` with an
//! error that names the type.

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType as CDType, Device, Tensor};
use qload_formats::DType;

use crate::error::{Error, Result};
use crate::load::{LoadedModel, LoadedTensor};

fn candle_err(name: &str, e: candle_core::Error) -> Error {
    Error::Candle {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// candle's element type for a qload float or integer type.
pub fn candle_dtype(d: DType) -> Option<CDType> {
    Some(match d {
        DType::U8 => CDType::U8,
        DType::U32 => CDType::U32,
        DType::I16 => CDType::I16,
        DType::I32 => CDType::I32,
        DType::I64 => CDType::I64,
        DType::BF16 => CDType::BF16,
        DType::F16 => CDType::F16,
        DType::F32 => CDType::F32,
        DType::F64 => CDType::F64,
        DType::F8E4M3 => CDType::F8E4M3,
        _ => return None,
    })
}

/// candle's ggml type for a qload type.
pub fn ggml_dtype(d: DType) -> Option<GgmlDType> {
    Some(match d {
        DType::F32 => GgmlDType::F32,
        DType::F16 => GgmlDType::F16,
        DType::BF16 => GgmlDType::BF16,
        DType::Q4_0 => GgmlDType::Q4_0,
        DType::Q4_1 => GgmlDType::Q4_1,
        DType::Q5_0 => GgmlDType::Q5_0,
        DType::Q5_1 => GgmlDType::Q5_1,
        DType::Q8_0 => GgmlDType::Q8_0,
        DType::Q8_1 => GgmlDType::Q8_1,
        DType::Q2K => GgmlDType::Q2K,
        DType::Q3K => GgmlDType::Q3K,
        DType::Q4K => GgmlDType::Q4K,
        DType::Q5K => GgmlDType::Q5K,
        DType::Q6K => GgmlDType::Q6K,
        DType::Q8K => GgmlDType::Q8K,
        _ => return None,
    })
}

fn dims(t: &LoadedTensor) -> Vec<usize> {
    t.shape.iter().map(|&d| d as usize).collect()
}

impl LoadedModel {
    /// `t` as a candle `Tensor` on `device`: floats and integers as stored; quantized
    /// and pre-quantized weights dequantized to f32 by qload's codecs.
    pub fn to_candle(&self, t: &LoadedTensor, device: &Device) -> Result<Tensor> {
        let shape = dims(t);
        if t.scheme.is_none()
            && let Some(dt) = candle_dtype(t.dtype)
        {
            return Tensor::from_raw_buffer(self.bytes(t), dt, &shape, device).map_err(|e| candle_err(&t.name, e));
        }
        let n: usize = shape.iter().product();
        let mut out = vec![0f32; n];
        if let Some(w) = self.prequant(t) {
            w.dequantize(&mut out).map_err(|e| Error::codec(&t.name, e))?;
        } else {
            let codec = qload_quant_core::codec(t.dtype).ok_or_else(|| Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "dequantize for candle",
            })?;
            codec
                .dequantize(self.bytes(t), &mut out)
                .map_err(|e| Error::codec(&t.name, e))?;
        }
        Tensor::from_vec(out, shape, device).map_err(|e| candle_err(&t.name, e))
    }

    /// `t` as a candle `QTensor` (the bytes as stored, for the types candle has).
    pub fn to_qtensor(&self, t: &LoadedTensor, device: &Device) -> Result<QTensor> {
        let Some(g) = ggml_dtype(t.dtype).filter(|_| t.scheme.is_none()) else {
            return Err(Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "hand to candle as a QTensor (candle has no such type)",
            });
        };
        candle_core::quantized::ggml_file::qtensor_from_ggml(g, self.bytes(t), dims(t), device)
            .map_err(|e| candle_err(&t.name, e))
    }

    /// Every tensor as a candle `Tensor` (see [`LoadedModel::to_candle`]), by name: what
    /// `candle_nn::VarBuilder::from_tensors` takes.
    pub fn to_candle_map(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        self.tensors()
            .iter()
            .map(|t| Ok((t.name.clone(), self.to_candle(t, device)?)))
            .collect()
    }
}
