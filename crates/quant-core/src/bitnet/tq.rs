//! Lossless conversion between ggml's ternary types TQ1_0 / TQ2_0 and I2_S.
//!
//! Both sides store codes `value + 1`; what differs is the scale: TQ has one f16
//! per 256-element block, I2_S one f32 per tensor.
//!
//! - **TQ → I2_S** is lossless when every block holding a nonzero value has the
//!   same scale (blocks of zeros may have any scale, their values do not depend on
//!   it); otherwise [`BitnetError::ScaleMismatch`]. The I2_S scale is that common
//!   scale (exact: f16 ⊂ f32), or 0 when every value is 0 (as bitnet.cpp's
//!   `quantize_i2_s` writes for a zero tensor). TQ2_0's code 3 (value +2, never
//!   written by ggml's quantizer) maps to I2_S code 3, which means +2 there too.
//! - **I2_S → TQ** writes the I2_S scale as each nonzero block's `d` and 0 for
//!   blocks of zeros — exactly what ggml's `quantize_row_tq*_0_ref` writes for the
//!   dequantized tensor. The f32 scale must be an f16 value under
//!   [`ScalePolicy::Exact`]; [`ScalePolicy::RoundToF16`] rounds it to the nearest
//!   f16 (relative error ≤ 2⁻¹¹, the codes unchanged). TQ1_0 cannot hold code 3.
//!
//! Elements are taken in flat (row-major) order, so the TQ row length must be a
//! multiple of 256 (a ggml requirement) and the element count is the block count
//! × 256.

use super::BitnetError;
use super::error::check_len;
use super::i2s::{self, I2sLayout, I2sRef};
use super::ternary::{Granularity, Ternary};
use crate::ggml::blocks::{BlockTQ1_0, BlockTQ2_0};
use bytemuck::{cast_slice, cast_slice_mut};
use half::f16;
use qload_dtype::DType;

const QK: usize = 256;
const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

/// What to do with an I2_S scale that f16 cannot hold exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalePolicy {
    /// Refuse ([`BitnetError::ScaleNotRepresentable`]).
    #[default]
    Exact,
    /// Round to the nearest f16 (ties to even).
    RoundToF16,
}

/// Trit `n` (0 = most significant) of a byte holding 5 trits as a fixed-point
/// fraction of 243 (ggml's TQ1_0 encoding).
#[inline(always)]
fn trit(byte: u8, n: usize) -> u8 {
    ((byte.wrapping_mul(POW3[n]) as u16 * 3) >> 8) as u8
}

#[inline(always)]
fn pack_trits(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// The raw codes (0..=2) of a TQ1_0 block, in element order.
fn tq1_codes(b: &BlockTQ1_0, out: &mut [u8]) {
    let mut o = 0;
    for (start, width) in [(0usize, 32usize), (32, 16)] {
        for n in 0..5 {
            for m in 0..width {
                out[o] = trit(b.qs[start + m], n);
                o += 1;
            }
        }
    }
    for n in 0..4 {
        for j in 0..4 {
            out[o] = trit(b.qh[j], n);
            o += 1;
        }
    }
}

/// The raw codes (0..=3) of a TQ2_0 block, in element order.
fn tq2_codes(b: &BlockTQ2_0, out: &mut [u8]) {
    for half in 0..2 {
        for l in 0..4 {
            for m in 0..32 {
                out[half * 128 + l * 32 + m] = (b.qs[half * 32 + m] >> (2 * l)) & 3;
            }
        }
    }
}

fn tq1_pack(c: &[u8], d: [u8; 2], b: &mut BlockTQ1_0) {
    let mut base = 0;
    for (start, width) in [(0usize, 32usize), (32, 16)] {
        for m in 0..width {
            let mut q = 0u8;
            for n in 0..5 {
                q = q * 3 + c[base + m + n * width];
            }
            b.qs[start + m] = pack_trits(q);
        }
        base += 5 * width;
    }
    for j in 0..4 {
        let mut q = 0u8;
        for m in 0..4 {
            q = q * 3 + c[base + j + m * 4];
        }
        b.qh[j] = pack_trits(q * 3);
    }
    b.d = d;
}

fn tq2_pack(c: &[u8], d: [u8; 2], b: &mut BlockTQ2_0) {
    for half in 0..2 {
        for m in 0..32 {
            let mut q = 0u8;
            for l in 0..4 {
                q |= (c[half * 128 + l * 32 + m] & 3) << (2 * l);
            }
            b.qs[half * 32 + m] = q;
        }
    }
    b.d = d;
}

fn blocks_of(bytes: &[u8], block_bytes: usize) -> Result<usize, BitnetError> {
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(BitnetError::Length {
            what: "TQ byte length (whole blocks)",
            expected: bytes.len() / block_bytes * block_bytes,
            actual: bytes.len(),
        });
    }
    Ok(bytes.len() / block_bytes)
}

