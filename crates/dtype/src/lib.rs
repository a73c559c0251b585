//! # qload-dtype
//!
//! Element types of every supported format, with their storage sizes: the one table
//! that `qload-formats` (which reads bytes) and `qload-quant-core` (which decodes them)
//! share without knowing each other.
//!
//! One enum covers the plain numeric types of safetensors, PyTorch and NumPy, the
//! ggml block types of GGUF (upstream ids 0–42) and the BitNet fork's types
//! (its ids 36–39, which collide with upstream; see [`GgmlFlavor`]).
//!
//! Sizes are facts from ggml's `type_traits` and bitnet.cpp's `ggml_nbytes`
//! (checked against the `gguf` and `libgguf` Python packages by the tests).

#![deny(missing_docs)]

use std::fmt;

/// The element type of a tensor as stored in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[allow(missing_docs)] // the variant names are the type names
pub enum DType {
    // Plain numbers (one element each).
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits (safetensors `F8_E4M3`).
    F8E4M3,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits (safetensors `F8_E5M2`).
    F8E5M2,
    /// 8-bit power-of-two scale (safetensors `F8_E8M0`).
    F8E8M0,
    /// 8-bit float E4M3, finite, no negative zero (safetensors `F8_E4M3FNUZ`).
    F8E4M3FNUZ,
    /// 8-bit float E5M2, finite, no negative zero (safetensors `F8_E5M2FNUZ`).
    F8E5M2FNUZ,
    /// Two complex f32 (PyTorch `complex64`).
    C64,
    /// 4-bit float E2M1, two per byte (safetensors `F4`).
    F4,
    /// 6-bit float E2M3 (safetensors `F6_E2M3`), four packed in three bytes.
    F6E2M3,
    /// 6-bit float E3M2 (safetensors `F6_E3M2`), four packed in three bytes.
    F6E3M2,
    // ggml block types (upstream ids).
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2XXS,
    IQ2XS,
    IQ3XXS,
    IQ1S,
    IQ4NL,
    IQ3S,
    IQ2S,
    IQ4XS,
    IQ1M,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
    // microsoft/BitNet fork types (fork ids 36–39).
    /// BitNet ternary, 2 bits per weight, one f32 scale after the packed bytes (fork id 36).
    I2S,
    /// BitNet int8 activation type (fork id 37); never seen in model files.
    I8S,
    /// BitNet lookup-table layout for ARM (fork id 38).
    TL1,
    /// BitNet lookup-table layout for x86 (fork id 39).
    TL2,
}

/// Which numbering a GGUF file uses for type ids 36–39.
///
/// Upstream ggml removed 36–38 and gave 39 to MXFP4; microsoft/BitNet's fork uses
/// 36 = I2_S, 37 = I8_S, 38 = TL1, 39 = TL2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GgmlFlavor {
    /// ggml-org/ggml numbering.
    Upstream,
    /// microsoft/BitNet's fork numbering.
    Bitnet,
}

/// How elements are grouped into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// `block` elements take `bytes` bytes; a row must hold whole blocks.
    Blocks {
        /// Elements per block.
        block: u64,
        /// Bytes per block.
        bytes: u64,
    },
    /// bitnet.cpp's I2_S / TL1: n/4 packed bytes then a 32-byte scale area.
    I2S,
    /// bitnet.cpp's TL2 (size depends on the 2-D shape).
    TL2,
}

