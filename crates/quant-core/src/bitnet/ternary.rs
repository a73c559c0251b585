//! Ternary weights by absmean, as BitNet b1.58 defines them.
//!
//! BitNet's converters (`weight_quant` in bitnet.cpp's `convert-hf-to-gguf-bitnet.py`,
//! `quant_weight_fp16` in `preprocess-huggingface-bitnet.py`) compute, in torch f32:
//!
//! ```text
//! s = 1 / W.abs().mean().clamp(min=1e-5)
//! W' = (W * s).round().clamp(-1, 1) / s
//! ```
//!
//! `torch.round` rounds half to even, so a product of exactly ±0.5 becomes 0 and
//! `round(t).clamp(-1, 1)` is simply `+1 if t > 0.5`, `−1 if t < −0.5`, else 0: no
//! rounding instruction is needed. The product `W·s`, the reciprocal `1/mean` and the
//! scale `1/s` are f32 operations, as in torch; the stored I2_S scale is
//! `max|W'| = 1/s` (bitnet.cpp's `quantize_i2_s` takes the maximum of the already
//! ternarized tensor). For an f16 checkpoint the converter casts `W'` back to f16
//! first (bf16 is widened to f32 before), so the loader stores `1/s` rounded to f16
//! then (`I2sStream::round_scale_to_f16`).
//!
//! **Not bit-identical with torch in one place:** torch sums `|W|` in f32 with its
//! vectorized cascade summation, whose order depends on the build. qload sums in
//! f64 over sixteen interleaved lanes (element `i` into lane `i mod 16`, lanes
//! combined pairwise), divides by `n` in f64 and rounds to f32 once. That is the
//! correctly rounded mean in all but astronomically rare cases; torch's f32 sum may
//! be a few ulps off it, which changes a code only when some `|W·s|` lies within a
//! few ulps of 0.5.
//!
//! NaN weights ternarize to 0 here (bitnet.cpp's pipeline turns them into −1 through
//! `quantize_i2_s`'s sign test); a NaN or infinite mean makes every code 0.

use super::BitnetError;

/// The lower clamp of the mean absolute weight (BitNet's `clamp(min=1e-5)`).
pub const EPS: f32 = 1e-5;

/// Σ|w| in f64 in qload's fixed order: element `i` into lane `i mod 16`, the
/// sixteen lanes combined pairwise (lane j += lane j+8, then +4, +2, +1).
/// The SIMD version, where there is one, adds in exactly this order.
pub fn sum_abs(w: &[f32]) -> f64 {
    let mut lanes = [0f64; 16];
    add_abs_lanes(&mut lanes, w, 0);
    combine16(lanes)
}

/// Adds `|w[i]|` into lane `(first + i) mod 16`: [`sum_abs`]'s order, resumable
/// chunk after chunk (`first` = elements already added).
pub(crate) fn add_abs_lanes(lanes: &mut [f64; 16], w: &[f32], first: usize) {
    let skew = first % 16;
    let head = ((16 - skew) % 16).min(w.len());
    for (i, v) in w[..head].iter().enumerate() {
        lanes[skew + i] += v.abs() as f64;
    }
    let rest = &w[head..];
    let whole = rest.len() / 16 * 16;
    match crate::arch::i2s_abs_lanes() {
        Some(simd) => simd(lanes, &rest[..whole]),
        None => {
            for c in rest[..whole].chunks_exact(16) {
                for j in 0..16 {
                    lanes[j] += c[j].abs() as f64;
                }
            }
        }
    }
    for (j, v) in rest[whole..].iter().enumerate() {
        lanes[j] += v.abs() as f64;
    }
}

/// Adds `min(|w[i]|, limit)` into lane `(first + i) mod 16` ([`Absmean::clipped`]'s
/// order, resumable like [`add_abs_lanes`]).
pub(crate) fn add_clipped_lanes(lanes: &mut [f64; 16], w: &[f32], first: usize, limit: f32) {
    for (i, v) in w.iter().enumerate() {
        let a = v.abs();
        lanes[(first + i) % 16] += if a > limit { limit } else { a } as f64;
    }
}

