#![no_main]
//! safetensors: a valid header length prefix so that the JSON parser is reached.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let n = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let mut v = (n as u64).to_le_bytes().to_vec();
    v.extend_from_slice(data);
    common::exercise("fuzz.safetensors", &v);
});
