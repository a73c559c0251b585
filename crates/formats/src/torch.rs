//! PyTorch checkpoints, zip and legacy, read through the restricted unpickler
//! ([`crate::pickle`]).
//!
//! * Zip (`torch.save` default): `<prefix>/data.pkl` is the pickle; its persistent
//!   ids `('storage', StorageType | dtype, key, location, numel)` name the members
//!   `<prefix>/data/<key>`, which must be stored uncompressed so that tensors can
//!   be slices of the file. `<prefix>/byteorder` must say `little` when present.
//! * Legacy (`_use_new_zipfile_serialization=False`): five pickles (magic number,
//!   protocol version 1001, `sys_info`, the object, the storage-key list), then each
//!   storage in key-list order as an i64 element count and its raw bytes.
//!
//! Tensors are strided views of storages; every [`TensorInfo`] carries a
//! [`StorageView`] and the byte span its elements touch. Nested containers are
//! flattened to dotted names; non-tensor leaves are listed in
//! [`TorchDetails::values`].

use std::collections::HashMap;
use std::ops::Range;

use crate::archive::{self, Member};
use crate::cursor::Cursor;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::pickle::{self, StorageRef, Tensor, Value};
use crate::source::{StorageView, TensorInfo, slice_range, view_span};
use crate::storage::FileBytes;

/// The legacy format's magic number, 0x1950a86a20f9469cfc6c, as little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Top-level keys that wrap a whole state dict and are stripped from tensor names
/// when every tensor lives under one of them.
pub const WRAPPER_KEYS: &[&str] = &["state_dict", "model_state_dict", "model", "module"];

/// Longest storage key accepted.
const MAX_KEY_LEN: usize = 256;

/// Facts about a PyTorch checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TorchDetails {
    /// `true` for the legacy (pre-1.6) stream format, `false` for zip archives.
    pub legacy: bool,
    /// The zip archive's top-level folder (`tiny_f32_zip` for `tiny_f32_zip/data.pkl`).
    pub archive_prefix: Option<String>,
    /// The zip's `byteorder` record (`little`); `None` when absent (taken as little).
    pub byteorder: Option<String>,
    /// The zip's `.format_version` record.
    pub format_version: Option<String>,
    /// The zip's `.storage_alignment` record.
    pub storage_alignment: Option<String>,
    /// The legacy stream's protocol version (1001).
    pub legacy_protocol_version: Option<i64>,
    /// Number of distinct storages the tensors use.
    pub storage_count: usize,
    /// The wrapper key stripped from tensor names (`state_dict`, `model`, …), if any.
    pub stripped_wrapper: Option<String>,
    /// Non-tensor leaves as `(dotted name, short rendering)`: ints, floats, strings,
    /// `torch.Size`, dtypes, empty containers, …
    pub values: Vec<(String, String)>,
}

/// Reads the tensors of a PyTorch checkpoint in `file` (which is file number `file_index`).
pub(crate) fn parse(file: &FileBytes, file_index: usize) -> Result<(Vec<TensorInfo>, TorchDetails)> {
    let bytes = file.bytes();
    if bytes.starts_with(b"PK") {
        parse_zip(bytes, file_index)
    } else {
        parse_legacy(bytes, file_index)
    }
}

/// Where a storage's elements are in the file.
#[derive(Debug, Clone)]
struct Placed {
    start: u64,
    /// Elements available from `start`.
    numel: u64,
    dtype: DType,
}

fn zip_err(reason: String) -> Error {
    Error::Zip { reason }
}

