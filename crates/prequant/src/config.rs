//! The configuration files that travel with pre-quantized checkpoints.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Library, Result};

/// Largest configuration file read (they are a few KiB; a bigger one is not a config).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// What the configuration files beside a checkpoint say about its quantization.
#[derive(Debug, Clone, Default)]
pub struct SavedConfig {
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// `config.json`'s `quantization_config` (or `quantization_config.json`).
    pub quantization_config: Option<Value>,
    /// MLX's `quantization` entry of `config.json`.
    pub mlx_quantization: Option<Value>,
    /// optimum-quanto's quantization map (`quanto_qmap.json` or `<stem>_qmap.json`).
    pub quanto_qmap: Option<Value>,
    /// The whole `config.json` (for `model_type` and layer sizes).
    pub model_config: Option<Value>,
}

impl SavedConfig {
    /// Reads the configs that sit beside `path` (a checkpoint file or directory).
    /// Missing files are fine; a file that exists but is not JSON is an error.
    pub fn discover(path: &Path) -> Result<SavedConfig> {
        let (dir, stem) = if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            let stem = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.split('.').next().unwrap_or(n).to_string());
            (path.parent().unwrap_or(Path::new(".")).to_path_buf(), stem)
        };
        let mut cfg = SavedConfig::default();
        if let Some(v) = read_json(&dir.join("config.json"), &mut cfg.files)? {
            cfg.quantization_config = v.get("quantization_config").cloned();
            cfg.mlx_quantization = v.get("quantization").cloned();
            cfg.model_config = Some(v);
        }
        if cfg.quantization_config.is_none() {
            cfg.quantization_config = read_json(&dir.join("quantization_config.json"), &mut cfg.files)?;
        }
        cfg.quanto_qmap = read_json(&dir.join("quanto_qmap.json"), &mut cfg.files)?;
        if cfg.quanto_qmap.is_none()
            && let Some(stem) = stem
        {
            cfg.quanto_qmap = read_json(&dir.join(format!("{stem}_qmap.json")), &mut cfg.files)?;
        }
        Ok(cfg)
    }

    /// The library the saved configuration names, if any.
    pub fn library(&self) -> Option<Library> {
        if let Some(q) = &self.quantization_config {
            match q.get("quant_method").and_then(Value::as_str) {
                Some("bitsandbytes") => return Some(Library::Bitsandbytes),
                Some("hqq") => return Some(Library::Hqq),
                Some("quanto") => return Some(Library::Quanto),
                Some("bitnet") => return Some(Library::Bitnet),
                _ => {}
            }
        }
        if self.mlx_quantization.is_some() {
            return Some(Library::Mlx);
        }
        if self.quanto_qmap.is_some() {
            return Some(Library::Quanto);
        }
        None
    }

    /// A `quant_method` qload knows but does not decode (GPTQ, AWQ, …).
    pub fn unsupported_method(&self) -> Option<String> {
        let m = self.quantization_config.as_ref()?.get("quant_method")?.as_str()?;
        match m {
            "bitsandbytes" | "hqq" | "quanto" | "mlx" | "bitnet" => None,
            other => Some(other.to_string()),
        }
    }

    /// `config.json`'s integer field `key`.
    pub fn model_usize(&self, key: &str) -> Option<u64> {
        self.model_config.as_ref()?.get(key)?.as_u64()
    }
}

fn read_json(path: &Path, files: &mut Vec<PathBuf>) -> Result<Option<Value>> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let bad = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "{} bytes is too large for a configuration file",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let v = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    files.push(path.to_path_buf());
    Ok(Some(v))
}
