//! Dequantizers of the grid i-quants: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
//! IQ1_S and IQ1_M (ggml's `dequantize_row_iq*`).
//!
//! Each group of 8 (IQ2, IQ1) or 4 (IQ3) elements is one entry of a lattice grid,
//! scaled by a block scale. The IQ2/IQ3 grids hold magnitudes and the signs come
//! separately: 8 explicit sign bits (IQ2_S, IQ3_S) or 7 bits expanded through
//! `ksigns_iq2xs`, whose bit 7 makes the number of minus signs even. ggml tests
//! sign bit `j` with `kmask_iq2xs[j]`, which is `1 << j`; the code writes the
//! shift. The IQ1 grids hold −1/0/+1 and add `±IQ1S_DELTA` before scaling.
//!
//! The tables are generated from the reference package gguf into
//! [`super::iq_grids`] (xtask/python/gen_iq_grids.py). Every index below is
//! masked to its table's size, so any block bytes are safe.
//!
//! The float arithmetic follows ggml's evaluation order exactly (`d · (0.5 + ls)
//! · 0.25`, then `db · grid · ±1`), which is what makes the output bit-exact.

use super::blocks::*;
use super::iq_grids::{
    IQ1S_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
use bytemuck::cast_slice;

/// ggml's `(signs & kmask_iq2xs[j] ? -1.f : 1.f)`.
#[inline(always)]
fn sign(signs: u8, j: usize) -> f32 {
    if signs & (1 << j) != 0 { -1.0 } else { 1.0 }
}

#[inline(always)]
fn u16_at(bytes: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])
}

#[inline(always)]
fn u32_at(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]])
}

/// IQ2_XXS → f32. Per 32 elements, 8 bytes: 4 grid indices, then a u32 of four
/// 7-bit sign indices and a 4-bit scale.
pub(crate) fn dequantize_iq2_xxs(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ2XXS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let aux8 = &b.qs[8 * ib32..8 * ib32 + 4];
            let aux32 = u32_at(&b.qs, 2 * ib32 + 1);
            let db = d * (0.5 + (aux32 >> 28) as f32) * 0.25;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = &IQ2XXS_GRID[aux8[l] as usize];
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    y[j] = db * grid[j] as f32 * sign(signs, j);
                }
            }
        }
    }
}

/// IQ2_XS → f32. Each u16 of `qs` is a 9-bit grid index and a 7-bit sign index;
/// one 4-bit scale per 16 elements.
pub(crate) fn dequantize_iq2_xs(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ2XS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let db = [
                d * (0.5 + (b.scales[ib32] & 0xf) as f32) * 0.25,
                d * (0.5 + (b.scales[ib32] >> 4) as f32) * 0.25,
            ];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let q = u16_at(&b.qs, 4 * ib32 + l);
                let grid = &IQ2XS_GRID[(q & 511) as usize];
                let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                for j in 0..8 {
                    y[j] = db[l / 2] * grid[j] as f32 * sign(signs, j);
                }
            }
        }
    }
}

/// IQ2_S → f32. 10-bit grid indices (low 8 bits in `qs[0..32]`, high 2 in `qh`),
/// 8 explicit sign bits per group in `qs[32..64]`, one 4-bit scale per 16 elements.
pub(crate) fn dequantize_iq2_s(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ2S>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let (qs, signs) = b.qs.split_at(QK_K / 8);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let db = [
                d * (0.5 + (b.scales[ib32] & 0xf) as f32) * 0.25,
                d * (0.5 + (b.scales[ib32] >> 4) as f32) * 0.25,
            ];
            let qh = b.qh[ib32] as usize;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let dl = db[l / 2];
                let index = qs[4 * ib32 + l] as usize | ((qh << (8 - 2 * l)) & 0x300);
                let grid = &IQ2S_GRID[index];
                let s = signs[4 * ib32 + l];
                for j in 0..8 {
                    y[j] = dl * grid[j] as f32 * sign(s, j);
                }
            }
        }
    }
}

