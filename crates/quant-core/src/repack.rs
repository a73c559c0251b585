//! Row-interleaved weight layouts for matrix-vector products.
//!
//! A Q4_0 matvec one row at a time spends most of its instructions on the float
//! side of each 32-element block (one conversion and one multiply-add per row and
//! block). [`Q4_0x8`] stores eight rows' blocks of the same column side by side, so
//! one SIMD step computes the eight rows' integer block sums in the eight lanes of
//! one vector and the float side runs once for all eight (the idea of ggml's CPU
//! "repack" buffers; this layout is qload's own and never written to a file).
//!
//! Results are bit for bit those of the scalar Q4_0 · Q8_0 dot product
//! ([`crate::codec::Codec::vec_dot`] with SIMD off) for every row: each row's lane
//! adds `sumi · (d_w · d_a)` block by block in the scalar order, with separate
//! multiply and add.
//!
//! [`I2sX4`] does the same for x86-layout I2_S: four rows' 32-byte blocks of the same
//! column side by side, so a group of rows is one sequential stream for the memory
//! system instead of four (a matvec from DRAM is bound by how fast one core streams
//! its weights in); its integers are exactly those of [`i2s::matvec_int`].

use crate::bitnet::BitnetError;
use crate::bitnet::act::QuantizedAct;
use crate::bitnet::i2s::{self, I2sLayout, I2sRef, dot_codes_scalar};
use crate::ggml::blocks::{BlockQ4_0, BlockQ8_0, f16_le};
use crate::{QuantError, kernels};
use bytemuck::cast_slice;
use qload_dtype::DType;
use rayon::prelude::*;

/// Bytes of one interleaved block column of eight rows: eight f16 scales, then
/// four 32-byte groups.
pub const GROUP_BLOCK_BYTES: usize = 8 * 18;

/// Whether this CPU has a SIMD kernel for [`Q4_0x8`] (AVX2 today). Without one the
/// layout runs its scalar specification, slower than the row-major SIMD dot
/// products, so callers should keep row-major weights then.
pub fn q4_0x8_is_fast() -> bool {
    crate::arch::q4_0x8_group().is_some()
}

/// Group kernel: `(group, act, prep, out)` sets `out[k]` to row `k`'s dot product
/// over the group's `act.len() / 34` block columns; `prep[j]` is `(8 · Σ q, d)` of
/// activation block `j`.
pub(crate) type GroupFn = fn(&[u8], &[u8], &[(i32, f32)], &mut [f32; 8]);

