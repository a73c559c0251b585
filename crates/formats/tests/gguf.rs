//! GGUF reader and writer: round trips, every error variant from bytes, truncation
//! and corruption never panic.

use qload_formats::gguf::{GgufWriter, Value, ValueType};
use qload_formats::{DType, Error, GgmlFlavor, OpenOptions, WeightSource, open_bytes};

fn open(bytes: Vec<u8>) -> Result<WeightSource, Error> {
    open_bytes("test.gguf", bytes, &OpenOptions::default())
}

fn tensor_bytes(w: &GgufWriter, i: usize) -> Vec<u8> {
    let n = w.tensors()[i].nbytes as usize;
    (0..n).map(|k| (k * 31 + i * 7) as u8).collect()
}

fn write(w: &GgufWriter) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(&mut out, |i, sink| sink.write_all(&tensor_bytes(w, i)))
        .unwrap();
    out
}

/// A small valid file with every metadata value type and a few tensor types.
fn sample() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into())).unwrap();
    w.set("u8", Value::U8(200)).unwrap();
    w.set("i8", Value::I8(-100)).unwrap();
    w.set("u16", Value::U16(60000)).unwrap();
    w.set("i16", Value::I16(-30000)).unwrap();
    w.set("u32", Value::U32(4_000_000_000)).unwrap();
    w.set("i32", Value::I32(-2_000_000_000)).unwrap();
    w.set("f32", Value::F32(1.5)).unwrap();
    w.set("bool", Value::Bool(true)).unwrap();
    w.set("u64", Value::U64(u64::MAX)).unwrap();
    w.set("i64", Value::I64(i64::MIN)).unwrap();
    w.set("f64", Value::F64(-2.25)).unwrap();
    w.set(
        "strings",
        Value::OwnedArray(
            ValueType::String,
            (0..100).map(|i| Value::String(format!("tok{i}"))).collect(),
        ),
    )
    .unwrap();
    w.set(
        "nested",
        Value::OwnedArray(
            ValueType::Array,
            vec![
                Value::OwnedArray(ValueType::I32, vec![Value::I32(1), Value::I32(2)]),
                Value::OwnedArray(ValueType::I32, vec![]),
            ],
        ),
    )
    .unwrap();
    w.set("empty", Value::OwnedArray(ValueType::U8, vec![])).unwrap();
    w.add_tensor("tok_embd.weight", DType::F32, &[3, 8]).unwrap();
    w.add_tensor("blk.0.attn_q.weight", DType::Q4K, &[2, 256]).unwrap();
    w.add_tensor("blk.0.ffn_down.weight", DType::Q8_0, &[4, 96]).unwrap();
    w.add_tensor("norm", DType::F16, &[5]).unwrap();
    w.add_tensor("scalar", DType::I32, &[]).unwrap();
    w
}

