//! PyTorch checkpoints: torch-written fixtures against their ground truth, and
//! hostile pickles and archives that must be refused without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use qload_formats::pickle::{self, Value};
use qload_formats::torch::TorchDetails;
use qload_formats::{DType, Details, Error, Format, OpenOptions, TensorInfo, WeightSource, open, open_bytes};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn torch_details(src: &WeightSource) -> &TorchDetails {
    match src.details() {
        Details::Torch(d) => d,
        other => panic!("not torch details: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A test-only reader for the truth .npz files (stored members, v1-v3 headers).

struct Npy {
    descr: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn read_npz(path: &Path) -> BTreeMap<String, Npy> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = BTreeMap::new();
    for m in qload_formats::archive::members(&bytes).unwrap() {
        assert!(m.stored, "{}: truth members are stored", m.name);
        let data = &bytes[m.data.start as usize..m.data.end as usize];
        let name = m.name.strip_suffix(".npy").unwrap().to_string();
        out.insert(name, parse_npy(data));
    }
    out
}

fn parse_npy(b: &[u8]) -> Npy {
    assert!(b.starts_with(b"\x93NUMPY"));
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    assert!(header.contains("'fortran_order': False"));
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    Npy {
        descr,
        shape,
        data: b[start + hlen..].to_vec(),
    }
}

fn widen(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => panic!("not a float type: {other}"),
    }
}

/// Every truth key is present with its dtype, shape and exact values, and nothing else.
fn check_truth(src: &WeightSource, truth: &BTreeMap<String, Npy>, float: DType) {
    let names: BTreeSet<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
    let want: BTreeSet<&str> = truth.keys().map(String::as_str).collect();
    assert_eq!(names, want);
    for (name, npy) in truth {
        let t = src.tensor(name).unwrap();
        assert_eq!(t.shape, npy.shape, "{name}");
        let data = src.materialize(t).unwrap();
        let expected_dtype = match npy.descr.as_str() {
            "<f4" => float,
            "<i8" => DType::I64,
            "|b1" => DType::Bool,
            "<i4" => DType::I32,
            "|u1" => DType::U8,
            "|i1" => DType::I8,
            other => panic!("{name}: truth dtype {other}"),
        };
        assert_eq!(t.dtype, expected_dtype, "{name}");
        if npy.descr == "<f4" {
            let got = widen(t.dtype, &data);
            let want = widen(DType::F32, &npy.data);
            assert_eq!(got.len(), want.len(), "{name}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{name}[{i}]: {g} != {w}");
            }
        } else {
            assert_eq!(&*data, &npy.data[..], "{name}");
        }
    }
}

fn tiny(file: &str) -> WeightSource {
    open(fixtures().join("torch").join(file)).unwrap()
}

#[test]
fn tiny_checkpoints_match_their_truth() {
    for (d, float) in [("f32", DType::F32), ("f16", DType::F16), ("bf16", DType::BF16)] {
        let truth = read_npz(&fixtures().join(format!("torch/tiny_{d}_pth_truth.npz")));
        for kind in ["zip", "legacy"] {
            let file = format!("tiny_{d}_{kind}.pth");
            let src = tiny(&file);
            let expected_format = if kind == "zip" {
                Format::PytorchZip
            } else {
                Format::PytorchLegacy
            };
            assert_eq!(src.format(), expected_format, "{file}");
            check_truth(&src, &truth, float);
        }
    }
}

#[test]
fn tiny_checkpoints_match_the_manifest() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("torch/manifest.json")).unwrap()).unwrap();
    for d in ["f32", "f16", "bf16"] {
        for kind in ["zip", "legacy"] {
            let file = format!("tiny_{d}_{kind}.pth");
            let src = tiny(&file);
            let entries = manifest["files"][&file]["tensors"].as_object().unwrap();
            assert_eq!(entries.len(), src.tensors().len(), "{file}");
            for (name, m) in entries {
                let t = src.tensor(name).unwrap();
                let v = t.view.as_ref().unwrap();
                let esize = t.dtype.element_size().unwrap();
                let ints = |key: &str| -> Vec<u64> {
                    m[key].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
                };
                assert_eq!(v.strides, ints("stride"), "{file} {name}");
                assert_eq!(v.offset, m["storage_offset"].as_u64().unwrap(), "{file} {name}");
                let storage_len = v.storage_bytes.end - v.storage_bytes.start;
                assert_eq!(
                    storage_len / esize,
                    m["storage_numel"].as_u64().unwrap(),
                    "{file} {name}"
                );
                assert_eq!(t.is_contiguous(), m["contiguous"].as_bool().unwrap(), "{file} {name}");
                for other in m["shares_storage_with"].as_array().unwrap() {
                    let o = src.tensor(other.as_str().unwrap()).unwrap();
                    assert_eq!(o.view.as_ref().unwrap().key, v.key, "{file} {name} shares with {other}");
                }
            }
        }
    }
}

