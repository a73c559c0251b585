//! Quantizing arrays that are already in memory, with the loader's policies, parallel
//! conversion and statistics: one array ([`quantize`]) or a batch of named arrays
//! ([`quantize_arrays`]). The arrays are laid out once as an in-memory safetensors file
//! and loaded from it, so every rule, fallback and error measurement of a file load
//! applies unchanged.
//!
//! ```
//! let w: Vec<f32> = (0..256 * 512).map(|i| ((i % 97) as f32 - 48.0) / 480.0).collect();
//! let (model, stat) = qload_loader::memory::quantize("w", &w, &[256, 512], "q4_k")?;
//! let weight = model.weight("w").unwrap();
//! assert_eq!(weight.dtype(), qload_formats::DType::Q4K);
//! let e = stat.error.unwrap();
//! assert!(e.rel_rmse < 0.1 && e.cosine > 0.99);
//! assert!(stat.compression_ratio() > 7.0); // f32 → Q4_K
//! # Ok::<(), qload_loader::Error>(())
//! ```

use qload_formats::OpenOptions;

use crate::error::{Error, Result};
use crate::load::{LoadReport, LoadedModel, Loader, TensorStat};
use crate::policy::Policy;

/// An in-memory safetensors file of f32 arrays.
fn safetensors_bytes(arrays: &[(&str, &[f32], &[u64])]) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, values, shape) in arrays {
        let n: u64 = shape.iter().product();
        if n as usize != values.len() {
            return Err(Error::Unsupported {
                name: name.to_string(),
                dtype: qload_formats::DType::F32,
                op: "quantize (the shape does not match the number of values)",
            });
        }
        let len = values.len() * 4;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut h =
        serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| Error::Policy { reason: e.to_string() })?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, values, _) in arrays {
        for v in *values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Quantizes named f32 arrays `(name, values, row-major shape)` by `spec` (`q4_k_m`,
/// `q8_0`, `i2_s`, `bf16`, …) on rayon's threads, measuring each converted array's error.
/// The policy's rules apply as for a file (names decide promotions; 1-D arrays and
/// `*norm*` stay f32). Returns the arrays as a [`LoadedModel`] (use
/// [`LoadedModel::weight`]) and the per-array statistics.
pub fn quantize_arrays(arrays: &[(&str, &[f32], &[u64])], spec: &str) -> Result<(LoadedModel, LoadReport)> {
    let policy = Policy::parse(spec).map_err(|reason| Error::Policy { reason })?;
    let bytes = safetensors_bytes(arrays)?;
    let source = qload_formats::open_bytes("memory.safetensors", bytes, &OpenOptions::default())?;
    Loader::from_source(source).quantize(policy).measure_error(true).load()
}

/// Quantizes one f32 array; see [`quantize_arrays`]. Returns the model holding it under
/// `name` and its statistics (error when it was converted).
pub fn quantize(name: &str, values: &[f32], shape: &[u64], spec: &str) -> Result<(LoadedModel, TensorStat)> {
    let (model, mut report) = quantize_arrays(&[(name, values, shape)], spec)?;
    let stat = report.per_tensor.pop().ok_or_else(|| Error::Policy {
        reason: "nothing was loaded".into(),
    })?;
    Ok((model, stat))
}
