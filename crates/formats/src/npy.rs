//! NumPy `.npy` arrays and `.npz` archives.
//!
//! An `.npy` file is a magic string, a version, a header length, a header that is a
//! Python dict literal (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`)
//! and the raw array bytes. Versions 1.0 (u16 header length), 2.0 and 3.0 (u32
//! header length; 3.0 allows UTF-8 in the header) are read. The header is parsed by
//! a small strict parser for the literals NumPy writes (strings, integers, `True`,
//! `False`, `None`, tuples, lists, dicts); nothing is evaluated.
//!
//! An `.npz` file is a zip archive of `<name>.npy` members; each array is named after
//! its member without the `.npy` suffix. A single `.npy` file's array is named after
//! the file (its name without `.npy`).
//!
//! # Zero-copy and inflated arrays
//!
//! - A plain `.npy` file and the **stored** members of an `.npz` (what `np.savez` and
//!   MLX's `mx.savez` write) are read in place: the tensor's byte range lies in the
//!   opened file (file 0), and nothing is copied.
//! - **Deflated** members (what `np.savez_compressed` writes) cannot be used in place.
//!   They are inflated into memory, each into its own in-memory file appended to the
//!   source's file list after the archive, and their tensors point there. Before
//!   inflating anything, the declared uncompressed sizes of all deflated members are
//!   summed and refused when the total exceeds [`MAX_INFLATE_RATIO`] times the archive
//!   size or [`MAX_INFLATED_BYTES`] (a zip-bomb guard); each member is then read
//!   through a limit of its declared size plus one byte, so a member that inflates to
//!   more (or less) than it declares is refused without growing past the limit.
//!
//! # Element types
//!
//! Little-endian (`<`) and byte-order-free (`|`) integers, floats, bools and
//! `complex64` map to [`DType`]; `<V2` (a 2-byte opaque type) is read as bfloat16,
//! which is how MLX's `mx.savez` and `ml_dtypes.bfloat16` arrays are written.
//! Big-endian arrays (`>`) are refused, not byte-swapped: tensors are served as raw
//! bytes in native (little-endian) order. Object arrays (`|O`, pickled Python
//! objects), structured dtypes, strings, datetimes and other unknown descrs are
//! refused with an error naming the descr.
//!
//! # Fortran order
//!
//! A `fortran_order: True` array is a strided view with column-major strides over
//! its data ([`TensorInfo::view`]), so [`TensorInfo::is_contiguous`] is false (unless
//! the shape makes both orders coincide) and [`WeightSource::materialize`] gathers the
//! elements into row-major order.
//!
//! [`WeightSource::materialize`]: crate::WeightSource::materialize
//! [`TensorInfo::view`]: crate::TensorInfo::view
//! [`TensorInfo::is_contiguous`]: crate::TensorInfo::is_contiguous

use std::io::Read;
use std::ops::Range;

use crate::archive;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{StorageView, TensorInfo};
use crate::storage::FileBytes;

/// The magic bytes every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header accepted, in bytes (NumPy itself refuses headers over 10 000 bytes
/// unless told otherwise).
pub const MAX_HEADER_LEN: u64 = 1 << 20;

/// Most dimensions accepted (NumPy's `NPY_MAXDIMS` is 64).
pub const MAX_DIMS: usize = 64;

/// Deepest nesting of tuples, lists and dicts accepted in a header.
const MAX_DEPTH: usize = 16;

/// The declared uncompressed size of all deflated NPZ members together may be at
/// most this many times the archive's size.
pub const MAX_INFLATE_RATIO: u64 = 8;

/// The declared uncompressed size of all deflated NPZ members together may be at
/// most this many bytes (16 GiB).
pub const MAX_INFLATED_BYTES: u64 = 16 << 30;

/// Facts about a NumPy file: one entry per array, in file order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NumpyDetails {
    /// The arrays.
    pub arrays: Vec<NumpyArray>,
    /// Total bytes inflated into memory for deflated NPZ members.
    pub inflated_bytes: u64,
}

/// How one array is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NumpyArray {
    /// The tensor name (the NPZ member or the file name without `.npy`).
    pub name: String,
    /// The header's `descr`, as written (`<f4`, `|u1`, `<V2`, ...).
    pub descr: String,
    /// Whether the data is in column-major (Fortran) order.
    pub fortran_order: bool,
    /// The format version, `(major, minor)`.
    pub version: (u8, u8),
    /// Whether the array came from a deflated NPZ member and was inflated into memory.
    pub inflated: bool,
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The format version, `(major, minor)`.
    pub version: (u8, u8),
    /// The `descr` string.
    pub descr: String,
    /// The element type `descr` maps to.
    pub dtype: DType,
    /// Whether the data is in column-major order.
    pub fortran_order: bool,
    /// The shape, outermost dimension first.
    pub shape: Vec<u64>,
    /// Offset of the array data from the start of the `.npy` bytes.
    pub data_offset: u64,
    /// Byte length of the data (`numel × itemsize`).
    pub data_len: u64,
}

