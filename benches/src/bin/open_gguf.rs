//! Opening and listing a GGUF: qload-formats against candle's `gguf_file::Content::read`,
//! interleaved in one process so that both see the same machine state.
//!
//! Usage: `open_gguf FILE [RUNS]`; prints a JSON object with median seconds per peer.

use std::fs::File;
use std::hint::black_box;

use anyhow::Context;
use qload_benches::{median, time_runs};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: open_gguf FILE [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);

    let qload_list = || {
        let source = qload_formats::open(&path).expect("qload open");
        let n: u64 = source
            .tensors()
            .iter()
            .map(|t| t.byte_len() + t.shape.len() as u64)
            .sum();
        black_box(n);
    };
    let candle_list = || {
        let mut f = File::open(&path).expect("open");
        let content = candle_core::quantized::gguf_file::Content::read(&mut f).expect("candle read");
        let n: usize = content
            .tensor_infos
            .values()
            .map(|t| t.shape.dims().len() + t.offset as usize)
            .sum();
        black_box(n);
    };
    // Interleave: a, b, a, b ... so drift affects both alike.
    let mut q = Vec::with_capacity(runs);
    let mut c = Vec::with_capacity(runs);
    for _ in 0..runs {
        q.extend(time_runs(1, qload_list));
        c.extend(time_runs(1, candle_list));
    }
    q.sort();
    c.sort();
    let (mq, mc) = (median(&q).as_secs_f64(), median(&c).as_secs_f64());
    println!(
        "{}",
        serde_json::json!({
            "file": path,
            "runs": runs,
            "qload_open_list_s": mq,
            "candle_content_read_s": mc,
            "candle_over_qload": mc / mq,
        })
    );
    Ok(())
}
