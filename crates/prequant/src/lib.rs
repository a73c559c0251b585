//! # qload-prequant
//!
//! Finds the pre-quantized weights in a checkpoint that a Python library wrote —
//! bitsandbytes (NF4, FP4, LLM.int8), HQQ, MLX (affine, mxfp4, mxfp8, nvfp4),
//! optimum-quanto (qint2/4/8, qfloat8) and transformers' packed BitNet b1.58 — and turns each group of stored keys into one
//! logical weight: its original name (`model.layers.0.mlp.down_proj.weight`), its
//! [`Scheme`], its logical shape and the stored tensors that hold its parts. The
//! numbers (decoding, matvec) live in `qload_quant_core::prequant`.
//!
//! Evidence comes from the tensor keys and from the configuration files that travel
//! with checkpoints ([`SavedConfig`]: `quantization_config` in `config.json` or
//! `quantization_config.json`, MLX's `quantization` entry, `quanto_qmap.json`), plus
//! what the user asked for ([`Requested`]). Per-tensor metadata written by the library
//! (bitsandbytes' quant state, HQQ's encoded scalars) is authoritative; then the saved
//! configuration; then the request. When a saved setting disagrees with the request,
//! the saved one wins and a warning says so. A setting that cannot be determined is
//! an error naming the weight, never a guess.
//!
//! ```no_run
//! let path = std::path::Path::new("mlx-model/");
//! let source = qload_formats::open(path)?;
//! let found = qload_prequant::detect_at(path, &source, &qload_prequant::Requested::default())?;
//! for w in &found.weights {
//!     println!("{}  {}  {:?}", w.name, w.scheme.label(), w.shape);
//! }
//! # Ok::<(), qload_prequant::Error>(())
//! ```
#![deny(missing_docs)]

mod bitnet;
mod bnb;
mod config;
mod hqq;
mod meta;
mod mlx;
mod quanto;

use std::path::{Path, PathBuf};

use qload_formats::{DType, TensorInfo, WeightSource};
pub use qload_quant_core::prequant::{BitnetScale, Bnb4Kind, MlxFloatMode, PrequantTensor, QuantoType, Scheme};
use qload_quant_core::prequant::{Part, Parts};

pub use config::SavedConfig;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What detection can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file that exists but cannot be used.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A quantization method qload knows of but does not decode.
    #[error(
        "the checkpoint is quantized with {method:?}, which qload does not decode (it reads bitsandbytes, hqq, mlx, quanto and bitnet checkpoints)"
    )]
    UnsupportedMethod {
        /// `quant_method` from the config.
        method: String,
    },
    /// A pre-quantized weight whose keys or settings are inconsistent or ambiguous.
    #[error("{name}: {reason}")]
    Weight {
        /// The weight (or key) concerned.
        name: String,
        /// What is wrong, and how to fix it where the user can.
        reason: String,
    },
    /// The parts do not fit the scheme (sizes, dtypes).
    #[error("{name}: {source}")]
    Codec {
        /// The weight.
        name: String,
        /// What the decoder said.
        source: qload_quant_core::QuantError,
    },
    /// An operation qload cannot do on a scheme on a device.
    #[error(
        "{scheme}: {op} on {device} is not supported (no {device} kernels for pre-quantized weights yet; decode or transcode on the cpu)"
    )]
    Unsupported {
        /// The scheme's label.
        scheme: String,
        /// The device.
        device: String,
        /// The operation.
        op: &'static str,
    },
    /// Reading the checkpoint failed.
    #[error(transparent)]
    Formats(#[from] qload_formats::Error),
}

/// The Python library that wrote a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Library {
    /// bitsandbytes (through transformers or directly).
    Bitsandbytes,
    /// HQQ.
    Hqq,
    /// MLX / mlx-lm.
    Mlx,
    /// optimum-quanto.
    Quanto,
    /// transformers' BitNet b1.58 (`BitLinear` / `AutoBitLinear` packed weights).
    Bitnet,
}

