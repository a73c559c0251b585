//! safetensors files, through the `safetensors` crate over the mapped bytes, and
//! sharded checkpoints (`model.safetensors.index.json`, `pytorch_model.bin.index.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::detect::{Detected, detect};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{Details, Format, TensorInfo, WeightSource};
use crate::storage::FileBytes;
use crate::{OpenOptions, torch};

/// Largest shard index accepted (real ones are a few hundred KB).
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Largest JSON header accepted. Real headers are kilobytes (a 20,000-tensor MoE model's
/// is about 2 MB); the `safetensors` crate's own limit (100 MB) would let a hostile file
/// make it parse and allocate that much.
pub const MAX_HEADER_BYTES: u64 = 32 << 20;

/// The header of one safetensors file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileHeader {
    /// The file.
    pub path: PathBuf,
    /// Length of the JSON header in bytes.
    pub header_len: u64,
    /// The `__metadata__` string map.
    pub metadata: BTreeMap<String, String>,
}

/// The index of a sharded checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShardIndex {
    /// The index file.
    pub path: PathBuf,
    /// `metadata.total_size`, if present.
    pub total_size: Option<u64>,
    /// The shard files, in the order they were opened.
    pub shards: Vec<String>,
    /// Every other `metadata` entry.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// safetensors facts: one header per file and the shard index, if any.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SafetensorsDetails {
    /// One header per file.
    pub headers: Vec<FileHeader>,
}

fn dtype_of(d: Dtype, name: &str) -> Result<DType> {
    Ok(match d {
        Dtype::BOOL => DType::Bool,
        Dtype::F4 => DType::F4,
        Dtype::F6_E2M3 => DType::F6E2M3,
        Dtype::F6_E3M2 => DType::F6E3M2,
        Dtype::U8 => DType::U8,
        Dtype::I8 => DType::I8,
        Dtype::F8_E5M2 => DType::F8E5M2,
        Dtype::F8_E4M3 => DType::F8E4M3,
        Dtype::F8_E8M0 => DType::F8E8M0,
        Dtype::F8_E4M3FNUZ => DType::F8E4M3FNUZ,
        Dtype::F8_E5M2FNUZ => DType::F8E5M2FNUZ,
        Dtype::I16 => DType::I16,
        Dtype::U16 => DType::U16,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::U32 => DType::U32,
        Dtype::F32 => DType::F32,
        Dtype::C64 => DType::C64,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::U64 => DType::U64,
        other => {
            return Err(Error::Unsupported {
                name: name.to_string(),
                reason: format!("safetensors dtype {other:?} is not known to this version"),
            });
        }
    })
}

/// Reads the tensors of the safetensors file `file` (file number `file_index`).
pub fn parse(file: &FileBytes, file_index: usize) -> Result<(Vec<TensorInfo>, FileHeader)> {
    if let Some(head) = file.bytes().get(..8) {
        let n = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
        if n > MAX_HEADER_BYTES {
            return Err(Error::TooMany {
                what: "safetensors header byte",
                count: n,
                max: MAX_HEADER_BYTES,
            });
        }
    }
    let (n, meta) = SafeTensors::read_metadata(file.bytes())?;
    let data_start = 8 + n as u64;
    let infos = meta.tensors();
    let mut tensors = Vec::with_capacity(infos.len());
    for name in meta.offset_keys() {
        let Some(info) = infos.get(&name) else { continue };
        let (s, e) = info.data_offsets;
        tensors.push(TensorInfo {
            dtype: dtype_of(info.dtype, &name)?,
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            file: file_index,
            bytes: data_start + s as u64..data_start + e as u64,
            view: None,
            name,
        });
    }
    let header = FileHeader {
        path: file.path().to_path_buf(),
        header_len: n as u64,
        metadata: meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    };
    Ok((tensors, header))
}

pub(crate) fn open_file(file: FileBytes) -> Result<WeightSource> {
    let (tensors, header) = parse(&file, 0)?;
    let details = SafetensorsDetails { headers: vec![header] };
    WeightSource::assemble(
        Format::Safetensors,
        vec![file],
        tensors,
        Details::Safetensors(details),
        Vec::new(),
    )
}

#[derive(serde::Deserialize)]
struct IndexJson {
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
    weight_map: BTreeMap<String, String>,
}

