//! bitsandbytes: 4-bit NF4/FP4 (`Linear4bit`, `quantize_4bit`, with or without double
//! quantization of the absmax) and LLM.int8 (`Linear8bitLt`).
//!
//! 4-bit, as `dequantize_4bit` on CPU (checked against bitsandbytes 0.50.2):
//! `absmax'[b] = nested_code[absmax[b]] · nested_absmax[b / nested_blocksize] +
//! nested_offset` (f32, rounded after the product and after the sum) when
//! double-quantized, `w[j] = code[nibble_j] · absmax'[j / blocksize]` in f32, cast to
//! the quant state's dtype; element `2i` is the high nibble of byte `i`. FP4 takes
//! its sign from bit 3 of the code (`code[8 + k] = −code[k]`; the stored `quant_map`
//! has +0.0 at 8, bitsandbytes gives −0.0). Blocks run
//! over the flattened weight, so they may straddle rows.
//!
//! int8: `w = (q · SCB[row]) · 7.874015718698502e-3` in f32 (`int8_vectorwise_dequant`;
//! dividing by 127 instead differs by one ulp now and then).

use qload_dtype::DType;

use super::common::{FLOATS, Floats, Round, bad, check, require, runs};
use super::lut4::Lut4;
use super::{Bnb4Kind, Parts};
use crate::QuantError;

/// 1/127 as bitsandbytes writes it (`7.874015718698502e-3`, an f32 constant).
const INV_127: f32 = 7.874_016e-3;

/// Checks the parts of a 4-bit weight of `numel` elements.
pub(super) fn validate_4bit(
    blocksize: usize,
    nested_blocksize: Option<usize>,
    dtype: DType,
    numel: usize,
    p: &Parts<'_>,
) -> Result<(), QuantError> {
    if blocksize == 0 {
        return Err(bad("scheme", "bnb blocksize 0"));
    }
    if !FLOATS.contains(&dtype) {
        return Err(bad("scheme", format!("bnb dtype {dtype} (expected F16, BF16 or F32)")));
    }
    check(require(&p.data, "data")?, "data", &[DType::U8], numel.div_ceil(2))?;
    check(require(&p.code, "code")?, "code", &[DType::F32], 16)?;
    let blocks = numel.div_ceil(blocksize);
    match nested_blocksize {
        None => {
            check(require(&p.scales, "scales")?, "scales", &[DType::F32], blocks)?;
            for (part, name) in [(&p.nested_scales, "nested_scales"), (&p.nested_code, "nested_code")] {
                if part.is_some() {
                    return Err(bad(name, "given, but the scheme has no double quantization"));
                }
            }
        }
        Some(0) => return Err(bad("scheme", "bnb nested blocksize 0")),
        Some(nb) => {
            check(require(&p.scales, "scales")?, "scales", &[DType::U8], blocks)?;
            check(
                require(&p.nested_scales, "nested_scales")?,
                "nested_scales",
                &[DType::F32],
                blocks.div_ceil(nb),
            )?;
            check(
                require(&p.nested_code, "nested_code")?,
                "nested_code",
                &[DType::F32],
                256,
            )?;
        }
    }
    Ok(())
}

/// Checks the parts of an LLM.int8 weight.
pub(super) fn validate_int8(rows: usize, numel: usize, p: &Parts<'_>) -> Result<(), QuantError> {
    check(require(&p.data, "data")?, "data", &[DType::I8], numel)?;
    check(require(&p.scales, "scales")?, "scales", &[DType::F32], rows)
}

/// A validated 4-bit weight.
pub(super) struct Bnb4<'a> {
    pub data: &'a [u8],
    pub code: [f32; 16],
    pub scales: &'a [u8],
    pub nested: Option<(usize, Floats<'a>, [f32; 256], f32)>,
    pub blocksize: usize,
    pub round: Round,
}

impl<'a> Bnb4<'a> {
    /// Views validated parts.
    pub(super) fn new(
        kind: Bnb4Kind,
        blocksize: usize,
        nested_blocksize: Option<usize>,
        dtype: DType,
        p: &Parts<'a>,
    ) -> Option<Self> {
        let f32s = |part: &super::Part<'a>| Floats::new(part);
        let code_p = f32s(p.code.as_ref()?);
        let nested = match nested_blocksize {
            None => None,
            Some(nb) => {
                let nc = f32s(p.nested_code.as_ref()?);
                Some((
                    nb,
                    f32s(p.nested_scales.as_ref()?),
                    std::array::from_fn(|i| nc.get(i)),
                    p.nested_offset,
                ))
            }
        };
        let mut code: [f32; 16] = std::array::from_fn(|i| code_p.get(i));
        if kind == Bnb4Kind::Fp4 {
            // bitsandbytes decodes FP4 with its built-in table (`dDequantizeFP4`), the
            // sign taken from bit 3: code 8 is −0.0, where `quant_map` stores +0.0.
            for k in 8..16 {
                code[k] = -code[k - 8];
            }
        }
        Some(Bnb4 {
            data: p.data.as_ref()?.bytes,
            code,
            scales: p.scales.as_ref()?.bytes,
            nested,
            blocksize,
            round: Round::of(dtype)?,
        })
    }

    /// The (dequantized) absmax of block `b`.
    #[inline]
    pub(super) fn absmax(&self, b: usize) -> f32 {
        match &self.nested {
            None => self
                .scales
                .get(4 * b..4 * b + 4)
                .map_or(f32::NAN, |s| f32::from_le_bytes([s[0], s[1], s[2], s[3]])),
            Some((nb, nested_absmax, nested_code, offset)) => {
                let q = self.scales.get(b).copied().unwrap_or(0) as usize;
                nested_code[q] * nested_absmax.get(b / nb) + offset
            }
        }
    }

    /// The specification: elements `e0 ..` into `out`.
    pub(super) fn decode(&self, e0: usize, out: &mut [f32]) {
        for (block, off, run) in runs(e0, out.len(), self.blocksize) {
            let a = self.absmax(block);
            for (j, o) in run.zip(out[off..].iter_mut()) {
                let byte = self.data.get(j / 2).copied().unwrap_or(0);
                let nib = if j % 2 == 0 { byte >> 4 } else { byte & 0x0f };
                *o = self.round.apply(self.code[nib as usize] * a);
            }
        }
    }

    /// The table-lookup description of this weight.
    pub(super) fn lut(&self) -> Lut4 {
        Lut4 {
            base: self.code,
            round: self.round,
            affine: false,
            hi_first: true,
        }
    }
}

/// LLM.int8: elements `e0 ..` of a weight with `cols` columns into `out`.
pub(super) fn decode_int8(p: &Parts<'_>, cols: usize, e0: usize, out: &mut [f32]) {
    let (Some(data), Some(scb)) = (&p.data, &p.scales) else {
        return;
    };
    let scb = Floats::new(scb);
    for (row, off, run) in runs(e0, out.len(), cols) {
        let s = scb.get(row);
        for (j, o) in run.zip(out[off..].iter_mut()) {
            let q = data.bytes.get(j).copied().unwrap_or(0) as i8;
            *o = (q as f32 * s) * INV_127;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inv_127_is_the_constant_bitsandbytes_uses() {
        assert_eq!(
            super::INV_127.to_bits(),
            (7.874_015_718_698_502e-3_f64 as f32).to_bits()
        );
    }
}
