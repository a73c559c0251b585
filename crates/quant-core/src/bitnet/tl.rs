//! TL1 and TL2: bitnet.cpp's lookup-table layouts, packed exactly as its
//! converter (`preprocess_weights_tl1` / `preprocess_weights_tl2` in
//! `utils/convert-hf-to-gguf-bitnet.py`) packs a weight of shape `[M, K]`
//! (M output rows, K input columns), decoded back, and multiplied through lookup
//! tables (the scalar specifications, and AVX2 `pshufb` / NEON `vqtbl1q` kernels
//! checked against them).
//!
//! **TL1** (ARM): each pair of weights `(w0, w1)` along a row becomes the index
//! `3·w0 + w1 + 4` (0..=8), two indices per byte (the first pair of a byte in the
//! high nibble). The pairs are tiled by `(BM, BK, bm)`, `by = 256 / bm`: byte order
//! `[M/BM][K/BK][BM/bm][BK/by][bm/16][by/4][16 rows]`, the byte's high nibble the
//! pair `2·kq` and the low nibble the pair `2·kq + 1` of its `by/2` pairs. `M·K/4`
//! bytes.
//!
//! **TL2** (x86): the first `K3 = ⌊K/BK⌋·BK` columns in triples
//! `v = 9·w0 + 3·w1 + w2` (−13..=13): `|v|` in nibbles (two triples per byte, tiles
//! `[M/BM][K3/BK][BM/bm][BK/6]` of 32 bytes, `bm = 32`, whose 8-byte quarters 1 and
//! 2 are swapped), then a sign plane (bit set for `v < 0`; per
//! `[M/BM][K3/BK][BM/32][BK/24]` tile, 16 little-endian u16 whose bit `15 − i` of
//! word `j` is the sign of triple `(f / 32)` of row `f mod 32`, `f = 16·i + j`),
//! then the remaining `K − K3` columns (a multiple of 32) as TL1-style pair indices
//! tiled with `BK = 32, bm = 32, by = 4`, 32-byte rows with the same quarter swap.
//! The whole is zero-padded to `(K − 256)·M/3·5/8 + 256·M/2·4/8` bytes (the
//! converter's `np.pad`; for K < 256, where that formula is below the data, qload
//! does not pad).
//!
//! **Scale:** one f32 per tensor, `max|W'|` of the ternarized weights (the
//! converter's `np.max(np.abs(x))`), which the converter writes as a separate
//! `<name>_scale` tensor; bitnet.cpp's generated `ggml_bitnet_transform_tensor`
//! for TL1 reads it from right after the `M·K/4` packed bytes. How the two meet in
//! a loaded model (file layout vs. load-time placement) is not established from
//! the sources here, so these functions return the packed bytes and the scale
//! separately.
//!
//! **Presets** are the `(BM, BK, bm)` that bitnet.cpp's `setup_env.py` passes to
//! `codegen_tl1.py` / `codegen_tl2.py` for each model's shapes; the converter
//! refuses other shapes. [`TlParams::general`] picks a tiling for any shape the
//! layout can hold (qload's choice, not bitnet.cpp's): such tensors decode and
//! multiply here but have no bitnet.cpp kernel. BitNet-b1.58-2B-4T: upstream
//! `setup_env.py` generates the bitnet_b1_58-3B kernels for it, whose shapes
//! (3200/8640) are not the 2B model's (2560/6912), so its shapes use the general
//! path.
//!
//! **Untested against bitnet.cpp bytes:** the layouts follow the converter's
//! numpy reshapes as read; no file written by the converter was available to
//! compare with.

use super::BitnetError;
use super::error::check_len;
use super::ternary::Absmean;

/// TL1 or TL2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlKind {
    /// Pairs, 4 bits each (ARM kernels).
    Tl1,
    /// Triples with a sign plane, plus a pair-coded remainder (x86 kernels).
    Tl2,
}

/// A kernel tiling: bitnet.cpp's `kernel_config.ini` `BM`, `BK` and `bmm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlParams {
    /// Rows per tile (`BM`).
    pub bm_tile: usize,
    /// Columns per tile (`BK`).
    pub bk: usize,
    /// Rows per SIMD block (`bmm`): 32 or 64 for TL1, 32 for TL2.
    pub bm: usize,
}

/// A published tiling for one weight shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlPreset {
    /// The model `setup_env.py` generates it for.
    pub model: &'static str,
    /// Rows (output features).
    pub m: usize,
    /// Columns (input features).
    pub k: usize,
    /// The tiling.
    pub params: TlParams,
}

const fn preset(model: &'static str, m: usize, k: usize, bm_tile: usize, bk: usize, bm: usize) -> TlPreset {
    TlPreset {
        model,
        m,
        k,
        params: TlParams { bm_tile, bk, bm },
    }
}

const LARGE: &str = "bitnet_b1_58-large";
const B3: &str = "bitnet_b1_58-3B";
const L8B: &str = "Llama3-8B-1.58-100B-tokens";

