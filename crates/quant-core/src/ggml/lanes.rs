//! A small lane abstraction for the lane-parallel quantizers of
//! [`super::quant_k_lanes`]: `N` independent f32 lanes with exactly the IEEE
//! operations of scalar Rust (no fused multiply-add, correctly rounded division
//! and square root), C's comparisons (false with NaN, except `!=`), selects, and
//! ggml's `nearest_int` with a clamp. The portable [`L4`] is written as plain
//! array loops (LLVM maps them to SSE2 or NEON); `arch` adds wider ones.

use super::util::nearest_int;
use core::ops::{Add, Div, Mul, Sub};

/// `N` f32 lanes; every operation acts on each lane as the scalar operation does.
pub(crate) trait Lanes:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// The number of lanes (at most 16).
    const N: usize;
    /// One boolean per lane.
    type Mask: Copy;
    /// Every lane `v`.
    fn splat(v: f32) -> Self;
    /// Lanes from `src[..N]`.
    fn load(src: &[f32]) -> Self;
    /// Lanes into `dst[..N]`.
    fn store(self, dst: &mut [f32]);
    /// `|x|` (clears the sign bit).
    fn abs(self) -> Self;
    /// `√x`, correctly rounded.
    fn sqrt(self) -> Self;
    /// C's `a < b`.
    fn lt(self, o: Self) -> Self::Mask;
    /// C's `a > b`.
    fn gt(self, o: Self) -> Self::Mask;
    /// C's `a == b`.
    fn eq(self, o: Self) -> Self::Mask;
    /// C's `a != b` (true with NaN).
    fn ne(self, o: Self) -> Self::Mask;
    /// Lane-wise `a && b`.
    fn and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// C's `m ? a : b`.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// `nearest_int(x).min(hi).max(lo)` as f32 (`lo ≤ hi`, both small).
    fn round_clamp(self, lo: i32, hi: i32) -> Self;
}

/// Four portable lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct L4([f32; 4]);

macro_rules! l4_binop {
    ($tr:ident, $f:ident, $op:tt) => {
        impl $tr for L4 {
            type Output = L4;
            #[inline(always)]
            fn $f(self, o: L4) -> L4 {
                let (a, b) = (self.0, o.0);
                L4([a[0] $op b[0], a[1] $op b[1], a[2] $op b[2], a[3] $op b[3]])
            }
        }
    };
}
l4_binop!(Add, add, +);
l4_binop!(Sub, sub, -);
l4_binop!(Mul, mul, *);
l4_binop!(Div, div, /);

impl L4 {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) -> L4 {
        L4(self.0.map(f))
    }
    #[inline(always)]
    fn cmp(self, o: L4, f: impl Fn(f32, f32) -> bool) -> [bool; 4] {
        let (a, b) = (self.0, o.0);
        [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
    }
}

impl Lanes for L4 {
    const N: usize = 4;
    type Mask = [bool; 4];
    #[inline(always)]
    fn splat(v: f32) -> L4 {
        L4([v; 4])
    }
    #[inline(always)]
    fn load(src: &[f32]) -> L4 {
        L4([src[0], src[1], src[2], src[3]])
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        dst[..4].copy_from_slice(&self.0);
    }
    #[inline(always)]
    fn abs(self) -> L4 {
        self.map(f32::abs)
    }
    #[inline(always)]
    fn sqrt(self) -> L4 {
        self.map(f32::sqrt)
    }
    #[inline(always)]
    fn lt(self, o: L4) -> [bool; 4] {
        self.cmp(o, |a, b| a < b)
    }
    #[inline(always)]
    fn gt(self, o: L4) -> [bool; 4] {
        self.cmp(o, |a, b| a > b)
    }
    #[inline(always)]
    fn eq(self, o: L4) -> [bool; 4] {
        self.cmp(o, |a, b| a == b)
    }
    #[inline(always)]
    fn ne(self, o: L4) -> [bool; 4] {
        self.cmp(o, |a, b| a != b)
    }
    #[inline(always)]
    fn and(a: [bool; 4], b: [bool; 4]) -> [bool; 4] {
        [a[0] & b[0], a[1] & b[1], a[2] & b[2], a[3] & b[3]]
    }
    #[inline(always)]
    fn select(m: [bool; 4], a: L4, b: L4) -> L4 {
        let s = |k: usize| if m[k] { a.0[k] } else { b.0[k] };
        L4([s(0), s(1), s(2), s(3)])
    }
    #[inline(always)]
    fn round_clamp(self, lo: i32, hi: i32) -> L4 {
        self.map(|v| nearest_int(v).min(hi).max(lo) as f32)
    }
}

/// Two sets of lanes side by side (`2·V::N` lanes): twice the independent work
/// per instruction stream, which hides the latency of the sequential sums.
#[derive(Clone, Copy, Debug)]
// Used by the x86-64 AVX2 quantizers; other targets use the portable lanes alone.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Pair<V>(V, V);

macro_rules! pair_binop {
    ($tr:ident, $f:ident) => {
        impl<V: Lanes> $tr for Pair<V> {
            type Output = Pair<V>;
            #[inline(always)]
            fn $f(self, o: Pair<V>) -> Pair<V> {
                Pair(self.0.$f(o.0), self.1.$f(o.1))
            }
        }
    };
}
pair_binop!(Add, add);
pair_binop!(Sub, sub);
pair_binop!(Mul, mul);
pair_binop!(Div, div);

impl<V: Lanes> Lanes for Pair<V> {
    const N: usize = 2 * V::N;
    type Mask = (V::Mask, V::Mask);
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Pair(V::splat(v), V::splat(v))
    }
    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        Pair(V::load(src), V::load(&src[V::N..]))
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        self.0.store(dst);
        self.1.store(&mut dst[V::N..]);
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Pair(self.0.abs(), self.1.abs())
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Pair(self.0.sqrt(), self.1.sqrt())
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Self::Mask {
        (self.0.lt(o.0), self.1.lt(o.1))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self::Mask {
        (self.0.gt(o.0), self.1.gt(o.1))
    }
    #[inline(always)]
    fn eq(self, o: Self) -> Self::Mask {
        (self.0.eq(o.0), self.1.eq(o.1))
    }
    #[inline(always)]
    fn ne(self, o: Self) -> Self::Mask {
        (self.0.ne(o.0), self.1.ne(o.1))
    }
    #[inline(always)]
    fn and(a: Self::Mask, b: Self::Mask) -> Self::Mask {
        (V::and(a.0, b.0), V::and(a.1, b.1))
    }
    #[inline(always)]
    fn select(m: Self::Mask, a: Self, b: Self) -> Self {
        Pair(V::select(m.0, a.0, b.0), V::select(m.1, a.1, b.1))
    }
    #[inline(always)]
    fn round_clamp(self, lo: i32, hi: i32) -> Self {
        Pair(self.0.round_clamp(lo, hi), self.1.round_clamp(lo, hi))
    }
}
