#![no_main]
//! The restricted unpickler on raw pickle streams, then as a legacy checkpoint.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = qload_formats::pickle::load(data);
    let mut v = vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    v.extend_from_slice(data);
    common::exercise("fuzz.pth", &v);
});
