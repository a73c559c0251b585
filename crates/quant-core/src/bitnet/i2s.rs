//! I2_S: bitnet.cpp's 2-bit ternary layout, and the I2_S × int8 matrix-vector
//! product.
//!
//! **Layout** (bitnet.cpp `quantize_i2_s`): codes `w + 1` (−1→0, 0→1, +1→2) in
//! 2-bit fields over the *flattened* tensor, then one little-endian f32 scale right
//! after the `n/4` packed bytes, in a 32-byte area; the tensor takes `n/4 + 32`
//! bytes. Blocks:
//!
//! - [`I2sLayout::X86`] (what bitnet.cpp writes on x86, `QK_I2_S = 128`): 128
//!   elements in 32 bytes, byte `b` = `e[b]<<6 | e[b+32]<<4 | e[b+64]<<2 | e[b+96]`.
//! - [`I2sLayout::Arm`] (what bitnet.cpp writes when built for ARM NEON,
//!   `QK_I2_S = 64` in the current `ggml-bitnet-mad.cpp`): 64 elements in 16 bytes,
//!   byte `b` = `e[b]<<6 | e[b+16]<<4 | e[b+32]<<2 | e[b+48]`. (bitnet.cpp's first
//!   release used the 128-element layout on ARM too; files from it are
//!   [`I2sLayout::X86`].) The bytes carry no marker of their layout: the caller
//!   must know which machine wrote them.
//!
//! bitnet.cpp's non-default `ACT_PARALLEL`-off x86 build interleaves four rows per
//! byte instead; that variant is not implemented.
//!
//! **Tails** (qload's definition): bitnet.cpp only writes `n / block` whole blocks
//! and leaves the rest of the `n/4` bytes zero, i.e. it loses the last `n mod block`
//! elements. qload packs a last partial block of `t = n mod block` elements (`t` a
//! multiple of 4, as `n/4` bytes require) as four groups of `t/4`: byte `b` of it is
//! `e[b]<<6 | e[b+t/4]<<4 | e[b+2t/4]<<2 | e[b+3t/4]`. For `n` a multiple of the
//! block the bytes are bitnet.cpp's exactly; the size is always `n/4 + 32`.
//!
//! **Rows** are not aligned to blocks: a row of `cols` elements starts at flat
//! element `row · cols`, possibly inside a block (bitnet.cpp's kernel assumes
//! `cols` is a multiple of the block and is wrong otherwise). qload's matrix-vector
//! product reads each row's elements wherever they are, so any `cols` is exact.
//!
//! **Code 3** never comes out of an encoder. bitnet.cpp's kernel multiplies the raw
//! 2-bit code and subtracts `Σa`, so code 3 acts as the value +2; qload decodes and
//! multiplies it the same way (value = code − 1), so decode and kernel agree on
//! every byte.

use super::BitnetError;
use super::act::QuantizedAct;
use super::error::check_len;
use super::ternary::Absmean;
use rayon::prelude::*;

/// Bytes after the packed codes: the f32 scale and padding.
pub const SCALE_BYTES: usize = 32;

/// The block arrangement of I2_S bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum I2sLayout {
    /// 128 elements in 32 bytes (bitnet.cpp on x86; the converters' output).
    X86,
    /// 64 elements in 16 bytes (bitnet.cpp built for ARM NEON).
    Arm,
}

impl I2sLayout {
    /// Elements per block.
    pub const fn block_elems(self) -> usize {
        match self {
            I2sLayout::X86 => 128,
            I2sLayout::Arm => 64,
        }
    }

    /// Elements per 2-bit plane of a whole block (a quarter of the block).
    pub const fn group(self) -> usize {
        self.block_elems() / 4
    }

    /// The layout bitnet.cpp writes on the machine this runs on.
    pub const fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            I2sLayout::Arm
        } else {
            I2sLayout::X86
        }
    }
}

fn check_n(n: usize) -> Result<(), BitnetError> {
    if !n.is_multiple_of(4) {
        return Err(BitnetError::Shape {
            rows: 1,
            cols: n,
            why: "I2_S needs an element count that is a multiple of 4",
        });
    }
    Ok(())
}

/// Bytes of an I2_S tensor of `n` elements: `n/4 + 32`.
pub fn tensor_bytes(n: usize) -> Result<usize, BitnetError> {
    check_n(n)?;
    Ok(n / 4 + SCALE_BYTES)
}

/// Byte index and shift of element `p` of an `n`-element tensor.
#[inline(always)]
fn locate(layout: I2sLayout, n: usize, p: usize) -> (usize, u32) {
    let w = layout.block_elems();
    let full = n / w * w;
    let g = if p < full { w / 4 } else { (n - full) / 4 };
    let o = p % w;
    (p / w * (w / 4) + o % g, 6 - 2 * (o / g) as u32)
}

#[inline(always)]
fn pack4(a: u8, b: u8, c: u8, d: u8) -> u8 {
    (a << 6) | (b << 4) | (c << 2) | d
}

/// Packs codes (`code(i)` in 0..=3 for element `i`) into `out` (`n/4` bytes).
#[inline(always)]
pub(crate) fn pack_with(layout: I2sLayout, n: usize, out: &mut [u8], code: impl Fn(usize) -> u8) {
    let w = layout.block_elems();
    let full = n / w * w;
    for (blk, ob) in out[..full / 4].chunks_exact_mut(w / 4).enumerate() {
        let base = blk * w;
        let g = w / 4;
        for b in 0..g {
            ob[b] = pack4(
                code(base + b),
                code(base + b + g),
                code(base + b + 2 * g),
                code(base + b + 3 * g),
            );
        }
    }
    let g = (n - full) / 4;
    for b in 0..g {
        let p = full + b;
        out[full / 4 + b] = pack4(code(p), code(p + g), code(p + 2 * g), code(p + 3 * g));
    }
}

pub(crate) fn write_scale(out: &mut [u8], n: usize, scale: f32) {
    let area = &mut out[n / 4..];
    area.fill(0);
    area[..4].copy_from_slice(&scale.to_le_bytes());
}

/// Packs raw 2-bit codes (0..=3, `value + 1`; higher bits ignored) with `scale`
/// into `out` (`n/4 + 32` bytes, checked by the caller).
pub(crate) fn encode_raw(codes: &[u8], scale: f32, layout: I2sLayout, out: &mut [u8]) {
    let n = codes.len();
    pack_with(layout, n, out, |i| codes[i] & 3);
    write_scale(out, n, scale);
}

/// Encodes ternary codes (−1..=1) with a per-tensor `scale` into `out`
/// (`n/4 + 32` bytes).
pub fn encode(codes: &[i8], scale: f32, layout: I2sLayout, out: &mut [u8]) -> Result<(), BitnetError> {
    let n = codes.len();
    check_len("I2_S byte length", tensor_bytes(n)?, out.len())?;
    if let Some(index) = codes.iter().position(|c| !(-1..=1).contains(c)) {
        return Err(BitnetError::BadCode {
            index,
            code: codes[index],
        });
    }
    pack_with(layout, n, out, |i| (codes[i] + 1) as u8);
    write_scale(out, n, scale);
    Ok(())
}