/// A Q4_0 matrix with every group of eight rows interleaved block by block; rows
/// past the last whole group stay plain Q4_0 rows at the end.
///
/// Group block column `j` holds the eight rows' f16 scales (`d`) and then four
/// 32-byte vectors `P_g` (`g` in 0..4): bytes `4k..4k + 4` of `P_g` are bytes
/// `4g..4g + 4` of row `k`'s `qs` — low nibbles elements `4g..4g + 4`, high nibbles
/// `16 + 4g..16 + 4g + 4` — so each 32-bit lane of `P_g` belongs to one row and
/// meets the same four activation bytes in every lane.
#[derive(Clone)]
pub struct Q4_0x8 {
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Q4_0x8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q4_0x8")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

fn shape_error(what: &'static str, expected: usize, actual: usize) -> QuantError {
    QuantError::LengthMismatch {
        dtype: DType::Q4_0,
        what,
        expected,
        actual,
    }
}

impl Q4_0x8 {
    /// Interleaves a row-major Q4_0 matrix of `rows × cols` elements.
    pub fn new(w: &[u8], rows: usize, cols: usize) -> Result<Self, QuantError> {
        if !cols.is_multiple_of(32) {
            return Err(QuantError::NotBlockMultiple {
                dtype: DType::Q4_0,
                what: "row length",
                len: cols,
                block: 32,
            });
        }
        let row_bytes = cols / 32 * 18;
        let total = rows
            .checked_mul(row_bytes)
            .ok_or(shape_error("weight bytes", usize::MAX, w.len()))?;
        if w.len() != total {
            return Err(shape_error("weight bytes", total, w.len()));
        }
        let mut bytes = vec![0u8; total];
        if row_bytes == 0 {
            return Ok(Q4_0x8 { rows, cols, bytes });
        }
        let groups = rows / 8;
        let blocks = cols / 32;
        let (grouped, tail) = bytes.split_at_mut(groups * 8 * row_bytes);
        grouped
            .par_chunks_mut(8 * row_bytes)
            .zip(w.par_chunks(8 * row_bytes))
            .for_each(|(out, src)| {
                let rows: Vec<&[BlockQ4_0]> = src.chunks_exact(row_bytes).map(cast_slice).collect();
                for (j, ob) in out.chunks_exact_mut(GROUP_BLOCK_BYTES).enumerate() {
                    for (k, row) in rows.iter().enumerate() {
                        let b = &row[j];
                        ob[2 * k..2 * k + 2].copy_from_slice(&b.d);
                        for g in 0..4 {
                            let o = 16 + 32 * g + 4 * k;
                            ob[o..o + 4].copy_from_slice(&b.qs[4 * g..4 * g + 4]);
                        }
                    }
                }
                debug_assert_eq!(out.len(), blocks * GROUP_BLOCK_BYTES);
            });
        tail.copy_from_slice(&w[groups * 8 * row_bytes..]);
        Ok(Q4_0x8 { rows, cols, bytes })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The interleaved bytes (as many as the plain matrix has).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The plain row-major Q4_0 bytes back.
    pub fn unpack(&self) -> Vec<u8> {
        let row_bytes = self.cols / 32 * 18;
        let mut w = vec![0u8; self.bytes.len()];
        if row_bytes == 0 {
            return w;
        }
        let groups = self.rows / 8;
        for (src, out) in self
            .bytes
            .chunks_exact(8 * row_bytes)
            .zip(w.chunks_exact_mut(8 * row_bytes))
            .take(groups)
        {
            for (j, gb) in src.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
                for k in 0..8 {
                    let o = k * row_bytes + 18 * j;
                    out[o..o + 2].copy_from_slice(&gb[2 * k..2 * k + 2]);
                    for g in 0..4 {
                        let s = 16 + 32 * g + 4 * k;
                        out[o + 2 + 4 * g..o + 6 + 4 * g].copy_from_slice(&gb[s..s + 4]);
                    }
                }
            }
        }
        let done = groups * 8 * row_bytes;
        w[done..].copy_from_slice(&self.bytes[done..]);
        w
    }

    /// `y = W·x`: `x` is quantized to Q8_0 once, then groups of eight rows run on
    /// rayon's pool (the rows after the last whole group one at a time).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<(), QuantError> {
        if x.len() != self.cols {
            return Err(shape_error("activation length", self.cols, x.len()));
        }
        if y.len() != self.rows {
            return Err(shape_error("output length", self.rows, y.len()));
        }
        if self.cols == 0 {
            y.fill(0.0);
            return Ok(());
        }
        self.matvec_q8_0(&kernels::quantize_activations(DType::Q8_0, x)?, y)
    }

    /// `y = W·a` for activations already quantized to Q8_0 (`cols / 32` blocks of
    /// 34 bytes, e.g. from [`kernels::quantize_activations`]).
    pub fn matvec_q8_0(&self, act: &[u8], y: &mut [f32]) -> Result<(), QuantError> {
        if act.len() != self.cols / 32 * 34 {
            return Err(QuantError::LengthMismatch {
                dtype: DType::Q8_0,
                what: "activation bytes",
                expected: self.cols / 32 * 34,
                actual: act.len(),
            });
        }
        if y.len() != self.rows {
            return Err(shape_error("output length", self.rows, y.len()));
        }
        if self.cols == 0 {
            y.fill(0.0);
            return Ok(());
        }
        self.run(act, y);
        Ok(())
    }