#[inline]
pub(crate) fn combine16(mut lanes: [f64; 16]) -> f64 {
    for width in [8, 4, 2, 1] {
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    lanes[0]
}

/// The absmean quantities of one group of weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Absmean {
    /// `mean |w|` (f32; NaN if a weight is NaN).
    pub mean: f32,
    /// The multiplier `s = 1 / max(mean, 1e-5)`.
    pub s: f32,
    /// The dequantization scale `1 / s` (the value of a `+1` code).
    pub scale: f32,
}

impl Absmean {
    /// From a mean absolute value: `s = 1 / max(mean, EPS)`, `scale = 1 / s` in f32.
    pub fn from_mean(mean: f32) -> Self {
        // torch's clamp(min=…) keeps NaN; f32::max would drop it.
        let m = if mean < EPS { EPS } else { mean };
        let s = 1.0 / m;
        Absmean {
            mean,
            s,
            scale: 1.0 / s,
        }
    }

    /// The absmean of `w` (an empty slice has mean 0).
    pub fn of(w: &[f32]) -> Self {
        let mean = if w.is_empty() {
            0.0
        } else {
            (sum_abs(w) / w.len() as f64) as f32
        };
        Self::from_mean(mean)
    }

    /// The absmean of `w` with `|w|` clipped at `clip · mean|w|` before averaging.
    pub fn clipped(w: &[f32], clip: f32) -> Self {
        let plain = Self::of(w);
        if w.is_empty() {
            return plain;
        }
        let mut lanes = [0f64; 16];
        add_clipped_lanes(&mut lanes, w, 0, clip * plain.mean);
        Self::from_mean((combine16(lanes) / w.len() as f64) as f32)
    }
}

/// The ternary code of `w` under multiplier `s`: `clamp(round_half_even(w·s), −1, 1)`.
#[inline(always)]
pub fn code(w: f32, s: f32) -> i8 {
    let t = w * s;
    (t > 0.5) as i8 - (t < -0.5) as i8
}

/// Which weights share a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole tensor (BitNet b1.58; what I2_S and TL1/TL2 store).
    PerTensor,
    /// One scale per row (output feature).
    PerRow,
    /// One scale per `size` contiguous elements of a row; a row whose length is not
    /// a multiple of `size` ends with a shorter group.
    PerGroup {
        /// Elements per group (128 by default, see [`Granularity::DEFAULT_GROUP`]).
        size: usize,
    },
}

impl Granularity {
    /// Per-group scaling with the default group of 128 elements.
    pub const DEFAULT_GROUP: Granularity = Granularity::PerGroup { size: 128 };
}

/// How to ternarize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TernaryConfig {
    /// Which weights share a scale.
    pub granularity: Granularity,
    /// When set, each group's mean is taken over `min(|w|, clip · mean|w|)`: a few
    /// large weights then no longer inflate the scale and push the many small
    /// weights of the group to 0.
    pub clip: Option<f32>,
}

/// Ready-made configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TernaryPreset {
    /// BitNet b1.58 exactly: one absmean scale per tensor, no clipping. The only
    /// preset whose result I2_S, TL1 and TL2 can store (they have one scale).
    #[default]
    Default,
    /// One scale per 64 contiguous elements of a row, each group's mean taken over
    /// `|w|` clipped at 3× the group's plain mean. Lower error on weights that were
    /// not trained ternary (outliers and uneven rows no longer zero out whole
    /// regions), at the cost of a scale per 64 weights (0.5 bit/weight in f32); the
    /// result fits none of bitnet.cpp's layouts and is meant for measurement and
    /// for block formats with per-block scales.
    Aggressive,
}

impl TernaryPreset {
    /// The configuration of this preset.
    pub fn config(self) -> TernaryConfig {
        match self {
            TernaryPreset::Default => TernaryConfig {
                granularity: Granularity::PerTensor,
                clip: None,
            },
            TernaryPreset::Aggressive => TernaryConfig {
                granularity: Granularity::PerGroup { size: 64 },
                clip: Some(3.0),
            },
        }
    }
}

