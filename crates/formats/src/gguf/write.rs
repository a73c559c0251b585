//! Writing GGUF files in the layout gguf-py and llama.cpp produce: header, metadata,
//! tensor infos, zero padding to the alignment, then each tensor's data padded to
//! the alignment. Reading a gguf-py file and writing it back with
//! [`GgufWriter::from_header`] gives identical bytes.

use std::io::{self, Write};
use std::path::Path;

use super::value::Value;
use super::{DEFAULT_ALIGNMENT, GGML_MAX_NAME, GgufHeader, MAGIC};
use crate::dtype::{DType, GgmlFlavor};
use crate::error::{Error, Result};
use crate::source::slice_range;

/// A metadata entry to write.
#[derive(Debug, Clone, PartialEq)]
pub enum KvEntry {
    /// An entry copied verbatim from another file (key, type and value bytes).
    Raw {
        /// The key (for lookups and replacement).
        key: String,
        /// The entry's bytes exactly as they were stored.
        bytes: Vec<u8>,
    },
    /// An entry built in memory.
    Value {
        /// The key.
        key: String,
        /// The value; arrays must be [`Value::OwnedArray`].
        value: Value,
    },
}

impl KvEntry {
    /// The entry's key.
    pub fn key(&self) -> &str {
        match self {
            KvEntry::Raw { key, .. } | KvEntry::Value { key, .. } => key,
        }
    }
}

/// A tensor to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Name (at most 63 bytes, as ggml requires).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, row-major (outermost first); written innermost first as GGUF stores it.
    pub shape: Vec<u64>,
    /// Byte length of the data, from the type and the shape.
    pub nbytes: u64,
}