impl DType {
    /// Every variant, in declaration order.
    pub const ALL: &'static [DType] = &[
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E8M0,
        DType::F8E4M3FNUZ,
        DType::F8E5M2FNUZ,
        DType::C64,
        DType::F4,
        DType::F6E2M3,
        DType::F6E3M2,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q8_1,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::Q8K,
        DType::IQ2XXS,
        DType::IQ2XS,
        DType::IQ3XXS,
        DType::IQ1S,
        DType::IQ4NL,
        DType::IQ3S,
        DType::IQ2S,
        DType::IQ4XS,
        DType::IQ1M,
        DType::TQ1_0,
        DType::TQ2_0,
        DType::MXFP4,
        DType::NVFP4,
        DType::Q1_0,
        DType::Q2_0,
        DType::I2S,
        DType::I8S,
        DType::TL1,
        DType::TL2,
    ];

    /// The conventional name: ggml's upper-case names for GGUF types (`Q4_K`,
    /// `I2_S`), safetensors' names for the others (`F32`, `BF16`, `F8_E4M3`).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            U16 => "U16",
            I16 => "I16",
            U32 => "U32",
            I32 => "I32",
            U64 => "U64",
            I64 => "I64",
            F16 => "F16",
            BF16 => "BF16",
            F32 => "F32",
            F64 => "F64",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
            F8E8M0 => "F8_E8M0",
            F8E4M3FNUZ => "F8_E4M3FNUZ",
            F8E5M2FNUZ => "F8_E5M2FNUZ",
            C64 => "C64",
            F4 => "F4",
            F6E2M3 => "F6_E2M3",
            F6E3M2 => "F6_E3M2",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            IQ2XXS => "IQ2_XXS",
            IQ2XS => "IQ2_XS",
            IQ3XXS => "IQ3_XXS",
            IQ1S => "IQ1_S",
            IQ4NL => "IQ4_NL",
            IQ3S => "IQ3_S",
            IQ2S => "IQ2_S",
            IQ4XS => "IQ4_XS",
            IQ1M => "IQ1_M",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
            NVFP4 => "NVFP4",
            Q1_0 => "Q1_0",
            Q2_0 => "Q2_0",
            I2S => "I2_S",
            I8S => "I8_S",
            TL1 => "TL1",
            TL2 => "TL2",
        }
    }

    /// Parses a name as printed by [`DType::name`], case-insensitively.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// How elements are packed into bytes.
    pub fn packing(self) -> Packing {
        use DType::*;
        let (block, bytes) = match self {
            Bool | U8 | I8 | F8E4M3 | F8E5M2 | F8E8M0 | F8E4M3FNUZ | F8E5M2FNUZ => (1, 1),
            U16 | I16 | F16 | BF16 => (1, 2),
            U32 | I32 | F32 => (1, 4),
            U64 | I64 | F64 | C64 => (1, 8),
            F4 => (2, 1),
            // safetensors packs 6-bit floats densely: four in three bytes.
            F6E2M3 | F6E3M2 => (4, 3),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            IQ2XXS => (256, 66),
            IQ2XS => (256, 74),
            IQ3XXS => (256, 98),
            IQ1S => (256, 50),
            IQ4NL => (32, 18),
            IQ3S => (256, 110),
            IQ2S => (256, 82),
            IQ4XS => (256, 136),
            IQ1M => (256, 56),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
            MXFP4 => (32, 17),
            NVFP4 => (64, 36),
            Q1_0 => (128, 18),
            Q2_0 => (64, 18),
            I8S => (1, 1),
            I2S | TL1 => return Packing::I2S,
            TL2 => return Packing::TL2,
        };
        Packing::Blocks { block, bytes }
    }

    /// Elements per block (1 for plain numbers and the BitNet types).
    pub fn block_size(self) -> u64 {
        match self.packing() {
            Packing::Blocks { block, .. } => block,
            Packing::I2S | Packing::TL2 => 1,
        }
    }

    /// Whether this is a float type that holds numbers one per element (NaN/Inf checks apply).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 | DType::F8E4M3 | DType::F8E5M2
        )
    }

    /// Whether this is a block-quantized or BitNet type (not a plain number).
    pub fn is_quantized(self) -> bool {
        !matches!(
            self,
            DType::Bool
                | DType::U8
                | DType::I8
                | DType::U16
                | DType::I16
                | DType::U32
                | DType::I32
                | DType::U64
                | DType::I64
                | DType::F16
                | DType::BF16
                | DType::F32
                | DType::F64
                | DType::F8E4M3
                | DType::F8E5M2
                | DType::F8E8M0
                | DType::F8E4M3FNUZ
                | DType::F8E5M2FNUZ
                | DType::C64
                | DType::F4
                | DType::F6E2M3
                | DType::F6E3M2
        )
    }

    /// Bytes of one element, for types with one element per whole number of bytes.
    pub fn element_size(self) -> Option<u64> {
        match self.packing() {
            Packing::Blocks { block: 1, bytes } => Some(bytes),
            _ => None,
        }
    }

    /// Byte size of a tensor of this type with a row-major `shape` (outermost first),
    /// or `None` when the shape cannot hold this type (a row that is not a whole number
    /// of blocks) or the size overflows `u64`.
    ///
    /// BitNet types follow bitnet.cpp's `ggml_nbytes`: I2_S and TL1 take n/4 + 32
    /// bytes; TL2 takes a 2-D shape-dependent size padded to 32, plus 32.
    pub fn nbytes(self, shape: &[u64]) -> Option<u64> {
        let n = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
        match self.packing() {
            Packing::Blocks { block, bytes } => {
                let row = shape.last().copied().unwrap_or(1);
                if row % block != 0 {
                    return None;
                }
                (n / block).checked_mul(bytes)
            }
            Packing::I2S => {
                if n % 4 != 0 {
                    return None;
                }
                (n / 4).checked_add(32)
            }
            Packing::TL2 => {
                // bitnet.cpp: (ne0 - 256) * ne1 / 3 * 5 / 8 + 256 * ne1 / 2 * 4 / 8,
                // rounded up to 32, plus 32; defined for 2-D tensors with ne0 >= 256.
                let (ne0, ne1) = match shape {
                    [ne1, ne0] => (*ne0, *ne1),
                    _ => return None,
                };
                let three = ne0.checked_sub(256)?.checked_mul(ne1)? / 3;
                let a = three.checked_mul(5)? / 8;
                let b = 256u64.checked_mul(ne1)? / 2 * 4 / 8;
                let mut total = a.checked_add(b)?;
                if total % 32 != 0 {
                    total = total.checked_add(32 - total % 32)?;
                }
                total.checked_add(32)
            }
        }
    }

    /// The GGUF type id of this type under `flavor`, if it has one there.
    pub fn ggml_id(self, flavor: GgmlFlavor) -> Option<u32> {
        use DType::*;
        let id = match (self, flavor) {
            (I2S, GgmlFlavor::Bitnet) => 36,
            (I8S, GgmlFlavor::Bitnet) => 37,
            (TL1, GgmlFlavor::Bitnet) => 38,
            (TL2, GgmlFlavor::Bitnet) => 39,
            (I2S | I8S | TL1 | TL2, GgmlFlavor::Upstream) => return None,
            (MXFP4, GgmlFlavor::Bitnet) => return None,
            (F32, _) => 0,
            (F16, _) => 1,
            (Q4_0, _) => 2,
            (Q4_1, _) => 3,
            (Q5_0, _) => 6,
            (Q5_1, _) => 7,
            (Q8_0, _) => 8,
            (Q8_1, _) => 9,
            (Q2K, _) => 10,
            (Q3K, _) => 11,
            (Q4K, _) => 12,
            (Q5K, _) => 13,
            (Q6K, _) => 14,
            (Q8K, _) => 15,
            (IQ2XXS, _) => 16,
            (IQ2XS, _) => 17,
            (IQ3XXS, _) => 18,
            (IQ1S, _) => 19,
            (IQ4NL, _) => 20,
            (IQ3S, _) => 21,
            (IQ2S, _) => 22,
            (IQ4XS, _) => 23,
            (I8, _) => 24,
            (I16, _) => 25,
            (I32, _) => 26,
            (I64, _) => 27,
            (F64, _) => 28,
            (IQ1M, _) => 29,
            (BF16, _) => 30,
            (TQ1_0, _) => 34,
            (TQ2_0, _) => 35,
            (MXFP4, GgmlFlavor::Upstream) => 39,
            (NVFP4, _) => 40,
            (Q1_0, _) => 41,
            (Q2_0, _) => 42,
            _ => return None,
        };
        Some(id)
    }

    /// The type with GGUF type id `id` under `flavor`.
    pub fn from_ggml_id(id: u32, flavor: GgmlFlavor) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.ggml_id(flavor) == Some(id))
    }

    /// The safetensors name of this type, if safetensors defines it.
    pub fn safetensors_name(self) -> Option<&'static str> {
        use DType::*;
        match self {
            Bool | U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64 | F16 | BF16 | F32 | F64 | F8E4M3 | F8E5M2 | F8E8M0
            | F8E4M3FNUZ | F8E5M2FNUZ | C64 | F4 | F6E2M3 | F6E3M2 => Some(self.name()),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for DType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for DType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DType::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown type {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_both_flavors() {
        for flavor in [GgmlFlavor::Upstream, GgmlFlavor::Bitnet] {
            for id in 0..64 {
                if let Some(d) = DType::from_ggml_id(id, flavor) {
                    assert_eq!(d.ggml_id(flavor), Some(id), "{d} under {flavor:?}");
                }
            }
        }
        assert_eq!(DType::from_ggml_id(39, GgmlFlavor::Upstream), Some(DType::MXFP4));
        assert_eq!(DType::from_ggml_id(39, GgmlFlavor::Bitnet), Some(DType::TL2));
        assert_eq!(DType::from_ggml_id(36, GgmlFlavor::Upstream), None);
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43] {
            assert_eq!(DType::from_ggml_id(removed, GgmlFlavor::Upstream), None);
        }
    }

    #[test]
    fn names_round_trip() {
        for &d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_name("q4_k"), Some(DType::Q4K));
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::Q4K.nbytes(&[2, 512]), Some(2 * 2 * 144));
        assert_eq!(DType::Q4K.nbytes(&[2, 500]), None);
        assert_eq!(DType::Q8_0.nbytes(&[32]), Some(34));
        assert_eq!(DType::F32.nbytes(&[]), Some(4));
        assert_eq!(DType::F4.nbytes(&[3, 4]), Some(6));
        assert_eq!(DType::I2S.nbytes(&[128, 256]), Some(128 * 256 / 4 + 32));
        assert_eq!(DType::F32.nbytes(&[u64::MAX, 2]), None);
        // TL2 on a BitNet-2B shape: 2560 columns, 6912 rows.
        let tl2 = DType::TL2.nbytes(&[6912, 2560]).unwrap();
        let raw: u64 = (2560 - 256) * 6912 / 3 * 5 / 8 + 256 * 6912 / 2 * 4 / 8;
        assert_eq!(tl2, raw.div_ceil(32) * 32 + 32);
        assert_eq!(DType::TL2.nbytes(&[10, 100]), None);
    }
}