    fn run(&self, act: &[u8], y: &mut [f32]) {
        let row_bytes = self.cols / 32 * 18;
        let ys: &[BlockQ8_0] = cast_slice(act);
        let prep: Vec<(i32, f32)> = ys
            .iter()
            .map(|b| (8 * b.qs.iter().map(|&q| q as i8 as i32).sum::<i32>(), b.d()))
            .collect();
        let kern = crate::arch::q4_0x8_group().unwrap_or(group_scalar);
        let groups = self.rows / 8;
        let (gy, ty) = y.split_at_mut(groups * 8);
        // Two groups per task: 16 rows, as the other matvecs.
        gy.par_chunks_mut(16)
            .zip(self.bytes.par_chunks(16 * row_bytes))
            .for_each(|(y, g)| {
                for (y, g) in y.chunks_exact_mut(8).zip(g.chunks_exact(8 * row_bytes)) {
                    let mut out = [0f32; 8];
                    kern(g, act, &prep, &mut out);
                    y.copy_from_slice(&out);
                }
            });
        // The scalar dot product: the bits every grouped row gets.
        for (y, row) in ty
            .iter_mut()
            .zip(self.bytes[groups * 8 * row_bytes..].chunks_exact(row_bytes))
        {
            *y = crate::dot::vec_dot_q4_0_q8_0(row, act);
        }
    }
}

/// The scalar specification of a group kernel: per row, the scalar Q4_0 · Q8_0 dot
/// product's operations in its order.
pub(crate) fn group_scalar(group: &[u8], act: &[u8], _prep: &[(i32, f32)], out: &mut [f32; 8]) {
    let ys: &[BlockQ8_0] = cast_slice(act);
    let mut sum = [0f32; 8];
    for (gb, y) in group.chunks_exact(GROUP_BLOCK_BYTES).zip(ys) {
        for (k, s) in sum.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for g in 0..4 {
                for e in 0..4 {
                    let byte = gb[16 + 32 * g + 4 * k + e];
                    let i = 4 * g + e;
                    sumi += ((byte & 0x0f) as i32 - 8) * y.qs[i] as i8 as i32
                        + ((byte >> 4) as i32 - 8) * y.qs[i + 16] as i8 as i32;
                }
            }
            *s += sumi as f32 * (f16_le([gb[2 * k], gb[2 * k + 1]]) * y.d());
        }
    }
    *out = sum;
}

/// Rows per interleaved group of [`I2sX4`].
pub const I2S_X4_ROWS: usize = 4;

/// Whether this CPU has a SIMD kernel for [`I2sX4`] (AVX2 today). Without one the
/// layout runs its scalar specification, slower than the row-major kernels, so
/// callers should keep row-major weights then.
pub fn i2s_x4_is_fast() -> bool {
    crate::arch::i2s_rows_interleaved(false).is_some()
}