/// What [`parse`] found: the tensors, the details, and in-memory files holding
/// inflated NPZ members.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The tensors; inflated ones point at `file_index + 1 + k` for `extra_files[k]`.
    pub(crate) tensors: Vec<TensorInfo>,
    /// Per-array facts.
    pub(crate) details: NumpyDetails,
    /// Inflated members, to be placed right after `file` in the source's file list.
    pub(crate) extra_files: Vec<FileBytes>,
    /// Decisions a user should know about.
    pub(crate) notes: Vec<String>,
}

fn npy_err(entry: &str, reason: impl Into<String>) -> Error {
    Error::Npy {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// Reads the arrays of an NPY or NPZ `file` (file number `file_index`).
///
/// Arrays of deflated NPZ members live in [`Parsed::extra_files`], numbered from
/// `file_index + 1`: the caller must put them right after `file`.
pub(crate) fn parse(file: &FileBytes, file_index: usize) -> Result<Parsed> {
    let bytes = file.bytes();
    let mut parsed = Parsed {
        tensors: Vec::new(),
        details: NumpyDetails::default(),
        extra_files: Vec::new(),
        notes: Vec::new(),
    };
    if bytes.starts_with(MAGIC) {
        let file_name = file.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
        let name = match file_name.strip_suffix(".npy").unwrap_or(file_name) {
            "" => "array",
            stem => stem,
        };
        let entry = if file_name.is_empty() { name } else { file_name };
        push_array(&mut parsed, name, entry, bytes, 0, file_index, false)?;
        return Ok(parsed);
    }
    parse_npz(file, file_index, &mut parsed)?;
    Ok(parsed)
}

fn parse_npz(file: &FileBytes, file_index: usize, parsed: &mut Parsed) -> Result<()> {
    let bytes = file.bytes();
    let members = archive::members(bytes)?;
    for m in &members {
        if m.name.strip_suffix(".npy").is_none_or(str::is_empty) {
            return Err(Error::Zip {
                reason: format!(
                    "member {:?} is not a .npy array; an NPZ holds only <name>.npy members",
                    m.name
                ),
            });
        }
    }
    // Zip-bomb guard: the total declared size of what will be inflated, before any inflating.
    let declared = members
        .iter()
        .filter(|m| !m.stored)
        .try_fold(0u64, |acc, m| acc.checked_add(m.size));
    let limit = inflate_limit(file.len());
    let deflated = members.iter().filter(|m| !m.stored).count();
    match declared {
        Some(total) if total <= limit => {}
        _ => {
            let largest = members.iter().filter(|m| !m.stored).max_by_key(|m| m.size);
            return Err(Error::Zip {
                reason: format!(
                    "the {deflated} compressed member(s) declare {} uncompressed bytes (largest {:?}: {} bytes), more than the limit of {limit} ({MAX_INFLATE_RATIO}x the {}-byte archive, at most {MAX_INFLATED_BYTES}); refusing to inflate a possible zip bomb (re-save with np.savez to store the arrays uncompressed)",
                    declared.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
                    largest.map_or("", |m| m.name.as_str()),
                    largest.map_or(0, |m| m.size),
                    file.len(),
                ),
            });
        }
    }
    let mut zip = if deflated > 0 {
        Some(zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Zip { reason: e.to_string() })?)
    } else {
        None
    };
    for m in &members {
        let name = m.name.strip_suffix(".npy").unwrap_or(&m.name);
        if m.stored {
            let data = usize::try_from(m.data.start)
                .ok()
                .zip(usize::try_from(m.data.end).ok())
                .and_then(|(s, e)| bytes.get(s..e))
                .ok_or_else(|| Error::Zip {
                    reason: format!("member {:?} data {:?} lies outside the file", m.name, m.data),
                })?;
            push_array(parsed, name, &m.name, data, m.data.start, file_index, false)?;
            continue;
        }
        let Some(zip) = zip.as_mut() else {
            return Err(Error::Zip {
                reason: format!("member {:?}: archive not opened for inflating", m.name),
            });
        };
        let inflated = inflate(zip, m)?;
        let index = file_index
            .checked_add(1)
            .and_then(|i| i.checked_add(parsed.extra_files.len()))
            .ok_or_else(|| npy_err(&m.name, "too many files"))?;
        push_array(parsed, name, &m.name, &inflated, 0, index, true)?;
        parsed.details.inflated_bytes = parsed.details.inflated_bytes.saturating_add(m.size);
        parsed
            .extra_files
            .push(FileBytes::from_vec(file.path().join(&m.name), inflated));
    }
    if deflated > 0 {
        parsed.notes.push(format!(
            "{deflated} compressed NPZ member(s) were inflated into memory ({} bytes); stored members are read in place",
            parsed.details.inflated_bytes
        ));
    }
    Ok(())
}

/// The most bytes the deflated members of an archive of `file_len` bytes may declare.
pub fn inflate_limit(file_len: u64) -> u64 {
    file_len.saturating_mul(MAX_INFLATE_RATIO).min(MAX_INFLATED_BYTES)
}

/// Inflates one member, refusing it unless it yields exactly its declared size.
fn inflate(zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, m: &archive::Member) -> Result<Vec<u8>> {
    let zip_err = |what: String| Error::Zip {
        reason: format!("member {:?}: {what}", m.name),
    };
    let reader = zip.by_name(&m.name).map_err(|e| zip_err(e.to_string()))?;
    // Deflate expands at most ~1032:1, so a declared size beyond that is a lie; never
    // reserve more than the compressed data could produce.
    let compressed = m.data.end.saturating_sub(m.data.start);
    let reserve = m.size.min(compressed.saturating_mul(1032).saturating_add(64));
    let mut out = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    reader
        .take(m.size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| zip_err(format!("cannot inflate: {e}")))?;
    if out.len() as u64 != m.size {
        return Err(zip_err(format!(
            "inflates to {}{} bytes but the archive declares {}",
            out.len(),
            if out.len() as u64 > m.size { "+" } else { "" },
            m.size
        )));
    }
    Ok(out)
}

/// Parses one `.npy` (a whole file, or an NPZ member's bytes `npy`, which start at
/// absolute offset `base` in file `file_index`) and records its tensor.
fn push_array(
    parsed: &mut Parsed,
    name: &str,
    entry: &str,
    npy: &[u8],
    base: u64,
    file_index: usize,
    inflated: bool,
) -> Result<()> {
    let header = read_header(npy, entry)?;
    let end = header
        .data_offset
        .checked_add(header.data_len)
        .ok_or_else(|| npy_err(entry, "data range overflows"))?;
    let have = npy.len() as u64;
    if end > have {
        return Err(npy_err(
            entry,
            format!(
                "truncated: {} with shape {:?} needs {} data bytes from byte {} but only {} follow",
                header.descr,
                header.shape,
                header.data_len,
                header.data_offset,
                have.saturating_sub(header.data_offset)
            ),
        ));
    }
    if end < have {
        return Err(npy_err(
            entry,
            format!(
                "{} unexpected bytes after the {} data bytes of a {} array with shape {:?}",
                have - end,
                header.data_len,
                header.descr,
                header.shape
            ),
        ));
    }
    let abs = |x: u64| base.checked_add(x).ok_or_else(|| npy_err(entry, "offset overflows"));
    let bytes: Range<u64> = abs(header.data_offset)?..abs(end)?;
    let view = if header.fortran_order {
        Some(StorageView {
            key: entry.to_string(),
            storage_bytes: bytes.clone(),
            offset: 0,
            strides: fortran_strides(&header.shape).ok_or_else(|| npy_err(entry, "strides overflow"))?,
        })
    } else {
        None
    };
    if header.descr.ends_with("V2") && !parsed.notes.iter().any(|n| n.contains("'<V2'")) {
        parsed
            .notes
            .push("descr '<V2' (2-byte opaque) read as bfloat16, as MLX and ml_dtypes write it".to_string());
    }
    parsed.tensors.push(TensorInfo {
        name: name.to_string(),
        dtype: header.dtype,
        shape: header.shape,
        file: file_index,
        bytes,
        view,
    });
    parsed.details.arrays.push(NumpyArray {
        name: name.to_string(),
        descr: header.descr,
        fortran_order: header.fortran_order,
        version: header.version,
        inflated,
    });
    Ok(())
}

/// Column-major strides in elements for `shape`, or `None` on overflow.
fn fortran_strides(shape: &[u64]) -> Option<Vec<u64>> {
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1u64;
    for &d in shape {
        strides.push(stride);
        // Dimensions of size 0 make any stride valid; keep 1 so products stay small.
        stride = stride.checked_mul(d.max(1))?;
    }
    Some(strides)
}

/// Parses the header of the `.npy` bytes `npy` (named `entry` in errors) and checks
/// its element count; does not look at the data.
pub fn read_header(npy: &[u8], entry: &str) -> Result<NpyHeader> {
    let Some(magic) = npy.get(..6) else {
        return Err(npy_err(
            entry,
            format!("truncated: {} bytes, too short for the NPY magic", npy.len()),
        ));
    };
    if magic != MAGIC {
        return Err(npy_err(
            entry,
            "does not start with the NPY magic \\x93NUMPY; not a .npy array",
        ));
    }
    let (Some(&major), Some(&minor)) = (npy.get(6), npy.get(7)) else {
        return Err(npy_err(entry, "truncated before the format version"));
    };
    let len_size: usize = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(npy_err(
                entry,
                format!("format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"),
            ));
        }
    };
    let Some(len_bytes) = npy.get(8..8 + len_size) else {
        return Err(npy_err(entry, "truncated in the header length"));
    };
    let header_len = len_bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if header_len > MAX_HEADER_LEN {
        return Err(npy_err(
            entry,
            format!("header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"),
        ));
    }
    let start = 8 + len_size;
    // header_len <= 1 MiB, so this cannot overflow.
    let data_offset = start + header_len as usize;
    let Some(raw) = npy.get(start..data_offset) else {
        return Err(npy_err(
            entry,
            format!(
                "truncated: the header claims {header_len} bytes but only {} follow",
                npy.len().saturating_sub(start)
            ),
        ));
    };
    let text: String = if major >= 3 {
        std::str::from_utf8(raw)
            .map_err(|e| npy_err(entry, format!("version 3.0 header is not UTF-8: {e}")))?
            .to_string()
    } else {
        // Versions 1 and 2 are latin-1.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let dict = parse_literal(&text).map_err(|reason| npy_err(entry, format!("header {}: {reason}", excerpt(&text))))?;
    let (descr_value, fortran_value, shape_value) = header_fields(dict).map_err(|r| npy_err(entry, r))?;
    let descr = match descr_value {
        Value::Str(s) => s,
        Value::List(_) => {
            return Err(npy_err(
                entry,
                "structured dtype (a record array with named fields) is not supported; save each field as its own array",
            ));
        }
        other => {
            return Err(npy_err(
                entry,
                format!("'descr' is {}, expected a string", other.kind()),
            ));
        }
    };
    let dtype = descr_dtype(&descr).map_err(|r| npy_err(entry, r))?;
    let fortran_order = match fortran_value {
        Value::Bool(b) => b,
        other => {
            return Err(npy_err(
                entry,
                format!("'fortran_order' is {}, expected True or False", other.kind()),
            ));
        }
    };
    let Value::Tuple(dims) = shape_value else {
        return Err(npy_err(
            entry,
            format!("'shape' is {}, expected a tuple", shape_value.kind()),
        ));
    };
    if dims.len() > MAX_DIMS {
        return Err(npy_err(
            entry,
            format!("shape has {} dimensions; at most {MAX_DIMS} are allowed", dims.len()),
        ));
    }
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        match d {
            Value::Int(n) => shape.push(n),
            Value::NegInt => return Err(npy_err(entry, "shape has a negative dimension")),
            other => {
                return Err(npy_err(
                    entry,
                    format!("shape has {} where a dimension was expected", other.kind()),
                ));
            }
        }
    }
    let data_len = dtype.nbytes(&shape).ok_or_else(|| {
        npy_err(
            entry,
            format!("shape {shape:?} of {descr} overflows a 64-bit byte count"),
        )
    })?;
    Ok(NpyHeader {
        version: (major, minor),
        descr,
        dtype,
        fortran_order,
        shape,
        data_offset: data_offset as u64,
        data_len,
    })
}

