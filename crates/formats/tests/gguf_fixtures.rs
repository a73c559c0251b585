//! The GGUF fixtures written by gguf-py / libgguf (`cargo xtask fixtures`), read back
//! by qload and compared with what gguf-py's `GGUFReader` saw (the JSON sidecars).

use std::path::{Path, PathBuf};

use qload_formats::gguf::{GgufWriter, Value};
use qload_formats::{DType, Details, GgmlFlavor, open};
use serde_json::Value as J;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn sidecar(file: &Path) -> J {
    let text = std::fs::read_to_string(format!("{}.json", file.display())).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn good_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "fixtures missing: run `cargo xtask fixtures`");
    v
}

/// Compares one metadata value with the sidecar's rendering of it.
fn check_value(key: &str, v: &Value, expected: &J, data: &[u8]) {
    match v {
        Value::Array(a) => {
            assert_eq!(a.len, expected["length"].as_u64().unwrap(), "{key} length");
            let items: Vec<J> = a.iter(data).map(|x| x.unwrap().to_json(data, usize::MAX)).collect();
            if let Some(all) = expected["value"].as_array() {
                assert_eq!(&items, all, "{key}");
            } else {
                let head = expected["head"].as_array().unwrap();
                let tail = expected["tail"].as_array().unwrap();
                assert_eq!(&items[..head.len()], head.as_slice(), "{key} head");
                assert_eq!(&items[items.len() - tail.len()..], tail.as_slice(), "{key} tail");
            }
        }
        Value::F32(x) => assert_eq!(f64::from(*x), expected["value"].as_f64().unwrap(), "{key}"),
        Value::F64(x) => assert_eq!(*x, expected["value"].as_f64().unwrap(), "{key}"),
        other => assert_eq!(other.to_json(data, usize::MAX), expected["value"], "{key}"),
    }
}

#[test]
fn every_fixture_agrees_with_gguf_py() {
    for path in good_files() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let src = open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Details::Gguf(headers) = src.details() else {
            panic!()
        };
        // A split model opens all its parts; compare the part this sidecar describes.
        let part = src.files().iter().position(|f| f.path() == path).unwrap();
        let h = &headers[part];
        let data = src.files()[part].bytes();
        let exp = sidecar(&path);
        assert_eq!(u64::from(h.version), exp["version"].as_u64().unwrap(), "{name}");
        assert_eq!(h.alignment, exp["alignment"].as_u64().unwrap(), "{name}");
        assert_eq!(h.data_offset, exp["data_section_offset"].as_u64().unwrap(), "{name}");
        assert_eq!(h.metadata.len() as u64, exp["kv_count"].as_u64().unwrap(), "{name}");
        for (kv, e) in h.metadata.iter().zip(exp["metadata"].as_array().unwrap()) {
            assert_eq!(kv.key, e["key"].as_str().unwrap(), "{name}");
            check_value(&kv.key, &kv.value, e, data);
        }
        let tensors: Vec<_> = src.tensors().iter().filter(|t| t.file == part).collect();
        let exp_tensors = exp["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), exp_tensors.len(), "{name}");
        for (t, e) in tensors.iter().zip(exp_tensors) {
            let id = t.dtype.ggml_id(h.flavor).unwrap();
            assert_eq!(t.name, e["name"].as_str().unwrap(), "{name}");
            assert_eq!(u64::from(id), e["ggml_type"].as_u64().unwrap(), "{name} {}", t.name);
            let ne: Vec<u64> = e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(t.ggml_ne(), ne, "{name} {}", t.name);
            assert_eq!(t.numel(), e["n_elements"].as_u64().unwrap(), "{name} {}", t.name);
            assert_eq!(t.byte_len(), e["n_bytes"].as_u64().unwrap(), "{name} {}", t.name);
            assert_eq!(t.bytes.start, e["data_offset"].as_u64().unwrap(), "{name} {}", t.name);
        }
        assert!(
            h.ggml_compat_problems(&tensors.into_iter().cloned().collect::<Vec<_>>(), data.len() as u64)
                .is_empty()
        );
    }
}

