//! `qload estimate FILE --quantize a,b,c`: sizes without reading tensor data.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use qload_loader::policy::Policy;

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// A weight file, split-GGUF part, shard index or directory.
    file: PathBuf,
    /// Comma-separated policies: keep, ggml types (q4_k, q8_0, i2_s, …), mixes (q4_k_m, …), f16/bf16/f32.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "keep,q8_0,q6_k,q5_k_m,q4_k_m,q4_0,i2_s"
    )]
    quantize: Vec<String>,
    /// The transient-memory budget a load would use (for the peak bound).
    #[arg(long, default_value = "256MiB")]
    budget: String,
    /// Settings for a pre-quantized checkpoint that saves none (see `qload load --help`).
    #[arg(long)]
    prequant: Option<String>,
    /// Also show where each result would go: `auto`, `cpu` or `cuda:N` on this machine.
    #[arg(long)]
    device: Option<String>,
    /// Plan on a simulated inventory instead, e.g. "cuda:0=24GiB,cpu=64GiB" (with `auto`
    /// placement unless --device says otherwise).
    #[arg(long)]
    simulate: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EstimateArgs) -> Result<ExitCode> {
    let budget = qload_placement::parse_size(&args.budget).context("--budget")?;
    let specs = args
        .quantize
        .iter()
        .map(|s| Ok((s.clone(), Policy::parse(s).map_err(anyhow::Error::msg)?)))
        .collect::<Result<Vec<_>>>()?;
    let requested = match &args.prequant {
        Some(s) => qload_prequant::Requested::parse(s).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    let placement = match (&args.simulate, &args.device) {
        (None, None) => None,
        (Some(sim), device) => {
            let inventory = qload_placement::Inventory::simulate(sim)?;
            let strategy: Box<dyn qload_placement::Strategy> = match device.as_deref() {
                None | Some("auto") => Box::new(qload_placement::Auto::default()),
                Some("cpu") => Box::new(qload_placement::CpuOnly),
                Some(_) => Box::new(qload_placement::GpuFirst::default()),
            };
            Some((inventory, strategy))
        }
        (None, Some(device)) => {
            let (inventory, strategy) = crate::plan::for_device(device)?;
            Some((inventory, strategy))
        }
    };
    let est = qload_loader::estimate_placed(
        &args.file,
        &specs,
        budget,
        &requested,
        placement.as_ref().map(|(i, s)| (s.as_ref(), i)),
    )
    .with_context(|| format!("cannot estimate {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&est)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(first) = est.first() else {
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "{}: {} tensors, {} parameters, {} as stored (estimates from headers; no tensor data read)",
        args.file.display(),
        first.tensors,
        crate::human_count(first.parameters),
        crate::human_bytes(first.original_bytes)
    );
    println!(
        "{:<8}  {:>11}  {:>6}  {:>6}  {:>9}  {:>8}  {:>5}  {:>8}  {:>11}",
        "SPEC", "SIZE", "BPW", "RATIO", "CONVERTED", "PROMOTED", "KEPT", "FALLBACK", "CPU PEAK ≤"
    );
    for e in &est {
        println!(
            "{:<8}  {:>11}  {:>6.2}  {:>5.2}×  {:>9}  {:>8}  {:>5}  {:>8}  {:>11}",
            e.spec,
            crate::human_bytes(e.stored_bytes),
            e.bits_per_weight,
            e.compression_ratio,
            e.converted - e.fallbacks.len(),
            e.promoted,
            e.kept,
            e.fallbacks.len(),
            crate::human_bytes(e.cpu_peak_bound_bytes)
        );
    }
    for e in &est {
        if let Some(p) = &e.placement {
            match &p.error {
                None => {
                    let on: Vec<String> = p
                        .devices
                        .iter()
                        .map(|(d, b)| format!("{d} {}", crate::human_bytes(*b)))
                        .collect();
                    println!("{}: {} → {}", e.spec, p.strategy, on.join(", "));
                }
                Some(err) => println!("{}: {} → does not fit: {err}", e.spec, p.strategy),
            }
        }
    }
    for e in est.iter().filter(|e| !e.fallbacks.is_empty()) {
        println!("{}: {} tensor(s) fall back:", e.spec, e.fallbacks.len());
        for (name, t, reason) in e.fallbacks.iter().take(5) {
            println!("  {name} → {t} ({reason})");
        }
        if e.fallbacks.len() > 5 {
            println!("  … and {} more (--json lists all)", e.fallbacks.len() - 5);
        }
    }
    Ok(ExitCode::SUCCESS)
}
