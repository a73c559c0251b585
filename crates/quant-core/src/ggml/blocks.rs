//! ggml block layouts as plain-old-data structs.
//!
//! Every field is a byte array, so every block has alignment 1: a `&[u8]` taken
//! anywhere in a mapped file casts to `&[Block…]` with [`bytemuck::cast_slice`]
//! whatever its address. Scales are read with the accessors (`d()`, `dmin()`, …),
//! which decode little-endian IEEE half / single precision.

use bytemuck::{Pod, Zeroable};

/// Elements in a K-quant super-block.
pub const QK_K: usize = 256;
/// Elements in a legacy (Q4_0 … Q8_1, IQ4_NL, MXFP4) block.
pub const QK32: usize = 32;

#[inline(always)]
pub(crate) fn f16_le(bytes: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bytes)).to_f32()
}

#[inline(always)]
pub(crate) fn f16_le_bytes(value: f32) -> [u8; 2] {
    half::f16::from_f32(value).to_bits().to_le_bytes()
}

macro_rules! block {
    ($(#[$doc:meta])* $name:ident, $size:expr, { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        const _: () = assert!(core::mem::align_of::<$name>() == 1);
    };
}

block!(
    /// Q4_0: 32 elements, `y = (q − 8)·d`; byte j holds element j (low nibble) and j+16 (high).
    BlockQ4_0, 18, { /// f16 scale
    d: [u8; 2], /// packed nibbles
    qs: [u8; 16] });
block!(
    /// Q4_1: 32 elements, `y = q·d + m`.
    BlockQ4_1, 20, { /// f16 scale
    d: [u8; 2], /// f16 offset
    m: [u8; 2], /// packed nibbles
    qs: [u8; 16] });
block!(
    /// Q5_0: 32 elements, `y = (q − 16)·d`; the fifth bits in `qh` (u32, bit j = element j).
    BlockQ5_0, 22, { /// f16 scale
    d: [u8; 2], /// fifth bits
    qh: [u8; 4], /// low nibbles
    qs: [u8; 16] });
block!(
    /// Q5_1: 32 elements, `y = q·d + m`.
    BlockQ5_1, 24, { /// f16 scale
    d: [u8; 2], /// f16 offset
    m: [u8; 2], /// fifth bits
    qh: [u8; 4], /// low nibbles
    qs: [u8; 16] });
block!(
    /// Q8_0: 32 elements, `y = q·d`.
    BlockQ8_0, 34, { /// f16 scale
    d: [u8; 2], /// i8 quants (stored as bytes)
    qs: [u8; 32] });
block!(
    /// Q8_1: 32 elements, `y = q·d`, `s = d·Σq` (the activation type of Q4_1/Q5_1).
    BlockQ8_1, 36, { /// f16 scale
    d: [u8; 2], /// f16 d·Σq
    s: [u8; 2], /// i8 quants
    qs: [u8; 32] });
block!(
    /// Q2_K: 256 elements in 16 groups of 16; 4-bit scale and 4-bit min per group.
    BlockQ2K, 84, { /// low nibble scale, high nibble min, per group
    scales: [u8; 16], /// 2-bit quants
    qs: [u8; 64], /// f16 super-block scale
    d: [u8; 2], /// f16 super-block min scale
    dmin: [u8; 2] });
block!(
    /// Q3_K: 256 elements in 16 groups of 16; 6-bit signed scales.
    BlockQ3K, 110, { /// high bit of each quant
    hmask: [u8; 32], /// low 2 bits
    qs: [u8; 64], /// packed 6-bit scales
    scales: [u8; 12], /// f16 super-block scale
    d: [u8; 2] });
block!(
    /// Q4_K: 256 elements in 8 groups of 32; 6-bit scales and mins.
    BlockQ4K, 144, { /// f16 super-block scale
    d: [u8; 2], /// f16 super-block min scale
    dmin: [u8; 2], /// packed 6-bit scales and mins
    scales: [u8; 12], /// 4-bit quants
    qs: [u8; 128] });
block!(
    /// Q5_K: 256 elements in 8 groups of 32; 6-bit scales and mins.
    BlockQ5K, 176, { /// f16 super-block scale
    d: [u8; 2], /// f16 super-block min scale
    dmin: [u8; 2], /// packed 6-bit scales and mins
    scales: [u8; 12], /// fifth bits
    qh: [u8; 32], /// low nibbles
    qs: [u8; 128] });
block!(
    /// Q6_K: 256 elements in 16 groups of 16; i8 scales.
    BlockQ6K, 210, { /// low 4 bits
    ql: [u8; 128], /// high 2 bits
    qh: [u8; 64], /// i8 group scales
    scales: [u8; 16], /// f16 super-block scale
    d: [u8; 2] });
block!(
    /// Q8_K: 256 elements, f32 scale, group sums (the activation type of the K-quants).
    BlockQ8K, 292, { /// f32 scale
    d: [u8; 4], /// i8 quants
    qs: [u8; 256], /// i16 sums of 16 quants each
    bsums: [u8; 32] });
block!(
    /// IQ2_XXS: 256 elements, 2.0625 bits per weight.
    BlockIQ2XXS, 66, { /// f16 scale
    d: [u8; 2], /// u16 grid indices, signs and scales
    qs: [u8; 64] });
block!(
    /// IQ2_XS: 256 elements, 2.3125 bits per weight.
    BlockIQ2XS, 74, { /// f16 scale
    d: [u8; 2], /// u16 grid indices and signs
    qs: [u8; 64], /// 4-bit scales
    scales: [u8; 8] });
block!(
    /// IQ2_S: 256 elements, 2.5625 bits per weight.
    BlockIQ2S, 82, { /// f16 scale
    d: [u8; 2], /// grid indices, then signs
    qs: [u8; 64], /// high grid index bits
    qh: [u8; 8], /// 4-bit scales
    scales: [u8; 8] });
block!(
    /// IQ3_XXS: 256 elements, 3.0625 bits per weight.
    BlockIQ3XXS, 98, { /// f16 scale
    d: [u8; 2], /// grid indices, then signs and scales
    qs: [u8; 96] });
block!(
    /// IQ3_S: 256 elements, 3.4375 bits per weight.
    BlockIQ3S, 110, { /// f16 scale
    d: [u8; 2], /// grid indices
    qs: [u8; 64], /// high grid index bits
    qh: [u8; 8], /// signs
    signs: [u8; 32], /// 4-bit scales
    scales: [u8; 4] });
block!(
    /// IQ1_S: 256 elements, 1.5625 bits per weight.
    BlockIQ1S, 50, { /// f16 scale
    d: [u8; 2], /// grid index low bits
    qs: [u8; 32], /// u16: high index bits, scale, delta sign
    qh: [u8; 16] });
block!(
    /// IQ1_M: 256 elements, 1.75 bits per weight; the f16 scale is spread over `scales`.
    BlockIQ1M, 56, { /// grid index low bits
    qs: [u8; 32], /// high index bits and delta signs
    qh: [u8; 16], /// 3-bit scales and the pieces of the f16 scale
    scales: [u8; 8] });
block!(
    /// IQ4_NL: 32 elements on a non-linear 16-value grid.
    BlockIQ4NL, 18, { /// f16 scale
    d: [u8; 2], /// packed nibbles
    qs: [u8; 16] });
block!(
    /// IQ4_XS: 256 elements on the IQ4_NL grid with 6-bit group scales.
    BlockIQ4XS, 136, { /// f16 scale
    d: [u8; 2], /// u16 high 2 bits of the 8 group scales
    scales_h: [u8; 2], /// low 4 bits of the group scales
    scales_l: [u8; 4], /// packed nibbles
    qs: [u8; 128] });
block!(
    /// TQ1_0: 256 ternary elements, five base-3 digits per byte (1.6875 bits per weight).
    BlockTQ1_0, 54, { /// 5 trits per byte
    qs: [u8; 48], /// 4 trits per byte
    qh: [u8; 4], /// f16 scale
    d: [u8; 2] });
block!(
    /// TQ2_0: 256 ternary elements as 2-bit codes `q + 1`.
    BlockTQ2_0, 66, { /// 2-bit codes
    qs: [u8; 64], /// f16 scale
    d: [u8; 2] });
block!(
    /// MXFP4: 32 FP4 (E2M1) elements with a shared E8M0 scale.
    BlockMXFP4, 17, { /// E8M0 exponent
    e: u8, /// packed FP4 nibbles
    qs: [u8; 16] });

block!(
    /// NVFP4: 64 FP4 (E2M1) elements in 4 sub-blocks of 16, each with a UE4M3 scale;
    /// within sub-block `s`, byte `j` holds element `j` (low nibble) and `j + 8` (high).
    BlockNVFP4, 36, { /// UE4M3 sub-block scales
    d: [u8; 4], /// packed FP4 nibbles
    qs: [u8; 32] });
block!(
    /// Q1_0: 128 elements of `±d`, one sign bit each (bit `j % 8` of byte `j / 8`, set for `+d`).
    BlockQ1_0, 18, { /// f16 scale
    d: [u8; 2], /// sign bits
    qs: [u8; 16] });
block!(
    /// Q2_0: 64 elements of `(code − 1)·d`, 2-bit codes (bits `2·(j % 4)` of byte `j / 4`).
    BlockQ2_0, 18, { /// f16 scale
    d: [u8; 2], /// 2-bit codes
    qs: [u8; 16] });

macro_rules! f16_accessors {
    ($($name:ident: $($field:ident),+;)*) => {$(
        impl $name {
            $(
                #[doc = concat!("The `", stringify!($field), "` field as f32.")]
                #[inline(always)]
                pub fn $field(&self) -> f32 {
                    f16_le(self.$field)
                }
            )+
        }
    )*};
}

f16_accessors! {
    BlockQ4_0: d;
    BlockQ4_1: d, m;
    BlockQ5_0: d;
    BlockQ5_1: d, m;
    BlockQ8_0: d;
    BlockQ8_1: d, s;
    BlockQ2K: d, dmin;
    BlockQ3K: d;
    BlockQ4K: d, dmin;
    BlockQ5K: d, dmin;
    BlockQ6K: d;
    BlockIQ2XXS: d;
    BlockIQ2XS: d;
    BlockIQ2S: d;
    BlockIQ3XXS: d;
    BlockIQ3S: d;
    BlockIQ1S: d;
    BlockIQ4NL: d;
    BlockIQ4XS: d;
    BlockTQ1_0: d;
    BlockTQ2_0: d;
    BlockQ1_0: d;
    BlockQ2_0: d;
}

impl BlockIQ4XS {
    /// The eight 6-bit group scales minus 32 (low 4 bits in `scales_l`, high 2 in
    /// `scales_h`), as ggml's IQ4_XS code reads them.
    #[inline(always)]
    pub fn group_scales(&self) -> [i32; 8] {
        let sh = u16::from_le_bytes(self.scales_h);
        std::array::from_fn(|ib| {
            (((self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) as i32 | ((((sh >> (2 * ib)) & 3) as i32) << 4)) - 32
        })
    }
}

impl BlockQ8K {
    /// The f32 scale.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    /// Quant `i` as a signed value.
    #[inline(always)]
    pub fn q(&self, i: usize) -> i8 {
        self.qs[i] as i8
    }
    /// Sum of the 16 quants of group `g`.
    #[inline(always)]
    pub fn bsum(&self, g: usize) -> i16 {
        i16::from_le_bytes([self.bsums[2 * g], self.bsums[2 * g + 1]])
    }
}
