//! GGUF: reader and writer. (Being written.)
use std::path::Path;

use crate::error::{Error, Result};
use crate::source::WeightSource;
use crate::storage::FileBytes;
use crate::OpenOptions;

/// A parsed GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {}

/// `(k, n)` when `path` is named like `<name>-0000k-of-0000n.gguf`.
pub fn split_name(_path: &Path) -> Option<(u32, u32)> { None }

pub(crate) fn open_file(_file: FileBytes, _options: &OpenOptions) -> Result<WeightSource> {
    Err(Error::Unsupported { name: String::new(), reason: "todo".into() })
}
pub(crate) fn open_split(_path: &Path, file: FileBytes, options: &OpenOptions) -> Result<WeightSource> {
    open_file(file, options)
}
