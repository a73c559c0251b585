//! Pre-quantized decoders against each library's own dequantized output.
//!
//! Every fixture under `tests/fixtures/{bitsandbytes,hqq,mlx,quanto}/` was written by
//! the library itself (see each folder's README): `<name>.safetensors` holds the
//! stored parts, `<name>_truth.npz` the library's `dequantized_weight` (f32) and, for
//! modules, `x`, `bias` and `y_forward` (the module's forward pass). Decoding must give
//! exactly the bits of `dequantized_weight`, over the whole weight and in odd row
//! chunks; `matvec` must agree with an f64 dot product of the decoded rows and, within
//! the module dtype's precision, with the library's forward pass.

use std::path::PathBuf;

use half::f16;
use proptest::prelude::*;
use qload_dtype::DType;
use qload_formats::WeightSource;
use qload_quant_core::QuantError;
use qload_quant_core::prequant::{Bnb4Kind, MlxFloatMode, Part, Parts, PrequantTensor, QuantoType, Scheme};

fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(dir)
        .join(name)
}

fn open(dir: &str, name: &str) -> WeightSource {
    let p = fixture(dir, name);
    qload_formats::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn part<'s>(src: &'s WeightSource, name: &str) -> Option<Part<'s>> {
    let info = src.tensor(name)?;
    Some(Part {
        bytes: src.tensor_bytes(info).unwrap(),
        dtype: info.dtype,
        shape: info.shape.clone(),
    })
}

fn f32s(src: &WeightSource, name: &str) -> Option<(Vec<f32>, Vec<u64>)> {
    let info = src.tensor(name)?;
    assert_eq!(info.dtype, DType::F32, "{name}");
    let b = src.tensor_bytes(info).unwrap();
    Some((
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        info.shape.clone(),
    ))
}

fn scalar_i64(src: &WeightSource, name: &str) -> i64 {
    let p = part(src, name).unwrap_or_else(|| panic!("{name}"));
    match p.dtype {
        DType::I32 => i32::from_le_bytes(p.bytes.try_into().unwrap()) as i64,
        DType::U8 => p.bytes[0] as i64,
        DType::I64 => i64::from_le_bytes(p.bytes.try_into().unwrap()),
        d => panic!("{name}: {d}"),
    }
}

fn string(src: &WeightSource, name: &str) -> String {
    String::from_utf8(part(src, name).unwrap().bytes.to_vec()).unwrap()
}

fn torch_dtype(s: &str) -> DType {
    match s {
        "float16" | "torch.float16" => DType::F16,
        "bfloat16" | "torch.bfloat16" => DType::BF16,
        "float32" | "torch.float32" => DType::F32,
        _ => panic!("dtype {s}"),
    }
}

