//! GGUF (v2 and v3): reader and writer.
//!
//! [`parse_header`] reads the header, metadata and tensor infos of one file from a
//! byte slice; big metadata arrays stay in the file ([`Array`]). Type ids 36–39 are
//! read with the upstream or the BitNet-fork numbering, decided per file
//! ([`decide_flavor`]) and reported in the source's notes. [`GgufWriter`] writes
//! files that gguf-py and llama.cpp read.

mod value;
mod write;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use value::{Array, ArrayIter, MAX_ARRAY_DEPTH, MAX_KEY_LEN, Value, ValueType};
pub use write::{GgufWriter, KvEntry, TensorEntry, write_file_atomic};

use crate::OpenOptions;
use crate::cursor::Cursor;
use crate::dtype::{DType, GgmlFlavor};
use crate::error::{Error, Result};
use crate::source::{Details, Format, TensorInfo, WeightSource};
use crate::storage::FileBytes;

/// The GGUF magic, `GGUF` read as a little-endian u32.
pub const MAGIC: u32 = 0x4655_4747;
/// Default data alignment.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u64 = 4;
/// Longest tensor name ggml accepts (`GGML_MAX_NAME` - 1).
pub const GGML_MAX_NAME: u64 = 63;
/// Longest tensor name this reader accepts at all.
pub const MAX_NAME_LEN: u64 = 1 << 16;
/// Most tensors accepted in one file.
pub const MAX_TENSORS: u64 = 1 << 24;
/// Most metadata entries accepted in one file.
pub const MAX_KV: u64 = 1 << 20;

/// One metadata entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Absolute byte range of the whole entry (key, type, value) in the file.
    pub raw: Range<u64>,
}

/// One tensor info as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions innermost first (`ne0` = row length), as stored.
    pub ne: Vec<u64>,
    /// The ggml type id as stored.
    pub type_id: u32,
    /// Offset relative to the data section.
    pub offset: u64,
}

/// The parsed header of one GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// The file (for split models, the part) this header belongs to.
    pub path: PathBuf,
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Metadata entries in file order.
    pub metadata: Vec<KeyValue>,
    /// Tensor infos in file order.
    pub tensor_infos: Vec<RawTensorInfo>,
    /// `general.alignment` or the default 32.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Which numbering type ids 36–39 were read with.
    pub flavor: GgmlFlavor,
}

impl GgufHeader {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// The absolute end of the tensor-info section (before alignment padding).
    pub fn infos_end(&self) -> u64 {
        self.data_offset
    }

    /// Problems that do not stop reading but that llama.cpp would refuse or that
    /// betray a damaged file: names longer than 63 bytes, tensors not laid out in
    /// order and padded to the alignment (ggml's reader requires it), and a file that
    /// ends before its padded data section does (every writer pads the last tensor,
    /// so a shorter file was cut). `tensors` are this file's tensors, in order.
    pub fn ggml_compat_problems(&self, tensors: &[TensorInfo], file_len: u64) -> Vec<String> {
        let mut out = Vec::new();
        for ti in &self.tensor_infos {
            if ti.name.len() as u64 > GGML_MAX_NAME {
                out.push(format!(
                    "tensor name {:?} is {} bytes; ggml accepts at most {GGML_MAX_NAME}",
                    ti.name,
                    ti.name.len()
                ));
            }
        }
        let mut expected = 0u64;
        for (ti, t) in self.tensor_infos.iter().zip(tensors) {
            if ti.offset != expected {
                out.push(format!(
                    "tensor {:?} is at data offset {} where ggml expects {expected} (tensors must be in order, each padded to {})",
                    ti.name, ti.offset, self.alignment
                ));
                break;
            }
            expected = expected.saturating_add(t.byte_len().div_ceil(self.alignment) * self.alignment);
        }
        let padded_end = tensors
            .iter()
            .map(|t| t.bytes.start + t.byte_len().div_ceil(self.alignment) * self.alignment)
            .max()
            .unwrap_or(self.data_offset);
        if file_len < padded_end {
            out.push(format!(
                "the file ends at byte {file_len}, {} byte(s) before the end of its padded data section: it was probably truncated",
                padded_end - file_len
            ));
        }
        out
    }
}

