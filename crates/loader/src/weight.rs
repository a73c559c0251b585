//! One weight abstraction over every storage a loaded tensor can have: float
//! (F32/F16/BF16), ggml block types, BitNet ternary (I2_S, TL1, TL2) and pre-quantized Python
//! checkpoints kept native (NF4, MLX affine, HQQ, quanto, …). Inference code calls
//! [`Weight::matvec`] and [`Weight::dequantize`] and never branches on the kind.
//!
//! ```
//! let (model, _) = qload_loader::load_quantized("../../tests/fixtures/gguf/tiny-llama-f16.gguf", "q4_k_m")?;
//! let w = model.weight("blk.0.ffn_up.weight").unwrap();
//! let x = vec![0.5f32; w.cols()];
//! let mut y = vec![0f32; w.rows()];
//! w.matvec(&x, &mut y)?;
//! # Ok::<(), qload_loader::Error>(())
//! ```
//!
//! Results do not depend on the thread count: every row is computed by one thread.

use qload_formats::DType;
use qload_prequant::PrequantTensor;
use qload_quant_core::bitnet::i2s::{I2sLayout, I2sRef};
use qload_quant_core::bitnet::tl::{self, TlKind, TlParams};

use crate::error::{Error, Result};
use crate::load::{LoadedModel, LoadedTensor, Repacked};

/// What a weight is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// F32, F16 or BF16.
    Float,
    /// A ggml block type (Q4_0 … Q8_K, IQ*, TQ*, MXFP4, …).
    Ggml,
    /// BitNet b1.58 ternary in one of bitnet.cpp's layouts (I2_S, TL1, TL2).
    Ternary,
    /// A pre-quantized Python-library weight kept native.
    Prequantized,
}

enum Store<'m> {
    Codec(&'m [u8]),
    /// Q4_0 with eight rows interleaved (`Loader::repack`).
    Q4_0x8(&'m qload_quant_core::repack::Q4_0x8),
    /// I2_S with four rows interleaved (`Loader::repack`).
    I2sX4(&'m qload_quant_core::repack::I2sX4),
    I2s(I2sRef<'m>),
    Tl(TlStore<'m>),
    Prequant(Box<PrequantTensor<'m>>),
}

/// A TL1/TL2 tensor: its packed bytes, the tiling it was packed with (bitnet.cpp's
/// preset for the shape, else qload's general tiling) and its scale.
struct TlStore<'m> {
    bytes: &'m [u8],
    kind: TlKind,
    params: TlParams,
    scale: f32,
}

impl<'m> TlStore<'m> {
    /// The scale of a TL tensor: the `<name>_scale` F32 tensor bitnet.cpp's converter
    /// writes beside it, else the f32 that opens the 32-byte area GGUF sizes give every
    /// TL1/TL2 tensor after its packed bytes (where bitnet.cpp's TL1 transform reads it).
    fn new(model: &'m LoadedModel, t: &'m LoadedTensor, rows: usize, cols: usize) -> Result<TlStore<'m>> {
        let bitnet = |reason: String| Error::Bitnet {
            name: t.name.clone(),
            reason,
        };
        let kind = if t.dtype == DType::TL1 {
            TlKind::Tl1
        } else {
            TlKind::Tl2
        };
        let params = TlParams::for_shape(kind, rows, cols).map_err(|e| bitnet(e.to_string()))?;
        let bytes = model.bytes(t);
        let sibling = model
            .tensor(&format!("{}_scale", t.name))
            .filter(|s| s.dtype == DType::F32 && s.shape.iter().product::<u64>() == 1)
            .and_then(|s| model.bytes(s).get(..4));
        let scale = sibling.or(tl_scale_area(bytes)).ok_or_else(|| {
            bitnet(format!(
                "no scale: neither a one-value F32 tensor {}_scale nor a 32-byte scale area after the packed weights",
                t.name
            ))
        })?;
        Ok(TlStore {
            bytes,
            kind,
            params,
            scale: f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]),
        })
    }

    fn codes(&self, rows: usize, cols: usize) -> std::result::Result<Vec<i8>, qload_quant_core::bitnet::BitnetError> {
        match self.kind {
            TlKind::Tl1 => tl::tl1_unpack(self.bytes, rows, cols, &self.params),
            TlKind::Tl2 => tl::tl2_unpack(self.bytes, rows, cols, &self.params),
        }
    }
}

/// The f32 bytes that open the 32-byte area GGUF sizes give every TL1/TL2 tensor after
/// its packed bytes (where bitnet.cpp's kernels read the scale); `None` when shorter.
pub(crate) fn tl_scale_area(bytes: &[u8]) -> Option<&[u8]> {
    bytes.len().checked_sub(32).and_then(|at| bytes.get(at..at + 4))
}

/// A loaded weight, borrowed from its [`LoadedModel`].
pub struct Weight<'m> {
    tensor: &'m LoadedTensor,
    rows: usize,
    cols: usize,
    store: Store<'m>,
    activations: qload_quant_core::bitnet::act::ActConfig,
}