/// Checks `t` against the truth file: bit-exact decode (whole, in chunks of 7 rows, and
/// the f16 path), matvec against the f64 spec and the library's forward pass.
fn check_against_truth(label: &str, t: &PrequantTensor<'_>, truth: &WeightSource, forward_tol: f64) {
    let (want, shape) = f32s(truth, "dequantized_weight").unwrap();
    assert_eq!(shape, t.shape(), "{label}: shape");
    let (rows, cols) = (t.rows(), t.cols());
    let mut got = vec![0f32; want.len()];
    t.dequantize_rows(0, &mut got).unwrap();
    let bits_eq = |a: &[f32], b: &[f32], what: &str| {
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
            panic!(
                "{label} ({what}): first mismatch at {i} (row {}, col {}): got {} ({:#010x}), library {} ({:#010x})",
                i / cols,
                i % cols,
                a[i],
                a[i].to_bits(),
                b[i],
                b[i].to_bits()
            );
        }
    };
    bits_eq(&got, &want, "whole");
    // Odd row chunks: blocks and packed code rows straddle the chunk edges.
    for chunk in [7usize, 3, 1] {
        let mut part = vec![0f32; want.len()];
        for (i, o) in part.chunks_mut(chunk * cols).enumerate() {
            t.dequantize_rows(i * chunk, o).unwrap();
        }
        bits_eq(&part, &want, &format!("chunks of {chunk} rows"));
    }
    // The f16 path is f16(value), chunked too.
    let mut h = vec![f16::ZERO; want.len()];
    for (i, o) in h.chunks_mut(5 * cols).enumerate() {
        t.dequantize_rows_f16(i * 5, o).unwrap();
    }
    for (i, (h, w)) in h.iter().zip(&want).enumerate() {
        let w = f16::from_f32(*w);
        assert!(
            h.to_bits() == w.to_bits() || (h.is_nan() && w.is_nan()),
            "{label}: f16 path differs at {i}: {h} vs {w}"
        );
    }

    // matvec against the f64 dot of our own rows.
    let xs: Vec<Vec<f32>> = match f32s(truth, "x") {
        Some((x, _)) => x.chunks(cols).map(|c| c.to_vec()).collect(),
        None => vec![(0..cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect()],
    };
    let mut ys = Vec::new();
    for x in &xs {
        let mut y = vec![0f32; rows];
        t.matvec(x, &mut y).unwrap();
        let spec: Vec<f64> = want
            .chunks(cols)
            .map(|w| w.iter().zip(x).map(|(&w, &x)| w as f64 * x as f64).sum())
            .collect();
        let err = rel_err(&y, &spec);
        assert!(err <= 1e-5, "{label}: matvec vs f64 spec: relative error {err:e}");
        ys.push(y);
    }
    if let (Some((yf, _)), Some((bias, _))) = (f32s(truth, "y_forward"), f32s(truth, "bias")) {
        for (k, (y, yf)) in ys.iter().zip(yf.chunks(rows)).enumerate() {
            let mine: Vec<f32> = y.iter().zip(&bias).map(|(y, b)| y + b).collect();
            let lib: Vec<f64> = yf.iter().map(|&v| v as f64).collect();
            let err = rel_err(&mine, &lib);
            assert!(
                err <= forward_tol,
                "{label}: matvec + bias vs the library's forward (x row {k}): relative error {err:e} > {forward_tol:e}"
            );
        }
    }
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn forward_tol(dtype: DType) -> f64 {
    if dtype == DType::F32 { 1e-4 } else { 1e-2 }
}

// ---------------------------------------------------------------------------
// bitsandbytes

fn bnb4_case(name: &str) {
    let src = open("bitsandbytes", &format!("{name}.safetensors"));
    let truth = open("bitsandbytes", &format!("{name}_truth.npz"));
    let qs = src
        .tensors()
        .iter()
        .find(|t| t.name.contains(".quant_state.bitsandbytes__"))
        .unwrap();
    let prefix = qs.name.split(".quant_state.").next().unwrap().to_string();
    let json: serde_json::Value = serde_json::from_slice(src.tensor_bytes(qs).unwrap()).unwrap();
    let kind = match json["quant_type"].as_str().unwrap() {
        "nf4" => Bnb4Kind::Nf4,
        "fp4" => Bnb4Kind::Fp4,
        k => panic!("{k}"),
    };
    let dtype = torch_dtype(json["dtype"].as_str().unwrap());
    let shape: Vec<u64> = json["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let scheme = Scheme::Bnb4 {
        kind,
        blocksize: json["blocksize"].as_u64().unwrap() as usize,
        nested_blocksize: json["nested_blocksize"].as_u64().map(|v| v as usize),
        dtype,
    };
    let parts = Parts {
        data: part(&src, &prefix),
        scales: part(&src, &format!("{prefix}.absmax")),
        code: part(&src, &format!("{prefix}.quant_map")),
        nested_scales: part(&src, &format!("{prefix}.nested_absmax")),
        nested_code: part(&src, &format!("{prefix}.nested_quant_map")),
        nested_offset: json["nested_offset"].as_f64().unwrap_or(0.0) as f32,
        ..Parts::default()
    };
    let t = PrequantTensor::new(scheme, shape, parts).unwrap();
    check_against_truth(name, &t, &truth, forward_tol(dtype));
}

#[test]
fn bnb_nf4_dq_bf16() {
    bnb4_case("nf4_dq_bf16");
}

#[test]
fn bnb_nf4_f16() {
    bnb4_case("nf4_f16");
}

#[test]
fn bnb_fp4_dq_bf16() {
    bnb4_case("fp4_dq_bf16");
}

#[test]
fn bnb_fp4_f32() {
    bnb4_case("fp4_f32");
}

#[test]
fn bnb_functional_nf4_f32() {
    bnb4_case("functional_nf4_f32");
}

#[test]
fn bnb_functional_fp4_f32() {
    bnb4_case("functional_fp4_f32");
}

#[test]
fn bnb_int8_f16() {
    let src = open("bitsandbytes", "int8_f16.safetensors");
    let truth = open("bitsandbytes", "int8_f16_truth.npz");
    let p = "model.layers.0.mlp.down_proj.";
    let parts = Parts {
        data: part(&src, &format!("{p}weight")),
        scales: part(&src, &format!("{p}SCB")),
        ..Parts::default()
    };
    let t = PrequantTensor::new(Scheme::BnbInt8 { dtype: DType::F16 }, vec![256, 128], parts).unwrap();
    // The forward pass quantizes activations to int8 too (LLM.int8 with outliers in
    // f16), so it sits further from the f32 product than f16 rounding alone.
    check_against_truth("int8_f16", &t, &truth, 2e-2);
}

// ---------------------------------------------------------------------------
// HQQ

fn hqq_case(name: &str) {
    let src = open("hqq", &format!("{name}.safetensors"));
    let truth = open("hqq", &format!("{name}_truth.npz"));
    let p = "model.layers.0.mlp.down_proj.";
    let dtype = torch_dtype(&string(&src, &format!("{p}compute_dtype")));
    let nbits = scalar_i64(&src, &format!("{p}nbits")) as u8;
    let shape_p = part(&src, &format!("{p}shape")).unwrap();
    let shape: Vec<u64> = shape_p
        .bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u64)
        .collect();
    let mut data = part(&src, &format!("{p}W_q")).unwrap();
    if scalar_i64(&src, &format!("{p}view_as_float")) == 1 {
        // The loader re-types a view_as_float W_q as its unpack_view_dtype.
        let view = torch_dtype_or_int(&string(&src, &format!("{p}unpack_view_dtype")));
        let (old, new) = (2u64, if view == DType::U8 { 1 } else { 4 });
        if let Some(last) = data.shape.last_mut() {
            *last = *last * old / new;
        }
        data.dtype = view;
    }
    let scheme = Scheme::Hqq {
        nbits,
        group_size: scalar_i64(&src, &format!("{p}group_size")) as usize,
        axis: scalar_i64(&src, &format!("{p}axis")) as u8,
        dtype,
    };
    let parts = Parts {
        data: Some(data),
        scales: part(&src, &format!("{p}scale")),
        offsets: part(&src, &format!("{p}zero")),
        ..Parts::default()
    };
    let t = PrequantTensor::new(scheme, shape, parts).unwrap();
    check_against_truth(name, &t, &truth, forward_tol(dtype));
}

