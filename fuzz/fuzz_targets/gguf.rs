#![no_main]
//! GGUF headers: the magic is fixed so that every input reaches the parser.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(data);
    common::exercise("fuzz.gguf", &v);
});
