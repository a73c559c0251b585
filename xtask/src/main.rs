//! qload's task runner: `cargo xtask <command>` (see `cargo xtask help`).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod crossval;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  fixtures           regenerate tests/fixtures/gguf/ (GGUF files + JSON sidecars) with the pinned
                     Python tools in xtask/python/requirements-fixtures.txt
  fixtures --check   regenerate into a temporary folder and compare byte for byte with the
                     committed files; exits non-zero on any difference
  bench open         open-and-list benchmark: a 237 MiB GGUF with a 262,144-token vocabulary
                     and a 1 GiB safetensors, qload vs gguf-py's GGUFReader vs candle, one run
                     (figures go to docs/PERFORMANCE.md)
  crossval           qload's codecs against ggml's C code (libgguf; --with-llama-cpp for the
                     real ggml built by llama-cpp-python): decode, encode (with and without an
                     importance matrix) and dot products; --model FILE.gguf checks every tensor
                     of a real model; prints a table, exits non-zero on any mismatch
  bench kernels      dequantize / quantize / matvec throughput, one thread: qload vs candle-core
                     (same process) vs ggml (libgguf), with the machine's read/write bandwidth;
                     options: --rows R --cols C --mv-rows R --runs N; --with-llama-cpp adds
                     ggml's CPU backend (matvec, Q8_0 SIMD from_float) (docs/PERFORMANCE.md)
  bench ternary      ternary matvec: qload's I2_S (row-major, interleaved), TQ2_0, TQ1_0 vs ggml's own TQ2_0/TQ1_0 kernels
                     (llama-cpp-python's CPU backend), rounds alternating; options: --shapes
                     RxC,... --threads N --rounds N --runs N (docs/PERFORMANCE.md)
  bench load         loader goals: time to ready of a ~340 MB mixed GGUF and 1 GB bf16 -> Q4_K,
                     each load in its own process, vs candle; [RUNS] (docs/PERFORMANCE.md)
  bench model [GGUF [THREADS [TOKENS [ROUNDS]]]]
                     decode-step weight traffic (one matvec per weight per token): qload bench
                     model vs candle QMatMul on the same GGUF (default: bench load's Q4_K_M model)
  fuzz [--minutes N] [TARGET...]
                     seeds fuzz/corpus from the fixtures and runs each cargo-fuzz target (all by
                     default) for N minutes (default 1) with a nightly toolchain; prints
                     executions and findings per target (record them in docs/RELIABILITY.md)
  help               print this message

environment:
  XTASK_PYTHON       the Python 3.11+ used to create the virtual environment (default: python3)
";

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    match command {
        "fixtures" => fixtures(rest),
        "bench" => bench(rest),
        "fuzz" => fuzz(rest),
        "crossval" => {
            let root = workspace_root();
            let python = ensure_venv(&root)?;
            if rest.iter().any(|a| a == "--with-llama-cpp") {
                ensure_llama_cpp(&root, &python)?;
            }
            crossval::crossval(&root, &python, rest)
        }
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => {
            eprint!("{HELP}");
            bail!("unknown command `{other}`")
        }
    }
}

/// `cargo xtask bench open`: builds the release binaries and runs the side-by-side
/// script in `benches/scripts/` with the pinned reference packages.
fn bench(args: &[String]) -> Result<()> {
    let which = args.first().map(String::as_str);
    if !matches!(which, Some("open" | "kernels" | "load" | "model" | "ternary")) {
        bail!("usage: cargo xtask bench open|kernels|load|model|ternary [options passed to the script]");
    }
    let root = workspace_root();
    let python = ensure_venv(&root)?;
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "qload-cli",
        "-p",
        "qload-benches",
    ]))?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let release = target.join("release");
    if which == Some("kernels") {
        if args.iter().any(|a| a == "--with-llama-cpp") {
            // ggml's CPU backend as the matvec and Q8_0 from_float peer.
            ensure_llama_cpp(&root, &python)?;
        }
        return run(Command::new(&python)
            .current_dir(&root)
            .arg("benches/scripts/bench_kernels.py")
            .arg(release.join("kernels"))
            .args(&args[1..]));
    }
    if which == Some("ternary") {
        // ggml's own TQ1_0/TQ2_0 kernels as the peers of qload's ternary matvecs.
        ensure_llama_cpp(&root, &python)?;
        return run(Command::new(&python)
            .current_dir(&root)
            .arg("benches/scripts/bench_ternary.py")
            .arg(release.join("qload"))
            .args(&args[1..]));
    }
    if which == Some("model") {
        // The GGUF `bench load` writes (a ~340 MiB Q4_K_M llama-shaped model), unless one is given.
        let gguf = args
            .get(1)
            .cloned()
            .unwrap_or_else(|| target.join("bench/llama-q4_k_m.gguf").display().to_string());
        return run(Command::new(&python)
            .current_dir(&root)
            .arg("benches/scripts/bench_model.py")
            .arg(release.join("qload"))
            .arg(release.join("model_peers"))
            .arg(gguf)
            .args(args.iter().skip(2)));
    }
    if which == Some("load") {
        return run(Command::new(&python)
            .current_dir(&root)
            .arg("benches/scripts/bench_load.py")
            .arg(target.join("bench"))
            .arg(release.join("qload"))
            .arg(release.join("load_peers"))
            .args(&args[1..]));
    }
    run(Command::new(&python)
        .current_dir(&root)
        .arg("benches/scripts/bench_open_gguf.py")
        .arg(target.join("bench"))
        .arg(release.join("qload"))
        .arg(release.join("open_gguf")))
}

