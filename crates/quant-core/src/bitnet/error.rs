use crate::QuantError;

/// What the BitNet functions can refuse. Nothing here panics on bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BitnetError {
    /// A codec error from the ggml registry.
    #[error(transparent)]
    Codec(#[from] QuantError),
    /// Two lengths that must agree do not.
    #[error("{what} should be {expected}, got {actual}")]
    Length {
        /// Which buffer or dimension.
        what: &'static str,
        /// The length required by the other arguments.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A shape the layout cannot hold (e.g. an element count that is not a
    /// multiple of 4 for I2_S, or a matrix that no TL kernel tiling divides).
    #[error("shape {rows}×{cols} is not supported: {why}")]
    Shape {
        /// Rows (output features, M).
        rows: usize,
        /// Columns (input features, K).
        cols: usize,
        /// What is wrong, and what would work.
        why: &'static str,
    },
    /// A ternary code outside −1..=1 was given to an encoder.
    #[error("element {index} has code {code}, outside -1..=1")]
    BadCode {
        /// Flat element index.
        index: usize,
        /// The code found.
        code: i8,
    },
    /// A conversion to a single per-tensor scale met blocks with different
    /// (nonzero-weight) scales, so it would not be lossless.
    #[error("block {block} has scale {found}, but an earlier block has {expected}: the conversion would be lossy")]
    ScaleMismatch {
        /// Block index.
        block: usize,
        /// The scale of the first block with a nonzero weight.
        expected: f32,
        /// The differing scale.
        found: f32,
    },
    /// A scale that the target format cannot store exactly (an f32 I2_S scale that
    /// is not an f16 value) under [`crate::bitnet::tq::ScalePolicy::Exact`].
    #[error("scale {scale} is not exactly representable as f16; use ScalePolicy::RoundToF16 to accept the rounding")]
    ScaleNotRepresentable {
        /// The scale.
        scale: f32,
    },
    /// A parameter outside its domain (group size 0, a TL tiling that does not
    /// divide the shape, …).
    #[error("invalid parameter {what}: {why}")]
    Param {
        /// The parameter.
        what: &'static str,
        /// The constraint it breaks.
        why: &'static str,
    },
}

pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), BitnetError> {
    if expected != actual {
        return Err(BitnetError::Length { what, expected, actual });
    }
    Ok(())
}
