//! Load a checkpoint as it is stored: zero-copy views of the mapped file, no conversion.
//!
//! ```sh
//! cargo run -p qload-examples --example load_as_is -- tests/fixtures/gguf/tiny-llama-mixed.gguf
//! ```

use anyhow::Result;

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-mixed.gguf".into());
    let (model, report) = qload_loader::load(&path)?;
    println!("{}", report.summary());
    for t in model.tensors().iter().take(5) {
        println!(
            "  {:32} {:6} {:?} mapped={}",
            t.name,
            t.dtype.to_string(),
            t.shape,
            t.is_mapped()
        );
    }
    Ok(())
}