/// IQ3_XXS → f32. 64 grid indices (one per 4 elements), then per 32 elements a
/// u32 of four 7-bit sign indices and a 4-bit scale.
pub(crate) fn dequantize_iq3_xxs(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ3XXS>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        let (qs, scales_and_signs) = b.qs.split_at(QK_K / 4);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let aux32 = u32_at(scales_and_signs, ib32);
            let db = d * (0.5 + (aux32 >> 28) as f32) * 0.5;
            let qs = &qs[8 * ib32..8 * ib32 + 8];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                let grid1 = &IQ3XXS_GRID[qs[2 * l] as usize];
                let grid2 = &IQ3XXS_GRID[qs[2 * l + 1] as usize];
                for j in 0..4 {
                    y[j] = db * grid1[j] as f32 * sign(signs, j);
                    y[j + 4] = db * grid2[j] as f32 * sign(signs, j + 4);
                }
            }
        }
    }
}

/// IQ3_S → f32. 9-bit grid indices (low 8 bits in `qs`, the ninth in `qh`), 8
/// explicit sign bits per 8 elements, one 4-bit odd scale `1 + 2·s` per 32.
pub(crate) fn dequantize_iq3_s(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ3S>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        // ggml walks the 32-element groups in pairs sharing one scale byte (db1 for
        // the low nibble, db2 for the high); each group uses its own qh byte.
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = (b.scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xf;
            let db = d * (1 + 2 * sc as i32) as f32;
            let qs = &b.qs[8 * ib32..8 * ib32 + 8];
            let qh = b.qh[ib32] as usize;
            let signs = &b.signs[4 * ib32..4 * ib32 + 4];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid1 = &IQ3S_GRID[qs[2 * l] as usize | ((qh << (8 - 2 * l)) & 256)];
                let grid2 = &IQ3S_GRID[qs[2 * l + 1] as usize | ((qh << (7 - 2 * l)) & 256)];
                for j in 0..4 {
                    y[j] = db * grid1[j] as f32 * sign(signs[l], j);
                    y[j + 4] = db * grid2[j] as f32 * sign(signs[l], j + 4);
                }
            }
        }
    }
}

/// IQ1_S → f32. 11-bit grid indices (low 8 bits in `qs`, 3 high bits each in the
/// u16 `qh` of their 32 elements, which also holds a 3-bit scale and the sign
/// of the delta).
pub(crate) fn dequantize_iq1_s(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ1S>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let qh = u16_at(&b.qh, ib) as usize;
            let dl = d * (2 * ((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = &IQ1S_GRID[b.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) << 8)];
                for j in 0..8 {
                    y[j] = dl * (grid[j] as f32 + delta);
                }
            }
        }
    }
}