/// TL1 presets (`setup_env.py` → `codegen_tl1.py`).
pub static TL1_PRESETS: &[TlPreset] = &[
    preset(LARGE, 1536, 4096, 256, 128, 32),
    preset(LARGE, 1536, 1536, 128, 64, 64),
    preset(LARGE, 4096, 1536, 256, 128, 32),
    preset(B3, 3200, 8640, 160, 64, 32),
    preset(B3, 3200, 3200, 320, 128, 64),
    preset(B3, 8640, 3200, 320, 64, 32),
    preset(L8B, 14336, 4096, 256, 128, 32),
    preset(L8B, 4096, 14336, 128, 64, 64),
    preset(L8B, 1024, 4096, 256, 128, 32),
    preset(L8B, 4096, 4096, 128, 64, 64),
];

/// TL2 presets (`setup_env.py` → `codegen_tl2.py`).
pub static TL2_PRESETS: &[TlPreset] = &[
    preset(LARGE, 1536, 4096, 256, 96, 32),
    preset(LARGE, 1536, 1536, 128, 192, 32),
    preset(LARGE, 4096, 1536, 256, 96, 32),
    preset(B3, 3200, 8640, 160, 96, 32),
    preset(B3, 3200, 3200, 320, 96, 32),
    preset(B3, 8640, 3200, 320, 96, 32),
    preset(L8B, 14336, 4096, 256, 96, 32),
    preset(L8B, 4096, 14336, 128, 96, 32),
    preset(L8B, 1024, 4096, 256, 96, 32),
    preset(L8B, 4096, 4096, 128, 96, 32),
];

impl TlParams {
    /// The published tiling for an `[m, k]` weight, if bitnet.cpp has one.
    pub fn preset(kind: TlKind, m: usize, k: usize) -> Option<TlParams> {
        let table = match kind {
            TlKind::Tl1 => TL1_PRESETS,
            TlKind::Tl2 => TL2_PRESETS,
        };
        table.iter().find(|p| p.m == m && p.k == k).map(|p| p.params)
    }

    /// qload's tiling for any shape the layout can hold: `bm = 32`, `BM` the first
    /// of 256, 320, 160, 128, 64, 32 dividing `m`; TL1 `BK` the first of 128, 64,
    /// 32, 16, 8 dividing `k`; TL2 `BK` the first of 96, 192, 48, 24 leaving a
    /// remainder that is a multiple of 32.
    pub fn general(kind: TlKind, m: usize, k: usize) -> Result<TlParams, BitnetError> {
        let shape = |why| BitnetError::Shape { rows: m, cols: k, why };
        let bm_tile = [256, 320, 160, 128, 64, 32]
            .into_iter()
            .find(|b| m.is_multiple_of(*b))
            .ok_or(shape("TL layouts need a row count that is a multiple of 32"))?;
        let bk = match kind {
            TlKind::Tl1 => [128, 64, 32, 16, 8]
                .into_iter()
                .find(|b| k.is_multiple_of(*b))
                .ok_or(shape("TL1 needs a column count that is a multiple of 8"))?,
            TlKind::Tl2 => [96, 192, 48, 24]
                .into_iter()
                .find(|b| (k % b).is_multiple_of(32))
                .ok_or(shape(
                    "TL2 needs a column count that is a multiple of 24 or leaves a multiple of 32",
                ))?,
        };
        Ok(TlParams { bm_tile, bk, bm: 32 })
    }

    /// The preset if there is one, else [`TlParams::general`].
    pub fn for_shape(kind: TlKind, m: usize, k: usize) -> Result<TlParams, BitnetError> {
        match Self::preset(kind, m, k) {
            Some(p) => Ok(p),
            None => Self::general(kind, m, k),
        }
    }

    fn validate(&self, kind: TlKind, m: usize, k: usize) -> Result<(), BitnetError> {
        let bad = |what, why| Err(BitnetError::Param { what, why });
        let TlParams { bm_tile, bk, bm } = *self;
        match kind {
            TlKind::Tl1 if bm != 32 && bm != 64 => return bad("bm", "TL1 uses bm = 32 or 64"),
            TlKind::Tl2 if bm != 32 => return bad("bm", "TL2 uses bm = 32"),
            _ => {}
        }
        if bm_tile == 0 || !bm_tile.is_multiple_of(bm) || !m.is_multiple_of(bm_tile) {
            return bad("BM", "BM must be a multiple of bm and divide the row count");
        }
        match kind {
            TlKind::Tl1 => {
                if bk == 0 || !bk.is_multiple_of(256 / bm) || !k.is_multiple_of(bk) {
                    return bad(
                        "BK",
                        "TL1's BK must be a multiple of 256/bm and divide the column count",
                    );
                }
            }
            TlKind::Tl2 => {
                if bk == 0 || !bk.is_multiple_of(24) || !(k % bk).is_multiple_of(32) {
                    return bad(
                        "BK",
                        "TL2's BK must be a multiple of 24 leaving a multiple of 32 columns",
                    );
                }
            }
        }
        Ok(())
    }
}