/// BitNet b1.58 end to end, as bitnet.cpp produces a tensor from f32 weights:
/// per-tensor absmean ternarization (see [`super::ternary`]) then `quantize_i2_s`,
/// whose scale is `max|W'| = 1/s` (0 when every code is 0).
pub fn quantize(w: &[f32], layout: I2sLayout) -> Result<Vec<u8>, BitnetError> {
    let mut out = vec![0u8; tensor_bytes(w.len())?];
    quantize_into(w, layout, &mut out)?;
    Ok(out)
}

/// [`quantize`] into a caller's buffer of `n/4 + 32` bytes.
///
/// The bytes are always those of the two-pass definition (the exact mean over the
/// whole tensor, then every code under it), but a large x86-layout tensor is read
/// once, not twice, where the CPU has the fused kernel ([`I2sStream::speculate`]).
pub fn quantize_into(w: &[f32], layout: I2sLayout, out: &mut [u8]) -> Result<(), BitnetError> {
    let n = w.len();
    check_len("I2_S byte length", tensor_bytes(n)?, out.len())?;
    let mut stream = I2sStream::new(n, layout)?;
    let means = stream
        .sample_spans()
        .map(|spans| spans.map(|r| span_mean(&w[r])).collect::<Vec<_>>());
    if means.is_some_and(|m| stream.speculate(&m)) {
        for start in (0..n).step_by(SPECULATE_CHUNK) {
            let end = (start + SPECULATE_CHUNK).min(n);
            stream.add_and_pack(start, &w[start..end], &mut out[start / 4..end / 4]);
        }
        if let Some(any) = stream.resolve(&mut out[..n / 4]) {
            return stream.finish(any, out);
        }
        // The band missed: the mean is known, pack everything under it.
    } else {
        stream.add_to_mean(w);
        stream.absmean();
    }
    let any = stream.pack(0, w, &mut out[..n / 4]);
    stream.finish(any, out)
}

/// The mean `|w|` of a sampled span, for [`I2sStream::speculate`] (an estimate:
/// sixteen f32 partial sums, which vectorize).
pub fn span_mean(values: &[f32]) -> f64 {
    let mut part = [0f32; 16];
    let whole = values.len() / 16 * 16;
    for c in values[..whole].chunks_exact(16) {
        for (p, v) in part.iter_mut().zip(c) {
            *p += v.abs();
        }
    }
    let rest: f64 = values[whole..].iter().map(|v| v.abs() as f64).sum();
    (part.iter().map(|&p| p as f64).sum::<f64>() + rest) / values.len().max(1) as f64
}

