//! `qload inspect`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use qload_formats::{Details, Format, WeightSource};
use qload_prequant::{Detection, Requested};
use serde_json::{Value as J, json};

use crate::{InspectArgs, human_bytes, human_count};

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    let options = args.open.options();
    let mut reports = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let source =
            qload_formats::open_with(path, &options).with_context(|| format!("cannot open {}", path.display()))?;
        let found = prequant(path, &source, args.raw);
        if args.json {
            let mut r = report_json(&source, args.metadata, args.max_items);
            add_prequant_json(&mut r, &source, &found);
            reports.push(r);
        } else {
            print!("{}", report_text(&source, args.metadata, args.max_items, &found));
        }
    }
    if args.json {
        let out = if reports.len() == 1 {
            reports.remove(0)
        } else {
            J::Array(reports)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Pre-quantized weights found in the source (an empty detection with `--raw`, or
/// with the reason when they cannot be assembled).
fn prequant(path: &std::path::Path, source: &WeightSource, raw: bool) -> Result<Detection, String> {
    if raw || source.format() == Format::Gguf {
        return Ok(Detection::default());
    }
    qload_prequant::detect_at(path, source, &Requested::default()).map_err(|e| e.to_string())
}

fn add_prequant_json(out: &mut J, source: &WeightSource, found: &Result<Detection, String>) {
    match found {
        Ok(d) if d.is_empty() => {}
        Ok(d) => {
            out["prequantized"] = d
                .weights
                .iter()
                .map(|w| {
                    json!({
                        "name": w.name,
                        "library": w.library.name(),
                        "scheme": w.scheme.label(),
                        "dtype": w.scheme.output_dtype().name(),
                        "shape": w.shape,
                        "parameters": w.numel(),
                        "bytes": w.stored_bytes(source),
                        "keys": w.keys,
                    })
                })
                .collect();
            out["prequant_warnings"] = json!(d.warnings);
        }
        Err(e) => out["prequant_error"] = json!(e),
    }
}

/// Per-dtype totals: (tensors, parameters, bytes).
fn per_dtype(source: &WeightSource) -> BTreeMap<String, (u64, u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for t in source.tensors() {
        let e = m.entry(t.dtype.name().to_string()).or_default();
        e.0 += 1;
        e.1 += t.numel();
        e.2 += t.byte_len();
    }
    m
}

fn format_version(source: &WeightSource) -> Option<u64> {
    match source.details() {
        Details::Gguf(h) => h.first().map(|h| u64::from(h.version)),
        _ => None,
    }
}

/// Metadata as (key, JSON value) pairs; long arrays abbreviated to `max_items`.
fn metadata(source: &WeightSource, max_items: usize) -> Vec<(String, J)> {
    match source.details() {
        Details::Gguf(headers) => {
            let Some(h) = headers.first() else { return Vec::new() };
            let data = source.files()[0].bytes();
            h.metadata
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.to_json(data, max_items)))
                .collect()
        }
        Details::Safetensors(d) => {
            let mut out: Vec<(String, J)> = d
                .headers
                .iter()
                .flat_map(|h| h.metadata.iter().map(|(k, v)| (k.clone(), J::String(v.clone()))))
                .collect();
            out.dedup_by(|a, b| a.0 == b.0);
            if let Some(index) = source.shard_index() {
                for (k, v) in &index.metadata {
                    out.push((format!("index.{k}"), v.clone()));
                }
            }
            out
        }
        Details::Torch(d) => serde_json::to_value(d)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o.into_iter().collect())
            .unwrap_or_default(),
        Details::Numpy(d) => serde_json::to_value(d)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o.into_iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Gguf => "gguf",
        Format::Safetensors => "safetensors",
        Format::PytorchZip => "pytorch_zip",
        Format::PytorchLegacy => "pytorch_legacy",
        Format::Npy => "npy",
        Format::Npz => "npz",
        _ => "other",
    }
}