fn torch_dtype_or_int(s: &str) -> DType {
    match s {
        "torch.uint8" => DType::U8,
        "torch.int32" => DType::I32,
        s => torch_dtype(s),
    }
}

#[test]
fn hqq_4bit_g64_axis1_f16() {
    hqq_case("hqq_4bit_g64_axis1_f16");
}

#[test]
fn hqq_4bit_g64_axis1_bf16() {
    hqq_case("hqq_4bit_g64_axis1_bf16");
}

#[test]
fn hqq_4bit_g64_axis0_f16() {
    hqq_case("hqq_4bit_g64_axis0_f16");
}

#[test]
fn hqq_4bit_g64_axis1_f16_viewasfloat() {
    hqq_case("hqq_4bit_g64_axis1_f16_viewasfloat");
}

#[test]
fn hqq_3bit_g64_axis1_f16() {
    hqq_case("hqq_3bit_g64_axis1_f16");
}

#[test]
fn hqq_2bit_g64_axis1_f16() {
    hqq_case("hqq_2bit_g64_axis1_f16");
}

#[test]
fn hqq_1bit_g64_axis1_f16() {
    hqq_case("hqq_1bit_g64_axis1_f16");
}

#[test]
fn hqq_8bit_g64_axis1_bf16() {
    hqq_case("hqq_8bit_g64_axis1_bf16");
}

// ---------------------------------------------------------------------------
// MLX

fn mlx_case(file: &str, truth_file: &str, scheme: Scheme) {
    let src = open("mlx", file);
    let truth = open("mlx", truth_file);
    let p = "model.layers.0.mlp.down_proj.";
    let parts = Parts {
        data: part(&src, &format!("{p}weight")),
        scales: part(&src, &format!("{p}scales")),
        offsets: part(&src, &format!("{p}biases")),
        ..Parts::default()
    };
    let t = PrequantTensor::new(scheme, vec![256, 128], parts).unwrap();
    check_against_truth(file, &t, &truth, 1.0);
}

fn mlx_affine(bits: u8, group_size: usize, dtype: DType) {
    let d = match dtype {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    };
    let name = format!("affine_{bits}bit_g{group_size}_{d}");
    mlx_case(
        &format!("{name}.safetensors"),
        &format!("{name}_truth.npz"),
        Scheme::MlxAffine {
            bits,
            group_size,
            dtype,
        },
    );
}

#[test]
fn mlx_affine_files() {
    for (bits, g, dt) in [
        (1, 64, DType::BF16),
        (2, 64, DType::BF16),
        (3, 64, DType::BF16),
        (4, 64, DType::BF16),
        (4, 32, DType::F16),
        (4, 128, DType::F32),
        (5, 32, DType::F16),
        (6, 64, DType::BF16),
        (8, 64, DType::BF16),
    ] {
        mlx_affine(bits, g, dt);
    }
}

#[test]
fn mlx_affine_npz() {
    mlx_case(
        "affine_4bit_g64_f16.npz",
        "affine_4bit_g64_f16_npz_truth.npz",
        Scheme::MlxAffine {
            bits: 4,
            group_size: 64,
            dtype: DType::F16,
        },
    );
}

#[test]
fn mlx_float_modes() {
    for (name, mode, group_size) in [
        ("mxfp4_g32_bf16", MlxFloatMode::Mxfp4, 32),
        ("mxfp8_g32_bf16", MlxFloatMode::Mxfp8, 32),
        ("nvfp4_g16_bf16", MlxFloatMode::Nvfp4, 16),
    ] {
        mlx_case(
            &format!("{name}.safetensors"),
            &format!("{name}_truth.npz"),
            Scheme::MlxFloat {
                mode,
                group_size,
                dtype: DType::BF16,
            },
        );
    }
}

// ---------------------------------------------------------------------------
// quanto