impl Default for TernaryConfig {
    fn default() -> Self {
        TernaryPreset::Default.config()
    }
}

/// A ternarized tensor: codes in −1..=1 and the scales of their groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Ternary {
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features).
    pub cols: usize,
    /// Row-major codes, `rows · cols` of them.
    pub codes: Vec<i8>,
    /// Dequantization scales (`1/s`), group-major: one per tensor, per row, or
    /// `rows · ceil(cols / size)` for per-group.
    pub scales: Vec<f32>,
    /// The granularity the scales follow.
    pub granularity: Granularity,
}

impl Ternary {
    /// The scale index of element `(row, col)`.
    #[inline]
    pub fn scale_index(&self, row: usize, col: usize) -> usize {
        match self.granularity {
            Granularity::PerTensor => 0,
            Granularity::PerRow => row,
            Granularity::PerGroup { size } => row * self.cols.div_ceil(size) + col / size,
        }
    }

    /// The dequantized weights, `code · scale`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.codes.len());
        for r in 0..self.rows {
            for c in 0..self.cols {
                let q = self.codes[r * self.cols + c];
                out.push(q as f32 * self.scales[self.scale_index(r, c)]);
            }
        }
        out
    }

    /// Counts and scales.
    pub fn report(&self) -> TernaryReport {
        let (mut zeros, mut plus, mut minus) = (0usize, 0usize, 0usize);
        for &q in &self.codes {
            match q {
                0 => zeros += 1,
                1 => plus += 1,
                _ => minus += 1,
            }
        }
        let n = self.codes.len();
        let finite = self.scales.iter().copied().filter(|s| s.is_finite());
        TernaryReport {
            elements: n,
            zeros,
            plus,
            minus,
            zero_fraction: if n == 0 { 0.0 } else { zeros as f64 / n as f64 },
            scale_min: finite.clone().fold(f32::INFINITY, f32::min),
            scale_max: finite.fold(f32::NEG_INFINITY, f32::max),
            scales: self.scales.clone(),
            granularity: self.granularity,
        }
    }
}

/// What a ternarization produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryReport {
    /// Elements.
    pub elements: usize,
    /// Codes equal to 0.
    pub zeros: usize,
    /// Codes equal to +1.
    pub plus: usize,
    /// Codes equal to −1.
    pub minus: usize,
    /// `zeros / elements` (0 for an empty tensor).
    pub zero_fraction: f64,
    /// Smallest finite scale (+∞ when there is none).
    pub scale_min: f32,
    /// Largest finite scale (−∞ when there is none).
    pub scale_max: f32,
    /// Every scale, in [`Ternary::scales`] order.
    pub scales: Vec<f32>,
    /// The granularity the scales follow.
    pub granularity: Granularity,
}

/// Writes the codes of `w` under multiplier `s` into `out` (same length).
pub fn ternarize_into(w: &[f32], s: f32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(w) {
        *o = code(v, s);
    }
}

/// BitNet b1.58's per-tensor absmean: the codes and the group's [`Absmean`].
pub fn absmean(w: &[f32]) -> (Vec<i8>, Absmean) {
    let a = Absmean::of(w);
    let mut codes = vec![0i8; w.len()];
    ternarize_into(w, a.s, &mut codes);
    (codes, a)
}

