#![no_main]
//! Every codec's decoder and dot product on arbitrary bytes: the first byte picks the
//! type, the rest are its blocks (and, for the dot product, activation blocks).
use qload_quant_core::codecs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let all: Vec<_> = codecs().collect();
    let c = all[pick as usize % all.len()];
    let bb = c.block_bytes();
    let blocks = rest.len() / bb;
    let src = &rest[..blocks * bb];
    if c.can_dequantize() {
        let mut out = vec![0f32; blocks * c.block_elems()];
        c.dequantize(src, &mut out).expect("whole blocks decode");
        // The quantizer on what came out (any finite or not values) never panics either.
        if c.can_quantize() && c.block_elems() > 0 && !out.is_empty() {
            let mut q = vec![0u8; src.len()];
            let _ = c.quantize(&out, c.block_elems(), None, &mut q);
        }
    }
    if let Some(act) = c.vec_dot_type().and_then(qload_quant_core::codec) {
        let n = blocks * c.block_elems();
        if let Ok(need) = act.bytes_for(n) {
            let a: Vec<u8> = rest.iter().rev().cycle().take(need).copied().collect();
            let _ = c.vec_dot(src, &a);
        }
    }
});
