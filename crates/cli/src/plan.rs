//! `qload plan`: where each tensor would go and why, from the file's metadata only.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use qload_placement::{
    Auto, CpuOnly, CudaPolicy, Device, EdgePlacement, EdgePolicy, GpuBudget, GpuFirst, Inventory, LayerMap, MultiGpu,
    NGpuLayers, Plan, Strategy, TensorSpec, parse_size,
};

use crate::{EdgeArg, PlanArgs, StrategyArg};

/// The device selection of `--device`.
enum Target {
    Auto,
    Cpu,
    Gpu(u32),
}

impl Target {
    fn parse(device: &str) -> Result<Target> {
        Ok(match device.trim().to_ascii_lowercase().as_str() {
            "auto" => Target::Auto,
            other => match other.parse::<Device>()? {
                Device::Cpu => Target::Cpu,
                Device::Cuda(n) => Target::Gpu(n),
            },
        })
    }

    /// The machine's inventory, GPUs probed as the target asks.
    fn detect(&self) -> Result<Inventory> {
        Ok(Inventory::detect(match self {
            Target::Auto => CudaPolicy::IfAvailable,
            Target::Cpu => CudaPolicy::Ignore,
            Target::Gpu(_) => CudaPolicy::Require,
        })?)
    }

    /// `inventory` without the GPUs the target excludes (an asked GPU must be there).
    fn narrow(&self, inventory: Inventory) -> Result<Inventory> {
        Ok(match *self {
            Target::Auto => inventory,
            Target::Cpu => inventory.retain_gpus(|_| false),
            Target::Gpu(n) => {
                let device = Device::Cuda(n);
                if inventory.get(device).is_none() {
                    bail!(qload_placement::PlacementError::DeviceNotInInventory { device });
                }
                inventory.retain_gpus(|d| d.device == device)
            }
        })
    }
}

/// The inventory and default strategy for `--device` (`auto`, `cpu`, `cuda:N`) of
/// `qload load`: the machine's memory, GPUs probed as the device asks.
pub fn for_device(device: &str) -> Result<(Inventory, Box<dyn Strategy>)> {
    let target = Target::parse(device)?;
    let inventory = target.narrow(target.detect()?)?;
    let (budget, edges) = (GpuBudget::default(), EdgePolicy::default());
    let strategy: Box<dyn Strategy> = match target {
        Target::Auto => Box::new(Auto { budget, edges }),
        Target::Cpu => Box::new(CpuOnly),
        Target::Gpu(_) => Box::new(GpuFirst {
            budget,
            edges,
            split_layers: false,
        }),
    };
    Ok((inventory, strategy))
}

pub fn run(args: &PlanArgs) -> Result<ExitCode> {
    let target = Target::parse(&args.device)?;
    let budget = GpuBudget {
        vram_fraction: args.vram_fraction,
        reserve_bytes: parse_size(&args.reserve).context("--reserve")?,
        vram_limit: args.vram.as_deref().map(parse_size).transpose().context("--vram")?,
        max_gpus: args.gpus,
    };
    let edge = |e: EdgeArg| match e {
        EdgeArg::Cpu => EdgePlacement::Cpu,
        EdgeArg::Layers => EdgePlacement::WithLayers,
    };
    let edges = EdgePolicy {
        embedding: edge(args.embedding),
        output: edge(args.output),
    };

    // The file first: a bad path is reported before any device is probed.
    let source = qload_formats::open_with(&args.file, &args.open.options())
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let tensors: Vec<TensorSpec> = source
        .tensors()
        .iter()
        .map(|t| TensorSpec::classify(t.name.as_str(), t.byte_len()))
        .collect();

    let inventory = target.narrow(match &args.simulate {
        Some(spec) => Inventory::simulate(spec)?,
        None => target.detect()?,
    })?;

    let strategy: Box<dyn Strategy> = if let Some(n) = args.n_gpu_layers {
        Box::new(NGpuLayers {
            n_gpu_layers: n,
            budget,
            edges,
        })
    } else if let Some(spec) = &args.layer_map {
        Box::new(LayerMap {
            map: LayerMap::parse(spec)?,
            budget,
            edges,
        })
    } else {
        let default = match target {
            Target::Auto => StrategyArg::Auto,
            Target::Cpu => StrategyArg::Cpu,
            Target::Gpu(_) => StrategyArg::GpuFirst,
        };
        match args.strategy.unwrap_or(default) {
            StrategyArg::Auto => Box::new(Auto { budget, edges }),
            StrategyArg::Cpu => Box::new(CpuOnly),
            StrategyArg::GpuFirst => Box::new(GpuFirst {
                budget,
                edges,
                split_layers: args.split_layers,
            }),
            StrategyArg::MultiGpu => Box::new(MultiGpu { budget, edges }),
        }
    };
    if args.split_layers && !matches!(args.strategy, Some(StrategyArg::GpuFirst)) && !matches!(target, Target::Gpu(_)) {
        bail!("--split-layers applies to the gpu-first strategy: add --strategy gpu-first");
    }
    let plan = strategy.plan(&tensors, &inventory)?;
    debug_assert!(plan.verify(&tensors).is_ok());

    if args.json {
        let mut v = serde_json::to_value(&plan)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("file".into(), serde_json::json!(args.file.display().to_string()));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report_text(args, &plan));
    }
    Ok(ExitCode::SUCCESS)
}

fn report_text(args: &PlanArgs, plan: &Plan) -> String {
    format!("file:     {}\n{}", args.file.display(), plan.to_text(args.tensors))
}