/// Parses the header, metadata and tensor infos of the GGUF file in `data`.
///
/// Type ids 36–39 are interpreted with `flavor` if given, else decided by
/// [`decide_flavor`]; the second element of the result explains a BitNet decision.
pub fn parse_header(path: &Path, data: &[u8], flavor: Option<GgmlFlavor>) -> Result<(GgufHeader, Option<String>)> {
    let mut c = Cursor::new(data);
    let magic = c.u32("GGUF magic")?;
    if magic != MAGIC {
        return Err(Error::UnknownFormat {
            looks_like: "a file without the GGUF magic".into(),
        });
    }
    let version = c.u32("GGUF version")?;
    if !(2..=3).contains(&version) {
        let hint = if version == 1 {
            "GGUF v1 used 32-bit counts and is obsolete: re-convert the model with a current llama.cpp"
        } else if version.swap_bytes() <= 3 {
            "this looks like a big-endian GGUF; only little-endian files are supported"
        } else {
            "versions 2 and 3 are supported"
        };
        return Err(Error::UnsupportedVersion {
            format: "GGUF",
            version: version.into(),
            hint,
        });
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    // A tensor info takes at least 8 (name len) + 4 + 4 + 8 bytes, an entry 8 + 4 + 1:
    // counts beyond the hard caps are refused as such, counts the remaining bytes
    // cannot hold as truncation, both before anything is allocated.
    let remaining = c.remaining() as u64;
    for (what, count, max, min_size) in [
        ("tensor", tensor_count, MAX_TENSORS, 24u64),
        ("metadata entry", kv_count, MAX_KV, 13),
    ] {
        if count > max {
            return Err(Error::TooMany { what, count, max });
        }
        if count > remaining / min_size {
            return Err(Error::truncated(
                format!("{count} {what}s"),
                c.pos() as u64,
                count * min_size,
                data.len() as u64,
            ));
        }
    }

    let mut metadata: Vec<KeyValue> = Vec::with_capacity(kv_count as usize);
    let mut keys = std::collections::HashSet::with_capacity(kv_count as usize);
    for _ in 0..kv_count {
        let start = c.pos() as u64;
        let key = value::read_string(&mut c, "metadata key", MAX_KEY_LEN)?;
        let at = c.pos() as u64;
        let type_id = c.u32("metadata value type")?;
        let vt = ValueType::from_id(type_id).ok_or_else(|| Error::InvalidValueType {
            key: key.clone(),
            type_id,
            offset: at,
        })?;
        let value = value::read_value(&mut c, vt, &key, 1)?;
        if !keys.insert(key.clone()) {
            return Err(Error::DuplicateKey { key });
        }
        metadata.push(KeyValue {
            key,
            value,
            raw: start..c.pos() as u64,
        });
    }

    let alignment = match metadata.iter().find(|kv| kv.key == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(kv) => match kv.value {
            Value::U32(a) => u64::from(a),
            ref other => {
                return Err(Error::WrongValueType {
                    key: kv.key.clone(),
                    found: other.value_type().name().into(),
                    expected: "u32",
                });
            }
        },
    };
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(Error::BadAlignment { alignment });
    }

    let mut tensor_infos = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = value::read_string(&mut c, "tensor name", MAX_NAME_LEN)?;
        let n_dims = u64::from(c.u32("tensor dimension count")?);
        if n_dims > MAX_DIMS {
            return Err(Error::TooManyDims {
                name,
                n_dims,
                max: MAX_DIMS,
            });
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64("tensor dimension")?);
        }
        let type_id = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        tensor_infos.push(RawTensorInfo {
            name,
            ne,
            type_id,
            offset,
        });
    }
    let data_offset = (c.pos() as u64).div_ceil(alignment) * alignment;

    let mut header = GgufHeader {
        path: path.to_path_buf(),
        version,
        metadata,
        tensor_infos,
        alignment,
        data_offset,
        flavor: GgmlFlavor::Upstream,
    };
    let (flavor, why) = match flavor {
        Some(f) => (f, Some(format!("type numbering forced to {f:?} by the caller"))),
        None => decide_flavor(&header, data.len() as u64),
    };
    header.flavor = flavor;
    Ok((header, why))
}

