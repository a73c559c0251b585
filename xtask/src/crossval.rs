//! `cargo xtask crossval`: qload's codecs against ggml's own C code.
//!
//! The reference side is `xtask/python/crossval.py`, a line-oriented server run in
//! the pinned venv (libgguf, or with `--with-llama-cpp` the real ggml built by
//! llama-cpp-python). Every case writes its input to a file, asks the server for
//! the reference output, computes qload's output in-process and compares: block by
//! block, f32 bits for decoding (NaN equal to NaN) and bytes for encoding, with a
//! tolerance of zero. Dot products are held to ggml's error budgets against f32.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use qload_dtype::{DType, GgmlFlavor};
use qload_quant_core::{Codec, codec, kernels};

const HELP: &str = "\
usage: cargo xtask crossval [--with-llama-cpp] [--model FILE.gguf]... [--types q4_0,q4_k,…] [--blocks N]

Compares every qload codec with ggml: decoding random blocks (NaN/Inf/subnormal scales
included), encoding random and edge rows (zeros, constants, huge and tiny magnitudes,
±Inf, NaN, rounding ties, rows of 9 blocks for the 32-element types) with and without
an importance matrix, and dot products against f32 within ggml's budgets. With --model,
every tensor of the GGUF is decoded by both and the decoded values re-encoded by both.
Prints a table; exits non-zero on any mismatch.
";

struct Options {
    llama_cpp: bool,
    models: Vec<PathBuf>,
    types: Option<Vec<DType>>,
    blocks: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        llama_cpp: false,
        models: vec![],
        types: None,
        blocks: 4096,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--with-llama-cpp" => o.llama_cpp = true,
            "--model" => o.models.push(PathBuf::from(it.next().context("--model needs a file")?)),
            "--types" => {
                let list = it.next().context("--types needs a list")?;
                let mut types = vec![];
                for name in list.split(',') {
                    types.push(DType::from_name(name.trim()).with_context(|| format!("unknown type `{name}`"))?);
                }
                o.types = Some(types);
            }
            "--blocks" => o.blocks = it.next().context("--blocks needs a number")?.parse()?,
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n{HELP}"),
        }
    }
    Ok(o)
}

/// The reference server.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reference {
    fn start(python: &Path, script: &Path, backend: &str) -> Result<Reference> {
        let mut child = Command::new(python)
            .arg(script)
            .args(["--backend", backend])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(Reference { child, stdin, stdout })
    }

    fn ask(&mut self, request: serde_json::Value) -> Result<serde_json::Value> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the reference server exited");
        }
        let reply: serde_json::Value = serde_json::from_str(&line)?;
        if reply["ok"] != true {
            bail!("{}", reply["error"].as_str().unwrap_or("reference error"));
        }
        Ok(reply)
    }

    fn decode(
        &mut self,
        id: u32,
        src: &Path,
        offset: u64,
        nbytes: usize,
        n_per_row: usize,
        out: &Path,
    ) -> Result<Vec<f32>> {
        self.ask(
            serde_json::json!({"op": "decode", "type": id, "src": src, "offset": offset,
            "nbytes": nbytes, "n_per_row": n_per_row, "out": out}),
        )?;
        read_f32(out)
    }

    fn encode(&mut self, id: u32, src: &Path, n_per_row: usize, imatrix: Option<&Path>, out: &Path) -> Result<Vec<u8>> {
        self.ask(
            serde_json::json!({"op": "encode", "type": id, "src": src, "n_per_row": n_per_row,
            "imatrix": imatrix, "out": out}),
        )?;
        Ok(fs::read(out)?)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(fs::write(path, bytes)?)
}

/// One line of the result table.
#[derive(Default)]
struct Tally {
    blocks: u64,
    mismatching: u64,
    max_abs: f32,
    note: String,
}

type Table = BTreeMap<(String, String, String), Tally>;