#[test]
fn views_ties_and_scalars() {
    for file in ["tiny_f32_zip.pth", "tiny_bf16_legacy.pth"] {
        let src = tiny(file);
        let view = |n: &str| src.tensor(n).unwrap().view.clone().unwrap();
        let k = view("model.layers.0.self_attn.k_proj.weight");
        let v = view("model.layers.0.self_attn.v_proj.weight");
        assert_eq!(k.key, v.key, "{file}");
        assert_eq!((k.offset, v.offset), (0, 4096), "{file}");
        let o1 = src.tensor("model.layers.1.self_attn.o_proj.weight").unwrap();
        assert!(!o1.is_contiguous(), "{file}");
        assert_eq!(o1.view.as_ref().unwrap().strides, vec![1, 64]);
        assert!(
            src.tensor("model.layers.0.self_attn.o_proj.weight")
                .unwrap()
                .is_contiguous()
        );
        assert_eq!(
            view("lm_head.weight").key,
            view("model.embed_tokens.weight").key,
            "{file}"
        );
        assert_eq!(
            src.tensor("lm_head.weight").unwrap().bytes,
            src.tensor("model.embed_tokens.weight").unwrap().bytes
        );
        let step = src.tensor("extra.step").unwrap();
        assert_eq!((step.dtype, step.shape.clone(), step.numel()), (DType::I64, vec![], 1));
        assert_eq!(src.tensor_bytes(step).unwrap(), 7i64.to_le_bytes());
    }
}

#[test]
fn tensors_are_slices_of_the_file() {
    let src = tiny("tiny_f16_zip.pth");
    let file = src.files()[0].bytes();
    let range = file.as_ptr_range();
    for t in src.tensors() {
        let b = src.tensor_bytes(t).unwrap();
        assert!(range.contains(&b.as_ptr()) || b.is_empty(), "{}", t.name);
        if t.is_contiguous() {
            assert!(
                matches!(src.materialize(t).unwrap(), std::borrow::Cow::Borrowed(_)),
                "{}",
                t.name
            );
            assert_eq!(t.byte_len(), t.dtype.nbytes(&t.shape).unwrap(), "{}", t.name);
        }
    }
}

#[test]
fn details_describe_the_container() {
    let zip = tiny("tiny_f32_zip.pth");
    let d = torch_details(&zip);
    assert!(!d.legacy);
    assert_eq!(d.archive_prefix.as_deref(), Some("tiny_f32_zip"));
    assert_eq!(d.byteorder.as_deref(), Some("little"));
    assert_eq!(d.format_version.as_deref(), Some("1"));
    assert_eq!(d.storage_alignment.as_deref(), Some("64"));
    // 27 tensors; lm_head ties to embed_tokens and k/v share one storage.
    assert_eq!(zip.tensors().len(), 27);
    assert_eq!(d.storage_count, 25);
    assert_eq!(d.stripped_wrapper, None);
    assert!(d.values.is_empty());

    let legacy = tiny("tiny_f32_legacy.pth");
    let d = torch_details(&legacy);
    assert!(d.legacy);
    assert_eq!(d.legacy_protocol_version, Some(1001));
    assert_eq!(d.archive_prefix, None);
    assert_eq!(d.storage_count, 25);
    serde_json::to_string(d).unwrap();
}

#[test]
fn sharded_bin_shards_match_their_truth() {
    let dir = fixtures().join("torch/sharded_bin_f16");
    let truth = read_npz(&dir.join("truth.npz"));
    let mut seen = BTreeSet::new();
    for shard in ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"] {
        let src = open(dir.join(shard)).unwrap();
        assert_eq!(src.format(), Format::PytorchZip);
        for t in src.tensors() {
            // The shards keep the tied lm_head.weight (sharing embed_tokens' storage);
            // the truth lists only embed_tokens.
            let key = if t.name == "lm_head.weight" {
                "model.embed_tokens.weight"
            } else {
                t.name.as_str()
            };
            let npy = &truth[key];
            assert_eq!(t.shape, npy.shape, "{}", t.name);
            assert_eq!(t.dtype, DType::F16);
            let got = widen(DType::F16, &src.materialize(t).unwrap());
            assert_eq!(got, widen(DType::F32, &npy.data), "{}", t.name);
            seen.insert(key.to_string());
        }
        if let Some(lm) = src.tensor("lm_head.weight") {
            let embed = src.tensor("model.embed_tokens.weight").unwrap();
            assert_eq!(lm.view.as_ref().unwrap().key, embed.view.as_ref().unwrap().key);
        }
    }
    assert_eq!(seen, truth.keys().cloned().collect());
}

fn scalar_i32(src: &WeightSource, name: &str) -> i32 {
    let t = src.tensor(name).unwrap();
    assert_eq!(t.dtype, DType::I32, "{name}");
    i32::from_le_bytes(src.tensor_bytes(t).unwrap().try_into().unwrap())
}

