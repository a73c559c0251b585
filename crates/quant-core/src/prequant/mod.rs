//! Pre-quantized weights written by Python libraries: bitsandbytes (NF4, FP4, LLM.int8),
//! HQQ, MLX (affine, mxfp4, mxfp8, nvfp4), optimum-quanto (qint2/4/8, qfloat8) and
//! transformers' packed BitNet b1.58 (`weight` u8 + `weight_scale`).
//!
//! A [`PrequantTensor`] is one logical weight: its [`Scheme`], its logical row-major
//! shape and the raw bytes of its parts ([`Parts`]: packed codes, scales, offsets,
//! code books), as the checkpoint stores them. Which keys of a checkpoint make up a
//! weight, and which scheme they use, is decided above this crate (`qload-prequant`
//! reads keys and configs); here are only the numbers.
//!
//! **Specification:** [`PrequantTensor::dequantize_rows`] gives, for every element, the
//! library's own dequantized value (in the library's output dtype, see
//! [`Scheme::output_dtype`]) widened exactly to f32: the same bits as the library,
//! checked against each library's own output in `tests/prequant.rs`.
//!
//! Every constructor checks every part's dtype and length against the scheme and the
//! shape before any decoding, so decoding never indexes out of bounds and never panics
//! on part contents.

use half::f16;
use qload_dtype::DType;
use rayon::prelude::*;

use crate::QuantError;
#[cfg(target_arch = "x86_64")]
pub(crate) use common::Round;
use common::bad;
use lut4::Lut4;

mod bitnet;
mod bnb;
mod common;
mod hqq;
pub(crate) mod lut4;
mod mlx;
mod quanto;

/// Rows per rayon task in [`PrequantTensor::matvec`].
const ROWS_PER_TASK: usize = 8;

/// Elements decoded at a time through f32 scratch by the generic f16 path.
const F16_CHUNK: usize = 4096;

/// bitsandbytes' NF4 code book: the 16 values its files store as `quant_map` for NF4
/// (decoding always uses the stored map; this is for building weights and tests).
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// bitsandbytes 4-bit code book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bnb4Kind {
    /// NormalFloat 4.
    Nf4,
    /// bitsandbytes' FP4 (E2M1 with its own code order).
    Fp4,
}

/// MLX's floating-point quantization modes (no biases; shared scales per group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlxFloatMode {
    /// FP4 E2M1 elements, E8M0 scale per 32.
    Mxfp4,
    /// FP8 E4M3 elements, E8M0 scale per 32.
    Mxfp8,
    /// FP4 E2M1 elements, FP8 E4M3 scale per 16.
    Nvfp4,
}

/// optimum-quanto weight types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantoType {
    /// 2-bit unsigned codes with scale and shift, packed 4 per byte.
    Qint2,
    /// 4-bit unsigned codes with scale and shift, packed 2 per byte.
    Qint4,
    /// Signed 8-bit codes with a scale per output row.
    Qint8,
    /// FP8 E4M3 (`float8_e4m3fn`) values with a scale per output row.
    Qfloat8E4m3,
}

/// What a packed BitNet weight's `weight_scale` does (the linear class that reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitnetScale {
    /// transformers' `BitLinear` (`linear_class = "bitlinear"`, the default): the output
    /// is divided by it, `w = code / weight_scale`.
    Divide,
    /// transformers' `AutoBitLinear` (`linear_class = "autobitlinear"`, offline mode):
    /// the output is multiplied by it, `w = code · weight_scale`.
    Multiply,
}