/// Collects raw codes and the common scale of TQ blocks.
fn tq_to_i2s<B>(
    blocks: &[B],
    d: impl Fn(&B) -> f32,
    codes_of: impl Fn(&B, &mut [u8]),
    layout: I2sLayout,
) -> Result<Vec<u8>, BitnetError> {
    let n = blocks.len() * QK;
    let mut codes = vec![0u8; n];
    let mut scale: Option<f32> = None;
    for (i, (b, c)) in blocks.iter().zip(codes.chunks_exact_mut(QK)).enumerate() {
        codes_of(b, c);
        if c.iter().all(|&c| c == 1) {
            continue;
        }
        let db = d(b);
        match scale {
            None => scale = Some(db),
            Some(s) if s == db => {}
            Some(s) => {
                return Err(BitnetError::ScaleMismatch {
                    block: i,
                    expected: s,
                    found: db,
                });
            }
        }
    }
    let mut out = vec![0u8; i2s::tensor_bytes(n)?];
    i2s::encode_raw(&codes, scale.unwrap_or(0.0), layout, &mut out);
    Ok(out)
}

/// TQ2_0 blocks → I2_S tensor bytes (`n/4 + 32`).
pub fn tq2_0_to_i2s(tq: &[u8], layout: I2sLayout) -> Result<Vec<u8>, BitnetError> {
    let nb = blocks_of(tq, size_of::<BlockTQ2_0>())?;
    tq_to_i2s(
        &cast_slice::<u8, BlockTQ2_0>(tq)[..nb],
        BlockTQ2_0::d,
        tq2_codes,
        layout,
    )
}

/// TQ1_0 blocks → I2_S tensor bytes (`n/4 + 32`).
pub fn tq1_0_to_i2s(tq: &[u8], layout: I2sLayout) -> Result<Vec<u8>, BitnetError> {
    let nb = blocks_of(tq, size_of::<BlockTQ1_0>())?;
    tq_to_i2s(
        &cast_slice::<u8, BlockTQ1_0>(tq)[..nb],
        BlockTQ1_0::d,
        tq1_codes,
        layout,
    )
}

/// The I2_S raw codes and the f16 scale bytes for TQ blocks.
fn i2s_for_tq(t: &I2sRef<'_>, policy: ScalePolicy) -> Result<(Vec<u8>, [u8; 2]), BitnetError> {
    if !t.len().is_multiple_of(QK) {
        return Err(BitnetError::Shape {
            rows: 1,
            cols: t.len(),
            why: "TQ types need a multiple of 256 elements",
        });
    }
    let h = f16::from_f32(t.scale());
    if policy == ScalePolicy::Exact && h.to_f32().to_bits() != t.scale().to_bits() {
        return Err(BitnetError::ScaleNotRepresentable { scale: t.scale() });
    }
    let mut values = vec![0i8; t.len()];
    t.decode(&mut values)?;
    Ok((values.iter().map(|&v| (v + 1) as u8).collect(), h.to_le_bytes()))
}

fn block_d(c: &[u8], d: [u8; 2]) -> [u8; 2] {
    if c.iter().all(|&c| c == 1) { [0, 0] } else { d }
}

