//! Plain numbers as "codecs" of one-element blocks: F32, F16, BF16, F64 and the
//! integer types, little-endian, converted as ggml converts them (f16 and bf16
//! round to nearest even).

use half::{bf16, f16};

macro_rules! decode_le {
    ($name:ident, $ty:ty, $n:literal, |$v:ident| $conv:expr) => {
        pub(crate) fn $name(x: &[u8], y: &mut [f32]) {
            for (c, y) in x.chunks_exact($n).zip(y.iter_mut()) {
                let mut b = [0u8; $n];
                b.copy_from_slice(c);
                let $v = <$ty>::from_le_bytes(b);
                *y = $conv;
            }
        }
    };
}

decode_le!(dequantize_f32, f32, 4, |v| v);
decode_le!(dequantize_f64, f64, 8, |v| v as f32);
decode_le!(dequantize_i8, i8, 1, |v| v as f32);
decode_le!(dequantize_i16, i16, 2, |v| v as f32);
decode_le!(dequantize_i32, i32, 4, |v| v as f32);
decode_le!(dequantize_i64, i64, 8, |v| v as f32);
decode_le!(dequantize_f16, u16, 2, |v| f16::from_bits(v).to_f32());
decode_le!(dequantize_bf16, u16, 2, |v| bf16::from_bits(v).to_f32());

pub(crate) fn quantize_f32(x: &[f32], y: &mut [u8]) {
    for (v, c) in x.iter().zip(y.chunks_exact_mut(4)) {
        c.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn quantize_f16(x: &[f32], y: &mut [u8]) {
    for (v, c) in x.iter().zip(y.chunks_exact_mut(2)) {
        c.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
    }
}

pub(crate) fn quantize_bf16(x: &[f32], y: &mut [u8]) {
    for (v, c) in x.iter().zip(y.chunks_exact_mut(2)) {
        c.copy_from_slice(&bf16::from_f32(*v).to_bits().to_le_bytes());
    }
}
