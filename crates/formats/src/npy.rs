//! NumPy `.npy` arrays and `.npz` archives (what `np.save`, `np.savez` and MLX's
//! `mx.savez` write).
//!
//! - NPY versions 1.0, 2.0 and 3.0; the header's Python dict literal is parsed by a
//!   small strict parser (nothing is evaluated).
//! - Little-endian and byte-order-free numeric descrs (`<f2 <f4 <f8 |i1 <i2 <i4 <i8 |u1
//!   <u2 <u4 <u8 |b1 <c8`). Big-endian, object, structured and `V` (void, e.g.
//!   ml_dtypes' bfloat16, whose type numpy does not record) arrays are refused with a
//!   message naming the descr.
//! - Fortran-order arrays become strided views (`is_contiguous()` is false;
//!   `WeightSource::materialize` gathers them in C order).
//! - NPZ members stored uncompressed (`np.savez`, `mx.savez`) are read in place, zero
//!   copy. Deflated members (`np.savez_compressed`) are inflated into memory, after a
//!   zip-bomb check of their declared sizes, and become extra in-memory files of the
//!   source.

use crate::StorageView;
use crate::archive;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::TensorInfo;
use crate::storage::FileBytes;

/// Longest NPY header accepted (numpy itself refuses headers over 10 KB by default).
pub const MAX_HEADER_LEN: u64 = 1 << 20;
/// Most bytes inflated from one NPZ in total.
pub const MAX_INFLATED_TOTAL: u64 = 16 << 30;
/// Largest ratio of declared to compressed size accepted for a deflated member.
pub const MAX_INFLATE_RATIO: u64 = 1024;

/// One array's facts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArrayInfo {
    /// Array name (the NPZ member name without `.npy`, or the file name).
    pub name: String,
    /// The numpy descr as stored.
    pub descr: String,
    /// Whether the array is stored in Fortran (column-major) order.
    pub fortran_order: bool,
    /// NPY format version, `major.minor`.
    pub version: String,
    /// Whether the member was deflated and had to be inflated into memory.
    pub inflated: bool,
}

/// Facts about a NumPy file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NumpyDetails {
    /// One entry per array, in file order.
    pub arrays: Vec<ArrayInfo>,
}

/// A parsed NPY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The descr string.
    pub descr: String,
    /// Column-major storage.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<u64>,
    /// `(major, minor)` version.
    pub version: (u8, u8),
    /// Offset of the data from the start of the NPY bytes.
    pub data_offset: u64,
}

/// Parses the header of the NPY bytes `b` (the array called `entry`).
pub fn parse_header(b: &[u8], entry: &str) -> Result<NpyHeader> {
    let err = |reason: String| Error::Npy {
        entry: entry.to_string(),
        reason,
    };
    let mut c = crate::cursor::Cursor::new(b);
    let magic = c.take(6, "NPY magic")?;
    if magic != b"\x93NUMPY" {
        return Err(err("no \\x93NUMPY magic".into()));
    }
    let major = c.u8("NPY version")?;
    let minor = c.u8("NPY version")?;
    let len = match major {
        1 => u64::from(c.u16("NPY header length")?),
        2 | 3 => u64::from(c.u32("NPY header length")?),
        v => {
            return Err(Error::UnsupportedVersion {
                format: "NPY",
                version: v.into(),
                hint: "versions 1.0, 2.0 and 3.0 are supported",
            });
        }
    };
    if len > MAX_HEADER_LEN {
        return Err(Error::StringTooLong {
            what: "NPY header",
            offset: c.pos() as u64,
            len,
            max: MAX_HEADER_LEN,
        });
    }
    let text = c.take(len, "NPY header")?;
    let text = std::str::from_utf8(text).map_err(|_| err("header is not UTF-8".into()))?;
    if major < 3 && !text.is_ascii() {
        return Err(err("a version 1/2 header must be ASCII".into()));
    }
    let dict = DictParser {
        s: text.as_bytes(),
        pos: 0,
    }
    .dict()
    .map_err(|e| err(format!("header {text:?}: {e}")))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Lit::Str(s)) => descr = Some(s),
            ("descr", Lit::List) => return Err(err("structured arrays (a descr list) are not supported".into())),
            ("fortran_order", Lit::Bool(b)) => fortran = Some(b),
            ("shape", Lit::Tuple(t)) => shape = Some(t),
            (k, _) => return Err(err(format!("unexpected header key or value for {k:?}"))),
        }
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran, shape) else {
        return Err(err("header lacks descr, fortran_order or shape".into()));
    };
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        version: (major, minor),
        data_offset: c.pos() as u64,
    })
}