impl std::fmt::Debug for Weight<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weight")
            .field("name", &self.tensor.name)
            .field("kind", &self.kind())
            .field("dtype", &self.tensor.dtype)
            .field("shape", &self.tensor.shape)
            .finish()
    }
}

impl<'m> Weight<'m> {
    pub(crate) fn new(model: &'m LoadedModel, t: &'m LoadedTensor) -> Result<Weight<'m>> {
        let cols = t.shape.last().copied().unwrap_or(1) as usize;
        let rows = t.shape.iter().rev().skip(1).product::<u64>() as usize;
        let store = if let Some(p) = model.prequant(t) {
            Store::Prequant(Box::new(p))
        } else if t.device != qload_placement::Device::Cpu {
            return Err(Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "compute on the CPU (the tensor lives on a GPU)",
            });
        } else if let Some(m) = model.interleaved(t) {
            match m {
                Repacked::Q4_0x8(m) => Store::Q4_0x8(m),
                Repacked::I2sX4(m) => Store::I2sX4(m),
            }
        } else if t.dtype == DType::I2S {
            let r = I2sRef::new(model.bytes(t), rows * cols, I2sLayout::X86).map_err(|e| Error::Bitnet {
                name: t.name.clone(),
                reason: e.to_string(),
            })?;
            Store::I2s(r)
        } else if matches!(t.dtype, DType::TL1 | DType::TL2) {
            Store::Tl(TlStore::new(model, t, rows, cols)?)
        } else if qload_quant_core::codec(t.dtype).is_some_and(|c| c.can_dequantize()) {
            Store::Codec(model.bytes(t))
        } else {
            return Err(Error::Unsupported {
                name: t.name.clone(),
                dtype: t.dtype,
                op: "use as a weight",
            });
        };
        Ok(Weight {
            tensor: t,
            rows,
            cols,
            store,
            activations: model.activations(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &'m str {
        &self.tensor.name
    }

    /// How it is stored.
    pub fn kind(&self) -> WeightKind {
        match &self.store {
            Store::Prequant(_) => WeightKind::Prequantized,
            Store::I2s(_) | Store::I2sX4(_) | Store::Tl(_) => WeightKind::Ternary,
            Store::Codec(_) if matches!(self.tensor.dtype, DType::F32 | DType::F16 | DType::BF16) => WeightKind::Float,
            Store::Codec(_) | Store::Q4_0x8(_) => WeightKind::Ggml,
        }
    }

    /// Its element type (for a pre-quantized weight: the type its dequantization yields).
    pub fn dtype(&self) -> DType {
        self.tensor.dtype
    }

    /// For a pre-quantized weight: its scheme (`nf4 bs64 dq`, …).
    pub fn scheme(&self) -> Option<qload_prequant::Scheme> {
        self.tensor.scheme
    }

    /// Its type for listings: the pre-quantized scheme's label, else the dtype's name.
    pub fn type_label(&self) -> String {
        self.scheme().map_or_else(|| self.dtype().to_string(), |s| s.label())
    }

    /// Its row-major shape.
    pub fn shape(&self) -> &'m [u64] {
        &self.tensor.shape
    }

    /// Rows (all dimensions but the last).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row length (the last dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes it occupies as loaded.
    pub fn byte_size(&self) -> u64 {
        match &self.store {
            Store::Codec(b) => b.len() as u64,
            Store::Q4_0x8(x8) => x8.bytes().len() as u64,
            Store::I2sX4(m) => m.bytes().len() as u64,
            Store::I2s(r) => r.packed().len() as u64 + 32,
            Store::Tl(t) => t.bytes.len() as u64,
            Store::Prequant(p) => p.stored_bytes(),
        }
    }

    /// Its values as f32, into `out` (`rows × cols` values).
    pub fn dequantize(&self, out: &mut [f32]) -> Result<()> {
        let name = self.name();
        match &self.store {
            Store::Codec(b) => {
                qload_quant_core::kernels::dequantize_par(self.tensor.dtype, b, out).map_err(|e| Error::codec(name, e))
            }
            // Row-major again for the codec (a temporary copy of the matrix's bytes).
            Store::Q4_0x8(x8) => qload_quant_core::kernels::dequantize_par(DType::Q4_0, &x8.unpack(), out)
                .map_err(|e| Error::codec(name, e)),
            Store::I2s(r) => r.dequantize(out).map_err(|e| Error::Bitnet {
                name: name.to_string(),
                reason: e.to_string(),
            }),
            // Row-major again (a temporary copy of the tensor's bytes).
            Store::I2sX4(m) => {
                let plain = m.unpack();
                I2sRef::new(&plain, self.rows * self.cols, I2sLayout::X86)
                    .and_then(|r| r.dequantize(out))
                    .map_err(|e| Error::Bitnet {
                        name: name.to_string(),
                        reason: e.to_string(),
                    })
            }
            Store::Tl(t) => {
                if out.len() != self.rows * self.cols {
                    return Err(Error::Bitnet {
                        name: name.to_string(),
                        reason: format!("{} values asked of a {}×{} weight", out.len(), self.rows, self.cols),
                    });
                }
                let codes = t.codes(self.rows, self.cols).map_err(|e| Error::Bitnet {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
                for (o, c) in out.iter_mut().zip(codes) {
                    *o = c as f32 * t.scale;
                }
                Ok(())
            }
            Store::Prequant(p) => p.dequantize(out).map_err(|e| Error::codec(name, e)),
        }
    }

    /// Its values as a new f32 vector.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize(&mut out)?;
        Ok(out)
    }

    /// `x` quantized to int8 as [`LoadedModel::activations`] says, for the I2_S
    /// kernels; `x` must be one row's length.
    fn ternary_activations(&self, x: &[f32]) -> Result<qload_quant_core::bitnet::act::QuantizedAct> {
        if x.len() != self.cols {
            return Err(Error::Bitnet {
                name: self.name().to_string(),
                reason: format!("{} activations for rows of {}", x.len(), self.cols),
            });
        }
        Ok(qload_quant_core::bitnet::act::quantize_row(x, &self.activations))
    }

    /// `y = W·x` (`x.len() == cols`, `y.len() == rows`), activations quantized
    /// internally where the kernel wants them (Q8_0/Q8_1/Q8_K for ggml types, int8
    /// per-token for I2_S/TL1/TL2 as [`LoadedModel::activations`] says; f32 for float
    /// and pre-quantized weights). TL1/TL2 run the lookup-table kernels' scalar
    /// specification (exact integer sums; no SIMD TL kernel yet).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let name = self.name();
        match &self.store {
            Store::Codec(b) => qload_quant_core::kernels::matvec(self.tensor.dtype, b, self.rows, self.cols, x, y)
                .map_err(|e| Error::codec(name, e)),
            Store::Q4_0x8(x8) => x8.matvec(x, y).map_err(|e| Error::codec(name, e)),
            Store::I2s(r) => {
                let a = self.ternary_activations(x)?;
                // The codes are checked once per tensor, on its first matvec.
                let ternary = *self
                    .tensor
                    .ternary_codes
                    .get_or_init(|| qload_quant_core::bitnet::i2s::codes_are_ternary(r.packed()));
                let r = r.with_ternary_codes(ternary);
                qload_quant_core::bitnet::i2s::matvec(&r, self.rows, self.cols, &a, y).map_err(|e| Error::Bitnet {
                    name: name.to_string(),
                    reason: e.to_string(),
                })
            }
            Store::I2sX4(m) => {
                let a = self.ternary_activations(x)?;
                m.matvec(&a, y).map_err(|e| Error::Bitnet {
                    name: name.to_string(),
                    reason: e.to_string(),
                })
            }
            Store::Tl(t) => {
                // The lookup-table kernels' scalar specification: exact integer sums of
                // codes × int8 activations, then the two scales (as for I2_S).
                let bitnet = |e: qload_quant_core::bitnet::BitnetError| Error::Bitnet {
                    name: name.to_string(),
                    reason: e.to_string(),
                };
                if x.len() != self.cols || y.len() != self.rows {
                    return Err(Error::Bitnet {
                        name: name.to_string(),
                        reason: format!(
                            "{} activations and {} outputs for a {}×{} weight",
                            x.len(),
                            y.len(),
                            self.rows,
                            self.cols
                        ),
                    });
                }
                let a = qload_quant_core::bitnet::act::quantize_row(x, &self.activations);
                let mut ints = vec![0i64; self.rows];
                match t.kind {
                    TlKind::Tl1 => tl::tl1_matvec_int(t.bytes, self.rows, self.cols, &t.params, &a.q, &mut ints),
                    TlKind::Tl2 => tl::tl2_matvec_int(t.bytes, self.rows, self.cols, &t.params, &a.q, &mut ints),
                }
                .map_err(bitnet)?;
                if a.zero_point != 0 {
                    let ones = vec![1i8; self.cols];
                    let mut wsum = vec![0i64; self.rows];
                    match t.kind {
                        TlKind::Tl1 => tl::tl1_matvec_int(t.bytes, self.rows, self.cols, &t.params, &ones, &mut wsum),
                        TlKind::Tl2 => tl::tl2_matvec_int(t.bytes, self.rows, self.cols, &t.params, &ones, &mut wsum),
                    }
                    .map_err(bitnet)?;
                    for (i, s) in ints.iter_mut().zip(&wsum) {
                        *i -= a.zero_point as i64 * s;
                    }
                }
                for (y, &i) in y.iter_mut().zip(&ints) {
                    *y = i as f32 / a.scale * t.scale;
                }
                Ok(())
            }
            Store::Prequant(p) => p.matvec(x, y).map_err(|e| Error::codec(name, e)),
        }
    }

    /// `Y = X·Wᵀ` for `n` activation rows: `x` is `n × cols`, `y` is `n × rows`, one
    /// [`Weight::matvec`] per row.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        if self.cols == 0 || !x.len().is_multiple_of(self.cols) || y.len() != x.len() / self.cols * self.rows {
            return Err(Error::Unsupported {
                name: self.name().to_string(),
                dtype: self.tensor.dtype,
                op: "multiply activations whose length is not n × cols (or an output that is not n × rows)",
            });
        }
        for (xr, yr) in x.chunks_exact(self.cols).zip(y.chunks_exact_mut(self.rows.max(1))) {
            self.matvec(xr, yr)?;
        }
        Ok(())
    }
}

impl LoadedModel {
    /// The tensor called `name` as a [`Weight`], or `None` when there is no such tensor
    /// or its type cannot be used as one (integer tables).
    pub fn weight(&self, name: &str) -> Option<Weight<'_>> {
        self.tensor(name).and_then(|t| Weight::new(self, t).ok())
    }

    /// Every tensor that is a weight matrix (two or more dimensions), as a [`Weight`].
    pub fn weights(&self) -> impl Iterator<Item = Weight<'_>> {
        self.tensors()
            .iter()
            .filter(|t| t.shape.iter().filter(|&&d| d > 1).count() >= 2)
            .filter_map(|t| Weight::new(self, t).ok())
    }
}
