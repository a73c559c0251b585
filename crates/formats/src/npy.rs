//! NumPy `.npy` arrays and `.npz` archives. (Being written; see issue 2.)

use crate::error::{Error, Result};
use crate::source::TensorInfo;
use crate::storage::FileBytes;

/// Facts about a NumPy file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NumpyDetails {}

/// Reads the arrays of an NPY or NPZ `file` (file number `file_index`).
pub(crate) fn parse(_file: &FileBytes, _file_index: usize) -> Result<(Vec<TensorInfo>, NumpyDetails)> {
    Err(Error::Unsupported {
        name: String::new(),
        reason: "NumPy reader not written yet".into(),
    })
}