#[test]
fn quantizer_checkpoints_open() {
    let hqq = open(fixtures().join("hqq/hqq_4bit_g64_axis1_f16.pt")).unwrap();
    assert_eq!(hqq.tensors().len(), 20);
    let p = "model.layers.0.mlp.down_proj.";
    let t = |src: &WeightSource, n: &str| -> (DType, Vec<u64>) {
        let t = src.tensor(n).unwrap_or_else(|| panic!("{n}"));
        (t.dtype, t.shape.clone())
    };
    assert_eq!(t(&hqq, &format!("{p}W_q")), (DType::U8, vec![256, 64]));
    assert_eq!(t(&hqq, &format!("{p}scale")), (DType::F16, vec![512, 1]));
    assert_eq!(t(&hqq, &format!("{p}shape")), (DType::I64, vec![2]));
    assert_eq!(scalar_i32(&hqq, &format!("{p}nbits")), 4);
    assert_eq!(scalar_i32(&hqq, &format!("{p}group_size")), 64);
    let cd = hqq.tensor(&format!("{p}compute_dtype")).unwrap();
    assert_eq!(hqq.tensor_bytes(cd).unwrap(), b"torch.float16");

    let quanto = open(fixtures().join("quanto/qint4_f32_pergroup.bin")).unwrap();
    assert_eq!(quanto.tensors().len(), 6);
    assert_eq!(t(&quanto, "down_proj.weight._data._data"), (DType::U8, vec![128, 128]));
    assert_eq!(t(&quanto, "down_proj.weight._scale"), (DType::F32, vec![256, 1]));
    let s = quanto.tensor("down_proj.input_scale").unwrap();
    assert_eq!(quanto.tensor_bytes(s).unwrap(), 1.0f32.to_le_bytes());

    let int8 = open(fixtures().join("bitsandbytes/int8_f16.bin")).unwrap();
    assert_eq!(int8.tensors().len(), 4);
    assert_eq!(t(&int8, &format!("{p}weight")), (DType::I8, vec![256, 128]));
    assert_eq!(t(&int8, &format!("{p}SCB")), (DType::F32, vec![256]));
    assert_eq!(t(&int8, &format!("{p}weight_format")), (DType::U8, vec![]));

    let nf4 = open(fixtures().join("bitsandbytes/nf4_dq_bf16.bin")).unwrap();
    assert_eq!(nf4.tensors().len(), 7);
    assert_eq!(t(&nf4, &format!("{p}weight")), (DType::U8, vec![16384, 1]));
    assert_eq!(t(&nf4, &format!("{p}bias")), (DType::BF16, vec![256]));
    let qs = nf4.tensor(&format!("{p}weight.quant_state.bitsandbytes__nf4")).unwrap();
    assert_eq!(qs.shape, vec![170]);
    let json: serde_json::Value = serde_json::from_slice(nf4.tensor_bytes(qs).unwrap()).unwrap();
    assert_eq!(json["quant_type"], "nf4");
}

// ---------------------------------------------------------------------------
// Building pickles and archives.

/// A tiny pickle writer: enough opcodes to write torch-like and hostile pickles.
#[derive(Clone)]
struct P(Vec<u8>);

impl P {
    fn new(proto: u8) -> P {
        P(vec![0x80, proto])
    }
    fn op(mut self, b: &[u8]) -> P {
        self.0.extend_from_slice(b);
        self
    }
    fn global(self, module: &str, name: &str) -> P {
        self.op(b"c")
            .op(module.as_bytes())
            .op(b"\n")
            .op(name.as_bytes())
            .op(b"\n")
    }
    fn str(self, s: &str) -> P {
        self.op(b"X").op(&(s.len() as u32).to_le_bytes()).op(s.as_bytes())
    }
    fn int(self, i: i32) -> P {
        self.op(b"J").op(&i.to_le_bytes())
    }
    fn ints(self, v: &[i32]) -> P {
        v.iter().fold(self.op(b"("), |p, &i| p.int(i)).op(b"t")
    }
    /// `_rebuild_tensor_v2(('storage', torch.<stype>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`
    fn tensor(self, stype: &str, key: &str, numel: i32, offset: i32, size: &[i32], stride: &[i32]) -> P {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", stype)
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b"tQ")
            .int(offset)
            .ints(size)
            .ints(stride)
            .op(b"\x89")
            .global("collections", "OrderedDict")
            .op(b")R")
            .op(b"tR")
    }
    fn stop(self) -> Vec<u8> {
        self.op(b".").0
    }
}

struct Zip {
    prefix: String,
    members: Vec<(String, Vec<u8>, bool)>,
}

