use qload_dtype::DType;

/// What a codec call can refuse. Codecs never panic on lengths: every slice is
/// checked against the block geometry first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The type has no codec for this operation in qload (yet, or at all).
    #[error("{dtype}: {op} is not supported")]
    Unsupported {
        /// The type asked for.
        dtype: DType,
        /// The operation, e.g. "quantize" or "dequantize".
        op: &'static str,
    },
    /// A length is not a whole number of blocks.
    #[error("{dtype}: {what} of {len} is not a multiple of the block ({block})")]
    NotBlockMultiple {
        /// The type.
        dtype: DType,
        /// What was measured ("elements", "bytes", "row length").
        what: &'static str,
        /// The length given.
        len: usize,
        /// The block size it must divide by.
        block: usize,
    },
    /// Two lengths that must agree do not.
    #[error("{dtype}: {what} should be {expected}, got {actual}")]
    LengthMismatch {
        /// The type.
        dtype: DType,
        /// Which buffer.
        what: &'static str,
        /// The length required by the other arguments.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A stored part of a pre-quantized weight is missing, has the wrong element type,
    /// or does not have the length its scheme and shape require.
    #[error("part {part}: {reason}")]
    BadPart {
        /// Which part (`data`, `scales`, `offsets`, `code`, `nested_scales`,
        /// `nested_code`, `shape`, `scheme`, `output`, `x`, `y`).
        part: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
