//! The transcode cache: a converted model written once as a GGUF and mapped on later
//! loads instead of converting again.
//!
//! An entry is `<dir>/<key>.gguf`. The key is a SHA-256 over everything that decides
//! the entry's bytes: the cache format version, qload's version, the source's identity
//! (per file: its size, modification time and hashes of its first MiB, its last 64 KiB
//! and 16 evenly spaced 4 KiB samples; plus the configuration files beside it), and
//! the load's settings (policy, filter, renaming, pre-quantized settings). An entry is
//! written into a temporary file in the same directory, synced and renamed, so a crash
//! never leaves a partial entry under its final name. On a hit the entry is opened with
//! every structural check of the GGUF reader (a truncated file fails them) and must
//! carry its own key and version in its metadata; anything else is reported, removed
//! and rebuilt. Tensor contents are not re-hashed on a hit (that would cost as much as
//! reading the model); `qload cache verify` does it from the hash stored in the entry.

use std::path::{Path, PathBuf};

use qload_formats::gguf::{GgufWriter, Value};
use qload_formats::{Details, WeightSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::load::{LoadReport, LoadedModel};

/// Version of the entry layout; bumping it makes older entries misses.
pub const CACHE_VERSION: u32 = 1;

const KEY_KEY: &str = "qload.cache.key";
const VERSION_KEY: &str = "qload.cache.version";
const REPORT_KEY: &str = "qload.cache.report";
const DIGEST_KEY: &str = "qload.cache.data_sha256";
const SOURCE_KEY: &str = "qload.cache.source";
const POLICY_KEY: &str = "qload.cache.policy";

/// One entry of a cache directory, as listed by [`list`].
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// File size, bytes.
    pub bytes: u64,
    /// The source files it was converted from.
    pub source: String,
    /// The policy it was converted with.
    pub policy: String,
    /// Tensors it holds.
    pub tensors: usize,
    /// Why it cannot be used, if it cannot.
    pub problem: Option<String>,
}

/// The entries of a cache directory (`*.gguf`), and the temporary files that killed
/// writers left behind (`.*.tmp-*`).
pub fn list(dir: &Path) -> std::io::Result<(Vec<Entry>, Vec<PathBuf>)> {
    let mut entries = Vec::new();
    let mut leftovers = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") {
            leftovers.push(path);
            continue;
        }
        if !name.ends_with(".gguf") {
            continue;
        }
        let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
        let mut entry = Entry {
            path: path.clone(),
            bytes,
            source: String::new(),
            policy: String::new(),
            tensors: 0,
            problem: None,
        };
        match open_entry(&path, None) {
            Ok((source, _)) => {
                if let Details::Gguf(h) = source.details()
                    && let Some(h) = h.first()
                {
                    let get = |k: &str| {
                        h.metadata
                            .iter()
                            .find(|kv| kv.key == k)
                            .and_then(|kv| kv.value.as_str())
                            .unwrap_or("")
                            .to_string()
                    };
                    entry.source = get(SOURCE_KEY);
                    entry.policy = get(POLICY_KEY);
                }
                entry.tensors = source.tensors().len();
            }
            Err(p) => entry.problem = Some(p),
        }
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    leftovers.sort();
    Ok((entries, leftovers))
}

/// What the cache did for a load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheInfo {
    /// The entry's path.
    pub path: String,
    /// `hit`: mapped from the entry; `stored`: converted and written; `not_stored`: converted, not written (see notes).
    pub outcome: String,
}