fn quanto_case(name: &str, qtype: QuantoType, group_size: Option<usize>, tol: Option<f64>) {
    let src = open("quanto", &format!("{name}.safetensors"));
    let truth = open("quanto", &format!("{name}_truth.npz"));
    let (_, shape) = f32s(&truth, "dequantized_weight").unwrap();
    let packed = matches!(qtype, QuantoType::Qint2 | QuantoType::Qint4);
    let scale = part(&src, "down_proj.weight._scale").unwrap();
    let dtype = scale.dtype;
    let parts = Parts {
        data: part(
            &src,
            if packed {
                "down_proj.weight._data._data"
            } else {
                "down_proj.weight._data"
            },
        ),
        scales: Some(scale),
        offsets: part(&src, "down_proj.weight._shift"),
        ..Parts::default()
    };
    let scheme = Scheme::Quanto {
        qtype,
        group_size,
        dtype,
    };
    let t = PrequantTensor::new(scheme, shape, parts).unwrap();
    check_against_truth(name, &t, &truth, tol.unwrap_or(forward_tol(dtype)));
}

#[test]
fn quanto_files() {
    quanto_case("qint8_f32", QuantoType::Qint8, None, None);
    quanto_case("qint8_bf16", QuantoType::Qint8, None, None);
    quanto_case("qint4_f32_pergroup", QuantoType::Qint4, Some(128), None);
    quanto_case("qint4_bf16_pergroup", QuantoType::Qint4, Some(128), None);
    quanto_case("qint4_f16_perrow", QuantoType::Qint4, None, None);
    quanto_case("qint2_f16_pergroup", QuantoType::Qint2, Some(128), None);
    quanto_case("qfloat8_f32", QuantoType::Qfloat8E4m3, None, None);
    // The forward pass quantizes activations (input_scale) and outputs (output_scale)
    // to qint8: several per cent off the f32 product by construction.
    quanto_case("w8a8_qint8_f32", QuantoType::Qint8, None, Some(6e-2));
}

// ---------------------------------------------------------------------------
// refusals

fn owned(dtype: DType, bytes: usize, shape: Vec<u64>) -> (Vec<u8>, DType, Vec<u64>) {
    (vec![0x5a; bytes], dtype, shape)
}

fn as_part(o: &(Vec<u8>, DType, Vec<u64>)) -> Part<'_> {
    Part {
        bytes: &o.0,
        dtype: o.1,
        shape: o.2.clone(),
    }
}

fn bad_part(r: Result<PrequantTensor<'_>, QuantError>, want_part: &str) {
    match r {
        Err(QuantError::BadPart { part, reason }) => {
            assert_eq!(part, want_part, "{reason}");
        }
        Err(e) => panic!("expected BadPart({want_part}), got {e}"),
        Ok(_) => panic!("expected BadPart({want_part}), got Ok"),
    }
}