/// Appends `(index, value)` of every element whose 2-bit field in `fields` (the
/// fused kernel's, laid out as the chunk's packed bytes) is 1, for the chunk of whole
/// x86 blocks starting at element `start`. Run right after the kernel, while the
/// chunk is in cache; a block at a time (most have none), a plane's 32 fields
/// gathered into one mask.
fn collect_undecided(fields: &[u8], start: usize, chunk: &[f32], undecided: &mut Vec<(u32, f32)>) {
    /// Bit i of the result: bit `s` of byte i of `word` (the eight bits multiplied
    /// into the top byte; the other partial products fall outside it, carry-free).
    fn gather(word: u64, s: u32) -> u64 {
        ((word >> s) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }
    for (blk, block) in fields.chunks_exact(32).enumerate() {
        let words: [u64; 4] =
            std::array::from_fn(|j| u64::from_le_bytes(block[8 * j..8 * j + 8].try_into().expect("8 bytes")));
        if words.iter().fold(0, |a, w| a | w) == 0 {
            continue;
        }
        // Bit e: element e of the block (the field at bit 6 − 2k of byte b for
        // e = 32k + b); one loop over the block's marks, not one per plane.
        let mut marks = (0..4).fold(0u128, |m, k| {
            let plane = (0..4).fold(0u32, |p, j| p | (gather(words[j], 6 - 2 * k as u32) as u32) << (8 * j));
            m | (plane as u128) << (32 * k)
        });
        while marks != 0 {
            let e = blk * 128 + marks.trailing_zeros() as usize;
            undecided.push(((start + e) as u32, chunk[e]));
            marks &= marks - 1;
        }
    }
}

/// Tensors below this many elements (16 MiB of f32) take two passes: the second
/// pass reads them from cache, and the band of a small sample is wide.
const SPECULATE_MIN: usize = 1 << 22;
/// Spans sampled for the band, and the most elements per span (the sample is at most
/// 1/32 of the tensor; spans start on and span whole 256-element blocks, so that a
/// block-quantized source decodes them as they are).
const SAMPLE_SPANS: usize = 256;
const SPAN_ELEMS: usize = 4096;
/// The widest band tried, relative to the sampled mean: about 0.6·δ of Gaussian-like
/// weights fall undecided, well under the 1/32 limit.
const MAX_BAND: f64 = 0.04;
/// Elements per call of the fused kernel (its marks are collected between calls,
/// while the chunk is in cache).
const SPECULATE_CHUNK: usize = 1 << 14;

/// A speculative pass 1 in progress (see [`I2sStream::speculate`]).
#[derive(Debug, Clone)]
struct Speculation {
    fused: crate::arch::PackI2sSpecFn,
    /// The band for the mean, and the multipliers of its ends (`s.0 ≤ s.1`).
    m: (f32, f32),
    s: (f32, f32),
    /// Still packing speculatively (false once the undecided list passed n/32, or a
    /// chunk came out of order).
    open: bool,
    undecided: Vec<(u32, f32)>,
    fields: Vec<u8>,
    /// OR of every packed byte XOR 0x55.
    any: u8,
    /// The tensor's last partial block, packed once the mean is known.
    tail: Vec<f32>,
}

/// [`quantize`] for a tensor that arrives in chunks (a loader converting under a
/// memory budget): pass 1 feeds every chunk in order to [`I2sStream::add_to_mean`],
/// pass 2 packs chunks (in any order, in parallel) with [`I2sStream::pack`], then
/// [`I2sStream::finish`] writes the scale. The bytes are identical to [`quantize`]'s:
/// the mean is summed in the same 16-lane order (lane = element index mod 16).
#[derive(Debug, Clone)]
pub struct I2sStream {
    layout: I2sLayout,
    n: usize,
    lanes: [f64; 16],
    seen: usize,
    absmean: Option<Absmean>,
    /// Set by [`I2sStream::clip`]: pass 1 is fed again, summing `min(|w|, limit)`.
    limit: Option<f32>,
    /// Set by [`I2sStream::speculate`].
    spec: Option<Speculation>,
}

impl I2sStream {
    /// A stream for an `n`-element tensor.
    pub fn new(n: usize, layout: I2sLayout) -> Result<Self, BitnetError> {
        tensor_bytes(n)?;
        Ok(I2sStream {
            layout,
            n,
            lanes: [0.0; 16],
            seen: 0,
            absmean: None,
            limit: None,
            spec: None,
        })
    }

    /// Pass 1: the next chunk of weights, in order.
    pub fn add_to_mean(&mut self, chunk: &[f32]) {
        match self.limit {
            None => super::ternary::add_abs_lanes(&mut self.lanes, chunk, self.seen),
            Some(limit) => super::ternary::add_clipped_lanes(&mut self.lanes, chunk, self.seen, limit),
        }
        self.seen += chunk.len();
    }

    /// Clipped absmean ([`Absmean::clipped`] of the whole tensor): call after pass 1's
    /// [`I2sStream::absmean`], feed every chunk to [`I2sStream::add_to_mean`] again in
    /// order, and take [`I2sStream::absmean`] once more; the mean is then taken over
    /// `min(|w|, clip · mean|w|)`.
    pub fn clip(&mut self, clip: f32) {
        let plain = self.absmean.unwrap_or_else(|| self.absmean());
        if self.n > 0 {
            self.limit = Some(clip * plain.mean);
            self.lanes = [0.0; 16];
            self.seen = 0;
        }
    }

    /// Ends pass 1; returns the absmean (as [`Absmean::of`] the whole tensor).
    pub fn absmean(&mut self) -> Absmean {
        let mean = if self.n == 0 {
            0.0
        } else {
            (super::ternary::combine16(self.lanes) / self.n as f64) as f32
        };
        let a = Absmean::from_mean(mean);
        self.absmean = Some(a);
        a
    }

    /// Rounds the scale [`I2sStream::finish`] stores to f16 (nearest, ties to even);
    /// the codes are unchanged. bitnet.cpp stores this for f16 checkpoints: its
    /// converter casts the ternarized `W' = code / s` back to the checkpoint's dtype
    /// (f16; bf16 is widened to f32 first) and `quantize_i2_s` then takes `max|W'|`.
    /// Call after [`I2sStream::absmean`]; returns the rounded scale (0 before it).
    pub fn round_scale_to_f16(&mut self) -> f32 {
        self.absmean.as_mut().map_or(0.0, |a| {
            a.scale = half::f16::from_f32(a.scale).to_f32();
            a.scale
        })
    }

    /// The element ranges a speculative pass 1 samples ([`I2sStream::speculate`]), or
    /// `None` when this stream would not speculate: fewer than 4M elements, the ARM
    /// layout, more than `u32::MAX` elements, a clipped mean, pass 1 begun, or no fused
    /// kernel on this CPU. Spans start on and cover whole 256-element blocks.
    pub fn sample_spans(&self) -> Option<impl Iterator<Item = std::ops::Range<usize>> + use<>> {
        if !self.can_speculate() {
            return None;
        }
        let n = self.n;
        let span = (n / (32 * SAMPLE_SPANS)).min(SPAN_ELEMS) / 256 * 256;
        let step = (n - span) / (SAMPLE_SPANS - 1) / 256 * 256;
        Some((0..SAMPLE_SPANS).map(move |i| i * step..i * step + span))
    }

    /// Whether [`I2sStream::speculate`] may start (see [`I2sStream::sample_spans`]).
    fn can_speculate(&self) -> bool {
        self.layout == I2sLayout::X86
            && (SPECULATE_MIN..=u32::MAX as usize).contains(&self.n)
            && self.limit.is_none()
            && self.seen == 0
            && self.spec.is_none()
            && crate::arch::i2s_pack_x86_speculative().is_some()
    }

    /// Starts a speculative pass 1 from the means `|w|` of the spans
    /// [`I2sStream::sample_spans`] gave ([`span_mean`] of each, in order): their mean
    /// ± (3 standard errors + 0.1%) is a band the exact mean very likely falls in.
    /// Returns whether the pass is on (not for a band wider than ±4%, a sample that
    /// is not finite or not positive, or a stream that would not speculate); then feed
    /// every chunk to [`I2sStream::add_and_pack`] and end with
    /// [`I2sStream::resolve`].
    ///
    /// The pass sums `|w|` exactly, as [`I2sStream::add_to_mean`] does, and packs
    /// every code that is the same for every mean of the band (`fl(w·s)` is monotone
    /// in `s`, and `s` in the mean); the few weights near `±mean/2` it leaves open are
    /// kept aside and get their codes from the exact mean. If that mean misses the
    /// band, or more than 1/32 of the weights stay open, pass 2 runs as usual.
    pub fn speculate(&mut self, span_means: &[f64]) -> bool {
        if !self.can_speculate() || span_means.len() != SAMPLE_SPANS {
            return false;
        }
        let k = SAMPLE_SPANS as f64;
        let est = span_means.iter().sum::<f64>() / k;
        let var = span_means.iter().map(|m| (m - est) * (m - est)).sum::<f64>() / (k - 1.0);
        let delta = 0.001 + 3.0 * (var / k).sqrt() / est;
        if !(est.is_finite() && est > 0.0 && delta <= MAX_BAND) {
            return false;
        }
        self.speculate_band(((est * (1.0 - delta)) as f32, (est * (1.0 + delta)) as f32))
    }

    /// [`I2sStream::speculate`] with the band given.
    pub(crate) fn speculate_band(&mut self, (m_lo, m_hi): (f32, f32)) -> bool {
        let Some(fused) = crate::arch::i2s_pack_x86_speculative() else {
            return false;
        };
        // s is non-increasing in the mean: the band's low end gives the high multiplier.
        let s = (Absmean::from_mean(m_hi).s, Absmean::from_mean(m_lo).s);
        self.spec = Some(Speculation {
            fused,
            m: (m_lo, m_hi),
            s,
            open: s.0 <= s.1,
            undecided: Vec::new(),
            fields: Vec::new(),
            any: 0,
            tail: Vec::new(),
        });
        true
    }

    /// Speculative pass 1 (after [`I2sStream::speculate`] returned true): the next
    /// chunk of weights, in order — elements `start..start + chunk.len()`, whole
    /// 128-element blocks unless it ends the tensor — added to the mean as
    /// [`I2sStream::add_to_mean`] does, its decided codes packed into `out` (the
    /// chunk's `chunk.len() / 4` bytes). Without a speculation it only adds to the
    /// mean.
    pub fn add_and_pack(&mut self, start: usize, chunk: &[f32], out: &mut [u8]) {
        let Some(spec) = self.spec.as_mut() else {
            return self.add_to_mean(chunk);
        };
        let full = chunk.len() / 128 * 128;
        // Out of order, a partial block before the end, or `out` of another length:
        // the speculation ends (pass 2 will pack), nothing is written.
        if start != self.seen || (full < chunk.len() && start + chunk.len() != self.n) || out.len() != chunk.len() / 4 {
            spec.open = false;
        }
        let limit = self.n / 32;
        for sub in (0..full).step_by(SPECULATE_CHUNK) {
            let c = &chunk[sub..(sub + SPECULATE_CHUNK).min(full)];
            if spec.open {
                spec.fields.resize(c.len() / 4, 0);
                let o = &mut out[sub / 4..(sub + c.len()) / 4];
                spec.any |= (spec.fused)(&mut self.lanes, spec.s, c, o, &mut spec.fields);
                collect_undecided(&spec.fields, start + sub, c, &mut spec.undecided);
                if spec.undecided.len() > limit {
                    spec.open = false;
                    spec.undecided = Vec::new();
                }
            } else {
                // The lanes by elements seen, as `add_to_mean` counts them.
                super::ternary::add_abs_lanes(&mut self.lanes, c, self.seen + sub);
            }
        }
        let tail = &chunk[full..];
        super::ternary::add_abs_lanes(&mut self.lanes, tail, self.seen + full);
        spec.tail = tail.to_vec();
        self.seen += chunk.len();
    }

    /// Ends a speculative pass 1 (every chunk fed): takes the exact absmean (as
    /// [`I2sStream::absmean`]) and, when it fell in the band, gives the weights left
    /// open their codes in `out` (the tensor's `n/4` packed bytes) and returns whether
    /// any code is nonzero, for [`I2sStream::finish`]. `None`: run pass 2
    /// ([`I2sStream::pack`] every chunk) as without a speculation.
    pub fn resolve(&mut self, out: &mut [u8]) -> Option<bool> {
        let spec = self.spec.take()?;
        let mean = self.absmean().mean;
        let n = self.n;
        let (m_lo, m_hi) = spec.m;
        if !(spec.open && self.seen == n && m_lo <= mean && mean <= m_hi && out.len() >= n / 4) {
            return None;
        }
        let mut any = spec.any;
        for (i, v) in spec.undecided {
            let c = (1 + self.code(v)) as u8;
            // Element i of a whole 128-element block: byte i/128·32 + i mod 32, plane
            // (i mod 128)/32 (`locate` for the x86 layout, without its divisions).
            let i = i as usize;
            let (byte, shift) = (i / 128 * 32 + i % 32, 6 - 2 * (i % 128 / 32));
            out[byte] = (out[byte] & !(3 << shift)) | c << shift;
            any |= c ^ 1;
        }
        let full = n / 128 * 128;
        let tail = self.pack(full, &spec.tail, &mut out[full / 4..n / 4]);
        Some(any != 0 || tail)
    }

    /// Elements per packing block: pass-2 chunks must start on a multiple of it.
    pub fn block_elems(&self) -> usize {
        self.layout.block_elems()
    }

    /// The ternary code (−1, 0, 1) of a weight under the tensor's absmean.
    pub fn code(&self, v: f32) -> i8 {
        let s = self.absmean.map_or(0.0, |a| a.s);
        let t = v * s;
        (t > 0.5) as i8 - (t < -0.5) as i8
    }

    /// Pass 2: packs `chunk` (elements `start..start + chunk.len()`, `start` a multiple
    /// of [`Self::block_elems`], the chunk whole blocks unless it ends the tensor) into
    /// `out`, the chunk's own bytes (`chunk.len() / 4` of them, from byte `start / 4`).
    /// Returns whether any code is nonzero.
    pub fn pack(&self, start: usize, chunk: &[f32], out: &mut [u8]) -> bool {
        let wd = self.layout.block_elems();
        debug_assert_eq!(start % wd, 0);
        // The scale hoisted out of the loop so that the packing vectorizes; the same
        // comparisons as `code`.
        let s = self.absmean.map_or(0.0, |a| a.s);
        let code = |v: f32| {
            let t = v * s;
            (1 + (t > 0.5) as i8 - (t < -0.5) as i8) as u8
        };
        let g = wd / 4;
        let full = chunk.len() / wd * wd;
        let mut any = 0u8;
        let simd = match self.layout {
            I2sLayout::X86 => crate::arch::i2s_pack_x86(),
            I2sLayout::Arm => None,
        };
        if let Some(pack) = simd {
            any |= pack(s, &chunk[..full], &mut out[..full / 4]);
        }
        let scalar_full = if simd.is_some() { 0 } else { full };
        for (xb, ob) in chunk[..scalar_full]
            .chunks_exact(wd)
            .zip(out[..scalar_full / 4].chunks_exact_mut(g))
        {
            for b in 0..g {
                let byte = pack4(code(xb[b]), code(xb[b + g]), code(xb[b + 2 * g]), code(xb[b + 3 * g]));
                any |= byte ^ 0x55;
                ob[b] = byte;
            }
        }
        let tail = &chunk[full..];
        let gt = tail.len() / 4;
        for b in 0..gt {
            let byte = pack4(
                code(tail[b]),
                code(tail[b + gt]),
                code(tail[b + 2 * gt]),
                code(tail[b + 3 * gt]),
            );
            any |= byte ^ 0x55;
            out[full / 4 + b] = byte;
        }
        any != 0
    }

    /// Writes the scale area (`out` is the whole tensor, `n/4 + 32` bytes); `any`:
    /// whether any chunk had a nonzero code (bitnet.cpp stores 0 otherwise).
    pub fn finish(&self, any: bool, out: &mut [u8]) -> Result<(), BitnetError> {
        check_len("I2_S byte length", tensor_bytes(self.n)?, out.len())?;
        let scale = self.absmean.map_or(0.0, |a| a.scale);
        write_scale(out, self.n, if any { scale } else { 0.0 });
        Ok(())
    }
}

/// bitnet.cpp's `quantize_i2_s` alone, for weights that are already ternary
/// (`±scale` and 0, as BitNet's converters write them into f32/f16 GGUF files):
/// the scale is `max|w|` (taken in f64, NaN ignored, stored as f32); a weight with
/// `|w| < 1e-6` becomes 0, any other its sign (NaN becomes −1).
pub fn quantize_prequantized(w: &[f32], layout: I2sLayout) -> Result<Vec<u8>, BitnetError> {
    let n = w.len();
    let mut out = vec![0u8; tensor_bytes(n)?];
    let max = w.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    pack_with(layout, n, &mut out, |i| {
        let v = w[i] as f64;
        if v.abs() < 1e-6 {
            1
        } else if v * max > 0.0 {
            2
        } else {
            0
        }
    });
    write_scale(&mut out, n, max as f32);
    Ok(out)
}

/// Whether no 2-bit field of `packed` is code 3, i.e. every weight is ternary
/// (−1, 0, +1): what bitnet.cpp's and qload's encoders write. Any layout: the check
/// is per field.
pub fn codes_are_ternary(packed: &[u8]) -> bool {
    // A field is 3 where both its bits are set: `v & (v >> 1)` at the field's low bit
    // (bit 7 of a byte may take the next byte's bit 0, but 0x55… masks it off).
    const LOW_BITS: u64 = 0x5555_5555_5555_5555;
    let (words, rest) = packed.as_chunks::<8>();
    let threes = words.iter().fold(0u64, |acc, w| {
        let v = u64::from_le_bytes(*w);
        acc | (v & (v >> 1) & LOW_BITS)
    });
    threes == 0 && rest.iter().all(|&b| b & (b >> 1) & 0x55 == 0)
}

/// A borrowed I2_S tensor: `n` elements in `layout`, and its scale.
#[derive(Debug, Clone, Copy)]
pub struct I2sRef<'a> {
    layout: I2sLayout,
    n: usize,
    packed: &'a [u8],
    scale: f32,
    /// Known to hold no code 3 ([`I2sRef::check_codes`]): the x86 matvec then takes
    /// the AVX2 kernel with the larger i16 budget.
    ternary: bool,
}

