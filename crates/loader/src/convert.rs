//! Converting one tensor between types in bounded chunks: source bytes → f32 →
//! target bytes, straight into the final buffer, rows spread over rayon's threads.
//! Each worker reuses one scratch buffer of at most `budget / threads` bytes, so the
//! transient memory of a conversion is bounded by the budget whatever the tensor's
//! size.

use qload_formats::DType;
use qload_quant_core::bitnet::ternary::{Granularity, TernaryConfig};
use qload_quant_core::{Codec, codec};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shared between a conversion's workers and the thread that reports progress: how
/// much of the tensor is done (in `total` units: rows or elements) and whether to stop.
#[derive(Debug, Default)]
pub(crate) struct Ticker {
    /// Units done.
    pub done: std::sync::atomic::AtomicU64,
    /// Units in the tensor (set by the conversion before it starts).
    pub total: std::sync::atomic::AtomicU64,
    /// Set by the progress thread when the callback cancels.
    pub cancel: std::sync::atomic::AtomicBool,
}

impl Ticker {
    fn start(&self, total: usize) {
        self.total.store(total as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn tick(&self, n: usize) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.cancel.load(Relaxed) {
            return Err(Error::Cancelled { done: 0, total: 0 });
        }
        self.done.fetch_add(n as u64, Relaxed);
        Ok(())
    }

    /// The fraction done, 0 ..= 1.
    pub fn fraction(&self) -> f64 {
        use std::sync::atomic::Ordering::Relaxed;
        let t = self.total.load(Relaxed);
        if t == 0 {
            0.0
        } else {
            (self.done.load(Relaxed) as f64 / t as f64).min(1.0)
        }
    }
}

/// Reconstruction error of a converted tensor against its source values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// The codec that decodes `from`, or the error naming the tensor.
fn decoder(name: &str, from: DType) -> Result<&'static dyn Codec> {
    let dec = codec_for(name, from, "dequantize")?;
    if !dec.can_dequantize() {
        return Err(Error::Unsupported {
            name: name.into(),
            dtype: from,
            op: "dequantize",
        });
    }
    Ok(dec)
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
pub(crate) struct Conversion<'a> {
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
    /// An importance matrix: `n_mat` rows of `row` values, matrix `m` for rows
    /// `m * rows / n_mat ..` (llama.cpp's layout for stacked expert weights).
    pub imatrix: Option<(&'a [f32], usize)>,
    /// For a ternary target (I2_S, TQ1_0, TQ2_0): BitNet absmean with these groups and
    /// clip instead of the codec's own quantizer (always set for I2_S).
    pub ternary: Option<TernaryConfig>,
}

pub(crate) fn convert(
    name: &str,
    src: &[u8],
    job: Conversion<'_>,
    release: &(dyn Fn(usize, usize) + Sync),
    ticker: &Ticker,
) -> Result<(Vec<u8>, Option<ErrorStats>)> {
    let Conversion {
        from,
        to,
        row,
        budget,
        measure,
        imatrix,
        ternary,
    } = job;
    if matches!(to, DType::TL1 | DType::TL2) {
        let clip = ternary.and_then(|t| t.clip);
        // As for I2_S, an f16 checkpoint's scale is its f16 `max|W'|` (bitnet.cpp's converter
        // takes the TL scale from the f16 ternarized weights too).
        let f16_scale = from == DType::F16;
        let (i2s, stats) = convert_i2s(name, src, from, clip, f16_scale, budget, measure, release, ticker)?;
        return Ok((i2s_to_tl(name, &i2s, to, row)?, stats));
    }
    let per_tensor = ternary.is_none_or(|t| t.granularity == Granularity::PerTensor);
    if to == DType::I2S || (ternary.is_some() && per_tensor) {
        let clip = ternary.and_then(|t| t.clip);
        // f16 scales: TQ blocks store one; and bitnet.cpp's I2_S of an f16 checkpoint
        // holds the f16 `max|W'|` (see `I2sStream::round_scale_to_f16`).
        let (i2s, stats) = convert_i2s(
            name,
            src,
            from,
            clip,
            to != DType::I2S || from == DType::F16,
            budget,
            measure,
            release,
            ticker,
        )?;
        if to == DType::I2S {
            return Ok((i2s, stats));
        }
        // One scale per tensor in TQ blocks: the I2_S codes and scale, rounded to f16.
        return Ok((i2s_to_tq(name, &i2s, to)?, stats));
    }
    let dec = decoder(name, from)?;
    let enc = codec_for(name, to, "quantize")?;
    let src_row = dec.bytes_for(row).map_err(|e| Error::codec(name, e))?;
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
    let decode = |first: usize, x: &mut [f32]| -> Result<()> {
        let (a, b) = (first * src_row, first * src_row + x.len() / row * src_row);
        dec.dequantize(&src[a..b], x).map_err(|e| Error::codec(name, e))?;
        release(a, b);
        Ok(())
    };
    let imatrix = match imatrix {
        None => None,
        Some((values, n_mat)) => {
            if n_mat == 0 || values.len() != row * n_mat || !rows.is_multiple_of(n_mat) {
                return Err(Error::Imatrix {
                    path: name.to_string(),
                    reason: format!(
                        "its importance matrix has {} values for {n_mat} matrices; the tensor has {rows} rows of {row}",
                        values.len()
                    ),
                });
            }
            Some((values, rows / n_mat))
        }
    };
    convert_rows(
        name,
        rows,
        row,
        enc,
        budget,
        measure,
        &decode,
        ticker,
        imatrix.map(Guide::Imatrix).or(ternary.map(Guide::Ternary)),
    )
}

/// The error of I2_S bytes against a pre-quantized weight's values, rows decoded in
/// chunks bounded by the budget.
fn i2s_error(
    name: &str,
    weight: &qload_quant_core::prequant::PrequantTensor<'_>,
    i2s: &[u8],
    budget: u64,
    ticker: &Ticker,
) -> Result<ErrorStats> {
    use qload_quant_core::bitnet::i2s::{I2sLayout, I2sRef};
    let (rows, cols) = (weight.rows(), weight.cols());
    let t = I2sRef::new(i2s, rows * cols, I2sLayout::X86).map_err(|e| Error::Bitnet {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    ticker.start(rows);
    let chunk_rows = ((budget / 4 / cols.max(1) as u64).max(1) as usize).min(rows.max(1));
    let mut x = vec![0f32; chunk_rows * cols];
    let mut sums = Sums::default();
    for first in (0..rows).step_by(chunk_rows) {
        let n = chunk_rows.min(rows - first);
        let x = &mut x[..n * cols];
        weight.dequantize_rows(first, x).map_err(|e| Error::codec(name, e))?;
        let e0 = first * cols;
        // I2_S code 0..=3 is value + 1.
        let y = (0..x.len()).map(|i| (t.code(e0 + i) as f32 - 1.0) * t.scale());
        sums = sums.add(error_sums(x, y));
        ticker.tick(n)?;
    }
    Ok(sums.stats())
}

/// I2_S bytes (x86 layout) → TQ1_0/TQ2_0 with the scale rounded to f16.
fn i2s_to_tq(name: &str, i2s: &[u8], to: DType) -> Result<Vec<u8>> {
    use qload_quant_core::bitnet::i2s::{I2sLayout, I2sRef};
    use qload_quant_core::bitnet::tq::{self, ScalePolicy};
    let bitnet = |e: qload_quant_core::bitnet::BitnetError| Error::Bitnet {
        name: name.to_string(),
        reason: e.to_string(),
    };
    let n = (i2s.len().saturating_sub(qload_quant_core::bitnet::i2s::SCALE_BYTES)) * 4;
    let t = I2sRef::new(i2s, n, I2sLayout::X86).map_err(bitnet)?;
    match to {
        DType::TQ1_0 => tq::i2s_to_tq1_0(&t, ScalePolicy::RoundToF16),
        _ => tq::i2s_to_tq2_0(&t, ScalePolicy::RoundToF16),
    }
    .map_err(bitnet)
}

/// I2_S bytes (x86 layout) of a `[rows, row]` weight → the same codes and scale in
/// bitnet.cpp's TL1/TL2 layout, as a GGUF holds it: the packed bytes (tiled as
/// bitnet.cpp's preset for the shape, else qload's general tiling), zero padding up to
/// the type's size less 32, then the f32 scale opening the 32-byte scale area.
fn i2s_to_tl(name: &str, i2s: &[u8], to: DType, row: usize) -> Result<Vec<u8>> {
    use qload_quant_core::bitnet::i2s::{I2sLayout, I2sRef, SCALE_BYTES};
    use qload_quant_core::bitnet::tl::{self, TlKind, TlParams};
    let bitnet = |e: qload_quant_core::bitnet::BitnetError| Error::Bitnet {
        name: name.to_string(),
        reason: e.to_string(),
    };
    let n = i2s.len().saturating_sub(SCALE_BYTES) * 4;
    let t = I2sRef::new(i2s, n, I2sLayout::X86).map_err(bitnet)?;
    let (rows, cols) = (n / row.max(1), row);
    let mut codes = vec![0i8; n];
    t.decode(&mut codes).map_err(bitnet)?;
    let kind = if to == DType::TL1 { TlKind::Tl1 } else { TlKind::Tl2 };
    let p = TlParams::for_shape(kind, rows, cols).map_err(bitnet)?;
    let mut out = match kind {
        TlKind::Tl1 => tl::tl1_pack(&codes, rows, cols, &p),
        TlKind::Tl2 => tl::tl2_pack(&codes, rows, cols, &p),
    }
    .map_err(bitnet)?;
    let total = to.nbytes(&[rows as u64, cols as u64]).ok_or_else(|| Error::Bitnet {
        name: name.to_string(),
        reason: format!("{to} cannot hold [{rows}, {cols}]"),
    })? as usize;
    if out.len() > total - 32 {
        return Err(Error::Bitnet {
            name: name.to_string(),
            reason: format!(
                "{} packed bytes exceed {to}'s {} for [{rows}, {cols}]",
                out.len(),
                total - 32
            ),
        });
    }
    out.resize(total - 32, 0);
    out.extend_from_slice(&t.scale().to_le_bytes());
    out.resize(total, 0);
    Ok(out)
}

/// What steers a quantizer besides the values: an importance matrix (`rows_per_mat`
/// rows share each of its rows) or ternary absmean groups.
#[derive(Clone, Copy)]
enum Guide<'a> {
    Imatrix((&'a [f32], usize)),
    Ternary(TernaryConfig),
}

/// A pre-quantized weight (bitsandbytes, HQQ, MLX, quanto) → `to`, decoded by its
/// scheme in row chunks bounded by the budget.
pub(crate) fn convert_prequant(
    name: &str,
    weight: &qload_quant_core::prequant::PrequantTensor<'_>,
    to: DType,
    ternary: Option<TernaryConfig>,
    budget: u64,
    measure: bool,
    ticker: &Ticker,
) -> Result<(Vec<u8>, Option<ErrorStats>)> {
    if to == DType::I2S
        && let Some(i2s) = weight.to_i2s(qload_quant_core::bitnet::i2s::I2sLayout::X86)
    {
        // Already ternary (transformers' packed BitNet): the same codes and scale.
        let i2s = i2s.map_err(|e| Error::codec(name, e))?;
        let stats = if measure {
            Some(i2s_error(name, weight, &i2s, budget, ticker)?)
        } else {
            ticker.start(1);
            ticker.tick(1)?;
            None
        };
        return Ok((i2s, stats));
    }
    let enc = codec_for(name, to, "quantize")?;
    let per_tensor = ternary.is_some_and(|t| t.granularity == Granularity::PerTensor);
    if !enc.can_quantize() || to == DType::I2S || per_tensor {
        return Err(Error::Unsupported {
            name: name.into(),
            dtype: to,
            op: "convert a pre-quantized weight to",
        });
    }
    let row = weight.cols();
    let decode = |first: usize, x: &mut [f32]| -> Result<()> {
        weight.dequantize_rows(first, x).map_err(|e| Error::codec(name, e))
    };
    convert_rows(
        name,
        weight.rows(),
        row,
        enc,
        budget,
        measure,
        &decode,
        ticker,
        ternary.map(Guide::Ternary),
    )
}

/// The shared chunk loop: `rows` rows of `row` elements, decoded by
/// `decode(first_row, out)` into per-worker scratch, encoded by `enc` straight into
/// the final buffer.
#[allow(clippy::too_many_arguments)]
fn convert_rows(
    name: &str,
    rows: usize,
    row: usize,
    enc: &'static dyn Codec,
    budget: u64,
    measure: bool,
    decode: &(dyn Fn(usize, &mut [f32]) -> Result<()> + Sync),
    ticker: &Ticker,
    guide: Option<Guide<'_>>,
) -> Result<(Vec<u8>, Option<ErrorStats>)> {
    ticker.start(rows);
    if !enc.can_quantize() {
        return Err(Error::Unsupported {
            name: name.into(),
            dtype: enc.dtype(),
            op: "quantize",
        });
    }
    let dst_row = enc.bytes_for(row).map_err(|e| Error::codec(name, e))?;
    let threads = rayon::current_num_threads().max(1) as u64;
    let floats_per_row = row as u64 * if measure { 2 } else { 1 };
    // Within the budget, and small enough that every worker gets several chunks of
    // this tensor (one chunk per tensor would leave the other workers idle).
    let by_budget = (budget / threads / (4 * floats_per_row).max(1)).max(1) as usize;
    let chunk_rows = by_budget.min(rows.div_ceil(4 * threads as usize)).max(1);
    let total = rows.checked_mul(dst_row).ok_or_else(|| Error::Unsupported {
        name: name.into(),
        dtype: enc.dtype(),
        op: "hold (size overflows)",
    })?;
    let mut out = vec![0u8; total];
    if total == 0 {
        return Ok((out, measure.then(|| Sums::default().stats())));
    }
    let sums = out
        .par_chunks_mut(dst_row * chunk_rows)
        .enumerate()
        .map_init(
            || (Vec::<f32>::new(), Vec::<f32>::new()),
            |(x, y), (k, o)| -> Result<Sums> {
                let n = o.len() / dst_row * row;
                x.resize(n, 0.0);
                decode(k * chunk_rows, x)?;
                ticker.tick(n / row.max(1))?;
                match guide {
                    None => enc.quantize(x, row, None, o).map_err(|e| Error::codec(name, e))?,
                    Some(Guide::Ternary(cfg)) => {
                        // Groups never span rows: each chunk of whole rows ternarizes alone.
                        let bitnet = |e: qload_quant_core::bitnet::BitnetError| Error::Bitnet {
                            name: name.to_string(),
                            reason: e.to_string(),
                        };
                        let t = qload_quant_core::bitnet::ternary::ternarize(x, n / row.max(1), row, &cfg)
                            .map_err(bitnet)?;
                        qload_quant_core::bitnet::tq::from_ternary(&t, enc.dtype(), o).map_err(bitnet)?;
                    }
                    Some(Guide::Imatrix((values, rows_per_mat))) => {
                        // Split the chunk where the matrix (and so the imatrix row) changes.
                        let (first, count) = (k * chunk_rows, n / row.max(1));
                        let mut r = 0;
                        while r < count {
                            let m = (first + r) / rows_per_mat;
                            let end = count.min((m + 1) * rows_per_mat - first);
                            let w = &values[m * row..(m + 1) * row];
                            enc.quantize(&x[r * row..end * row], row, Some(w), &mut o[r * dst_row..end * dst_row])
                                .map_err(|e| Error::codec(name, e))?;
                            r = end;
                        }
                    }
                }
                let mut sums = Sums::default();
                if measure {
                    y.resize(n, 0.0);
                    enc.dequantize(o, y).map_err(|e| Error::codec(name, e))?;
                    sums = error_sums(x, y.iter().copied());
                }
                Ok(sums)
            },
        )
        .try_reduce(Sums::default, |a, b| Ok(a.add(b)))?;
    Ok((out, measure.then(|| sums.stats())))
}

/// f32/f16/bf16/quantized → I2_S (bitnet.cpp's x86 layout): per-tensor absmean, so two
/// passes over the source in bounded chunks (pass 1 in order for the exact mean,
/// pass 2 in parallel), bytes identical to `bitnet::i2s::quantize` of the whole tensor
/// (with `f16_scale`, the stored scale rounded to f16). A large tensor without clip or
/// measurement usually takes one pass (`I2sStream::speculate`); same bytes.
#[allow(clippy::too_many_arguments)]
fn convert_i2s(
    name: &str,
    src: &[u8],
    from: DType,
    clip: Option<f32>,
    f16_scale: bool,
    budget: u64,
    measure: bool,
    release: &(dyn Fn(usize, usize) + Sync),
    ticker: &Ticker,
) -> Result<(Vec<u8>, Option<ErrorStats>)> {
    use qload_quant_core::bitnet::i2s::{I2sLayout, I2sStream, tensor_bytes};
    let dec = decoder(name, from)?;
    let (be, bb) = (dec.block_elems(), dec.block_bytes());
    if !src.len().is_multiple_of(bb) {
        return Err(Error::codec(
            name,
            qload_quant_core::QuantError::NotBlockMultiple {
                dtype: from,
                what: "bytes",
                len: src.len(),
                block: bb,
            },
        ));
    }
    let n = src.len() / bb * be;
    let bitnet = |e: qload_quant_core::bitnet::BitnetError| Error::Bitnet {
        name: name.to_string(),
        reason: e.to_string(),
    };
    let mut stream = I2sStream::new(n, I2sLayout::X86).map_err(bitnet)?;
    ticker.start(2 * n);
    // Chunks: whole packing blocks (128) and whole source blocks (≤ 256): multiples of 256.
    let threads = rayon::current_num_threads().max(1) as u64;
    let floats = if measure { 2 } else { 1 };
    let by_budget = ((budget / threads / (4 * floats)).max(256) as usize / 256) * 256;
    let chunk = by_budget
        .min((n.div_ceil(4 * threads as usize)).div_ceil(256) * 256)
        .max(256);
    let src_chunk = chunk / be * bb;

    let mut x = Vec::<f32>::new();
    let mut out = vec![0u8; tensor_bytes(n).map_err(bitnet)?];
    // One pass where the stream can speculate (large x86-layout tensors, the plain
    // mean, no error measurement): a sample of spans gives a band for the mean, and
    // pass 1 packs every code the band decides (see `I2sStream::speculate`).
    let spans = if clip.is_none() && !measure {
        stream.sample_spans()
    } else {
        None
    };
    let mut mean_known = false;
    if let Some(spans) = spans {
        let mut means = Vec::new();
        for r in spans {
            // Spans cover whole 256-element blocks: whole source blocks.
            x.resize(r.len(), 0.0);
            dec.dequantize(&src[r.start / be * bb..r.end / be * bb], &mut x)
                .map_err(|e| Error::codec(name, e))?;
            means.push(qload_quant_core::bitnet::i2s::span_mean(&x));
        }
        if stream.speculate(&means) {
            for (k, s) in src.chunks(src_chunk).enumerate() {
                x.resize(s.len() / bb * be, 0.0);
                dec.dequantize(s, &mut x).map_err(|e| Error::codec(name, e))?;
                ticker.tick(x.len())?;
                let start = k * chunk;
                stream.add_and_pack(start, &x, &mut out[start / 4..(start + x.len()) / 4]);
                release(k * src_chunk, k * src_chunk + s.len());
            }
            if let Some(any) = stream.resolve(&mut out[..n / 4]) {
                if f16_scale {
                    stream.round_scale_to_f16();
                }
                ticker.tick(n)?;
                stream.finish(any, &mut out).map_err(bitnet)?;
                return Ok((out, None));
            }
            // The band missed the mean, which is now known: pass 2 packs everything.
            mean_known = true;
        }
    }

    // Pass 1, in order: the mean |w| over the whole tensor.
    if !mean_known {
        for (k, s) in src.chunks(src_chunk).enumerate() {
            x.resize(s.len() / bb * be, 0.0);
            dec.dequantize(s, &mut x).map_err(|e| Error::codec(name, e))?;
            ticker.tick(x.len())?;
            stream.add_to_mean(&x);
            release(k * src_chunk, k * src_chunk + s.len());
        }
    }
    let mut scale = stream.absmean().scale;
    if let Some(clip) = clip {
        // Pass 1b, in order: the mean of min(|w|, clip · mean|w|).
        stream.clip(clip);
        for s in src.chunks(src_chunk) {
            x.resize(s.len() / bb * be, 0.0);
            dec.dequantize(s, &mut x).map_err(|e| Error::codec(name, e))?;
            stream.add_to_mean(&x);
        }
        scale = stream.absmean().scale;
    }
    drop(x);
    if f16_scale {
        // Stored as f16 (TQ blocks; I2_S from an f16 source): written and measured so.
        scale = stream.round_scale_to_f16();
    }

    // Pass 2, in parallel: pack each chunk into its bytes.
    let packed = n / 4;
    let stream = &stream;
    let (any, sums) = out[..packed]
        .par_chunks_mut(chunk / 4)
        .zip(src.par_chunks(src_chunk))
        .enumerate()
        .map_init(Vec::<f32>::new, |x, (k, (o, s))| -> Result<(bool, Sums)> {
            x.resize(s.len() / bb * be, 0.0);
            dec.dequantize(s, x).map_err(|e| Error::codec(name, e))?;
            ticker.tick(x.len())?;
            let any = stream.pack(k * chunk, x, o);
            release(k * src_chunk, k * src_chunk + s.len());
            let mut sums = Sums::default();
            if measure {
                // y = code · scale (when every code is 0 the stored scale is 0: y is 0 either way).
                sums = error_sums(x, x.iter().map(|&a| stream.code(a) as f32 * scale));
            }
            Ok((any, sums))
        })
        .try_reduce(|| (false, Sums::default()), |a, b| Ok((a.0 || b.0, a.1.add(b.1))))?;
    stream.finish(any, &mut out).map_err(bitnet)?;
    Ok((out, measure.then(|| sums.stats())))
}

/// Error sums of a reconstruction `y` of `x`.
fn error_sums(x: &[f32], y: impl Iterator<Item = f32>) -> Sums {
    let mut sums = Sums {
        n: x.len() as u64,
        ..Sums::default()
    };
    for (&a, b) in x.iter().zip(y) {
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
    sums
}