/// The element type of a numpy descr.
pub fn descr_dtype(descr: &str, entry: &str) -> Result<DType> {
    let err = |reason: String| Error::Npy {
        entry: entry.to_string(),
        reason,
    };
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => descr.split_at(1),
        _ => ("", descr),
    };
    let dtype = match code {
        "b1" => DType::Bool,
        "i1" => DType::I8,
        "u1" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "c8" => DType::C64,
        c if c.starts_with('O') => {
            return Err(err(format!("object arrays ({descr:?}) need Python's pickle; refusing")));
        }
        c if c.starts_with('V') => {
            return Err(err(format!(
                "void descr {descr:?}: numpy does not record the element type (ml_dtypes' bfloat16 saves this way); save as safetensors instead"
            )));
        }
        _ => return Err(err(format!("unsupported descr {descr:?}"))),
    };
    if order == ">" && dtype.element_size() != Some(1) {
        return Err(err(format!("big-endian descr {descr:?} is not supported")));
    }
    Ok(dtype)
}

/// Builds the tensor of the NPY bytes at `base..end` of file `file`.
fn array(
    bytes: &[u8],
    base: u64,
    end: u64,
    file: usize,
    name: &str,
    inflated: bool,
) -> Result<(TensorInfo, ArrayInfo)> {
    let h = parse_header(bytes, name)?;
    let dtype = descr_dtype(&h.descr, name)?;
    let nbytes = dtype.nbytes(&h.shape).ok_or_else(|| Error::InvalidShape {
        name: name.to_string(),
        shape: h.shape.clone(),
        reason: "the element count overflows".into(),
    })?;
    let start = base + h.data_offset;
    let stop = start
        .checked_add(nbytes)
        .filter(|&s| s <= end)
        .ok_or_else(|| Error::TensorOutOfBounds {
            name: name.to_string(),
            offset: start,
            len: nbytes,
            file_len: end,
        })?;
    let view = (h.fortran_order && h.shape.len() > 1).then(|| {
        let mut strides = Vec::with_capacity(h.shape.len());
        let mut s = 1u64;
        for d in &h.shape {
            strides.push(s);
            s = s.saturating_mul(*d);
        }
        StorageView {
            key: name.to_string(),
            storage_bytes: start..stop,
            offset: 0,
            strides,
        }
    });
    let info = ArrayInfo {
        name: name.to_string(),
        descr: h.descr,
        fortran_order: h.fortran_order,
        version: format!("{}.{}", h.version.0, h.version.1),
        inflated,
    };
    Ok((
        TensorInfo {
            name: name.to_string(),
            dtype,
            shape: h.shape,
            file,
            bytes: start..stop,
            view,
        },
        info,
    ))
}

/// Reads the arrays of an NPY or NPZ `file` (file number `file_index`). Inflated NPZ
/// members are returned as extra in-memory files, numbered from `file_index + 1`.
pub(crate) fn parse(file: &FileBytes, file_index: usize) -> Result<(Vec<TensorInfo>, NumpyDetails, Vec<FileBytes>)> {
    let bytes = file.bytes();
    let mut details = NumpyDetails::default();
    if bytes.starts_with(b"\x93NUMPY") {
        let name = file
            .path()
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("array")
            .to_string();
        let (t, a) = array(bytes, 0, file.len(), file_index, &name, false)?;
        details.arrays.push(a);
        return Ok((vec![t], details, Vec::new()));
    }
    let members = archive::members(bytes)?;
    let mut tensors = Vec::with_capacity(members.len());
    let mut extra = Vec::new();
    let mut inflated_total = 0u64;
    let mut zip = None;
    for (i, m) in members.iter().enumerate() {
        let Some(name) = m.name.strip_suffix(".npy") else {
            return Err(Error::Zip {
                reason: format!("member {:?} is not a .npy array", m.name),
            });
        };
        if m.stored {
            let Some(slice) = crate::source::slice_range(bytes, &m.data) else {
                return Err(Error::Zip {
                    reason: format!("member {:?} lies outside the file", m.name),
                });
            };
            let (t, a) = array(slice, m.data.start, m.data.end, file_index, name, false)?;
            tensors.push(t);
            details.arrays.push(a);
            continue;
        }
        let compressed = m.data.end - m.data.start;
        inflated_total = inflated_total.saturating_add(m.size);
        if m.size > compressed.saturating_mul(MAX_INFLATE_RATIO).saturating_add(1 << 20)
            || inflated_total > MAX_INFLATED_TOTAL
        {
            return Err(Error::Zip {
                reason: format!(
                    "member {:?} declares {} bytes from {compressed} compressed (limits: {MAX_INFLATE_RATIO}x, {MAX_INFLATED_TOTAL} bytes in all); refusing a possible zip bomb",
                    m.name, m.size
                ),
            });
        }
        let zip = match &mut zip {
            Some(z) => z,
            None => zip.insert(
                zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Zip { reason: e.to_string() })?,
            ),
        };
        let mut reader = zip.by_index(i).map_err(|e| Error::Zip { reason: e.to_string() })?;
        let mut out = Vec::with_capacity(m.size as usize);
        std::io::Read::take(&mut reader, m.size + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Zip {
                reason: format!("inflating {:?}: {e}", m.name),
            })?;
        if out.len() as u64 != m.size {
            return Err(Error::Zip {
                reason: format!(
                    "member {:?} inflates to {} bytes, not the declared {}",
                    m.name,
                    out.len(),
                    m.size
                ),
            });
        }
        let index = file_index + 1 + extra.len();
        let (t, a) = array(&out, 0, m.size, index, name, true)?;
        tensors.push(t);
        details.arrays.push(a);
        extra.push(FileBytes::from_vec(
            format!("{}!{}", file.path().display(), m.name),
            out,
        ));
    }
    Ok((tensors, details, extra))
}

