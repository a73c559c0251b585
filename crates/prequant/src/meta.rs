//! Reading the small metadata tensors that pre-quantized checkpoints store beside
//! their weights: scalars (`nbits`), short integer arrays (`shape`), ASCII strings
//! (`packing`, `compute_dtype`) and JSON blobs (bitsandbytes' quant state).

use qload_formats::{DType, TensorInfo, WeightSource};

use crate::{Error, Result};

/// Longest string or JSON blob read from a tensor.
const MAX_TEXT: usize = 64 << 10;

fn bad(name: &str, reason: impl Into<String>) -> Error {
    Error::Weight {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// The bytes of tensor `name`, if it exists (contiguous tensors only).
pub(crate) fn bytes<'s>(src: &'s WeightSource, name: &str) -> Result<Option<(&'s TensorInfo, &'s [u8])>> {
    let Some(info) = src.tensor(name) else {
        return Ok(None);
    };
    if !info.is_contiguous() {
        return Err(bad(name, "is a strided view; pre-quantized parts must be contiguous"));
    }
    Ok(Some((info, src.tensor_bytes(info)?)))
}

/// An integer scalar (any integer or bool dtype, 0-d or one element).
pub(crate) fn int(src: &WeightSource, name: &str) -> Result<Option<i64>> {
    let Some(v) = ints(src, name)? else {
        return Ok(None);
    };
    match v.as_slice() {
        [x] => Ok(Some(*x)),
        _ => Err(bad(name, format!("should hold one integer, holds {}", v.len()))),
    }
}

/// A short integer array (at most 16 elements).
pub(crate) fn ints(src: &WeightSource, name: &str) -> Result<Option<Vec<i64>>> {
    let Some((info, b)) = bytes(src, name)? else {
        return Ok(None);
    };
    let size = match info.dtype {
        DType::Bool | DType::U8 | DType::I8 => 1,
        DType::I16 | DType::U16 => 2,
        DType::I32 | DType::U32 => 4,
        DType::I64 | DType::U64 => 8,
        other => return Err(bad(name, format!("should be an integer, is {other}"))),
    };
    if b.len() > 16 * size || !b.len().is_multiple_of(size) {
        return Err(bad(name, format!("{} bytes is not a short integer array", b.len())));
    }
    let v = b
        .chunks_exact(size)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..size].copy_from_slice(c);
            let u = u64::from_le_bytes(w);
            match info.dtype {
                DType::I8 => u as u8 as i8 as i64,
                DType::I16 => u as u16 as i16 as i64,
                DType::I32 => u as u32 as i32 as i64,
                _ => u as i64,
            }
        })
        .collect();
    Ok(Some(v))
}

/// A string stored as a u8 array of ASCII characters.
pub(crate) fn string(src: &WeightSource, name: &str) -> Result<Option<String>> {
    let Some((info, b)) = bytes(src, name)? else {
        return Ok(None);
    };
    if info.dtype != DType::U8 && info.dtype != DType::I8 {
        return Err(bad(name, format!("should be a u8 string, is {}", info.dtype)));
    }
    if b.len() > MAX_TEXT {
        return Err(bad(name, format!("{} bytes is too long for a string", b.len())));
    }
    String::from_utf8(b.to_vec())
        .map(Some)
        .map_err(|_| bad(name, "is not UTF-8 text"))
}

/// A JSON object stored as a u8 array.
pub(crate) fn json(src: &WeightSource, name: &str) -> Result<Option<serde_json::Value>> {
    let Some(s) = string(src, name)? else {
        return Ok(None);
    };
    serde_json::from_str(&s)
        .map(Some)
        .map_err(|e| bad(name, format!("is not JSON: {e}")))
}

/// A torch dtype name (`torch.float16`, `float16`, `bfloat16`, …) as a float DType.
pub(crate) fn torch_float(s: &str) -> Option<DType> {
    match s.trim().trim_start_matches("torch.") {
        "float16" | "half" | "f16" => Some(DType::F16),
        "bfloat16" | "bf16" => Some(DType::BF16),
        "float32" | "float" | "f32" => Some(DType::F32),
        _ => None,
    }
}
