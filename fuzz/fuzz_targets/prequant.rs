#![no_main]
//! Pre-quantized detection and decoding: arbitrary safetensors bytes (seeds are the
//! libraries' own files) through `qload_prequant::detect`, then every weight found is
//! validated, decoded and multiplied. The first byte chooses the MLX request (bits and
//! group), so that files without a config are assembled too.
use qload_formats::{OpenOptions, open_bytes};
use qload_prequant::{Requested, SavedConfig, detect};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(src) = open_bytes("fuzz.safetensors", rest.to_vec(), &OpenOptions::default()) else {
        return;
    };
    let requested = Requested {
        bits: Some(1 + pick % 8),
        group_size: Some([32, 64, 128][(pick as usize / 8) % 3]),
        ..Requested::default()
    };
    let Ok(found) = detect(&src, SavedConfig::default(), &requested) else { return };
    for w in &found.weights {
        let Ok(t) = w.tensor(&src) else { continue };
        if t.numel() > 1 << 22 {
            continue;
        }
        let mut out = vec![0f32; t.numel() as usize];
        t.dequantize(&mut out).expect("a validated weight decodes");
        let x = vec![1f32; t.cols()];
        let mut y = vec![0f32; t.rows()];
        t.matvec(&x, &mut y).expect("a validated weight multiplies");
    }
});