/// The `qload.inspect/1` JSON object for one source.
pub fn report_json(source: &WeightSource, with_values: bool, max_items: usize) -> J {
    let gguf = match source.details() {
        Details::Gguf(h) => Some(h),
        _ => None,
    };
    let tensors: Vec<J> = source
        .tensors()
        .iter()
        .map(|t| {
            let mut o = json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "parameters": t.numel(),
                "bytes": t.byte_len(),
                "offset": t.bytes.start,
                "file": t.file,
                "contiguous": t.is_contiguous(),
            });
            if let Some(headers) = gguf {
                let flavor = headers
                    .get(t.file)
                    .map(|h| h.flavor)
                    .unwrap_or(qload_formats::GgmlFlavor::Upstream);
                o["ne"] = json!(t.ggml_ne());
                o["type_id"] = json!(t.dtype.ggml_id(flavor));
                if let Some(h) = headers.get(t.file) {
                    o["relative_offset"] = json!(t.bytes.start - h.data_offset);
                }
            }
            if let Some(v) = &t.view {
                o["storage"] = json!({
                    "key": v.key,
                    "offset": v.offset,
                    "strides": v.strides,
                    "bytes": [v.storage_bytes.start, v.storage_bytes.end],
                });
            }
            o
        })
        .collect();
    let meta = metadata(source, max_items);
    let mut out = json!({
        "schema": "qload.inspect/1",
        "files": source.files().iter().map(|f| f.path().display().to_string()).collect::<Vec<_>>(),
        "format": format_name(source.format()),
        "version": format_version(source),
        "tensor_count": source.tensors().len(),
        "parameter_count": source.parameter_count(),
        "tensor_bytes": source.tensors().iter().map(|t| t.byte_len()).sum::<u64>(),
        "bytes_per_dtype": per_dtype(source).into_iter().map(|(k, (n, p, b))| (k, json!({"tensors": n, "parameters": p, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        "notes": source.notes(),
        "aliases": source.aliases().iter().map(|(a, t)| json!({"name": a, "target": t})).collect::<Vec<_>>(),
        "metadata_keys": meta.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        "tensors": tensors,
    });
    if let Some(h) = gguf.and_then(|h| h.first()) {
        out["gguf"] = json!({
            "alignment": h.alignment,
            "data_offset": h.data_offset,
            "type_ids": match h.flavor { qload_formats::GgmlFlavor::Upstream => "upstream", qload_formats::GgmlFlavor::Bitnet => "bitnet" },
            "architecture": h.architecture(),
        });
    }
    if with_values {
        out["metadata"] = J::Object(meta.into_iter().collect());
    }
    out
}

/// The human report for one source.
pub fn report_text(
    source: &WeightSource,
    with_values: bool,
    max_items: usize,
    found: &Result<Detection, String>,
) -> String {
    let mut s = String::new();
    let files: Vec<String> = source.files().iter().map(|f| f.path().display().to_string()).collect();
    let _ = writeln!(s, "file:        {}", files.join(", "));
    let version = format_version(source).map(|v| format!(" v{v}")).unwrap_or_default();
    let total_bytes: u64 = source.tensors().iter().map(|t| t.byte_len()).sum();
    let _ = writeln!(
        s,
        "format:      {}{version}, {} file(s)",
        source.format().name(),
        source.files().len()
    );
    let _ = writeln!(
        s,
        "tensors:     {} ({} parameters, {})",
        source.tensors().len(),
        human_count(source.parameter_count()),
        human_bytes(total_bytes)
    );
    if let Details::Gguf(h) = source.details()
        && let Some(h) = h.first()
    {
        let _ = writeln!(
            s,
            "gguf:        architecture {}, alignment {}, data at byte {}",
            h.architecture().unwrap_or("?"),
            h.alignment,
            h.data_offset
        );
    }
    for note in source.notes() {
        let _ = writeln!(s, "note:        {note}");
    }
    for (alias, target) in source.aliases() {
        let _ = writeln!(s, "alias:       {alias} -> {target}");
    }
    let _ = writeln!(s, "by dtype:");
    for (dtype, (n, p, b)) in per_dtype(source) {
        let _ = writeln!(
            s,
            "  {dtype:<8} {n:>6} tensors {:>12} params {:>12}",
            human_count(p),
            human_bytes(b)
        );
    }
    let meta = metadata(source, max_items);
    if with_values {
        let _ = writeln!(s, "metadata ({} keys):", meta.len());
        for (k, v) in &meta {
            let _ = writeln!(s, "  {k} = {v}");
        }
    } else if !meta.is_empty() {
        let keys: Vec<&str> = meta.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(
            s,
            "metadata:    {} keys (--metadata prints values): {}",
            keys.len(),
            abbreviate(&keys, 8)
        );
    }
    let empty = Detection::default();
    let found = match found {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(
                s,
                "note:        pre-quantized weights not assembled ({e}); raw keys below"
            );
            &empty
        }
    };
    if !found.is_empty() {
        let mut libs: Vec<&str> = found.weights.iter().map(|w| w.library.name()).collect();
        libs.dedup();
        let keys: usize = found.weights.iter().map(|w| w.keys.len()).sum();
        let _ = writeln!(
            s,
            "prequant:    {} weights from {} ({keys} keys; --raw lists them)",
            found.weights.len(),
            libs.join(", ")
        );
        for f in &found.config.files {
            let _ = writeln!(s, "config:      {}", f.display());
        }
        for w in &found.warnings {
            let _ = writeln!(s, "warning:     {w}");
        }
    }
    struct Row {
        name: String,
        kind: String,
        shape: String,
        bytes: u64,
        offset: u64,
        flags: String,
    }
    let mut rows = Vec::new();
    for (i, t) in source.tensors().iter().enumerate() {
        if let Some(w) = found.owner_of(i) {
            if found.is_data_part(source, i) {
                rows.push(Row {
                    name: w.name.clone(),
                    kind: w.scheme.label(),
                    shape: format!("{:?}", w.shape),
                    bytes: w.stored_bytes(source),
                    offset: t.bytes.start,
                    flags: String::new(),
                });
            }
            continue;
        }
        let mut flags = String::new();
        if source.files().len() > 1 {
            let _ = write!(flags, "  file {}", t.file);
        }
        if !t.is_contiguous() {
            flags.push_str("  non-contiguous");
        }
        if let Some(v) = &t.view {
            let _ = write!(flags, "  storage {}+{}", v.key, v.offset);
        }
        rows.push(Row {
            name: t.name.clone(),
            kind: t.dtype.name().to_string(),
            shape: format!("{:?}", t.shape),
            bytes: t.byte_len(),
            offset: t.bytes.start,
            flags,
        });
    }
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let kind_w = rows.iter().map(|r| r.kind.len()).max().unwrap_or(8).max(8);
    let shape_w = rows.iter().map(|r| r.shape.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "{:<name_w$}  {:<kind_w$}  {:<shape_w$}  {:>12}  {:>12}",
        "NAME", "DTYPE", "SHAPE", "BYTES", "OFFSET"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<name_w$}  {:<kind_w$}  {:<shape_w$}  {:>12}  {:>12}{}",
            r.name, r.kind, r.shape, r.bytes, r.offset, r.flags
        );
    }
    s
}

fn abbreviate(items: &[&str], n: usize) -> String {
    if items.len() <= n {
        items.join(", ")
    } else {
        format!("{}, ... ({} more)", items[..n].join(", "), items.len() - n)
    }
}