/// An x86-layout I2_S matrix (bitnet.cpp's tensor bytes: `n / 4` packed bytes, then
/// the scale and its padding) with every group of [`I2S_X4_ROWS`] rows interleaved
/// block by block; rows past the last whole group stay plain rows at the end, and
/// the bytes after the packed ones are kept as they were.
///
/// Group `g` takes the bytes of its rows, `4 · cols / 4` from `g · cols`, and holds
/// block `j` of its row `k` at `32 · (4 · j + k)`: per block column, the four rows'
/// 32 bytes back to back. Rows must be whole blocks (`cols` a multiple of 128).
#[derive(Clone)]
pub struct I2sX4 {
    rows: usize,
    cols: usize,
    scale: f32,
    /// No code of the interleaved groups is 3 ([`i2s::codes_are_ternary`]), which
    /// lets the AVX2 kernel widen its i16 sums half as often.
    ternary: bool,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for I2sX4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I2sX4")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("scale", &self.scale)
            .field("ternary", &self.ternary)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Moves 32-byte blocks between a plain group of [`I2S_X4_ROWS`] rows of
/// `row_bytes` and its interleaved form: `to_il` interleaves `src` into `dst`, else
/// the reverse.
fn shuffle_group(src: &[u8], dst: &mut [u8], row_bytes: usize, to_il: bool) {
    for j in 0..row_bytes / 32 {
        for k in 0..I2S_X4_ROWS {
            let plain = k * row_bytes + 32 * j;
            let il = 32 * (I2S_X4_ROWS * j + k);
            let (from, to) = if to_il { (plain, il) } else { (il, plain) };
            dst[to..to + 32].copy_from_slice(&src[from..from + 32]);
        }
    }
}

impl I2sX4 {
    /// Interleaves x86-layout I2_S tensor bytes of a `rows × cols` matrix (at least
    /// the `rows · cols / 4` packed bytes and the 4-byte scale, as [`I2sRef::new`]).
    pub fn new(bytes: &[u8], rows: usize, cols: usize) -> Result<Self, BitnetError> {
        if !cols.is_multiple_of(128) {
            return Err(BitnetError::Shape {
                rows,
                cols,
                why: "the interleaved I2_S layout needs rows of whole 128-element blocks",
            });
        }
        let n = rows.checked_mul(cols).ok_or(BitnetError::Shape {
            rows,
            cols,
            why: "the element count overflows",
        })?;
        let t = I2sRef::new(bytes, n, I2sLayout::X86)?;
        let row_bytes = cols / 4;
        let mut out = bytes.to_vec();
        let grouped = rows / I2S_X4_ROWS * I2S_X4_ROWS * row_bytes;
        if row_bytes > 0 {
            out[..grouped]
                .par_chunks_mut(I2S_X4_ROWS * row_bytes)
                .zip(bytes[..grouped].par_chunks(I2S_X4_ROWS * row_bytes))
                .for_each(|(dst, src)| shuffle_group(src, dst, row_bytes, true));
        }
        let ternary = bytes[..grouped].par_chunks(1 << 16).all(i2s::codes_are_ternary);
        Ok(I2sX4 {
            rows,
            cols,
            scale: t.scale(),
            ternary,
            bytes: out,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The per-tensor scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The interleaved bytes (as many as the plain tensor has).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The plain I2_S tensor bytes back.
    pub fn unpack(&self) -> Vec<u8> {
        let row_bytes = self.cols / 4;
        let mut w = self.bytes.clone();
        if row_bytes > 0 {
            let grouped = self.rows / I2S_X4_ROWS * I2S_X4_ROWS * row_bytes;
            for (src, dst) in self.bytes[..grouped]
                .chunks_exact(I2S_X4_ROWS * row_bytes)
                .zip(w[..grouped].chunks_exact_mut(I2S_X4_ROWS * row_bytes))
            {
                shuffle_group(src, dst, row_bytes, false);
            }
        }
        w
    }

    /// Exact integer products, as [`i2s::matvec_int`] gives them for the plain tensor:
    /// `out[r] = Σ_j (code(r, j) − 1) · q[j]`. Groups run on rayon's pool.
    pub fn matvec_int(&self, q: &[i8], out: &mut [i64]) -> Result<(), BitnetError> {
        crate::bitnet::error::check_len("activation length", self.cols, q.len())?;
        crate::bitnet::error::check_len("output length", self.rows, out.len())?;
        let (rows, cols, row_bytes) = (self.rows, self.cols, self.cols / 4);
        let grouped = rows / I2S_X4_ROWS * I2S_X4_ROWS;
        let (gout, tout) = out.split_at_mut(grouped);
        if grouped < rows {
            // The rows after the last group: plain x86-layout rows of whole blocks.
            let tail = I2sRef::from_parts(
                &self.bytes[grouped * row_bytes..],
                (rows - grouped) * cols,
                I2sLayout::X86,
                self.scale,
            );
            i2s::matvec_int(&tail, rows - grouped, cols, q, tout)?;
        }
        if cols == 0 {
            gout.fill(0);
            return Ok(());
        }
        let sum_q: i64 = q.iter().map(|&v| v as i64).sum();
        let kern = crate::arch::i2s_rows_interleaved(self.ternary).unwrap_or(rows_interleaved_scalar);
        let task_rows = i2s::ROWS_PER_TASK;
        const { assert!(i2s::ROWS_PER_TASK.is_multiple_of(I2S_X4_ROWS)) };
        gout.par_chunks_mut(task_rows)
            .zip(self.bytes[..grouped * row_bytes].par_chunks(task_rows * row_bytes))
            .for_each(|(out, w)| {
                out.fill(-sum_q);
                // Columns c.. of every group start c bytes into it (128 elements take
                // 32 bytes in each of its four rows).
                i2s::add_rows_kernel(kern, |c, _| &w[c..], row_bytes, q, 0, out, 1);
            });
        Ok(())
    }

    /// `y = W·x` with `x` already quantized, the bits [`i2s::matvec`] gives for the
    /// plain tensor.
    pub fn matvec(&self, a: &QuantizedAct, y: &mut [f32]) -> Result<(), BitnetError> {
        crate::bitnet::error::check_len("activation length", self.cols, a.q.len())?;
        crate::bitnet::error::check_len("output length", self.rows, y.len())?;
        i2s::matvec_by(self.rows, self.scale, a, y, |q, out| self.matvec_int(q, out))
    }

    /// `y = W·x` for f32 activations, quantized with BitNet's symmetric per-token
    /// scheme first (as [`i2s::matvec_f32`]).
    pub fn matvec_f32(&self, x: &[f32], y: &mut [f32]) -> Result<(), BitnetError> {
        crate::bitnet::error::check_len("activation length", self.cols, x.len())?;
        self.matvec(&crate::bitnet::act::quantize_symmetric(x), y)
    }
}

/// The scalar specification of an interleaved rows kernel (see
/// [`i2s::I2sRowsFn`] and `arch::i2s_rows_interleaved`): `w` holds `out.len() / 4`
/// groups `4 · row_bytes` apart, and `out[4g + k] = Σ code·a` over the
/// `a.len() / 128` blocks of the group's row `k`.
pub(crate) fn rows_interleaved_scalar(w: &[u8], row_bytes: usize, a: &[i8], out: &mut [i32]) {
    let blocks = a.len() / 128;
    for (r, o) in out.iter_mut().enumerate() {
        let (g, k) = (r / I2S_X4_ROWS, r % I2S_X4_ROWS);
        let base = g * I2S_X4_ROWS * row_bytes;
        *o = (0..blocks)
            .map(|j| {
                let at = base + 32 * (I2S_X4_ROWS * j + k);
                dot_codes_scalar(I2sLayout::X86, &w[at..at + 32], &a[128 * j..128 * j + 128])
            })
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn random_q4_0(rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| (next() % 20001) as f32 / 10000.0 - 1.0)
            .collect();
        let c = codec(DType::Q4_0).unwrap();
        let mut w = vec![0u8; c.bytes_for(rows * cols).unwrap()];
        c.quantize(&x, cols, None, &mut w).unwrap();
        w
    }

    #[test]
    fn unpack_restores_the_bytes() {
        for (rows, cols) in [(8, 32), (19, 96), (3, 64), (16, 256)] {
            let w = random_q4_0(rows, cols, 7);
            let p = Q4_0x8::new(&w, rows, cols).unwrap();
            assert_eq!(p.bytes().len(), w.len());
            assert_eq!(p.unpack(), w, "{rows}×{cols}");
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Q4_0x8::new(&[0; 18], 1, 16).is_err());
        assert!(Q4_0x8::new(&[0; 18], 2, 32).is_err());
        let p = Q4_0x8::new(&[0; 36], 2, 32).unwrap();
        assert!(p.matvec(&[0.0; 31], &mut [0.0; 2]).is_err());
        assert!(p.matvec(&[0.0; 32], &mut [0.0; 3]).is_err());
    }

    #[test]
    fn matvec_gives_every_row_the_scalar_bits() {
        // 8·3 grouped rows and 5 plain ones; two pools: the same bits.
        let (rows, cols) = (29, 4096 + 64);
        let w = random_q4_0(rows, cols, 5);
        let x: Vec<f32> = (0..cols).map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0).collect();
        let act = kernels::quantize_activations(DType::Q8_0, &x).unwrap();
        let row_bytes = cols / 32 * 18;
        let want: Vec<u32> = (0..rows)
            .map(|r| crate::dot::vec_dot_q4_0_q8_0(&w[r * row_bytes..(r + 1) * row_bytes], &act).to_bits())
            .collect();
        let p = Q4_0x8::new(&w, rows, cols).unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![0f32; rows];
            pool.install(|| p.matvec(&x, &mut y)).unwrap();
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want,
                "{threads} threads"
            );
        }
        assert!(p.matvec_q8_0(&act[1..], &mut vec![0f32; rows]).is_err());
    }