impl Library {
    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Library::Bitsandbytes => "bitsandbytes",
            Library::Hqq => "hqq",
            Library::Mlx => "mlx",
            Library::Quanto => "quanto",
            Library::Bitnet => "bitnet",
        }
    }

    /// Parses a library name.
    pub fn parse(s: &str) -> Option<Library> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bitsandbytes" | "bnb" => Some(Library::Bitsandbytes),
            "hqq" => Some(Library::Hqq),
            "mlx" | "mlx-lm" | "mlx_lm" => Some(Library::Mlx),
            "quanto" | "optimum-quanto" => Some(Library::Quanto),
            "bitnet" => Some(Library::Bitnet),
            _ => None,
        }
    }
}

/// What the user asked for, used where the checkpoint saves no setting of its own
/// (e.g. an MLX file without its `config.json`). Saved settings win over it, with a
/// warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// The library.
    pub library: Option<Library>,
    /// Bits per code (MLX affine, quanto qint).
    pub bits: Option<u8>,
    /// Group size.
    pub group_size: Option<usize>,
    /// MLX mode (`affine`, `mxfp4`, `mxfp8`, `nvfp4`), quanto weight type (`qint4`, …) or
    /// BitNet linear class (`bitlinear`, `autobitlinear`).
    pub mode: Option<String>,
}

impl Requested {
    /// Parses `mlx,bits=4,group=64`, `quanto,mode=qint4`, `bits=3,group=64`, ….
    pub fn parse(spec: &str) -> Result<Requested, String> {
        let mut r = Requested::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                None => {
                    r.library =
                        Some(Library::parse(item).ok_or_else(|| {
                            format!("unknown library {item:?} (bitsandbytes, hqq, mlx, quanto, bitnet)")
                        })?)
                }
                Some(("bits", v)) => r.bits = Some(v.parse().map_err(|_| format!("bits={v:?} is not a number"))?),
                Some(("group" | "group_size", v)) => {
                    r.group_size = Some(v.parse().map_err(|_| format!("group={v:?} is not a number"))?)
                }
                Some(("mode" | "type", v)) => r.mode = Some(v.to_ascii_lowercase()),
                Some((k, _)) => return Err(format!("unknown setting {k:?} (bits, group, mode)")),
            }
        }
        Ok(r)
    }
}

/// Where a part of a weight is stored: a tensor of the source, optionally re-typed
/// (HQQ's `view_as_float` stores u8 codes as f16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    /// Index into `source.tensors()`.
    pub tensor: usize,
    /// The dtype and shape to read the bytes as, when not the stored ones.
    pub retype: Option<(DType, Vec<u64>)>,
}

/// One logical pre-quantized weight.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeight {
    /// Its original name (`….down_proj.weight`).
    pub name: String,
    /// Which library wrote it.
    pub library: Library,
    /// How it is encoded.
    pub scheme: Scheme,
    /// Its logical row-major shape.
    pub shape: Vec<u64>,
    /// Packed codes.
    pub data: PartRef,
    /// Scales.
    pub scales: Option<PartRef>,
    /// Zeros / biases / shifts.
    pub offsets: Option<PartRef>,
    /// Code book (bitsandbytes `quant_map`).
    pub code: Option<PartRef>,
    /// Double quantization: nested scales.
    pub nested_scales: Option<PartRef>,
    /// Double quantization: nested code book.
    pub nested_code: Option<PartRef>,
    /// Double quantization: offset.
    pub nested_offset: f32,
    /// Every stored key this weight consumes (parts and metadata), data first.
    pub keys: Vec<String>,
}

impl QuantizedWeight {
    /// A weight with its codes only; the detectors add scales, offsets and code books.
    pub(crate) fn new(
        name: String,
        library: Library,
        scheme: Scheme,
        shape: Vec<u64>,
        data: PartRef,
        keys: Vec<String>,
    ) -> QuantizedWeight {
        QuantizedWeight {
            name,
            library,
            scheme,
            shape,
            data,
            scales: None,
            offsets: None,
            code: None,
            nested_scales: None,
            nested_code: None,
            nested_offset: 0.0,
            keys,
        }
    }