#[test]
fn writes_and_reads_back() {
    let w = sample();
    let bytes = write(&w);
    assert_eq!(bytes.len() as u64, w.file_size().unwrap());
    let src = open(bytes.clone()).unwrap();
    assert_eq!(src.tensors().len(), 5);
    let q = src.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dtype, DType::Q4K);
    assert_eq!(q.shape, vec![2, 256]);
    assert_eq!(q.ggml_ne(), vec![256, 2]);
    assert_eq!(q.byte_len(), 2 * 144);
    assert_eq!(q.bytes.start % 32, 0);
    for (i, t) in src.tensors().iter().enumerate() {
        assert_eq!(
            src.tensor_bytes(t).unwrap(),
            tensor_bytes(&w, i).as_slice(),
            "{}",
            t.name
        );
    }
    let qload_formats::Details::Gguf(headers) = src.details() else {
        panic!()
    };
    let h = &headers[0];
    assert_eq!(h.version, 3);
    assert_eq!(h.get("u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(h.get("i8"), Some(&Value::I8(-100)));
    assert_eq!(h.get("bool"), Some(&Value::Bool(true)));
    let Some(Value::Array(strings)) = h.get("strings") else {
        panic!()
    };
    assert_eq!(strings.len, 100);
    let items: Vec<Value> = strings.iter(&bytes).map(Result::unwrap).collect();
    assert_eq!(items[42], Value::String("tok42".into()));
    assert_eq!(strings.get(&bytes, 99).unwrap().unwrap(), Value::String("tok99".into()));
    let Some(Value::Array(nested)) = h.get("nested") else {
        panic!()
    };
    let inner: Vec<Value> = nested.iter(&bytes).map(Result::unwrap).collect();
    let Value::Array(first) = &inner[0] else { panic!() };
    assert_eq!(
        first.iter(&bytes).map(Result::unwrap).collect::<Vec<_>>(),
        vec![Value::I32(1), Value::I32(2)]
    );
    assert!(h.ggml_compat_problems(src.tensors(), bytes.len() as u64).is_empty());
    // Rewriting from the parsed header reproduces the file byte for byte.
    let mut again = GgufWriter::from_header(h, &bytes).unwrap();
    for t in src.tensors() {
        again.add_tensor(&t.name, t.dtype, &t.shape).unwrap();
    }
    let mut out = Vec::new();
    again
        .write(&mut out, |i, sink| {
            sink.write_all(src.tensor_bytes(&src.tensors()[i]).unwrap())
        })
        .unwrap();
    assert_eq!(out, bytes);
}

#[test]
fn version_2_and_alignment() {
    let mut w = sample().version(2).unwrap();
    w.set("general.alignment", Value::U32(64)).unwrap();
    let bytes = write(&w);
    let src = open(bytes).unwrap();
    for t in src.tensors() {
        assert_eq!(t.bytes.start % 64, 0, "{}", t.name);
    }
    let qload_formats::Details::Gguf(h) = src.details() else {
        panic!()
    };
    assert_eq!((h[0].version, h[0].alignment), (2, 64));
}

#[test]
fn writer_refuses_what_ggml_cannot_read() {
    let mut w = GgufWriter::new();
    assert!(matches!(
        w.add_tensor(&"x".repeat(64), DType::F32, &[1]),
        Err(Error::NameTooLong { .. })
    ));
    assert!(matches!(
        w.add_tensor("x", DType::F32, &[1, 1, 1, 1, 1]),
        Err(Error::TooManyDims { .. })
    ));
    assert!(matches!(
        w.add_tensor("x", DType::Q4K, &[2, 100]),
        Err(Error::InvalidShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("x", DType::I2S, &[128]),
        Err(Error::Write { .. })
    ));
    w.add_tensor("x", DType::F32, &[1]).unwrap();
    assert!(matches!(
        w.add_tensor("x", DType::F32, &[1]),
        Err(Error::DuplicateTensor { .. })
    ));
    assert!(matches!(
        w.set("general.alignment", Value::U32(48)),
        Err(Error::BadAlignment { .. })
    ));
    let mut short = Vec::new();
    let r = w.write(&mut short, |_, sink| sink.write_all(&[0, 0]));
    assert!(matches!(r, Err(Error::Write { .. })));
}

// ---- hostile and broken files, built field by field ----

struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&n_tensors.to_le_bytes());
        v.extend_from_slice(&n_kv.to_le_bytes());
        Raw(v)
    }
    fn u32(mut self, x: u32) -> Raw {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn u64(mut self, x: u64) -> Raw {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A tensor info: name, dims (ne order), type, offset.
    fn tensor(self, name: &str, ne: &[u64], ty: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(ne.len() as u32);
        for &d in ne {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(mut self, n: usize) -> Vec<u8> {
        let padded = self.0.len().div_ceil(32) * 32;
        self.0.resize(padded + n, 0x11);
        self.0
    }
}

#[test]
fn each_error_variant_from_bytes() {
    use Error::*;
    type Case = (&'static str, Vec<u8>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        ("empty", vec![], |e| matches!(e, Empty)),
        ("v1", Raw::new(1, 0, 0).data(0), |e| {
            matches!(e, UnsupportedVersion { version: 1, .. })
        }),
        (
            "big endian",
            Raw::new(3u32.swap_bytes(), 0, 0).data(0),
            |e| matches!(e, UnsupportedVersion { hint, .. } if hint.contains("big-endian")),
        ),
        ("2^40 tensors", Raw::new(3, 1 << 40, 0).data(64), |e| {
            matches!(e, TooMany { what: "tensor", .. })
        }),
        ("2^40 kv", Raw::new(3, 0, 1 << 40).data(64), |e| {
            matches!(
                e,
                TooMany {
                    what: "metadata entry",
                    ..
                }
            )
        }),
        ("2^60 key", Raw::new(3, 0, 1).u64(1 << 60).data(64), |e| {
            matches!(e, StringTooLong { .. })
        }),
        (
            "2^60 string value",
            Raw::new(3, 0, 1).str("k").u32(8).u64(1 << 60).data(0),
            |e| matches!(e, StringTooLong { .. } | Truncated { .. }),
        ),
        (
            "2^62 array",
            Raw::new(3, 0, 1).str("k").u32(9).u32(0).u64(1 << 62).data(64),
            |e| matches!(e, Truncated { .. }),
        ),
        (
            "2^62 string array",
            Raw::new(3, 0, 1).str("k").u32(9).u32(8).u64(1 << 62).data(64),
            |e| matches!(e, Truncated { .. }),
        ),
        (
            "bad utf8 key",
            Raw::new(3, 0, 1).u64(2).bytes(&[0xff, 0xfe]).u32(0).bytes(&[1]).data(0),
            |e| matches!(e, InvalidUtf8 { .. }),
        ),
        ("value type 13", Raw::new(3, 0, 1).str("k").u32(13).data(8), |e| {
            matches!(e, InvalidValueType { type_id: 13, .. })
        }),
        ("bool 2", Raw::new(3, 0, 1).str("k").u32(7).bytes(&[2]).data(0), |e| {
            matches!(e, InvalidBool { value: 2, .. })
        }),
        (
            "bool array 5",
            Raw::new(3, 0, 1).str("k").u32(9).u32(7).u64(2).bytes(&[1, 5]).data(0),
            |e| matches!(e, InvalidBool { value: 5, .. }),
        ),
        (
            "deep nesting",
            {
                let mut r = Raw::new(3, 0, 1).str("k").u32(9);
                for _ in 0..20 {
                    r = r.u32(9).u64(1);
                }
                r.u32(0).u64(0).data(64)
            },
            |e| matches!(e, NestingTooDeep { .. }),
        ),
        (
            "duplicate key",
            Raw::new(3, 0, 2)
                .str("k")
                .u32(0)
                .bytes(&[1])
                .str("k")
                .u32(0)
                .bytes(&[2])
                .data(0),
            |e| matches!(e, DuplicateKey { .. }),
        ),
        (
            "alignment 48",
            Raw::new(3, 0, 1).str("general.alignment").u32(4).u32(48).data(0),
            |e| matches!(e, BadAlignment { alignment: 48 }),
        ),
        (
            "alignment as string",
            Raw::new(3, 0, 1).str("general.alignment").u32(8).str("32").data(0),
            |e| matches!(e, WrongValueType { .. }),
        ),
        (
            "type 200",
            Raw::new(3, 1, 0).tensor("t", &[32], 200, 0).data(128),
            |e| matches!(e, UnknownGgmlType { type_id: 200, .. }),
        ),
        (
            "upstream 36",
            Raw::new(3, 1, 0).tensor("t", &[32], 33, 0).data(128),
            |e| matches!(e, UnknownGgmlType { type_id: 33, .. }),
        ),
        (
            "5 dims",
            Raw::new(3, 1, 0).tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(64),
            |e| matches!(e, TooManyDims { n_dims: 5, .. }),
        ),
        (
            "overflowing shape",
            Raw::new(3, 1, 0).tensor("t", &[1 << 40, 1 << 40], 0, 0).data(64),
            |e| matches!(e, InvalidShape { .. }),
        ),
        (
            "q4_k row of 100",
            Raw::new(3, 1, 0).tensor("t", &[100, 2], 12, 0).data(512),
            |e| matches!(e, InvalidShape { .. }),
        ),
        ("misaligned", Raw::new(3, 1, 0).tensor("t", &[4], 0, 8).data(64), |e| {
            matches!(e, Misaligned { offset: 8, .. })
        }),
        (
            "out of bounds",
            Raw::new(3, 1, 0).tensor("t", &[64], 0, 0).data(100),
            |e| matches!(e, TensorOutOfBounds { len: 256, .. }),
        ),
        (
            "offset overflow",
            Raw::new(3, 1, 0).tensor("t", &[8], 0, u64::MAX - 31).data(64),
            |e| matches!(e, TensorOutOfBounds { .. }),
        ),
        (
            "overlap",
            Raw::new(3, 2, 0)
                .tensor("a", &[16], 0, 0)
                .tensor("b", &[16], 0, 32)
                .data(128),
            |e| matches!(e, Overlap { .. }),
        ),
        (
            "duplicate tensor",
            Raw::new(3, 2, 0)
                .tensor("a", &[8], 0, 0)
                .tensor("a", &[8], 0, 32)
                .data(64),
            |e| matches!(e, DuplicateTensor { .. }),
        ),
        ("truncated header", Raw::new(3, 1, 0).bytes(&[5, 0]).0, |e| {
            matches!(e, Truncated { .. })
        }),
    ];
    for (what, bytes, check) in cases {
        match open(bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(check(&e), "{what}: unexpected error {e:?}"),
        }
    }
}

#[test]
fn bitnet_ids_are_decided_per_file() {
    // Id 36 exists only in the BitNet fork: I2_S, n/4 + 32 bytes.
    let n: u64 = 256 * 128;
    let bytes = Raw::new(3, 1, 1)
        .str("general.architecture")
        .u32(8)
        .str("bitnet-b1.58")
        .tensor("blk.0.ffn_up.weight", &[256, 128], 36, 0)
        .data((n / 4 + 32) as usize);
    let src = open(bytes.clone()).unwrap();
    assert_eq!(src.tensors()[0].dtype, DType::I2S);
    assert_eq!(src.tensors()[0].byte_len(), n / 4 + 32);
    assert!(src.notes().iter().any(|n| n.contains("BitNet")), "{:?}", src.notes());
    // Forcing upstream numbering makes the same file unreadable, by name.
    let forced = OpenOptions {
        ggml_flavor: Some(GgmlFlavor::Upstream),
        ..Default::default()
    };
    assert!(matches!(
        open_bytes("x.gguf", bytes, &forced),
        Err(Error::UnknownGgmlType { type_id: 36, .. })
    ));

    // Id 39 alone: MXFP4 (17 bytes per 32) unless the sizes or metadata say TL2.
    let mxfp4 = Raw::new(3, 1, 1)
        .str("general.architecture")
        .u32(8)
        .str("gpt-oss")
        .tensor("w", &[256, 256], 39, 0)
        .data(256 * 256 / 32 * 17);
    let src = open(mxfp4).unwrap();
    assert_eq!(src.tensors()[0].dtype, DType::MXFP4);
    let tl2_len = DType::TL2.nbytes(&[256, 512]).unwrap() as usize;
    let tl2 = Raw::new(3, 1, 1)
        .str("general.file_type")
        .u32(4)
        .u32(40)
        .tensor("w", &[512, 256], 39, 0)
        .data(tl2_len);
    let src = open(tl2).unwrap();
    assert_eq!(src.tensors()[0].dtype, DType::TL2);
    assert!(src.notes()[0].contains("TL2"), "{:?}", src.notes());
}

#[test]
fn truncation_at_every_header_byte_is_an_error() {
    let bytes = write(&sample());
    let src = open(bytes.clone()).unwrap();
    let data_start = src.tensors().iter().map(|t| t.bytes.start).min().unwrap() as usize;
    let last_end = src.tensors().iter().map(|t| t.bytes.end).max().unwrap() as usize;
    for cut in 0..last_end {
        let r = open(bytes[..cut].to_vec());
        assert!(
            r.is_err(),
            "truncated at {cut} of {} (data at {data_start}) was accepted",
            bytes.len()
        );
    }
    // Cut inside the final padding: readable, but validate's layout check flags it.
    let cut = last_end;
    if cut < bytes.len() {
        let src = open(bytes[..cut].to_vec()).unwrap();
        let qload_formats::Details::Gguf(h) = src.details() else {
            panic!()
        };
        let problems = h[0].ggml_compat_problems(src.tensors(), cut as u64);
        assert!(problems.iter().any(|p| p.contains("truncated")), "{problems:?}");
    }
}

#[test]
fn random_corruption_never_panics() {
    let bytes = write(&sample());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let pos = (next() % b.len() as u64) as usize;
            b[pos] = next() as u8;
        }
        if let Ok(src) = open(b) {
            for t in src.tensors() {
                let _ = src.tensor_bytes(t).unwrap();
            }
            if let qload_formats::Details::Gguf(h) = src.details() {
                for kv in &h[0].metadata {
                    let _ = kv.value.to_json(src.files()[0].bytes(), 4);
                }
            }
        }
    }
}

#[test]
fn missing_and_unreadable_paths_are_io_errors() {
    let e = qload_formats::open("/definitely/not/here.gguf").unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path.ends_with("here.gguf")),
        "{e}"
    );
    assert!(e.to_string().contains("here.gguf"));
}