/// How a pre-quantized weight is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// bitsandbytes `Linear4bit` / `quantize_4bit`: two codes per byte (element 2i in
    /// the high nibble), `y = code[q] · absmax[block]`, cast to `dtype`. With double
    /// quantization `absmax` is stored as u8 codes into `nested_code`, scaled by
    /// `nested_scales[i / nested_blocksize]` plus `nested_offset`.
    Bnb4 {
        /// NF4 or FP4.
        kind: Bnb4Kind,
        /// Elements per absmax block (64 … 4096).
        blocksize: usize,
        /// Absmax values per nested scale, when double-quantized.
        nested_blocksize: Option<usize>,
        /// The dtype the weight is dequantized to (the quant state's `dtype`).
        dtype: DType,
    },
    /// bitsandbytes LLM.int8 (`Linear8bitLt`): i8 weight and `SCB` (f32 absmax per
    /// row); `y = (w · SCB) · (1/127)` in f32, as `int8_vectorwise_dequant`.
    BnbInt8 {
        /// The module's dtype (the dequantized output is f32, as bitsandbytes gives it).
        dtype: DType,
    },
    /// HQQ: codes packed by splitting the rows of the code matrix into 8/`nbits` chunks
    /// (3-bit: 10 per int32), `y = (q − zero) · scale` in `dtype`.
    Hqq {
        /// 1, 2, 3, 4 or 8.
        nbits: u8,
        /// Elements per group.
        group_size: usize,
        /// 1: groups are runs of consecutive elements; 0: groups are strided.
        axis: u8,
        /// Compute dtype (f16 or bf16; also f32).
        dtype: DType,
    },
    /// MLX affine: LSB-first bit stream of `bits`-bit codes per row in u32 words,
    /// `y = scale · q + bias` rounded to `dtype` after the multiply and after the add.
    MlxAffine {
        /// 1 … 8.
        bits: u8,
        /// 32, 64 or 128.
        group_size: usize,
        /// The dtype of scales and biases (and of the result).
        dtype: DType,
    },
    /// MLX mxfp4 / mxfp8 / nvfp4: `y = element · scale` rounded to `dtype`.
    MlxFloat {
        /// Which mode.
        mode: MlxFloatMode,
        /// 32 (mx) or 16 (nv).
        group_size: usize,
        /// The output dtype.
        dtype: DType,
    },
    /// optimum-quanto: qint8/qfloat8 `y = scale[row] · data`; qint2/qint4 `y = scale ·
    /// q − shift` per group, codes packed by rows with the first chunk in the LOW bits.
    Quanto {
        /// The weight type.
        qtype: QuantoType,
        /// Elements per group for qint2/qint4 (`None`: one scale per output row).
        group_size: Option<usize>,
        /// The dtype of the scales (and of the result).
        dtype: DType,
    },
    /// transformers' BitNet b1.58: u8 `weight` `[rows/4, cols]` holding four ternary
    /// codes per byte along the rows (row `i·rows/4 + p` at bits `2i` of byte row `p`,
    /// value `field − 1`), and one `weight_scale` (see [`BitnetScale`]).
    Bitnet {
        /// Whether `weight_scale` divides or multiplies.
        scale: BitnetScale,
        /// The dtype of `weight_scale` (the model dtype, and of the result).
        dtype: DType,
    },
}

impl Scheme {
    /// A short label for listings: `nf4 bs64 dq`, `int8 SCB`, `hqq 4bit g64 axis1`,
    /// `mlx affine 4bit g64`, `mlx mxfp4 g32`, `quanto qint4 g128`.
    pub fn label(&self) -> String {
        match *self {
            Scheme::Bnb4 {
                kind,
                blocksize,
                nested_blocksize,
                ..
            } => format!(
                "{} bs{blocksize}{}",
                match kind {
                    Bnb4Kind::Nf4 => "nf4",
                    Bnb4Kind::Fp4 => "fp4",
                },
                if nested_blocksize.is_some() { " dq" } else { "" }
            ),
            Scheme::BnbInt8 { .. } => "int8 SCB".into(),
            Scheme::Hqq {
                nbits,
                group_size,
                axis,
                ..
            } => format!("hqq {nbits}bit g{group_size} axis{axis}"),
            Scheme::MlxAffine { bits, group_size, .. } => format!("mlx affine {bits}bit g{group_size}"),
            Scheme::MlxFloat { mode, group_size, .. } => format!(
                "mlx {} g{group_size}",
                match mode {
                    MlxFloatMode::Mxfp4 => "mxfp4",
                    MlxFloatMode::Mxfp8 => "mxfp8",
                    MlxFloatMode::Nvfp4 => "nvfp4",
                }
            ),
            Scheme::Quanto { qtype, group_size, .. } => {
                let t = match qtype {
                    QuantoType::Qint2 => "qint2",
                    QuantoType::Qint4 => "qint4",
                    QuantoType::Qint8 => "qint8",
                    QuantoType::Qfloat8E4m3 => "qfloat8",
                };
                match group_size {
                    Some(g) => format!("quanto {t} g{g}"),
                    None => format!("quanto {t}"),
                }
            }
            Scheme::Bitnet { scale, .. } => match scale {
                BitnetScale::Divide => "bitnet ternary (bitlinear)".into(),
                BitnetScale::Multiply => "bitnet ternary (autobitlinear)".into(),
            },
        }
    }

