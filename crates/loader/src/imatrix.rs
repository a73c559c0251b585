//! Importance matrices as llama.cpp's `llama-imatrix` writes them, for quantizing with
//! `--imatrix`: the GGUF layout (`general.type` = `imatrix`, per weight `<name>.in_sum2`
//! and `<name>.counts`) and the legacy binary `.dat` layout. Values are what
//! `llama-quantize` hands to ggml: `in_sum2 / counts` per matrix (1 where a count is 0),
//! or the legacy `sums / ncall`.

use std::collections::HashMap;
use std::path::Path;

use qload_formats::{DType, Details};

use crate::error::{Error, Result};

/// Largest legacy imatrix file read (they are a few MB even for large models).
const MAX_LEGACY_BYTES: u64 = 1 << 30;

/// An importance matrix: per weight name, its values (`n_mat` matrices of one row each).
#[derive(Debug, Clone, Default)]
pub struct Imatrix {
    entries: HashMap<String, (Vec<f32>, usize)>,
    /// The datasets it was computed on, as recorded.
    pub datasets: Vec<String>,
    /// `gguf` or `legacy`.
    pub format: &'static str,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Imatrix {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl Imatrix {
    /// Reads an imatrix file in either layout (told apart by the GGUF magic).
    pub fn load(path: &Path) -> Result<Imatrix> {
        let mut head = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
            let _ = f.read(&mut head).map_err(|e| bad(path, e.to_string()))?;
        }
        if &head == b"GGUF" {
            Self::load_gguf(path)
        } else {
            Self::load_legacy(path)
        }
    }

    fn load_gguf(path: &Path) -> Result<Imatrix> {
        let source = qload_formats::open(path)?;
        let mut m = Imatrix {
            format: "gguf",
            ..Imatrix::default()
        };
        if let Details::Gguf(h) = source.details()
            && let Some(h) = h.first()
        {
            let data = source.files()[0].bytes();
            for kv in &h.metadata {
                match kv.key.as_str() {
                    "general.type" if kv.value.as_str() != Some("imatrix") => {
                        return Err(bad(
                            path,
                            format!("general.type is {:?}, not \"imatrix\"", kv.value.as_str()),
                        ));
                    }
                    "imatrix.datasets" => {
                        if let serde_json::Value::Array(a) = kv.value.to_json(data, 64) {
                            m.datasets = a.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                        }
                    }
                    _ => {}
                }
            }
        }
        let f32s = |name: &str| -> Result<Vec<f32>> {
            let t = source
                .tensor(name)
                .ok_or_else(|| bad(path, format!("{name} is missing")))?;
            if t.dtype != DType::F32 {
                return Err(bad(path, format!("{name} is {}, not F32", t.dtype)));
            }
            Ok(source
                .tensor_bytes(t)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        for t in source.tensors() {
            let Some(name) = t.name.strip_suffix(".in_sum2") else {
                continue;
            };
            let sums = f32s(&t.name)?;
            let counts = f32s(&format!("{name}.counts"))?;
            let n_mat = counts.len();
            if n_mat == 0 || !sums.len().is_multiple_of(n_mat) {
                return Err(bad(
                    path,
                    format!("{name}: {} sums do not split into {n_mat} matrices", sums.len()),
                ));
            }
            let ne0 = sums.len() / n_mat;
            let mut values = sums;
            for (j, &c) in counts.iter().enumerate() {
                for v in &mut values[j * ne0..(j + 1) * ne0] {
                    *v = if c > 0.0 { *v / c } else { 1.0 };
                }
            }
            m.entries.insert(name.to_string(), (values, n_mat));
        }
        if m.entries.is_empty() {
            return Err(bad(path, "no <name>.in_sum2 tensors: not an imatrix GGUF"));
        }
        Ok(m)
    }

    fn load_legacy(path: &Path) -> Result<Imatrix> {
        let len = std::fs::metadata(path).map_err(|e| bad(path, e.to_string()))?.len();
        if len > MAX_LEGACY_BYTES {
            return Err(bad(path, format!("{len} bytes is too large for a legacy imatrix")));
        }
        let b = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
        let take = |at: &mut usize, n: usize, what: &str| -> Result<std::ops::Range<usize>> {
            let end = at
                .checked_add(n)
                .filter(|&e| e <= b.len())
                .ok_or_else(|| bad(path, format!("truncated at byte {at} reading {what}")))?;
            let r = *at..end;
            *at = end;
            Ok(r)
        };
        let int = |at: &mut usize, what: &str| -> Result<i32> {
            let r = take(at, 4, what)?;
            Ok(i32::from_le_bytes([
                b[r.start],
                b[r.start + 1],
                b[r.start + 2],
                b[r.start + 3],
            ]))
        };
        let mut at = 0usize;
        let n = int(&mut at, "the entry count")?;
        if n <= 0 || n as usize > b.len() / 12 {
            return Err(bad(
                path,
                format!("entry count {n} does not fit a {}-byte file", b.len()),
            ));
        }
        let mut m = Imatrix {
            format: "legacy",
            ..Imatrix::default()
        };
        for _ in 0..n {
            let name_len = int(&mut at, "a name length")?;
            if !(1..=4096).contains(&name_len) {
                return Err(bad(path, format!("name length {name_len} at byte {}", at - 4)));
            }
            let r = take(&mut at, name_len as usize, "a name")?;
            let name = String::from_utf8(b[r].to_vec()).map_err(|_| bad(path, "a name is not UTF-8"))?;
            let ncall = int(&mut at, "ncall")?;
            let nval = int(&mut at, "nval")?;
            if nval <= 0 {
                return Err(bad(path, format!("{name}: {nval} values")));
            }
            let r = take(&mut at, nval as usize * 4, "values")?;
            let mut values: Vec<f32> = b[r]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if ncall > 0 {
                for v in &mut values {
                    *v /= ncall as f32;
                }
            }
            m.entries.insert(name, (values, 1));
        }
        // Optional trailer: last call, dataset name.
        if int(&mut at, "the last call").is_ok()
            && let Ok(l) = int(&mut at, "the dataset name length")
            && (0..=65536).contains(&l)
            && let Ok(r) = take(&mut at, l as usize, "the dataset name")
        {
            m.datasets.push(String::from_utf8_lossy(&b[r]).into_owned());
        }
        Ok(m)
    }

    /// The values for weight `name` and how many matrices they cover.
    pub fn get(&self, name: &str) -> Option<(&[f32], usize)> {
        self.entries.get(name).map(|(v, n)| (v.as_slice(), *n))
    }

    /// Number of weights it has values for.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A digest of every entry (names and value bits), for cache keys.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        let mut h = Sha256::new();
        for n in names {
            let (v, m) = &self.entries[n];
            h.update(n.as_bytes());
            h.update((*m as u64).to_le_bytes());
            for x in v {
                h.update(x.to_bits().to_le_bytes());
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The weight names it has values for.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}