#[test]
fn refuses_bad_parts() {
    let mlx = Scheme::MlxAffine {
        bits: 4,
        group_size: 64,
        dtype: DType::F16,
    };
    let w = owned(DType::U32, 8 * 16 * 4, vec![8, 16]);
    let s = owned(DType::F16, 8 * 2 * 2, vec![8, 2]);
    let good = || Parts {
        data: Some(as_part(&w)),
        scales: Some(as_part(&s)),
        offsets: Some(as_part(&s)),
        ..Parts::default()
    };
    assert!(PrequantTensor::new(mlx, vec![8, 128], good()).is_ok());
    // Truncated data.
    let mut p = good();
    p.data = Some(Part {
        bytes: &w.0[..w.0.len() - 1],
        ..as_part(&w)
    });
    bad_part(PrequantTensor::new(mlx, vec![8, 128], p), "data");
    // Truncated scales.
    let mut p = good();
    p.scales = Some(Part {
        bytes: &s.0[..s.0.len() - 2],
        shape: vec![8, 2],
        dtype: DType::F16,
    });
    bad_part(PrequantTensor::new(mlx, vec![8, 128], p), "scales");
    // Wrong dtypes.
    let mut p = good();
    p.data = Some(Part {
        dtype: DType::U8,
        shape: vec![8, 64],
        ..as_part(&w)
    });
    bad_part(PrequantTensor::new(mlx, vec![8, 128], p), "data");
    let mut p = good();
    p.offsets = Some(Part {
        dtype: DType::BF16,
        ..as_part(&s)
    });
    bad_part(PrequantTensor::new(mlx, vec![8, 128], p), "offsets");
    // Missing part.
    let mut p = good();
    p.offsets = None;
    bad_part(PrequantTensor::new(mlx, vec![8, 128], p), "offsets");
    // Group size not dividing the row.
    let g48 = Scheme::MlxAffine {
        bits: 4,
        group_size: 48,
        dtype: DType::F16,
    };
    bad_part(PrequantTensor::new(g48, vec![8, 128], good()), "scheme");
    // Zero-sized and empty shapes.
    bad_part(PrequantTensor::new(mlx, vec![0, 128], good()), "shape");
    bad_part(PrequantTensor::new(mlx, vec![8, 0], good()), "shape");
    bad_part(PrequantTensor::new(mlx, vec![], good()), "shape");
    bad_part(PrequantTensor::new(mlx, vec![u64::MAX, u64::MAX], good()), "shape");

    // HQQ: group size not dividing, odd code rows for 4-bit, wrong data dtype.
    let d = owned(DType::U8, 4 * 64, vec![4, 64]);
    let sz = owned(DType::F16, 8 * 2, vec![8, 1]);
    let hqq = |nbits, group_size| Scheme::Hqq {
        nbits,
        group_size,
        axis: 1,
        dtype: DType::F16,
    };
    let hp = || Parts {
        data: Some(as_part(&d)),
        scales: Some(as_part(&sz)),
        offsets: Some(as_part(&sz)),
        ..Parts::default()
    };
    assert!(PrequantTensor::new(hqq(4, 64), vec![4, 128], hp()).is_ok());
    bad_part(PrequantTensor::new(hqq(4, 60), vec![4, 128], hp()), "scheme");
    bad_part(PrequantTensor::new(hqq(4, 0), vec![4, 128], hp()), "scheme");
    bad_part(PrequantTensor::new(hqq(5, 64), vec![4, 128], hp()), "scheme");
    bad_part(PrequantTensor::new(hqq(3, 64), vec![4, 128], hp()), "data");
    bad_part(PrequantTensor::new(hqq(4, 128), vec![4, 128], hp()), "scales");

    // bnb: absmax count, nested parts, code length, blocksize 0.
    let data = owned(DType::U8, 64, vec![64, 1]);
    let absmax = owned(DType::F32, 4 * 4, vec![4]);
    let code = owned(DType::F32, 64, vec![16]);
    let bnb = |blocksize, nested| Scheme::Bnb4 {
        kind: Bnb4Kind::Nf4,
        blocksize,
        nested_blocksize: nested,
        dtype: DType::BF16,
    };
    let bp = || Parts {
        data: Some(as_part(&data)),
        scales: Some(as_part(&absmax)),
        code: Some(as_part(&code)),
        ..Parts::default()
    };
    assert!(PrequantTensor::new(bnb(32, None), vec![4, 32], bp()).is_ok());
    bad_part(PrequantTensor::new(bnb(64, None), vec![4, 32], bp()), "scales");
    bad_part(PrequantTensor::new(bnb(0, None), vec![4, 32], bp()), "scheme");
    bad_part(PrequantTensor::new(bnb(32, Some(256)), vec![4, 32], bp()), "scales");
    bad_part(PrequantTensor::new(bnb(32, None), vec![4, 31], bp()), "data");
    let mut p = bp();
    p.code = Some(Part {
        bytes: &code.0[..60],
        dtype: DType::F32,
        shape: vec![15],
    });
    bad_part(PrequantTensor::new(bnb(32, None), vec![4, 32], p), "code");

    // quanto: qint8 with a group size, scale dtype other than the scheme's.
    let q = owned(DType::I8, 4 * 32, vec![4, 32]);
    let qs = owned(DType::F32, 16, vec![4, 1]);
    let qp = || Parts {
        data: Some(as_part(&q)),
        scales: Some(as_part(&qs)),
        ..Parts::default()
    };
    let quanto = |group_size, dtype| Scheme::Quanto {
        qtype: QuantoType::Qint8,
        group_size,
        dtype,
    };
    assert!(PrequantTensor::new(quanto(None, DType::F32), vec![4, 32], qp()).is_ok());
    bad_part(
        PrequantTensor::new(quanto(Some(32), DType::F32), vec![4, 32], qp()),
        "scheme",
    );
    bad_part(
        PrequantTensor::new(quanto(None, DType::F16), vec![4, 32], qp()),
        "scales",
    );

    // Row ranges and vector lengths.
    let t = PrequantTensor::new(mlx, vec![8, 128], good()).unwrap();
    let mut out = vec![0f32; 128 * 3];
    assert!(t.dequantize_rows(6, &mut out).is_err());
    assert!(t.dequantize_rows(0, &mut out[..100]).is_err());
    assert!(t.dequantize_rows(usize::MAX, &mut out).is_err());
    assert!(t.dequantize_rows(5, &mut out).is_ok());
    let mut y = vec![0f32; 8];
    assert!(t.matvec(&[0.0; 127], &mut y).is_err());
    assert!(t.matvec(&[0.0; 128], &mut y[..7]).is_err());
}

// ---------------------------------------------------------------------------
// random bytes never panic

fn schemes() -> Vec<(Scheme, Vec<u64>)> {
    use DType::*;
    vec![
        (
            Scheme::Bnb4 {
                kind: Bnb4Kind::Nf4,
                blocksize: 64,
                nested_blocksize: Some(256),
                dtype: BF16,
            },
            vec![3, 50],
        ),
        (
            Scheme::Bnb4 {
                kind: Bnb4Kind::Fp4,
                blocksize: 32,
                nested_blocksize: None,
                dtype: F16,
            },
            vec![5, 24],
        ),
        (
            Scheme::Bnb4 {
                kind: Bnb4Kind::Nf4,
                blocksize: 7,
                nested_blocksize: None,
                dtype: F32,
            },
            vec![3, 9],
        ),
        (Scheme::BnbInt8 { dtype: F16 }, vec![4, 16]),
        (
            Scheme::Hqq {
                nbits: 3,
                group_size: 16,
                axis: 1,
                dtype: F16,
            },
            vec![6, 32],
        ),
        (
            Scheme::Hqq {
                nbits: 4,
                group_size: 8,
                axis: 0,
                dtype: BF16,
            },
            vec![4, 16],
        ),
        (
            Scheme::Hqq {
                nbits: 1,
                group_size: 8,
                axis: 1,
                dtype: F32,
            },
            vec![8, 16],
        ),
        (
            Scheme::MlxAffine {
                bits: 4,
                group_size: 32,
                dtype: F16,
            },
            vec![3, 64],
        ),
        (
            Scheme::MlxAffine {
                bits: 5,
                group_size: 32,
                dtype: BF16,
            },
            vec![2, 64],
        ),
        (
            Scheme::MlxFloat {
                mode: MlxFloatMode::Nvfp4,
                group_size: 16,
                dtype: BF16,
            },
            vec![2, 32],
        ),
        (
            Scheme::MlxFloat {
                mode: MlxFloatMode::Mxfp8,
                group_size: 32,
                dtype: F16,
            },
            vec![2, 32],
        ),
        (
            Scheme::Quanto {
                qtype: QuantoType::Qint2,
                group_size: Some(16),
                dtype: F16,
            },
            vec![3, 32],
        ),
        (
            Scheme::Quanto {
                qtype: QuantoType::Qfloat8E4m3,
                group_size: None,
                dtype: BF16,
            },
            vec![3, 8],
        ),
    ]
}