/// A short quoted start of a header, for error messages.
fn excerpt(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// Splits the header dict into its three required values.
fn header_fields(dict: Value) -> std::result::Result<(Value, Value, Value), String> {
    let Value::Dict(entries) = dict else {
        return Err(format!("the header is {}, expected a dict", dict.kind()));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in entries {
        let Value::Str(key) = key else {
            return Err(format!("header key is {}, expected a string", key.kind()));
        };
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            other => {
                return Err(format!(
                    "unexpected header key {other:?} (only 'descr', 'fortran_order' and 'shape' are allowed)"
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("header key {key:?} appears twice"));
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        (d, f, _) => {
            let missing = if d.is_none() {
                "descr"
            } else if f.is_none() {
                "fortran_order"
            } else {
                "shape"
            };
            Err(format!("header lacks the {missing:?} key"))
        }
    }
}

/// Maps a `descr` to a [`DType`], or says why it is refused.
pub fn descr_dtype(descr: &str) -> std::result::Result<DType, String> {
    let mut chars = descr.chars();
    let order = chars.next();
    let body = chars.as_str();
    let Some(order @ ('<' | '>' | '|' | '=')) = order else {
        return Err(format!("unknown descr {descr:?} (no byte-order prefix)"));
    };
    if body == "O" {
        return Err(format!(
            "descr '{descr}' is an object array (pickled Python objects); refusing to unpickle it, nothing was executed"
        ));
    }
    let kind_dtype = match body {
        "f2" => Some(DType::F16),
        "f4" => Some(DType::F32),
        "f8" => Some(DType::F64),
        "i1" => Some(DType::I8),
        "i2" => Some(DType::I16),
        "i4" => Some(DType::I32),
        "i8" => Some(DType::I64),
        "u1" => Some(DType::U8),
        "u2" => Some(DType::U16),
        "u4" => Some(DType::U32),
        "u8" => Some(DType::U64),
        "b1" => Some(DType::Bool),
        "c8" => Some(DType::C64),
        "V2" => Some(DType::BF16),
        _ => None,
    };
    let Some(dtype) = kind_dtype else {
        let what = match body.chars().next() {
            Some('U') => "a unicode string type",
            Some('S' | 'a') => "a byte string type",
            Some('M' | 'm') => "a datetime type",
            Some('V') => "an opaque (void) type other than bfloat16's '<V2'",
            Some('f' | 'i' | 'u' | 'c' | 'b') => "a numeric type without a qload equivalent",
            _ => "an unknown descr",
        };
        return Err(format!("descr '{descr}' is {what}; it is not supported"));
    };
    let single = dtype.element_size() == Some(1);
    match order {
        '>' if !single => Err(format!(
            "descr '{descr}' is big-endian, which is not supported (only little-endian data is served); re-save it little-endian with arr.astype(arr.dtype.newbyteorder('<'))"
        )),
        '=' if !single => Err(format!(
            "descr '{descr}' uses native byte order, which the file does not record; re-save it with an explicit '<'"
        )),
        '|' if !single => Err(format!("descr '{descr}' has no byte order but a multi-byte type")),
        _ => Ok(dtype),
    }
}

/// A Python literal as NumPy writes in headers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(u64),
    /// A negative integer (never valid where NumPy headers have integers).
    NegInt,
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) | Value::NegInt => "an integer",
            Value::Bool(_) => "a bool",
            Value::None => "None",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
        }
    }
}