fn compare_decoded(t: &mut Tally, ours: &[f32], theirs: &[f32], block: usize) {
    for (a, b) in ours.chunks(block).zip(theirs.chunks(block)) {
        t.blocks += 1;
        let mut bad = false;
        for (x, y) in a.iter().zip(b) {
            if x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()) {
                bad = true;
                let d = (x - y).abs();
                if d.is_nan() || d > t.max_abs {
                    t.max_abs = if d.is_nan() { f32::INFINITY } else { d };
                }
            }
        }
        t.mismatching += bad as u64;
    }
    if ours.len() != theirs.len() {
        t.mismatching += 1;
        t.note = format!("length {} vs {}", ours.len(), theirs.len());
    }
}

fn compare_encoded(t: &mut Tally, ours: &[u8], theirs: &[u8], block_bytes: usize, c: &dyn Codec) {
    for (a, b) in ours.chunks(block_bytes).zip(theirs.chunks(block_bytes)) {
        t.blocks += 1;
        if a != b {
            t.mismatching += 1;
            let mut fa = vec![0f32; c.block_elems()];
            let mut fb = vec![0f32; c.block_elems()];
            if c.dequantize(a, &mut fa).is_ok() && c.dequantize(b, &mut fb).is_ok() {
                for (x, y) in fa.iter().zip(&fb) {
                    let d = (x - y).abs();
                    t.max_abs = if d.is_nan() { f32::INFINITY } else { t.max_abs.max(d) };
                }
            }
        }
    }
    if ours.len() != theirs.len() {
        t.mismatching += 1;
        t.note = format!("length {} vs {}", ours.len(), theirs.len());
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn gauss(&mut self) -> f32 {
        (0..6).map(|_| self.unit()).sum::<f32>() - 3.0
    }
}

/// Byte offsets of the f16 scale of each type (where random NaN/Inf/subnormal scales go).
fn scale_offset(t: DType) -> Option<usize> {
    Some(match t {
        DType::Q2K => 80,
        DType::Q3K => 108,
        DType::Q6K => 208,
        DType::TQ1_0 => 52,
        DType::TQ2_0 => 64,
        DType::IQ1M | DType::MXFP4 | DType::Q8K => return None,
        _ => 0,
    })
}

/// Rows for the encoders: (description, values), each `n` long.
fn edge_rows(n: usize, rng: &mut Rng) -> Vec<(&'static str, Vec<f32>)> {
    let mut rows: Vec<(&'static str, Vec<f32>)> = vec![
        ("gaussian", (0..n).map(|_| rng.gauss()).collect()),
        ("weights 0.02", (0..n).map(|_| rng.gauss() * 0.02).collect()),
        ("zeros", vec![0.0; n]),
        ("constant", vec![0.37; n]),
        ("huge 1e30", (0..n).map(|_| rng.gauss() * 1e30).collect()),
        ("tiny 1e-30", (0..n).map(|_| rng.gauss() * 1e-30).collect()),
        ("ties", (0..n).map(|_| (rng.next() % 33) as f32 * 0.5 - 8.0).collect()),
        (
            "outliers",
            (0..n)
                .map(|i| rng.gauss() * if i % 41 == 0 { 50.0 } else { 0.1 })
                .collect(),
        ),
        ("positive", (0..n).map(|_| rng.unit() + 0.5).collect()),
    ];
    let mut inf: Vec<f32> = (0..n).map(|_| rng.gauss()).collect();
    inf[n / 3] = f32::INFINITY;
    inf[n / 2] = f32::NEG_INFINITY;
    rows.push(("±Inf", inf));
    let mut nan: Vec<f32> = (0..n).map(|_| rng.gauss()).collect();
    nan[n / 5] = f32::NAN;
    rows.push(("NaN", nan));
    rows
}

fn budget(t: DType) -> f32 {
    kernels::dot_error_budget(t)
}

pub fn crossval(root: &Path, python: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let work = root.join("target").join("crossval");
    fs::create_dir_all(&work)?;
    let backend = if o.llama_cpp { "llama-cpp" } else { "libgguf" };
    let mut reference = Reference::start(python, &root.join("xtask/python/crossval.py"), backend)?;
    let info = reference.ask(serde_json::json!({"op": "info"}))?;
    println!(
        "crossval: qload ({} kernels) vs {} {}",
        qload_quant_core::arch::kernel_family(),
        info["backend"],
        info["version"]
    );

    let mut table = Table::new();
    let mut rng = Rng(0x5eed_2026_1125);
    let types: Vec<DType> = match &o.types {
        Some(t) => t.clone(),
        None => DType::ALL
            .iter()
            .copied()
            .filter(|t| t.is_quantized() && codec(*t).is_some())
            .collect(),
    };
    let supported_by_reference = |t: DType| o.llama_cpp || !matches!(t, DType::Q8_1 | DType::Q8K);

    for &t in &types {
        let Some(c) = codec(t) else { continue };
        let Some(id) = t.ggml_id(GgmlFlavor::Upstream) else {
            continue;
        };
        let key = |dir: &str, src: &str| (t.to_string(), dir.to_string(), src.to_string());
        if !supported_by_reference(t) {
            table.entry(key("decode", "random blocks")).or_default().note =
                format!("no reference for {t} without --with-llama-cpp");
            continue;
        }

        // Decode random blocks.
        if c.can_dequantize() {
            let mut raw: Vec<u8> = (0..o.blocks * c.block_bytes()).map(|_| rng.next() as u8).collect();
            if let Some(at) = scale_offset(t) {
                for (i, bits) in [0x7e00u16, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x0000, 0x8000, 0x7bff]
                    .iter()
                    .enumerate()
                {
                    if let Some(b) = raw.chunks_exact_mut(c.block_bytes()).nth(i) {
                        b[at..at + 2].copy_from_slice(&bits.to_le_bytes());
                    }
                }
            }
            let src = work.join(format!("{t}.blocks"));
            fs::write(&src, &raw)?;
            let tally = table.entry(key("decode", "random blocks")).or_default();
            match reference.decode(id, &src, 0, raw.len(), c.block_elems(), &work.join("out.f32")) {
                Ok(theirs) => {
                    let mut ours = vec![0f32; o.blocks * c.block_elems()];
                    c.dequantize(&raw, &mut ours)?;
                    compare_decoded(tally, &ours, &theirs, c.block_elems());
                }
                Err(e) => tally.note = format!("reference: {e}"),
            }
        }

        // Encode edge rows, with and without an importance matrix.
        if c.can_quantize() {
            let mut lengths = vec![4096usize];
            if c.block_elems() == 32 {
                lengths.push(288); // nine blocks: a row that ends inside a 256-element span
            }
            for n in lengths {
                let rows = edge_rows(n, &mut rng);
                let values: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
                let src = work.join(format!("{t}.rows.f32"));
                write_f32(&src, &values)?;
                let imatrix: Vec<f32> = (0..n).map(|_| rng.gauss().powi(2) + 0.01).collect();
                let im_path = work.join("imatrix.f32");
                write_f32(&im_path, &imatrix)?;
                let variants: &[bool] = if c.uses_imatrix() { &[false, true] } else { &[false] };
                for &weighted in variants {
                    let label = format!("{} rows of {n}{}", rows.len(), if weighted { " + imatrix" } else { "" });
                    let tally = table.entry(key("encode", &label)).or_default();
                    let im = weighted.then_some(im_path.as_path());
                    let theirs = match reference.encode(id, &src, n, im, &work.join("out.q")) {
                        Ok(v) => v,
                        Err(e) => {
                            tally.note = format!("reference: {e}");
                            continue;
                        }
                    };
                    let mut ours = vec![0u8; c.bytes_for(values.len())?];
                    match c.quantize(&values, n, weighted.then_some(imatrix.as_slice()), &mut ours) {
                        Ok(()) => compare_encoded(tally, &ours, &theirs, c.block_bytes(), c),
                        Err(e) => tally.note = format!("qload: {e}"),
                    }
                }
            }
        }

        // Dot product against f32 with ggml's budget (test-quantize-fns).
        if c.can_quantize() && c.vec_dot_type().is_some() {
            let n = 256 * 64;
            let a: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
            let b: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32 + 1.0).cos()).collect();
            let mut w = vec![0u8; c.bytes_for(n)?];
            c.quantize(&a, n, None, &mut w)?;
            let act = kernels::quantize_activations(c.vec_dot_type().unwrap_or(t), &b)?;
            let got = c.vec_dot(&w, &act)?;
            let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let err = (got - exact).abs() / n as f32;
            let tally = table.entry(key("dot", "vs f32")).or_default();
            tally.blocks = (n / c.block_elems()) as u64;
            tally.max_abs = err;
            if err > budget(t) {
                tally.mismatching = 1;
            }
            tally.note = format!("error/n {err:.2e}, budget {}", budget(t));
        }
    }

    for model in &o.models {
        crossval_model(&mut reference, &work, model, &mut table)?;
    }

    print_table(&table);
    let failed: u64 = table.values().map(|t| t.mismatching).sum();
    if failed > 0 {
        bail!("{failed} mismatching block(s)");
    }
    println!("crossval: no mismatch");
    Ok(())
}

