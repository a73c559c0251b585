//! `qload cache list|clear|verify DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use qload_loader::cache;

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// List the entries: size, tensors, source and policy (and unusable ones).
    List {
        /// The cache directory.
        dir: PathBuf,
    },
    /// Remove every entry and every temporary file left by an interrupted writer.
    Clear {
        /// The cache directory.
        dir: PathBuf,
    },
    /// Re-hash every entry's tensor data against the hash it stores; exit 1 on any mismatch.
    Verify {
        /// The cache directory.
        dir: PathBuf,
        /// Remove the entries that fail.
        #[arg(long)]
        remove: bool,
    },
}

pub fn run(args: &CacheArgs) -> Result<ExitCode> {
    match &args.command {
        CacheCommand::List { dir } => {
            let (entries, leftovers) = cache::list(dir).with_context(|| format!("reading {}", dir.display()))?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            println!(
                "{}: {} entries, {}",
                dir.display(),
                entries.len(),
                crate::human_bytes(total)
            );
            for e in &entries {
                let name = e.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
                match &e.problem {
                    None => println!(
                        "  {name}  {:>10}  {:>4} tensors  {}  from {}",
                        crate::human_bytes(e.bytes),
                        e.tensors,
                        e.policy,
                        e.source
                    ),
                    Some(p) => println!("  {name}  {:>10}  UNUSABLE: {p}", crate::human_bytes(e.bytes)),
                }
            }
            if !leftovers.is_empty() {
                println!(
                    "  {} temporary file(s) from interrupted writes (qload cache clear removes them)",
                    leftovers.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Clear { dir } => {
            let (entries, leftovers) = cache::list(dir).with_context(|| format!("reading {}", dir.display()))?;
            let mut n = 0;
            for p in entries.iter().map(|e| &e.path).chain(&leftovers) {
                std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
                n += 1;
            }
            println!("removed {n} file(s) from {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify { dir, remove } => {
            let (entries, _) = cache::list(dir).with_context(|| format!("reading {}", dir.display()))?;
            let mut bad = 0;
            for e in &entries {
                match cache::verify_entry(&e.path) {
                    Ok(()) => println!("{}: OK", e.path.display()),
                    Err(why) => {
                        bad += 1;
                        println!("{}: FAILED ({why})", e.path.display());
                        if *remove {
                            std::fs::remove_file(&e.path).with_context(|| format!("removing {}", e.path.display()))?;
                        }
                    }
                }
            }
            println!("{} entries, {bad} failed", entries.len());
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
