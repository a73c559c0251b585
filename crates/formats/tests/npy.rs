//! NPY/NPZ written by numpy (`tests/fixtures/numpy`, from `cargo xtask fixtures`) and
//! the truth files of the reference set, read back exactly.

use std::path::{Path, PathBuf};

use qload_formats::{Error, Format, OpenOptions, open, open_bytes};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn numpy_written_arrays_read_back_exactly() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("numpy/expected.json")).unwrap()).unwrap();
    let arrays = expected["arrays"].as_array().unwrap();
    assert!(arrays.len() >= 18);
    for e in arrays {
        let file = e["file"].as_str().unwrap();
        let src = open(fixture(&format!("numpy/{file}"))).unwrap_or_else(|err| panic!("{file}: {err}"));
        let name = e["name"].as_str().unwrap();
        let t = src.tensor(name).unwrap_or_else(|| panic!("{file}: no {name}"));
        let shape: Vec<u64> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{file} {name}");
        let fortran = e["fortran_order"].as_bool().unwrap();
        assert_eq!(
            t.is_contiguous(),
            !fortran || t.shape.iter().filter(|&&d| d > 1).count() < 2,
            "{file} {name}"
        );
        assert_eq!(
            hex(&src.materialize(t).unwrap()),
            e["c_order_le_hex"].as_str().unwrap(),
            "{file} {name}"
        );
        if file == "stored.npz" {
            // Stored members are slices of the archive itself.
            assert_eq!(src.files().len(), 1);
            assert_eq!(t.file, 0);
        }
        if file == "deflated.npz" {
            assert!(t.file > 0, "deflated members live in inflated buffers");
            assert_eq!(src.format(), Format::Npz);
        }
    }
}

#[test]
fn refusals_name_the_reason() {
    let e = open(fixture("numpy/refuse_big_endian.npy")).unwrap_err();
    assert!(
        matches!(&e, Error::Npy { reason, .. } if reason.contains("big-endian")),
        "{e}"
    );
    let e = open(fixture("numpy/refuse_object.npy")).unwrap_err();
    assert!(
        matches!(&e, Error::Npy { reason, .. } if reason.contains("object")),
        "{e}"
    );
}

#[test]
fn truncation_and_corruption_never_panic() {
    for file in [
        "numpy/f32_fortran.npy",
        "numpy/stored.npz",
        "numpy/deflated.npz",
        "numpy/v2.npy",
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                open_bytes(file, bytes[..cut].to_vec(), &OpenOptions::default()).is_err(),
                "{file} cut at {cut}"
            );
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = (state % b.len() as u64) as usize;
            b[pos] ^= (state >> 32) as u8 | 1;
            if let Ok(src) = open_bytes(file, b, &OpenOptions::default()) {
                for t in src.tensors() {
                    let _ = src.materialize(t);
                }
            }
        }
    }
}

#[test]
fn zip_bomb_is_refused_before_inflating() {
    // A deflated member whose declared size is patched up to 1 TiB.
    let bytes = std::fs::read(fixture("numpy/deflated.npz")).unwrap();
    let mut b = bytes.clone();
    // Central directory entries (PK\x01\x02) hold the uncompressed size at +24.
    let mut i = 0;
    while let Some(p) = b[i..].windows(4).position(|w| w == b"PK\x01\x02") {
        let at = i + p + 24;
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        i = i + p + 4;
    }
    let t = std::time::Instant::now();
    let e = open_bytes("bomb.npz", b, &OpenOptions::default()).unwrap_err();
    assert!(t.elapsed().as_millis() < 200);
    assert!(
        matches!(&e, Error::Zip { reason } if reason.contains("zip bomb") || reason.contains("inflates")),
        "{e}"
    );
}

#[test]
fn safetensors_and_pickles_equal_their_numpy_truth() {
    // The reference set's truth files are NPZs written by numpy; f32 files must match bit for bit.
    let truth = open(fixture("safetensors/tiny_f32_safetensors_truth.npz")).unwrap();
    let st = open(fixture("safetensors/tiny_f32.safetensors")).unwrap();
    assert_eq!(truth.tensors().len(), st.tensors().len());
    for t in st.tensors() {
        let exp = truth.tensor(&t.name).unwrap();
        assert_eq!(
            st.tensor_bytes(t).unwrap(),
            truth.tensor_bytes(exp).unwrap(),
            "{}",
            t.name
        );
    }
    let truth = open(fixture("torch/tiny_f32_pth_truth.npz")).unwrap();
    for file in ["torch/tiny_f32_zip.pth", "torch/tiny_f32_legacy.pth"] {
        let pth = open(fixture(file)).unwrap();
        for exp in truth.tensors() {
            let t = pth.tensor(&exp.name).unwrap_or_else(|| panic!("{file}: {}", exp.name));
            assert_eq!(
                *pth.materialize(t).unwrap(),
                *truth.materialize(exp).unwrap(),
                "{file} {}",
                exp.name
            );
        }
    }
}
