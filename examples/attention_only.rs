//! Load only the attention layers (a filter by glob, with an exclusion by regex), renamed
//! to Hugging Face names, and use them as `Weight`s whatever their storage.
//!
//! ```sh
//! cargo run -p qload-examples --example attention_only
//! ```

use anyhow::Result;
use qload_loader::Loader;
use qload_loader::filter::Filter;
use qload_loader::names::{Direction, Family};

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/gguf/tiny-llama-mixed.gguf".into());
    let filter = Filter::all().include("blk.*.attn_*")?.exclude("re:attn_norm")?;
    let (model, report) = Loader::new(&path)
        .filter(filter)
        .rename(Family::Llama, Direction::GgufToHf)
        .load()?;
    println!("{}", report.summary());
    for w in model.weights() {
        let x = vec![1.0f32; w.cols()];
        let mut y = vec![0f32; w.rows()];
        w.matvec(&x, &mut y)?;
        println!(
            "  {:45} {:?} {:6} y[0] = {:+.4}",
            w.name(),
            w.kind(),
            w.type_label(),
            y[0]
        );
    }
    Ok(())
}