    /// Number of logical elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// The decoder over the source's bytes (validates every part's size).
    pub fn tensor<'s>(&self, source: &'s WeightSource) -> Result<PrequantTensor<'s>> {
        let part = |r: &PartRef| -> Result<Part<'s>> {
            let info = &source.tensors()[r.tensor];
            if !info.is_contiguous() {
                return Err(Error::Weight {
                    name: info.name.clone(),
                    reason: "is a strided view; pre-quantized parts must be contiguous".into(),
                });
            }
            let bytes = source.tensor_bytes(info)?;
            let (dtype, shape) = r.retype.clone().unwrap_or((info.dtype, info.shape.clone()));
            Ok(Part { bytes, dtype, shape })
        };
        let opt = |r: &Option<PartRef>| r.as_ref().map(part).transpose();
        let parts = Parts {
            data: Some(part(&self.data)?),
            scales: opt(&self.scales)?,
            offsets: opt(&self.offsets)?,
            code: opt(&self.code)?,
            nested_scales: opt(&self.nested_scales)?,
            nested_code: opt(&self.nested_code)?,
            nested_offset: self.nested_offset,
        };
        PrequantTensor::new(self.scheme, self.shape.clone(), parts).map_err(|source| Error::Codec {
            name: self.name.clone(),
            source,
        })
    }

    /// Bytes stored for this weight, all keys together.
    pub fn stored_bytes(&self, source: &WeightSource) -> u64 {
        self.keys
            .iter()
            .filter_map(|k| source.tensor(k))
            .map(TensorInfo::byte_len)
            .sum()
    }
}

/// What detection found in a source.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// The pre-quantized weights, in the order of their data tensors in the source.
    pub weights: Vec<QuantizedWeight>,
    /// Per source tensor: the index of the weight that consumes it, if any.
    pub owner: Vec<Option<usize>>,
    /// Things the user should know (disagreements between config and request, guesses
    /// confirmed by shapes).
    pub warnings: Vec<String>,
    /// The configuration files read.
    pub config: SavedConfig,
}

impl Detection {
    /// Whether nothing pre-quantized was found.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The weight that consumes source tensor `index`.
    pub fn owner_of(&self, index: usize) -> Option<&QuantizedWeight> {
        self.owner.get(index).copied().flatten().map(|w| &self.weights[w])
    }

    /// Whether source tensor `index` is the data part (first key) of its weight: the
    /// place where the logical weight stands in file order.
    pub fn is_data_part(&self, source: &WeightSource, index: usize) -> bool {
        self.owner_of(index)
            .is_some_and(|w| w.data.tensor == index && source.tensors()[index].name == w.keys[0])
    }
}

/// [`detect`] with the configuration files found beside `path`.
pub fn detect_at(path: &Path, source: &WeightSource, requested: &Requested) -> Result<Detection> {
    let config = SavedConfig::discover(path)?;
    detect(source, config, requested)
}

/// Finds the pre-quantized weights of `source`.
pub fn detect(source: &WeightSource, config: SavedConfig, requested: &Requested) -> Result<Detection> {
    if let Some(method) = config.unsupported_method() {
        return Err(Error::UnsupportedMethod { method });
    }
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let cx = Cx {
        src: source,
        cfg: &config,
        req: requested,
    };
    if let (Some(saved), Some(asked)) = (config.library(), requested.library)
        && saved != asked
    {
        warnings.push(format!(
            "the checkpoint's configuration says {}, you asked for {}: using {}",
            saved.name(),
            asked.name(),
            saved.name()
        ));
    }
    bnb::detect(&cx, &mut found, &mut warnings)?;
    hqq::detect(&cx, &mut found, &mut warnings)?;
    mlx::detect(&cx, &mut found, &mut warnings)?;
    quanto::detect(&cx, &mut found, &mut warnings)?;
    bitnet::detect(&cx, &mut found, &mut warnings)?;
    found.sort_by_key(|w| w.data.tensor);
    let mut owner = vec![None; source.tensors().len()];
    for (i, w) in found.iter().enumerate() {
        for k in &w.keys {
            let Some(t) = index_of(source, k) else { continue };
            if let Some(prev) = owner[t] {
                let prev: &QuantizedWeight = &found[prev];
                return Err(Error::Weight {
                    name: k.clone(),
                    reason: format!("is claimed by two weights, {} and {}", prev.name, w.name),
                });
            }
            owner[t] = Some(i);
        }
    }
    Ok(Detection {
        weights: found,
        owner,
        warnings,
        config,
    })
}

