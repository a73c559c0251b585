//! HQQ: `<module>.W_q` with `scale`, `zero` and the meta fields that hqq's
//! `encoded_state_dict` stores as small tensors (`nbits`, `group_size`, `shape`,
//! `axis`, `packing`, `compute_dtype`, `view_as_float`, …). The same keys under
//! `<module>.meta.` are accepted too.

use qload_formats::DType;

use crate::{Cx, Library, PartRef, QuantizedWeight, Result, Scheme, meta, weight_err};

/// Meta fields hqq stores beside `W_q`; all are consumed by the weight.
const META: &[&str] = &[
    "nbits",
    "group_size",
    "shape",
    "axis",
    "packing",
    "unpack_view_dtype",
    "view_as_float",
    "quant_scale",
    "quant_zero",
    "compute_dtype",
    "offload_meta",
    "encoded_state_dict",
    "stores_quant_config",
    "channel_wise",
    "optimize",
    "round_zero",
];

pub(crate) fn detect(cx: &Cx<'_>, out: &mut Vec<QuantizedWeight>, warnings: &mut Vec<String>) -> Result<()> {
    let _ = warnings;
    for t in cx.src.tensors() {
        let Some(module) = t.name.strip_suffix(".W_q") else {
            continue;
        };
        let name = format!("{module}.weight");
        // A field is `<module>.<f>` or `<module>.meta.<f>`.
        let key = |f: &str| -> String {
            let direct = format!("{module}.{f}");
            if cx.src.tensor(&direct).is_some() {
                direct
            } else {
                format!("{module}.meta.{f}")
            }
        };
        let int = |f: &str| meta::int(cx.src, &key(f));
        let need = |f: &str, v: Option<i64>| {
            v.ok_or_else(|| weight_err(&name, format!("HQQ field {f:?} is missing ({:?})", key(f))))
        };
        let nbits = need("nbits", int("nbits")?)?;
        let group_size = need("group_size", int("group_size")?)?;
        let axis = need("axis", int("axis")?)?;
        let shape =
            meta::ints(cx.src, &key("shape"))?.ok_or_else(|| weight_err(&name, "HQQ field \"shape\" is missing"))?;
        for f in ["quant_scale", "quant_zero", "offload_meta"] {
            if int(f)?.unwrap_or(0) != 0 {
                return Err(weight_err(
                    &name,
                    format!("HQQ with {f}=True (quantized or offloaded meta data) is not supported"),
                ));
            }
        }
        let dtype = match meta::string(cx.src, &key("compute_dtype"))? {
            Some(s) => {
                meta::torch_float(&s).ok_or_else(|| weight_err(&name, format!("unknown HQQ compute_dtype {s:?}")))?
            }
            None => DType::F16,
        };
        let packing = meta::string(cx.src, &key("packing"))?;
        let expected_packing = match nbits {
            1 => "1bit_u8",
            2 => "2bit_u8",
            3 => "3bit_32",
            4 => "4bit_u8",
            8 => "8bit_u8",
            n => return Err(weight_err(&name, format!("HQQ nbits={n} is not one of 1, 2, 3, 4, 8"))),
        };
        if let Some(p) = &packing
            && p != expected_packing
        {
            return Err(weight_err(
                &name,
                format!("HQQ packing {p:?} does not match nbits={nbits} (expected {expected_packing:?})"),
            ));
        }
        let packed_dtype = if nbits == 3 { DType::I32 } else { DType::U8 };
        let mut data = PartRef {
            tensor: cx.index(&t.name).unwrap_or(0),
            retype: None,
        };
        if int("view_as_float")?.unwrap_or(0) != 0 {
            let view = match meta::string(cx.src, &key("unpack_view_dtype"))? {
                Some(s) => match s.trim_start_matches("torch.") {
                    "uint8" => DType::U8,
                    "int32" => DType::I32,
                    other => return Err(weight_err(&name, format!("unknown HQQ unpack_view_dtype {other:?}"))),
                },
                None => packed_dtype,
            };
            let from = t.dtype.element_size().unwrap_or(0);
            let to = view.element_size().unwrap_or(1);
            let mut s = t.shape.clone();
            match s.last_mut() {
                Some(last) if from > 0 && (*last * from).is_multiple_of(to) => *last = *last * from / to,
                _ => {
                    return Err(weight_err(
                        &name,
                        format!("W_q {} {:?} cannot be viewed as {view}", t.dtype, t.shape),
                    ));
                }
            }
            data.retype = Some((view, s));
        }
        let to_u =
            |v: i64, what: &str| u64::try_from(v).map_err(|_| weight_err(&name, format!("HQQ {what}={v} is negative")));
        let shape = shape.iter().map(|&d| to_u(d, "shape")).collect::<Result<Vec<u64>>>()?;
        let scheme = Scheme::Hqq {
            nbits: nbits as u8,
            group_size: to_u(group_size, "group_size")? as usize,
            axis: match axis {
                0 => 0,
                1 => 1,
                a => return Err(weight_err(&name, format!("HQQ axis={a} is not 0 or 1"))),
            },
            dtype,
        };
        let mut keys = vec![t.name.clone()];
        keys.extend(cx.existing(["scale", "zero"].into_iter().map(key)));
        keys.extend(cx.existing(META.iter().map(|f| key(f))));
        out.push(QuantizedWeight {
            scales: Some(cx.part(&key("scale"), &name)?),
            offsets: Some(cx.part(&key("zero"), &name)?),
            ..QuantizedWeight::new(name.clone(), Library::Hqq, scheme, shape, data, keys)
        });
    }
    Ok(())
}