use std::io::Read as _;

#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    List,
}

/// The strict subset of Python literals numpy writes in NPY headers.
struct DictParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl DictParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", b as char, self.pos))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let q = *self.s.get(self.pos).ok_or("unexpected end")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a string at {}", self.pos));
        }
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == q)
            .ok_or("unterminated string")?;
        self.pos = start + len + 1;
        let s = &self.s[start..start + len];
        if s.contains(&b'\\') {
            return Err("escapes in header strings are not supported".into());
        }
        String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    fn value(&mut self) -> Result<Lit, String> {
        self.ws();
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            return Ok(Lit::Bool(true));
        }
        if rest.starts_with(b"False") {
            self.pos += 5;
            return Ok(Lit::Bool(false));
        }
        match rest.first() {
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'[') => Ok(Lit::List),
            Some(b'(') => {
                self.pos += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Ok(Lit::Tuple(dims));
                    }
                    self.ws();
                    let start = self.pos;
                    while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                        self.pos += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
                    let d: u64 = digits
                        .parse()
                        .map_err(|_| format!("bad dimension {digits:?} at {start}"))?;
                    if dims.len() >= 64 {
                        return Err("more than 64 dimensions".into());
                    }
                    dims.push(d);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        return Ok(Lit::Tuple(dims));
                    }
                }
            }
            _ => Err(format!("unexpected value at {}", self.pos)),
        }
    }
    fn dict(mut self) -> Result<Vec<(String, Lit)>, String> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let k = self.string()?;
            self.expect(b':')?;
            let v = self.value()?;
            if out.iter().any(|(key, _)| *key == k) {
                return Err(format!("duplicate key {k:?}"));
            }
            out.push((k, v));
            if out.len() > 16 {
                return Err("too many keys".into());
            }
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.ws();
        if self.pos != self.s.len() {
            return Err(format!("trailing characters at {}", self.pos));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn headers() {
        let b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &[0; 24]);
        let h = parse_header(&b, "x").unwrap();
        let data_at = (b.len() - 24) as u64;
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape.as_slice(), h.data_offset),
            ("<f4", false, &[2u64, 3][..], data_at)
        );
        let h = parse_header(&npy("{'shape': (), 'fortran_order': True, 'descr': '|b1'}", &[1]), "x").unwrap();
        assert!(h.shape.is_empty() && h.fortran_order);
        let h = parse_header(
            &npy("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", &[0; 40]),
            "x",
        )
        .unwrap();
        assert_eq!(h.shape, vec![5]);
        for bad in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'descr': '<f4'}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
            "__import__('os')",
        ] {
            assert!(
                matches!(parse_header(&npy(bad, &[]), "x"), Err(Error::Npy { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn descrs() {
        assert_eq!(descr_dtype("<f2", "x").unwrap(), DType::F16);
        assert_eq!(descr_dtype("|u1", "x").unwrap(), DType::U8);
        assert_eq!(descr_dtype(">i1", "x").unwrap(), DType::I8);
        for bad in [">f4", "|O", "|V2", "<f16", "<M8[ns]"] {
            let e = descr_dtype(bad, "x").unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
