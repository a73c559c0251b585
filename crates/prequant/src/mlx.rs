//! MLX / mlx-lm: `<module>.weight` (u32 words) beside `<module>.scales` and, for the
//! affine mode, `<module>.biases`. Bits, group size and mode come from `config.json`'s
//! `quantization` entry (with per-module overrides keyed by module path), else from
//! the request, else from the shapes when only one setting fits them.

use qload_formats::DType;
use serde_json::Value;

use crate::{Cx, Library, MlxFloatMode, QuantizedWeight, Result, Scheme, weight_err};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    bits: u8,
    group: usize,
    mode: String,
}

fn from_json(v: &Value) -> Option<(Option<u8>, Option<usize>, Option<String>)> {
    let o = v.as_object()?;
    Some((
        o.get("bits").and_then(Value::as_u64).map(|b| b as u8),
        o.get("group_size").and_then(Value::as_u64).map(|g| g as usize),
        o.get("mode").and_then(Value::as_str).map(str::to_string),
    ))
}

/// The saved setting for `module`: a per-module entry, else the global one.
fn saved(cx: &Cx<'_>, module: &str) -> Option<(Option<u8>, Option<usize>, Option<String>)> {
    let q = cx.cfg.mlx_quantization.as_ref().or_else(|| {
        cx.cfg
            .quantization_config
            .as_ref()
            .filter(|q| q.get("quant_method").is_none() && q.get("bits").is_some())
    })?;
    if let Some(per) = q.get(module).and_then(from_json) {
        return Some(per);
    }
    from_json(q)
}

pub(crate) fn detect(cx: &Cx<'_>, out: &mut Vec<QuantizedWeight>, warnings: &mut Vec<String>) -> Result<()> {
    let mut warned = false;
    for t in cx.src.tensors() {
        let Some(module) = t.name.strip_suffix(".scales") else {
            continue;
        };
        let name = format!("{module}.weight");
        let Some(w) = cx.src.tensor(&name) else {
            continue;
        };
        if w.dtype != DType::U32 {
            continue; // not an MLX packed weight (quanto and others use other keys)
        }
        let biases_key = format!("{module}.biases");
        let biases = cx.src.tensor(&biases_key);
        let (Some(&packed), Some(&groups)) = (w.shape.last(), t.shape.last()) else {
            return Err(weight_err(
                &name,
                "an MLX quantized weight needs at least one dimension",
            ));
        };
        let fits = |s: &Setting| -> bool {
            let cols = packed * 32;
            s.bits > 0 && cols.is_multiple_of(s.bits as u64) && cols / s.bits as u64 == groups * s.group as u64
        };
        let float_mode = biases.is_none();
        let saved = saved(cx, module);
        let asked = (cx.req.bits, cx.req.group_size, cx.req.mode.clone());
        let setting = if let Some((b, g, m)) = saved.clone() {
            let mode = m.unwrap_or_else(|| "affine".into());
            let (b, g) = match mode.as_str() {
                "affine" => (b.unwrap_or(4), g.unwrap_or(64)),
                "mxfp4" => (b.unwrap_or(4), g.unwrap_or(32)),
                "mxfp8" => (b.unwrap_or(8), g.unwrap_or(32)),
                "nvfp4" => (b.unwrap_or(4), g.unwrap_or(16)),
                other => return Err(weight_err(&name, format!("unknown MLX quantization mode {other:?}"))),
            };
            let s = Setting {
                bits: b,
                group: g,
                mode,
            };
            if !warned
                && (asked.0.is_some_and(|x| x != s.bits)
                    || asked.1.is_some_and(|x| x != s.group)
                    || asked.2.as_ref().is_some_and(|x| *x != s.mode))
            {
                warnings.push(format!(
                    "the checkpoint's MLX quantization ({} bits, group {}, {}) differs from what you asked: using the saved one",
                    s.bits, s.group, s.mode
                ));
                warned = true;
            }
            s
        } else {
            let modes: &[&str] = if float_mode {
                &["mxfp4", "mxfp8", "nvfp4"]
            } else {
                &["affine"]
            };
            let mut candidates = Vec::new();
            for &mode in modes {
                let (bits_range, groups_range): (Vec<u8>, Vec<usize>) = match mode {
                    "affine" => ((1..=8).collect(), vec![32, 64, 128]),
                    "mxfp4" => (vec![4], vec![32]),
                    "mxfp8" => (vec![8], vec![32]),
                    _ => (vec![4], vec![16]),
                };
                for &bits in &bits_range {
                    for &group in &groups_range {
                        let s = Setting {
                            bits,
                            group,
                            mode: mode.to_string(),
                        };
                        let asked_ok = asked.0.is_none_or(|b| b == bits)
                            && asked.1.is_none_or(|g| g == group)
                            && asked.2.as_ref().is_none_or(|m| m == mode);
                        if fits(&s) && asked_ok {
                            candidates.push(s);
                        }
                    }
                }
            }
            match candidates.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(weight_err(
                        &name,
                        format!(
                            "no MLX setting{} fits its shapes (weight {:?}, scales {:?})",
                            if asked == (None, None, None) {
                                ""
                            } else {
                                " matching your request"
                            },
                            w.shape,
                            t.shape
                        ),
                    ));
                }
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .map(|s| format!("bits={},group={}", s.bits, s.group))
                        .collect();
                    return Err(weight_err(
                        &name,
                        format!(
                            "the MLX bits and group size are not saved (no config.json with a \"quantization\" entry) and several fit the shapes: {}; put the model's config.json beside it or say which (e.g. --prequant mlx,{})",
                            list.join(", "),
                            list.iter().find(|s| *s == "bits=4,group=64").unwrap_or(&list[0])
                        ),
                    ));
                }
            }
        };
        if !fits(&setting) {
            return Err(weight_err(
                &name,
                format!(
                    "the MLX setting ({} bits, group {}) does not fit its shapes (weight {:?}, scales {:?})",
                    setting.bits, setting.group, w.shape, t.shape
                ),
            ));
        }
        let cols = packed * 32 / setting.bits as u64;
        let mut shape = w.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = cols;
        }
        let scheme = match setting.mode.as_str() {
            "affine" => {
                let Some(b) = biases else {
                    return Err(weight_err(&name, format!("an MLX affine weight needs {biases_key:?}")));
                };
                Scheme::MlxAffine {
                    bits: setting.bits,
                    group_size: setting.group,
                    dtype: b.dtype,
                }
            }
            mode => Scheme::MlxFloat {
                mode: match mode {
                    "mxfp4" => MlxFloatMode::Mxfp4,
                    "mxfp8" => MlxFloatMode::Mxfp8,
                    _ => MlxFloatMode::Nvfp4,
                },
                group_size: setting.group,
                // mx.dequantize returns bfloat16 for the floating-point modes (u8 scales).
                dtype: DType::BF16,
            },
        };
        let mut keys = vec![name.clone(), t.name.clone()];
        keys.extend(cx.existing([biases_key.clone()]));
        out.push(QuantizedWeight {
            scales: Some(cx.part(&t.name, &name)?),
            offsets: cx.opt_part(&biases_key),
            ..QuantizedWeight::new(name.clone(), Library::Mlx, scheme, shape, cx.part(&name, &name)?, keys)
        });
    }
    Ok(())
}
