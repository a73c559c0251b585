//! Load and quantize on the way with a preset, measuring each tensor's error.
//!
//! ```sh
//! cargo run -p qload-examples --example quantize_preset -- tests/fixtures/gguf/tiny-llama-f16.gguf aggressive
//! ```

use anyhow::Result;
use qload_loader::Loader;
use qload_loader::policy::Policy;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-f16.gguf".into());
    let preset = args.next().unwrap_or_else(|| "default".into());
    let policy = Policy::parse(&preset).map_err(anyhow::Error::msg)?;
    let (_model, report) = Loader::new(&path)
        .quantize(policy)
        .budget(64 << 20)
        .measure_error(true)
        .load()?;
    println!("{}", report.summary());
    for t in &report.per_tensor {
        if let Some(e) = &t.error {
            println!(
                "  {:32} {} → {}  rel RMSE {:.4}  ({})",
                t.name, t.dtype_before, t.dtype_after, e.rel_rmse, t.reason
            );
        }
    }
    Ok(())
}