/// Quarters 1 and 2 of a 32-byte TL2 row trade places.
const SWAP: [usize; 4] = [0, 2, 1, 3];

/// Visits the bytes of a pair-coded region: `f(byte, row, first column of the high
/// pair)`; the low pair is the next two columns. `swap` applies TL2's quarter swap
/// (rows of 32 bytes).
fn walk_pairs(
    rows: usize,
    cols: usize,
    (bm_tile, by_tile, bm, by): (usize, usize, usize, usize),
    swap: bool,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut base = 0;
    for mo in 0..rows / bm_tile {
        for ko in 0..cols / by_tile {
            for mb in 0..bm_tile / bm {
                for kb in 0..by_tile / by {
                    for m16o in 0..bm / 16 {
                        for kq in 0..by / 4 {
                            for m16i in 0..16 {
                                let o = (m16o * (by / 4) + kq) * 16 + m16i;
                                let pos = if swap {
                                    SWAP[o / 8 % 4] * 8 + o % 8 + o / 32 * 32
                                } else {
                                    o
                                };
                                let row = mo * bm_tile + mb * bm + m16o * 16 + m16i;
                                let col = ko * by_tile + kb * by + kq * 4;
                                f(base + pos, row, col);
                            }
                        }
                    }
                    base += bm * by / 4;
                }
            }
        }
    }
}

/// Visits TL2's triple nibbles: `f(byte, row, first column of the high triple)`.
fn walk_triples(rows: usize, k3: usize, p: TlParams, mut f: impl FnMut(usize, usize, usize)) {
    let mut base = 0;
    for mo in 0..rows / p.bm_tile {
        for ko in 0..k3 / p.bk {
            for mb in 0..p.bm_tile / 32 {
                for kb in 0..p.bk / 6 {
                    for mii in 0..32 {
                        let pos = SWAP[mii / 8] * 8 + mii % 8;
                        f(base + pos, mo * p.bm_tile + mb * 32 + mii, ko * p.bk + kb * 6);
                    }
                    base += 32;
                }
            }
        }
    }
}

/// Visits TL2's sign bits: `f(byte, bit, row, first column of the triple)`.
fn walk_signs(rows: usize, k3: usize, p: TlParams, mut f: impl FnMut(usize, u32, usize, usize)) {
    let mut base = 0;
    for mo in 0..rows / p.bm_tile {
        for ko in 0..k3 / p.bk {
            for mb in 0..p.bm_tile / 32 {
                for ksb in 0..p.bk / 24 {
                    for i in 0..16 {
                        for j in 0..16 {
                            let fl = i * 16 + j;
                            let bit = 15 - i as u32;
                            let byte = base + 2 * j + (bit / 8) as usize;
                            let row = mo * p.bm_tile + mb * 32 + fl % 32;
                            let col = ko * p.bk + (ksb * 8 + fl / 32) * 3;
                            f(byte, bit % 8, row, col);
                        }
                    }
                    base += 32;
                }
            }
        }
    }
}

/// Packed bytes of TL1 for `[m, k]`: `m·k/4`.
pub fn tl1_bytes(m: usize, k: usize) -> usize {
    m * k / 4
}

/// `(K3, magnitude bytes, sign bytes, pair bytes)` of TL2 for `[m, k]` under `p`.
fn tl2_parts(m: usize, k: usize, p: TlParams) -> (usize, usize, usize, usize) {
    let k3 = k / p.bk * p.bk;
    let (three, signs, two) = tl2_region_sizes(m, k, k3);
    (k3, three, signs, two)
}

/// Bytes of TL2's three regions for `rows` rows, `cols` columns of which the first
/// `k3` are triple-coded: magnitudes `rows·k3/6`, signs `rows·k3/24`, pairs
/// `rows·(cols − k3)/4`.
fn tl2_region_sizes(rows: usize, cols: usize, k3: usize) -> (usize, usize, usize) {
    (rows * k3 / 6, rows * k3 / 24, rows * (cols - k3) / 4)
}

/// Packed bytes of TL2 for `[m, k]` under `p`, padding included.
pub fn tl2_bytes(m: usize, k: usize, p: TlParams) -> usize {
    let (_, three, signs, two) = tl2_parts(m, k, p);
    let data = three + signs + two;
    let pad = if k >= 256 {
        (k - 256) * m / 3 * 5 / 8 + 256 * m / 2 * 4 / 8
    } else {
        0
    };
    data.max(pad)
}

fn check_shape(kind: TlKind, codes_len: usize, m: usize, k: usize, p: &TlParams) -> Result<(), BitnetError> {
    let n = m.checked_mul(k).ok_or(BitnetError::Shape {
        rows: m,
        cols: k,
        why: "the element count overflows",
    })?;
    check_len("element count (m × k)", n, codes_len)?;
    p.validate(kind, m, k)
}

