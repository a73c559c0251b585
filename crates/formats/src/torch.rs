//! PyTorch checkpoints (zip and legacy) through the restricted unpickler.
//! (Being written; see issue 2.)

use crate::error::{Error, Result};
use crate::source::TensorInfo;
use crate::storage::FileBytes;

/// Facts about a PyTorch checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TorchDetails {}

/// Reads the tensors of a PyTorch checkpoint in `file` (which is file number `file_index`).
pub(crate) fn parse(_file: &FileBytes, _file_index: usize) -> Result<(Vec<TensorInfo>, TorchDetails)> {
    Err(Error::Unsupported {
        name: String::new(),
        reason: "PyTorch reader not written yet".into(),
    })
}
