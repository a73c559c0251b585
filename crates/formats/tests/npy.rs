//! NPY and NPZ reading, against fixtures written by numpy (and MLX) with
//! `xtask/python/gen_npy_fixtures.py`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use qload_formats::npy::NumpyDetails;
use qload_formats::{DType, Details, Error, Format, OpenOptions, WeightSource, open, open_bytes};

/// Records the largest single allocation made by each thread, so a test can check
/// that refusing a zip bomb allocates nothing in proportion to its declared size.
struct PeakAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; the thread-local bookkeeping
// is a const-initialized `Cell<usize>` with no destructor, which never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/numpy")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn details(source: &WeightSource) -> &NumpyDetails {
    match source.details() {
        Details::Numpy(d) => d,
        other => panic!("not numpy details: {other:?}"),
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens every fixture listed in expected.json and compares names, dtypes,
/// shapes, order and the C-order bytes exactly.
#[test]
fn every_fixture_matches_numpy() {
    let exp = expected();
    let files = exp["files"].as_object().unwrap();
    assert!(files.len() >= 14, "{} fixtures", files.len());
    for (fname, want) in files {
        let source = open(fixture(fname)).unwrap_or_else(|e| panic!("{fname}: {e}"));
        let want_format = if fname.ends_with(".npz") {
            Format::Npz
        } else {
            Format::Npy
        };
        assert_eq!(source.format(), want_format, "{fname}");
        let arrays = want["arrays"].as_array().unwrap();
        assert_eq!(source.tensors().len(), arrays.len(), "{fname}");
        for a in arrays {
            let name = a["name"].as_str().unwrap();
            let t = source
                .tensor(name)
                .unwrap_or_else(|| panic!("{fname}: no tensor {name}"));
            assert_eq!(
                t.dtype,
                DType::from_name(a["dtype"].as_str().unwrap()).unwrap(),
                "{fname}/{name}"
            );
            let shape: Vec<u64> = a["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(t.shape, shape, "{fname}/{name}");
            let fortran = a["fortran_order"].as_bool().unwrap();
            assert_eq!(t.view.is_some(), fortran, "{fname}/{name}");
            if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
                assert!(!t.is_contiguous(), "{fname}/{name}");
            } else {
                assert!(t.is_contiguous(), "{fname}/{name}");
            }
            let d = details(&source).arrays.iter().find(|d| d.name == name).unwrap();
            assert_eq!(d.descr, a["descr"].as_str().unwrap(), "{fname}/{name}");
            assert_eq!(d.fortran_order, fortran);
            let values = source.materialize(t).unwrap();
            if let Some(h) = a["c_order_hex"].as_str() {
                assert_eq!(hex(&values), h, "{fname}/{name}");
            } else {
                assert_eq!(
                    values.len() as u64,
                    a["c_order_len"].as_u64().unwrap(),
                    "{fname}/{name}"
                );
                let want = a["c_order_fnv1a64"].as_str().unwrap();
                assert_eq!(format!("{:016x}", fnv1a64(&values)), want, "{fname}/{name}");
            }
        }
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn c_order_f32_is_zero_copy() {
    let source = open(fixture("c_f32.npy")).unwrap();
    let t = &source.tensors()[0];
    assert_eq!(t.name, "c_f32");
    assert_eq!(
        (t.dtype, t.shape.as_slice(), t.file),
        (DType::F32, &[2u64, 3, 4][..], 0)
    );
    assert!(t.view.is_none());
    assert_eq!(t.bytes.end, source.files()[0].len());
    assert_eq!(t.byte_len(), 96);
    assert!(source.files()[0].is_mapped());
    let d = &details(&source).arrays[0];
    assert_eq!((d.version, d.inflated, d.descr.as_str()), ((1, 0), false, "<f4"));
}

#[test]
fn fortran_arrays_materialize_to_c_order() {
    let source = open(fixture("fortran_f32.npy")).unwrap();
    let t = &source.tensors()[0];
    assert_eq!(t.shape, vec![3, 4]);
    let view = t.view.as_ref().unwrap();
    assert_eq!(view.strides, vec![1, 3]);
    assert_eq!(view.offset, 0);
    assert_eq!(view.key, "fortran_f32.npy");
    assert_eq!(view.storage_bytes, t.bytes);
    assert!(!t.is_contiguous());
    // np.arange(12).reshape(3, 4) * 1.5 - 2, in row-major order.
    let want: Vec<f32> = (0..12).map(|i| i as f32 * 1.5 - 2.0).collect();
    assert_eq!(f32s(&source.materialize(t).unwrap()), want);
    // The raw bytes are column-major.
    let raw = f32s(source.tensor_bytes(t).unwrap());
    assert_eq!(raw[..3], [want[0], want[4], want[8]]);
}

#[test]
fn versions_two_and_three() {
    for (f, v) in [("v2_f32.npy", (2, 0)), ("v3_f32.npy", (3, 0))] {
        let source = open(fixture(f)).unwrap();
        assert_eq!(details(&source).arrays[0].version, v, "{f}");
    }
}

#[test]
fn zero_d_and_empty_arrays() {
    let s = open(fixture("scalar_0d.npy")).unwrap();
    let t = &s.tensors()[0];
    assert_eq!((t.shape.len(), t.numel()), (0, 1));
    assert_eq!(f32s(s.tensor_bytes(t).unwrap()), [3.25]);
    let s = open(fixture("empty.npy")).unwrap();
    let t = &s.tensors()[0];
    assert_eq!((t.shape.as_slice(), t.byte_len()), (&[0u64, 3][..], 0));
    assert!(s.materialize(t).unwrap().is_empty());
}

#[test]
fn bf16_from_v2_descr_with_a_note() {
    let s = open(fixture("bf16.npy")).unwrap();
    assert_eq!(s.tensors()[0].dtype, DType::BF16);
    assert!(s.notes().iter().any(|n| n.contains("bfloat16")), "{:?}", s.notes());
}

#[test]
fn npz_stored_members_are_zero_copy() {
    let s = open(fixture("several.npz")).unwrap();
    assert_eq!(s.files().len(), 1);
    let file_len = s.files()[0].len();
    let base = s.files()[0].bytes().as_ptr() as usize;
    for t in s.tensors() {
        assert_eq!(t.file, 0, "{}", t.name);
        assert!(t.bytes.end <= file_len);
        if t.view.is_none() && t.byte_len() > 0 {
            let b = s.tensor_bytes(t).unwrap();
            let p = b.as_ptr() as usize;
            assert!(p >= base && p + b.len() <= base + file_len as usize, "{}", t.name);
            assert!(matches!(s.materialize(t).unwrap(), std::borrow::Cow::Borrowed(_)));
        }
    }
    assert!(details(&s).arrays.iter().all(|a| !a.inflated));
    assert_eq!(details(&s).inflated_bytes, 0);
    // The MLX file (mx.savez) is stored too.
    let mlx = open(fixture("../mlx/affine_4bit_g64_f16.npz")).unwrap();
    assert_eq!(mlx.files().len(), 1);
    let w = mlx.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(
        (w.dtype, w.shape.as_slice(), w.file),
        (DType::U32, &[256u64, 16][..], 0)
    );
    assert_eq!(
        mlx.tensor("model.layers.0.mlp.down_proj.scales").unwrap().dtype,
        DType::F16
    );
}

#[test]
fn npz_compressed_members_inflate() {
    let s = open(fixture("compressed.npz")).unwrap();
    assert_eq!(s.files().len(), 1 + 4);
    let mut seen = Vec::new();
    for t in s.tensors() {
        assert!(t.file >= 1, "{}", t.name);
        assert!(!s.files()[t.file].is_mapped());
        assert!(!seen.contains(&t.file));
        seen.push(t.file);
    }
    let d = details(&s);
    assert!(d.arrays.iter().all(|a| a.inflated));
    assert_eq!(d.inflated_bytes, s.files()[1..].iter().map(|f| f.len()).sum::<u64>());
    assert!(s.notes().iter().any(|n| n.contains("inflated")));
    let ids = s.tensor("ids").unwrap();
    let want: Vec<u8> = (0..40i64).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(s.tensor_bytes(ids).unwrap(), want.as_slice());
    let fortran = s.tensor("fortran").unwrap();
    assert!(!fortran.is_contiguous());
    let want: Vec<u8> = (0..20i32).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(&*s.materialize(fortran).unwrap(), want.as_slice());
}

fn open_err(bytes: Vec<u8>) -> Error {
    match open_bytes("t.npz", bytes, &OpenOptions::default()) {
        Ok(s) => panic!("opened: {:?}", s.tensors()),
        Err(e) => e,
    }
}

#[test]
fn refusals_name_the_reason() {
    let exp = expected();
    let refusals = exp["refusals"].as_object().unwrap();
    assert_eq!(refusals.len(), 5);
    for (fname, needle) in refusals {
        let needle = needle.as_str().unwrap();
        match open(fixture(fname)) {
            Err(e @ Error::Npy { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{fname}: {msg}");
                assert!(msg.contains(fname), "{fname}: {msg}");
            }
            other => panic!("{fname}: {other:?}"),
        }
    }
}

/// Builds a zip of `(name, bytes, deflate)` members with the zip crate.
fn zip_of(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes, deflate) in members {
        let method = if *deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn small_npy() -> Vec<u8> {
    std::fs::read(fixture("u8.npy")).unwrap()
}

/// Sets the uncompressed size of every central-directory entry to `size`.
fn patch_declared_size(zip: &mut [u8], size: u32) {
    let mut i = 0;
    while let Some(at) = zip.get(i..).and_then(|s| s.windows(4).position(|w| w == b"PK\x01\x02")) {
        let cd = i + at;
        zip[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
        i = cd + 4;
    }
}

#[test]
fn mixed_npz_stored_in_place_deflated_in_memory() {
    let npy = small_npy();
    let f32 = std::fs::read(fixture("c_f32.npy")).unwrap();
    let s = open_bytes(
        "m.npz",
        zip_of(&[("a.npy", &npy, false), ("b/c.npy", &f32, true)]),
        &OpenOptions::default(),
    )
    .unwrap();
    assert_eq!(s.files().len(), 2);
    assert_eq!(s.tensor("a").unwrap().file, 0);
    assert_eq!(s.tensor("b/c").unwrap().file, 1);
    assert_eq!(s.tensor_bytes(s.tensor("b/c").unwrap()).unwrap(), &f32[128..]);
    assert_eq!(s.tensor_bytes(s.tensor("a").unwrap()).unwrap(), &npy[128..]);
}

#[test]
fn zip_bomb_is_refused_without_allocating() {
    // 64 KiB of zeros deflates to a few hundred bytes; then claim 4 GiB.
    let zeros = {
        let mut v = small_npy();
        let header: Vec<u8> = b"{'descr': '|u1', 'fortran_order': False, 'shape': (65536,), }".to_vec();
        v.truncate(10);
        let mut h = header;
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        v[8..10].copy_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(&h);
        v.extend_from_slice(&[0u8; 65536]);
        v
    };
    let mut bomb = zip_of(&[("z.npy", &zeros, true)]);
    assert!(bomb.len() < 4096);
    patch_declared_size(&mut bomb, 0xffff_fff0);
    LARGEST.with(|l| l.set(0));
    let err = open_err(bomb.clone());
    let largest = LARGEST.with(Cell::get);
    let msg = err.to_string();
    assert!(matches!(err, Error::Zip { .. }), "{msg}");
    assert!(msg.contains("zip bomb") && msg.contains("4294967280"), "{msg}");
    assert!(largest < 1 << 20, "largest allocation {largest} bytes while refusing");
    // Declaring less than the member inflates to is caught by the length check.
    let mut short = zip_of(&[("z.npy", &zeros, true)]);
    patch_declared_size(&mut short, 1000);
    let msg = open_err(short).to_string();
    // (The zip crate's reader or our own length check catches it, whichever is first.)
    assert!(msg.contains("\"z.npy\"") && msg.contains("declare"), "{msg}");
}

#[test]
fn npz_error_paths() {
    let npy = small_npy();
    // A member that is not an array: not taken for an NPZ at all.
    let msg = open_err(zip_of(&[("a.npy", &npy, false), ("b.txt", b"hi", false)])).to_string();
    assert!(msg.contains("neither a PyTorch checkpoint"), "{msg}");
    // A `.npy` member that is not an NPY.
    let msg = open_err(zip_of(&[("a.npy", b"not an array", false)])).to_string();
    assert!(msg.contains("npy a.npy") && msg.contains("magic"), "{msg}");
    // Trailing bytes after the data.
    let mut long = npy.clone();
    long.push(0);
    let msg = open_err(zip_of(&[("a.npy", &long, false)])).to_string();
    assert!(msg.contains("1 unexpected bytes after"), "{msg}");
    // Data shorter than the shape needs.
    let msg = open_err(zip_of(&[("a.npy", &npy[..npy.len() - 1], true)])).to_string();
    assert!(
        msg.contains("truncated") && msg.contains("needs 17 data bytes"),
        "{msg}"
    );
    // A corrupt deflate stream (flip bytes in the compressed data).
    let mut bad = zip_of(&[("a.npy", &npy, true)]);
    for b in bad.iter_mut().skip(40).take(20) {
        *b ^= 0x55;
    }
    assert!(matches!(open_err(bad), Error::Zip { .. } | Error::Npy { .. }));
    // Same tensor name twice is impossible in a zip (duplicate members are refused).
    let dup = zip_of(&[("a.npy", &npy, false), ("b.npy", &npy, false)]);
    let s = open_bytes("d.npz", dup, &OpenOptions::default()).unwrap();
    assert_eq!(s.tensors().len(), 2);
}

#[test]
fn plain_npy_error_paths() {
    let npy = small_npy();
    let msg = open_err([&npy[..], &[1]].concat()).to_string();
    assert!(msg.contains("unexpected bytes after"), "{msg}");
    let msg = open_err(npy[..npy.len() - 3].to_vec()).to_string();
    assert!(msg.contains("truncated"), "{msg}");
    let mut v9 = npy.clone();
    v9[6] = 9;
    assert!(open_err(v9).to_string().contains("version 9.0"));
}

#[test]
fn truncation_at_every_byte_never_panics() {
    for f in ["fortran_f32.npy", "several.npz", "compressed.npz"] {
        let bytes = std::fs::read(fixture(f)).unwrap();
        for n in 0..bytes.len() {
            let r = open_bytes(f, bytes[..n].to_vec(), &OpenOptions::default());
            assert!(r.is_err(), "{f} truncated to {n} bytes opened");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn byte_flips_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let f = ["c_f32.npy", "fortran_i64_3d.npy", "several.npz", "compressed.npz"][which];
        let mut bytes = std::fs::read(fixture(f)).unwrap();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(s) = open_bytes(f, bytes, &OpenOptions::default()) {
            for t in s.tensors() {
                let _ = s.materialize(t);
            }
        }
    }

    #[test]
    fn header_flips_never_panic(at in 0usize..128, x in 1u8..=255) {
        let mut bytes = std::fs::read(fixture("fortran_f32.npy")).unwrap();
        bytes[at] ^= x;
        if let Ok(s) = open_bytes("f.npy", bytes, &OpenOptions::default()) {
            for t in s.tensors() {
                let _ = s.materialize(t);
            }
        }
    }
}

#[test]
fn safetensors_and_pickles_equal_their_numpy_truth() {
    // The reference set's truth files are NPZs written by numpy; f32 files must match bit for bit.
    let truth = open(root_fixture("safetensors/tiny_f32_safetensors_truth.npz")).unwrap();
    let st = open(root_fixture("safetensors/tiny_f32.safetensors")).unwrap();
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
    let truth = open(root_fixture("torch/tiny_f32_pth_truth.npz")).unwrap();
    for file in ["torch/tiny_f32_zip.pth", "torch/tiny_f32_legacy.pth"] {
        let pth = open(root_fixture(file)).unwrap();
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

fn root_fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}
