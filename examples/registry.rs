//! Keep a registry of loaded models with their stats: several loads of one checkpoint
//! under different policies, compared by size and error, then one kept for use.
//!
//! ```sh
//! cargo run -p qload-examples --example registry
//! ```

use std::collections::BTreeMap;

use anyhow::Result;
use qload_loader::policy::Policy;
use qload_loader::{LoadReport, LoadedModel, Loader};

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-f16.gguf".into());
    let mut registry: BTreeMap<String, (LoadedModel, LoadReport)> = BTreeMap::new();
    for spec in ["keep", "q8_0", "q4_k_m", "aggressive", "i2_s"] {
        let policy = Policy::parse(spec).map_err(anyhow::Error::msg)?;
        let loaded = Loader::new(&path).quantize(policy).measure_error(true).load()?;
        registry.insert(spec.to_string(), loaded);
    }
    println!("{:12} {:>12} {:>7} {:>10}", "policy", "bytes", "ratio", "rel RMSE");
    for (spec, (_, r)) in &registry {
        println!(
            "{spec:12} {:>12} {:>6.2}× {:>10}",
            r.stored_bytes,
            r.compression_ratio,
            r.mean_rel_rmse.map_or("-".into(), |e| format!("{e:.4}"))
        );
    }
    // Keep the smallest model whose mean error stays under 6%.
    let best = registry
        .iter()
        .filter(|(_, (_, r))| r.mean_rel_rmse.unwrap_or(0.0) < 0.06)
        .min_by_key(|(_, (_, r))| r.stored_bytes)
        .map(|(k, _)| k.clone());
    println!("chosen: {best:?}");
    Ok(())
}
