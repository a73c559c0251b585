//! Scalar helpers that reproduce C's float → integer conversions as ggml's x86-64
//! build performs them, so that quantizers agree with ggml on every input,
//! including NaN and out-of-range values.

/// C's `MAX(a, b)` macro, `a > b ? a : b`: a NaN in `a` is replaced by `b`, a
/// NaN in `b` wins. (Rust's `f32::max` ignores NaN on either side.)
#[inline(always)]
pub(crate) fn c_max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// C's `(int)f` as x86-64 `cvttss2si` computes it: truncation toward zero, and
/// `INT_MIN` (the "integer indefinite" value) for NaN and out-of-range inputs.
#[inline(always)]
pub(crate) fn c_trunc_i32(f: f32) -> i32 {
    if f.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        i32::MIN
    } else {
        f as i32
    }
}

/// C's `(int8_t)f`: the truncated 32-bit integer's low byte.
#[inline(always)]
pub(crate) fn c_trunc_i8(f: f32) -> i8 {
    c_trunc_i32(f) as i8
}

/// C's `(uint8_t)f`: the truncated 32-bit integer's low byte.
#[inline(always)]
pub(crate) fn c_trunc_u8(f: f32) -> u8 {
    c_trunc_i32(f) as u8
}

/// ggml's `nearest_int`: round half to even through the 1.5·2^23 trick, valid for
/// |f| ≤ 2^22 (ggml asserts that bound; larger values wrap as in C).
#[inline(always)]
pub(crate) fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    let bits = val.to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// C's `lroundf` as glibc computes it: round half away from zero; NaN and
/// out-of-range values give `LONG_MIN`, whose low 32 bits are 0.
#[inline(always)]
pub(crate) fn c_lroundf(f: f32) -> i64 {
    if f.is_nan() || !(-9.223_372e18..9.223_372e18).contains(&f) {
        i64::MIN
    } else {
        f.round() as i64
    }
}

/// C's `(int8_t)roundf(f)`.
#[inline(always)]
pub(crate) fn c_round_i8(f: f32) -> i8 {
    c_trunc_i8(f.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-7.4), -7);
    }

    #[test]
    fn c_casts_follow_x86() {
        assert_eq!(c_trunc_i32(f32::NAN), i32::MIN);
        assert_eq!(c_trunc_i8(f32::NAN), 0);
        assert_eq!(c_trunc_i8(-3.9), -3);
        assert_eq!(c_trunc_u8(300.0), 44);
        assert_eq!(c_round_i8(2.5), 3);
        assert_eq!(c_round_i8(-2.5), -3);
        assert_eq!(c_lroundf(f32::INFINITY), i64::MIN);
    }
}