/// Every tensor of a GGUF: decoded by both, and the decoded values re-encoded by both.
fn crossval_model(reference: &mut Reference, work: &Path, model: &Path, table: &mut Table) -> Result<()> {
    let source = qload_formats::open(model).with_context(|| format!("opening {}", model.display()))?;
    let name = model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    const CHUNK_ELEMS: usize = 1 << 22;
    for info in source.tensors() {
        let t = info.dtype;
        let Some(c) = codec(t) else {
            table
                .entry((t.to_string(), "decode".into(), name.clone()))
                .or_default()
                .note = "no qload codec".into();
            continue;
        };
        let Some(id) = t.ggml_id(GgmlFlavor::Upstream) else {
            continue;
        };
        if c.block_elems() == 1 {
            continue; // plain numbers (f32, f16, bf16, integers): exact conversions, unit-tested
        }
        let ne0 = *info.ggml_ne().first().unwrap_or(&1) as usize;
        let bytes = source.tensor_bytes(info)?;
        let row_bytes = c.bytes_for(ne0)?;
        let rows_per_chunk = (CHUNK_ELEMS / ne0.max(1)).max(1);
        let path = source.files()[info.file].path().to_path_buf();
        for (k, chunk) in bytes.chunks(row_bytes * rows_per_chunk).enumerate() {
            let offset = info.bytes.start + (k * row_bytes * rows_per_chunk) as u64;
            let mut ours = vec![0f32; chunk.len() / row_bytes * ne0];
            c.dequantize(chunk, &mut ours)?;
            let tally = table.entry((t.to_string(), "decode".into(), name.clone())).or_default();
            match reference.decode(id, &path, offset, chunk.len(), ne0, &work.join("out.f32")) {
                Ok(theirs) => compare_decoded(tally, &ours, &theirs, c.block_elems()),
                Err(e) => {
                    tally.note = format!("reference: {e}");
                    break;
                }
            }
            // Re-encode what was decoded (only types quantizable without an importance matrix).
            if c.can_quantize() && c.block_elems() > 1 {
                let src = work.join("model.rows.f32");
                write_f32(&src, &ours)?;
                let tally = table
                    .entry((t.to_string(), "re-encode".into(), name.clone()))
                    .or_default();
                match reference.encode(id, &src, ne0, None, &work.join("out.q")) {
                    Ok(theirs) => {
                        let mut mine = vec![0u8; chunk.len()];
                        c.quantize(&ours, ne0, None, &mut mine)?;
                        compare_encoded(tally, &mine, &theirs, c.block_bytes(), c);
                    }
                    Err(e) => tally.note = format!("reference: {e}"),
                }
            }
        }
    }
    Ok(())
}

fn print_table(table: &Table) {
    println!(
        "{:<8} {:<10} {:<28} {:>10} {:>12} {:>12}  note",
        "type", "direction", "source", "blocks", "mismatching", "max |diff|"
    );
    for ((t, dir, src), v) in table {
        println!(
            "{t:<8} {dir:<10} {src:<28} {:>10} {:>12} {:>12.3e}  {}",
            v.blocks, v.mismatching, v.max_abs, v.note
        );
    }
}
