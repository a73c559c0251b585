#![no_main]
//! BitNet decoders on arbitrary bytes: I2_S (both layouts) decoded, dequantized and
//! multiplied; TQ1_0/TQ2_0 converted to I2_S; TL1/TL2 unpacked for shapes taken from the
//! first bytes. Errors are fine; panics are not.
use qload_quant_core::bitnet::i2s::{self, I2sLayout, I2sRef};
use qload_quant_core::bitnet::{tl, tq};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let layout = if pick & 1 == 0 { I2sLayout::X86 } else { I2sLayout::Arm };
    // I2_S: n from the byte count (n/4 packed bytes + 32).
    if rest.len() >= 32 {
        let n = (rest.len() - 32) * 4;
        if let Ok(r) = I2sRef::new(rest, n, layout) {
            let mut out = vec![0f32; n];
            let _ = r.dequantize(&mut out);
            let mut codes = vec![0i8; n];
            let _ = r.decode(&mut codes);
            if n > 0 && n % 128 == 0 {
                let x = vec![0.25f32; n];
                let mut y = vec![0f32; 1];
                let _ = i2s::matvec_f32(&r, 1, n, &x, &mut y);
            }
        }
    }
    let _ = tq::tq2_0_to_i2s(rest, layout);
    let _ = tq::tq1_0_to_i2s(rest, layout);
    // TL1/TL2: a small shape from the pick byte.
    let m = 32 * (1 + (pick as usize >> 1) % 8);
    let k = 64 * (1 + (pick as usize >> 4) % 8);
    if let Ok(p) = tl::TlParams::for_shape(tl::TlKind::Tl1, m, k) {
        let _ = tl::tl1_unpack(rest, m, k, &p);
    }
    if let Ok(p) = tl::TlParams::for_shape(tl::TlKind::Tl2, m, k) {
        let _ = tl::tl2_unpack(rest, m, k, &p);
    }
});