    #[test]
    fn scalar_group_is_the_scalar_dot_product() {
        let (rows, cols) = (16, 320);
        let w = random_q4_0(rows, cols, 3);
        let x: Vec<f32> = (0..cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let act = kernels::quantize_activations(DType::Q8_0, &x).unwrap();
        let p = Q4_0x8::new(&w, rows, cols).unwrap();
        let row_bytes = cols / 32 * 18;
        for g in 0..2 {
            let mut out = [0f32; 8];
            group_scalar(
                &p.bytes()[g * 8 * row_bytes..(g + 1) * 8 * row_bytes],
                &act,
                &[],
                &mut out,
            );
            for (k, o) in out.iter().enumerate() {
                let r = 8 * g + k;
                let want = crate::dot::vec_dot_q4_0_q8_0(&w[r * row_bytes..(r + 1) * row_bytes], &act);
                assert_eq!(o.to_bits(), want.to_bits(), "row {r}");
            }
        }
    }

    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    /// Plain I2_S tensor bytes of a `rows × cols` matrix: every code 0..=3 (3 is not
    /// written by the encoders but arbitrary bytes hold it), a scale, the padding.
    fn random_i2s(rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut t = random_bytes(rows * cols / 4, seed);
        t.extend_from_slice(&0.0375f32.to_le_bytes());
        t.extend_from_slice(&[7; 28]);
        t
    }

    #[test]
    fn i2s_x4_unpack_restores_the_bytes() {
        for (rows, cols) in [(4, 128), (9, 384), (3, 256), (16, 1024), (0, 128), (5, 0)] {
            let t = random_i2s(rows, cols, 11);
            let p = I2sX4::new(&t, rows, cols).unwrap();
            assert_eq!(p.bytes().len(), t.len());
            assert_eq!(p.scale(), 0.0375);
            assert_eq!(p.unpack(), t, "{rows}×{cols}");
            if rows >= 4 && cols >= 256 {
                // Block 1 of row 0 follows block 0 of rows 0..4.
                assert_eq!(p.bytes()[128..160], t[32..64]);
                assert_eq!(p.bytes()[32..64], t[cols / 4..cols / 4 + 32]);
            }
        }
    }

    #[test]
    fn i2s_x4_refuses_what_it_cannot_hold() {
        let t = random_i2s(4, 256, 1);
        assert!(I2sX4::new(&t, 8, 128).is_ok());
        assert!(I2sX4::new(&t, 4, 192).is_err(), "partial blocks");
        assert!(I2sX4::new(&t[..255], 4, 256).is_err(), "no scale");
        assert!(I2sX4::new(&t, 8, 256).is_err(), "short");
        assert!(I2sX4::new(&t, usize::MAX, 256).is_err(), "overflow");
        let p = I2sX4::new(&t, 4, 256).unwrap();
        assert!(p.matvec_int(&[0; 255], &mut [0; 4]).is_err());
        assert!(p.matvec_int(&[0; 256], &mut [0; 5]).is_err());
        assert!(p.matvec_f32(&[0.0; 128], &mut [0.0; 4]).is_err());
    }

    #[test]
    fn i2s_x4_extreme_ternary_sums_are_exact() {
        // Every weight +1 (code 2) and every activation −128 or +127 over 32 blocks:
        // the ×4 i16 sums of the ternary AVX2 kernel reach −32 768 at each widening.
        let (rows, cols) = (8, 4096);
        let mut t = vec![0xaa; rows * cols / 4];
        t.extend_from_slice(&1f32.to_le_bytes());
        let p = I2sX4::new(&t, rows, cols).unwrap();
        assert!(p.ternary);
        for v in [-128i8, 127] {
            let mut got = vec![0i64; rows];
            p.matvec_int(&vec![v; cols], &mut got).unwrap();
            assert_eq!(got, vec![v as i64 * cols as i64; rows], "activations {v}");
        }
    }

    #[test]
    fn i2s_x4_matvec_gives_the_plain_matvec() {
        use crate::bitnet::act::{self, ActConfig, ActMode};
        // Groups and tail rows; one block; many; past one kernel call's columns.
        for (rows, cols) in [
            (11, 512),
            (4, 128),
            (8, 3200 / 128 * 128),
            (6, i2s::MAX_KERNEL_ELEMS + 256),
            (1, 256),
        ] {
            // Random codes (3 among them), and the same with every 3 made 2: the
            // ternary tensors that take the AVX2 kernel with the larger i16 budget.
            let random = random_i2s(rows, cols, (rows * cols) as u64);
            let mut ternary = random.clone();
            for b in &mut ternary[..rows * cols / 4] {
                *b &= !(*b & (*b >> 1) & 0x55);
            }
            for (t, is_ternary) in [(random, false), (ternary, true)] {
                let plain = I2sRef::new(&t, rows * cols, I2sLayout::X86).unwrap();
                let p = I2sX4::new(&t, rows, cols).unwrap();
                assert_eq!(p.ternary, is_ternary || rows < 4, "{rows}×{cols}");
                let acts: Vec<Vec<i8>> = vec![
                    vec![127; cols],
                    vec![-128; cols],
                    random_bytes(cols, 3).into_iter().map(|b| b as i8).collect(),
                ];
                for q in &acts {
                    let mut want = vec![0i64; rows];
                    i2s::matvec_int(&plain, rows, cols, q, &mut want).unwrap();
                    for threads in [1, 2] {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let mut got = vec![i64::MIN; rows];
                        pool.install(|| p.matvec_int(q, &mut got)).unwrap();
                        assert_eq!(got, want, "{rows}×{cols}, {threads} threads");
                    }
                    // The scalar specification of the group kernel, on its own.
                    let grouped = rows / 4 * 4;
                    if cols <= i2s::MAX_KERNEL_ELEMS {
                        let mut spec = vec![0i32; grouped];
                        rows_interleaved_scalar(p.bytes(), cols / 4, q, &mut spec);
                        let sum_q: i64 = q.iter().map(|&v| v as i64).sum();
                        let spec: Vec<i64> = spec.iter().map(|&v| v as i64 - sum_q).collect();
                        assert_eq!(spec, want[..grouped], "{rows}×{cols} scalar");
                    }
                }
                // The float results, symmetric and asymmetric activations.
                let x: Vec<f32> = (0..cols).map(|i| ((i * 37 % 101) as f32 - 40.0) / 17.0).collect();
                for mode in [ActMode::Symmetric, ActMode::Asymmetric] {
                    let a = act::quantize_row(
                        &x,
                        &ActConfig {
                            mode,
                            ..Default::default()
                        },
                    );
                    let (mut want, mut got) = (vec![0f32; rows], vec![0f32; rows]);
                    i2s::matvec(&plain, rows, cols, &a, &mut want).unwrap();
                    p.matvec(&a, &mut got).unwrap();
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{rows}×{cols} {mode:?}"
                    );
                }
            }
        }
    }
}
