//! The `qload` binary on committed fixtures: snapshots of its output, exit codes and
//! messages for broken inputs.

use std::path::Path;

mod common;
use common::{qload, root, tmp};

#[test]
fn inspect_safetensors_text() {
    let (code, out, err) = qload(&["inspect", "tests/fixtures/safetensors/tiny_bf16.safetensors"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_shards_json() {
    let (code, out, err) = qload(&[
        "inspect",
        "--json",
        "--metadata",
        "tests/fixtures/safetensors/sharded_f32",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "qload.inspect/1");
    assert_eq!(v["tensor_count"], 20);
    insta::assert_json_snapshot!(v);
}

#[test]
fn validate_reports_clean_and_broken_files() {
    let (code, out, _) = qload(&["validate", "tests/fixtures/safetensors/tiny_f16.safetensors"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);

    // A NaN and an Inf written into a copy of a real f32 file.
    let src = root().join("tests/fixtures/safetensors/tiny_f32.safetensors");
    let mut bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = 8 + n;
    bytes[data..data + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    bytes[data + 4..data + 8].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let bad = tmp("nan.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, out, _) = qload(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 NaN and 1 infinite value(s)"), "{out}");

    // Truncated: rejected with the reason.
    let cut = tmp("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (code, out, _) = qload(&["validate", "--json", cut.to_str().unwrap()]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["files"][0]["problems"][0].as_str().unwrap().contains("safetensors"),
        "{out}"
    );
}

#[test]
fn unsupported_files_say_what_they_look_like() {
    let lfs = tmp("model.safetensors");
    std::fs::write(
        &lfs,
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 4993842048\n",
    )
    .unwrap();
    let (code, _, err) = qload(&["inspect", lfs.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("Git LFS pointer") && err.contains("git lfs pull"), "{err}");
    let empty = tmp("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = qload(&["inspect", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = qload(&["inspect", "does/not/exist.gguf"]);
    assert_eq!(code, 2);
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn inspect_the_readme_sample() {
    let (code, out, err) = qload(&["inspect", "tests/fixtures/gguf/tiny-llama-mixed.gguf"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
    let (code, out, _) = qload(&[
        "validate",
        "tests/fixtures/gguf/split-00001-of-00003.gguf",
        "tests/fixtures/gguf/bitnet-i2s.gguf",
    ]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("validate_split_and_bitnet", out);
    let (code, out, _) = qload(&[
        "validate",
        "tests/fixtures/gguf/bad/overlap.gguf",
        "tests/fixtures/gguf/bad/misaligned.gguf",
    ]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("validate_bad_gguf", out);
}

#[test]
fn load_prints_a_summary_and_writes_stats() {
    let stats = tmp("stats.json");
    let (code, out, err) = qload(&[
        "load",
        "tests/fixtures/torch/tiny_f16_zip.pth",
        "--filter",
        "model.*",
        "--rename",
        "hf-to-gguf",
        "--arch",
        "llama",
        "--stats",
        stats.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("loaded 20/20 tensors: 19 kept as stored (mapped), 1 gathered"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(v["tensors_loaded"], 20);
    assert!(
        v["per_tensor"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "blk.1.attn_output.weight")
    );
    let expect = tmp("expected.txt");
    std::fs::write(&expect, "token_embd.weight\nmissing.weight\n").unwrap();
    let (code, _, err) = qload(&[
        "load",
        "tests/fixtures/gguf/tiny-llama-mixed.gguf",
        "--expect",
        expect.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("1 of 2 expected tensors are missing") && err.contains("missing.weight"),
        "{err}"
    );
}

/// The plan's JSON checked against the fixture's tensors: every tensor exactly once,
/// no device over its budget.
fn check_plan_json(v: &serde_json::Value) {
    assert_eq!(v["schema"], "qload.plan/1");
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 21);
    let mut names: Vec<&str> = tensors.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 21, "a tensor placed twice");
    for d in v["devices"].as_array().unwrap() {
        let used: u64 = tensors
            .iter()
            .filter(|t| t["device"] == d["device"])
            .map(|t| t["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(d["bytes_used"].as_u64().unwrap(), used);
        assert!(used <= d["capacity_bytes"].as_u64().unwrap(), "{d}");
        assert!(d["capacity_bytes"].as_u64().unwrap() <= d["free_bytes"].as_u64().unwrap());
    }
}

#[test]
fn plan_on_a_small_simulated_gpu_spills_to_the_cpu() {
    let fixture = "tests/fixtures/gguf/tiny-llama-mixed.gguf";
    // 80% of 600 KiB = 480 KiB: layer 0 (414.5 KiB) fits, layer 1 (485.8 KiB) does not.
    let sim = "cuda:0=600KiB,cpu=1GiB";
    let (code, out, err) = qload(&["plan", fixture, "--simulate", sim]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
    let (code, out, err) = qload(&["plan", fixture, "--simulate", sim, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    check_plan_json(&v);
    assert_eq!(v["devices"][0]["layers"], serde_json::json!([0]));
    assert_eq!(v["devices"][1]["layers"], serde_json::json!([1]));
    assert_eq!(v["strategy"], "auto -> gpu-first");
    insta::assert_json_snapshot!("plan_small_gpu_json", v);
}

#[test]
fn plan_across_two_simulated_gpus_and_with_n_gpu_layers() {
    let fixture = "tests/fixtures/gguf/tiny-llama-mixed.gguf";
    let sim = "cuda:0=600KiB,cuda:1=800KiB,cpu=1GiB";
    let (code, out, err) = qload(&["plan", fixture, "--simulate", sim, "--gpus", "2", "--tensors"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
    // --gpus 1 leaves cuda:1 unused and the overflow on the CPU.
    let (code, out, _) = qload(&["plan", fixture, "--simulate", sim, "--gpus", "1", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    check_plan_json(&v);
    assert_eq!(v["devices"][1]["bytes_used"], 0);
    assert_eq!(v["devices"][2]["layers"], serde_json::json!([1]));
    // -ngl 2 on a 2-layer model: the output layer and layer 1 (llama.cpp's slots).
    let one_mib = "cuda:0=1MiB,cpu=1GiB";
    let (code, out, _) = qload(&["plan", fixture, "--simulate", one_mib, "--n-gpu-layers", "2", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    check_plan_json(&v);
    assert_eq!(v["devices"][0]["layers"], serde_json::json!([1]));
    assert!(
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "output.weight" && t["device"] == "cuda:0")
    );
    // Split over the two small GPUs, layer 1 lands on cuda:0, which cannot hold it:
    // an explicit layer count is an error, not a silent spill.
    let (code, _, err) = qload(&["plan", fixture, "--simulate", sim, "--n-gpu-layers", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("layer 1 needs 497408 bytes but cuda:0"), "{err}");
    // A layer map and --vram.
    let (code, out, _) = qload(&[
        "plan",
        fixture,
        "--simulate",
        sim,
        "--layer-map",
        "1:1",
        "--vram",
        "500KiB",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    check_plan_json(&v);
    assert_eq!(v["devices"][1]["layers"], serde_json::json!([0]));
    assert_eq!(v["devices"][1]["capacity_bytes"], 500 * 1024);
}

#[test]
fn plan_errors_are_clear() {
    let fixture = "tests/fixtures/gguf/tiny-llama-mixed.gguf";
    let (code, _, err) = qload(&["plan", fixture, "--simulate", "gpu0=1GiB"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad simulated inventory") && err.contains("cuda:N"),
        "{err}"
    );
    let (code, _, err) = qload(&["plan", fixture, "--simulate", "cuda:0=100KiB"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs") && err.contains("cuda:0"), "{err}");
    let (code, _, err) = qload(&[
        "plan",
        fixture,
        "--simulate",
        "cuda:0=1MiB,cpu=1GiB",
        "--device",
        "cuda:1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("cuda:1 is not in the memory inventory"), "{err}");
    let (code, _, err) = qload(&["plan", fixture, "--vram", "lots"]);
    assert_eq!(code, 2);
    assert!(err.contains("--vram") && err.contains("bad size"), "{err}");
    // Asking this machine for CUDA: a typed error without gpu support or a driver.
    let (code, out, err) = qload(&["plan", fixture, "--device", "cuda:0"]);
    if code != 0 {
        assert_eq!(code, 2);
        assert!(
            err.contains("not compiled with gpu support") || err.contains("no CUDA device"),
            "{err}"
        );
    } else {
        assert!(out.contains("cuda:0"), "{out}");
    }
    // --device cpu never probes a GPU.
    let (code, out, err) = qload(&["plan", fixture, "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CPU only"), "{out}");
}

/// Writes a safetensors file holding one f32 matrix of `rows × cols` without holding
/// it in memory (a deterministic ramp, chunk by chunk).
fn big_f32_safetensors(path: &Path, rows: usize, cols: usize) {
    use std::io::Write;
    let n = rows * cols;
    let mut header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{}]}}}}"#,
        n * 4
    );
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let mut chunk = Vec::with_capacity(1 << 20);
    for i in 0..n {
        let v = ((i % 1013) as f32 - 506.0) * 1e-3;
        chunk.extend_from_slice(&v.to_le_bytes());
        if chunk.len() >= 1 << 20 {
            f.write_all(&chunk).unwrap();
            chunk.clear();
        }
    }
    f.write_all(&chunk).unwrap();
}

#[test]
fn quantize_on_load_stays_within_the_memory_budget() {
    // 256 MiB of f32 quantized to Q8_0 (68 MiB) under a 16 MiB budget: the peak RSS
    // must stay below final bytes + budget + 64 MiB, far below the source's size.
    let src = tmp("big.safetensors");
    big_f32_safetensors(&src, 16384, 4096);
    let stats = tmp("big-stats.json");
    let (code, out, err) = qload(&[
        "load",
        src.to_str().unwrap(),
        "--quantize",
        "q8_0",
        "--budget",
        "16MiB",
        "--stats",
        stats.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let stored = v["stored_bytes"].as_u64().unwrap();
    let peak = v["peak_rss_bytes"].as_u64().unwrap();
    assert_eq!(v["original_bytes"].as_u64().unwrap(), 256 << 20);
    assert_eq!(stored, 16384 * 4096 / 32 * 34);
    let bound = stored + (16 << 20) + (64 << 20);
    assert!(
        peak <= bound,
        "peak RSS {peak} above the bound {bound} (stored {stored})"
    );
    std::fs::remove_file(&src).ok();
}

#[test]
fn convert_writes_a_gguf_that_reads_back_with_the_same_bytes() {
    let out_path = tmp("converted.gguf");
    let (code, out, err) = qload(&[
        "convert",
        "tests/fixtures/safetensors/tiny_f32.safetensors",
        "-o",
        out_path.to_str().unwrap(),
        "--quantize",
        "q8_0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wrote"), "{out}");
    let (code, _, err) = qload(&["validate", out_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let src = qload_formats::open(root().join("tests/fixtures/safetensors/tiny_f32.safetensors")).unwrap();
    let back = qload_formats::open(&out_path).unwrap();
    assert_eq!(back.tensors().len(), src.tensors().len());
    let q = back.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.dtype.to_string(), "Q8_0");
    assert_eq!(q.shape, vec![64, 64]);
    let norm = back.tensor("model.norm.weight").unwrap();
    assert_eq!(
        back.tensor_bytes(norm).unwrap(),
        src.tensor_bytes(src.tensor("model.norm.weight").unwrap()).unwrap()
    );

    // Quantized types cannot go to safetensors; the message says what to do.
    let (code, _, err) = qload(&[
        "convert",
        "tests/fixtures/safetensors/tiny_f32.safetensors",
        "-o",
        tmp("x.safetensors").to_str().unwrap(),
        "--quantize",
        "q8_0",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("safetensors cannot hold Q8_0"), "{err}");

    // --dtype bf16 to safetensors works and reads back as BF16.
    let st = tmp("bf16.safetensors");
    let (code, _, err) = qload(&[
        "convert",
        "tests/fixtures/gguf/tiny-llama-mixed.gguf",
        "-o",
        st.to_str().unwrap(),
        "--dtype",
        "bf16",
    ]);
    assert_eq!(code, 0, "{err}");
    let back = qload_formats::open(&st).unwrap();
    assert!(back.tensors().iter().all(|t| t.dtype.to_string() == "BF16"));
}

/// Ternary GGUF output as microsoft/BitNet writes it: `general.file_type` 40 for I2_S,
/// 38/39 for TL1/TL2 (its converter writes the type id), and each TL weight followed by
/// its one-value F32 `<name>_scale` tensor.
#[test]
fn convert_to_ternary_types_writes_bitnet_file_types_and_tl_scales() {
    for (spec, file_type, scales) in [("i2_s", 40, false), ("tl1", 38, true), ("tl2", 39, true)] {
        let out_path = tmp(&format!("ternary-{spec}.gguf"));
        let (code, out, err) = qload(&[
            "convert",
            "tests/fixtures/gguf/tiny-llama-f16.gguf",
            "-o",
            out_path.to_str().unwrap(),
            "--quantize",
            spec,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let back = qload_formats::open(&out_path).unwrap();
        let qload_formats::Details::Gguf(headers) = back.details() else {
            panic!("not a GGUF")
        };
        let ft = headers[0].get("general.file_type").and_then(|v| v.as_u64());
        assert_eq!(ft, Some(file_type), "{spec}");
        let ternary: Vec<_> = back
            .tensors()
            .iter()
            .filter(|t| matches!(t.dtype.to_string().as_str(), "TL1" | "TL2"))
            .collect();
        assert_eq!(ternary.is_empty(), !scales, "{spec}");
        for t in ternary {
            let s = back.tensor(&format!("{}_scale", t.name)).expect("scale tensor");
            assert_eq!((s.dtype.to_string().as_str(), s.shape.as_slice()), ("F32", &[1u64][..]));
        }
        std::fs::remove_file(&out_path).ok();
    }
}

#[test]
fn the_readme_first_command_quantizes_the_f16_sample() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = readme.lines().find(|l| l.starts_with("cargo run")).unwrap();
    let args: Vec<&str> = first.split(" -- ").nth(1).unwrap().split_whitespace().collect();
    let stats = tmp("readme-stats.json");
    let mut with_stats = args.clone();
    with_stats.extend(["--stats", stats.to_str().unwrap()]);
    let (code, out, err) = qload(&with_stats);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("loaded 21/21 tensors: 12 → Q4_K, 4 promoted to Q6_K, 5 kept as stored (mapped)"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let per: Vec<(String, String, String)> = v["per_tensor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["dtype_after"].as_str().unwrap().to_string(),
                t["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    insta::assert_debug_snapshot!(per);
    assert!(v["mean_rel_rmse"].as_f64().unwrap() < 0.1);
    assert_eq!(v["tensors_loaded"], 21);
}

/// `bench kernels` measures types without a quantizer on random blocks (dequant and
/// matvec) and lists only their `quant` as skipped.
#[test]
fn bench_kernels_runs_types_without_a_quantizer_on_random_blocks() {
    let (code, out, err) = qload(&[
        "bench",
        "kernels",
        "--types",
        "iq2_xxs,q4_0",
        "--ops",
        "dequant,quant,matvec",
        "--rows",
        "32",
        "--cols",
        "512",
        "--runs",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ops: Vec<(String, String)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["dtype"].as_str().unwrap().into(), r["op"].as_str().unwrap().into()))
        .collect();
    for want in [
        ("IQ2_XXS", "dequant"),
        ("IQ2_XXS", "matvec"),
        ("Q4_0", "quant"),
        ("Q4_0", "matvec"),
    ] {
        assert!(
            ops.iter().any(|(d, o)| (d.as_str(), o.as_str()) == want),
            "{want:?} in {ops:?}"
        );
    }
    assert_eq!(v["skipped"], serde_json::json!(["IQ2_XXS quant: no quantizer yet"]));
}

/// `bench kernels` times I2_S interleaved four rows at a time (`matvec-repacked`) and
/// the plain read of any type's bytes (`read`), and skips `matvec-repacked` for types
/// without an interleaved layout; an unknown operation is refused.
#[test]
fn bench_kernels_times_repacked_i2_s_and_the_read_reference() {
    let (code, out, err) = qload(&[
        "bench",
        "kernels",
        "--types",
        "i2_s,q8_0",
        "--ops",
        "matvec,matvec-repacked,read",
        "--rows",
        "8",
        "--cols",
        "256",
        "--runs",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(String, String, u64)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dtype"].as_str().unwrap().into(),
                r["op"].as_str().unwrap().into(),
                r["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    // I2_S: 8 · 256 / 4 packed bytes and the 32-byte scale area; Q8_0: 34 bytes a block.
    let want = [
        ("I2_S", "matvec", 544),
        ("I2_S", "matvec-repacked", 544),
        ("I2_S", "read", 544),
        ("Q8_0", "matvec", 2176),
        ("Q8_0", "read", 2176),
    ];
    let got: Vec<(&str, &str, u64)> = rows.iter().map(|(d, o, b)| (d.as_str(), o.as_str(), *b)).collect();
    assert_eq!(got, want);
    assert_eq!(
        v["skipped"],
        serde_json::json!(["Q8_0 matvec-repacked: Q4_0 and I2_S only"])
    );
    let (code, _, err) = qload(&["bench", "kernels", "--types", "i2_s", "--ops", "reed"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown operation `reed`"), "{err}");
}
