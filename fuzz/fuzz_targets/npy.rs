#![no_main]
//! NPY headers and data (NPZ archives are reached through open_any's zip seeds).
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(data);
    common::exercise("fuzz.npy", &v);
});