fn parse_zip(bytes: &[u8], file_index: usize) -> Result<(Vec<TensorInfo>, TorchDetails)> {
    let members = archive::members(bytes)?;
    let pickles: Vec<&Member> = members
        .iter()
        .filter(|m| m.name == "data.pkl" || m.name.ends_with("/data.pkl"))
        .collect();
    let [pkl] = pickles.as_slice() else {
        return Err(zip_err(format!(
            "a PyTorch archive has exactly one data.pkl; this one has {}",
            pickles.len()
        )));
    };
    let prefix = pkl.name.strip_suffix("data.pkl").unwrap_or("");
    if prefix.matches('/').count() > 1 {
        return Err(zip_err(format!(
            "data.pkl is at {:?}; PyTorch archives keep it in one top-level folder",
            pkl.name
        )));
    }
    let by_name: HashMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let record = |name: &str| -> Result<Option<String>> {
        let Some(m) = by_name.get(format!("{prefix}{name}").as_str()) else {
            return Ok(None);
        };
        if !m.stored || m.size > 64 {
            return Err(zip_err(format!(
                "record {prefix}{name} is compressed or longer than 64 bytes"
            )));
        }
        let data = slice_range(bytes, &m.data).unwrap_or(&[]);
        Ok(Some(String::from_utf8_lossy(data).trim().to_string()))
    };
    let mut details = TorchDetails {
        legacy: false,
        archive_prefix: Some(prefix.trim_end_matches('/').to_string()),
        byteorder: record("byteorder")?,
        format_version: record(".format_version")?,
        storage_alignment: record(".storage_alignment")?,
        ..TorchDetails::default()
    };
    match details.byteorder.as_deref() {
        None | Some("little") => {}
        Some("big") => {
            return Err(zip_err(
                "the checkpoint was saved big-endian (byteorder = \"big\"); only little-endian checkpoints are supported: re-save it on a little-endian machine".into(),
            ));
        }
        Some(other) => return Err(zip_err(format!("unknown byteorder record {other:?}"))),
    }
    if !pkl.stored {
        return Err(zip_err(format!(
            "{} is compressed; torch.save stores it uncompressed",
            pkl.name
        )));
    }
    let pkl_bytes =
        slice_range(bytes, &pkl.data).ok_or_else(|| zip_err(format!("{} lies outside the file", pkl.name)))?;
    let value = pickle::load(pkl_bytes)?;
    let flat = flatten(&value, &mut details)?;

    let mut placed: HashMap<String, Placed> = HashMap::new();
    for s in flat.tensors.iter().map(|(_, t)| &t.storage).chain(&flat.storages) {
        if let Some(p) = placed.get(&s.key) {
            check_same_dtype(&s.key, p.dtype, s.dtype)?;
            continue;
        }
        check_key(&s.key)?;
        let name = format!("{prefix}data/{}", s.key);
        let Some(m) = by_name.get(name.as_str()) else {
            return Err(zip_err(format!(
                "data.pkl refers to storage {:?} but the archive has no member {name:?} (truncated or edited archive?)",
                s.key
            )));
        };
        if !m.stored {
            return Err(zip_err(format!(
                "storage member {name:?} is compressed; tensors must be stored uncompressed to be used in place (re-save with torch.save, or unzip and re-zip with -0)"
            )));
        }
        let needed = storage_nbytes(s)?;
        if m.size < needed {
            return Err(zip_err(format!(
                "storage member {name:?} has {} bytes but its persistent id claims {} elements of {} ({needed} bytes)",
                m.size, s.numel, s.dtype
            )));
        }
        placed.insert(
            s.key.clone(),
            Placed {
                start: m.data.start,
                numel: s.numel,
                dtype: s.dtype,
            },
        );
    }
    details.storage_count = placed.len();
    let tensors = build_infos(&flat.tensors, &placed, file_index)?;
    Ok((tensors, details))
}