    /// The dtype of the library's own dequantized output (what
    /// [`PrequantTensor::dequantize_rows`] reproduces, widened to f32).
    pub fn output_dtype(&self) -> DType {
        match *self {
            Scheme::BnbInt8 { .. } => DType::F32,
            Scheme::Bnb4 { dtype, .. }
            | Scheme::Hqq { dtype, .. }
            | Scheme::MlxAffine { dtype, .. }
            | Scheme::MlxFloat { dtype, .. }
            | Scheme::Quanto { dtype, .. }
            | Scheme::Bitnet { dtype, .. } => dtype,
        }
    }
}

/// One stored part of a weight: its raw bytes (little-endian, row-major), element
/// type and stored shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Part<'a> {
    /// The bytes as stored.
    pub bytes: &'a [u8],
    /// Their element type.
    pub dtype: DType,
    /// The stored shape.
    pub shape: Vec<u64>,
}

/// The stored parts of one weight. Which are required depends on the scheme.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parts<'a> {
    /// Packed codes: bnb `weight` (u8) or int8 `weight` (i8), HQQ `W_q` (u8, or i32 for
    /// 3-bit; a `view_as_float` W_q is passed re-typed as its `unpack_view_dtype`), MLX
    /// `weight` (u32), quanto `weight._data` (i8 / f8e4m3) or `weight._data._data` (u8).
    pub data: Option<Part<'a>>,
    /// Scales: bnb `absmax` (f32, or u8 codes when double-quantized), int8 `SCB`, HQQ
    /// `scale`, MLX `scales`, quanto `weight._scale`.
    pub scales: Option<Part<'a>>,
    /// Offsets: HQQ `zero`, MLX `biases`, quanto `weight._shift`.
    pub offsets: Option<Part<'a>>,
    /// bnb `quant_map` (16 f32).
    pub code: Option<Part<'a>>,
    /// bnb double quantization: `nested_absmax` (f32).
    pub nested_scales: Option<Part<'a>>,
    /// bnb double quantization: `nested_quant_map` (256 f32).
    pub nested_code: Option<Part<'a>>,
    /// bnb double quantization: the quant state's `nested_offset`.
    pub nested_offset: f32,
}

/// A validated pre-quantized weight.
#[derive(Debug, Clone)]
pub struct PrequantTensor<'a> {
    scheme: Scheme,
    shape: Vec<u64>,
    parts: Parts<'a>,
    rows: usize,
    cols: usize,
    plan: Plan,
}

/// What validation worked out beyond the shape.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Plain,
    Hqq(hqq::Geometry),
    Quanto(Option<quanto::Geometry>),
}