/// Opens a sharded checkpoint from its index: every shard named in `weight_map`,
/// checking that each name is in the shard the index says, and recording tied names
/// that the index's metadata maps to stored tensors as aliases.
pub(crate) fn open_index(path: &Path, options: &OpenOptions) -> Result<WeightSource> {
    let shard_err = |reason: String| Error::Shards {
        index: path.to_path_buf(),
        reason,
    };
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > MAX_INDEX_BYTES {
        return Err(shard_err(format!(
            "index is {len} bytes; the limit is {MAX_INDEX_BYTES}"
        )));
    }
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let index: IndexJson = serde_json::from_slice(&text).map_err(|e| shard_err(format!("not a shard index: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let shard_names: BTreeSet<&String> = index.weight_map.values().collect();
    if shard_names.is_empty() {
        return Err(shard_err("weight_map is empty".into()));
    }
    let mut files = Vec::with_capacity(shard_names.len());
    let mut tensors = Vec::new();
    let mut headers = Vec::new();
    let mut torch_details = None;
    let mut format = None;
    for (i, shard) in shard_names.iter().enumerate() {
        if shard.contains(['/', '\\']) || shard == &".." || shard.is_empty() {
            return Err(shard_err(format!("shard name {shard:?} is not a plain file name")));
        }
        let shard_path = dir.join(shard.as_str());
        if !shard_path.is_file() {
            return Err(shard_err(format!("shard {shard:?} is missing")));
        }
        let file = FileBytes::open(&shard_path, options.map_mode)?;
        let head = &file.bytes()[..file.bytes().len().min(512)];
        let (shard_tensors, shard_format) = match detect(head, file.len()) {
            Detected::Format(Format::Safetensors) => {
                let (t, h) = parse(&file, i)?;
                headers.push(h);
                (t, Format::Safetensors)
            }
            Detected::Zip | Detected::Format(Format::PytorchLegacy) => {
                let (t, d) = torch::parse(&file, i)?;
                torch_details.get_or_insert(d);
                (t, crate::zip_or(&file, Format::PytorchZip, Format::PytorchLegacy))
            }
            other => {
                return Err(shard_err(format!(
                    "shard {shard:?} is not safetensors or PyTorch: {other:?}"
                )));
            }
        };
        if format.is_some_and(|f| f != shard_format) {
            return Err(shard_err("shards mix formats".into()));
        }
        format = Some(shard_format);
        for t in &shard_tensors {
            match index.weight_map.get(&t.name) {
                Some(s) if s == *shard => {}
                Some(s) => {
                    return Err(shard_err(format!(
                        "tensor {:?} is in {shard:?} but the index places it in {s:?}",
                        t.name
                    )));
                }
                None => {
                    return Err(shard_err(format!(
                        "tensor {:?} in {shard:?} is not listed in the index",
                        t.name
                    )));
                }
            }
        }
        tensors.extend(shard_tensors);
        files.push(file);
    }
    let present: BTreeSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let missing: Vec<&String> = index
        .weight_map
        .keys()
        .filter(|k| !present.contains(k.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(shard_err(format!(
            "{} tensor(s) listed in the index are in no shard, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )));
    }
    let mut aliases = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut total_size = None;
    for (k, v) in index.metadata {
        match (k.as_str(), &v) {
            ("total_size", serde_json::Value::Number(n)) => total_size = n.as_u64(),
            (_, serde_json::Value::String(target))
                if present.contains(target.as_str()) && !present.contains(k.as_str()) =>
            {
                aliases.push((k.clone(), target.clone()));
                metadata.insert(k, v);
            }
            _ => {
                metadata.insert(k, v);
            }
        }
    }
    let format = format.unwrap_or(Format::Safetensors);
    let mut notes = vec![format!(
        "sharded checkpoint: {} shard(s) from {}",
        files.len(),
        path.display()
    )];
    for (alias, target) in &aliases {
        notes.push(format!(
            "{alias} is tied to {target} (recorded in the index metadata, not stored)"
        ));
    }
    let shard_index = ShardIndex {
        path: path.to_path_buf(),
        total_size,
        shards: shard_names.iter().map(|s| s.to_string()).collect(),
        metadata,
    };
    let details = match torch_details {
        Some(d) if format != Format::Safetensors => Details::Torch(d),
        _ => Details::Safetensors(SafetensorsDetails { headers }),
    };
    let mut source = WeightSource::assemble(format, files, tensors, details, notes)?;
    source.set_index(shard_index, aliases);
    Ok(source)
}
