//! optimum-quanto: `<module>.weight._data` (i8 / f8) or `<module>.weight._data._data`
//! (u8, packed qint2/qint4) with `<module>.weight._scale` and, for packed types,
//! `<module>.weight._shift`. The weight type comes from `quanto_qmap.json` (or
//! `<stem>_qmap.json`) or transformers' `quantization_config`, else from the dtypes
//! and shapes. The logical shape of a packed weight comes from the module's bias, or
//! from the layer sizes in `config.json`; quanto stores only the group matrix.

use qload_formats::DType;
use serde_json::Value;

use crate::{Cx, Library, QuantizedWeight, QuantoType, Result, Scheme, model_shape, weight_err};

fn parse_type(s: &str) -> Option<QuantoType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "qint2" | "int2" => Some(QuantoType::Qint2),
        "qint4" | "int4" => Some(QuantoType::Qint4),
        "qint8" | "int8" => Some(QuantoType::Qint8),
        "qfloat8" | "qfloat8_e4m3fn" | "float8" | "float8_e4m3fn" | "fp8" => Some(QuantoType::Qfloat8E4m3),
        _ => None,
    }
}

fn type_name(t: QuantoType) -> &'static str {
    match t {
        QuantoType::Qint2 => "qint2",
        QuantoType::Qint4 => "qint4",
        QuantoType::Qint8 => "qint8",
        QuantoType::Qfloat8E4m3 => "qfloat8_e4m3fn",
    }
}

/// The saved weight type for `module`.
fn saved(cx: &Cx<'_>, module: &str, name: &str) -> Result<Option<QuantoType>> {
    let from_qmap = cx
        .cfg
        .quanto_qmap
        .as_ref()
        .and_then(|m| m.get(module))
        .and_then(|e| e.get("weights"))
        .and_then(Value::as_str);
    let from_config = cx
        .cfg
        .quantization_config
        .as_ref()
        .filter(|q| q.get("quant_method").and_then(Value::as_str) == Some("quanto"))
        .and_then(|q| q.get("weights"))
        .and_then(Value::as_str);
    match from_qmap.or(from_config) {
        None => Ok(None),
        Some(s) => parse_type(s)
            .map(Some)
            .ok_or_else(|| weight_err(name, format!("unknown quanto weight type {s:?}"))),
    }
}

pub(crate) fn detect(cx: &Cx<'_>, out: &mut Vec<QuantizedWeight>, warnings: &mut Vec<String>) -> Result<()> {
    let mut warned = false;
    for t in cx.src.tensors() {
        let Some(module) = t.name.strip_suffix(".weight._scale") else {
            continue;
        };
        let name = format!("{module}.weight");
        let data_key = format!("{name}._data");
        let packed_key = format!("{name}._data._data");
        let shift_key = format!("{name}._shift");
        let (data_key, data) = if let Some(d) = cx.src.tensor(&packed_key) {
            (packed_key, d)
        } else if let Some(d) = cx.src.tensor(&data_key) {
            (data_key, d)
        } else {
            return Err(weight_err(&name, format!("quanto scale without {data_key:?}")));
        };
        let inferred = match data.dtype {
            DType::I8 => Some(QuantoType::Qint8),
            DType::F8E4M3 => Some(QuantoType::Qfloat8E4m3),
            DType::U8 => {
                // bits from the ratio of group rows (one scale each) to packed rows.
                let packed_rows = data.shape.first().copied().unwrap_or(0);
                let groups = t.numel();
                match (packed_rows > 0).then(|| groups / packed_rows) {
                    Some(2) if groups == 2 * packed_rows => Some(QuantoType::Qint4),
                    Some(4) if groups == 4 * packed_rows => Some(QuantoType::Qint2),
                    _ => None,
                }
            }
            _ => None,
        };
        let saved = saved(cx, module, &name)?;
        let asked = match &cx.req.mode {
            Some(m) if cx.req.library.is_none_or(|l| l == Library::Quanto) => parse_type(m),
            _ => None,
        };
        let qtype = match (saved, asked, inferred) {
            (Some(s), a, _) => {
                if let Some(a) = a
                    && a != s
                    && !warned
                {
                    warnings.push(format!(
                        "the checkpoint's quanto map says {}, you asked for {}: using {}",
                        type_name(s),
                        type_name(a),
                        type_name(s)
                    ));
                    warned = true;
                }
                s
            }
            (None, Some(a), _) => a,
            (None, None, Some(i)) => i,
            (None, None, None) => {
                return Err(weight_err(
                    &name,
                    format!("cannot tell the quanto weight type of {} {:?}", data.dtype, data.shape),
                ));
            }
        };
        if inferred.is_some_and(|i| i != qtype) {
            return Err(weight_err(
                &name,
                format!(
                    "is saved as {} but its data ({} {:?}) is {}",
                    type_name(qtype),
                    data.dtype,
                    data.shape,
                    type_name(inferred.unwrap_or(qtype))
                ),
            ));
        }
        let dtype = t.dtype;
        let (shape, group_size) = match qtype {
            QuantoType::Qint8 | QuantoType::Qfloat8E4m3 => (data.shape.clone(), None),
            QuantoType::Qint2 | QuantoType::Qint4 => {
                let groups = t.numel();
                let cols = data.shape.get(1).copied().unwrap_or(0);
                let total = groups.checked_mul(cols).unwrap_or(0);
                let out_features = match cx.src.tensor(&format!("{module}.bias")) {
                    Some(b) if b.shape.len() == 1 => Some(b.shape[0]),
                    _ => model_shape(cx.cfg, &name).map(|s| s[0]),
                };
                let out_features = match out_features {
                    Some(o) => o,
                    // quanto groups only rows longer than 128: a longer group row is a whole row.
                    None if cols > 128 => groups,
                    None => {
                        return Err(weight_err(
                            &name,
                            format!(
                                "quanto stores only the group matrix ({groups} × {cols}); its logical shape needs the module's bias or the layer sizes in config.json"
                            ),
                        ));
                    }
                };
                if out_features == 0 || total == 0 || !total.is_multiple_of(out_features) {
                    return Err(weight_err(
                        &name,
                        format!("{groups} groups of {cols} do not make rows of {out_features} outputs"),
                    ));
                }
                let in_features = total / out_features;
                let group = (in_features != cols).then_some(cols as usize);
                (vec![out_features, in_features], group)
            }
        };
        let mut keys = vec![data_key.clone(), t.name.clone()];
        keys.extend(cx.existing([shift_key.clone()]));
        let scheme = Scheme::Quanto {
            qtype,
            group_size,
            dtype,
        };
        out.push(QuantizedWeight {
            scales: Some(cx.part(&t.name, &name)?),
            offsets: cx.opt_part(&shift_key),
            ..QuantizedWeight::new(
                name.clone(),
                Library::Quanto,
                scheme,
                shape,
                cx.part(&data_key, &name)?,
                keys,
            )
        });
    }
    Ok(())
}
