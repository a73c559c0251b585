//! One weight abstraction over every storage a loaded tensor can have: float
//! (F32/F16/BF16), ggml block types, BitNet ternary (I2_S) and pre-quantized Python
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

use crate::error::{Error, Result};
use crate::load::{LoadedModel, LoadedTensor};

/// What a weight is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// F32, F16 or BF16.
    Float,
    /// A ggml block type (Q4_0 … Q8_K, IQ*, TQ*, MXFP4, …).
    Ggml,
    /// BitNet b1.58 ternary in bitnet.cpp's I2_S layout.
    Ternary,
    /// A pre-quantized Python-library weight kept native.
    Prequantized,
}

enum Store<'m> {
    Codec(&'m [u8]),
    I2s(I2sRef<'m>),
    Prequant(Box<PrequantTensor<'m>>),
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
        } else if t.dtype == DType::I2S {
            let r = I2sRef::new(model.bytes(t), rows * cols, I2sLayout::X86).map_err(|e| Error::Bitnet {
                name: t.name.clone(),
                reason: e.to_string(),
            })?;
            Store::I2s(r)
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
            Store::I2s(_) => WeightKind::Ternary,
            Store::Codec(_) if matches!(self.tensor.dtype, DType::F32 | DType::F16 | DType::BF16) => WeightKind::Float,
            Store::Codec(_) => WeightKind::Ggml,
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
            Store::I2s(r) => r.packed().len() as u64 + 32,
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
            Store::I2s(r) => r.dequantize(out).map_err(|e| Error::Bitnet {
                name: name.to_string(),
                reason: e.to_string(),
            }),
            Store::Prequant(p) => p.dequantize(out).map_err(|e| Error::codec(name, e)),
        }
    }

    /// Its values as a new f32 vector.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize(&mut out)?;
        Ok(out)
    }

    /// `y = W·x` (`x.len() == cols`, `y.len() == rows`), activations quantized
    /// internally where the kernel wants them (Q8_0/Q8_1/Q8_K for ggml types, int8
    /// per-token for I2_S as [`LoadedModel::activations`] says; f32 for float and
    /// pre-quantized weights).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let name = self.name();
        match &self.store {
            Store::Codec(b) => qload_quant_core::kernels::matvec(self.tensor.dtype, b, self.rows, self.cols, x, y)
                .map_err(|e| Error::codec(name, e)),
            Store::I2s(r) => {
                if x.len() != self.cols {
                    return Err(Error::Bitnet {
                        name: name.to_string(),
                        reason: format!("{} activations for rows of {}", x.len(), self.cols),
                    });
                }
                let a = qload_quant_core::bitnet::act::quantize_row(x, &self.activations);
                qload_quant_core::bitnet::i2s::matvec(r, self.rows, self.cols, &a, y).map_err(|e| Error::Bitnet {
                    name: name.to_string(),
                    reason: e.to_string(),
                })
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