impl<'a> I2sRef<'a> {
    /// Wraps bitnet.cpp I2_S tensor bytes of `n` elements. `bytes` must hold at
    /// least the `n/4` packed bytes and the 4-byte scale (a GGUF tensor holds
    /// `n/4 + 32`); anything after the scale is ignored.
    pub fn new(bytes: &'a [u8], n: usize, layout: I2sLayout) -> Result<Self, BitnetError> {
        check_n(n)?;
        if bytes.len() < n / 4 + 4 {
            return Err(BitnetError::Length {
                what: "I2_S byte length (at least n/4 + 4)",
                expected: n / 4 + SCALE_BYTES,
                actual: bytes.len(),
            });
        }
        let s = &bytes[n / 4..n / 4 + 4];
        Ok(I2sRef {
            layout,
            n,
            packed: &bytes[..n / 4],
            scale: f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            ternary: false,
        })
    }

    /// This tensor with its codes checked ([`codes_are_ternary`], one pass over the
    /// packed bytes): where none is 3, which bitnet.cpp's and qload's encoders never
    /// write, the matvecs take a faster AVX2 kernel (1.05× on Zen 3). Worth it
    /// for a tensor multiplied more than once; keep the answer
    /// ([`I2sRef::has_ternary_codes`]) to skip the pass next time
    /// ([`I2sRef::with_ternary_codes`]).
    pub fn check_codes(self) -> Self {
        let ternary = codes_are_ternary(self.packed);
        self.with_ternary_codes(ternary)
    }