/// IQ1_M → f32. The f16 block scale is spread over the top nibbles of the four
/// u16 words of `scales`, which also hold a 3-bit scale per 16 elements; each
/// `qh` byte holds 3 high index bits and a delta sign for two groups of 8.
pub(crate) fn dequantize_iq1_m(x: &[u8], y: &mut [f32]) {
    for (b, y) in cast_slice::<u8, BlockIQ1M>(x).iter().zip(y.chunks_exact_mut(QK_K)) {
        let sc = [0, 1, 2, 3].map(|i| u16_at(&b.scales, i));
        let scale = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_le(scale.to_le_bytes());
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let s = sc[ib / 2] as i32;
            let dl1 = d * (2 * ((s >> (6 * (ib % 2))) & 0x7) + 1) as f32;
            let dl2 = d * (2 * ((s >> (6 * (ib % 2) + 3)) & 0x7) + 1) as f32;
            let qs = &b.qs[4 * ib..4 * ib + 4];
            let qh = [b.qh[2 * ib] as usize, b.qh[2 * ib + 1] as usize];
            let idx = [
                qs[0] as usize | ((qh[0] << 8) & 0x700),
                qs[1] as usize | ((qh[0] << 4) & 0x700),
                qs[2] as usize | ((qh[1] << 8) & 0x700),
                qs[3] as usize | ((qh[1] << 4) & 0x700),
            ];
            let delta = [qh[0] & 0x08, qh[0] & 0x80, qh[1] & 0x08, qh[1] & 0x80]
                .map(|bit| if bit != 0 { -IQ1S_DELTA } else { IQ1S_DELTA });
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let dl = if l < 2 { dl1 } else { dl2 };
                let grid = &IQ1S_GRID[idx[l]];
                for j in 0..8 {
                    y[j] = dl * (grid[j] as f32 + delta[l]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn check_grid<const W: usize, T: Copy + Eq + std::hash::Hash + std::fmt::Debug>(
        name: &str,
        grid: &[[T; W]],
        len: usize,
        allowed: &[T],
    ) {
        assert_eq!(grid.len(), len, "{name}: entries");
        for (i, entry) in grid.iter().enumerate() {
            for v in entry {
                assert!(allowed.contains(v), "{name}[{i}] holds {v:?}, not one of {allowed:?}");
            }
        }
        let distinct: HashSet<&[T; W]> = grid.iter().collect();
        assert_eq!(distinct.len(), len, "{name}: entries are not distinct");
    }

    /// Sizes and value sets as ggml-common.h documents them: the IQ2 grids use the
    /// bytes 0x08, 0x19, 0x2b; IQ3_XXS 0x04 … 0x3e; IQ3_S the odd values 1 … 15;
    /// IQ1 (NGRID_IQ1S = 2048 entries) −1, 0, 1.
    #[test]
    fn tables_have_ggml_sizes_and_values() {
        let iq2 = [0x08, 0x19, 0x2b];
        check_grid("iq2xxs_grid", &IQ2XXS_GRID, 256, &iq2);
        check_grid("iq2xs_grid", &IQ2XS_GRID, 512, &iq2);
        check_grid("iq2s_grid", &IQ2S_GRID, 1024, &iq2);
        check_grid(
            "iq3xxs_grid",
            &IQ3XXS_GRID,
            256,
            &[0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e],
        );
        check_grid("iq3s_grid", &IQ3S_GRID, 512, &[1, 3, 5, 7, 9, 11, 13, 15]);
        check_grid("iq1s_grid", &IQ1S_GRID, 2048, &[-1, 0, 1]);

        // First entries as ggml writes them (u64/u32 little-endian byte order).
        assert_eq!(IQ2XXS_GRID[0], [8; 8]);
        assert_eq!(IQ2XXS_GRID[1], 0x080808080808082b_u64.to_le_bytes());
        assert_eq!(IQ2XS_GRID[1], 0x080808080808082b_u64.to_le_bytes());
        assert_eq!(IQ2S_GRID[1], 0x080808080808082b_u64.to_le_bytes());
        assert_eq!(IQ3XXS_GRID[0], 0x04040404_u32.to_le_bytes());
        assert_eq!(IQ3S_GRID[0], 0x01010101_u32.to_le_bytes());
        assert_eq!(IQ1S_GRID[0], [-1; 8]);
        assert_eq!(IQ1S_GRID[1], 0xffffffffffffff01_u64.to_le_bytes().map(|b| b as i8));

        // ksigns_iq2xs: the 7 sign bits, and in bit 7 their parity.
        assert_eq!(KSIGNS_IQ2XS.len(), 128);
        for (i, &k) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(
                k as usize,
                i | ((i.count_ones() as usize & 1) << 7),
                "ksigns_iq2xs[{i}]"
            );
            assert_eq!(
                k.count_ones() % 2,
                0,
                "ksigns_iq2xs[{i}] has an odd number of minus signs"
            );
        }
        assert_eq!(IQ1S_DELTA, 0.125);
    }

    /// Bytes that index past a table in a careless port: all-ones blocks use the
    /// largest index, shift and sign of every field.
    #[test]
    fn any_bytes_are_safe() {
        let fns: [(crate::codec::DequantFn, usize); 7] = [
            (dequantize_iq2_xxs, 66),
            (dequantize_iq2_xs, 74),
            (dequantize_iq2_s, 82),
            (dequantize_iq3_xxs, 98),
            (dequantize_iq3_s, 110),
            (dequantize_iq1_s, 50),
            (dequantize_iq1_m, 56),
        ];
        for (f, bytes) in fns {
            for fill in [0x00, 0xff, 0x55, 0xaa] {
                let mut y = [0f32; QK_K];
                f(&vec![fill; bytes], &mut y);
            }
        }
    }
}