/// A ternarized tensor ([`super::ternary::ternarize`], any granularity whose groups
/// are whole 256-element blocks: per tensor, per row, or per group of a multiple of
/// 256) → TQ1_0 or TQ2_0 blocks in `out` (`dtype` chooses). Each block stores its
/// group's scale rounded to f16 (ties to even), or 0 when all its codes are 0, as
/// [`i2s_to_tq2_0`] writes; the codes are unchanged. Rows must be whole blocks.
pub fn from_ternary(t: &Ternary, dtype: DType, out: &mut [u8]) -> Result<(), BitnetError> {
    let block_bytes = match dtype {
        DType::TQ1_0 => size_of::<BlockTQ1_0>(),
        DType::TQ2_0 => size_of::<BlockTQ2_0>(),
        _ => {
            return Err(BitnetError::Param {
                what: "TQ type",
                why: "must be TQ1_0 or TQ2_0",
            });
        }
    };
    if !t.cols.is_multiple_of(QK) {
        return Err(BitnetError::Shape {
            rows: t.rows,
            cols: t.cols,
            why: "TQ types need rows of a multiple of 256 elements",
        });
    }
    if let Granularity::PerGroup { size } = t.granularity
        && (size == 0 || !size.is_multiple_of(QK))
    {
        return Err(BitnetError::Param {
            what: "group size",
            why: "a TQ block holds one scale per 256 elements: groups must be a multiple of 256",
        });
    }
    check_len("ternary codes", t.rows * t.cols, t.codes.len())?;
    check_len("TQ byte length", t.codes.len() / QK * block_bytes, out.len())?;
    let per_row = t.cols / QK;
    let mut c = [0u8; QK];
    for (i, (codes, b)) in t
        .codes
        .chunks_exact(QK)
        .zip(out.chunks_exact_mut(block_bytes))
        .enumerate()
    {
        let (row, col) = (i / per_row.max(1), i % per_row.max(1) * QK);
        let scale = *t.scales.get(t.scale_index(row, col)).ok_or(BitnetError::Length {
            what: "ternary scales",
            expected: t.scale_index(row, col) + 1,
            actual: t.scales.len(),
        })?;
        for (o, &q) in c.iter_mut().zip(codes) {
            if !(-1..=1).contains(&q) {
                return Err(BitnetError::BadCode { index: i * QK, code: q });
            }
            *o = (q + 1) as u8;
        }
        let d = block_d(&c, f16::from_f32(scale).to_le_bytes());
        match dtype {
            DType::TQ1_0 => tq1_pack(&c, d, &mut cast_slice_mut::<u8, BlockTQ1_0>(b)[0]),
            _ => tq2_pack(&c, d, &mut cast_slice_mut::<u8, BlockTQ2_0>(b)[0]),
        }
    }
    Ok(())
}

/// I2_S → TQ2_0 blocks.
pub fn i2s_to_tq2_0(t: &I2sRef<'_>, policy: ScalePolicy) -> Result<Vec<u8>, BitnetError> {
    let (codes, d) = i2s_for_tq(t, policy)?;
    let mut out = vec![0u8; t.len() / QK * size_of::<BlockTQ2_0>()];
    for (c, b) in codes.chunks_exact(QK).zip(cast_slice_mut::<u8, BlockTQ2_0>(&mut out)) {
        tq2_pack(c, block_d(c, d), b);
    }
    Ok(out)
}

/// I2_S → TQ1_0 blocks (refuses code 3, which TQ1_0 cannot hold).
pub fn i2s_to_tq1_0(t: &I2sRef<'_>, policy: ScalePolicy) -> Result<Vec<u8>, BitnetError> {
    let (codes, d) = i2s_for_tq(t, policy)?;
    if let Some(index) = codes.iter().position(|&c| c > 2) {
        return Err(BitnetError::BadCode {
            index,
            code: codes[index] as i8 - 1,
        });
    }
    let mut out = vec![0u8; t.len() / QK * size_of::<BlockTQ1_0>()];
    check_len("TQ1_0 byte length", t.len() / QK * 54, out.len())?;
    for (c, b) in codes.chunks_exact(QK).zip(cast_slice_mut::<u8, BlockTQ1_0>(&mut out)) {
        tq1_pack(c, block_d(c, d), b);
    }
    Ok(out)
}
