//! 4-bit codes through a 16-entry table per group: the fast decode-to-f16 and fused
//! dot product of bitsandbytes NF4/FP4 and MLX affine 4-bit.
//!
//! Within one group (a bnb absmax block, an MLX scale group) every code `k` decodes to
//! the same value, so the group's 16 possible values are computed once — by the very
//! formula of the scalar decoder, `T[k] = r(base[k] · m)` and, when affine,
//! `T[k] = r(r(base[k] · m) + a)` with `r` the rounding of the compute dtype — and
//! the codes are looked up. A table entry is bit-identical to the scalar decoder's
//! value for that code; the SIMD kernels (`arch`) build the same table with the same
//! operations (no FMA) and are tested against these.

use half::f16;

use super::common::Round;

/// How a group's 16-entry table is built and how codes sit in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lut4 {
    /// The value of each code before scaling: bnb's `quant_map`, or `k` for MLX.
    pub base: [f32; 16],
    /// The compute dtype's rounding.
    pub round: Round,
    /// Whether a per-group offset is added (MLX biases) after the rounded product.
    pub affine: bool,
    /// Element `2i` in the high nibble of byte `i` (bnb); otherwise the low one (MLX).
    pub hi_first: bool,
}

/// `groups_to_f16(lut, group, mul, add, bytes, out)`: `mul.len()` whole groups of
/// `group` (even) elements, `bytes.len() == mul.len() · group / 2`,
/// `out.len() == mul.len() · group`; `add` is empty unless `lut.affine`.
pub(crate) type Lut4F16Fn = fn(&Lut4, usize, &[f32], &[f32], &[u8], &mut [u16]);

/// As [`Lut4F16Fn`], writing the f32 values.
pub(crate) type Lut4F32Fn = fn(&Lut4, usize, &[f32], &[f32], &[u8], &mut [f32]);

/// `groups_dot(lut, group, mul, add, bytes, x)`: as [`Lut4F16Fn`] with `x` in place of
/// `out`: `Σ T[code_j] · x_j` in f32.
pub(crate) type Lut4DotFn = fn(&Lut4, usize, &[f32], &[f32], &[u8], &[f32]) -> f32;

impl Lut4 {
    /// The decoded value of every code in a group with scale `m` and offset `a`.
    #[inline]
    pub(crate) fn table(&self, m: f32, a: f32) -> [f32; 16] {
        let mut t = [0f32; 16];
        for (t, &b) in t.iter_mut().zip(&self.base) {
            let v = self.round.apply(b * m);
            *t = if self.affine { self.round.apply(v + a) } else { v };
        }
        t
    }

    /// The code of element `j` of a byte run starting at an even element.
    #[inline]
    pub(crate) fn code(&self, bytes: &[u8], j: usize) -> usize {
        let b = bytes.get(j / 2).copied().unwrap_or(0);
        let hi = j.is_multiple_of(2) == self.hi_first;
        (if hi { b >> 4 } else { b & 0x0f }) as usize
    }
}

/// The portable [`Lut4F16Fn`].
pub(crate) fn groups_to_f16(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [u16]) {
    if group == 0 {
        return;
    }
    for (g, (out, bytes)) in out
        .chunks_exact_mut(group)
        .zip(bytes.chunks_exact(group / 2))
        .enumerate()
    {
        let t = l.table(mul[g], add.get(g).copied().unwrap_or(0.0));
        let h: [u16; 16] = std::array::from_fn(|k| f16::from_f32(t[k]).to_bits());
        for (j, o) in out.iter_mut().enumerate() {
            *o = h[l.code(bytes, j)];
        }
    }
}

/// The portable [`Lut4F32Fn`].
pub(crate) fn groups_to_f32(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], out: &mut [f32]) {
    if group == 0 {
        return;
    }
    for (g, (out, bytes)) in out
        .chunks_exact_mut(group)
        .zip(bytes.chunks_exact(group / 2))
        .enumerate()
    {
        let t = l.table(mul[g], add.get(g).copied().unwrap_or(0.0));
        for (j, o) in out.iter_mut().enumerate() {
            *o = t[l.code(bytes, j)];
        }
    }
}