fn check_codes(codes: &[i8]) -> Result<(), BitnetError> {
    // A branch-free scan first (it vectorizes), the position only on failure.
    if codes.iter().fold(true, |ok, &c| ok & ((c as u8).wrapping_add(1) <= 2)) {
        return Ok(());
    }
    match codes.iter().position(|c| !(-1..=1).contains(c)) {
        Some(index) => Err(BitnetError::BadCode {
            index,
            code: codes[index],
        }),
        None => Ok(()),
    }
}

/// The pair indices `3·c₀ + c₁ + 4` (0..=8) of columns `col0 + 2j, col0 + 2j + 1` of
/// every row, row-major `[m, cols / 2]`: computed in one sequential pass, so that the
/// tile walks, which visit 16 or 32 rows per column step, read one byte per pair.
fn pair_indices(codes: &[i8], k: usize, col0: usize, cols: usize) -> Vec<u8> {
    let half = cols / 2;
    let mut out = vec![0u8; codes.len() / k.max(1) * half];
    for (row, o) in codes.chunks_exact(k).zip(out.chunks_exact_mut(half.max(1))) {
        row_pair_indices(&row[col0..col0 + cols], o);
    }
    out
}

/// The pair indices of one row's codes (`out.len()` pairs).
fn row_pair_indices(codes: &[i8], out: &mut [u8]) {
    let codes = &codes[..2 * out.len()];
    for (j, o) in out.iter_mut().enumerate() {
        *o = (3 * codes[2 * j] + codes[2 * j + 1] + 4) as u8;
    }
}

/// The triple values of one row's codes (`out.len()` triples).
fn row_triple_values(codes: &[i8], out: &mut [i8]) {
    let codes = &codes[..3 * out.len()];
    for (j, o) in out.iter_mut().enumerate() {
        *o = 9 * codes[3 * j] + 3 * codes[3 * j + 1] + codes[3 * j + 2];
    }
}

/// The triple values `9·c₀ + 3·c₁ + c₂` (−13..=13) of the first `k3` columns of every
/// row, row-major `[m, k3 / 3]` (as [`pair_indices`]).
fn triple_values(codes: &[i8], k: usize, k3: usize) -> Vec<i8> {
    let t3 = k3 / 3;
    let mut out = vec![0i8; codes.len() / k.max(1) * t3];
    for (row, o) in codes.chunks_exact(k).zip(out.chunks_exact_mut(t3.max(1))) {
        row_triple_values(row, o);
    }
    out
}

/// Writes TL2's sign region from the triple values (`[m, k3 / 3]`): the bytes
/// [`walk_signs`] visits, a little-endian u16 at a time (bit `15 − i` of word `j` of a
/// 32-byte chunk is the sign of flat index `16·i + j`: row `fl % 32`, triple `fl / 32`).
fn pack_signs(tv: &[i8], rows: usize, k3: usize, p: TlParams, out: &mut [u8]) {
    let t3 = k3 / 3;
    let mut chunks = out.chunks_exact_mut(32);
    for mo in 0..rows / p.bm_tile {
        for ko in 0..k3 / p.bk {
            for mb in 0..p.bm_tile / 32 {
                let row0 = mo * p.bm_tile + mb * 32;
                for ksb in 0..p.bk / 24 {
                    let chunk = chunks.next().expect("the sign region holds every chunk");
                    let t0 = (ko * p.bk) / 3 + ksb * 8;
                    for j in 0..16 {
                        let mut word = 0u16;
                        for i in 0..16 {
                            let fl = 16 * i + j;
                            let neg = tv[(row0 + fl % 32) * t3 + t0 + fl / 32] < 0;
                            word |= (neg as u16) << (15 - i);
                        }
                        chunk[2 * j..2 * j + 2].copy_from_slice(&word.to_le_bytes());
                    }
                }
            }
        }
    }
}

/// Packs ternary codes (row-major `[m, k]`, −1..=1) as TL1.
pub fn tl1_pack(codes: &[i8], m: usize, k: usize, p: &TlParams) -> Result<Vec<u8>, BitnetError> {
    check_shape(TlKind::Tl1, codes.len(), m, k, p)?;
    check_codes(codes)?;
    Ok(tl1_pack_indices(&pair_indices(codes, k, 0, k), m, k, p))
}

/// TL1 from the pair indices of every row (`[m, k / 2]`, shape checked).
fn tl1_pack_indices(idx: &[u8], m: usize, k: usize, p: &TlParams) -> Vec<u8> {
    let mut out = vec![0u8; tl1_bytes(m, k)];
    let half = k / 2;
    walk_pairs(m, k, (p.bm_tile, p.bk, p.bm, 256 / p.bm), false, |byte, row, col| {
        let at = row * half + col / 2;
        out[byte] = idx[at] << 4 | idx[at + 1];
    });
    out
}

/// A pair index (0..=8) back to its two codes; `None` for 9..=15.
#[inline]
fn pair_codes(idx: u8) -> Option<(i8, i8)> {
    (idx <= 8).then(|| ((idx / 3) as i8 - 1, (idx % 3) as i8 - 1))
}