/// Ternarizes a row-major `[rows, cols]` tensor under `config`.
pub fn ternarize(w: &[f32], rows: usize, cols: usize, config: &TernaryConfig) -> Result<Ternary, BitnetError> {
    let n = rows.checked_mul(cols).ok_or(BitnetError::Shape {
        rows,
        cols,
        why: "the element count overflows",
    })?;
    super::error::check_len("weight length", n, w.len())?;
    let stat = |g: &[f32]| match config.clip {
        Some(c) => Absmean::clipped(g, c),
        None => Absmean::of(g),
    };
    let mut codes = vec![0i8; n];
    let mut scales = Vec::new();
    match config.granularity {
        Granularity::PerTensor => {
            let a = stat(w);
            ternarize_into(w, a.s, &mut codes);
            scales.push(a.scale);
        }
        Granularity::PerRow | Granularity::PerGroup { .. } => {
            let size = match config.granularity {
                Granularity::PerGroup { size: 0 } => {
                    return Err(BitnetError::Param {
                        what: "group size",
                        why: "must be at least 1",
                    });
                }
                Granularity::PerGroup { size } => size,
                _ => cols.max(1),
            };
            if cols > 0 {
                for (wr, cr) in w.chunks_exact(cols).zip(codes.chunks_exact_mut(cols)) {
                    for (wg, cg) in wr.chunks(size).zip(cr.chunks_mut(size)) {
                        let a = stat(wg);
                        ternarize_into(wg, a.s, cg);
                        scales.push(a.scale);
                    }
                }
            }
        }
    }
    Ok(Ternary {
        rows,
        cols,
        codes,
        scales,
        granularity: config.granularity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_rounds_to_zero_like_torch() {
        // s = 1 for mean 1: 0.5 → 0, 0.5000001 → 1, −0.5 → 0, 1.5 → 1 (clamped).
        assert_eq!(code(0.5, 1.0), 0);
        assert_eq!(code(-0.5, 1.0), 0);
        assert_eq!(code(0.500_000_06, 1.0), 1);
        assert_eq!(code(-1.5, 1.0), -1);
        assert_eq!(code(f32::NAN, 1.0), 0);
        assert_eq!(code(f32::INFINITY, 1.0), 1);
    }

    #[test]
    fn absmean_matches_the_formula() {
        let w = [0.1f32, -0.2, 0.3, -0.4, 0.0, 2.0];
        let (codes, a) = absmean(&w);
        let mean = (0.1f64 + 0.2 + 0.3 + 0.4 + 2.0) as f32 / 6.0;
        assert!((a.mean - mean).abs() <= f32::EPSILON * mean);
        assert_eq!(a.s, 1.0 / a.mean);
        assert_eq!(a.scale, 1.0 / a.s);
        let want: Vec<i8> = w
            .iter()
            .map(|&v| (v * a.s).round_ties_even().clamp(-1.0, 1.0) as i8)
            .collect();
        assert_eq!(codes, want);
    }

    #[test]
    fn tiny_tensors_clamp_the_mean() {
        let (codes, a) = absmean(&[0.0; 8]);
        assert_eq!(a.s, 1.0 / EPS);
        assert!(codes.iter().all(|&c| c == 0));
        let (_, a) = absmean(&[f32::NAN, 1.0]);
        assert!(a.s.is_nan());
    }

    #[test]
    fn groups_cover_rows_with_a_short_tail() {
        let w: Vec<f32> = (0..2 * 10).map(|i| i as f32 - 7.0).collect();
        let cfg = TernaryConfig {
            granularity: Granularity::PerGroup { size: 4 },
            clip: None,
        };
        let t = ternarize(&w, 2, 10, &cfg).unwrap();
        assert_eq!(t.scales.len(), 6);
        assert_eq!(t.scale_index(1, 9), 5);
        let g = Absmean::of(&w[18..20]);
        assert_eq!(t.scales[5], g.scale);
        let zero = TernaryConfig {
            granularity: Granularity::PerGroup { size: 0 },
            clip: None,
        };
        assert!(matches!(ternarize(&w, 2, 10, &zero), Err(BitnetError::Param { .. })));
        assert!(matches!(ternarize(&w, 3, 10, &cfg), Err(BitnetError::Length { .. })));
    }

    #[test]
    fn clipping_lowers_the_scale_under_outliers() {
        let mut w = vec![0.01f32; 64];
        w[0] = 10.0;
        let plain = Absmean::of(&w);
        let clipped = Absmean::clipped(&w, 3.0);
        assert!(clipped.scale < plain.scale);
        let r = ternarize(&w, 1, 64, &TernaryPreset::Aggressive.config())
            .unwrap()
            .report();
        let r0 = ternarize(&w, 1, 64, &TernaryPreset::Default.config()).unwrap().report();
        assert!(r.zero_fraction < r0.zero_fraction);
        assert_eq!(r0.elements, 64);
        assert_eq!(r0.zeros + r0.plus + r0.minus, 64);
    }
}