/// `cargo xtask fuzz [--minutes N] [TARGET...]`.
fn fuzz(args: &[String]) -> Result<()> {
    const TARGETS: &[&str] = &[
        "open_any",
        "gguf",
        "pickle",
        "safetensors",
        "npy",
        "codecs",
        "prequant",
        "bitnet",
    ];
    let mut minutes = 1.0f64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--minutes" => {
                minutes = it
                    .next()
                    .context("--minutes needs a number")?
                    .parse()
                    .context("--minutes needs a number")?
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => bail!(
                "unknown fuzz target or option {other:?} (targets: {})",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let root = workspace_root();
    let cargo_fuzz = Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output();
    if !cargo_fuzz.is_ok_and(|o| o.status.success()) {
        bail!(
            "cargo-fuzz with a nightly toolchain is needed: rustup toolchain install nightly && cargo +nightly install cargo-fuzz --version 0.13.2 --locked"
        );
    }
    run(Command::new("bash").current_dir(&root).arg("fuzz/seed.sh"))?;
    let secs = (minutes * 60.0).round().max(1.0) as u64;
    println!("| target | seconds | executions | findings |\n|---|---|---|---|");
    let mut failed = Vec::new();
    for t in &targets {
        let out = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", "-O", t, &format!("corpus/{t}"), "--"])
            .arg(format!("-max_total_time={secs}"))
            .args(["-max_len=65536", "-rss_limit_mb=2048", "-timeout=5"])
            .output()
            .with_context(|| format!("running the {t} fuzz target"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Done ").and_then(|r| r.split_whitespace().next()))
            .unwrap_or("?")
            .to_string();
        let finding = if out.status.success() {
            "none".to_string()
        } else {
            failed.push(t.clone());
            log.lines()
                .find(|l| l.contains("ERROR") || l.contains("panicked"))
                .unwrap_or("failed (see fuzz/artifacts)")
                .to_string()
        };
        println!("| {t} | {secs} | {runs} | {finding} |");
    }
    if !failed.is_empty() {
        bail!("crashes in {} (inputs in fuzz/artifacts/)", failed.join(", "));
    }
    Ok(())
}

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// fixtures

/// Each generator script and the folder it wholly owns.
const GENERATORS: &[(&str, &str)] = &[
    ("xtask/python/gen_gguf_fixtures.py", "tests/fixtures/gguf"),
    ("xtask/python/gen_npy_fixtures.py", "tests/fixtures/numpy"),
    ("xtask/python/gen_golden.py", "tests/fixtures/golden"),
    ("xtask/python/gen_iq_grids.py", "crates/quant-core/src/ggml/iq_grids"),
];
const REQUIREMENTS: &str = "xtask/python/requirements-fixtures.txt";
const VENV_DIR: &str = "target/xtask-venv";

fn fixtures(args: &[String]) -> Result<()> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            other => bail!("unknown option `{other}` for `cargo xtask fixtures`"),
        }
    }
    let root = workspace_root();
    let python = ensure_venv(&root)?;
    for &(generator, dir) in GENERATORS {
        fixture_set(&root, &python, generator, dir, check)?;
    }
    Ok(())
}

