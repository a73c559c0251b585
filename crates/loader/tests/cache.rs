//! The transcode cache: a second load with the same source and settings maps the entry
//! instead of converting; bad entries are rebuilt; concurrent loads all succeed.

use std::path::{Path, PathBuf};

use qload_loader::Loader;
use qload_loader::policy::Policy;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn cache_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qload-cache-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const MODEL: &str = "gguf/tiny-llama-f16.gguf";

fn load(dir: &Path, spec: &str) -> (qload_loader::LoadedModel, qload_loader::LoadReport) {
    Loader::new(fixture(MODEL))
        .quantize(Policy::parse(spec).unwrap())
        .cache_dir(dir)
        .load()
        .unwrap()
}

fn outcome(r: &qload_loader::LoadReport) -> &str {
    r.cache.as_ref().map_or("none", |c| c.outcome.as_str())
}

/// Name, dtype, shape and bytes of every tensor.
fn contents(m: &qload_loader::LoadedModel) -> Vec<(String, String, Vec<u64>, Vec<u8>)> {
    m.tensors()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dtype.to_string(),
                t.shape.clone(),
                m.bytes(t).to_vec(),
            )
        })
        .collect()
}

#[test]
fn a_hit_maps_the_same_tensors_and_report() {
    let dir = cache_dir("hit");
    let (first, r1) = load(&dir, "q4_k_m");
    assert_eq!(outcome(&r1), "stored", "{:?}", r1.notes);
    let (second, r2) = load(&dir, "q4_k_m");
    assert_eq!(outcome(&r2), "hit");
    assert!(second.tensors().iter().all(|t| t.is_mapped()));
    assert_eq!(contents(&first), contents(&second));
    assert_eq!(r1.per_tensor.len(), r2.per_tensor.len());
    assert_eq!(r1.stored_bytes, r2.stored_bytes);
    for (a, b) in r1.per_tensor.iter().zip(&r2.per_tensor) {
        assert_eq!(
            (&a.name, a.dtype_before, a.dtype_after, a.decision),
            (&b.name, b.dtype_before, b.dtype_after, b.decision)
        );
    }
    assert!(r2.summary().ends_with("from the cache"), "{}", r2.summary());
    let entry = PathBuf::from(&r2.cache.as_ref().unwrap().path);
    qload_loader::cache::verify_entry(&entry).unwrap();

    // Other settings are another entry.
    let (_, r3) = load(&dir, "q8_0");
    assert_eq!(outcome(&r3), "stored");
    assert_ne!(r3.cache.unwrap().path, r1.cache.unwrap().path);
    // Keeping every tensor as stored is never cached (it maps the source already).
    let (_, r4) = Loader::new(fixture(MODEL)).cache_dir(&dir).load().unwrap();
    assert!(r4.cache.is_none());
}

#[test]
fn truncated_garbage_and_flipped_entries_are_caught() {
    let dir = cache_dir("bad");
    let (good, r1) = load(&dir, "q4_k");
    let entry = PathBuf::from(&r1.cache.unwrap().path);
    let bytes = std::fs::read(&entry).unwrap();

    // Truncated (as by a disk filling up under a non-atomic writer): rebuilt.
    std::fs::write(&entry, &bytes[..bytes.len() - 1000]).unwrap();
    let (m, r) = load(&dir, "q4_k");
    assert_eq!(outcome(&r), "stored");
    assert!(
        r.notes.iter().any(|n| n.contains("unusable") && n.contains("rebuilt")),
        "{:?}",
        r.notes
    );
    assert_eq!(contents(&m), contents(&good));
    assert_eq!(outcome(&load(&dir, "q4_k").1), "hit");

    // Garbage under the entry's name: rebuilt.
    std::fs::write(&entry, b"not a gguf at all").unwrap();
    assert_eq!(outcome(&load(&dir, "q4_k").1), "stored");

    // A flipped data byte passes the fast checks of a hit; `verify_entry` finds it.
    let mut flipped = std::fs::read(&entry).unwrap();
    let n = flipped.len();
    flipped[n - 100] ^= 0x40;
    std::fs::write(&entry, &flipped).unwrap();
    let err = qload_loader::cache::verify_entry(&entry).unwrap_err();
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn concurrent_loads_all_succeed_with_one_valid_entry() {
    let dir = cache_dir("concurrent");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| contents(&load(&dir, "q5_k").0))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "temporary files left behind: {entries:?}");
    let (m, r) = load(&dir, "q5_k");
    assert_eq!(outcome(&r), "hit");
    assert_eq!(contents(&m), results[0]);
}