fn parse_legacy(bytes: &[u8], file_index: usize) -> Result<(Vec<TensorInfo>, TorchDetails)> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Value> {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let (v, n) = pickle::load_prefix(rest).map_err(|e| match e {
            Error::Pickle { offset, reason } => Error::Pickle {
                offset,
                reason: format!("{reason} [in the legacy {what} pickle at file byte {pos}]"),
            },
            other => other,
        })?;
        pos = pos.saturating_add(n);
        Ok(v)
    };
    let legacy_err = |reason: String| Error::Pickle { offset: 0, reason };
    match next("magic number")? {
        Value::BigInt(b) if b == LEGACY_MAGIC => {}
        other => {
            return Err(legacy_err(format!(
                "not a legacy PyTorch file: the first pickle is {} instead of the magic number 0x1950a86a20f9469cfc6c",
                other.render_short()
            )));
        }
    }
    let version = match next("protocol version")? {
        Value::Int(v) => v,
        other => {
            return Err(legacy_err(format!(
                "legacy protocol version is {} instead of an integer",
                other.render_short()
            )));
        }
    };
    if version != 1001 {
        return Err(Error::UnsupportedVersion {
            format: "PyTorch legacy serialization",
            version: u64::try_from(version).unwrap_or(0),
            hint: "only protocol version 1001 is supported",
        });
    }
    let sys_info = next("sys_info")?;
    if let Value::Dict(items) = &sys_info {
        let little = items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == "little_endian"))
            .map(|(_, v)| v);
        if let Some(v) = little
            && *v != Value::Bool(true)
        {
            return Err(legacy_err(format!(
                "sys_info says little_endian = {}: big-endian checkpoints are not supported; re-save it on a little-endian machine",
                v.render_short()
            )));
        }
    }
    let value = next("state dict")?;
    let keys = match next("storage keys")? {
        Value::List(keys) => keys,
        other => {
            return Err(legacy_err(format!(
                "the storage key list is {} instead of a list",
                other.render_short()
            )));
        }
    };
    let mut details = TorchDetails {
        legacy: true,
        legacy_protocol_version: Some(version),
        ..TorchDetails::default()
    };
    let flat = flatten(&value, &mut details)?;

    // The element type of each root storage, from the persistent ids.
    let mut dtypes: HashMap<&str, (DType, u64)> = HashMap::new();
    for s in flat.tensors.iter().map(|(_, t)| &t.storage).chain(&flat.storages) {
        if let Some(&(d, n)) = dtypes.get(s.key.as_str()) {
            check_same_dtype(&s.key, d, s.dtype)?;
            if n != s.numel {
                return Err(legacy_err(format!(
                    "storage {:?} is described with {n} and with {} elements",
                    s.key, s.numel
                )));
            }
        } else {
            dtypes.insert(&s.key, (s.dtype, s.numel));
        }
    }
    let file_len = bytes.len() as u64;
    let mut placed: HashMap<String, Placed> = HashMap::new();
    let mut at = pos as u64;
    for k in &keys {
        let Value::Str(key) = k else {
            return Err(legacy_err(format!("storage key {} is not a string", k.render_short())));
        };
        let Some(&(dtype, numel)) = dtypes.get(key.as_str()) else {
            return Err(legacy_err(format!(
                "storage {key:?} is listed but no tensor uses it, so its element size is unknown"
            )));
        };
        if placed.contains_key(key) {
            return Err(legacy_err(format!("storage {key:?} is listed twice")));
        }
        let count_at = usize::try_from(at)
            .map_err(|_| Error::truncated(format!("element count of storage {key:?}"), at, 8, file_len))?;
        let count = Cursor::at(bytes, count_at).i64(&format!("element count of storage {key:?}"))?;
        let count = u64::try_from(count)
            .map_err(|_| legacy_err(format!("storage {key:?} has a negative element count {count}")))?;
        if count != numel {
            return Err(legacy_err(format!(
                "storage {key:?} holds {count} elements but its persistent id says {numel}"
            )));
        }
        let esize = element_size(key, dtype)?;
        let start = at + 8;
        let len = count
            .checked_mul(esize)
            .ok_or_else(|| Error::truncated(format!("storage {key:?}"), start, u64::MAX, file_len))?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= file_len)
            .ok_or_else(|| Error::truncated(format!("storage {key:?}"), start, len, file_len))?;
        placed.insert(key.clone(), Placed { start, numel, dtype });
        at = end;
    }
    for s in flat.tensors.iter().map(|(_, t)| &t.storage).chain(&flat.storages) {
        if !placed.contains_key(&s.key) {
            return Err(legacy_err(format!(
                "storage {:?} is used by a tensor but missing from the storage key list",
                s.key
            )));
        }
    }
    details.storage_count = placed.len();
    let tensors = build_infos(&flat.tensors, &placed, file_index)?;
    Ok((tensors, details))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.contains(['/', '\\', '\0']) || key == ".." || key == "." {
        return Err(zip_err(format!("storage key {key:?} is not a plain member name")));
    }
    Ok(())
}

fn check_same_dtype(key: &str, a: DType, b: DType) -> Result<()> {
    if a != b {
        return Err(Error::Pickle {
            offset: 0,
            reason: format!("storage {key:?} is used both as {a} and as {b}; torch never saves that"),
        });
    }
    Ok(())
}

fn element_size(key: &str, dtype: DType) -> Result<u64> {
    dtype.element_size().ok_or_else(|| Error::Unsupported {
        name: key.to_string(),
        reason: format!("storages of {dtype} are not supported"),
    })
}

fn storage_nbytes(s: &StorageRef) -> Result<u64> {
    s.numel
        .checked_mul(element_size(&s.key, s.dtype)?)
        .ok_or_else(|| Error::Pickle {
            offset: 0,
            reason: format!("storage {:?} claims {} elements, which overflows", s.key, s.numel),
        })
}

fn build_infos(
    tensors: &[(String, Tensor)],
    placed: &HashMap<String, Placed>,
    file_index: usize,
) -> Result<Vec<TensorInfo>> {
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let Some(p) = placed.get(&t.storage.key) else {
            return Err(Error::TensorNotFound { name: name.clone() });
        };
        out.push(tensor_info(name, t, p, file_index)?);
    }
    Ok(out)
}