impl Zip {
    fn new(prefix: &str, pkl: Vec<u8>) -> Zip {
        Zip {
            prefix: prefix.into(),
            members: vec![
                (format!("{prefix}/data.pkl"), pkl, false),
                (format!("{prefix}/byteorder"), b"little".to_vec(), false),
                (format!("{prefix}/.format_version"), b"1".to_vec(), false),
            ],
        }
    }
    fn storage(mut self, key: &str, data: Vec<u8>) -> Zip {
        self.members.push((format!("{}/data/{key}", self.prefix), data, false));
        self
    }
    fn member(mut self, name: &str, data: Vec<u8>, deflate: bool) -> Zip {
        self.members.retain(|m| m.0 != name);
        self.members.push((name.into(), data, deflate));
        self
    }
    fn bytes(self) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, deflate) in self.members {
            let method = if deflate {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn open_zip(zip: Zip) -> qload_formats::Result<WeightSource> {
    open_bytes("test.pth", zip.bytes(), &OpenOptions::default())
}

/// A dict with one tensor `w` of four f32 in storage "0".
fn one_tensor_pickle() -> Vec<u8> {
    P::new(2)
        .op(b"}(")
        .str("w")
        .tensor("FloatStorage", "0", 4, 0, &[2, 2], &[2, 1])
        .op(b"u")
        .stop()
}

#[test]
fn hand_built_zip_opens_with_any_prefix() {
    let src =
        open_zip(Zip::new("anything-at-all", one_tensor_pickle()).storage("0", f32_bytes(&[1., 2., 3., 4.]))).unwrap();
    let w = src.tensor("w").unwrap();
    assert_eq!((w.dtype, w.shape.clone()), (DType::F32, vec![2, 2]));
    assert_eq!(widen(DType::F32, src.tensor_bytes(w).unwrap()), vec![1., 2., 3., 4.]);
    assert_eq!(torch_details(&src).archive_prefix.as_deref(), Some("anything-at-all"));
}

#[test]
fn wrapper_key_is_stripped_and_values_are_recorded() {
    let pkl = P::new(2)
        .op(b"}(")
        .str("epoch")
        .int(3)
        .str("state_dict")
        .op(b"}(")
        .str("layer.weight")
        .tensor("FloatStorage", "0", 4, 0, &[4], &[1])
        .str("note")
        .str("hello")
        .op(b"u")
        .str("optimizer")
        .op(b"}")
        .op(b"u")
        .stop();
    let src = open_zip(Zip::new("ckpt", pkl).storage("0", f32_bytes(&[0.; 4]))).unwrap();
    assert!(src.tensor("layer.weight").is_some());
    let d = torch_details(&src);
    assert_eq!(d.stripped_wrapper.as_deref(), Some("state_dict"));
    let values: BTreeMap<&str, &str> = d.values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(values["epoch"], "3");
    assert_eq!(values["note"], "\"hello\"");
    assert_eq!(values["optimizer"], "{}");
}

#[test]
fn hqq_style_nested_dicts_are_flattened() {
    let pkl = P::new(2)
        .op(b"}(")
        .str("model.layers.0.mlp.down_proj")
        .op(b"}(")
        .str("W_q")
        .tensor("ByteStorage", "0", 8, 0, &[2, 4], &[4, 1])
        .str("meta")
        .op(b"}(")
        .str("scale")
        .tensor("HalfStorage", "1", 2, 0, &[2, 1], &[1, 1])
        .str("shape")
        .global("torch", "Size")
        .op(b"(")
        .ints(&[256, 128])
        .op(b"tR")
        .str("nbits")
        .int(4)
        .str("compute_dtype")
        .global("torch", "float16")
        .str("optimize")
        .op(b"\x88")
        .op(b"u")
        .op(b"u")
        .op(b"u")
        .stop();
    let src = open_zip(Zip::new("hqq", pkl).storage("0", vec![0; 8]).storage("1", vec![0; 4])).unwrap();
    let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.layers.0.mlp.down_proj.W_q",
            "model.layers.0.mlp.down_proj.meta.scale"
        ]
    );
    let d = torch_details(&src);
    assert_eq!(d.stripped_wrapper, None);
    let values: BTreeMap<&str, &str> = d.values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = "model.layers.0.mlp.down_proj.meta.";
    assert_eq!(values[format!("{p}shape").as_str()], "torch.Size([256, 128])");
    assert_eq!(values[format!("{p}nbits").as_str()], "4");
    assert_eq!(values[format!("{p}compute_dtype").as_str()], "dtype F16");
    assert_eq!(values[format!("{p}optimize").as_str()], "True");
}

#[test]
fn tensor_free_pickle_is_fine() {
    let pkl = P::new(2).op(b"}(").str("a").int(1).str("b").op(b"]").op(b"u").stop();
    let src = open_zip(Zip::new("x", pkl)).unwrap();
    assert!(src.tensors().is_empty());
    assert_eq!(torch_details(&src).values.len(), 2);
}

#[test]
fn parameters_and_protocol_4_tensors() {
    // Protocol 4 with FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL and
    // _rebuild_parameter around _rebuild_tensor_v2, plus _rebuild_from_type_v2.
    let inner = P(Vec::new()).tensor("BFloat16Storage", "k", 6, 2, &[2, 2], &[1, 2]).0;
    let mut body = P(Vec::new())
        .op(b"}\x94(")
        .op(b"\x8c\x01p")
        .op(b"\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_parameter\x94\x93\x94")
        .op(b"(")
        .op(&inner)
        .op(b"\x88")
        .global("collections", "OrderedDict")
        .op(b")Rt")
        .op(b"R")
        .op(b"\x8c\x01q")
        .global("torch._tensor", "_rebuild_from_type_v2")
        .op(b"(")
        .global("torch._utils", "_rebuild_tensor_v2")
        .global("torch.nn.parameter", "Parameter")
        .op(b"(")
        .op(b"(")
        .str("storage")
        .global("torch", "bfloat16")
        .str("k")
        .str("cpu")
        .int(6)
        .op(b"tQ")
        .int(0)
        .ints(&[2])
        .ints(&[1])
        .op(b"\x89")
        .global("collections", "OrderedDict")
        .op(b")R")
        .op(b"t")
        .op(b"}")
        .op(b"tR")
        .op(b"u")
        .0;
    body.push(b'.');
    let mut pkl = vec![0x80, 4, 0x95];
    pkl.extend_from_slice(&(body.len() as u64).to_le_bytes());
    pkl.extend_from_slice(&body);
    let src = open_zip(Zip::new("p4", pkl).storage("k", vec![0; 12])).unwrap();
    let p = src.tensor("p").unwrap();
    assert_eq!((p.dtype, p.shape.clone()), (DType::BF16, vec![2, 2]));
    assert_eq!(p.view.as_ref().unwrap().offset, 2);
    assert!(!p.is_contiguous());
    let q = src.tensor("q").unwrap();
    assert_eq!((q.shape.clone(), q.bytes.end - q.bytes.start), (vec![2], 4));
}

// ---------------------------------------------------------------------------
// Hostile pickles.

