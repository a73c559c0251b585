//! safetensors files and shard indexes: real files written by torch / huggingface_hub,
//! every dtype the safetensors crate defines, and the errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qload_formats::{DType, Error, Format, OpenOptions, open, open_bytes};
use safetensors::tensor::{Dtype, TensorView};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qload-st-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TINY: &[(&str, &[u64])] = &[
    ("model.embed_tokens.weight", &[256, 64]),
    ("model.layers.0.self_attn.q_proj.weight", &[64, 64]),
    ("model.layers.1.self_attn.o_proj.weight", &[64, 64]),
    ("model.layers.0.mlp.gate_proj.weight", &[172, 64]),
    ("model.layers.1.mlp.down_proj.weight", &[64, 172]),
    ("model.layers.1.post_attention_layernorm.weight", &[64]),
    ("model.norm.weight", &[64]),
];

#[test]
fn torch_written_files() {
    for (file, dtype) in [("f32", DType::F32), ("f16", DType::F16), ("bf16", DType::BF16)] {
        let src = open(fixture(&format!("safetensors/tiny_{file}.safetensors"))).unwrap();
        assert_eq!(src.format(), Format::Safetensors);
        assert_eq!(src.tensors().len(), 20, "{file}");
        assert!(
            src.tensor("lm_head.weight").is_none(),
            "tied weight dropped at save time"
        );
        for (name, shape) in TINY {
            let t = src.tensor(name).unwrap_or_else(|| panic!("{name} in {file}"));
            assert_eq!((t.dtype, t.shape.as_slice()), (dtype, *shape), "{name}");
            assert_eq!(t.byte_len(), dtype.nbytes(shape).unwrap());
            assert!(t.is_contiguous());
        }
        let qload_formats::Details::Safetensors(d) = src.details() else {
            panic!()
        };
        assert_eq!(d.headers[0].metadata.get("format").map(String::as_str), Some("pt"));
    }
}

#[test]
fn shards_match_the_single_file_and_record_tied_names() {
    let single = open(fixture("safetensors/tiny_f32.safetensors")).unwrap();
    for path in [
        fixture("safetensors/sharded_f32/model.safetensors.index.json"),
        fixture("safetensors/sharded_f32"),
    ] {
        let sharded = open(&path).unwrap();
        assert_eq!(sharded.files().len(), 2);
        assert_eq!(sharded.tensors().len(), single.tensors().len());
        assert_eq!(
            sharded.aliases(),
            &[("lm_head.weight".to_string(), "model.embed_tokens.weight".to_string())]
        );
        for t in single.tensors() {
            let s = sharded.tensor(&t.name).unwrap();
            assert_eq!((s.dtype, &s.shape), (t.dtype, &t.shape));
            assert_eq!(
                sharded.tensor_bytes(s).unwrap(),
                single.tensor_bytes(t).unwrap(),
                "{}",
                t.name
            );
        }
        let index = sharded.shard_index().unwrap();
        assert_eq!(index.shards.len(), 2);
        assert!(index.total_size.is_some());
    }
    let bf16 = open(fixture("safetensors/sharded_bf16")).unwrap();
    assert!(bf16.tensors().iter().all(|t| t.dtype == DType::BF16));
}

