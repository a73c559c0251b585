//! safetensors (Being written.)
use std::path::Path;

use crate::error::{Error, Result};
use crate::source::WeightSource;
use crate::storage::FileBytes;
use crate::OpenOptions;

/// safetensors facts.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsDetails {}

pub(crate) fn open_file(_file: FileBytes) -> Result<WeightSource> {
    Err(Error::Unsupported { name: String::new(), reason: "todo".into() })
}
pub(crate) fn open_index(_path: &Path, _options: &OpenOptions) -> Result<WeightSource> {
    Err(Error::Unsupported { name: String::new(), reason: "todo".into() })
}
