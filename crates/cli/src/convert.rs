//! `qload convert`: load (with a quantization policy) and write a GGUF or a
//! safetensors file, atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use qload_formats::gguf::{GgufWriter, Value, write_file_atomic};
use qload_formats::{DType, Details};
use qload_loader::policy::{Mix, Policy};
use qload_loader::{LoadedModel, Loader};

use crate::ConvertArgs;

pub fn run(args: &ConvertArgs) -> Result<ExitCode> {
    let mut quant = args.quant.clone();
    if let Some(d) = &args.dtype {
        if !matches!(d.to_ascii_lowercase().as_str(), "f32" | "f16" | "bf16") {
            bail!("--dtype takes f32, f16 or bf16 (use --quantize for quantized types)");
        }
        quant.quantize = d.clone();
    }
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "gguf" && ext != "safetensors" {
        bail!(
            "{}: the output must end in .gguf or .safetensors",
            args.output.display()
        );
    }
    let loader = args
        .select
        .apply(quant.apply(Loader::new(&args.file).open_options(args.open.options()))?)?;
    let bar = crate::progress::Bar::new(args.select.quiet);
    let loaded = loader.progress(|e| bar.on_event(e)).load();
    bar.finish();
    let (model, report) = loaded.with_context(|| format!("cannot load {}", args.file.display()))?;
    let policy = quant.policy()?;
    if let Some(t) = model.tensors().iter().find(|t| t.scheme.is_some()) {
        let scheme = t.scheme.map(|s| s.label()).unwrap_or_default();
        bail!(
            "{}: a pre-quantized weight ({scheme}) cannot be written as it is stored; add --dtype f32|f16|bf16 to dequantize it, or --quantize TYPE to transcode it to a ggml type",
            t.name
        );
    }
    let written = if ext == "gguf" {
        write_gguf(&model, &policy, args)?
    } else {
        write_safetensors(&model, args)?
    };
    let wrote = format!("wrote {} ({})", args.output.display(), crate::human_bytes(written));
    args.select.report(&report, Some(wrote))?;
    Ok(ExitCode::SUCCESS)
}

/// llama.cpp's `general.file_type` for a policy, where one clearly applies.
fn file_type(policy: &Policy) -> Option<u32> {
    Some(match policy {
        Policy::Float(DType::F32) => 0,
        Policy::Float(DType::F16) => 1,
        Policy::Float(DType::BF16) => 32,
        Policy::Uniform(t) => match t {
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q8_0 => 7,
            DType::Q5_0 => 8,
            DType::Q5_1 => 9,
            DType::Q2K => 10,
            DType::Q3K => 11,
            DType::Q4K => 14,
            DType::Q5K => 16,
            DType::Q6K => 18,
            DType::IQ4NL => 25,
            DType::IQ4XS => 30,
            DType::TQ1_0 => 36,
            DType::TQ2_0 => 37,
            DType::I2S => 40, // microsoft/BitNet's MOSTLY_I2_S
            // microsoft/BitNet's converter writes the TL type ids themselves as the file type.
            DType::TL1 => 38,
            DType::TL2 => 39,
            _ => return None,
        },
        Policy::Mix(Mix::Q4KS) => 14,
        Policy::Mix(Mix::Q4KM) => 15,
        Policy::Mix(Mix::Q5KS) => 16,
        Policy::Mix(Mix::Q5KM) => 17,
        _ => return None,
    })
}

fn write_gguf(model: &LoadedModel, policy: &Policy, args: &ConvertArgs) -> Result<u64> {
    let source = model.source();
    let mut writer = match source.details() {
        Details::Gguf(headers) if !headers.is_empty() => {
            let mut w = GgufWriter::from_header(&headers[0], source.files()[0].bytes())?;
            for key in ["split.no", "split.count", "split.tensors.count"] {
                w.remove(key);
            }
            w
        }
        _ => {
            let mut w = GgufWriter::new();
            w.set(
                "general.architecture",
                Value::String(architecture(&args.file).unwrap_or_else(|| "unknown".into())),
            )?;
            let stem = args
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string();
            w.set("general.name", Value::String(stem))?;
            w
        }
    };
    if !matches!(policy, Policy::Keep) {
        match file_type(policy) {
            Some(ft) => writer.set("general.file_type", Value::U32(ft))?,
            None => writer.remove("general.file_type"),
        }
    }
    Ok(model.write_gguf_file(writer, &args.output)?)
}

/// `model_type` from a config.json beside the source (or in the source directory).
fn architecture(path: &std::path::Path) -> Option<String> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()?.to_path_buf()
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("model_type")?.as_str().map(String::from)
}

fn write_safetensors(model: &LoadedModel, args: &ConvertArgs) -> Result<u64> {
    let mut views = BTreeMap::new();
    for t in model.tensors() {
        let Some(name) = t.dtype.safetensors_name() else {
            bail!(
                "{}: safetensors cannot hold {} tensors; write a .gguf, or add --dtype f16|bf16|f32",
                t.name,
                t.dtype
            );
        };
        let dtype = safetensors_dtype(name).with_context(|| format!("{}: no safetensors dtype {name}", t.name))?;
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let view = safetensors::tensor::TensorView::new(dtype, shape, model.bytes(t))
            .map_err(|e| anyhow::anyhow!("{}: {e}", t.name))?;
        views.insert(t.name.clone(), view);
    }
    let mut total = 0u64;
    write_file_atomic(&args.output, |w: &mut dyn Write| {
        let bytes =
            safetensors::serialize(&views, None).map_err(|e| qload_formats::Error::Write { reason: e.to_string() })?;
        total = bytes.len() as u64;
        w.write_all(&bytes)
            .map_err(|e| qload_formats::Error::Write { reason: e.to_string() })
    })?;
    Ok(total)
}

fn safetensors_dtype(name: &str) -> Option<safetensors::Dtype> {
    use safetensors::Dtype as D;
    Some(match name {
        "BOOL" => D::BOOL,
        "U8" => D::U8,
        "I8" => D::I8,
        "I16" => D::I16,
        "U16" => D::U16,
        "F16" => D::F16,
        "BF16" => D::BF16,
        "I32" => D::I32,
        "U32" => D::U32,
        "F32" => D::F32,
        "F64" => D::F64,
        "I64" => D::I64,
        "U64" => D::U64,
        _ => return None,
    })
}
