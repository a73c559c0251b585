//! `qload load`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use qload_loader::Loader;
use qload_loader::filter::Filter;
use qload_loader::names::{Direction, Family};

use crate::LoadArgs;

pub fn run(args: &LoadArgs) -> Result<ExitCode> {
    let mut loader = args.select.apply(
        args.quant
            .apply(Loader::new(&args.file).open_options(args.open.options()))?,
    )?;
    if let Some(device) = &args.device {
        let (inventory, strategy) = crate::plan::for_device(device)?;
        loader = loader.placement(strategy, inventory);
    }
    if args.device_fallback != "error" {
        let to = qload_formats::DType::from_name(&args.device_fallback)
            .with_context(|| format!("--device-fallback {:?}: not a type name", args.device_fallback))?;
        loader = loader.device_fallback(Some(to));
    }
    let sel = &args.select;
    let bar = crate::progress::Bar::new(sel.quiet);
    let loaded = loader.repack(args.repack).progress(|e| bar.on_event(e)).load();
    bar.finish();
    let (_model, report) = loaded.with_context(|| format!("cannot load {}", args.file.display()))?;
    sel.report(&report, None)?;
    Ok(ExitCode::SUCCESS)
}

impl crate::SelectArgs {
    /// Applies --filter, --exclude, --rename/--arch and --expect to a loader.
    pub fn apply<'a>(&self, loader: Loader<'a>) -> Result<Loader<'a>> {
        let mut filter = Filter::all();
        for p in &self.filter {
            filter = filter.include(p)?;
        }
        for p in &self.exclude {
            filter = filter.exclude(p)?;
        }
        let mut loader = loader.filter(filter);
        if let Some(direction) = self.rename {
            let direction = match direction {
                crate::RenameArg::GgufToHf => Direction::GgufToHf,
                crate::RenameArg::HfToGguf => Direction::HfToGguf,
            };
            loader = match self.arch.as_deref() {
                Some(arch) => loader.rename(Family::from_architecture(arch)?, direction),
                None => loader.rename_detected(direction),
            };
        }
        if self.expect_arch {
            loader = loader.expect_architecture();
        }
        if let Some(list) = &self.expect {
            let text = std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
            loader = loader.expect(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#')),
            );
        }
        Ok(loader)
    }

    /// Writes --stats and prints the summary, `wrote` line and notes unless --quiet.
    pub fn report(&self, report: &qload_loader::LoadReport, wrote: Option<String>) -> Result<()> {
        if let Some(path) = &self.stats {
            std::fs::write(path, serde_json::to_string_pretty(report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.quiet {
            return Ok(());
        }
        println!("{}", report.summary());
        if let Some(w) = wrote {
            println!("{w}");
        }
        for note in &report.notes {
            println!("note: {note}");
        }
        if !report.unmatched_names.is_empty() {
            println!(
                "note: {} name(s) had no renaming rule and kept their stored name, e.g. {:?}",
                report.unmatched_names.len(),
                &report.unmatched_names[..report.unmatched_names.len().min(3)]
            );
        }
        let permuted = report.per_tensor.iter().filter(|t| t.rope_permuted).count();
        if permuted > 0 {
            println!(
                "note: {permuted} q/k weight(s) renamed across conventions keep llama.cpp's rotary row permutation (their rows are not re-permuted)"
            );
        }
        Ok(())
    }
}

impl crate::QuantArgs {
    /// The policy: `--config FILE` when given, else `--quantize`.
    pub fn policy(&self) -> Result<qload_loader::policy::Policy> {
        match &self.config {
            Some(path) => qload_loader::policy::Policy::from_config_file(path).map_err(anyhow::Error::msg),
            None => qload_loader::policy::Policy::parse(&self.quantize).map_err(anyhow::Error::msg),
        }
    }

    /// Applies --quantize, --budget and --measure to a loader.
    pub fn apply<'a>(&self, loader: Loader<'a>) -> Result<Loader<'a>> {
        let policy = self.policy()?;
        let budget = qload_placement::parse_size(&self.budget).context("--budget")?;
        let requested = match &self.prequant {
            Some(spec) => qload_prequant::Requested::parse(spec)
                .map_err(anyhow::Error::msg)
                .context("--prequant")?,
            None => qload_prequant::Requested::default(),
        };
        let loader = match &self.cache_dir {
            Some(dir) => loader.cache_dir(dir),
            None => loader,
        };
        let loader = match &self.imatrix {
            Some(path) => loader.imatrix(qload_loader::imatrix::Imatrix::load(path)?),
            None => loader,
        };
        Ok(loader
            .prequant(requested)
            .quantize(policy)
            .budget(budget)
            .measure_error(self.measure)
            .threads(self.threads))
    }
}