impl<'a> PrequantTensor<'a> {
    /// Checks every part against the scheme and the logical `shape` (row-major; rows are
    /// the product of all but the last dimension): required parts present, element
    /// types allowed, byte lengths exactly what shape and scheme imply, group sizes
    /// dividing. Errors are [`QuantError::BadPart`] naming the part (or `shape` /
    /// `scheme`). The shape must have at least one dimension and no zero dimension.
    pub fn new(scheme: Scheme, shape: Vec<u64>, parts: Parts<'a>) -> Result<Self, QuantError> {
        let (rows, cols, numel) = geometry(&shape)?;
        let p = &parts;
        let plan = match scheme {
            Scheme::Bnb4 {
                blocksize,
                nested_blocksize,
                dtype,
                ..
            } => {
                bnb::validate_4bit(blocksize, nested_blocksize, dtype, numel, p)?;
                Plan::Plain
            }
            Scheme::BnbInt8 { .. } => {
                bnb::validate_int8(rows, numel, p)?;
                Plan::Plain
            }
            Scheme::Hqq {
                nbits,
                group_size,
                axis,
                dtype,
            } => Plan::Hqq(hqq::validate(nbits, group_size, axis, dtype, numel, p)?),
            Scheme::MlxAffine {
                bits,
                group_size,
                dtype,
            } => {
                mlx::validate_affine(bits, group_size, dtype, rows, cols, p)?;
                Plan::Plain
            }
            Scheme::MlxFloat {
                mode,
                group_size,
                dtype,
            } => {
                mlx::validate_float(mode, group_size, dtype, rows, cols, p)?;
                Plan::Plain
            }
            Scheme::Quanto {
                qtype,
                group_size,
                dtype,
            } => Plan::Quanto(quanto::validate(qtype, group_size, dtype, rows, cols, p)?),
            Scheme::Bitnet { dtype, .. } => {
                bitnet::validate(dtype, rows, cols, p)?;
                Plan::Plain
            }
        };
        Ok(PrequantTensor {
            scheme,
            shape,
            parts,
            rows,
            cols,
            plan,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The logical shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The parts.
    pub fn parts(&self) -> &Parts<'a> {
        &self.parts
    }

    /// Number of logical elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Row length (last dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of rows (product of all but the last dimension).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes stored for this weight, all parts together.
    pub fn stored_bytes(&self) -> u64 {
        let p = &self.parts;
        [
            &p.data,
            &p.scales,
            &p.offsets,
            &p.code,
            &p.nested_scales,
            &p.nested_code,
        ]
        .iter()
        .filter_map(|x| x.as_ref())
        .map(|x| x.bytes.len() as u64)
        .sum()
    }

    /// Decodes rows `first_row ..` into `out` (a whole number of rows): each value is
    /// the library's dequantized value, in [`Scheme::output_dtype`], widened to f32.
    /// Any row range works, including ones that start or end inside a bnb block.
    /// bitsandbytes NF4/FP4 and MLX affine 4-bit decode through per-group tables of
    /// the same values (AVX2 where available).
    pub fn dequantize_rows(&self, first_row: usize, out: &mut [f32]) -> Result<(), QuantError> {
        let e0 = self.check_rows(first_row, out.len())?;
        let done = self.with_lut(|lut, group, data, params| {
            let kernel = lut4::f32_kernel();
            let out = &mut *out;
            lut4::walk(
                lut,
                group,
                self.rows * self.cols,
                data,
                params,
                e0,
                out.len(),
                &mut |piece, off| match piece {
                    lut4::Piece::Full { mul, add, bytes } => {
                        if let Some(o) = out.get_mut(off..off + mul.len() * group) {
                            kernel(lut, group, mul, add, bytes, o);
                        }
                    }
                    lut4::Piece::Part { table, bytes, j0, j1 } => {
                        for (j, o) in (j0..j1).zip(out.iter_mut().skip(off)) {
                            *o = table[lut.code(bytes, j)];
                        }
                    }
                },
            );
        });
        if done.is_none() {
            self.decode(e0, out);
        }
        Ok(())
    }

    /// The whole weight into `out` (`numel` values): [`Self::dequantize_rows`] from row 0.
    pub fn dequantize(&self, out: &mut [f32]) -> Result<(), QuantError> {
        self.dequantize_rows(0, out)
    }

    /// As [`Self::dequantize_rows`], each value then rounded to f16 (to nearest even;
    /// exact when the output dtype is F16): `f16::from_f32(v)` of every `v` it gives.
    /// bitsandbytes NF4/FP4 and MLX affine 4-bit take a table-lookup path (AVX2 + F16C
    /// where available), bit-identical to that definition.
    pub fn dequantize_rows_f16(&self, first_row: usize, out: &mut [f16]) -> Result<(), QuantError> {
        let e0 = self.check_rows(first_row, out.len())?;
        let bits: &mut [u16] = bytemuck::cast_slice_mut(out);
        let done = self.with_lut(|lut, group, data, params| {
            let kernel = lut4::f16_kernel();
            let out = &mut *bits;
            lut4::walk(
                lut,
                group,
                self.rows * self.cols,
                data,
                params,
                e0,
                out.len(),
                &mut |piece, off| match piece {
                    lut4::Piece::Full { mul, add, bytes } => {
                        if let Some(o) = out.get_mut(off..off + mul.len() * group) {
                            kernel(lut, group, mul, add, bytes, o);
                        }
                    }
                    lut4::Piece::Part { table, bytes, j0, j1 } => {
                        let h: [u16; 16] = std::array::from_fn(|k| f16::from_f32(table[k]).to_bits());
                        for (j, o) in (j0..j1).zip(out.iter_mut().skip(off)) {
                            *o = h[lut.code(bytes, j)];
                        }
                    }
                },
            );
        });
        if done.is_none() {
            let mut buf = vec![0f32; bits.len().min(F16_CHUNK)];
            for (i, o) in bits.chunks_mut(F16_CHUNK).enumerate() {
                let buf = &mut buf[..o.len()];
                self.decode(e0 + i * F16_CHUNK, buf);
                for (o, v) in o.iter_mut().zip(buf.iter()) {
                    *o = f16::from_f32(*v).to_bits();
                }
            }
        }
        Ok(())
    }

    /// `y = W · x` on the stored codes (`x.len() == cols`, `y.len() == rows`), rows
    /// spread over rayon's threads; each row by one thread, so the result does not
    /// depend on the thread count.
    ///
    /// The specification decodes a row exactly as [`Self::dequantize_rows`] and sums
    /// `w · x` in f64, rounded once to f32. bitsandbytes NF4/FP4 and MLX affine 4-bit
    /// decode and multiply in one pass (the same decoded values, summed in f32 — in
    /// eight lanes with FMA on AVX2), within a few f32 ulps of the sum's magnitude.
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<(), QuantError> {
        if x.len() != self.cols {
            return Err(bad("x", format!("{} values for {} columns", x.len(), self.cols)));
        }
        if y.len() != self.rows {
            return Err(bad("y", format!("{} values for {} rows", y.len(), self.rows)));
        }
        let cols = self.cols;
        let numel = self.rows * cols;
        let dot = lut4::dot_kernel();
        let fused = self.with_lut(|lut, group, data, params| {
            y.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(t, ys)| {
                for (i, y) in ys.iter_mut().enumerate() {
                    let e0 = (t * ROWS_PER_TASK + i) * cols;
                    let mut acc = 0f32;
                    lut4::walk(
                        lut,
                        group,
                        numel,
                        data,
                        params,
                        e0,
                        cols,
                        &mut |piece, off| match piece {
                            lut4::Piece::Full { mul, add, bytes } => {
                                if let Some(x) = x.get(off..off + mul.len() * group) {
                                    acc += dot(lut, group, mul, add, bytes, x);
                                }
                            }
                            lut4::Piece::Part { table, bytes, j0, j1 } => {
                                for (j, x) in (j0..j1).zip(x.iter().skip(off)) {
                                    acc += table[lut.code(bytes, j)] * x;
                                }
                            }
                        },
                    );
                    *y = acc;
                }
            })
        });
        if fused.is_none() {
            y.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(t, ys)| {
                let mut w = vec![0f32; cols];
                for (i, y) in ys.iter_mut().enumerate() {
                    self.decode((t * ROWS_PER_TASK + i) * cols, &mut w);
                    *y = dot_f64(&w, x);
                }
            });
        }
        Ok(())
    }

