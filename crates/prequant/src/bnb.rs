//! bitsandbytes: 4-bit weights (NF4/FP4, with or without double quantization) carry
//! their quant state as `<weight>.quant_state.bitsandbytes__<type>` (JSON bytes);
//! LLM.int8 weights are an i8 `<module>.weight` beside `<module>.SCB`.

use qload_formats::DType;
use serde_json::Value;

use crate::{Bnb4Kind, Cx, Library, QuantizedWeight, Result, Scheme, meta, weight_err};

const STATE_NF4: &str = ".quant_state.bitsandbytes__nf4";
const STATE_FP4: &str = ".quant_state.bitsandbytes__fp4";

pub(crate) fn detect(cx: &Cx<'_>, out: &mut Vec<QuantizedWeight>, warnings: &mut Vec<String>) -> Result<()> {
    let qc = cx.cfg.quantization_config.as_ref();
    let configured = qc
        .and_then(|q| q.get("bnb_4bit_quant_type"))
        .and_then(Value::as_str)
        .filter(|_| qc.and_then(|q| q.get("load_in_4bit")).and_then(Value::as_bool) != Some(false));
    let mut warned = false;
    for t in cx.src.tensors() {
        let (weight, kind) = if let Some(p) = t.name.strip_suffix(STATE_NF4) {
            (p, Bnb4Kind::Nf4)
        } else if let Some(p) = t.name.strip_suffix(STATE_FP4) {
            (p, Bnb4Kind::Fp4)
        } else {
            continue;
        };
        let state = meta::json(cx.src, &t.name)?.ok_or_else(|| weight_err(&t.name, "cannot be read"))?;
        let field = |k: &str| state.get(k);
        let quant_type = field("quant_type").and_then(Value::as_str).unwrap_or("");
        let kind_name = match kind {
            Bnb4Kind::Nf4 => "nf4",
            Bnb4Kind::Fp4 => "fp4",
        };
        if quant_type != kind_name {
            return Err(weight_err(
                &t.name,
                format!("the key says {kind_name} but the quant state says {quant_type:?}"),
            ));
        }
        if let Some(c) = configured
            && c != kind_name
            && !warned
        {
            warnings.push(format!(
                "config.json's quantization_config says bnb_4bit_quant_type={c:?}, the stored quant states say {kind_name:?}: using the stored ones"
            ));
            warned = true;
        }
        let blocksize = field("blocksize")
            .and_then(Value::as_u64)
            .ok_or_else(|| weight_err(&t.name, "has no integer blocksize"))?;
        let dtype = field("dtype")
            .and_then(Value::as_str)
            .and_then(meta::torch_float)
            .ok_or_else(|| weight_err(&t.name, format!("has an unknown dtype {:?}", field("dtype"))))?;
        let shape: Vec<u64> = field("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .filter(|s| !s.is_empty() && s.len() <= 8)
            .ok_or_else(|| weight_err(&t.name, "has no valid shape"))?;
        let nested_blocksize = field("nested_blocksize").and_then(Value::as_u64);
        let nested_offset = match (nested_blocksize, field("nested_offset")) {
            (None, _) => 0.0,
            (Some(_), Some(v)) => {
                v.as_f64()
                    .ok_or_else(|| weight_err(&t.name, "has a non-numeric nested_offset"))? as f32
            }
            (Some(_), None) => return Err(weight_err(&t.name, "is double-quantized but has no nested_offset")),
        };
        let scheme = Scheme::Bnb4 {
            kind,
            blocksize: usize::try_from(blocksize).map_err(|_| weight_err(&t.name, "blocksize overflows"))?,
            nested_blocksize: nested_blocksize
                .map(|b| usize::try_from(b).map_err(|_| weight_err(&t.name, "nested_blocksize overflows")))
                .transpose()?,
            dtype,
        };
        let name = weight.to_string();
        let mut keys = vec![name.clone()];
        keys.extend(
            cx.existing(["absmax", "quant_map", "nested_absmax", "nested_quant_map"].map(|s| format!("{weight}.{s}"))),
        );
        keys.push(t.name.clone());
        let nested = nested_blocksize.is_some();
        let nested_part = |suffix: &str| -> Result<_> {
            nested
                .then(|| cx.part(&format!("{weight}.{suffix}"), &name))
                .transpose()
        };
        let w = QuantizedWeight {
            scales: Some(cx.part(&format!("{weight}.absmax"), &name)?),
            code: Some(cx.part(&format!("{weight}.quant_map"), &name)?),
            nested_scales: nested_part("nested_absmax")?,
            nested_code: nested_part("nested_quant_map")?,
            nested_offset,
            ..QuantizedWeight::new(
                name.clone(),
                Library::Bitsandbytes,
                scheme,
                shape,
                cx.part(weight, &name)?,
                keys,
            )
        };
        out.push(w);
    }
    for t in cx.src.tensors() {
        let Some(module) = t.name.strip_suffix(".SCB") else {
            continue;
        };
        let name = format!("{module}.weight");
        let info = cx
            .src
            .tensor(&name)
            .ok_or_else(|| weight_err(&t.name, format!("has no {name:?} beside it")))?;
        if info.dtype != DType::I8 || info.shape.len() != 2 {
            return Err(weight_err(
                &name,
                format!(
                    "an LLM.int8 weight must be a 2-D i8 matrix, is {} {:?}",
                    info.dtype, info.shape
                ),
            ));
        }
        let format_key = format!("{module}.weight_format");
        if let Some(f) = meta::int(cx.src, &format_key)?
            && f != 0
        {
            return Err(weight_err(
                &name,
                format!("weight_format {f} (a GPU tile layout) is not supported; only the row-major format 0 is"),
            ));
        }
        let dtype = cx
            .src
            .tensor(&format!("{module}.bias"))
            .map(|b| b.dtype)
            .filter(|d| matches!(d, DType::F16 | DType::BF16 | DType::F32))
            .unwrap_or(DType::F16);
        let mut keys = vec![name.clone(), t.name.clone()];
        keys.extend(cx.existing([format_key]));
        let data = cx.part(&name, &name)?;
        out.push(QuantizedWeight {
            scales: Some(cx.part(&t.name, &name)?),
            ..QuantizedWeight::new(
                name,
                Library::Bitsandbytes,
                Scheme::BnbInt8 { dtype },
                info.shape.clone(),
                data,
                keys,
            )
        });
    }
    Ok(())
}
