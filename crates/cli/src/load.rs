//! `qload load`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use qload_loader::Loader;
use qload_loader::filter::Filter;
use qload_loader::names::{Direction, Family};

use crate::LoadArgs;

pub fn run(args: &LoadArgs) -> Result<ExitCode> {
    let mut filter = Filter::all();
    for p in &args.filter {
        filter = filter.include(p)?;
    }
    for p in &args.exclude {
        filter = filter.exclude(p)?;
    }
    let mut loader = args
        .quant
        .apply(Loader::new(&args.file).open_options(args.open.options()).filter(filter))?;
    if let Some(direction) = args.rename {
        let arch = args
            .arch
            .as_deref()
            .context("--rename needs --arch (llama, gemma, gemma2, qwen2, qwen3, phi3)")?;
        let family = Family::from_architecture(arch)?;
        loader = loader.rename(
            family,
            match direction {
                crate::RenameArg::GgufToHf => Direction::GgufToHf,
                crate::RenameArg::HfToGguf => Direction::HfToGguf,
            },
        );
    }
    if let Some(list) = &args.expect {
        let text = std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
        loader = loader.expect(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        );
    }
    let bar = crate::progress::Bar::new(args.quiet);
    let loaded = loader.progress(|e| bar.on_event(e)).load();
    bar.finish();
    let (_model, report) = loaded.with_context(|| format!("cannot load {}", args.file.display()))?;
    if let Some(path) = &args.stats {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        println!("{}", report.summary());
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
    }
    Ok(ExitCode::SUCCESS)
}

impl crate::QuantArgs {
    /// Applies --quantize, --budget and --measure to a loader.
    pub fn apply<'a>(&self, loader: Loader<'a>) -> Result<Loader<'a>> {
        let policy = qload_loader::policy::Policy::parse(&self.quantize).map_err(anyhow::Error::msg)?;
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
        Ok(loader
            .prequant(requested)
            .quantize(policy)
            .budget(budget)
            .measure_error(self.measure)
            .threads(self.threads))
    }
}