/// Parses `text` as one literal followed only by whitespace.
fn parse_literal(text: &str) -> std::result::Result<Value, String> {
    let mut p = LiteralParser {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.pos));
    }
    Ok(v)
}

struct LiteralParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LiteralParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            None => Err("unexpected end of header".into()),
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'(') => {
                self.pos += 1;
                let (items, trailing_comma) = self.sequence(b')', depth)?;
                // `(x)` is a parenthesized value, `(x,)` a one-element tuple.
                if items.len() == 1 && !trailing_comma {
                    return Ok(items.into_iter().next().unwrap_or(Value::None));
                }
                Ok(Value::Tuple(items))
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Value::List(self.sequence(b']', depth)?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict(depth)
            }
            Some(b'-' | b'+' | b'0'..=b'9') => self.int(),
            Some(b) if b.is_ascii_alphabetic() => {
                let rest = self.s.get(at..).unwrap_or_default();
                let word_len = rest
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric() && *c != b'_')
                    .unwrap_or(rest.len());
                let word = rest.get(..word_len).unwrap_or_default();
                let word_end = at + word_len;
                self.pos = word_end;
                match word {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::None),
                    _ => Err(format!(
                        "unexpected name {:?} at byte {at} (only literals are allowed)",
                        String::from_utf8_lossy(word)
                    )),
                }
            }
            Some(b) => Err(format!("unexpected character {:?} at byte {at}", char::from(b))),
        }
    }

    /// Items up to `close`, separated by commas, with an optional trailing comma.
    fn sequence(&mut self, close: u8, depth: usize) -> std::result::Result<(Vec<Value>, bool), String> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                let trailing_comma = !items.is_empty();
                return Ok((items, trailing_comma));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok((items, false));
                }
                Some(c) => {
                    return Err(format!(
                        "expected ',' or {:?} at byte {}, found {:?}",
                        char::from(close),
                        self.pos,
                        char::from(c)
                    ));
                }
                None => return Err("unexpected end of header".into()),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Value, String> {
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Dict(entries));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(format!("expected ':' after a dict key at byte {}", self.pos));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Dict(entries));
                }
                Some(c) => {
                    return Err(format!(
                        "expected ',' or '}}' at byte {}, found {:?}",
                        self.pos,
                        char::from(c)
                    ));
                }
                None => return Err("unexpected end of header".into()),
            }
        }
    }

    fn string(&mut self, quote: u8) -> std::result::Result<Value, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(format!("unterminated string starting at byte {start}"));
            };
            self.pos += 1;
            match b {
                _ if b == quote => break,
                b'\n' => {
                    return Err(format!("newline inside the string starting at byte {start}"));
                }
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(format!("unterminated string starting at byte {start}"));
                    };
                    self.pos += 1;
                    match e {
                        b'\\' | b'\'' | b'"' => out.push(e),
                        _ => {
                            return Err(format!(
                                "unsupported escape '\\{}' in the string starting at byte {start}",
                                char::from(e)
                            ));
                        }
                    }
                }
                _ => out.push(b),
            }
        }
        // The header text is valid UTF-8 and escapes are ASCII, so this cannot fail.
        String::from_utf8(out)
            .map(Value::Str)
            .map_err(|_| format!("string at byte {start} is not valid text"))
    }

    fn int(&mut self) -> std::result::Result<Value, String> {
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        let digits = self.s.get(digits_start..self.pos).unwrap_or_default();
        if digits.is_empty() {
            return Err(format!("expected digits at byte {digits_start}"));
        }
        // Python 2 era headers write longs as `3L`.
        if let Some(b'L' | b'l') = self.peek() {
            self.pos += 1;
        }
        if let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
        {
            return Err(format!("unexpected {:?} in the integer at byte {start}", char::from(c)));
        }
        let n = digits
            .iter()
            .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        match (negative, n) {
            (_, None) => Err(format!("integer at byte {start} does not fit in 64 bits")),
            (true, Some(0)) => Ok(Value::Int(0)),
            (true, Some(_)) => Ok(Value::NegInt),
            (false, Some(n)) => Ok(Value::Int(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1.0 `.npy` with `header` (padded like NumPy does) and `data`.
    pub(crate) fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    }

    fn header_err(header: &str) -> String {
        match read_header(&npy(header, &[]), "t.npy") {
            Err(Error::Npy { entry, reason }) => {
                assert_eq!(entry, "t.npy");
                reason
            }
            other => panic!("expected an Npy error for {header:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_numpy_headers() {
        let h = read_header(
            &npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &[0; 24]),
            "x",
        )
        .unwrap();
        assert_eq!(
            (h.dtype, h.shape.clone(), h.fortran_order, h.version),
            (DType::F32, vec![2, 3], false, (1, 0))
        );
        assert_eq!(h.data_offset, 128);
        assert_eq!(h.data_len, 24);
        // Any key order, double quotes, trailing commas, Python 2 longs, 1-tuples, 0-d.
        let h = read_header(
            &npy("{\"shape\": (5L,), \"fortran_order\": True, \"descr\": \"|u1\",}", &[]),
            "x",
        )
        .unwrap();
        assert_eq!((h.dtype, h.shape, h.fortran_order), (DType::U8, vec![5], true));
        let h = read_header(&npy("{'descr':'<i8','fortran_order':False,'shape':()}", &[]), "x").unwrap();
        assert_eq!(h.shape, Vec::<u64>::new());
        // MLX writes `(256, 2, )`.
        let h = read_header(
            &npy("{'descr': '<V2', 'fortran_order': False, 'shape': (256, 2, )}", &[]),
            "x",
        )
        .unwrap();
        assert_eq!((h.dtype, h.shape), (DType::BF16, vec![256, 2]));
    }

    #[test]
    fn literal_parser() {
        assert_eq!(parse_literal(" (1) \n"), Ok(Value::Int(1)));
        assert_eq!(parse_literal("(1,)"), Ok(Value::Tuple(vec![Value::Int(1)])));
        assert_eq!(
            parse_literal("[None, -0, 'a\\'b']").unwrap(),
            Value::List(vec![Value::None, Value::Int(0), Value::Str("a'b".into())])
        );
        assert_eq!(parse_literal("-3"), Ok(Value::NegInt));
        for bad in [
            "",
            "{",
            "{'a' 1}",
            "{'a': 1 'b'}",
            "(1 2)",
            "'abc",
            "'a\\n'",
            "1.5",
            "1e3",
            "0x10",
            "abs",
            "@",
            "99999999999999999999",
            "{} x",
            "'a\nb'",
            "-",
            "[1,",
            "{'a':",
        ] {
            assert!(parse_literal(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "(".repeat(40) + &")".repeat(40);
        assert!(parse_literal(&deep).unwrap_err().contains("nested"));
    }

    #[test]
    fn header_field_errors() {
        assert!(header_err("['descr']").contains("expected a dict"));
        assert!(header_err("{1: 2}").contains("header key is an integer"));
        assert!(header_err("{'descr': '<f4', 'fortran_order': False}").contains("\"shape\""));
        assert!(header_err("{'fortran_order': False, 'shape': ()}").contains("\"descr\""));
        assert!(header_err("{'descr': '<f4', 'shape': ()}").contains("\"fortran_order\""));
        assert!(header_err("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}").contains("twice"));
        assert!(
            header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}")
                .contains("unexpected header key")
        );
        assert!(header_err("{'descr': 4, 'fortran_order': False, 'shape': ()}").contains("'descr' is an integer"));
        assert!(header_err("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}").contains("structured"));
        assert!(
            header_err("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}").contains("'fortran_order' is an integer")
        );
        assert!(header_err("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}").contains("'shape' is a list"));
        assert!(header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}").contains("negative"));
        assert!(header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (None,)}").contains("None"));
        let many = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}) }}",
            "1,".repeat(65)
        );
        assert!(header_err(&many).contains("dimensions"));
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 2)}";
        assert!(header_err(huge).contains("overflows"));
        assert!(header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ").contains("header"));
        assert!(header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk").contains("after the dict"));
    }

    #[test]
    fn descrs() {
        for (d, t) in [
            ("<f2", DType::F16),
            ("<f4", DType::F32),
            ("<f8", DType::F64),
            ("|i1", DType::I8),
            ("<i1", DType::I8),
            ("|u1", DType::U8),
            ("<i2", DType::I16),
            ("<u2", DType::U16),
            ("<i4", DType::I32),
            ("<u4", DType::U32),
            ("<i8", DType::I64),
            ("<u8", DType::U64),
            ("|b1", DType::Bool),
            ("<c8", DType::C64),
            ("<V2", DType::BF16),
        ] {
            assert_eq!(descr_dtype(d), Ok(t), "{d}");
        }
        assert!(descr_dtype(">f4").unwrap_err().contains("big-endian"));
        assert!(descr_dtype("=f4").unwrap_err().contains("native"));
        assert!(descr_dtype("|f4").unwrap_err().contains("no byte order"));
        assert!(descr_dtype("|O").unwrap_err().contains("object"));
        assert!(descr_dtype("<U3").unwrap_err().contains("unicode"));
        assert!(descr_dtype("|S3").unwrap_err().contains("byte string"));
        assert!(descr_dtype("<M8[ns]").unwrap_err().contains("datetime"));
        assert!(descr_dtype("|V1").unwrap_err().contains("opaque"));
        assert!(descr_dtype("<c16").unwrap_err().contains("'<c16'"));
        assert!(descr_dtype("<x9").unwrap_err().contains("unknown descr"));
        assert!(descr_dtype("f4").unwrap_err().contains("byte-order"));
        assert!(descr_dtype("").is_err());
    }

    #[test]
    fn preamble_errors() {
        let good = npy("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", &[0; 4]);
        let err = |bytes: &[u8]| match read_header(bytes, "e") {
            Err(Error::Npy { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(err(&good[..3]).contains("magic"));
        assert!(err(b"\x93NUMPX\x01\x00").contains("magic"));
        assert!(err(&good[..7]).contains("version"));
        assert!(err(&good[..9]).contains("header length"));
        assert!(err(&good[..20]).contains("the header claims"));
        let mut v4 = good.clone();
        v4[6] = 4;
        assert!(err(&v4).contains("version 4.0"));
        let mut v11 = good.clone();
        v11[7] = 1;
        assert!(err(&v11).contains("version 1.1"));
        let mut big = MAGIC.to_vec();
        big.extend_from_slice(&[2, 0]);
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(err(&big).contains("exceeds the limit"));
        let mut v3 = MAGIC.to_vec();
        v3.extend_from_slice(&[3, 0, 2, 0, 0, 0, 0xff, b'\n']);
        assert!(err(&v3).contains("UTF-8"));
    }

    #[test]
    fn strides() {
        assert_eq!(fortran_strides(&[3, 4]), Some(vec![1, 3]));
        assert_eq!(fortran_strides(&[2, 3, 5]), Some(vec![1, 2, 6]));
        assert_eq!(fortran_strides(&[0, 3]), Some(vec![1, 1]));
        assert_eq!(fortran_strides(&[u64::MAX, u64::MAX, 2]), None);
    }

    fn zip_of(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes, deflate) in members {
            let method = if *deflate {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn parse_err(bytes: Vec<u8>) -> String {
        match parse(&FileBytes::from_vec("t.npz", bytes), 0) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("parsed: {:?}", p.tensors),
        }
    }

    #[test]
    fn npz_members() {
        let a = npy(
            "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 2), }",
            &[1, 0, 2, 0, 3, 0, 4, 0],
        );
        // Member names, file indices and absolute ranges.
        let p = parse(
            &FileBytes::from_vec("t.npz", zip_of(&[("a.npy", &a, true), ("d/b.npy", &a, false)])),
            3,
        )
        .unwrap();
        assert_eq!(p.tensors.len(), 2);
        assert_eq!(
            (
                p.tensors[0].name.as_str(),
                p.tensors[0].file,
                p.tensors[0].bytes.clone()
            ),
            ("a", 4, 128..136)
        );
        assert_eq!((p.tensors[1].name.as_str(), p.tensors[1].file), ("d/b", 3));
        assert_eq!(p.tensors[0].view.as_ref().map(|v| v.strides.clone()), Some(vec![1, 2]));
        assert_eq!(p.extra_files.len(), 1);
        assert_eq!(p.extra_files[0].bytes(), a.as_slice());
        assert_eq!(p.details.inflated_bytes, a.len() as u64);
        assert_eq!(
            p.details
                .arrays
                .iter()
                .map(|a| (a.inflated, a.fortran_order, a.version))
                .collect::<Vec<_>>(),
            [(true, true, (1, 0)), (false, true, (1, 0))]
        );
        // An empty archive has no arrays.
        assert!(
            parse(&FileBytes::from_vec("e.npz", zip_of(&[])), 0)
                .unwrap()
                .tensors
                .is_empty()
        );
        // Members that are not `<name>.npy`.
        assert!(parse_err(zip_of(&[("a.npy", &a, false), ("b.txt", b"x", false)])).contains("\"b.txt\" is not a .npy"));
        assert!(parse_err(zip_of(&[(".npy", &a, false)])).contains("not a .npy"));
        // Not a zip at all.
        assert!(parse_err(b"PK\x03\x04 garbage".to_vec()).contains("zip archive"));
    }

    /// Sets the uncompressed size of every central-directory entry to `size`.
    fn patch_declared_size(zip: &mut [u8], size: u32) {
        let mut i = 0;
        while let Some(at) = zip.get(i..).and_then(|s| s.windows(4).position(|w| w == b"PK\x01\x02")) {
            let cd = i + at;
            zip[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
            i = cd + 4;
        }
    }

    #[test]
    fn inflate_checks_declared_sizes() {
        let a = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (100,), }", &[7; 100]);
        let zip = zip_of(&[("a.npy", &a, true)]);
        // Over the ratio cap: refused before inflating.
        let mut bomb = zip.clone();
        let limit = inflate_limit(bomb.len() as u64);
        patch_declared_size(&mut bomb, limit as u32 + 1);
        assert!(parse_err(bomb).contains("zip bomb"));
        // Within the cap but more than the member holds.
        let mut long = zip.clone();
        patch_declared_size(&mut long, a.len() as u32 + 10);
        let msg = parse_err(long);
        assert!(
            msg.contains("\"a.npy\"") && msg.contains(&format!("{}", a.len() + 10)),
            "{msg}"
        );
        // Less than the member holds.
        let mut short = zip;
        patch_declared_size(&mut short, a.len() as u32 - 10);
        let msg = parse_err(short);
        assert!(msg.contains("\"a.npy\"") && msg.contains("declare"), "{msg}");
    }

    #[test]
    fn limits() {
        assert_eq!(inflate_limit(100), 800);
        assert_eq!(inflate_limit(u64::MAX), MAX_INFLATED_BYTES);
        assert_eq!(inflate_limit(4 << 30), MAX_INFLATED_BYTES);
    }
}
