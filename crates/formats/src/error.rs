//! The error type of `qload-formats`.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, validating or writing a weight file.
///
/// Each variant says where the problem is (tensor name, byte offset, file length)
/// so that a message can tell the user what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused to open, read, map or write a file.
    // The OS error is part of the message, not a `source()`: callers that print the
    // chain (anyhow's `{:#}`) would otherwise show it twice.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message; not exposed as `source()`).
        cause: std::io::Error,
    },
    /// The file is empty.
    #[error("the file is empty (0 bytes): nothing to load")]
    Empty,
    /// The first bytes match no supported format.
    #[error(
        "not a supported weight file: {looks_like}. Supported: GGUF, safetensors, PyTorch (.pt/.pth/.bin, zip or legacy), NPY, NPZ"
    )]
    UnknownFormat {
        /// What the bytes look like (a Git LFS pointer, an HTML page, ONNX, ...).
        looks_like: String,
    },
    /// A structure runs past the end of the data.
    #[error("truncated file: {what} at byte {offset} needs {needed} bytes but the file has {len}")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs from `offset`.
        needed: u64,
        /// Length of the data.
        len: u64,
    },
    /// A format version that this reader does not handle.
    #[error("{format} version {version} is not supported ({hint})")]
    UnsupportedVersion {
        /// The format.
        format: &'static str,
        /// The version found.
        version: u64,
        /// What is supported.
        hint: &'static str,
    },
    /// A count in a header is larger than any real file has.
    #[error("{what} count {count} exceeds the limit of {max}")]
    TooMany {
        /// What is counted (tensors, metadata keys, array elements, ...).
        what: &'static str,
        /// The count found.
        count: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A string longer than the reader accepts.
    #[error("{what} at byte {offset} claims {len} bytes, more than the limit of {max}")]
    StringTooLong {
        /// Which string.
        what: &'static str,
        /// Where its length field is.
        offset: u64,
        /// The claimed length.
        len: u64,
        /// The largest accepted.
        max: u64,
    },
    /// Bytes that should be UTF-8 are not.
    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: &'static str,
        /// Where it starts.
        offset: u64,
    },
    /// A GGUF metadata value type id outside 0..=12.
    #[error("metadata key {key:?}: unknown value type {type_id} at byte {offset}")]
    InvalidValueType {
        /// The key whose value it is.
        key: String,
        /// The type id found.
        type_id: u32,
        /// Where it is.
        offset: u64,
    },
    /// A GGUF bool that is neither 0 nor 1.
    #[error("metadata key {key:?}: bool value {value} at byte {offset} is neither 0 nor 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// The byte found.
        value: u8,
        /// Where it is.
        offset: u64,
    },
    /// Arrays nested deeper than the reader accepts.
    #[error("metadata key {key:?}: arrays nested deeper than {max} levels")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// The largest depth accepted.
        max: u32,
    },
    /// The same metadata key twice.
    #[error("metadata key {key:?} appears twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A metadata key with a value of the wrong type.
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongValueType {
        /// The key.
        key: String,
        /// The type found.
        found: String,
        /// The type required.
        expected: &'static str,
    },
    /// A ggml type id that no known numbering defines.
    #[error(
        "tensor {name:?}: unknown ggml type id {type_id} (upstream ids are 0-42 without 4, 5, 31-33, 36-38; the BitNet fork uses 36-39)"
    )]
    UnknownGgmlType {
        /// The tensor.
        name: String,
        /// The id found.
        type_id: u32,
    },
    /// More dimensions than the format allows.
    #[error("tensor {name:?} has {n_dims} dimensions; at most {max} are allowed")]
    TooManyDims {
        /// The tensor.
        name: String,
        /// Dimensions found.
        n_dims: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A shape that is invalid for the format or the type.
    #[error("tensor {name:?}: invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The tensor.
        name: String,
        /// The shape found, as stored.
        shape: Vec<u64>,
        /// Why it is invalid.
        reason: String,
    },
    /// The alignment is not a power of two (or zero).
    #[error("general.alignment = {alignment} is not a non-zero power of two")]
    BadAlignment {
        /// The value found.
        alignment: u64,
    },
    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        /// The tensor.
        name: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// Tensor data that lies (partly) outside the file.
    #[error(
        "tensor {name:?}: data at byte {offset} with length {len} runs past the end of the file ({file_len} bytes); the file is truncated or corrupt"
    )]
    TensorOutOfBounds {
        /// The tensor.
        name: String,
        /// Absolute start of its data.
        offset: u64,
        /// Its byte length.
        len: u64,
        /// The file length.
        file_len: u64,
    },
    /// Two tensors whose bytes overlap.
    #[error("tensors {first:?} and {second:?} overlap at byte {offset}")]
    Overlap {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
        /// Where the second starts.
        offset: u64,
    },
    /// Two tensors with one name.
    #[error("tensor name {name:?} appears twice")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A tensor name longer than the format allows.
    #[error("tensor name {name:?} is {len} bytes long; the limit is {max}")]
    NameTooLong {
        /// The name (possibly shortened).
        name: String,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A tensor name that was asked for and is not there.
    #[error("no tensor named {name:?}")]
    TensorNotFound {
        /// The name.
        name: String,
    },
    /// An error reported by the `safetensors` crate.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A sharded checkpoint whose index or shards are inconsistent.
    #[error("sharded checkpoint {index}: {reason}")]
    Shards {
        /// The index file.
        index: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A split GGUF model whose parts are inconsistent or missing.
    #[error("split GGUF {path}: {reason}")]
    Split {
        /// The first part.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A pickle that the restricted unpickler refuses or cannot read.
    #[error("pickle: {reason} (at byte {offset} of the pickle)")]
    Pickle {
        /// Where in the pickle stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A pickle that names a global outside the allowlist; nothing was executed.
    #[error(
        "pickle refers to {module}.{name}, which is not on the allowlist of tensor-rebuilding globals; refusing to load (nothing was executed)"
    )]
    ForbiddenGlobal {
        /// The module.
        module: String,
        /// The attribute.
        name: String,
    },
    /// A zip archive (PyTorch or NPZ) that cannot be read.
    #[error("zip archive: {reason}")]
    Zip {
        /// What is wrong.
        reason: String,
    },
    /// A NumPy `.npy` header or entry that cannot be read.
    #[error("npy {entry}: {reason}")]
    Npy {
        /// The array (file or NPZ member).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor that exists but cannot be served as asked.
    #[error("tensor {name:?}: {reason}")]
    Unsupported {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// A value that a writer cannot encode.
    #[error("cannot write: {reason}")]
    Write {
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn truncated(what: impl Into<String>, offset: u64, needed: u64, len: u64) -> Self {
        Error::Truncated {
            what: what.into(),
            offset,
            needed,
            len,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}