fn canary(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("qload-canary-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn assert_forbidden(bytes: &[u8], module: &str, name: &str) {
    match pickle::load(bytes) {
        Err(Error::ForbiddenGlobal { module: m, name: n }) => assert_eq!((m.as_str(), n.as_str()), (module, name)),
        other => panic!("expected ForbiddenGlobal {module}.{name}, got {other:?}"),
    }
    // The same pickle as a checkpoint's data.pkl is refused the same way.
    match open_zip(Zip::new("evil", bytes.to_vec())) {
        Err(Error::ForbiddenGlobal { module: m, .. }) => assert_eq!(m, module),
        other => panic!("expected ForbiddenGlobal from the archive, got {other:?}"),
    }
}

#[test]
fn forbidden_globals_are_refused_before_anything_runs() {
    let c = canary("global");
    let cmd = format!("touch {}", c.display());
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("nt", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("__builtin__", "eval"),
        ("subprocess", "Popen"),
        ("subprocess", "check_output"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("copyreg", "_reconstructor"),
        ("collections", "defaultdict"),
    ] {
        let bytes = P::new(2).global(module, name).str(&cmd).op(b"\x85R").stop();
        assert_forbidden(&bytes, module, name);
        // STACK_GLOBAL (protocol 4).
        let bytes = P::new(4)
            .str(module)
            .str(name)
            .op(b"\x93")
            .str(&cmd)
            .op(b"\x85R")
            .stop();
        assert_forbidden(&bytes, module, name);
    }
    assert!(!c.exists(), "canary {} was created", c.display());
}

#[test]
fn nested_forbidden_global_inside_reduce_args_is_refused() {
    let c = canary("nested");
    let cmd = format!("touch {}", c.display());
    // OrderedDict([(os.system(cmd), 1)]) and a tensor whose backward hooks call eval.
    let bytes = P::new(2)
        .global("collections", "OrderedDict")
        .op(b"(")
        .op(b"(")
        .global("os", "system")
        .str(&cmd)
        .op(b"\x85R")
        .int(1)
        .op(b"\x86")
        .op(b"l")
        .op(b"\x85R")
        .stop();
    assert_forbidden(&bytes, "os", "system");
    let bytes = P::new(2)
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b"((")
        .str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(1)
        .op(b"tQ")
        .int(0)
        .ints(&[1])
        .ints(&[1])
        .op(b"\x89")
        .global("builtins", "eval")
        .str("__import__('os').system('true')")
        .op(b"\x85R")
        .op(b"tR")
        .stop();
    assert_forbidden(&bytes, "builtins", "eval");
    assert!(!c.exists());
}

fn pickle_error(bytes: &[u8]) -> String {
    match pickle::load(bytes) {
        Err(e @ Error::Pickle { .. }) => e.to_string(),
        other => panic!("expected a pickle error, got {other:?}"),
    }
}

#[test]
fn instance_creating_opcodes_are_refused() {
    let c = canary("inst");
    // INST names its class inline: refused as an opcode, whatever the class.
    let inst = P::new(0)
        .op(b"(")
        .str(&format!("touch {}", c.display()))
        .op(b"ios\nsystem\n")
        .stop();
    assert!(pickle_error(&inst).contains("INST"));
    let inst = P::new(0).op(b"(icollections\nOrderedDict\n").stop();
    assert!(pickle_error(&inst).contains("INST"));
    // OBJ on an allowlisted class is refused by name; on another class at GLOBAL time.
    let obj = P::new(1).op(b"(").global("collections", "OrderedDict").op(b"o").stop();
    assert!(pickle_error(&obj).contains("OBJ"));
    let obj = P::new(1).op(b"(").global("os", "system").str("true").op(b"o").stop();
    assert!(matches!(pickle::load(&obj), Err(Error::ForbiddenGlobal { .. })));
    // NEWOBJ only builds the few allowlisted classes.
    let newobj = P::new(2).global("torch", "FloatStorage").op(b")\x81").stop();
    assert!(pickle_error(&newobj).contains("NEWOBJ of torch.FloatStorage"));
    let newobj = P::new(2).global("collections", "OrderedDict").op(b")\x81").stop();
    assert_eq!(pickle::load(&newobj).unwrap(), Value::Dict(vec![]));
    let newobj_ex = P::new(4).global("collections", "OrderedDict").op(b")}\x92").stop();
    assert!(pickle_error(&newobj_ex).contains("NEWOBJ_EX"));
    for (op, name) in [(0x82u8, "EXT1"), (0x83, "EXT2"), (0x84, "EXT4"), (0x97, "NEXT_BUFFER")] {
        let bytes = P::new(5).op(&[op, 1, 0, 0, 0]).stop();
        assert!(pickle_error(&bytes).contains(name), "{name}");
    }
    // An allowlisted class that is not a function is never called.
    let reduce = P::new(2).global("torch", "FloatStorage").op(b")R").stop();
    assert!(pickle_error(&reduce).contains("REDUCE of torch.FloatStorage"));
    assert!(!c.exists());
}

#[test]
fn oversized_and_missing_things_are_refused() {
    // LONG4 claiming 2^31 - 1 bytes: refused before reading or allocating.
    let e = pickle_error(&P::new(2).op(b"\x8b\xff\xff\xff\x7f").stop());
    assert!(e.contains("2147483647 bytes"), "{e}");
    // Strings longer than what is left.
    let e = pickle_error(&P::new(4).op(b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7f").stop());
    assert!(e.contains("truncated"), "{e}");
    let e = pickle_error(&P::new(2).op(b"X\xff\xff\xff\xffabc").stop());
    assert!(e.contains("truncated"), "{e}");
    // GET of a memo entry that was never stored.
    let e = pickle_error(&P::new(2).op(b"h\x05").stop());
    assert!(e.contains("memo entry 5"), "{e}");
    let e = pickle_error(&P::new(2).op(b"j\xff\xff\xff\xff").stop());
    assert!(e.contains("memo entry 4294967295"), "{e}");
    // Persistent ids that are not torch storages.
    let e = pickle_error(&P::new(2).str("anything").op(b"Q").stop());
    assert!(e.contains("not a torch storage"), "{e}");
    let e = pickle_error(&P::new(2).op(b"(").str("module").op(b"tQ").stop());
    assert!(e.contains("state_dict"), "{e}");
    // _codecs.encode with anything but latin1.
    let e = pickle_error(
        &P::new(2)
            .global("_codecs", "encode")
            .str("x")
            .str("rot13")
            .op(b"\x86R")
            .stop(),
    );
    assert!(e.contains("latin1"), "{e}");
}

#[test]
fn billion_laughs_hits_the_budget() {
    // l0 = [1]*10; l(n+1) = [ln]*10 through memo GETs, 30 levels: 10^30 leaves.
    let mut p = P::new(2).op(b"(").op(&b"K\x01".repeat(10)).op(b"lq\x00");
    for level in 1..30u8 {
        p = p.op(b"(");
        for _ in 0..10 {
            p = p.op(&[b'h', level - 1]);
        }
        p = p.op(&[b'l', b'q', level]);
    }
    let e = pickle_error(&p.stop());
    assert!(e.contains("too many values"), "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    let marks = P::new(2).op(&b"(".repeat(100_000)).stop();
    assert!(pickle_error(&marks).contains("nested MARKs"));
    // 100000 nested lists built without marks.
    let mut bytes = vec![0x80, 2];
    bytes.extend(std::iter::repeat_n(b']', 100_000));
    bytes.extend(std::iter::repeat_n(b'a', 99_999));
    bytes.push(b'.');
    assert!(pickle_error(&bytes).contains("nested deeper"));
}

#[test]
fn truncated_pickles_fail_at_every_byte() {
    let bytes = std::fs::read(fixtures().join("torch/tiny_f32_zip.pth")).unwrap();
    let m = qload_formats::archive::members(&bytes).unwrap();
    let pkl = m.iter().find(|m| m.name.ends_with("data.pkl")).unwrap();
    let pkl = &bytes[pkl.data.start as usize..pkl.data.end as usize];
    assert!(pickle::load(pkl).is_ok());
    for n in 0..pkl.len() {
        assert!(pickle::load(&pkl[..n]).is_err(), "prefix of {n} bytes");
    }
}

// ---------------------------------------------------------------------------
// Hostile archives.

fn zip_error(r: qload_formats::Result<WeightSource>) -> String {
    match r {
        Err(e @ Error::Zip { .. }) => e.to_string(),
        other => panic!("expected a zip error, got {other:?}"),
    }
}

#[test]
fn archive_problems_are_named() {
    let good = || Zip::new("a", one_tensor_pickle()).storage("0", f32_bytes(&[1., 2., 3., 4.]));
    assert!(open_zip(good()).is_ok());
    let e = zip_error(open_zip(good().member("a/../data.pkl", one_tensor_pickle(), false)));
    assert!(e.contains("unsafe path"), "{e}");
    let e = zip_error(open_zip(good().member("a/data/0", f32_bytes(&[1., 2., 3., 4.]), true)));
    assert!(e.contains("compressed"), "{e}");
    let e = zip_error(open_zip(Zip::new("a", one_tensor_pickle())));
    assert!(e.contains("no member \"a/data/0\""), "{e}");
    let e = zip_error(open_zip(good().member("a/byteorder", b"big".to_vec(), false)));
    assert!(e.contains("big-endian"), "{e}");
    let e = zip_error(open_zip(Zip::new("a", one_tensor_pickle()).storage("0", vec![0; 15])));
    assert!(e.contains("15 bytes"), "{e}");
    let e = zip_error(open_zip(good().member("b/data.pkl", one_tensor_pickle(), false)));
    assert!(e.contains("exactly one data.pkl"), "{e}");
    let e = zip_error(open_zip(good().member("a/data.pkl", one_tensor_pickle(), true)));
    assert!(e.contains("compressed"), "{e}");
    // A storage key that tries to leave the data folder.
    let pkl = P::new(2)
        .op(b"}(")
        .str("w")
        .tensor("FloatStorage", "../x", 1, 0, &[1], &[1])
        .op(b"u")
        .stop();
    let e = zip_error(open_zip(Zip::new("a", pkl)));
    assert!(e.contains("not a plain member name"), "{e}");
}

#[test]
fn views_outside_their_storage_are_refused() {
    for (offset, size, stride) in [
        (1, [2, 2], [2, 1]),
        (0, [2, 3], [2, 1]),
        (0, [2, 2], [3, 1]),
        (i32::MAX, [1, 1], [1, 1]),
    ] {
        let pkl = P::new(2)
            .op(b"}(")
            .str("w")
            .tensor("FloatStorage", "0", 4, offset, &size, &stride)
            .op(b"u")
            .stop();
        match open_zip(Zip::new("a", pkl).storage("0", f32_bytes(&[0.; 4]))) {
            Err(Error::InvalidShape { name, .. }) => assert_eq!(name, "w"),
            other => panic!("{offset} {size:?} {stride:?}: {other:?}"),
        }
    }
    // Negative sizes and strides, mismatched ranks.
    for (size, stride) in [(vec![-1], vec![1]), (vec![1], vec![-1]), (vec![2, 2], vec![1])] {
        let pkl = P::new(2)
            .op(b"}(")
            .str("w")
            .tensor("FloatStorage", "0", 4, 0, &size, &stride)
            .op(b"u")
            .stop();
        assert!(matches!(pickle::load(&pkl), Err(Error::Pickle { .. })));
    }
    // One storage used as two element types.
    let pkl = P::new(2)
        .op(b"}(")
        .str("a")
        .tensor("FloatStorage", "0", 4, 0, &[4], &[1])
        .str("b")
        .tensor("IntStorage", "0", 4, 0, &[4], &[1])
        .op(b"u")
        .stop();
    assert!(matches!(
        open_zip(Zip::new("a", pkl).storage("0", vec![0; 16])),
        Err(Error::Pickle { .. })
    ));
}

// ---------------------------------------------------------------------------
// Legacy streams.

fn legacy(sys_little: bool, version: i32, state: Vec<u8>, keys: &[&str], storages: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut out = P::new(2).op(b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19").stop();
    out.extend(P::new(2).int(version).stop());
    out.extend(
        P::new(2)
            .op(b"}(")
            .str("protocol_version")
            .int(1001)
            .str("little_endian")
            .op(if sys_little { b"\x88" } else { b"\x89" })
            .op(b"u")
            .stop(),
    );
    out.extend(state);
    out.extend(keys.iter().fold(P::new(2).op(b"]("), |p, k| p.str(k)).op(b"e").stop());
    for (count, data) in storages {
        out.extend(count.to_le_bytes());
        out.extend(data);
    }
    out
}

fn open_legacy(bytes: Vec<u8>) -> qload_formats::Result<WeightSource> {
    open_bytes("legacy.pth", bytes, &OpenOptions::default())
}

#[test]
fn legacy_streams() {
    let ok = legacy(
        true,
        1001,
        one_tensor_pickle(),
        &["0"],
        &[(4, f32_bytes(&[1., 2., 3., 4.]))],
    );
    let src = open_legacy(ok.clone()).unwrap();
    assert_eq!(
        widen(DType::F32, src.tensor_bytes(src.tensor("w").unwrap()).unwrap()),
        vec![1., 2., 3., 4.]
    );
    // Every strict prefix fails (the last storage is incomplete or missing).
    for n in (0..ok.len()).step_by(7) {
        assert!(open_legacy(ok[..n].to_vec()).is_err(), "{n}");
    }
    let e = open_legacy(legacy(false, 1001, one_tensor_pickle(), &["0"], &[(4, vec![0; 16])])).unwrap_err();
    assert!(
        matches!(e, Error::Pickle { .. }) && e.to_string().contains("big-endian"),
        "{e}"
    );
    let e = open_legacy(legacy(true, 1000, one_tensor_pickle(), &["0"], &[(4, vec![0; 16])])).unwrap_err();
    assert!(matches!(e, Error::UnsupportedVersion { version: 1000, .. }), "{e}");
    let e = open_legacy(legacy(true, 1001, one_tensor_pickle(), &["0"], &[(4, vec![0; 15])])).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    let e = open_legacy(legacy(true, 1001, one_tensor_pickle(), &["0"], &[(3, vec![0; 12])])).unwrap_err();
    assert!(e.to_string().contains("holds 3 elements"), "{e}");
    let e = open_legacy(legacy(true, 1001, one_tensor_pickle(), &["0"], &[(-1, vec![])])).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let e = open_legacy(legacy(true, 1001, one_tensor_pickle(), &[], &[])).unwrap_err();
    assert!(e.to_string().contains("missing from the storage key list"), "{e}");
    let e = open_legacy(legacy(
        true,
        1001,
        one_tensor_pickle(),
        &["0", "1"],
        &[(4, vec![0; 16])],
    ))
    .unwrap_err();
    assert!(e.to_string().contains("no tensor uses it"), "{e}");
}

#[test]
fn legacy_view_storages_are_windows_of_their_root() {
    // ('storage', FloatStorage, 'root', 'cpu', 6, ('view', 2, 3)): elements 2..5 of root.
    let pkl = P::new(2)
        .op(b"}(")
        .str("v")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b"((")
        .str("storage")
        .global("torch", "FloatStorage")
        .str("root")
        .str("cpu")
        .int(6)
        .op(b"(")
        .str("view")
        .int(2)
        .int(3)
        .op(b"ttQ")
        .int(1)
        .ints(&[2])
        .ints(&[1])
        .op(b"\x89")
        .global("collections", "OrderedDict")
        .op(b")RtR")
        .op(b"u")
        .stop();
    let src = open_legacy(legacy(
        true,
        1001,
        pkl,
        &["root"],
        &[(6, f32_bytes(&[0., 1., 2., 3., 4., 5.]))],
    ))
    .unwrap();
    let v = src.tensor("v").unwrap();
    assert_eq!(widen(DType::F32, src.tensor_bytes(v).unwrap()), vec![3., 4.]);
    assert_eq!(v.view.as_ref().unwrap().offset, 3);
}

// ---------------------------------------------------------------------------
// Robustness: truncation and byte flips never panic.

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn exercise(src: &WeightSource) {
    for t in src.tensors() {
        let _ = src.tensor_bytes(t);
        let _ = src.materialize(t);
    }
}

#[test]
fn truncated_and_flipped_fixtures_never_panic() {
    let files = [
        "torch/tiny_f16_zip.pth",
        "torch/tiny_f16_legacy.pth",
        "hqq/hqq_4bit_g64_axis1_f16.pt",
        "bitsandbytes/nf4_dq_bf16.bin",
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for f in files {
        let bytes = std::fs::read(fixtures().join(f)).unwrap();
        // Truncation at many offsets: always an error.
        let step = (bytes.len() / 150).max(1);
        for n in (0..bytes.len()).step_by(step) {
            assert!(
                open_bytes(f, bytes[..n].to_vec(), &OpenOptions::default()).is_err(),
                "{f} cut at {n}"
            );
        }
        // The pickles (the first few KiB hold the legacy pickles; data.pkl comes first in zips).
        let hot = bytes.len().min(4096);
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + xorshift(&mut rng) % 4 {
                let at = (xorshift(&mut rng) % hot as u64) as usize;
                b[at] ^= 1 << (xorshift(&mut rng) % 8);
            }
            if let Ok(src) = open_bytes(f, b, &OpenOptions::default()) {
                exercise(&src);
            }
        }
    }
}

#[test]
fn flipped_pickles_never_panic() {
    let bytes = std::fs::read(fixtures().join("torch/tiny_bf16_zip.pth")).unwrap();
    let m = qload_formats::archive::members(&bytes).unwrap();
    let pkl = m.iter().find(|m| m.name.ends_with("data.pkl")).unwrap();
    let pkl = bytes[pkl.data.start as usize..pkl.data.end as usize].to_vec();
    let mut rng = 42u64;
    for _ in 0..5000 {
        let mut b = pkl.clone();
        for _ in 0..1 + xorshift(&mut rng) % 3 {
            let at = (xorshift(&mut rng) % b.len() as u64) as usize;
            b[at] = xorshift(&mut rng) as u8;
        }
        let _ = pickle::load(&b);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = vec![0x80, 2];
            b.extend(body);
            let _ = pickle::load(&b);
        }

        #[test]
        fn opcode_soup_never_panics(ops in proptest::collection::vec(
            prop::sample::select(b"()tlde]}asuNKJ\x85\x86\x87\x88\x89hq012RQb\x8f\x90\x91\x94.".to_vec()), 0..120)) {
            let mut b = vec![0x80, 4];
            for op in ops {
                b.push(op);
                if matches!(op, b'K' | b'h' | b'q') {
                    b.push(0);
                } else if op == b'J' {
                    b.extend([1, 0, 0, 0]);
                }
            }
            let _ = pickle::load(&b);
        }
    }
}

#[test]
fn tensor_info_is_plain_data() {
    // The fields the loader relies on are public and comparable.
    let src = tiny("tiny_f32_zip.pth");
    let a: &TensorInfo = src.tensor("model.norm.weight").unwrap();
    assert_eq!(a.clone(), *a);
    assert_eq!(a.shape, vec![64]);
}

// ---------------------------------------------------------------------------
// CPython's own pickles of plain data, protocols 0-5
// (written by xtask/python/gen_pickle_protocols.py).

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The tagged JSON form the generator writes for the same object.
fn tag(v: &Value) -> serde_json::Value {
    use serde_json::json;
    let seq = |items: &[Value]| items.iter().map(tag).collect::<Vec<_>>();
    match v {
        Value::None => json!({ "none": null }),
        Value::Bool(b) => json!({ "bool": b }),
        Value::Int(i) => json!({ "int": i }),
        Value::BigInt(b) => json!({ "bigint": hex(b) }),
        Value::Float(f) => json!({ "float_bits": f.to_bits() }),
        Value::Str(s) => json!({ "str": s }),
        Value::Bytes(b) => json!({ "bytes": hex(b) }),
        Value::Tuple(items) => json!({ "tuple": seq(items) }),
        Value::List(items) => json!({ "list": seq(items) }),
        Value::Set(items) => json!({ "set": seq(items) }),
        Value::Dict(items) => json!({ "dict": items.iter().map(|(k, x)| json!([tag(k), tag(x)])).collect::<Vec<_>>() }),
        other => panic!("unexpected value in plain data: {other:?}"),
    }
}

#[test]
fn cpython_pickles_of_every_protocol() {
    let dir = fixtures().join("torch/pickles");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    for protocol in 0..=5 {
        let bytes = std::fs::read(dir.join(format!("plain_p{protocol}.pkl"))).unwrap();
        let value = pickle::load(&bytes).unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        let got = tag(&value);
        // Compare entry by entry for a readable failure.
        let (Some(g), Some(w)) = (got["dict"].as_array(), expected["value"]["dict"].as_array()) else {
            panic!("protocol {protocol}: not a dict");
        };
        assert_eq!(g.len(), w.len(), "protocol {protocol}");
        for (g, w) in g.iter().zip(w) {
            assert_eq!(g, w, "protocol {protocol}");
        }
    }
    let ba = pickle::load(&std::fs::read(dir.join("bytearray_p5.pkl")).unwrap()).unwrap();
    assert_eq!(ba, Value::Bytes(vec![1, 2]));
}