#[test]
fn rewriting_a_gguf_py_file_gives_identical_bytes() {
    for path in good_files() {
        let src = open(&path).unwrap();
        let Details::Gguf(headers) = src.details() else {
            panic!()
        };
        for (part, h) in headers.iter().enumerate() {
            let original = src.files()[part].bytes();
            let mut w = GgufWriter::from_header(h, original).unwrap();
            let tensors: Vec<_> = src.tensors().iter().filter(|t| t.file == part).collect();
            for t in &tensors {
                w.add_tensor(&t.name, t.dtype, &t.shape).unwrap();
            }
            let mut out = Vec::new();
            w.write(&mut out, |i, sink| {
                sink.write_all(src.tensor_bytes(tensors[i]).unwrap())
            })
            .unwrap();
            assert!(out == original, "{} part {part}: rewrite differs", path.display());
        }
    }
}

#[test]
fn types_and_special_files() {
    let all = open(dir().join("all_types_v3.gguf")).unwrap();
    let mut types: Vec<DType> = all.tensors().iter().map(|t| t.dtype).collect();
    types.sort();
    types.dedup();
    for d in [
        DType::Q4K,
        DType::IQ2XXS,
        DType::IQ1M,
        DType::TQ1_0,
        DType::MXFP4,
        DType::NVFP4,
        DType::Q1_0,
    ] {
        assert!(types.contains(&d), "{d} missing from all_types");
    }
    let v2 = open(dir().join("all_types_v2.gguf")).unwrap();
    let Details::Gguf(h) = v2.details() else { panic!() };
    assert_eq!(h[0].version, 2);

    let bitnet = open(dir().join("bitnet-i2s.gguf")).unwrap();
    let Details::Gguf(h) = bitnet.details() else { panic!() };
    assert_eq!(h[0].flavor, GgmlFlavor::Bitnet);
    let i2s: Vec<_> = bitnet.tensors().iter().filter(|t| t.dtype == DType::I2S).collect();
    assert_eq!(i2s.len(), 7);
    assert!(i2s.iter().all(|t| t.byte_len() == t.numel() / 4 + 32));
    let tl2 = open(dir().join("bitnet-tl2-ambiguous.gguf")).unwrap();
    assert!(tl2.tensors().iter().any(|t| t.dtype == DType::TL2));
    let mx = open(dir().join("mxfp4-upstream.gguf")).unwrap();
    assert!(mx.tensors().iter().any(|t| t.dtype == DType::MXFP4));
    assert!(!mx.tensors().iter().any(|t| t.dtype == DType::TL2));

    let split = open(dir().join("split-00002-of-00003.gguf")).unwrap();
    assert_eq!(split.files().len(), 3);
    assert_eq!(split.tensors().len(), 12);

    let vocab = open(dir().join("vocab262k.gguf")).unwrap();
    let Details::Gguf(h) = vocab.details() else { panic!() };
    let Some(Value::Array(tokens)) = h[0].get("tokenizer.ggml.tokens") else {
        panic!()
    };
    assert_eq!(tokens.len, 262_144);
}

#[test]
fn split_parts_must_all_be_there() {
    let tmp = std::env::temp_dir().join(format!("qload-split-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for k in [1, 3] {
        let name = format!("split-0000{k}-of-00003.gguf");
        std::fs::copy(dir().join(&name), tmp.join(&name)).unwrap();
    }
    let err = open(tmp.join("split-00001-of-00003.gguf")).unwrap_err();
    assert!(
        matches!(&err, qload_formats::Error::Split { reason, .. } if reason.contains("part 2 of 3")),
        "{err}"
    );
}

#[test]
fn every_broken_fixture_is_rejected() {
    let bad = dir().join("bad");
    let mut n = 0;
    for e in std::fs::read_dir(&bad).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "gguf") {
            assert!(open(&p).is_err(), "{} accepted", p.display());
            n += 1;
        }
    }
    assert!(n >= 8);
}