    /// This tensor with the answer of an earlier [`I2sRef::check_codes`] or
    /// [`codes_are_ternary`] of the same packed bytes. Claiming `true` for bytes that
    /// hold a code 3 makes the AVX2 matvec's sums wrong (never undefined behaviour);
    /// debug builds check the claim.
    pub fn with_ternary_codes(mut self, ternary: bool) -> Self {
        debug_assert!(
            !ternary || codes_are_ternary(self.packed),
            "I2_S codes claimed ternary hold a 3"
        );
        self.ternary = ternary;
        self
    }

    /// Whether the codes are known to hold no 3 (see [`I2sRef::check_codes`]).
    pub fn has_ternary_codes(&self) -> bool {
        self.ternary
    }

    /// A tensor of `n` elements from its packed bytes (at least `n / 4`) and scale.
    pub(crate) fn from_parts(packed: &'a [u8], n: usize, layout: I2sLayout, scale: f32) -> Self {
        debug_assert!(n.is_multiple_of(4) && packed.len() >= n / 4);
        I2sRef {
            layout,
            n,
            packed: &packed[..n / 4],
            scale,
            ternary: false,
        }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Whether the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// The per-tensor scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// The block layout.
    pub fn layout(&self) -> I2sLayout {
        self.layout
    }
    /// The `n/4` packed bytes.
    pub fn packed(&self) -> &'a [u8] {
        self.packed
    }

    /// The raw 2-bit code (0..=3) of element `i` (`i < len()`).
    #[inline]
    pub fn code(&self, i: usize) -> u8 {
        let (byte, shift) = locate(self.layout, self.n, i);
        (self.packed[byte] >> shift) & 3
    }

    /// Every element's value `code − 1` (−1, 0, +1; +2 for code 3) into `out`.
    pub fn decode(&self, out: &mut [i8]) -> Result<(), BitnetError> {
        check_len("output length", self.n, out.len())?;
        let w = self.layout.block_elems();
        let g = w / 4;
        let full = self.n / w * w;
        for (ob, pb) in out[..full].chunks_exact_mut(w).zip(self.packed.chunks_exact(g)) {
            for b in 0..g {
                let byte = pb[b];
                for k in 0..4 {
                    ob[b + k * g] = ((byte >> (6 - 2 * k)) & 3) as i8 - 1;
                }
            }
        }
        for i in full..self.n {
            out[i] = self.code(i) as i8 - 1;
        }
        Ok(())
    }

    /// Every element's value times the scale into `out`.
    pub fn dequantize(&self, out: &mut [f32]) -> Result<(), BitnetError> {
        let mut codes = vec![0i8; self.n];
        self.decode(&mut codes)?;
        check_len("output length", self.n, out.len())?;
        for (o, &c) in out.iter_mut().zip(&codes) {
            *o = c as f32 * self.scale;
        }
        Ok(())
    }
}

/// `Σ code·a` over whole blocks: `packed` holds `k` blocks of `layout`, `a` the
/// `k · block` activations they multiply. The scalar specification of the SIMD
/// kernels (which must return the same integer). `a.len()` must stay at or below
/// [`MAX_KERNEL_ELEMS`] so that the i32 result cannot overflow.
pub fn dot_codes_scalar(layout: I2sLayout, packed: &[u8], a: &[i8]) -> i32 {
    let w = layout.block_elems();
    let g = w / 4;
    let mut sum = 0i32;
    for (pb, ab) in packed.chunks_exact(g).zip(a.chunks_exact(w)) {
        for b in 0..g {
            let byte = pb[b];
            for k in 0..4 {
                sum += ((byte >> (6 - 2 * k)) & 3) as i32 * ab[b + k * g] as i32;
            }
        }
    }
    sum
}

/// A block kernel: `Σ code·a` over whole blocks (see [`dot_codes_scalar`]).
pub(crate) type I2sDotFn = fn(&[u8], &[i8]) -> i32;

/// A rows kernel: `(w, row_bytes, a, out)` sets `out[r]` to `Σ code·a` over the
/// `a.len() / block` whole blocks that start at byte `r · row_bytes` of `w` — per row
/// what an [`I2sDotFn`] returns. `a.len()` is a multiple of the block and at most
/// [`MAX_KERNEL_ELEMS`].
pub(crate) type I2sRowsFn = fn(&[u8], usize, &[i8], &mut [i32]);

/// The most activations one kernel call takes (3 · 128 · 2^16 < 2^31).
pub const MAX_KERNEL_ELEMS: usize = 1 << 16;

/// The block kernel: SIMD when this CPU has it, else the scalar specification.
fn kernel(layout: I2sLayout) -> I2sDotFn {
    if let Some(f) = crate::arch::i2s_dot(layout) {
        return f;
    }
    match layout {
        I2sLayout::X86 => |p, a| dot_codes_scalar(I2sLayout::X86, p, a),
        I2sLayout::Arm => |p, a| dot_codes_scalar(I2sLayout::Arm, p, a),
    }
}

/// `Σ code·a` for the elements `start..start + a.len()` of `t`, exact.
///
/// Whole blocks go to the block kernel. A row that starts or ends inside a whole
/// block (row lengths that are not multiples of the block, e.g. 3200 × 8640) runs
/// that block through the kernel too, with the activations outside the row set to
/// zero (a zero activation adds nothing whatever the code); only the tensor's short
/// last block (when `n` is not a multiple of the block) is read element by element.
fn row_codes_dot(t: &I2sRef<'_>, kern: I2sDotFn, start: usize, a: &[i8]) -> i64 {
    if a.is_empty() {
        return 0;
    }
    let w = t.layout.block_elems();
    let end = start + a.len();
    let full = t.n / w * w;
    let mut sum = 0i64;
    let mut p = start;
    let mut padded = [0i8; 128];
    // `p..e` lies inside the whole block that starts at `b` but does not cover it.
    let mut partial = |b: usize, p: usize, e: usize| -> i64 {
        let buf = &mut padded[..w];
        buf.fill(0);
        buf[p - b..e - b].copy_from_slice(&a[p - start..e - start]);
        kern(&t.packed[b / 4..(b + w) / 4], buf) as i64
    };
    if !p.is_multiple_of(w) && p < full {
        let b = p / w * w;
        let e = (b + w).min(end);
        sum += partial(b, p, e);
        p = e;
    }
    let last = end.min(full) / w * w;
    while p < last {
        let q = (p + MAX_KERNEL_ELEMS).min(last);
        sum += kern(&t.packed[p / 4..q / 4], &a[p - start..q - start]) as i64;
        p = q;
    }
    if p < end.min(full) {
        let e = end.min(full);
        sum += partial(p, p, e);
        p = e;
    }
    sum + (p..end).map(|i| t.code(i) as i64 * a[i - start] as i64).sum::<i64>()
}