#[test]
fn every_safetensors_dtype() {
    let cases: Vec<(Dtype, DType, Vec<usize>, usize)> = vec![
        (Dtype::BOOL, DType::Bool, vec![3], 3),
        (Dtype::U8, DType::U8, vec![2, 2], 4),
        (Dtype::I8, DType::I8, vec![4], 4),
        (Dtype::F8_E5M2, DType::F8E5M2, vec![4], 4),
        (Dtype::F8_E4M3, DType::F8E4M3, vec![4], 4),
        (Dtype::F8_E8M0, DType::F8E8M0, vec![2], 2),
        (Dtype::F8_E4M3FNUZ, DType::F8E4M3FNUZ, vec![2], 2),
        (Dtype::F8_E5M2FNUZ, DType::F8E5M2FNUZ, vec![2], 2),
        (Dtype::I16, DType::I16, vec![3], 6),
        (Dtype::U16, DType::U16, vec![3], 6),
        (Dtype::F16, DType::F16, vec![2, 3], 12),
        (Dtype::BF16, DType::BF16, vec![3], 6),
        (Dtype::I32, DType::I32, vec![2], 8),
        (Dtype::U32, DType::U32, vec![2], 8),
        (Dtype::F32, DType::F32, vec![1, 2], 8),
        (Dtype::C64, DType::C64, vec![2], 16),
        (Dtype::F64, DType::F64, vec![2], 16),
        (Dtype::I64, DType::I64, vec![2], 16),
        (Dtype::U64, DType::U64, vec![], 8),
        (Dtype::F4, DType::F4, vec![2, 4], 4),
        (Dtype::F6_E2M3, DType::F6E2M3, vec![4], 3),
        (Dtype::F6_E3M2, DType::F6E3M2, vec![4], 3),
    ];
    let data: Vec<Vec<u8>> = cases
        .iter()
        .map(|(_, _, _, n)| (0..*n).map(|i| (i * 37 + 1) as u8).collect())
        .collect();
    let views: HashMap<String, TensorView<'_>> = cases
        .iter()
        .zip(&data)
        .map(|((st, _, shape, _), bytes)| (format!("{st:?}"), TensorView::new(*st, shape.clone(), bytes).unwrap()))
        .collect();
    let file = safetensors::serialize(&views, None).unwrap();
    let src = open_bytes("all.safetensors", file, &OpenOptions::default()).unwrap();
    for ((st, dtype, shape, n), bytes) in cases.iter().zip(&data) {
        let t = src.tensor(&format!("{st:?}")).unwrap();
        assert_eq!(t.dtype, *dtype);
        assert_eq!(t.shape, shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
        assert_eq!(src.tensor_bytes(t).unwrap(), bytes.as_slice());
        assert_eq!(dtype.nbytes(&t.shape), Some(*n as u64), "{dtype}");
    }
}

#[test]
fn hostile_and_broken_files() {
    // A 100 MB header claim is refused before anything is parsed or allocated.
    let mut big = (100u64 << 20).to_le_bytes().to_vec();
    big.extend_from_slice(b"{\"a\":");
    big.resize(4096, b' ');
    let t = std::time::Instant::now();
    let err = open_bytes("x.safetensors", big.clone(), &OpenOptions::default()).unwrap_err();
    assert!(t.elapsed().as_millis() < 100);
    // (Detection sees a header longer than the file: not safetensors at all.)
    assert!(
        matches!(err, Error::UnknownFormat { .. } | Error::TooMany { .. }),
        "{err:?}"
    );
    big.resize((100 << 20) + 64, b' ');
    let err = open_bytes("x.safetensors", big, &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TooMany { .. }), "{err:?}");

    // Truncating a real file anywhere is an error, never a panic.
    let bytes = std::fs::read(fixture("safetensors/tiny_f16.safetensors")).unwrap();
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        assert!(
            open_bytes("t.safetensors", bytes[..cut].to_vec(), &OpenOptions::default()).is_err(),
            "{cut}"
        );
    }
    // Offsets that overlap or leave holes are rejected by the safetensors crate.
    let mut bad = bytes.clone();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let first = header.find("\"data_offsets\":[").unwrap() + 16;
    let digit = header[first..].find(|c: char| c.is_ascii_digit()).unwrap() + first;
    let mut h = header.into_bytes();
    h[digit] = if h[digit] == b'9' { b'8' } else { b'9' };
    bad[8..8 + n].copy_from_slice(&h);
    assert!(matches!(
        open_bytes("t.safetensors", bad, &OpenOptions::default()),
        Err(Error::Safetensors(_))
    ));
}

#[test]
fn broken_shard_indexes() {
    let src = fixture("safetensors/sharded_f32");
    let index_text = std::fs::read_to_string(src.join("model.safetensors.index.json")).unwrap();
    let setup = |name: &str, index: &str, copy_shards: bool| {
        let d = tmp_dir(name);
        std::fs::write(d.join("model.safetensors.index.json"), index).unwrap();
        if copy_shards {
            for s in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
                std::fs::copy(src.join(s), d.join(s)).unwrap();
            }
        }
        d.join("model.safetensors.index.json")
    };
    let missing = setup("missing", &index_text, false);
    assert!(matches!(open(&missing), Err(Error::Shards { reason, .. }) if reason.contains("missing")));
    let escape = setup(
        "escape",
        &index_text.replace("model-00002-of-00002", "../x/model-00002-of-00002"),
        true,
    );
    assert!(matches!(open(&escape), Err(Error::Shards { reason, .. }) if reason.contains("plain file name")));
    let moved = setup(
        "moved",
        &index_text.replacen(
            "\"model.norm.weight\": \"model-00002",
            "\"model.norm.weight\": \"model-00001",
            1,
        ),
        true,
    );
    let err = open(&moved).unwrap_err();
    assert!(
        matches!(&err, Error::Shards { reason, .. } if reason.contains("model.norm.weight")),
        "{err}"
    );
    let extra = setup(
        "extra",
        &index_text.replace(
            "\"weight_map\": {",
            "\"weight_map\": {\n    \"ghost.weight\": \"model-00001-of-00002.safetensors\",",
        ),
        true,
    );
    assert!(matches!(open(&extra), Err(Error::Shards { reason, .. }) if reason.contains("no shard")));
    let not_json = setup("notjson", "{ nope", false);
    assert!(matches!(open(&not_json), Err(Error::Shards { .. })));
}
