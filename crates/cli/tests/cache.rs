//! `--cache-dir` from the command line: a writer killed at random points never leaves
//! an entry that a later load accepts; `qload cache list|verify|clear`.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{qload, root};

const MODEL: &str = "tests/fixtures/gguf/tiny-llama-f16.gguf";

#[test]
fn killed_writers_never_leave_an_accepted_entry() {
    let dir = std::env::temp_dir().join(format!("qload-cli-cache-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    // Kill children at spread-out moments of their run (open, convert, write, rename).
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(env!("CARGO_BIN_EXE_qload"))
            .args(["load", MODEL, "--quantize", "q4_k", "--cache-dir", d, "--quiet"])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % 80_000));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the child left, the next load succeeds and its entry verifies.
        let (code, out, err) = qload(&["load", MODEL, "--quantize", "q4_k", "--cache-dir", d]);
        assert_eq!(code, 0, "round {round}: {out}{err}");
        assert!(
            out.contains("cached") || out.contains("from the cache"),
            "round {round}: {out}"
        );
        let (code, out, _) = qload(&["cache", "verify", d]);
        assert_eq!(code, 0, "round {round}: {out}");
        // Start the next round from nothing half the time.
        if round % 2 == 1 {
            let (code, _, _) = qload(&["cache", "clear", d]);
            assert_eq!(code, 0);
        }
    }
}

#[test]
fn list_verify_clear() {
    let dir = std::env::temp_dir().join(format!("qload-cli-cache-list-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    for spec in ["q4_k", "q8_0"] {
        let (code, out, err) = qload(&["load", MODEL, "--quantize", spec, "--cache-dir", d]);
        assert_eq!(code, 0, "{out}{err}");
    }
    std::fs::write(dir.join(".left.tmp-1-0"), b"partial").unwrap();
    let (code, out, _) = qload(&["cache", "list", d]);
    assert_eq!(code, 0);
    assert!(
        out.contains("2 entries") && out.contains("Q4_K") && out.contains("Q8_0"),
        "{out}"
    );
    assert!(out.contains("1 temporary file"), "{out}");

    // Flip a data byte of one entry: verify fails and --remove drops it.
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap();
    let mut b = std::fs::read(&entry).unwrap();
    let n = b.len();
    b[n - 7] ^= 1;
    std::fs::write(&entry, b).unwrap();
    let (code, out, _) = qload(&["cache", "verify", d, "--remove"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED") && out.contains("1 failed"), "{out}");
    assert!(!entry.exists());

    let (code, out, _) = qload(&["cache", "clear", d]);
    assert_eq!(code, 0);
    assert!(out.contains("removed 2 file(s)"), "{out}");
}

#[test]
fn concurrent_processes_share_one_cache() {
    let dir = std::env::temp_dir().join(format!("qload-cli-cache-procs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    // Three processes started together, converting and caching the same load.
    let running: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_qload"))
                .args(["load", MODEL, "--quantize", "q5_k", "--cache-dir", d])
                .current_dir(root())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in running {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("cached") || s.contains("from the cache"), "{s}");
    }
    let (code, out, _) = qload(&["cache", "verify", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 entries, 0 failed"), "{out}");
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert_eq!(leftovers, 0);
}