/// What every detector reads.
pub(crate) struct Cx<'a> {
    pub src: &'a WeightSource,
    pub cfg: &'a SavedConfig,
    pub req: &'a Requested,
}

impl Cx<'_> {
    /// Index of tensor `name` in the source.
    pub fn index(&self, name: &str) -> Option<usize> {
        index_of(self.src, name)
    }

    /// A part reference for `name`, which must exist.
    pub fn part(&self, name: &str, weight: &str) -> Result<PartRef> {
        self.index(name)
            .map(|tensor| PartRef { tensor, retype: None })
            .ok_or_else(|| Error::Weight {
                name: weight.to_string(),
                reason: format!("its part {name:?} is missing"),
            })
    }

    /// A part reference for `name`, if it exists.
    pub fn opt_part(&self, name: &str) -> Option<PartRef> {
        self.index(name).map(|tensor| PartRef { tensor, retype: None })
    }

    /// The stored keys among `names` that exist.
    pub fn existing(&self, names: impl IntoIterator<Item = String>) -> Vec<String> {
        names.into_iter().filter(|n| self.src.tensor(n).is_some()).collect()
    }
}

fn index_of(source: &WeightSource, name: &str) -> Option<usize> {
    source.index_of(name)
}

pub(crate) fn weight_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Weight {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// The (out, in) shape a llama-like `config.json` implies for a linear weight, from
/// its name: attention projections, MLP projections, embedding and head.
pub(crate) fn model_shape(cfg: &SavedConfig, name: &str) -> Option<[u64; 2]> {
    let h = cfg.model_usize("hidden_size")?;
    let heads = cfg.model_usize("num_attention_heads");
    let kv = cfg.model_usize("num_key_value_heads").or(heads);
    let head_dim = cfg
        .model_usize("head_dim")
        .or_else(|| heads.filter(|&n| n > 0).map(|n| h / n));
    let q = heads.zip(head_dim).map(|(n, d)| n * d);
    let k = kv.zip(head_dim).map(|(n, d)| n * d);
    let inter = cfg.model_usize("intermediate_size");
    let vocab = cfg.model_usize("vocab_size");
    let module = name.strip_suffix(".weight").unwrap_or(name);
    let last = module.rsplit('.').next().unwrap_or(module);
    match last {
        "q_proj" => Some([q?, h]),
        "k_proj" | "v_proj" => Some([k?, h]),
        "o_proj" => Some([h, q?]),
        "gate_proj" | "up_proj" => Some([inter?, h]),
        "down_proj" => Some([h, inter?]),
        "lm_head" | "embed_tokens" => Some([vocab?, h]),
        _ => None,
    }
}

/// An operation on a pre-quantized weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Dequantize to f32/f16/bf16.
    Decode,
    /// Matrix-vector product on the stored codes.
    NativeMatvec,
    /// Convert to a ggml type (through f32).
    Transcode,
}

impl Op {
    /// Its name in tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Decode => "decode",
            Op::NativeMatvec => "native matvec",
            Op::Transcode => "transcode",
        }
    }
}

/// Whether qload can do `op` on a weight of `scheme` on `device` (`cpu`, `cuda:N`).
/// Every scheme decodes, multiplies natively and transcodes on the CPU; nothing runs
/// on CUDA yet (a CUDA load decodes or transcodes on the CPU first, and says so).
pub fn supported(scheme: &Scheme, device: &str, op: Op) -> Result<()> {
    if device == "cpu" {
        return Ok(());
    }
    Err(Error::Unsupported {
        scheme: scheme.label(),
        device: device.to_string(),
        op: op.name(),
    })
}
