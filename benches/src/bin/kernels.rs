//! Side-by-side codec benchmark: qload vs candle-core in one process, one thread,
//! same data, interleaved runs; plus the machine's single-thread read and write
//! bandwidth. Prints JSON lines (one per measurement) for
//! benches/scripts/bench_kernels.py, which adds ggml (libgguf) and writes the table.
//!
//! usage: kernels [--rows R] [--cols C] [--mv-rows R] [--runs N] [--types q4_0,…]
//! (defaults 8192, 4096, 65536, 7, and q4_0,q5_0,q8_0,q4_k,q5_k,q6_k; q2_k and q3_k
//! on request)

use std::hint::black_box;
use std::time::Duration;

use candle_core::quantized::k_quants::{self as ck, GgmlType};
use qload_benches::{median, time_runs};
use qload_dtype::DType;
use qload_quant_core::{codec, kernels};

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * 0.035
        })
        .collect()
}

/// Reinterprets qload's block bytes as candle blocks (both are ggml's layout).
fn as_candle<B: GgmlType>(bytes: &[u8]) -> Vec<B> {
    let size = std::mem::size_of::<B>();
    assert_eq!(bytes.len() % size, 0);
    let n = bytes.len() / size;
    let mut out: Vec<B> = (0..n).map(|_| B::zeros()).collect();
    // SAFETY: candle's blocks are `#[repr(C)]` plain data (f16 and byte arrays) with
    // ggml's exact layout and size; `out` holds `n` of them, i.e. `bytes.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len()) };
    out
}

fn emit(peer: &str, dtype: DType, op: &str, elems: usize, bytes: usize, t: Duration) {
    println!(
        "{}",
        serde_json::json!({"impl": peer, "type": dtype.to_string(), "op": op, "elements": elems,
            "bytes": bytes, "median_s": secs(t), "gelem_per_s": elems as f64 / secs(t) / 1e9,
            "gb_per_s": bytes as f64 / secs(t) / 1e9})
    );
}

