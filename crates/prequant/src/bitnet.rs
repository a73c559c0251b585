//! transformers' BitNet b1.58 (`quant_method = "bitnet"`): a linear weight is a u8
//! `<module>.weight` of shape `[out/4, in]` (four ternary codes per byte along the rows)
//! beside a one-element `<module>.weight_scale` in the model dtype. The saved
//! `linear_class` says what the scale does: `BitLinear` (`"bitlinear"`, the default)
//! divides its output by it, `AutoBitLinear` (`"autobitlinear"`) multiplies. With
//! `quantization_mode = "online"` weights are stored in float and quantized at run
//! time, so none is packed.

use qload_formats::DType;
use qload_quant_core::prequant::BitnetScale;
use serde_json::Value;

use crate::{Cx, Library, PartRef, QuantizedWeight, Result, Scheme, model_shape, weight_err};

const SCALE: &str = ".weight_scale";

pub(crate) fn detect(cx: &Cx<'_>, out: &mut Vec<QuantizedWeight>, warnings: &mut Vec<String>) -> Result<()> {
    let qc = cx
        .cfg
        .quantization_config
        .as_ref()
        .filter(|q| q.get("quant_method").and_then(Value::as_str) == Some("bitnet"));
    let asked = cx.req.library == Some(Library::Bitnet);
    let saved_class = qc.and_then(|q| q.get("linear_class")).and_then(Value::as_str);
    let asked_class = cx.req.mode.as_deref().filter(|_| asked);
    let online = qc.and_then(|q| q.get("quantization_mode")).and_then(Value::as_str) == Some("online");
    let class = match (qc, saved_class, asked_class) {
        (_, Some(saved), Some(a)) if saved != a => {
            warnings.push(format!(
                "config.json's quantization_config says linear_class={saved:?}, you asked for {a:?}: using {saved:?}"
            ));
            Some(saved)
        }
        (_, Some(saved), _) => Some(saved),
        // transformers' BitNetConfig default.
        (Some(_), None, None) => Some("bitlinear"),
        (_, None, a) => a,
    };
    for t in cx.src.tensors() {
        let Some(module) = t.name.strip_suffix(SCALE) else {
            continue;
        };
        let name = format!("{module}.weight");
        let Some(w) = cx.src.tensor(&name) else {
            continue;
        };
        if w.dtype != DType::U8 {
            // A float weight beside its scale (online mode, or another format's scale).
            continue;
        }
        if qc.is_none() && !asked {
            return Err(weight_err(
                &name,
                "is a u8 weight with a weight_scale, as transformers stores BitNet b1.58 weights, but no config.json says quant_method \"bitnet\"; pass --prequant bitnet,mode=bitlinear (BitLinear divides by the scale) or mode=autobitlinear (AutoBitLinear multiplies)",
            ));
        }
        if online {
            return Err(weight_err(
                &name,
                "is packed (u8), but the config's quantization_mode is \"online\", whose weights are stored in float",
            ));
        }
        let scale = match class {
            Some("bitlinear") => BitnetScale::Divide,
            Some("autobitlinear") => BitnetScale::Multiply,
            Some(other) => {
                return Err(weight_err(
                    &name,
                    format!("linear_class {other:?} is not one qload knows (bitlinear, autobitlinear)"),
                ));
            }
            None => {
                return Err(weight_err(
                    &name,
                    "the linear class is unknown: pass --prequant bitnet,mode=bitlinear or mode=autobitlinear",
                ));
            }
        };
        if t.numel() != 1 || !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(weight_err(
                &t.name,
                format!(
                    "a BitNet weight_scale is one float; this one is {} {:?}",
                    t.dtype, t.shape
                ),
            ));
        }
        let [packed_rows, cols] = w.shape[..] else {
            return Err(weight_err(
                &name,
                format!("a packed BitNet weight is 2-D; this one is {:?}", w.shape),
            ));
        };
        let rows = packed_rows
            .checked_mul(4)
            .ok_or_else(|| weight_err(&name, "its row count overflows"))?;
        if let Some(want) = model_shape(cx.cfg, &name)
            && want != [rows, cols]
        {
            return Err(weight_err(
                &name,
                format!("unpacks to [{rows}, {cols}] (four rows per byte), but config.json implies {want:?}"),
            ));
        }
        let data = cx.part(&name, &name)?;
        let mut weight = QuantizedWeight::new(
            name.clone(),
            Library::Bitnet,
            Scheme::Bitnet { scale, dtype: t.dtype },
            vec![rows, cols],
            data,
            vec![name, t.name.clone()],
        );
        weight.scales = cx.index(&t.name).map(|tensor| PartRef { tensor, retype: None });
        out.push(weight);
    }
    Ok(())
}