fn check_matrix(t: &I2sRef<'_>, rows: usize, cols: usize, act_len: usize, out_len: usize) -> Result<(), BitnetError> {
    let n = rows.checked_mul(cols).ok_or(BitnetError::Shape {
        rows,
        cols,
        why: "the element count overflows",
    })?;
    check_len("I2_S element count (rows × cols)", n, t.n)?;
    check_len("activation length", cols, act_len)?;
    check_len("output length", rows, out_len)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Rows per rayon task (for the row-major and the interleaved matvec). 32 rather
/// than 16: 1–3% faster on one thread from cache (fewer tasks and kernel calls), and
/// rows of period 32 (e.g. 8644 columns) run their partial blocks in the rows
/// kernel (47 → 56 Gelem/s on 3000 × 8644; 1000 × 8672, period 4, lost ~3%).
pub(crate) const ROWS_PER_TASK: usize = 32;

/// A row of `cols` elements starting at tensor element `start`, in blocks of `w`:
/// the elements before its first whole block (`head`) and the end of its last whole
/// block (`tail`), both counted from the row's start.
fn whole_block_span(start: usize, cols: usize, w: usize) -> (usize, usize) {
    let head = ((w - start % w) % w).min(cols);
    (head, head + (cols - head) / w * w)
}

/// Adds a rows kernel's `Σ code·a` over activation columns `lo..acts.len()` to
/// `out[k · step]`, for the `out.len().div_ceil(step)` rows the kernel runs (at most
/// [`ROWS_PER_TASK`]), calling `kern` on at most [`MAX_KERNEL_ELEMS`] columns at a
/// time, which keeps its i32 sums exact. `w(c, e)` gives the weight bytes the kernel
/// reads for columns `c..e`; the layout's `stride` is passed through.
pub(crate) fn add_rows_kernel<'w>(
    kern: I2sRowsFn,
    w: impl Fn(usize, usize) -> &'w [u8],
    stride: usize,
    acts: &[i8],
    lo: usize,
    out: &mut [i64],
    step: usize,
) {
    let rows = out.len().div_ceil(step);
    let mut part = [0i32; ROWS_PER_TASK];
    let part = &mut part[..rows];
    let mut c = lo;
    while c < acts.len() {
        let e = (c + MAX_KERNEL_ELEMS).min(acts.len());
        kern(w(c, e), stride, &acts[c..e], part);
        for (k, &p) in part.iter().enumerate() {
            out[k * step] += p as i64;
        }
        c = e;
    }
}

/// Exact integer products: `out[r] = Σ_j (code(r, j) − 1) · q[j]`, i.e.
/// `Σ code·q − Σq` per row (code 3 counts as +2). Rows run on rayon's pool.
pub fn matvec_int(t: &I2sRef<'_>, rows: usize, cols: usize, q: &[i8], out: &mut [i64]) -> Result<(), BitnetError> {
    check_matrix(t, rows, cols, q.len(), out.len())?;
    let sum_q: i64 = q.iter().map(|&v| v as i64).sum();
    let w = t.layout.block_elems();
    let kern = kernel(t.layout);
    // Rows whose whole blocks start at the same offset into the row (the same
    // "phase", `r · cols mod 128`) share their activations, so they run several at a
    // time: rows `period` apart, `period · cols / 4` bytes apart. Whole-block rows
    // have period 1; 3200 × 8640 has period 2 (even rows start on a block, odd rows
    // 64 elements into one). A row's partial blocks at either end belong half to the
    // neighbouring rows: where a class's rows leave room (a row's blocks, partial
    // ones included, fit in the stride) they run through the rows kernel too, with
    // the activations zero outside the row (`padded`); otherwise each row's partial
    // blocks go through `row_codes_dot`.
    if let Some(rows_kern) = crate::arch::i2s_rows(t.layout, t.ternary) {
        let period = w / gcd(cols % w, w);
        let stride = period * cols / 4;
        let full = t.n / w * w;
        // Per class (the same phase in every task while `period` divides the task's
        // rows): the elements before the row in its first block, and the
        // activations padded with zeros to whole blocks.
        let padded: Vec<Option<(usize, Vec<i8>)>> = (0..period)
            .map(|class| {
                let (head, tail) = whole_block_span(class * cols, cols, w);
                let lead = if head > 0 { w - head } else { 0 };
                let trail = if tail < cols { w - (cols - tail) } else { 0 };
                let len = lead + cols + trail;
                let usable = period > 1 && ROWS_PER_TASK.is_multiple_of(period) && head < cols && len / 4 <= stride;
                usable.then(|| {
                    let mut a = vec![0i8; len];
                    a[lead..lead + cols].copy_from_slice(q);
                    (lead, a)
                })
            })
            .collect();
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(task, out)| {
            let r0 = task * ROWS_PER_TASK;
            for class in 0..period.min(out.len()) {
                let rows = (out.len() - class).div_ceil(period);
                let start = (r0 + class) * cols;
                let last = start + (rows - 1) * period * cols;
                for k in 0..rows {
                    out[class + k * period] = -sum_q;
                }
                // The padded range, if its last row's last block is a whole block of
                // the tensor (not the short last one).
                let padded = padded[class].as_ref().filter(|(lead, a)| last - lead + a.len() <= full);
                let (lo, hi, acts, shift) = match padded {
                    Some((lead, a)) => {
                        debug_assert_eq!((start - lead) % w, 0);
                        (0, a.len(), a.as_slice(), *lead)
                    }
                    None => {
                        let (head, tail) = whole_block_span(start, cols, w);
                        // Only rows that straddle blocks have partial blocks; skipping
                        // the two empty calls matters for short rows (2560 columns:
                        // the matvec ran ~20% slower with them).
                        if head > 0 || tail < cols {
                            for k in 0..rows {
                                let s = start + k * period * cols;
                                out[class + k * period] += row_codes_dot(t, kern, s, &q[..head])
                                    + row_codes_dot(t, kern, s + tail, &q[tail..]);
                            }
                        }
                        (head, tail, q, 0)
                    }
                };
                // `acts[c]` multiplies tensor element `start − shift + c` in the
                // class's first row, and the same column in its other rows
                // (`period · cols` elements apart).
                add_rows_kernel(
                    rows_kern,
                    |c, e| &t.packed[(start - shift + c) / 4..(last - shift + e) / 4],
                    stride,
                    &acts[..hi],
                    lo,
                    &mut out[class..],
                    period,
                );
            }
        });
        return Ok(());
    }
    out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(|(task, out)| {
        for (i, o) in out.iter_mut().enumerate() {
            let r = task * ROWS_PER_TASK + i;
            *o = row_codes_dot(t, kern, r * cols, q) - sum_q;
        }
    });
    Ok(())
}

/// `y = W·x` with `x` already quantized: `y[r] = (Σ w·(q − zp)) / a.scale · t.scale`,
/// the integer part exact, then the two f32 operations in bitnet.cpp's order.
/// Asymmetric activations (nonzero zero point) cost a second pass for the row
/// sums `Σ w`.
pub fn matvec(t: &I2sRef<'_>, rows: usize, cols: usize, a: &QuantizedAct, y: &mut [f32]) -> Result<(), BitnetError> {
    check_matrix(t, rows, cols, a.q.len(), y.len())?;
    matvec_by(rows, t.scale, a, y, |q, out| matvec_int(t, rows, cols, q, out))
}