fn tensor_info(name: &str, t: &Tensor, p: &Placed, file_index: usize) -> Result<TensorInfo> {
    let esize = element_size(name, p.dtype)?;
    let invalid = |reason: String| Error::InvalidShape {
        name: name.to_string(),
        shape: t.size.clone(),
        reason,
    };
    // A legacy view storage is a window of its root storage.
    let (base, avail) = match &t.storage.view {
        None => (0, p.numel),
        Some(v) => {
            let end = v.offset.checked_add(v.numel).filter(|&e| e <= p.numel).ok_or_else(|| {
                invalid(format!(
                    "view storage {:?} (elements {}..+{}) lies outside its root storage {:?} of {} elements",
                    v.key, v.offset, v.numel, t.storage.key, p.numel
                ))
            })?;
            (v.offset, end - v.offset)
        }
    };
    let span = view_span(&t.size, &t.stride, t.offset, esize)
        .ok_or_else(|| invalid(format!("offset {} and strides {:?} overflow", t.offset, t.stride)))?;
    let avail_bytes = avail
        .checked_mul(esize)
        .ok_or_else(|| invalid("storage size overflows".into()))?;
    if span.end > avail_bytes {
        return Err(invalid(format!(
            "the view (offset {}, strides {:?}) reaches byte {} of storage {:?}, which holds {} bytes",
            t.offset, t.stride, span.end, t.storage.key, avail_bytes
        )));
    }
    let overflow = || invalid("byte offsets overflow".into());
    let base_bytes = base.checked_mul(esize).ok_or_else(overflow)?;
    let first = p.start.checked_add(base_bytes).ok_or_else(overflow)?;
    let storage_len = p.numel.checked_mul(esize).ok_or_else(overflow)?;
    let storage_bytes: Range<u64> = p.start..p.start.checked_add(storage_len).ok_or_else(overflow)?;
    let bytes =
        first.checked_add(span.start).ok_or_else(overflow)?..first.checked_add(span.end).ok_or_else(overflow)?;
    Ok(TensorInfo {
        name: name.to_string(),
        dtype: p.dtype,
        shape: t.size.clone(),
        file: file_index,
        bytes,
        view: Some(StorageView {
            key: t.storage.key.clone(),
            storage_bytes,
            offset: base.checked_add(t.offset).ok_or_else(overflow)?,
            strides: t.stride.clone(),
        }),
    })
}

/// Tensors and storages found in a pickled object, with dotted names.
#[derive(Debug, Default)]
struct Flat {
    tensors: Vec<(String, Tensor)>,
    /// Storages pickled on their own (not inside a tensor).
    storages: Vec<StorageRef>,
}

fn key_name(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => other.render_short(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(v: &Value, path: &str, flat: &mut Flat, values: &mut Vec<(String, String)>) {
    match v {
        Value::Dict(items) if !items.is_empty() => {
            for (k, x) in items {
                walk(x, &join(path, &key_name(k)), flat, values);
            }
        }
        Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
            for (i, x) in items.iter().enumerate() {
                walk(x, &join(path, &i.to_string()), flat, values);
            }
        }
        Value::Tensor(t) => {
            let name = if path.is_empty() {
                "tensor".to_string()
            } else {
                path.to_string()
            };
            flat.tensors.push((name, t.clone()));
        }
        Value::Storage(s) => {
            flat.storages.push(s.clone());
            values.push((path.to_string(), v.render_short()));
        }
        other => values.push((path.to_string(), other.render_short())),
    }
}

/// Flattens the unpickled object; strips a single wrapper key holding every tensor.
fn flatten(value: &Value, details: &mut TorchDetails) -> Result<Flat> {
    let mut flat = Flat::default();
    let mut values = Vec::new();
    let Value::Dict(items) = value else {
        walk(value, "", &mut flat, &mut values);
        details.values = values;
        return Ok(flat);
    };
    // (key, tensor range, value range) per top-level entry.
    let mut entries = Vec::with_capacity(items.len());
    for (k, x) in items {
        let (t0, v0) = (flat.tensors.len(), values.len());
        walk(x, &key_name(k), &mut flat, &mut values);
        entries.push((k, x, t0..flat.tensors.len(), v0..values.len()));
    }
    let holders: Vec<_> = entries.iter().filter(|e| !e.2.is_empty()).collect();
    if let [(Value::Str(w), Value::Dict(_), tensors, vals)] = holders.as_slice()
        && WRAPPER_KEYS.contains(&w.as_str())
    {
        let cut = w.len() + 1;
        for (name, _) in flat.tensors.get_mut(tensors.clone()).unwrap_or(&mut []) {
            *name = name.split_off(cut);
        }
        for (name, _) in values.get_mut(vals.clone()).unwrap_or(&mut []) {
            *name = name.split_off(cut);
        }
        details.stripped_wrapper = Some(w.clone());
    }
    details.values = values;
    Ok(flat)
}