fn bench_type<B: GgmlType>(dtype: DType, rows: usize, cols: usize, mv_rows: usize, runs: usize) {
    let c = codec(dtype).expect("qload codec");
    let n = rows * cols;
    let x = weights(n, 7);
    let mut q = vec![0u8; c.bytes_for(n).unwrap()];
    c.quantize(&x, cols, None, &mut q).unwrap();
    let cq: Vec<B> = as_candle(&q);
    let mut out = vec![0f32; n];

    // Dequantize (output buffer touched before timing).
    let t_q = median(&time_runs(runs, || c.dequantize(black_box(&q), &mut out).unwrap()));
    let t_c = median(&time_runs(runs, || B::to_float(black_box(&cq), &mut out)));
    emit("qload", dtype, "dequant", n, q.len(), t_q);
    emit("candle", dtype, "dequant", n, q.len(), t_c);

    // Quantize.
    let mut q2 = q.clone();
    let mut cq2: Vec<B> = cq.clone();
    let qruns = if dtype.block_size() == 256 { runs.min(3) } else { runs };
    let t_q = median(&time_runs(qruns, || {
        c.quantize(black_box(&x), cols, None, &mut q2).unwrap()
    }));
    let t_c = median(&time_runs(qruns, || B::from_float(black_box(&x), &mut cq2)));
    emit("qload", dtype, "quant", n, q.len(), t_q);
    emit("candle", dtype, "quant", n, q.len(), t_c);

    // Matvec on a large matrix of random blocks with sane scales (values do not
    // change the work); candle: its vec_dot per row, the loop its QMatMul runs.
    let row_bytes = c.bytes_for(cols).unwrap();
    let mut w = vec![0u8; mv_rows * row_bytes];
    let mut s = 0x1234_5678_9abc_def1u64;
    for b in w.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let scale_at: &[usize] = match dtype {
        DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q6K => &[208],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        _ => &[0],
    };
    for blk in w.chunks_exact_mut(c.block_bytes()) {
        for &o in scale_at {
            blk[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
    }
    let cw: Vec<B> = as_candle(&w);
    let act = weights(cols, 11);
    let mut y = vec![0f32; mv_rows];
    let mv_runs = runs.min(5);
    let t_q = median(&time_runs(mv_runs, || {
        kernels::matvec(dtype, black_box(&w), mv_rows, cols, &act, &mut y).unwrap()
    }));
    let blocks_per_row = cols / B::BLCK_SIZE;
    let t_c = median(&time_runs(mv_runs, || {
        let mut a: Vec<B::VecDotType> = (0..cols / B::VecDotType::BLCK_SIZE)
            .map(|_| B::VecDotType::zeros())
            .collect();
        B::VecDotType::from_float(&act, &mut a);
        for (r, y) in y.iter_mut().enumerate() {
            *y = B::vec_dot(cols, &cw[r * blocks_per_row..(r + 1) * blocks_per_row], &a);
        }
        black_box(&y);
    }));
    emit("qload", dtype, "matvec", mv_rows * cols, w.len(), t_q);
    emit("candle", dtype, "matvec", mv_rows * cols, w.len(), t_c);
    let pool2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let t_q2 = median(&time_runs(mv_runs, || {
        pool2.install(|| kernels::matvec(dtype, black_box(&w), mv_rows, cols, &act, &mut y).unwrap())
    }));
    emit("qload-2t", dtype, "matvec", mv_rows * cols, w.len(), t_q2);
    if dtype == DType::Q4_0 {
        // The same matrix with eight rows interleaved (`repack::Q4_0x8`), as an engine
        // would keep it after load.
        let p = qload_quant_core::repack::Q4_0x8::new(&w, mv_rows, cols).unwrap();
        let t_r = median(&time_runs(mv_runs, || p.matvec(black_box(&act), &mut y).unwrap()));
        emit("qload-repacked", dtype, "matvec", mv_rows * cols, w.len(), t_r);
        let t_r2 = median(&time_runs(mv_runs, || {
            pool2.install(|| p.matvec(black_box(&act), &mut y).unwrap())
        }));
        emit("qload-repacked-2t", dtype, "matvec", mv_rows * cols, w.len(), t_r2);
    }
}

fn bandwidth(runs: usize) {
    // Read: sum a 1 GiB buffer of u64 (far beyond the caches).
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let t = median(&time_runs(runs, || {
        let s: u64 = black_box(&buf).iter().fold(0u64, |a, b| a.wrapping_add(*b));
        black_box(s);
    }));
    println!(
        "{}",
        serde_json::json!({"impl": "machine", "op": "read", "bytes": words * 8, "median_s": secs(t), "gb_per_s": (words * 8) as f64 / secs(t) / 1e9})
    );
    drop(buf);
    // Write: overwrite a 256 MiB buffer already touched (no page faults).
    let mut out = vec![1u64; (256 << 20) / 8];
    let t = median(&time_runs(runs, || {
        out.fill(black_box(3));
        black_box(&out);
    }));
    println!(
        "{}",
        serde_json::json!({"impl": "machine", "op": "write", "bytes": out.len() * 8, "median_s": secs(t), "gb_per_s": (out.len() * 8) as f64 / secs(t) / 1e9})
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rows, cols, mv_rows, runs) = (
        get("--rows", 8192),
        get("--cols", 4096),
        get("--mv-rows", 65536),
        get("--runs", 7),
    );
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    println!(
        "{}",
        serde_json::json!({"impl": "qload", "op": "kernels", "family": qload_quant_core::arch::kernel_family()})
    );
    bandwidth(runs);
    let types = args
        .iter()
        .position(|a| a == "--types")
        .and_then(|i| args.get(i + 1))
        .map_or("q4_0,q5_0,q8_0,q4_k,q5_k,q6_k", String::as_str);
    for t in types.split(',') {
        match t {
            "q4_0" => bench_type::<ck::BlockQ4_0>(DType::Q4_0, rows, cols, mv_rows, runs),
            "q5_0" => bench_type::<ck::BlockQ5_0>(DType::Q5_0, rows, cols, mv_rows, runs),
            "q8_0" => bench_type::<ck::BlockQ8_0>(DType::Q8_0, rows, cols, mv_rows, runs),
            "q2_k" => bench_type::<ck::BlockQ2K>(DType::Q2K, rows, cols, mv_rows, runs),
            "q3_k" => bench_type::<ck::BlockQ3K>(DType::Q3K, rows, cols, mv_rows, runs),
            "q4_k" => bench_type::<ck::BlockQ4K>(DType::Q4K, rows, cols, mv_rows, runs),
            "q5_k" => bench_type::<ck::BlockQ5K>(DType::Q5K, rows, cols, mv_rows, runs),
            "q6_k" => bench_type::<ck::BlockQ6K>(DType::Q6K, rows, cols, mv_rows, runs),
            other => {
                eprintln!("kernels: unknown type {other} (q4_0 q5_0 q8_0 q2_k q3_k q4_k q5_k q6_k)");
                std::process::exit(2);
            }
        }
    }
}