/// A triple value (−13..=13) back to its three codes.
#[inline]
fn triple_codes(v: i8) -> [i8; 3] {
    let u = (v + 13) as u8;
    [(u / 9) as i8 - 1, (u / 3 % 3) as i8 - 1, (u % 3) as i8 - 1]
}

fn bad_nibble(row: usize, col: usize, k: usize, nibble: u8) -> BitnetError {
    BitnetError::BadCode {
        index: row * k + col,
        code: nibble as i8,
    }
}

fn decode_pairs(
    bytes: &[u8],
    rows: usize,
    k: usize,
    (col0, cols): (usize, usize),
    tiling: (usize, usize, usize, usize),
    swap: bool,
    out: &mut [i8],
) -> Result<(), BitnetError> {
    let mut err = None;
    walk_pairs(rows, cols, tiling, swap, |byte, row, col| {
        let b = bytes[byte];
        for (h, idx) in [(0, b >> 4), (2, b & 15)] {
            match pair_codes(idx) {
                Some((w0, w1)) => {
                    out[row * k + col0 + col + h] = w0;
                    out[row * k + col0 + col + h + 1] = w1;
                }
                None => _ = err.get_or_insert(bad_nibble(row, col0 + col + h, k, idx)),
            }
        }
    });
    err.map_or(Ok(()), Err)
}

/// Decodes TL1 bytes (at least [`tl1_bytes`]) back to codes; a nibble above 8
/// is [`BitnetError::BadCode`] (its `code` is the nibble).
pub fn tl1_unpack(bytes: &[u8], m: usize, k: usize, p: &TlParams) -> Result<Vec<i8>, BitnetError> {
    check_shape(TlKind::Tl1, m.saturating_mul(k), m, k, p)?;
    check_min_len(bytes, tl1_bytes(m, k))?;
    let mut out = vec![0i8; m * k];
    decode_pairs(
        bytes,
        m,
        k,
        (0, k),
        (p.bm_tile, p.bk, p.bm, 256 / p.bm),
        false,
        &mut out,
    )?;
    Ok(out)
}

fn check_min_len(bytes: &[u8], need: usize) -> Result<(), BitnetError> {
    if bytes.len() < need {
        return Err(BitnetError::Length {
            what: "TL byte length",
            expected: need,
            actual: bytes.len(),
        });
    }
    Ok(())
}

/// Packs ternary codes (row-major `[m, k]`, −1..=1) as TL2.
pub fn tl2_pack(codes: &[i8], m: usize, k: usize, p: &TlParams) -> Result<Vec<u8>, BitnetError> {
    check_shape(TlKind::Tl2, codes.len(), m, k, p)?;
    check_codes(codes)?;
    let k3 = tl2_parts(m, k, *p).0;
    Ok(tl2_pack_values(
        &triple_values(codes, k, k3),
        &pair_indices(codes, k, k3, k - k3),
        m,
        k,
        p,
    ))
}

/// TL2 from the triple values of the first K3 columns (`[m, K3 / 3]`) and the pair
/// indices of the rest (`[m, (k − K3) / 2]`) of every row (shape checked).
fn tl2_pack_values(tv: &[i8], idx: &[u8], m: usize, k: usize, p: &TlParams) -> Vec<u8> {
    let (k3, three, signs, _) = tl2_parts(m, k, *p);
    let mut out = vec![0u8; tl2_bytes(m, k, *p)];
    let t3 = k3 / 3;
    walk_triples(m, k3, *p, |byte, row, col| {
        let at = row * t3 + col / 3;
        out[byte] = tv[at].unsigned_abs() << 4 | tv[at + 1].unsigned_abs();
    });
    pack_signs(tv, m, k3, *p, &mut out[three..three + signs]);
    let half = (k - k3) / 2;
    let two = &mut out[three + signs..];
    walk_pairs(m, k - k3, (p.bm_tile, 32, 32, 4), true, |byte, row, col| {
        let at = row * half + col / 2;
        two[byte] = idx[at] << 4 | idx[at + 1];
    });
    out
}

