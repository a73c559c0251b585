//! Detection + decoding of every reference file written by the real libraries
//! (bitsandbytes, HQQ, MLX, optimum-quanto; safetensors, torch pickles and MLX's npz):
//! each weight found in the file decodes to the library's own dequantization, bit for
//! bit. Files carry no config.json; MLX's settings come from a request (as
//! `--prequant` would give them) and quanto's from the `<stem>_qmap.json` beside it.

use std::path::{Path, PathBuf};

use qload_prequant::{Requested, detect_at};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn f32s(source: &qload_formats::WeightSource, name: &str) -> Vec<f32> {
    let t = source.tensor(name).unwrap();
    assert_eq!(t.dtype, qload_formats::DType::F32);
    source
        .tensor_bytes(t)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// MLX affine settings from a file name like `affine_3bit_g64_bf16`.
fn mlx_request(stem: &str) -> Requested {
    let mut r = Requested::default();
    for part in stem.split('_') {
        if let Some(b) = part.strip_suffix("bit") {
            r.bits = b.parse().ok();
        } else if let Some(g) = part.strip_prefix('g') {
            r.group_size = g.parse().ok();
        }
    }
    r
}

#[test]
fn every_reference_file_decodes_bit_exact() {
    let mut checked = Vec::new();
    for lib in ["bitsandbytes", "hqq", "mlx", "quanto"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(lib))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                !n.contains("truth") && [".safetensors", ".bin", ".pt", ".npz"].iter().any(|x| n.ends_with(x))
            })
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let stem = name.split('.').next().unwrap().to_string();
            let truth_name = if name.ends_with(".npz") {
                format!("{stem}_npz_truth.npz")
            } else {
                format!("{stem}_truth.npz")
            };
            let requested = if lib == "mlx" && stem.starts_with("affine") {
                mlx_request(&stem)
            } else {
                Requested::default()
            };
            let source = qload_formats::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let found = detect_at(&path, &source, &requested).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(found.weights.len(), 1, "{name}: {:?}", found.weights);
            let w = &found.weights[0];
            let t = w.tensor(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut got = vec![0f32; t.numel() as usize];
            // Decode in chunks of 7 rows, as the loader may.
            let cols = t.cols();
            for (k, chunk) in got.chunks_mut(7 * cols).enumerate() {
                t.dequantize_rows(k * 7, chunk)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            let truth = qload_formats::open(fixtures().join(lib).join(&truth_name)).unwrap();
            let want = f32s(&truth, "dequantized_weight");
            assert_eq!(got.len(), want.len(), "{name}");
            let bad = (0..want.len())
                .filter(|&i| got[i].to_bits() != want[i].to_bits())
                .count();
            assert_eq!(bad, 0, "{name} ({}): {bad} values differ", w.scheme.label());
            checked.push(format!("{lib}/{name}: {}", w.scheme.label()));
        }
    }
    // Every library and container variant was reached.
    assert!(checked.len() >= 40, "{checked:#?}");
}

/// A stable-toolchain smoke run of the `prequant` fuzz target: byte flips, truncations
/// and length changes of the library-written files through detection, validation,
/// decoding and matvec. Nothing may panic; whatever validates must decode.
#[test]
fn mutated_reference_files_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for lib in ["bitsandbytes", "hqq", "mlx", "quanto"] {
        for e in std::fs::read_dir(fixtures().join(lib)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                files.push(p);
            }
        }
    }
    files.sort();
    // transformers' packed BitNet (its linear class asked for: no config travels here).
    files.push(fixtures().join("hf/bitnet-b158/model.safetensors"));
    let mut decoded = 0;
    for path in &files {
        let good = std::fs::read(path).unwrap();
        let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
        for round in 0..40 {
            let mut b = good.clone();
            match round % 4 {
                // Flip bytes in the header (keys, dtypes, shapes, offsets).
                0 | 1 => {
                    for _ in 0..1 + next() % 4 {
                        let at = 8 + (next() as usize % (header - 8));
                        b[at] ^= 1 << (next() % 8);
                    }
                }
                // Flip bytes in the data (codes, scales, metadata tensors).
                2 => {
                    for _ in 0..1 + next() % 16 {
                        let at = header + (next() as usize % (b.len() - header));
                        b[at] = next() as u8;
                    }
                }
                // Cut the file.
                _ => b.truncate(next() as usize % b.len()),
            }
            let Ok(src) = qload_formats::open_bytes("m.safetensors", b, &Default::default()) else {
                continue;
            };
            let requested = if path.to_string_lossy().contains("bitnet") {
                Requested::parse("bitnet,mode=autobitlinear").unwrap()
            } else {
                Requested {
                    bits: Some(1 + (next() % 8) as u8),
                    group_size: Some([32, 64, 128][next() as usize % 3]),
                    ..Requested::default()
                }
            };
            let Ok(found) = qload_prequant::detect(&src, qload_prequant::SavedConfig::default(), &requested) else {
                continue;
            };
            for w in &found.weights {
                let Ok(t) = w.tensor(&src) else { continue };
                let mut out = vec![0f32; t.numel() as usize];
                t.dequantize(&mut out).expect("a validated weight decodes");
                let x = vec![0.5f32; t.cols()];
                let mut y = vec![0f32; t.rows()];
                t.matvec(&x, &mut y).expect("a validated weight multiplies");
                if let Some(i2s) = t.to_i2s(qload_quant_core::bitnet::i2s::I2sLayout::X86) {
                    i2s.expect("a validated ternary weight packs as I2_S");
                }
                decoded += 1;
            }
        }
    }
    assert!(decoded > 100, "only {decoded} mutated weights reached the decoders");
}