/// Decides whether type ids 36–39 in a file follow upstream ggml or microsoft/BitNet's
/// fork, from the ids present, `general.file_type`, the architecture and the byte
/// size each reading implies. Returns the choice and, when ids 36–39 occur, why.
pub fn decide_flavor(header: &GgufHeader, file_len: u64) -> (GgmlFlavor, Option<String>) {
    let ids: Vec<u32> = header.tensor_infos.iter().map(|t| t.type_id).collect();
    if !ids.iter().any(|id| (36..=39).contains(id)) {
        return (GgmlFlavor::Upstream, None);
    }
    let fork_only: Vec<u32> = {
        let mut v: Vec<u32> = ids.iter().copied().filter(|id| (36..=38).contains(id)).collect();
        v.dedup();
        v
    };
    let arch = header.architecture().unwrap_or("");
    let file_type = header.get("general.file_type").and_then(Value::as_u64);
    let bitnet_arch = arch.to_ascii_lowercase().contains("bitnet");
    if !fork_only.is_empty() {
        return (
            GgmlFlavor::Bitnet,
            Some(format!(
                "type ids 36-39 read with microsoft/BitNet's numbering (36 I2_S, 37 I8_S, 38 TL1, 39 TL2): the file uses id(s) {fork_only:?}, which upstream ggml removed; architecture {arch:?}, general.file_type {file_type:?}"
            )),
        );
    }
    // Only id 39: MXFP4 upstream, TL2 in the fork. Compare the sizes each reading
    // implies with the room each tensor has before the next one.
    let fits = |flavor: GgmlFlavor| -> bool {
        let mut offsets: Vec<(u64, usize)> = header
            .tensor_infos
            .iter()
            .enumerate()
            .map(|(i, t)| (t.offset, i))
            .collect();
        offsets.sort_unstable();
        offsets.iter().enumerate().all(|(k, &(off, i))| {
            let t = &header.tensor_infos[i];
            if t.type_id != 39 {
                return true;
            }
            let end = offsets
                .get(k + 1)
                .map(|&(o, _)| header.data_offset.saturating_add(o))
                .unwrap_or(file_len);
            let room = end.saturating_sub(header.data_offset.saturating_add(off));
            let shape: Vec<u64> = t.ne.iter().rev().copied().collect();
            match DType::from_ggml_id(39, flavor).and_then(|d| d.nbytes(&shape)) {
                Some(n) => n <= room && room - n < header.alignment.max(32) + 32,
                None => false,
            }
        })
    };
    let (up, fork) = (fits(GgmlFlavor::Upstream), fits(GgmlFlavor::Bitnet));
    let evidence = format!("architecture {arch:?}, general.file_type {file_type:?}");
    let choice = match (up, fork) {
        (true, false) => (GgmlFlavor::Upstream, "only the MXFP4 size fits the tensor data"),
        (false, true) => (GgmlFlavor::Bitnet, "only the TL2 size fits the tensor data"),
        _ if bitnet_arch || file_type == Some(40) => (GgmlFlavor::Bitnet, "the metadata names a BitNet model"),
        _ => (GgmlFlavor::Upstream, "nothing names a BitNet model"),
    };
    let name = if choice.0 == GgmlFlavor::Bitnet {
        "TL2 (BitNet fork)"
    } else {
        "MXFP4 (upstream)"
    };
    (
        choice.0,
        Some(format!("type id 39 read as {name}: {}; {evidence}", choice.1)),
    )
}

/// Turns a header's tensor infos into validated [`TensorInfo`]s for file `file`.
pub fn tensor_infos(header: &GgufHeader, file: usize, file_len: u64) -> Result<Vec<TensorInfo>> {
    let mut out = Vec::with_capacity(header.tensor_infos.len());
    for ti in &header.tensor_infos {
        let dtype = DType::from_ggml_id(ti.type_id, header.flavor).ok_or_else(|| Error::UnknownGgmlType {
            name: ti.name.clone(),
            type_id: ti.type_id,
        })?;
        let shape: Vec<u64> = ti.ne.iter().rev().copied().collect();
        if ti.offset % header.alignment != 0 {
            return Err(Error::Misaligned {
                name: ti.name.clone(),
                offset: ti.offset,
                alignment: header.alignment,
            });
        }
        if shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none_or(|n| n > i64::MAX as u64)
        {
            return Err(Error::InvalidShape {
                name: ti.name.clone(),
                shape: ti.ne.clone(),
                reason: "the element count overflows".into(),
            });
        }
        let len = dtype.nbytes(&shape).ok_or_else(|| Error::InvalidShape {
            name: ti.name.clone(),
            shape: ti.ne.clone(),
            reason: format!(
                "{dtype} needs rows (ne0) that are a multiple of {} elements",
                dtype.block_size()
            ),
        })?;
        let start = header.data_offset.checked_add(ti.offset);
        let end = start.and_then(|s| s.checked_add(len));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(Error::TensorOutOfBounds {
                name: ti.name.clone(),
                offset: ti.offset,
                len,
                file_len,
            });
        };
        if end > file_len {
            return Err(Error::TensorOutOfBounds {
                name: ti.name.clone(),
                offset: start,
                len,
                file_len,
            });
        }
        out.push(TensorInfo {
            name: ti.name.clone(),
            dtype,
            shape,
            file,
            bytes: start..end,
            view: None,
        });
    }
    Ok(out)
}