/// Part sizes (dtype, elements) each scheme needs for `shape`, as the docs describe.
fn sizes(scheme: &Scheme, shape: &[u64]) -> Vec<(&'static str, DType, usize)> {
    let rows = shape[..shape.len() - 1].iter().product::<u64>() as usize;
    let cols = *shape.last().unwrap() as usize;
    let n = rows * cols;
    match *scheme {
        Scheme::Bnb4 {
            blocksize,
            nested_blocksize,
            ..
        } => {
            let blocks = n.div_ceil(blocksize);
            let mut v = vec![("data", DType::U8, n.div_ceil(2)), ("code", DType::F32, 16)];
            match nested_blocksize {
                None => v.push(("scales", DType::F32, blocks)),
                Some(nb) => v.extend([
                    ("scales", DType::U8, blocks),
                    ("nested_scales", DType::F32, blocks.div_ceil(nb)),
                    ("nested_code", DType::F32, 256),
                ]),
            }
            v
        }
        Scheme::BnbInt8 { .. } => vec![("data", DType::I8, n), ("scales", DType::F32, rows)],
        Scheme::Hqq {
            nbits,
            group_size,
            axis,
            dtype,
        } => {
            let r = if axis == 1 { n / group_size } else { group_size };
            let c = n / r;
            let data = match nbits {
                3 => ("data", DType::I32, r.div_ceil(10) * c),
                b => ("data", DType::U8, r * b as usize / 8 * c),
            };
            vec![
                data,
                ("scales", dtype, n / group_size),
                ("offsets", dtype, n / group_size),
            ]
        }
        Scheme::MlxAffine {
            bits,
            group_size,
            dtype,
        } => vec![
            ("data", DType::U32, n * bits as usize / 32),
            ("scales", dtype, n / group_size),
            ("offsets", dtype, n / group_size),
        ],
        Scheme::MlxFloat { mode, group_size, .. } => {
            let bits = if mode == MlxFloatMode::Mxfp8 { 8 } else { 4 };
            vec![
                ("data", DType::U32, n * bits / 32),
                ("scales", DType::U8, n / group_size),
            ]
        }
        Scheme::Quanto {
            qtype,
            group_size,
            dtype,
        } => match qtype {
            QuantoType::Qint8 => vec![("data", DType::I8, n), ("scales", dtype, rows)],
            QuantoType::Qfloat8E4m3 => vec![("data", DType::F8E4M3, n), ("scales", dtype, rows)],
            QuantoType::Qint2 | QuantoType::Qint4 => {
                let bits = if qtype == QuantoType::Qint2 { 2 } else { 4 };
                let (r, c) = group_size.map_or((rows, cols), |g| (n / g, g));
                vec![
                    ("data", DType::U8, r.div_ceil(8 / bits) * c),
                    ("scales", dtype, r),
                    ("offsets", dtype, r),
                ]
            }
        },
        _ => vec![],
    }
}