/// The key of a load: hex SHA-256.
pub(crate) fn key(source: &WeightSource, path: &Path, settings: &str) -> Result<String> {
    let mut h = Sha256::new();
    h.update(format!(
        "qload-cache/{CACHE_VERSION}\nqload {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    h.update(settings.as_bytes());
    for f in source.files() {
        let bytes = f.bytes();
        let len = bytes.len();
        let mtime = std::fs::metadata(f.path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!("\nfile {len} {mtime}\n"));
        h.update(&bytes[..len.min(1 << 20)]);
        h.update(&bytes[len.saturating_sub(64 << 10)..]);
        for k in 0..16 {
            let at = len / 16 * k;
            h.update(&bytes[at..len.min(at + 4096)]);
        }
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let configs: &[&str] = if path.as_os_str().is_empty() {
        &[] // an in-memory source has no files beside it
    } else {
        &["config.json", "quantization_config.json", "quanto_qmap.json"]
    };
    for name in configs {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            h.update(format!("\n{name}\n"));
            h.update(&b);
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The entry path for `key` in `dir`.
pub(crate) fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{}.gguf", &key[..32.min(key.len())]))
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A valid entry, opened.
    Hit(Box<(WeightSource, LoadReport)>),
    /// No entry.
    Miss,
    /// An entry that cannot be used (why); it has been removed.
    Bad(String),
}

/// Opens and checks the entry for `key`.
pub(crate) fn lookup(dir: &Path, key: &str) -> Lookup {
    let path = entry_path(dir, key);
    if !path.exists() {
        return Lookup::Miss;
    }
    match open_entry(&path, Some(key)) {
        Ok(found) => Lookup::Hit(Box::new(found)),
        Err(reason) => {
            let _ = std::fs::remove_file(&path);
            Lookup::Bad(format!(
                "cache entry {} was unusable ({reason}); rebuilt",
                path.display()
            ))
        }
    }
}

/// Opens an entry and checks its metadata (and its key, when given).
pub fn open_entry(path: &Path, key: Option<&str>) -> std::result::Result<(WeightSource, LoadReport), String> {
    let source = qload_formats::open(path).map_err(|e| e.to_string())?;
    let Details::Gguf(headers) = source.details() else {
        return Err("not a GGUF".into());
    };
    let header = headers.first().ok_or("no GGUF header")?;
    let get = |k: &str| header.metadata.iter().find(|kv| kv.key == k);
    let version = get(VERSION_KEY).and_then(|kv| kv.value.as_u64());
    if version != Some(u64::from(CACHE_VERSION)) {
        return Err(format!("cache version {version:?}, expected {CACHE_VERSION}"));
    }
    let stored_key = get(KEY_KEY).and_then(|kv| kv.value.as_str().map(str::to_string));
    if let Some(k) = key
        && stored_key.as_deref() != Some(k)
    {
        return Err("its key does not match".into());
    }
    let report = get(REPORT_KEY)
        .and_then(|kv| kv.value.as_str())
        .ok_or("no stored report")?;
    let report: LoadReport = serde_json::from_str(report).map_err(|e| format!("stored report: {e}"))?;
    if report.per_tensor.len() != source.tensors().len() {
        return Err(format!(
            "{} tensors stored, the report lists {}",
            source.tensors().len(),
            report.per_tensor.len()
        ));
    }
    Ok((source, report))
}

/// Recomputes an entry's data hash and compares it with the one it stores.
pub fn verify_entry(path: &Path) -> std::result::Result<(), String> {
    let (source, _) = open_entry(path, None)?;
    let Details::Gguf(headers) = source.details() else {
        return Err("not a GGUF".into());
    };
    let stored = headers[0]
        .metadata
        .iter()
        .find(|kv| kv.key == DIGEST_KEY)
        .and_then(|kv| kv.value.as_str().map(str::to_string))
        .ok_or("no stored data hash")?;
    let mut h = Sha256::new();
    for t in source.tensors() {
        h.update(source.tensor_bytes(t).map_err(|e| e.to_string())?);
    }
    if hex(&h.finalize()) != stored {
        return Err("tensor data does not match its stored hash (corrupt)".into());
    }
    Ok(())
}

/// Writes `model` as the entry for `key` with [`LoadedModel::write_gguf_file`]
/// (temporary file, fsync, rename, directory fsync).
pub(crate) fn store(dir: &Path, key: &str, model: &LoadedModel, report: &LoadReport) -> Result<PathBuf> {
    let io = |p: &Path, e: std::io::Error| Error::Cache {
        reason: format!("{}: {e}", p.display()),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut w = GgufWriter::new();
    let set = |w: &mut GgufWriter, k: &str, v: Value| w.set(k, v).map_err(|e| Error::Cache { reason: e.to_string() });
    set(&mut w, "general.architecture", Value::String("qload-cache".into()))?;
    set(&mut w, VERSION_KEY, Value::U32(CACHE_VERSION))?;
    set(&mut w, KEY_KEY, Value::String(key.to_string()))?;
    set(&mut w, SOURCE_KEY, Value::String(report.files.join(", ")))?;
    set(&mut w, POLICY_KEY, Value::String(report.policy.clone()))?;
    let mut digest = Sha256::new();
    for t in model.tensors() {
        if t.scheme.is_some() {
            return Err(Error::Cache {
                reason: format!("{} is a native pre-quantized weight, which a GGUF cannot hold", t.name),
            });
        }
        digest.update(model.bytes(t));
    }
    set(&mut w, DIGEST_KEY, Value::String(hex(&digest.finalize())))?;
    let json = serde_json::to_string(report).map_err(|e| Error::Cache { reason: e.to_string() })?;
    set(&mut w, REPORT_KEY, Value::String(json))?;
    let path = entry_path(dir, key);
    model.write_gguf_file(w, &path)?;
    Ok(path)
}