    /// For a ternary scheme (transformers' packed BitNet): bitnet.cpp's I2_S bytes of the
    /// same weight, losslessly — the same codes, and the value of a `+1` code (exactly
    /// what [`Self::dequantize_rows`] gives for it) as the tensor's f32 scale. `None` for
    /// every other scheme.
    pub fn to_i2s(&self, layout: crate::bitnet::i2s::I2sLayout) -> Option<Result<Vec<u8>, QuantError>> {
        match self.scheme {
            Scheme::Bitnet { scale, dtype } => {
                Some(bitnet::to_i2s(scale, dtype, self.rows, self.cols, &self.parts, layout))
            }
            _ => None,
        }
    }

    /// Checks that `len` values are whole rows from `first_row` on; the first element.
    fn check_rows(&self, first_row: usize, len: usize) -> Result<usize, QuantError> {
        let n = len / self.cols;
        if n * self.cols != len || first_row.checked_add(n).is_none_or(|end| end > self.rows) {
            return Err(bad(
                "output",
                format!(
                    "{len} values from row {first_row} are not whole rows of {} within {} rows",
                    self.cols, self.rows
                ),
            ));
        }
        Ok(first_row * self.cols)
    }

    /// The specification: flat elements `e0 .. e0 + out.len()` (already checked).
    fn decode(&self, e0: usize, out: &mut [f32]) {
        let p = &self.parts;
        match (self.scheme, self.plan) {
            (
                Scheme::Bnb4 {
                    kind,
                    blocksize,
                    nested_blocksize,
                    dtype,
                },
                _,
            ) => {
                if let Some(b) = bnb::Bnb4::new(kind, blocksize, nested_blocksize, dtype, p) {
                    b.decode(e0, out);
                }
            }
            (Scheme::BnbInt8 { .. }, _) => bnb::decode_int8(p, self.cols, e0, out),
            (Scheme::Hqq { dtype, .. }, Plan::Hqq(g)) => hqq::decode(&g, dtype, p, e0, out),
            (
                Scheme::MlxAffine {
                    bits,
                    group_size,
                    dtype,
                },
                _,
            ) => mlx::decode_affine(bits, group_size, dtype, p, e0, out),
            (
                Scheme::MlxFloat {
                    mode,
                    group_size,
                    dtype,
                },
                _,
            ) => mlx::decode_float(mode, group_size, dtype, p, e0, out),
            (Scheme::Quanto { qtype, dtype, .. }, Plan::Quanto(g)) => {
                quanto::decode(qtype, g, dtype, self.cols, p, e0, out)
            }
            (Scheme::Bitnet { scale, dtype }, _) => bitnet::decode(scale, dtype, self.rows, self.cols, p, e0, out),
            _ => {}
        }
    }

