//! The common view every reader produces: a [`WeightSource`] holding the opened
//! files, the format's own details and a validated list of [`TensorInfo`]s whose
//! bytes are slices of those files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::FileBytes;

/// The container format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Format {
    /// GGUF (llama.cpp / ggml), possibly split into several files.
    Gguf,
    /// safetensors, possibly sharded with a `model.safetensors.index.json`.
    Safetensors,
    /// `torch.save` zip archive (the default since PyTorch 1.6).
    PytorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` legacy pickle stream.
    PytorchLegacy,
    /// A single NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive of arrays (what MLX's `mx.savez` writes).
    Npz,
}

impl Format {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors => "safetensors",
            Format::PytorchZip => "PyTorch zip",
            Format::PytorchLegacy => "PyTorch legacy pickle",
            Format::Npy => "NPY",
            Format::Npz => "NPZ",
        }
    }
}

/// Where a pickled tensor's elements live inside a shared storage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StorageView {
    /// The storage's key in the archive (`data/<key>` in a zip, the key in a legacy file).
    pub key: String,
    /// Absolute byte range of the whole storage in its file.
    pub storage_bytes: Range<u64>,
    /// Offset of the tensor's first element in the storage, in elements.
    pub offset: u64,
    /// Strides in elements, one per dimension.
    pub strides: Vec<u64>,
}

/// One tensor as stored: name, type, shape and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name as stored in the file.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape in row-major order, outermost dimension first (PyTorch and NumPy order).
    /// GGUF stores dimensions innermost first (`ne0` = row length); see [`TensorInfo::ggml_ne`].
    pub shape: Vec<u64>,
    /// Index of the file holding the bytes, in [`WeightSource::files`].
    pub file: usize,
    /// Absolute byte range in that file: the tensor's bytes for contiguous tensors,
    /// the span its elements touch for strided views.
    pub bytes: Range<u64>,
    /// Storage, offset and strides for tensors read from pickles.
    pub view: Option<StorageView>,
}

impl TensorInfo {
    /// Number of elements (the product of the shape; 1 for a 0-dim tensor).
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Byte length of the tensor's range in its file.
    pub fn byte_len(&self) -> u64 {
        self.bytes.end - self.bytes.start
    }

    /// Dimensions innermost first, as GGUF and ggml list them (`ne0, ne1, …`).
    pub fn ggml_ne(&self) -> Vec<u64> {
        self.shape.iter().rev().copied().collect()
    }

    /// Whether the elements are stored densely in row-major order.
    pub fn is_contiguous(&self) -> bool {
        match &self.view {
            None => true,
            Some(v) => strides_are_contiguous(&self.shape, &v.strides),
        }
    }
}

/// Whether `strides` (in elements) describe a dense row-major layout of `shape`.
/// Dimensions of size 1 may have any stride, as in PyTorch.
pub fn strides_are_contiguous(shape: &[u64], strides: &[u64]) -> bool {
    if shape.len() != strides.len() {
        return false;
    }
    let mut expected = 1u64;
    for (&dim, &stride) in shape.iter().zip(strides).rev() {
        if dim != 1 && stride != expected {
            return false;
        }
        expected = expected.saturating_mul(dim);
    }
    true
}

/// The format-specific part of a source.
#[derive(Debug)]
#[non_exhaustive]
pub enum Details {
    /// GGUF headers, one per split file.
    Gguf(Vec<crate::gguf::GgufHeader>),
    /// safetensors headers and the shard index, if any.
    Safetensors(crate::safetensors::SafetensorsDetails),
    /// PyTorch archive facts.
    Torch(crate::torch::TorchDetails),
    /// NumPy facts.
    Numpy(crate::npy::NumpyDetails),
}

/// An opened weight checkpoint: one or more files, their tensors and metadata.
///
/// Tensor bytes are borrowed from the files (memory maps by default); nothing is
/// copied by opening or listing.
#[derive(Debug)]
pub struct WeightSource {
    format: Format,
    files: Vec<FileBytes>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    details: Details,
    notes: Vec<String>,
    aliases: Vec<(String, String)>,
    index: Option<crate::safetensors::ShardIndex>,
}

impl WeightSource {
    /// Validates tensors against the files and assembles a source.
    ///
    /// Checks: every byte range inside its file, no duplicate names, no two
    /// non-view tensors (or two distinct pickle storages) overlapping, views inside
    /// their storage.
    pub(crate) fn assemble(
        format: Format,
        files: Vec<FileBytes>,
        tensors: Vec<TensorInfo>,
        details: Details,
        notes: Vec<String>,
    ) -> Result<WeightSource> {
        validate_ranges(&files, &tensors)?;
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(Error::DuplicateTensor { name: t.name.clone() });
            }
        }
        Ok(WeightSource {
            format,
            files,
            tensors,
            by_name,
            details,
            notes,
            aliases: Vec::new(),
            index: None,
        })
    }

    pub(crate) fn set_index(&mut self, index: crate::safetensors::ShardIndex, aliases: Vec<(String, String)>) {
        self.index = Some(index);
        self.aliases = aliases;
    }

    /// The shard index of a sharded checkpoint.
    pub fn shard_index(&self) -> Option<&crate::safetensors::ShardIndex> {
        self.index.as_ref()
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The opened files (one unless the model is split or sharded).
    pub fn files(&self) -> &[FileBytes] {
        &self.files
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The position of tensor `name` in [`WeightSource::tensors`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Format-specific details (GGUF metadata, safetensors headers, ...).
    pub fn details(&self) -> &Details {
        &self.details
    }

    /// Decisions the reader took that a user should know about (e.g. which GGUF
    /// type numbering a file uses and why).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Names a checkpoint declares as aliases of stored tensors but does not store
    /// (tied weights dropped at save time), as `(alias, stored_name)`.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::numel).sum()
    }

    /// The raw bytes of a tensor's range: its data for contiguous tensors, the span
    /// its elements touch for strided views (see [`WeightSource::materialize`]).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let file = self.files.get(info.file).ok_or_else(|| Error::TensorNotFound {
            name: info.name.clone(),
        })?;
        slice_range(file.bytes(), &info.bytes).ok_or_else(|| Error::TensorOutOfBounds {
            name: info.name.clone(),
            offset: info.bytes.start,
            len: info.byte_len(),
            file_len: file.len(),
        })
    }

    /// The tensor's elements densely packed in row-major order: borrowed from the
    /// file when already contiguous, gathered into a new buffer otherwise.
    pub fn materialize(&self, info: &TensorInfo) -> Result<Cow<'_, [u8]>> {
        let Some(view) = &info.view else {
            return self.tensor_bytes(info).map(Cow::Borrowed);
        };
        if info.is_contiguous() {
            return self.tensor_bytes(info).map(Cow::Borrowed);
        }
        let esize = info.dtype.element_size().ok_or_else(|| Error::Unsupported {
            name: info.name.clone(),
            reason: format!("strided views of {} are not supported", info.dtype),
        })? as usize;
        let file = &self.files[info.file];
        let storage = slice_range(file.bytes(), &view.storage_bytes).ok_or_else(|| Error::TensorOutOfBounds {
            name: info.name.clone(),
            offset: view.storage_bytes.start,
            len: view.storage_bytes.end - view.storage_bytes.start,
            file_len: file.len(),
        })?;
        let numel = info.numel() as usize;
        // Bounded at open: a view's logical size never exceeds its file's length.
        let mut out = Vec::with_capacity(numel * esize);
        let rank = info.shape.len();
        let mut index = vec![0u64; rank];
        for _ in 0..numel {
            let elem: u64 = view.offset + index.iter().zip(&view.strides).map(|(i, s)| i * s).sum::<u64>();
            let start = elem as usize * esize;
            let bytes = storage
                .get(start..start + esize)
                .ok_or_else(|| Error::TensorOutOfBounds {
                    name: info.name.clone(),
                    offset: view.storage_bytes.start + start as u64,
                    len: esize as u64,
                    file_len: file.len(),
                })?;
            out.extend_from_slice(bytes);
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < info.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(Cow::Owned(out))
    }
}

pub(crate) fn slice_range<'a>(bytes: &'a [u8], range: &Range<u64>) -> Option<&'a [u8]> {
    let start = usize::try_from(range.start).ok()?;
    let end = usize::try_from(range.end).ok()?;
    bytes.get(start..end)
}

/// Byte span touched by a strided view, relative to the storage start, or `None` on overflow.
pub(crate) fn view_span(shape: &[u64], strides: &[u64], offset: u64, esize: u64) -> Option<Range<u64>> {
    let start = offset.checked_mul(esize)?;
    if shape.contains(&0) {
        return Some(start..start);
    }
    let mut last = offset;
    for (&d, &s) in shape.iter().zip(strides) {
        last = last.checked_add((d - 1).checked_mul(s)?)?;
    }
    let end = last.checked_add(1)?.checked_mul(esize)?;
    Some(start..end)
}

fn validate_ranges(files: &[FileBytes], tensors: &[TensorInfo]) -> Result<()> {
    // (file, start, end, label) of regions that must not overlap.
    let mut regions: Vec<(usize, u64, u64, &str)> = Vec::with_capacity(tensors.len());
    let mut seen_storages: HashMap<(usize, u64, u64), ()> = HashMap::new();
    for t in tensors {
        let file = files
            .get(t.file)
            .ok_or_else(|| Error::TensorNotFound { name: t.name.clone() })?;
        let file_len = file.len();
        let oob = |offset: u64, len: u64| Error::TensorOutOfBounds {
            name: t.name.clone(),
            offset,
            len,
            file_len,
        };
        if t.bytes.start > t.bytes.end || t.bytes.end > file_len {
            return Err(oob(t.bytes.start, t.bytes.end.saturating_sub(t.bytes.start)));
        }
        match &t.view {
            None => {
                if t.bytes.start < t.bytes.end {
                    regions.push((t.file, t.bytes.start, t.bytes.end, &t.name));
                }
            }
            Some(v) => {
                let r = &v.storage_bytes;
                if r.start > r.end || r.end > file_len {
                    return Err(oob(r.start, r.end.saturating_sub(r.start)));
                }
                if t.bytes.start < r.start || t.bytes.end > r.end {
                    return Err(Error::Unsupported {
                        name: t.name.clone(),
                        reason: format!(
                            "view (offset {}, strides {:?}) reaches outside its storage {:?} of {} bytes",
                            v.offset,
                            v.strides,
                            v.key,
                            r.end - r.start
                        ),
                    });
                }
                let logical = t.dtype.nbytes(&t.shape).ok_or_else(|| Error::InvalidShape {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    reason: "element count overflows".into(),
                })?;
                if logical > file_len.max(t.byte_len()) {
                    return Err(Error::Unsupported {
                        name: t.name.clone(),
                        reason: format!(
                            "view's logical size {logical} bytes exceeds the file ({file_len} bytes); expanded (stride-0) views are refused"
                        ),
                    });
                }
                if r.start < r.end && seen_storages.insert((t.file, r.start, r.end), ()).is_none() {
                    regions.push((t.file, r.start, r.end, &v.key));
                }
            }
        }
    }
    regions.sort_unstable_by_key(|&(f, s, e, _)| (f, s, e));
    for pair in regions.windows(2) {
        let (fa, _, ea, na) = pair[0];
        let (fb, sb, _, nb) = pair[1];
        if fa == fb && sb < ea {
            return Err(Error::Overlap {
                first: na.to_string(),
                second: nb.to_string(),
                offset: sb,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(strides_are_contiguous(&[2, 3], &[3, 1]));
        assert!(!strides_are_contiguous(&[3, 3], &[1, 3]));
        assert!(strides_are_contiguous(&[1, 3], &[99, 1]));
        assert!(strides_are_contiguous(&[], &[]));
    }

    #[test]
    fn spans() {
        assert_eq!(view_span(&[64, 64], &[1, 64], 0, 4), Some(0..64 * 64 * 4));
        assert_eq!(view_span(&[2, 2], &[2, 1], 4, 2), Some(8..16));
        assert_eq!(view_span(&[0, 5], &[5, 1], 3, 4), Some(12..12));
        assert_eq!(view_span(&[u64::MAX, 2], &[u64::MAX, 1], 0, 4), None);
    }
}