/// Decodes TL2 bytes (at least the data part of [`tl2_bytes`]) back to codes; a
/// magnitude nibble above 13 or a pair nibble above 8 is [`BitnetError::BadCode`].
pub fn tl2_unpack(bytes: &[u8], m: usize, k: usize, p: &TlParams) -> Result<Vec<i8>, BitnetError> {
    check_shape(TlKind::Tl2, m.saturating_mul(k), m, k, p)?;
    let (k3, three, signs, two) = tl2_parts(m, k, *p);
    check_min_len(bytes, three + signs + two)?;
    let mut mag = vec![0i8; m * k];
    let mut err = None;
    walk_triples(m, k3, *p, |byte, row, col| {
        for (h, nib) in [(0, bytes[byte] >> 4), (3, bytes[byte] & 15)] {
            if nib > 13 {
                _ = err.get_or_insert(bad_nibble(row, col + h, k, nib));
            }
            mag[row * k + col + h] = nib.min(13) as i8;
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let mut out = vec![0i8; m * k];
    walk_signs(m, k3, *p, |byte, bit, row, col| {
        let a = mag[row * k + col];
        let v = if (bytes[three + byte] >> bit) & 1 == 1 { -a } else { a };
        out[row * k + col..row * k + col + 3].copy_from_slice(&triple_codes(v));
    });
    decode_pairs(
        &bytes[three + signs..],
        m,
        k,
        (k3, k - k3),
        (p.bm_tile, 32, 32, 4),
        true,
        &mut out,
    )?;
    Ok(out)
}

/// Absmean-ternarizes `w` (`[m, k]`, BitNet's per-tensor scheme) and packs it as
/// `kind` with the preset tiling, or the general one outside the presets. Returns
/// the bytes, the scale (`max|W'|`, 0 for an all-zero result) and the tiling.
pub fn quantize(w: &[f32], m: usize, k: usize, kind: TlKind) -> Result<(Vec<u8>, f32, TlParams), BitnetError> {
    check_len("weight length", m.saturating_mul(k), w.len())?;
    let p = TlParams::for_shape(kind, m, k)?;
    let a = Absmean::of(w);
    // Row by row: codes of one row, then straight to the pair indices / triple values
    // the packers read (no whole-tensor code array; codes are valid by construction).
    let k3 = match kind {
        TlKind::Tl1 => 0,
        TlKind::Tl2 => tl2_parts(m, k, p).0,
    };
    let (t3, half) = (k3 / 3, (k - k3) / 2);
    let (mut tv, mut idx) = (vec![0i8; m * t3], vec![0u8; m * half]);
    let mut row_codes = vec![0i8; k];
    let mut any = false;
    for (r, w) in w.chunks_exact(k.max(1)).enumerate() {
        super::ternary::ternarize_into(w, a.s, &mut row_codes);
        any |= row_codes.iter().fold(false, |any, &c| any | (c != 0));
        row_triple_values(&row_codes, &mut tv[r * t3..(r + 1) * t3]);
        row_pair_indices(&row_codes[k3..], &mut idx[r * half..(r + 1) * half]);
    }
    let scale = if any { a.scale } else { 0.0 };
    let bytes = match kind {
        TlKind::Tl1 => tl1_pack_indices(&idx, m, k, &p),
        TlKind::Tl2 => tl2_pack_values(&tv, &idx, m, k, &p),
    };
    Ok((bytes, scale, p))
}

/// `out[r] = Σ_j w(r, j) · q[j]` for TL1 bytes, through per-pair lookup tables of
/// the 9 possible `w0·q0 + w1·q1` (the scalar specification of a TL1 kernel).
pub fn tl1_matvec_int(
    bytes: &[u8],
    m: usize,
    k: usize,
    p: &TlParams,
    q: &[i8],
    out: &mut [i64],
) -> Result<(), BitnetError> {
    check_matvec(TlKind::Tl1, bytes, (m, k), p, q, out)?;
    if let (Some(simd), true) = (crate::arch::tl1_accumulate(), k <= SIMD_MAX_COLS) {
        // The same integer sums through `pshufb` tables; a nibble above 8 falls through
        // to the specification below, which reports it.
        let (lo, hi) = lut_bytes(&pair_luts(q));
        let tiling = (p.bm_tile, p.bk, p.bm, 256 / p.bm);
        let bad = over_tiles(m, p.bm_tile, out, |tiles, acc| {
            simd(bytes, (m, k), tiling, (&lo, &hi), tiles, acc)
        });
        if !bad {
            return Ok(());
        }
    }
    tl1_matvec_int_scalar(bytes, m, k, p, q, out)
}

/// The scalar specification of [`tl1_matvec_int`].
pub fn tl1_matvec_int_scalar(
    bytes: &[u8],
    m: usize,
    k: usize,
    p: &TlParams,
    q: &[i8],
    out: &mut [i64],
) -> Result<(), BitnetError> {
    check_matvec(TlKind::Tl1, bytes, (m, k), p, q, out)?;
    out.fill(0);
    let mut err = None;
    let tiling = (p.bm_tile, p.bk, p.bm, 256 / p.bm);
    add_pairs(bytes, (m, k, 0, k), tiling, false, &pair_luts(q), out, &mut err);
    err.map_or(Ok(()), Err)
}

/// One 9-entry table per activation pair: entry `3·w0 + w1 + 4` holds `w0·q0 + w1·q1`.
fn pair_luts(q: &[i8]) -> Vec<[i32; 9]> {
    q.chunks_exact(2)
        .map(|a| std::array::from_fn(|i| (i as i32 / 3 - 1) * a[0] as i32 + (i as i32 % 3 - 1) * a[1] as i32))
        .collect()
}

/// One 14-entry table per activation triple: entry `|v|` holds the dot product of
/// the triple coded `|v|` (`v = 9·w0 + 3·w1 + w2`) with the three activations.
fn triple_luts(q: &[i8]) -> Vec<[i32; 14]> {
    q.chunks_exact(3)
        .map(|a| {
            std::array::from_fn(|v| {
                let w = triple_codes(v as i8);
                (0..3).map(|i| w[i] as i32 * a[i] as i32).sum()
            })
        })
        .collect()
}

/// Tables of at most 16 entries as `pshufb` tables: the low and the high byte of each
/// entry's i16 value, entries `N..16` zero.
fn lut_bytes<const N: usize>(tables: &[[i32; N]]) -> (Vec<[u8; 16]>, Vec<[u8; 16]>) {
    tables
        .iter()
        .map(|t| {
            let v: [i16; 16] = std::array::from_fn(|i| if i < N { t[i] as i16 } else { 0 });
            (v.map(|x| x as u8), v.map(|x| (x >> 8) as u8))
        })
        .unzip()
}

/// The argument checks every TL matvec makes: shape and tiling, bytes for the data,
/// `k` activations, `m` outputs.
fn check_matvec(
    kind: TlKind,
    bytes: &[u8],
    (m, k): (usize, usize),
    p: &TlParams,
    q: &[i8],
    out: &[i64],
) -> Result<(), BitnetError> {
    check_shape(kind, m.saturating_mul(k), m, k, p)?;
    let need = match kind {
        TlKind::Tl1 => tl1_bytes(m, k),
        TlKind::Tl2 => {
            let (_, three, signs, two) = tl2_parts(m, k, *p);
            three + signs + two
        }
    };
    check_min_len(bytes, need)?;
    check_len("activation length", k, q.len())?;
    check_len("output length", m, out.len())
}

/// The three regions of TL2 bytes (magnitude nibbles, sign plane, pair-coded
/// remainder) for `[rows, cols]` with `k3` triple-coded columns and tiles of `bm_tile`
/// rows × `bk` columns; `None` when the tiling is not TL2's or the bytes are short.
/// The SIMD kernels' own check, so that they never index out of their input.
pub(crate) fn tl2_regions(
    bytes: &[u8],
    (rows, cols, k3): (usize, usize, usize),
    (bm_tile, bk): (usize, usize),
) -> Option<(&[u8], &[u8], &[u8])> {
    if bm_tile == 0 || bk == 0 || !bm_tile.is_multiple_of(32) || !bk.is_multiple_of(24) || cols < k3 {
        return None;
    }
    rows.checked_mul(cols)?; // then no product below overflows
    let (three, signs, two) = tl2_region_sizes(rows, cols, k3);
    Some((
        bytes.get(..three)?,
        bytes.get(three..three + signs)?,
        bytes.get(three + signs..three + signs + two)?,
    ))
}

/// Adds pair-table lookups of pair-coded bytes (TL1, or TL2's remainder starting at
/// column `col0`) into `out`; the first nibble above 8 goes into `err`.
fn add_pairs(
    bytes: &[u8],
    (rows, cols, col0, k): (usize, usize, usize, usize),
    tiling: (usize, usize, usize, usize),
    swap: bool,
    lut: &[[i32; 9]],
    out: &mut [i64],
    err: &mut Option<BitnetError>,
) {
    walk_pairs(rows, cols, tiling, swap, |byte, row, col| {
        let b = bytes[byte];
        for (h, idx) in [(0, b >> 4), (2, b & 15)] {
            if idx > 8 {
                _ = err.get_or_insert(bad_nibble(row, col0 + col + h, k, idx));
            } else {
                out[row] += lut[(col + h) / 2][idx as usize] as i64;
            }
        }
    });
}

/// Runs a SIMD TL kernel over groups of row tiles on rayon's pool, each into its own
/// i32 rows, and widens the sums into `out`; returns whether any group reported bad
/// bytes. Integer sums: the result does not depend on the thread count.
fn over_tiles(
    m: usize,
    bm_tile: usize,
    out: &mut [i64],
    kernel: impl Fn((usize, usize), &mut [i32]) -> bool + Sync,
) -> bool {
    use rayon::prelude::*;
    let tiles = m / bm_tile;
    // A few groups per thread for balance, each at least ~64 rows.
    let per = tiles
        .div_ceil(4 * rayon::current_num_threads())
        .max(64usize.div_ceil(bm_tile))
        .max(1);
    out.par_chunks_mut(per * bm_tile)
        .enumerate()
        .map(|(i, out)| {
            let mut acc = vec![0i32; out.len()];
            let t0 = i * per;
            let bad = kernel((t0, (t0 + per).min(tiles)), &mut acc);
            for (o, a) in out.iter_mut().zip(&acc) {
                *o = *a as i64;
            }
            bad
        })
        .reduce(|| false, |a, b| a || b)
}

/// Column counts up to which the SIMD kernels' i32 row sums are exact
/// (`|Σ| ≤ k·128 < 2³¹`).
const SIMD_MAX_COLS: usize = 1 << 24;

/// `out[r] = Σ_j w(r, j) · q[j]` for TL2 bytes: 14-entry tables of `|v|` per
/// activation triple with the sign applied afterwards, and 9-entry pair tables for
/// the remainder; through `pshufb` tables where the CPU has them.
pub fn tl2_matvec_int(
    bytes: &[u8],
    m: usize,
    k: usize,
    p: &TlParams,
    q: &[i8],
    out: &mut [i64],
) -> Result<(), BitnetError> {
    check_matvec(TlKind::Tl2, bytes, (m, k), p, q, out)?;
    let (k3, ..) = tl2_parts(m, k, *p);
    if let (Some(simd), true) = (crate::arch::tl2_accumulate(), k <= SIMD_MAX_COLS) {
        // The same integer sums; an out-of-range nibble falls through to the
        // specification below, which reports it.
        let (tri_lo, tri_hi) = lut_bytes(&triple_luts(&q[..k3]));
        let (pair_lo, pair_hi) = lut_bytes(&pair_luts(&q[k3..]));
        let tables = ((&tri_lo[..], &tri_hi[..]), (&pair_lo[..], &pair_hi[..]));
        let bad = over_tiles(m, p.bm_tile, out, |tiles, acc| {
            simd(bytes, (m, k, k3), (p.bm_tile, p.bk), tables.0, tables.1, tiles, acc)
        });
        if !bad {
            return Ok(());
        }
    }
    tl2_matvec_int_scalar(bytes, m, k, p, q, out)
}

/// The scalar specification of [`tl2_matvec_int`].
pub fn tl2_matvec_int_scalar(
    bytes: &[u8],
    m: usize,
    k: usize,
    p: &TlParams,
    q: &[i8],
    out: &mut [i64],
) -> Result<(), BitnetError> {
    check_matvec(TlKind::Tl2, bytes, (m, k), p, q, out)?;
    let (k3, three, signs, _) = tl2_parts(m, k, *p);
    let tri = triple_luts(&q[..k3]);
    // Magnitude lookups per (row, triple), signed by the sign plane afterwards.
    let mut mag = vec![0i32; m * (k3 / 3)];
    let mut err = None;
    walk_triples(m, k3, *p, |byte, row, col| {
        for (h, nib) in [(0, bytes[byte] >> 4), (3, bytes[byte] & 15)] {
            let t = (col + h) / 3;
            if nib > 13 {
                _ = err.get_or_insert(bad_nibble(row, col + h, k, nib));
            } else {
                mag[row * (k3 / 3) + t] = tri[t][nib as usize];
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    out.fill(0);
    walk_signs(m, k3, *p, |byte, bit, row, col| {
        let v = mag[row * (k3 / 3) + col / 3] as i64;
        out[row] += if (bytes[three + byte] >> bit) & 1 == 1 { -v } else { v };
    });
    let lut = pair_luts(&q[k3..]);
    let tiling = (p.bm_tile, 32, 32, 4);
    add_pairs(
        &bytes[three + signs..],
        (m, k - k3, k3, k),
        tiling,
        true,
        &lut,
        out,
        &mut err,
    );
    err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_satisfy_their_constraints() {
        for (kind, table) in [(TlKind::Tl1, TL1_PRESETS), (TlKind::Tl2, TL2_PRESETS)] {
            for p in table {
                p.params.validate(kind, p.m, p.k).unwrap();
                assert_eq!(TlParams::preset(kind, p.m, p.k), Some(p.params));
            }
        }
        // 3B's 3200-column TL2 tensors keep a 32-column pair remainder.
        let p = TlParams::preset(TlKind::Tl2, 3200, 3200).unwrap();
        assert_eq!(tl2_parts(3200, 3200, p).0, 3168);
        assert!(TlParams::general(TlKind::Tl1, 100, 64).is_err());
        assert!(TlParams::general(TlKind::Tl2, 64, 100).is_err());
    }

    #[test]
    fn tl1_byte_follows_the_converter() {
        // One tile: M = BM = bm = 32, K = BK = 8 (by = 8): bytes [m16o][kq][m16i].
        let (m, k) = (32, 8);
        let codes: Vec<i8> = (0..m * k).map(|i| [-1, 0, 1][(i * 5 + i / 7) % 3]).collect();
        let p = TlParams {
            bm_tile: 32,
            bk: 8,
            bm: 32,
        };
        let bytes = tl1_pack(&codes, m, k, &p).unwrap();
        let idx = |r: usize, pair: usize| (3 * codes[r * k + 2 * pair] + codes[r * k + 2 * pair + 1] + 4) as u8;
        // Byte 16 is (m16o 0, kq 1, row 0): pairs 2 and 3 of row 0.
        assert_eq!(bytes[16], idx(0, 2) << 4 | idx(0, 3));
        // Byte 37 is (m16o 1, kq 0, row 16 + 5): pairs 0 and 1.
        assert_eq!(bytes[37], idx(21, 0) << 4 | idx(21, 1));
    }
}