    /// Runs `f` with the table-lookup description of a 4-bit weight (bnb NF4/FP4 with
    /// an even blocksize, MLX affine 4-bit with an even group size): the table, the
    /// group size, the packed bytes and the `(scale, offset)` of each group.
    fn with_lut<R>(&self, f: impl FnOnce(&Lut4, usize, &[u8], &lut4::Params<'_>) -> R) -> Option<R> {
        let p = &self.parts;
        match self.scheme {
            Scheme::Bnb4 {
                kind,
                blocksize,
                nested_blocksize,
                dtype,
            } if blocksize % 2 == 0 => {
                let b = bnb::Bnb4::new(kind, blocksize, nested_blocksize, dtype, p)?;
                Some(f(
                    &b.lut(),
                    blocksize,
                    b.data,
                    &|first, mul: &mut [f32], _: &mut [f32]| {
                        for (g, m) in (first..).zip(mul.iter_mut()) {
                            *m = b.absmax(g);
                        }
                    },
                ))
            }
            Scheme::MlxAffine {
                bits: 4,
                group_size,
                dtype,
            } if group_size % 2 == 0 => {
                let lut = mlx::lut(dtype)?;
                let (data, s, b) = (p.data.as_ref()?, p.scales.as_ref()?, p.offsets.as_ref()?);
                let (s, b) = (common::Floats::new(s), common::Floats::new(b));
                Some(f(
                    &lut,
                    group_size,
                    data.bytes,
                    &|first, mul: &mut [f32], add: &mut [f32]| {
                        s.fill(first, mul);
                        b.fill(first, add);
                    },
                ))
            }
            _ => None,
        }
    }
}

/// `Σ w·x` in f64, rounded to f32.
fn dot_f64(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(&w, &x)| w as f64 * x as f64).sum::<f64>() as f32
}

/// Rows, columns and elements of a logical shape.
fn geometry(shape: &[u64]) -> Result<(usize, usize, usize), QuantError> {
    let Some((&last, lead)) = shape.split_last() else {
        return Err(bad("shape", "no dimensions"));
    };
    if shape.contains(&0) {
        return Err(bad("shape", format!("{shape:?} has no elements")));
    }
    let too_big = || bad("shape", format!("{shape:?} is too large"));
    let cols = usize::try_from(last).map_err(|_| too_big())?;
    let rows = lead
        .iter()
        .try_fold(1usize, |a, &d| usize::try_from(d).ok().and_then(|d| a.checked_mul(d)))
        .ok_or_else(too_big)?;
    let numel = rows.checked_mul(cols).ok_or_else(too_big)?;
    Ok((rows, cols, numel))
}

