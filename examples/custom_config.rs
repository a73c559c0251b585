//! Quantize with a custom config: per-tensor rules (globs or regexes → types) over a base
//! policy, from a TOML file (here `examples/configs/mix.toml`).
//!
//! ```sh
//! cargo run -p qload-examples --example custom_config -- tests/fixtures/gguf/tiny-llama-f16.gguf examples/configs/mix.toml
//! ```

use anyhow::Result;
use qload_loader::Loader;
use qload_loader::policy::Policy;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-f16.gguf".into());
    let config = args.next().unwrap_or_else(|| "examples/configs/mix.toml".into());
    let policy = Policy::from_config_file(std::path::Path::new(&config)).map_err(anyhow::Error::msg)?;
    let (_model, report) = Loader::new(&path).quantize(policy).load()?;
    println!("{}", report.summary());
    for t in &report.per_tensor {
        println!("  {:32} {:6} {}", t.name, t.dtype_after.to_string(), t.reason);
    }
    Ok(())
}