/// The float step of [`matvec`] over any exact integer matvec `int(q, out)` (row-major
/// here, interleaved in [`crate::repack::I2sX4`]); the caller checked the lengths.
pub(crate) fn matvec_by(
    rows: usize,
    scale: f32,
    a: &QuantizedAct,
    y: &mut [f32],
    int: impl Fn(&[i8], &mut [i64]) -> Result<(), BitnetError>,
) -> Result<(), BitnetError> {
    let mut ints = vec![0i64; rows];
    int(&a.q, &mut ints)?;
    if a.zero_point != 0 {
        let ones = vec![1i8; a.q.len()];
        let mut wsum = vec![0i64; rows];
        int(&ones, &mut wsum)?;
        for (i, s) in ints.iter_mut().zip(&wsum) {
            *i -= a.zero_point as i64 * s;
        }
    }
    for (y, &i) in y.iter_mut().zip(&ints) {
        *y = i as f32 / a.scale * scale;
    }
    Ok(())
}

/// `y = W·x` for f32 activations: `x` is quantized with BitNet's symmetric
/// per-token scheme ([`super::act::quantize_symmetric`]) first.
pub fn matvec_f32(t: &I2sRef<'_>, rows: usize, cols: usize, x: &[f32], y: &mut [f32]) -> Result<(), BitnetError> {
    check_len("activation length", cols, x.len())?;
    matvec(t, rows, cols, &super::act::quantize_symmetric(x), y)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_code_3_anywhere_is_found() {
        // 21 bytes: two 8-byte words and a tail of five.
        let ternary = vec![0b1001_0010u8; 21];
        assert!(super::codes_are_ternary(&ternary));
        assert!(super::codes_are_ternary(&[]));
        for at in 0..21 {
            for field in 0..4 {
                let mut b = ternary.clone();
                b[at] |= 3 << (2 * field);
                assert!(!super::codes_are_ternary(&b), "byte {at} field {field}");
            }
        }
        // Bits that only look like a 3 across fields or bytes.
        assert!(super::codes_are_ternary(&[
            0b0110_0110,
            0b1000_0001,
            0b0001_1001,
            0,
            0,
            0,
            0,
            0,
            0b10
        ]));
    }

    #[test]
    fn the_stream_gives_quantizes_bytes() {
        for &n in &[4096usize, 3200, 1000, 100, 256 * 9 + 12] {
            let w: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            for layout in [super::I2sLayout::X86, super::I2sLayout::Arm] {
                let want = super::quantize(&w, layout).unwrap();
                // Independently: absmean codes through `encode` (a separate packer).
                let (codes, a) = crate::bitnet::ternary::absmean(&w);
                let mut by_codes = vec![0u8; want.len()];
                let scale = if codes.iter().any(|&c| c != 0) { a.scale } else { 0.0 };
                super::encode(&codes, scale, layout, &mut by_codes).unwrap();
                assert_eq!(by_codes, want, "n {n} {layout:?}: encode vs quantize");
                let mut st = super::I2sStream::new(n, layout).unwrap();
                for c in w.chunks(256) {
                    st.add_to_mean(c);
                }
                st.absmean();
                let mut out = vec![0u8; want.len()];
                let mut any = false;
                for (k, c) in w.chunks(512).enumerate() {
                    let start = k * 512;
                    any |= st.pack(start, c, &mut out[start / 4..start / 4 + c.len() / 4]);
                }
                st.finish(any, &mut out).unwrap();
                assert_eq!(out, want, "n {n} {layout:?}");
            }
        }
    }

    use super::*;

    /// `quantize_into` through the stream API, speculating with `band` (two passes for
    /// `None`, or where this CPU has no fused kernel), in chunks of `chunk` elements.
    fn quantize_with_band(w: &[f32], band: Option<(f32, f32)>, chunk: usize) -> Vec<u8> {
        let n = w.len();
        let mut out = vec![0xa5u8; tensor_bytes(n).unwrap()];
        let mut st = I2sStream::new(n, I2sLayout::X86).unwrap();
        if band.is_some_and(|b| st.speculate_band(b)) {
            for start in (0..n).step_by(chunk) {
                let end = (start + chunk).min(n);
                st.add_and_pack(start, &w[start..end], &mut out[start / 4..end / 4]);
            }
            if let Some(any) = st.resolve(&mut out[..n / 4]) {
                st.finish(any, &mut out).unwrap();
                return out;
            }
        } else {
            st.add_to_mean(w);
            st.absmean();
        }
        let any = st.pack(0, w, &mut out[..n / 4]);
        st.finish(any, &mut out).unwrap();
        out
    }

    /// The one-pass speculative quantizer gives the two-pass bytes whatever the band:
    /// containing the mean (narrow, exact, wide enough to pass the 1/32 limit and
    /// abandon), or missing it (below, above); with a tail off the 128-element blocks,
    /// several kernel chunks, NaN/∞ weights (the mean is then not finite: a miss), and
    /// weights exactly on the thresholds of the band's ends.
    #[test]
    fn speculation_gives_the_two_pass_bytes() {
        let mut st = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            st
        };
        for &n in &[SPECULATE_CHUNK * 2 + 128 * 3 + 36, 128 * 40, 1 << 16] {
            for special in [false, true] {
                let mut w: Vec<f32> = (0..n)
                    .map(|i| {
                        let g = (0..4)
                            .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                            .sum::<f32>();
                        g * 0.05 * (1 + i / 4096 % 3) as f32
                    })
                    .collect();
                let mean = Absmean::of(&w).mean;
                if special {
                    // Near the code thresholds of several multipliers.
                    for (i, m) in [mean * 0.99, mean, mean * 1.01, mean * 1.003].into_iter().enumerate() {
                        let half = 0.5 / Absmean::from_mean(m).s;
                        w[97 * i + 5] = half;
                        w[97 * i + 50] = -half;
                    }
                }
                if special && n == 1 << 16 {
                    w[n / 2] = f32::NAN;
                    w[n / 3] = f32::INFINITY;
                }
                let mean = Absmean::of(&w).mean;
                let want = quantize_with_band(&w, None, n);
                let m = if mean.is_finite() { mean } else { 0.02 };
                for band in [
                    (m, m),
                    (m * 0.999, m * 1.001),
                    (m * 0.99, m * 1.01),
                    (m * 0.5, m * 2.0),
                    (m * 1.01, m * 1.05),
                    (m * 0.9, m * 0.99),
                ] {
                    for chunk in [SPECULATE_CHUNK * 3, 128 * 37] {
                        let got = quantize_with_band(&w, Some(band), chunk);
                        assert!(got == want, "n {n} special {special} band {band:?} chunk {chunk}");
                    }
                }
            }
        }
        // Ties at the band's ends: |w| ∈ {1/128, 3/128} in equal numbers, so the mean
        // is exactly 1/64, s = 64, and w·s = ±0.5 exactly for the small ones (code 0).
        let w: Vec<f32> = (0..128 * 40)
            .map(|i| [1.0f32, -1.0, 3.0, -3.0][(i * 7 + i / 3) % 4] / 128.0)
            .collect();
        let m = 1.0f32 / 64.0;
        assert_eq!(Absmean::of(&w).s, 64.0);
        let want = quantize_with_band(&w, None, w.len());
        for band in [(m * 0.99, m), (m, m * 1.01), (m, m)] {
            assert!(quantize_with_band(&w, Some(band), 1024) == want, "ties, band {band:?}");
        }
        // Misuse ends the speculation, never the bytes: a chunk whose `out` is short,
        // a chunk given the wrong start (elements are still counted in order).
        let w: Vec<f32> = (0..128 * 300)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 1e4)
            .collect();
        let (n, m) = (w.len(), Absmean::of(&w).mean);
        let want = quantize_with_band(&w, None, n);
        for misuse in 0..2 {
            let mut out = vec![0xa5u8; want.len()];
            let mut st = I2sStream::new(n, I2sLayout::X86).unwrap();
            if !st.speculate_band((m * 0.99, m * 1.01)) {
                break;
            }
            for (k, c) in w.chunks(128 * 70).enumerate() {
                let start = k * 128 * 70;
                let o = &mut out[start / 4..start / 4 + c.len() / 4];
                match (misuse, k) {
                    (0, 2) => st.add_and_pack(start, c, &mut o[..8]),
                    (1, 2) => st.add_and_pack(start + 4, c, o),
                    _ => st.add_and_pack(start, c, o),
                }
            }
            assert_eq!(st.resolve(&mut out[..n / 4]), None, "misuse {misuse}");
            let any = st.pack(0, &w, &mut out[..n / 4]);
            st.finish(any, &mut out).unwrap();
            assert!(out == want, "misuse {misuse}");
        }
        // All zero: every code 0 under any band, stored scale 0.
        let w = vec![0f32; 128 * 40];
        let want = quantize_with_band(&w, None, w.len());
        assert_eq!(quantize_with_band(&w, Some((0.0, 1e-6)), 4096), want);
    }

    #[test]
    fn the_sampled_band_holds_the_mean_of_a_large_tensor() {
        let n = SPECULATE_MIN + 4096;
        // Rows of 4096 whose scales differ (as a trained layer's do).
        let w: Vec<f32> = (0..n)
            .map(|i| {
                let scale = 0.02 + 0.001 * (i / 4096 % 7) as f32;
                (((i * 2_654_435_761) % 20_011) as f32 / 10_005.5 - 1.0) * scale
            })
            .collect();
        let mut st = I2sStream::new(n, I2sLayout::X86).unwrap();
        let means: Vec<f64> = match st.sample_spans() {
            Some(spans) => spans.map(|r| span_mean(&w[r])).collect(),
            None => return assert!(crate::arch::i2s_pack_x86_speculative().is_none()),
        };
        assert!(st.speculate(&means), "an even tensor gets a band");
        let (lo, hi) = st.spec.as_ref().unwrap().m;
        let mean = Absmean::of(&w).mean;
        assert!(lo <= mean && mean <= hi, "{lo} {mean} {hi}");
        assert!(hi / lo < 1.05, "{lo} {hi}");
        assert!(
            I2sStream::new(SPECULATE_MIN - 128, I2sLayout::X86)
                .unwrap()
                .sample_spans()
                .is_none()
        );
        assert!(I2sStream::new(n, I2sLayout::Arm).unwrap().sample_spans().is_none());
        let mut got = vec![0u8; tensor_bytes(n).unwrap()];
        quantize_into(&w, I2sLayout::X86, &mut got).unwrap();
        let want = quantize_with_band(&w, None, n);
        assert!(got == want);
    }

    #[test]
    fn x86_layout_matches_the_formula() {
        let codes: Vec<i8> = (0..128).map(|i| [-1, 0, 1][(i * 7 + i / 5) % 3]).collect();
        let mut out = vec![0u8; tensor_bytes(128).unwrap()];
        encode(&codes, 0.5, I2sLayout::X86, &mut out).unwrap();
        let e = |i: usize| (codes[i] + 1) as u8;
        for b in 0..32 {
            assert_eq!(out[b], e(b) << 6 | e(b + 32) << 4 | e(b + 64) << 2 | e(b + 96));
        }
        assert_eq!(&out[32..36], &0.5f32.to_le_bytes());
        assert_eq!(out.len(), 64);
        let mut arm = vec![0u8; 64];
        encode(&codes, 0.5, I2sLayout::Arm, &mut arm).unwrap();
        for blk in 0..2 {
            for b in 0..16 {
                let p = blk * 64 + b;
                assert_eq!(
                    arm[blk * 16 + b],
                    e(p) << 6 | e(p + 16) << 4 | e(p + 32) << 2 | e(p + 48)
                );
            }
        }
    }

    #[test]
    fn tail_blocks_use_quarter_groups() {
        let n = 128 + 12;
        let codes: Vec<i8> = (0..n).map(|i| [1, -1, 0][i % 3]).collect();
        let mut out = vec![0u8; tensor_bytes(n).unwrap()];
        encode(&codes, 1.0, I2sLayout::X86, &mut out).unwrap();
        let e = |i: usize| (codes[i] + 1) as u8;
        for b in 0..3 {
            let p = 128 + b;
            assert_eq!(out[32 + b], e(p) << 6 | e(p + 3) << 4 | e(p + 6) << 2 | e(p + 9));
        }
        let t = I2sRef::new(&out, n, I2sLayout::X86).unwrap();
        let mut back = vec![0i8; n];
        t.decode(&mut back).unwrap();
        assert_eq!(back, codes);
        assert!(matches!(tensor_bytes(6), Err(BitnetError::Shape { .. })));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut out = vec![0u8; 34];
        assert!(matches!(
            encode(&[0, 1, 0, 0], 1.0, I2sLayout::X86, &mut out),
            Err(BitnetError::Length { .. })
        ));
        assert_eq!(encode(&[0, 1, 0, 0], 1.0, I2sLayout::X86, &mut out[..33]), Ok(()));
        assert_eq!(
            encode(&[0, 2, 0, 0], 1.0, I2sLayout::X86, &mut out[..33]),
            Err(BitnetError::BadCode { index: 1, code: 2 })
        );
        assert!(I2sRef::new(&out[..4], 8, I2sLayout::X86).is_err());
        let t = I2sRef::new(&out[..33], 4, I2sLayout::X86).unwrap();
        let mut two = [0i64; 2];
        matvec_int(&t, 2, 2, &[3, 5], &mut two).unwrap();
        assert_eq!(two, [5, 0]);
        assert!(matvec_int(&t, 1, 4, &[0, 0], &mut [0]).is_err());
    }

    #[test]
    fn prequantized_follows_quantize_i2_s() {
        let w = [0.5f32, -0.5, 0.0, 1e-7, -0.5, f32::NAN, 0.5, 0.0];
        let out = quantize_prequantized(&w, I2sLayout::X86).unwrap();
        let t = I2sRef::new(&out, 8, I2sLayout::X86).unwrap();
        let mut c = vec![0i8; 8];
        t.decode(&mut c).unwrap();
        assert_eq!(c, vec![1, -1, 0, 0, -1, -1, 1, 0]);
        assert_eq!(t.scale(), 0.5);
    }
}
