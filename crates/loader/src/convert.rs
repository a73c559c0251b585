//! Converting one tensor between types in bounded chunks: source bytes → f32 →
//! target bytes, straight into the final buffer, rows spread over rayon's threads.
//! Each worker reuses one scratch buffer of at most `budget / threads` bytes, so the
//! transient memory of a conversion is bounded by the budget whatever the tensor's
//! size.

use qload_formats::DType;
use qload_quant_core::{Codec, codec};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

/// Reconstruction error of a converted tensor against its source values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Mean squared error.
    pub mse: f64,
    /// sqrt(Σ(x − y)² / Σx²).
    pub rel_rmse: f64,
    /// Largest |x − y|.
    pub max_abs: f64,
    /// Cosine similarity of the source and the reconstruction.
    pub cosine: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: u64,
    sse: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
    max_abs: f64,
}

impl Sums {
    fn add(mut self, o: Sums) -> Sums {
        self.n += o.n;
        self.sse += o.sse;
        self.sxx += o.sxx;
        self.syy += o.syy;
        self.sxy += o.sxy;
        self.max_abs = self.max_abs.max(o.max_abs);
        self
    }

    fn stats(&self) -> ErrorStats {
        let n = self.n.max(1) as f64;
        ErrorStats {
            mse: self.sse / n,
            rel_rmse: if self.sxx > 0.0 {
                (self.sse / self.sxx).sqrt()
            } else {
                0.0
            },
            max_abs: self.max_abs,
            cosine: if self.sxx > 0.0 && self.syy > 0.0 {
                self.sxy / (self.sxx * self.syy).sqrt()
            } else {
                1.0
            },
        }
    }
}

fn codec_for(name: &str, dtype: DType, op: &'static str) -> Result<&'static dyn Codec> {
    codec(dtype).ok_or_else(|| Error::Unsupported {
        name: name.to_string(),
        dtype,
        op,
    })
}

/// Converts `src` (`from`, rows of `row` elements) to `to`. `release(start, end)` is
/// called with each finished byte range of `src` (relative to `src`), so that the
/// caller can drop those source pages.
/// What a conversion produces and under which bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conversion {
    /// Source type.
    pub from: DType,
    /// Target type.
    pub to: DType,
    /// Row length (innermost dimension), elements.
    pub row: usize,
    /// Bound on scratch memory over all threads, bytes.
    pub budget: u64,
    /// Whether to measure the reconstruction error.
    pub measure: bool,
}

pub(crate) fn convert(
    name: &str,
    src: &[u8],
    job: Conversion,
    release: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<u8>, Option<ErrorStats>)> {
    let Conversion {
        from,
        to,
        row,
        budget,
        measure,
    } = job;
    let dec = codec_for(name, from, "dequantize")?;
    let enc = codec_for(name, to, "quantize")?;
    if !dec.can_dequantize() {
        return Err(Error::Unsupported {
            name: name.into(),
            dtype: from,
            op: "dequantize",
        });
    }
    if !enc.can_quantize() {
        return Err(Error::Unsupported {
            name: name.into(),
            dtype: to,
            op: "quantize",
        });
    }
    let src_row = dec.bytes_for(row).map_err(|e| Error::codec(name, e))?;
    let dst_row = enc.bytes_for(row).map_err(|e| Error::codec(name, e))?;
    if src_row == 0 || !src.len().is_multiple_of(src_row) {
        return Err(Error::codec(
            name,
            qload_quant_core::QuantError::NotBlockMultiple {
                dtype: from,
                what: "bytes",
                len: src.len(),
                block: src_row,
            },
        ));
    }
    let rows = src.len() / src_row;
    let threads = rayon::current_num_threads().max(1) as u64;
    let floats_per_row = row as u64 * if measure { 2 } else { 1 };
    let chunk_rows = (budget / threads / (4 * floats_per_row).max(1)).max(1) as usize;
    let mut out = vec![0u8; rows * dst_row];
    let sums = out
        .par_chunks_mut(dst_row * chunk_rows)
        .zip(src.par_chunks(src_row * chunk_rows))
        .enumerate()
        .map_init(
            || (Vec::<f32>::new(), Vec::<f32>::new()),
            |(x, y), (k, (o, s))| -> Result<Sums> {
                let n = s.len() / src_row * row;
                x.resize(n, 0.0);
                dec.dequantize(s, x).map_err(|e| Error::codec(name, e))?;
                enc.quantize(x, row, None, o).map_err(|e| Error::codec(name, e))?;
                let start = k * chunk_rows * src_row;
                release(start, start + s.len());
                let mut sums = Sums::default();
                if measure {
                    y.resize(n, 0.0);
                    enc.dequantize(o, y).map_err(|e| Error::codec(name, e))?;
                    for (&a, &b) in x.iter().zip(y.iter()) {
                        let (a, b) = (a as f64, b as f64);
                        let d = a - b;
                        sums.sse += d * d;
                        sums.sxx += a * a;
                        sums.syy += b * b;
                        sums.sxy += a * b;
                        if d.abs() > sums.max_abs || d.is_nan() {
                            sums.max_abs = d.abs();
                        }
                    }
                    sums.n += n as u64;
                }
                Ok(sums)
            },
        )
        .try_reduce(Sums::default, |a, b| Ok(a.add(b)))?;
    Ok((out, measure.then(|| sums.stats())))
}
