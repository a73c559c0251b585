//! `qload validate`.

use std::process::ExitCode;

use qload_formats::{Details, WeightSource};
use serde_json::{Value as J, json};

use crate::ValidateArgs;
use crate::scan::non_finite;

/// The outcome for one file.
struct Outcome {
    path: String,
    problems: Vec<String>,
    notes: Vec<String>,
    tensors: usize,
    checked_values: u64,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let options = args.open.options();
    let mut outcomes = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let mut o = Outcome {
            path: path.display().to_string(),
            problems: Vec::new(),
            notes: Vec::new(),
            tensors: 0,
            checked_values: 0,
        };
        match qload_formats::open_with(path, &options) {
            Err(e) => o.problems.push(e.to_string()),
            Ok(source) => check(&source, !args.headers_only, &mut o),
        }
        outcomes.push(o);
    }
    let failed = outcomes.iter().any(|o| !o.problems.is_empty());
    if args.json {
        let items: Vec<J> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "file": o.path,
                    "ok": o.problems.is_empty(),
                    "problems": o.problems,
                    "notes": o.notes,
                    "tensors": o.tensors,
                    "values_checked": o.checked_values,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"schema": "qload.validate/1", "ok": !failed, "files": items}))?
        );
    } else {
        for o in &outcomes {
            if o.problems.is_empty() {
                println!(
                    "{}: OK ({} tensors, {} float values checked{})",
                    o.path,
                    o.tensors,
                    o.checked_values,
                    if o.notes.is_empty() {
                        String::new()
                    } else {
                        format!(", {} note(s)", o.notes.len())
                    }
                );
            } else {
                println!("{}: FAILED ({} problem(s))", o.path, o.problems.len());
            }
            for p in &o.problems {
                println!("  error: {p}");
            }
            for w in &o.notes {
                println!("  note: {w}");
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn check(source: &WeightSource, read_data: bool, o: &mut Outcome) {
    o.tensors = source.tensors().len();
    if let Details::Gguf(headers) = source.details() {
        for (i, h) in headers.iter().enumerate() {
            let file_tensors: Vec<_> = source.tensors().iter().filter(|t| t.file == i).cloned().collect();
            let file_len = source.files().get(i).map_or(0, |f| f.len());
            for p in h.ggml_compat_problems(&file_tensors, file_len) {
                o.problems
                    .push(format!("{}: {p} (llama.cpp would refuse this file)", h.path.display()));
            }
        }
    }
    for note in source.notes() {
        o.notes.push(note.clone());
    }
    if !read_data {
        return;
    }
    for t in source.tensors() {
        if !t.dtype.is_float() {
            continue;
        }
        let bytes = match source.materialize(t) {
            Ok(b) => b,
            Err(e) => {
                o.problems.push(e.to_string());
                continue;
            }
        };
        if let Some(nf) = non_finite(t.dtype, &bytes) {
            o.checked_values += t.numel();
            if nf.nan > 0 || nf.inf > 0 {
                o.problems.push(format!(
                    "tensor {:?} ({}): {} NaN and {} infinite value(s) of {}",
                    t.name,
                    t.dtype,
                    nf.nan,
                    nf.inf,
                    t.numel()
                ));
            }
        }
    }
}
