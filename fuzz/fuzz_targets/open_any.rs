#![no_main]
//! Any bytes, through format detection.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::exercise("fuzz.bin", data));