#[cfg(test)]
mod tests {
    //! The table-lookup paths (f32, f16, and the portable and SIMD kernels behind
    //! them) against the per-element specification, on random bytes: any code, any
    //! scale (NaN, infinities and subnormals included), row ranges cutting groups.
    use super::*;
    use proptest::prelude::*;

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    fn part(bytes: &[u8], dtype: DType, elems: usize) -> Option<Part<'_>> {
        Some(Part {
            bytes,
            dtype,
            shape: vec![elems as u64],
        })
    }

    fn check(t: &PrequantTensor<'_>, first: usize) -> Result<(), TestCaseError> {
        let (rows, cols) = (t.rows(), t.cols());
        let first = first % rows;
        let n = (rows - first) * cols;
        let mut spec = vec![0f32; n];
        t.decode(first * cols, &mut spec);
        let mut fast = vec![0f32; n];
        t.dequantize_rows(first, &mut fast).unwrap();
        let mut h = vec![f16::ZERO; n];
        t.dequantize_rows_f16(first, &mut h).unwrap();
        for i in 0..n {
            prop_assert!(
                same(fast[i], spec[i]),
                "{} f32 at {i}: {} vs {}",
                t.scheme.label(),
                fast[i],
                spec[i]
            );
            let w = f16::from_f32(spec[i]);
            prop_assert!(same(h[i].to_f32(), w.to_f32()), "{} f16 at {i}", t.scheme.label());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn lut_paths_match_the_specification(seed in any::<u64>(), rows in 1usize..6, cols_8 in 1usize..24,
                                             bs_half in 1usize..80, dt in 0usize..3, nested in any::<bool>(),
                                             first in 0usize..6) {
            let dtype = [DType::F16, DType::BF16, DType::F32][dt];
            let cols = 8 * cols_8;
            let n = rows * cols;
            let mut s = seed | 1;
            let mut bytes = |k: usize| -> Vec<u8> {
                (0..k).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 }).collect()
            };
            // bnb: blocks of any even size over the flattened weight.
            let bs = 2 * bs_half;
            let blocks = n.div_ceil(bs);
            let (data, code, absmax) = (bytes(n.div_ceil(2)), bytes(64), bytes(if nested { blocks } else { 4 * blocks }));
            let (nested_absmax, nested_code) = (bytes(4 * blocks.div_ceil(3)), bytes(1024));
            let parts = Parts {
                data: part(&data, DType::U8, data.len()),
                code: part(&code, DType::F32, 16),
                scales: part(&absmax, if nested { DType::U8 } else { DType::F32 }, blocks),
                nested_scales: if nested { part(&nested_absmax, DType::F32, blocks.div_ceil(3)) } else { None },
                nested_code: if nested { part(&nested_code, DType::F32, 256) } else { None },
                nested_offset: 0.25,
                ..Parts::default()
            };
            for kind in [Bnb4Kind::Nf4, Bnb4Kind::Fp4] {
                let scheme = Scheme::Bnb4 { kind, blocksize: bs, nested_blocksize: nested.then_some(3), dtype };
                let t = PrequantTensor::new(scheme, vec![rows as u64, cols as u64], parts.clone()).unwrap();
                check(&t, first)?;
            }
            // MLX affine 4-bit with groups of 8 · k dividing the row.
            let g = (1..=cols_8).rev().map(|k| 8 * k).find(|g| cols % g == 0 && *g <= 64).unwrap_or(8);
            let size = if dtype == DType::F32 { 4 } else { 2 };
            let (w, sc, bi) = (bytes(n / 2), bytes(size * n / g), bytes(size * n / g));
            let parts = Parts {
                data: part(&w, DType::U32, n / 8),
                scales: part(&sc, dtype, n / g),
                offsets: part(&bi, dtype, n / g),
                ..Parts::default()
            };
            let scheme = Scheme::MlxAffine { bits: 4, group_size: g, dtype };
            let t = PrequantTensor::new(scheme, vec![rows as u64, cols as u64], parts).unwrap();
            check(&t, first)?;
        }
    }
}