/// Builds a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    flavor: GgmlFlavor,
    kvs: Vec<KvEntry>,
    tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// An empty GGUF v3 file with the default alignment and upstream type ids.
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            flavor: GgmlFlavor::Upstream,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Starts from an existing file's header: same version, alignment, type numbering
    /// and metadata (copied byte for byte); no tensors.
    pub fn from_header(header: &GgufHeader, data: &[u8]) -> Result<GgufWriter> {
        let mut kvs = Vec::with_capacity(header.metadata.len());
        for kv in &header.metadata {
            let bytes = slice_range(data, &kv.raw).ok_or_else(|| Error::Write {
                reason: format!("metadata entry {:?} lies outside the given data", kv.key),
            })?;
            kvs.push(KvEntry::Raw {
                key: kv.key.clone(),
                bytes: bytes.to_vec(),
            });
        }
        Ok(GgufWriter {
            version: header.version,
            alignment: header.alignment,
            flavor: header.flavor,
            kvs,
            tensors: Vec::new(),
        })
    }

    /// Sets the GGUF version (2 or 3).
    pub fn version(mut self, version: u32) -> Result<Self> {
        if !(2..=3).contains(&version) {
            return Err(Error::Write {
                reason: format!("GGUF version {version} cannot be written (2 or 3)"),
            });
        }
        self.version = version;
        Ok(self)
    }

    /// Uses microsoft/BitNet's type numbering for ids 36–39 (for I2_S/TL1/TL2 files).
    pub fn flavor(mut self, flavor: GgmlFlavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Sets or replaces a metadata entry. `general.alignment` (u32) also sets the alignment.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        if matches!(value, Value::Array(_)) {
            return Err(Error::Write {
                reason: format!("{key:?}: an array that lives in another file must be copied as a raw entry"),
            });
        }
        if key == "general.alignment" {
            let Value::U32(a) = value else {
                return Err(Error::Write {
                    reason: "general.alignment must be a u32".into(),
                });
            };
            if a == 0 || !a.is_power_of_two() {
                return Err(Error::BadAlignment { alignment: a.into() });
            }
            self.alignment = a.into();
        }
        let entry = KvEntry::Value {
            key: key.to_string(),
            value,
        };
        match self.kvs.iter_mut().find(|kv| kv.key() == key) {
            Some(slot) => *slot = entry,
            None => self.kvs.push(entry),
        }
        Ok(())
    }

    /// Removes a metadata entry, if present.
    pub fn remove(&mut self, key: &str) {
        self.kvs.retain(|kv| kv.key() != key);
    }

    /// The metadata entries, in order.
    pub fn entries(&self) -> &[KvEntry] {
        &self.kvs
    }

    /// Adds a tensor; its data is supplied to [`GgufWriter::write`] in the same order.
    pub fn add_tensor(&mut self, name: &str, dtype: DType, shape: &[u64]) -> Result<()> {
        if name.len() as u64 > GGML_MAX_NAME {
            return Err(Error::NameTooLong {
                name: name.to_string(),
                len: name.len() as u64,
                max: GGML_MAX_NAME,
            });
        }
        if shape.len() > 4 {
            return Err(Error::TooManyDims {
                name: name.to_string(),
                n_dims: shape.len() as u64,
                max: 4,
            });
        }
        if dtype.ggml_id(self.flavor).is_none() {
            return Err(Error::Write {
                reason: format!("{name:?}: {dtype} has no GGUF type id with {:?} numbering", self.flavor),
            });
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(Error::DuplicateTensor { name: name.to_string() });
        }
        let nbytes = dtype.nbytes(shape).ok_or_else(|| Error::InvalidShape {
            name: name.to_string(),
            shape: shape.iter().rev().copied().collect(),
            reason: format!("{dtype} cannot hold this shape"),
        })?;
        self.tensors.push(TensorEntry {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            nbytes,
        });
        Ok(())
    }

    /// The tensors, in order.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The header bytes (everything before the data section, padding included).
    pub fn header_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            match kv {
                KvEntry::Raw { bytes, .. } => out.extend_from_slice(bytes),
                KvEntry::Value { key, value } => {
                    put_str(&mut out, key);
                    out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
                    put_value(&mut out, key, value)?;
                }
            }
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for d in t.shape.iter().rev() {
                out.extend_from_slice(&d.to_le_bytes());
            }
            let id = t.dtype.ggml_id(self.flavor).unwrap_or(u32::MAX);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset += t.nbytes.div_ceil(self.alignment) * self.alignment;
        }
        let padded = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
        out.resize(padded as usize, 0);
        Ok(out)
    }

    /// Total file size once written.
    pub fn file_size(&self) -> Result<u64> {
        let header = self.header_bytes()?.len() as u64;
        Ok(header
            + self
                .tensors
                .iter()
                .map(|t| t.nbytes.div_ceil(self.alignment) * self.alignment)
                .sum::<u64>())
    }

    /// Writes the file to `w`. `fill(i, w)` must write exactly tensor `i`'s
    /// `nbytes` bytes; the writer adds the padding. Returns the bytes written.
    pub fn write<W: Write>(
        &self,
        w: &mut W,
        mut fill: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
    ) -> Result<u64> {
        let io_err = |e: io::Error| Error::io("<gguf output>", e);
        let header = self.header_bytes()?;
        w.write_all(&header).map_err(io_err)?;
        let mut total = header.len() as u64;
        let zeros = vec![0u8; self.alignment as usize];
        for (i, t) in self.tensors.iter().enumerate() {
            let mut counter = Counting { inner: &mut *w, n: 0 };
            fill(i, &mut counter).map_err(io_err)?;
            if counter.n != t.nbytes {
                return Err(Error::Write {
                    reason: format!(
                        "tensor {:?}: {} bytes supplied, {} expected",
                        t.name, counter.n, t.nbytes
                    ),
                });
            }
            let pad = t.nbytes.div_ceil(self.alignment) * self.alignment - t.nbytes;
            w.write_all(&zeros[..pad as usize]).map_err(io_err)?;
            total += t.nbytes + pad;
        }
        w.flush().map_err(io_err)?;
        Ok(total)
    }
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::OwnedArray(t, items) => {
            out.extend_from_slice(&(*t as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                if item.value_type() != *t {
                    return Err(Error::Write {
                        reason: format!("{key:?}: array of {} holds a {}", t.name(), item.value_type().name()),
                    });
                }
                put_value(out, key, item)?;
            }
        }
        Value::Array(_) => {
            return Err(Error::Write {
                reason: format!("{key:?}: a lazy array cannot be written without its file"),
            });
        }
    }
    Ok(())
}

/// Writes a file atomically: into a temporary file beside `path` (`.NAME.tmp-PID-N`),
/// fsync, rename, fsync of the directory. A crash leaves either the old file or the
/// complete new one, never a partial one (and possibly a stray temporary file).
pub fn write_file_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Unique per process and call: concurrent writers of one path never share a temp file.
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut buf = io::BufWriter::with_capacity(1 << 20, file);
        write(&mut buf)?;
        let file = buf.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