fn size_of(d: DType) -> usize {
    match d {
        DType::U8 | DType::I8 | DType::F8E4M3 => 1,
        DType::F16 | DType::BF16 => 2,
        _ => 4,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_parts_never_panic(seed in any::<u64>(), cut in 0usize..4, first in 0usize..4) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        for (scheme, shape) in schemes() {
            let sz = sizes(&scheme, &shape);
            let bufs: Vec<(&str, DType, Vec<u8>, usize)> = sz
                .iter()
                .map(|&(name, dt, n)| (name, dt, (0..n * size_of(dt)).map(|_| next() as u8).collect(), n))
                .collect();
            let mk = |i: usize, trunc: bool| {
                let (_, dt, ref b, n) = bufs[i];
                let len = if trunc { b.len().saturating_sub(1) } else { b.len() };
                Part { bytes: &b[..len], dtype: dt, shape: vec![n as u64] }
            };
            let mut build = |truncate: Option<usize>| {
                let mut p = Parts { nested_offset: (next() as u32 as f32) / 1e9, ..Parts::default() };
                for (i, &(name, _, _, _)) in bufs.iter().enumerate() {
                    let part = Some(mk(i, truncate == Some(i)));
                    match name {
                        "data" => p.data = part,
                        "scales" => p.scales = part,
                        "offsets" => p.offsets = part,
                        "code" => p.code = part,
                        "nested_scales" => p.nested_scales = part,
                        _ => p.nested_code = part,
                    }
                }
                p
            };
            let t = PrequantTensor::new(scheme, shape.clone(), build(None));
            let t = match t { Ok(t) => t, Err(e) => panic!("{}: {e}", scheme.label()) };
            let (rows, cols) = (t.rows(), t.cols());
            let first = first.min(rows - 1);
            let mut out = vec![0f32; (rows - first) * cols];
            t.dequantize_rows(first, &mut out).unwrap();
            let mut h = vec![f16::ZERO; out.len()];
            t.dequantize_rows_f16(first, &mut h).unwrap();
            for (i, (h, v)) in h.iter().zip(&out).enumerate() {
                let w = f16::from_f32(*v);
                prop_assert!(h.to_bits() == w.to_bits() || (h.is_nan() && w.is_nan()), "{} f16 at {}", scheme.label(), i);
            }
            let x: Vec<f32> = (0..cols).map(|i| i as f32 * 0.25 - 1.0).collect();
            let mut y = vec![0f32; rows];
            t.matvec(&x, &mut y).unwrap();
            // Any truncated part is refused.
            let i = cut % bufs.len();
            prop_assert!(PrequantTensor::new(scheme, shape.clone(), build(Some(i))).is_err(), "{} truncated {}", scheme.label(), bufs[i].0);
        }
    }
}

use qload_quant_core::prequant::NF4_CODE as NF4;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The fused 4-bit matvec (table decode + f32 dot) against the specification
    /// (decoded rows, f64 dot), with blocks straddling rows and short last blocks.
    #[test]
    fn fused_matvec_matches_spec(seed in any::<u64>(), rows in 1usize..7, cols_half in 1usize..60, dt in 0usize..3) {
        let dtype = [DType::F16, DType::BF16, DType::F32][dt];
        let cols = 2 * cols_half;
        let n = rows * cols;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let codes: Vec<u8> = (0..n.div_ceil(2)).map(|_| next() as u8).collect();
        let x: Vec<f32> = (0..cols).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        // The f64 dot of decoded rows, and per row Σ|w·x|: the f32 sums may differ from
        // f64 by ulps of their terms, so the budget scales with the terms, not the
        // (possibly cancelling) result.
        let spec = |t: &PrequantTensor<'_>| -> Vec<(f64, f64)> {
            let mut w = vec![0f32; n];
            t.dequantize(&mut w).unwrap();
            w.chunks(cols)
                .map(|w| {
                    let p = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64);
                    (p.clone().sum(), p.map(f64::abs).sum())
                })
                .collect()
        };
        let close = |y: &[f32], want: &[(f64, f64)]| {
            y.iter().zip(want).all(|(&y, &(v, m))| (y as f64 - v).abs() <= 1e-5 * m.max(1e-30))
        };
        // bnb NF4, blocks of 16 over the flattened weight.
        let blocks = n.div_ceil(16);
        let absmax: Vec<u8> = (0..blocks).flat_map(|_| (0.01 + (next() % 1000) as f32 * 1e-3).to_le_bytes()).collect();
        let code: Vec<u8> = NF4.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = PrequantTensor::new(
            Scheme::Bnb4 { kind: Bnb4Kind::Nf4, blocksize: 16, nested_blocksize: None, dtype },
            vec![rows as u64, cols as u64],
            Parts {
                data: Some(Part { bytes: &codes, dtype: DType::U8, shape: vec![codes.len() as u64, 1] }),
                scales: Some(Part { bytes: &absmax, dtype: DType::F32, shape: vec![blocks as u64] }),
                code: Some(Part { bytes: &code, dtype: DType::F32, shape: vec![16] }),
                ..Parts::default()
            },
        ).unwrap();
        let mut y = vec![0f32; rows];
        t.matvec(&x, &mut y).unwrap();
        prop_assert!(close(&y, &spec(&t)));

        // MLX affine 4-bit, groups of 32 when they divide the row (else 2·cols_half).
        if cols % 8 == 0 {
            let g = if cols % 32 == 0 { 32 } else { cols };
            let ng = n / g;
            let enc = |v: f32| -> Vec<u8> {
                match dtype {
                    DType::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
                    DType::BF16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
                    _ => v.to_le_bytes().to_vec(),
                }
            };
            let scales: Vec<u8> = (0..ng).flat_map(|_| enc((next() % 1000) as f32 * 1e-3)).collect();
            let biases: Vec<u8> = (0..ng).flat_map(|_| enc((next() % 1000) as f32 * 1e-3 - 0.5)).collect();
            let t = PrequantTensor::new(
                Scheme::MlxAffine { bits: 4, group_size: g, dtype },
                vec![rows as u64, cols as u64],
                Parts {
                    data: Some(Part { bytes: &codes[..n / 2], dtype: DType::U32, shape: vec![rows as u64, (cols / 8) as u64] }),
                    scales: Some(Part { bytes: &scales, dtype, shape: vec![ng as u64] }),
                    offsets: Some(Part { bytes: &biases, dtype, shape: vec![ng as u64] }),
                    ..Parts::default()
                },
            ).unwrap();
            t.matvec(&x, &mut y).unwrap();
            prop_assert!(close(&y, &spec(&t)));
        }
    }
}