pub(crate) fn open_file(file: FileBytes, options: &OpenOptions) -> Result<WeightSource> {
    let (header, why) = parse_header(file.path(), file.bytes(), options.ggml_flavor)?;
    let tensors = tensor_infos(&header, 0, file.len())?;
    let notes = why.into_iter().collect();
    WeightSource::assemble(Format::Gguf, vec![file], tensors, Details::Gguf(vec![header]), notes)
}

/// `(k, n)` when the file name is `<name>-0000k-of-0000n.gguf` (gguf-split's naming).
pub fn split_name(path: &Path) -> Option<(u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, n) = stem.rsplit_once("-of-")?;
    let (_, k) = rest.rsplit_once('-')?;
    if k.len() != 5 || n.len() != 5 || !k.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some((k, n))
}

fn split_path(path: &Path, k: u32, n: u32) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, _) = stem.rsplit_once("-of-")?;
    let (prefix, _) = rest.rsplit_once('-')?;
    Some(path.with_file_name(format!("{prefix}-{k:05}-of-{n:05}.gguf")))
}

/// Opens every part of a split model given any part.
pub(crate) fn open_split(path: &Path, given: FileBytes, options: &OpenOptions) -> Result<WeightSource> {
    let Some((k_given, n)) = split_name(path) else {
        return open_file(given, options);
    };
    let split_err = |reason: String| Error::Split {
        path: path.to_path_buf(),
        reason,
    };
    let mut given = Some(given);
    let mut files = Vec::with_capacity(n as usize);
    let mut headers = Vec::with_capacity(n as usize);
    let mut tensors = Vec::new();
    let mut notes = Vec::new();
    for k in 1..=n {
        let p = split_path(path, k, n).ok_or_else(|| split_err("cannot name the parts".into()))?;
        let file = if k == k_given {
            given.take().ok_or_else(|| split_err("part opened twice".into()))?
        } else {
            if !p.is_file() {
                return Err(split_err(format!("part {k} of {n} ({}) is missing", p.display())));
            }
            FileBytes::open(&p, options.map_mode)?
        };
        let (header, why) = parse_header(&p, file.bytes(), options.ggml_flavor)?;
        let count = header.get("split.count").and_then(Value::as_u64);
        let no = header.get("split.no").and_then(Value::as_u64);
        if count.is_some_and(|c| c != u64::from(n)) {
            return Err(split_err(format!(
                "part {} says split.count = {count:?} but the names say {n}",
                p.display()
            )));
        }
        if no.is_some_and(|no| no != u64::from(k - 1)) {
            return Err(split_err(format!(
                "part {} says split.no = {no:?}, expected {}",
                p.display(),
                k - 1
            )));
        }
        if let Some(why) = why {
            notes.push(format!("{}: {why}", p.display()));
        }
        tensors.extend(tensor_infos(&header, files.len(), file.len())?);
        files.push(file);
        headers.push(header);
    }
    let declared = headers
        .first()
        .and_then(|h| h.get("split.tensors.count"))
        .and_then(Value::as_u64);
    if let Some(declared) = declared
        && declared != tensors.len() as u64
    {
        return Err(split_err(format!(
            "split.tensors.count = {declared} but the parts hold {} tensors",
            tensors.len()
        )));
    }
    notes.push(format!("split model: {n} parts opened as one"));
    WeightSource::assemble(Format::Gguf, files, tensors, Details::Gguf(headers), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_name(Path::new("/m/x-00002-of-00003.gguf")), Some((2, 3)));
        assert_eq!(split_name(Path::new("x-2-of-3.gguf")), None);
        assert_eq!(split_name(Path::new("x-00004-of-00003.gguf")), None);
        assert_eq!(split_name(Path::new("x.gguf")), None);
        assert_eq!(
            split_path(Path::new("/m/a-b-00002-of-00003.gguf"), 1, 3),
            Some(PathBuf::from("/m/a-b-00001-of-00003.gguf"))
        );
    }
}
