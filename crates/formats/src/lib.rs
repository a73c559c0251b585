//! # qload-formats
//!
//! Zero-copy readers for LLM weight files. [`open`] maps a file (or a directory, a
//! split GGUF, a sharded checkpoint), detects the format from its first bytes and
//! returns a [`WeightSource`]: metadata plus a validated list of [`TensorInfo`]s
//! whose bytes are slices of the map. Nothing is copied and no tensor data is read
//! by opening or listing.
//!
//! | format | read | write |
//! |---|---|---|
//! | GGUF v2/v3 (upstream and BitNet-fork type ids, split files) | yes | yes ([`gguf::GgufWriter`]) |
//! | safetensors (+ `model.safetensors.index.json` shards) | yes | through the `safetensors` crate |
//! | PyTorch zip and legacy pickles (+ `pytorch_model.bin.index.json`) | yes, restricted unpickler | no |
//! | NPY, NPZ | yes (stored members zero-copy, deflated members inflated) | no |
//!
//! ```no_run
//! let source = qload_formats::open("model.gguf")?;
//! for t in source.tensors() {
//!     println!("{} {} {:?} {} bytes", t.name, t.dtype, t.shape, t.byte_len());
//! }
//! let bytes: &[u8] = source.tensor_bytes(&source.tensors()[0])?;
//! # Ok::<(), qload_formats::Error>(())
//! ```
//!
//! Untrusted input never panics and never makes the reader allocate in proportion
//! to an unvalidated header field; every error names where the problem is.
#![deny(missing_docs)]

pub mod archive;
mod cursor;
pub mod detect;
pub mod dtype;
mod error;
pub mod gguf;
pub mod npy;
pub mod pickle;
pub mod safetensors;
mod source;
mod storage;
pub mod torch;

use std::path::Path;

pub use detect::{Detected, detect};
pub use dtype::{DType, GgmlFlavor, Packing};
pub use error::{Error, Result};
pub use source::{Details, Format, StorageView, TensorInfo, WeightSource, strides_are_contiguous};
pub use storage::{FileBytes, MapMode};

/// Options for [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Map the files (default) or read them into memory.
    pub map_mode: MapMode,
    /// Force the GGUF type numbering for ids 36–39 instead of deciding per file.
    pub ggml_flavor: Option<GgmlFlavor>,
}

/// Opens a weight file, a split GGUF (any of its parts), a sharded checkpoint's
/// `*.index.json`, or a directory holding one of those, with default options.
pub fn open(path: impl AsRef<Path>) -> Result<WeightSource> {
    open_with(path, &OpenOptions::default())
}

/// [`open`] with options.
pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<WeightSource> {
    let path = path.as_ref();
    if path.is_dir() {
        return open_dir(path, options);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".index.json") {
        return safetensors::open_index(path, options);
    }
    let file = FileBytes::open(path, options.map_mode)?;
    let head = &file.bytes()[..file.bytes().len().min(512)];
    if detect(head, file.len()) == Detected::Format(Format::Gguf) && gguf::split_name(path).is_some() {
        return gguf::open_split(path, file, options);
    }
    open_file(file, options)
}

/// Opens an in-memory file (no split or shard handling). Useful for tests and fuzzing.
pub fn open_bytes(name: &str, bytes: Vec<u8>, options: &OpenOptions) -> Result<WeightSource> {
    open_file(FileBytes::from_vec(name, bytes), options)
}

fn open_file(file: FileBytes, options: &OpenOptions) -> Result<WeightSource> {
    if file.is_empty() {
        return Err(Error::Empty);
    }
    let head = &file.bytes()[..file.bytes().len().min(512)];
    match detect(head, file.len()) {
        Detected::Format(Format::Gguf) => gguf::open_file(file, options),
        Detected::Format(Format::Safetensors) => safetensors::open_file(file),
        Detected::Format(Format::PytorchLegacy) => torch_source(file),
        Detected::Format(Format::Npy) => numpy_source(file),
        Detected::Zip => {
            let members = archive::members(file.bytes())?;
            if members.iter().any(|m| m.name.ends_with("data.pkl")) {
                torch_source(file)
            } else if !members.is_empty() && members.iter().all(|m| m.name.ends_with(".npy")) {
                numpy_source(file)
            } else {
                let names: Vec<&str> = members.iter().take(5).map(|m| m.name.as_str()).collect();
                Err(Error::UnknownFormat {
                    looks_like: format!(
                        "a zip archive that is neither a PyTorch checkpoint (no data.pkl) nor an NPZ (members {names:?})"
                    ),
                })
            }
        }
        Detected::Format(other) => Err(Error::UnknownFormat {
            looks_like: format!("a {} file without a reader", other.name()),
        }),
        Detected::Unknown(looks_like) => Err(Error::UnknownFormat { looks_like }),
    }
}

fn torch_source(file: FileBytes) -> Result<WeightSource> {
    let format = zip_or(&file, Format::PytorchZip, Format::PytorchLegacy);
    let (tensors, details) = torch::parse(&file, 0)?;
    WeightSource::assemble(format, vec![file], tensors, Details::Torch(details), Vec::new())
}

fn numpy_source(file: FileBytes) -> Result<WeightSource> {
    let format = zip_or(&file, Format::Npz, Format::Npy);
    let parsed = npy::parse(&file, 0)?;
    let mut files = vec![file];
    files.extend(parsed.extra_files);
    WeightSource::assemble(
        format,
        files,
        parsed.tensors,
        Details::Numpy(parsed.details),
        parsed.notes,
    )
}

/// `zip` when `file` is a zip archive, else `other`.
pub(crate) fn zip_or(file: &FileBytes, zip: Format, other: Format) -> Format {
    if file.bytes().starts_with(b"PK") { zip } else { other }
}

/// Opens the checkpoint in a directory: a shard index, a single safetensors or
/// PyTorch file, or a GGUF, in that order of preference.
fn open_dir(dir: &Path, options: &OpenOptions) -> Result<WeightSource> {
    for index in ["model.safetensors.index.json", "pytorch_model.bin.index.json"] {
        let p = dir.join(index);
        if p.is_file() {
            return safetensors::open_index(&p, options);
        }
    }
    for single in ["model.safetensors", "pytorch_model.bin", "consolidated.safetensors"] {
        let p = dir.join(single);
        if p.is_file() {
            return open_with(&p, options);
        }
    }
    let mut candidates: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "gguf" | "safetensors" | "bin" | "pt" | "pth" | "npz" | "npy"))
        })
        .collect();
    candidates.sort();
    match candidates.as_slice() {
        [one] => open_with(one, options),
        [] => Err(Error::UnknownFormat {
            looks_like: format!("a directory ({}) with no weight files", dir.display()),
        }),
        many => {
            if let Some(first) = many.iter().find(|p| gguf::split_name(p).is_some_and(|(k, _)| k == 1)) {
                return open_with(first, options);
            }
            let names: Vec<String> = many
                .iter()
                .filter_map(|p| p.file_name()?.to_str().map(String::from))
                .collect();
            Err(Error::UnknownFormat {
                looks_like: format!("a directory with several weight files and no index: {names:?}; pass one file"),
            })
        }
    }
}