/// transformers' packed BitNet: rows `i·P + p` at bits `2i` of byte row `p`; field 3
/// reads +2; `BitLinear` divides by the scale (rounded to the model dtype),
/// `AutoBitLinear` multiplies; I2_S carries the same codes and value losslessly.
#[test]
fn bitnet_packed_rows_scales_and_i2s() {
    use qload_quant_core::bitnet::i2s::{self, I2sLayout, I2sRef};
    use qload_quant_core::prequant::BitnetScale;
    let (rows, cols) = (8usize, 5usize);
    let quarter = rows / 4;
    // Codes 0..=3 (value + 1), field 3 included.
    let fields: Vec<u8> = (0..rows * cols).map(|e| ((e * 7 + e / 3) % 4) as u8).collect();
    let mut packed = vec![0u8; quarter * cols];
    for r in 0..rows {
        for c in 0..cols {
            packed[(r % quarter) * cols + c] |= fields[r * cols + c] << (2 * (r / quarter));
        }
    }
    let ws = half::bf16::from_f32(3.0);
    let ws_bytes = ws.to_le_bytes();
    for (scale, one) in [
        (BitnetScale::Divide, half::bf16::from_f32(1.0 / 3.0).to_f32()),
        (BitnetScale::Multiply, 3.0),
    ] {
        let parts = Parts {
            data: Some(Part {
                bytes: &packed,
                dtype: DType::U8,
                shape: vec![quarter as u64, cols as u64],
            }),
            scales: Some(Part {
                bytes: &ws_bytes,
                dtype: DType::BF16,
                shape: vec![1],
            }),
            ..Parts::default()
        };
        let scheme = Scheme::Bitnet {
            scale,
            dtype: DType::BF16,
        };
        let t = PrequantTensor::new(scheme, vec![rows as u64, cols as u64], parts.clone()).unwrap();
        let want: Vec<f32> = fields.iter().map(|&f| (f as f32 - 1.0) * one).collect();
        let mut got = vec![0f32; rows * cols];
        t.dequantize(&mut got).unwrap();
        assert_eq!(got, want, "{scale:?}");
        // Odd row chunks decode the same.
        let mut part_rows = vec![0f32; 3 * cols];
        t.dequantize_rows(5, &mut part_rows).unwrap();
        assert_eq!(part_rows, want[5 * cols..]);
        for layout in [I2sLayout::X86, I2sLayout::Arm] {
            let bytes = t.to_i2s(layout).unwrap().unwrap();
            let r = I2sRef::new(&bytes, rows * cols, layout).unwrap();
            assert_eq!(r.scale(), one);
            let mut back = vec![0f32; rows * cols];
            r.dequantize(&mut back).unwrap();
            assert_eq!(back, want, "{scale:?} {layout:?}");
        }
        // A weight without field 3 packs exactly as `i2s::encode` of its codes.
        let ternary: Vec<u8> = packed
            .iter()
            .map(|b| (0..4).fold(0u8, |acc, i| acc | (((b >> (2 * i)) & 3) % 3) << (2 * i)))
            .collect();
        let codes: Vec<i8> = (0..rows * cols)
            .map(|e| ((ternary[(e / cols % quarter) * cols + e % cols] >> (2 * (e / cols / quarter))) & 3) as i8 - 1)
            .collect();
        assert!(codes.iter().all(|c| (-1..=1).contains(c)));
        {
            let p2 = Parts {
                data: Some(Part {
                    bytes: &ternary,
                    dtype: DType::U8,
                    shape: vec![quarter as u64, cols as u64],
                }),
                ..parts.clone()
            };
            let t2 = PrequantTensor::new(scheme, vec![rows as u64, cols as u64], p2).unwrap();
            let mut enc = vec![0u8; i2s::tensor_bytes(rows * cols).unwrap()];
            i2s::encode(&codes, one, I2sLayout::X86, &mut enc).unwrap();
            assert_eq!(t2.to_i2s(I2sLayout::X86).unwrap().unwrap(), enc);
        }
        // Validation: rows must be whole bytes of four; one scale of the scheme's dtype.
        let bad = PrequantTensor::new(scheme, vec![6, cols as u64], parts.clone()).unwrap_err();
        assert!(matches!(bad, QuantError::BadPart { part: "shape", .. }), "{bad}");
        let two = [ws_bytes, ws_bytes].concat();
        let p3 = Parts {
            scales: Some(Part {
                bytes: &two,
                dtype: DType::BF16,
                shape: vec![2],
            }),
            ..parts.clone()
        };
        assert!(PrequantTensor::new(scheme, vec![rows as u64, cols as u64], p3).is_err());
        let wrong = Scheme::Bitnet {
            scale,
            dtype: DType::F16,
        };
        assert!(PrequantTensor::new(wrong, vec![rows as u64, cols as u64], parts).is_err());
    }
}