/// The portable [`Lut4DotFn`] (eight f32 partial sums, as the SIMD kernel keeps).
pub(crate) fn groups_dot(l: &Lut4, group: usize, mul: &[f32], add: &[f32], bytes: &[u8], x: &[f32]) -> f32 {
    if group == 0 {
        return 0.0;
    }
    let mut acc = [0f32; 8];
    for (g, (x, bytes)) in x.chunks_exact(group).zip(bytes.chunks_exact(group / 2)).enumerate() {
        let t = l.table(mul[g], add.get(g).copied().unwrap_or(0.0));
        for (j, &xv) in x.iter().enumerate() {
            acc[j % 8] += t[l.code(bytes, j)] * xv;
        }
    }
    acc.iter().sum()
}

/// The fastest [`Lut4F16Fn`] on this CPU.
pub(crate) fn f16_kernel() -> Lut4F16Fn {
    crate::arch::lut4_f16().unwrap_or(groups_to_f16)
}

/// The fastest [`Lut4F32Fn`] on this CPU.
pub(crate) fn f32_kernel() -> Lut4F32Fn {
    crate::arch::lut4_f32().unwrap_or(groups_to_f32)
}

/// The fastest [`Lut4DotFn`] on this CPU.
pub(crate) fn dot_kernel() -> Lut4DotFn {
    crate::arch::lut4_dot().unwrap_or(groups_dot)
}

/// `params(first, mul, add)`: the scale and offset of groups `first ..
/// first + mul.len()` (`add` left alone when the table is not affine).
pub(crate) type Params<'p> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'p;

/// Groups gathered per kernel call.
const CHUNK: usize = 64;

/// One piece of a walk over 4-bit codes.
pub(crate) enum Piece<'s> {
    /// A run of whole groups: scale and offset of each (`add` empty unless affine) and
    /// their packed bytes.
    Full {
        /// Per-group scale.
        mul: &'s [f32],
        /// Per-group offset.
        add: &'s [f32],
        /// The groups' bytes.
        bytes: &'s [u8],
    },
    /// Elements `j0 .. j1` of one group (cut by the range, or the short last group).
    Part {
        /// The group's table.
        table: [f32; 16],
        /// The bytes from the group's start.
        bytes: &'s [u8],
        /// First element, within the group.
        j0: usize,
        /// End element, within the group.
        j1: usize,
    },
}

/// Walks flat elements `e0 .. e0 + len` of a weight of `numel` elements in groups of
/// `group` (even), handing each [`Piece`] to `f` with the offset where it starts
/// within the range.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk(
    lut: &Lut4,
    group: usize,
    numel: usize,
    data: &[u8],
    params: &Params<'_>,
    e0: usize,
    len: usize,
    f: &mut dyn FnMut(Piece<'_>, usize),
) {
    if group == 0 || !group.is_multiple_of(2) {
        return;
    }
    let end = e0.saturating_add(len).min(numel);
    let (mut mul, mut add) = ([0f32; CHUNK], [0f32; CHUNK]);
    let mut e = e0;
    while e < end {
        let gi = e / group;
        let gs = gi * group;
        let ge = gs.saturating_add(group).min(numel);
        if e == gs && ge - gs == group && ge <= end {
            let k = ((end - gs) / group).min(CHUNK);
            params(gi, &mut mul[..k], &mut add[..k]);
            let Some(bytes) = data.get(gs / 2..(gs + k * group) / 2) else {
                return;
            };
            let add: &[f32] = if lut.affine { &add[..k] } else { &[] };
            f(
                Piece::Full {
                    mul: &mul[..k],
                    add,
                    bytes,
                },
                e - e0,
            );
            e = gs + k * group;
        } else {
            let stop = ge.min(end);
            params(gi, &mut mul[..1], &mut add[..1]);
            let piece = Piece::Part {
                table: lut.table(mul[0], add[0]),
                bytes: data.get(gs / 2..).unwrap_or(&[]),
                j0: e - gs,
                j1: stop - gs,
            };
            f(piece, e - e0);
            e = stop;
        }
    }
}