/// Regenerates (or, with `check`, verifies) the wholly generated folder `dir`.
fn fixture_set(root: &Path, python: &Path, generator: &str, dir: &str, check: bool) -> Result<()> {
    let committed = root.join(dir);
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let scratch = root
        .join("target")
        .join(format!("xtask-fixtures-{}-{name}", if check { "check" } else { "new" }));
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    run_generator(root, python, generator, &scratch)?;

    if check {
        let differences = compare_trees(&scratch, &committed)?;
        fs::remove_dir_all(&scratch).ok();
        if differences.is_empty() {
            println!("fixtures: {dir} matches {generator} byte for byte");
            return Ok(());
        }
        for line in &differences {
            eprintln!("  {line}");
        }
        bail!(
            "{dir} differs from a fresh generation ({} difference(s)); run `cargo xtask fixtures`",
            differences.len()
        );
    }

    // The folder is wholly generated: replace it, so that no stale file survives.
    if committed.exists() {
        fs::remove_dir_all(&committed).with_context(|| format!("removing {}", committed.display()))?;
    }
    if let Some(parent) = committed.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(&scratch, &committed).with_context(|| format!("moving {} into place", scratch.display()))?;

    let files = list_files(&committed)?;
    let mut total = 0u64;
    println!("wrote {dir}:");
    for rel in &files {
        let size = fs::metadata(committed.join(rel))?.len();
        total += size;
        println!("  {size:>9}  {}", rel.display());
    }
    println!("  {total:>9}  total in {} files", files.len());
    Ok(())
}

/// Creates (or reuses) the virtual environment with the pinned requirements; returns its python.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(VENV_DIR);
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    let requirements = root.join(REQUIREMENTS);
    let wanted = fs::read_to_string(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join("qload-requirements.txt");

    if !python.exists() {
        let base = env::var_os("XTASK_PYTHON").unwrap_or_else(|| OsString::from("python3"));
        eprintln!("fixtures: creating {}", venv.display());
        run(Command::new(&base).arg("-m").arg("venv").arg(&venv))
            .with_context(|| format!("creating the venv with {}", base.to_string_lossy()))?;
    }
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("fixtures: installing {}", REQUIREMENTS);
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg("-r")
            .arg(&requirements))
        .context("installing the pinned Python requirements")?;
        fs::write(&stamp, &wanted)?;
    }
    Ok(python)
}

/// Installs the pinned llama-cpp-python (which compiles ggml) into the venv unless it
/// imports already.
fn ensure_llama_cpp(root: &Path, python: &Path) -> Result<()> {
    let imports = Command::new(python)
        .args(["-c", "import llama_cpp"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if imports {
        return Ok(());
    }
    let requirements = root.join("xtask/python/requirements-llama-cpp.txt");
    eprintln!("xtask: building llama-cpp-python (the real ggml) from PyPI; this takes about 15 minutes");
    run(Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .arg("-r")
        .arg(&requirements)
        // A portable build: the reference must not depend on this machine's CPU.
        .env("CMAKE_ARGS", "-DGGML_NATIVE=OFF"))
    .context("installing llama-cpp-python (needs a C/C++ compiler)")
}

fn run_generator(root: &Path, python: &Path, generator: &str, out: &Path) -> Result<()> {
    run(Command::new(python)
        .arg(root.join(generator))
        .arg(out)
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONUTF8", "1"))
    .with_context(|| format!("running {generator}"))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} failed: {status}", command.get_program());
    }
    Ok(())
}

/// Every file under `dir`, relative to it, sorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                out.push(path.strip_prefix(base)?.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// Differences between a fresh generation and the committed tree, one line each.
fn compare_trees(fresh: &Path, committed: &Path) -> Result<Vec<String>> {
    let new_files = list_files(fresh)?;
    let old_files = list_files(committed)?;
    let mut differences = Vec::new();
    for rel in &new_files {
        if !old_files.contains(rel) {
            differences.push(format!("missing: {}", rel.display()));
        } else if fs::read(fresh.join(rel))? != fs::read(committed.join(rel))? {
            differences.push(format!("differs: {}", rel.display()));
        }
    }
    for rel in &old_files {
        if !new_files.contains(rel) {
            differences.push(format!("not generated (stale): {}", rel.display()));
        }
    }
    Ok(differences)
}
