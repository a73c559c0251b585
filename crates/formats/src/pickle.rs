//! A restricted pickle reader for PyTorch checkpoints.
//!
//! A Python pickle is a program for a small stack machine; unpickling it in Python
//! can import any module and call any function. This module interprets the opcodes
//! of protocols 0–5 that plain data and `torch.save` use, resolves `GLOBAL` and
//! `STACK_GLOBAL` against a fixed allowlist ([`ALLOWLIST`]) and *interprets* the few
//! allowlisted callables (tensor and storage rebuilders, `OrderedDict`, `torch.Size`,
//! `set`, `_codecs.encode`) instead of calling anything. Nothing is ever imported,
//! evaluated or run. Any other global is refused with [`Error::ForbiddenGlobal`]
//! when it is named, before any `REDUCE`; any other opcode (`INST`, `OBJ`, `EXT*`,
//! `NEWOBJ_EX`, out-of-band buffers) with [`Error::Pickle`] naming the opcode.
//!
//! Limits bound the work and memory a hostile pickle can cause: stack size, mark
//! depth, memo entries, integer byte lengths, nesting depth of the result, and a
//! budget on the size of the result tree (shared references made with memo `GET`
//! are duplicated in the tree, so "billion laughs" pickles hit that budget).
//!
//! ```
//! use qload_formats::pickle::{self, Value};
//! // protocol 2: {'step': 7}
//! let bytes = b"\x80\x02}q\x00X\x04\x00\x00\x00stepq\x01K\x07s.";
//! let value = pickle::load(bytes)?;
//! assert_eq!(value, Value::Dict(vec![(Value::Str("step".into()), Value::Int(7))]));
//! # Ok::<(), qload_formats::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::cursor::Cursor;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Most values on the VM stack at once.
pub const MAX_STACK: usize = 1 << 20;
/// Most nested `MARK`s open at once.
pub const MAX_MARKS: usize = 1024;
/// Most memo entries.
pub const MAX_MEMO: usize = 1 << 20;
/// Longest integer accepted by `LONG1`/`LONG4`, in bytes (a 2048-bit number).
pub const MAX_LONG_BYTES: u64 = 256;
/// Deepest nesting of containers in the result.
pub const MAX_DEPTH: usize = 200;
/// Most dimensions of a tensor or `torch.Size`.
pub const MAX_DIMS: usize = 64;
/// Floor of the result-size budget; the budget is the larger of this and 16 times
/// the pickle's length (counted in nodes plus string bytes / 16).
pub const MIN_RESULT_BUDGET: u64 = 1 << 16;

/// The globals a pickle may name, as `(module, name)`. Everything else is refused.
pub const ALLOWLIST: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Tensor"),
    ("torch._tensor", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Size"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "DoubleStorage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
    ("torch", "ComplexFloatStorage"),
    ("torch", "UntypedStorage"),
    ("torch.storage", "UntypedStorage"),
    ("torch", "float32"),
    ("torch", "float"),
    ("torch", "float64"),
    ("torch", "double"),
    ("torch", "float16"),
    ("torch", "half"),
    ("torch", "bfloat16"),
    ("torch", "int64"),
    ("torch", "long"),
    ("torch", "int32"),
    ("torch", "int"),
    ("torch", "int16"),
    ("torch", "short"),
    ("torch", "int8"),
    ("torch", "uint8"),
    ("torch", "uint16"),
    ("torch", "uint32"),
    ("torch", "uint64"),
    ("torch", "bool"),
    ("torch", "complex64"),
    ("torch", "cfloat"),
    ("torch", "float8_e4m3fn"),
    ("torch", "float8_e5m2"),
    ("torch", "float8_e8m0fnu"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("_codecs", "encode"),
];

/// A value produced by the restricted unpickler.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A larger integer as minimal little-endian two's-complement bytes
    /// (at most [`MAX_LONG_BYTES`]).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// `bytes` or `bytearray` (and protocol-0/1 strings that are not UTF-8).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A `dict` or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `set` or `frozenset`.
    Set(Vec<Value>),
    /// A `torch.Size`.
    Size(Vec<u64>),
    /// A `torch.dtype` (or a storage class), as the element type it stands for.
    Dtype(DType),
    /// A storage named by a persistent id, not wrapped in a tensor.
    Storage(StorageRef),
    /// A tensor rebuilt (interpreted) from `_rebuild_tensor_v2` and friends.
    Tensor(Tensor),
    /// An allowlisted global that was named but not called, as `module.name`.
    Global(String),
}

/// A storage as a persistent id describes it:
/// `('storage', StorageType | dtype, key, location, numel[, view_metadata])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The key: `data/<key>` in a zip archive, a key of the legacy storage list.
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Device it was saved from (`"cpu"`, `"cuda:0"`, …).
    pub location: String,
    /// Elements in the storage.
    pub numel: u64,
    /// Legacy files only: this storage is a view of `key`.
    pub view: Option<LegacyView>,
}

/// The sixth field of a legacy persistent id: a view into a root storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyView {
    /// The view's own key.
    pub key: String,
    /// Its first element in the root storage.
    pub offset: u64,
    /// Its length in elements.
    pub numel: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    /// The storage.
    pub storage: StorageRef,
    /// Offset of the first element in the storage, in elements.
    pub offset: u64,
    /// Shape, outermost first.
    pub size: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// Whether it was saved as a parameter requiring gradients.
    pub requires_grad: bool,
}

impl Value {
    /// A short one-line rendering (at most about 80 characters), for listings.
    pub fn render_short(&self) -> String {
        let mut s = String::new();
        render(self, &mut s, 0);
        if s.chars().count() > 80 {
            s = s.chars().take(77).collect::<String>() + "...";
        }
        s
    }
}

fn render(v: &Value, out: &mut String, depth: usize) {
    use std::fmt::Write;
    if out.len() > 120 || depth > 4 {
        out.push('…');
        return;
    }
    let seq = |items: &[Value], open: &str, close: &str, out: &mut String| {
        out.push_str(open);
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if out.len() > 120 {
                out.push('…');
                break;
            }
            render(x, out, depth + 1);
        }
        out.push_str(close);
    };
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(b) => {
            let _ = write!(out, "<{}-byte int>", b.len());
        }
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Str(s) => {
            let short: String = s.chars().take(100).collect();
            let _ = write!(out, "{short:?}");
        }
        Value::Bytes(b) => {
            let short = String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned();
            let _ = write!(out, "b{short:?}");
        }
        Value::Tuple(items) => seq(items, "(", ")", out),
        Value::List(items) => seq(items, "[", "]", out),
        Value::Set(items) => seq(items, "{", "}", out),
        Value::Dict(items) => {
            out.push('{');
            for (i, (k, x)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if out.len() > 120 {
                    out.push('…');
                    break;
                }
                render(k, out, depth + 1);
                out.push_str(": ");
                render(x, out, depth + 1);
            }
            out.push('}');
        }
        Value::Size(d) => {
            let _ = write!(out, "torch.Size({d:?})");
        }
        Value::Dtype(d) => {
            let _ = write!(out, "dtype {d}");
        }
        Value::Storage(s) => {
            let _ = write!(out, "storage {:?} ({} x {})", s.key, s.numel, s.dtype);
        }
        Value::Tensor(t) => {
            let _ = write!(out, "tensor {} {:?}", t.storage.dtype, t.size);
        }
        Value::Global(g) => out.push_str(g),
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_short())
    }
}

/// Unpickles `bytes`, which must hold one pickle (trailing bytes are ignored).
pub fn load(bytes: &[u8]) -> Result<Value> {
    load_prefix(bytes).map(|(v, _)| v)
}

/// Unpickles the pickle at the start of `bytes` and returns it with the number of
/// bytes it took (up to and including `STOP`), for streams of several pickles.
pub fn load_prefix(bytes: &[u8]) -> Result<(Value, usize)> {
    let mut vm = Vm::new(bytes);
    let top = vm.run()?;
    let budget = (bytes.len() as u64).saturating_mul(16).max(MIN_RESULT_BUDGET);
    let mut conv = Convert {
        nodes: &vm.nodes,
        budget,
    };
    let value = conv.value(&top, 0)?;
    Ok((value, vm.cur.pos()))
}

// ---------------------------------------------------------------------------
// The VM.

/// A value on the VM stack. Containers live in an arena so that memo `GET`s and
/// later mutation (`EMPTY_DICT`, `BINPUT`, …, `SETITEMS`) share them as in Python.
#[derive(Debug, Clone)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Big(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Node(usize),
    Size(Rc<[u64]>),
    Dtype(DType),
    Storage(Rc<StorageRef>),
    Tensor(Rc<Tensor>),
    Global(Global),
}

#[derive(Debug)]
enum Node {
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>, HashMap<Key, usize>),
    Set(Vec<V>),
}

/// Hashable identity of a dict key (keys of other kinds are never merged).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Unique(usize),
}

/// An allowlisted global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorClass(&'static str),
    Size,
    StorageClass(DType, &'static str),
    Set,
    FrozenSet,
    CodecsEncode,
}

impl Global {
    fn name(self) -> &'static str {
        match self {
            Global::OrderedDict => "collections.OrderedDict",
            Global::RebuildTensor => "torch._utils._rebuild_tensor",
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2",
            Global::RebuildParameter => "torch._utils._rebuild_parameter",
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state",
            Global::RebuildFromTypeV2 => "torch._tensor._rebuild_from_type_v2",
            Global::TensorClass(n) => n,
            Global::Size => "torch.Size",
            Global::StorageClass(_, n) => n,
            Global::Set => "builtins.set",
            Global::FrozenSet => "builtins.frozenset",
            Global::CodecsEncode => "_codecs.encode",
        }
    }
}

/// The element type a `torch.<name>` dtype stands for.
fn torch_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "float32" | "float" => DType::F32,
        "float64" | "double" => DType::F64,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        "complex64" | "cfloat" => DType::C64,
        "float8_e4m3fn" => DType::F8E4M3,
        "float8_e5m2" => DType::F8E5M2,
        "float8_e8m0fnu" => DType::F8E8M0,
        _ => return None,
    })
}

/// Resolves a global against the allowlist.
fn resolve(module: &str, name: &str) -> Option<V> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch._tensor", "Tensor") => Global::TensorClass("torch.Tensor"),
        ("torch.nn.parameter", "Parameter") => Global::TensorClass("torch.nn.parameter.Parameter"),
        ("torch", "Size") => Global::Size,
        ("torch", "FloatStorage") => Global::StorageClass(DType::F32, "torch.FloatStorage"),
        ("torch", "HalfStorage") => Global::StorageClass(DType::F16, "torch.HalfStorage"),
        ("torch", "BFloat16Storage") => Global::StorageClass(DType::BF16, "torch.BFloat16Storage"),
        ("torch", "DoubleStorage") => Global::StorageClass(DType::F64, "torch.DoubleStorage"),
        ("torch", "LongStorage") => Global::StorageClass(DType::I64, "torch.LongStorage"),
        ("torch", "IntStorage") => Global::StorageClass(DType::I32, "torch.IntStorage"),
        ("torch", "ShortStorage") => Global::StorageClass(DType::I16, "torch.ShortStorage"),
        ("torch", "CharStorage") => Global::StorageClass(DType::I8, "torch.CharStorage"),
        ("torch", "ByteStorage") => Global::StorageClass(DType::U8, "torch.ByteStorage"),
        ("torch", "BoolStorage") => Global::StorageClass(DType::Bool, "torch.BoolStorage"),
        ("torch", "ComplexFloatStorage") => Global::StorageClass(DType::C64, "torch.ComplexFloatStorage"),
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => {
            Global::StorageClass(DType::U8, "torch.storage.UntypedStorage")
        }
        ("builtins" | "__builtin__", "set") => Global::Set,
        ("builtins" | "__builtin__", "frozenset") => Global::FrozenSet,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", dtype) => return torch_dtype(dtype).map(V::Dtype),
        _ => return None,
    };
    Some(V::Global(g))
}

struct Vm<'a> {
    data: &'a [u8],
    cur: Cursor<'a>,
    /// Offset of the opcode being executed (for errors).
    op_at: usize,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
    nodes: Vec<Node>,
    /// Container elements created so far (bounded by the input length).
    items: u64,
    unique_keys: usize,
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "an unknown opcode",
    }
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8]) -> Self {
        Vm {
            data,
            cur: Cursor::new(data),
            op_at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            nodes: Vec::new(),
            items: 0,
            unique_keys: 0,
        }
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Pickle {
            offset: self.op_at as u64,
            reason: reason.into(),
        }
    }

    fn short(&self, n: u64, what: &str) -> Error {
        Error::Pickle {
            offset: self.op_at as u64,
            reason: format!(
                "{what} needs {n} bytes but only {} are left in the pickle (truncated?)",
                self.cur.remaining()
            ),
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let r = self.cur.take(n, what);
        r.map_err(|_| self.short(n, what))
    }

    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let r = self.cur.array::<N>(what);
        r.map_err(|_| self.short(N as u64, what))
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        let r = self.cur.u8(what);
        r.map_err(|_| self.short(1, what))
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let r = self.cur.u16(what);
        r.map_err(|_| self.short(2, what))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let r = self.cur.u32(what);
        r.map_err(|_| self.short(4, what))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let r = self.cur.i32(what);
        r.map_err(|_| self.short(4, what))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let r = self.cur.u64(what);
        r.map_err(|_| self.short(8, what))
    }

    /// A text argument ending with `\n` (protocol 0), without the newline.
    fn line(&mut self, what: &str) -> Result<&'a [u8]> {
        let rest = self.data.get(self.cur.pos()..).unwrap_or(&[]);
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err(format!(
                "{what}: no end of line before the end of the pickle (truncated?)"
            )));
        };
        let line = self.take(n as u64, what)?;
        let r = self.cur.skip(1, what);
        r.map_err(|_| self.short(1, what))?;
        Ok(line)
    }

    fn line_str(&mut self, what: &str) -> Result<&'a str> {
        let line = self.line(what)?;
        std::str::from_utf8(line).map_err(|_| self.err(format!("{what} is not valid text")))
    }

    fn push(&mut self, v: V) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.err(format!("stack holds more than {MAX_STACK} values")));
        }
        self.stack.push(v);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<V> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top_mut(&mut self) -> Result<&mut V> {
        let floor = self.floor();
        let len = self.stack.len();
        if len <= floor {
            return Err(self.err("stack underflow"));
        }
        let at = self.op_at;
        self.stack.last_mut().ok_or(Error::Pickle {
            offset: at as u64,
            reason: "stack underflow".into(),
        })
    }

    fn pop_mark(&mut self) -> Result<Vec<V>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err("no MARK to pop to"));
        };
        if mark > self.stack.len() {
            return Err(self.err("MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn count_items(&mut self, n: usize) -> Result<()> {
        self.items = self.items.saturating_add(n as u64).saturating_add(1);
        // Every element is pushed by at least one opcode byte; more means a bug or abuse.
        let cap = (self.data.len() as u64).saturating_mul(2).saturating_add(1024);
        if self.items > cap {
            return Err(self.err(format!("more than {cap} container elements")));
        }
        Ok(())
    }

    fn node(&mut self, node: Node) -> Result<V> {
        let n = match &node {
            Node::Tuple(v) | Node::List(v) | Node::Set(v) => v.len(),
            Node::Dict(v, _) => v.len(),
        };
        self.count_items(n)?;
        self.nodes.push(node);
        Ok(V::Node(self.nodes.len() - 1))
    }

    fn tuple(&mut self, items: Vec<V>) -> Result<V> {
        self.node(Node::Tuple(items))
    }

    fn key_of(&mut self, v: &V) -> Key {
        match v {
            V::None => Key::None,
            V::Bool(b) => Key::Int(i64::from(*b)),
            V::Int(i) => Key::Int(*i),
            V::Str(s) => Key::Str(s.clone()),
            V::Bytes(b) => Key::Bytes(b.clone()),
            _ => {
                self.unique_keys += 1;
                Key::Unique(self.unique_keys)
            }
        }
    }

    fn memo_put(&mut self, index: u64, v: V) -> Result<()> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.err(format!("memo holds more than {MAX_MEMO} entries")));
        }
        self.memo.insert(index, v);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<()> {
        let Some(v) = self.memo.get(&index).cloned() else {
            return Err(self.err(format!("memo entry {index} was never stored")));
        };
        self.push(v)
    }

    /// Appends `items` to the list or set on top of the stack.
    fn extend_top(&mut self, items: Vec<V>, set: bool) -> Result<()> {
        self.count_items(items.len())?;
        let top = self.top_mut()?.clone();
        let V::Node(id) = top else {
            return Err(self.err(if set {
                "ADDITEMS to something that is not a set"
            } else {
                "APPEND(S) to something that is not a list"
            }));
        };
        match (self.nodes.get_mut(id), set) {
            (Some(Node::List(v)), false) | (Some(Node::Set(v)), true) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.err(if set {
                "ADDITEMS to something that is not a set"
            } else {
                "APPEND(S) to something that is not a list"
            })),
        }
    }

    fn set_items(&mut self, flat: Vec<V>) -> Result<()> {
        if !flat.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        self.count_items(flat.len() / 2)?;
        let top = self.top_mut()?.clone();
        let V::Node(id) = top else {
            return Err(self.err("SETITEM(S) on something that is not a dict"));
        };
        let mut keys = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            if let Some(k) = pair.first() {
                keys.push(self.key_of(k));
            }
        }
        let Some(Node::Dict(items, index)) = self.nodes.get_mut(id) else {
            return Err(self.err("SETITEM(S) on something that is not a dict"));
        };
        let mut flat = flat.into_iter();
        for key in keys {
            let (Some(k), Some(v)) = (flat.next(), flat.next()) else {
                break;
            };
            match index.get(&key) {
                Some(&i) => {
                    if let Some(slot) = items.get_mut(i) {
                        slot.1 = v;
                    }
                }
                None => {
                    index.insert(key, items.len());
                    items.push((k, v));
                }
            }
        }
        Ok(())
    }

    fn new_dict(&mut self, flat: Vec<V>) -> Result<V> {
        let d = self.node(Node::Dict(Vec::new(), HashMap::new()))?;
        self.push(d.clone())?;
        self.set_items(flat)?;
        self.pop()?;
        Ok(d)
    }

    fn int_arg(&self, v: &V, what: &str) -> Result<i64> {
        match v {
            V::Int(i) => Ok(*i),
            V::Bool(b) => Ok(i64::from(*b)),
            _ => Err(self.err(format!("{what} is not an integer"))),
        }
    }

    fn uint_arg(&self, v: &V, what: &str) -> Result<u64> {
        let i = self.int_arg(v, what)?;
        u64::try_from(i).map_err(|_| self.err(format!("{what} is negative ({i})")))
    }

    fn str_arg(&self, v: &V, what: &str) -> Result<Rc<str>> {
        match v {
            V::Str(s) => Ok(s.clone()),
            _ => Err(self.err(format!("{what} is not a string"))),
        }
    }

    /// The elements of a tuple or list value.
    fn seq_arg(&self, v: &V, what: &str) -> Result<Vec<V>> {
        match v {
            V::Node(id) => match self.nodes.get(*id) {
                Some(Node::Tuple(items) | Node::List(items)) => Ok(items.clone()),
                _ => Err(self.err(format!("{what} is not a tuple"))),
            },
            _ => Err(self.err(format!("{what} is not a tuple"))),
        }
    }

    fn dims_arg(&self, v: &V, what: &str) -> Result<Vec<u64>> {
        if let V::Size(d) = v {
            return Ok(d.to_vec());
        }
        let items = self.seq_arg(v, what)?;
        if items.len() > MAX_DIMS {
            return Err(self.err(format!(
                "{what} has {} dimensions; at most {MAX_DIMS} are allowed",
                items.len()
            )));
        }
        items.iter().map(|x| self.uint_arg(x, what)).collect()
    }

    fn tensor_arg(&self, v: &V, what: &str) -> Result<Rc<Tensor>> {
        match v {
            V::Tensor(t) => Ok(t.clone()),
            _ => Err(self.err(format!("{what} is not a tensor"))),
        }
    }

    /// Interprets a persistent id (`BINPERSID`): only torch storages are accepted.
    fn persistent_load(&mut self, pid: V) -> Result<V> {
        let fields = match &pid {
            V::Node(_) => self.seq_arg(&pid, "persistent id")?,
            V::Str(s) => {
                return Err(self.err(format!("persistent id {s:?} is not a torch storage tuple")));
            }
            _ => return Err(self.err("persistent id is not a torch storage tuple")),
        };
        let kind = match fields.first() {
            Some(V::Str(s)) => s.clone(),
            _ => return Err(self.err("persistent id does not start with a string")),
        };
        if &*kind == "module" {
            return Err(self.err(
                "the checkpoint pickles a whole nn.Module (with its source code), which cannot be loaded without running it; save and load model.state_dict() instead",
            ));
        }
        if &*kind != "storage" {
            return Err(self.err(format!("persistent id of kind {kind:?}; only 'storage' is supported")));
        }
        let [_, ty, key, location, numel, rest @ ..] = fields.as_slice() else {
            return Err(self.err(format!(
                "storage persistent id has {} fields; expected ('storage', type, key, location, numel[, view])",
                fields.len()
            )));
        };
        let dtype = match ty {
            V::Global(Global::StorageClass(d, _)) | V::Dtype(d) => *d,
            V::Global(g) => {
                return Err(self.err(format!("storage type {} is not a storage class", g.name())));
            }
            _ => return Err(self.err("storage type is not a storage class or dtype")),
        };
        let key = match key {
            V::Str(s) => s.to_string(),
            V::Int(i) => i.to_string(),
            _ => return Err(self.err("storage key is not a string")),
        };
        let location = match location {
            V::Str(s) => s.to_string(),
            _ => return Err(self.err("storage location is not a string")),
        };
        let numel = self.uint_arg(numel, "storage element count")?;
        let view = match rest {
            [] | [V::None] => None,
            [meta] => {
                let m = self.seq_arg(meta, "storage view metadata")?;
                let [vkey, off, n] = m.as_slice() else {
                    return Err(self.err("storage view metadata is not (key, offset, numel)"));
                };
                Some(LegacyView {
                    key: self.str_arg(vkey, "view key")?.to_string(),
                    offset: self.uint_arg(off, "view offset")?,
                    numel: self.uint_arg(n, "view element count")?,
                })
            }
            _ => return Err(self.err("storage persistent id has too many fields")),
        };
        Ok(V::Storage(Rc::new(StorageRef {
            key,
            dtype,
            location,
            numel,
            view,
        })))
    }

    /// Interprets a call of an allowlisted global (`REDUCE`, `NEWOBJ`).
    fn call(&mut self, func: &V, args: &V, how: &str) -> Result<V> {
        let V::Global(g) = func else {
            return Err(self.err(format!("{how} of something that is not an allowlisted callable")));
        };
        let args = self.seq_arg(args, "arguments")?;
        match g {
            Global::OrderedDict => match args.as_slice() {
                [] => self.new_dict(Vec::new()),
                [pairs] => {
                    let mut flat = Vec::new();
                    for p in self.seq_arg(pairs, "OrderedDict items")? {
                        let kv = self.seq_arg(&p, "OrderedDict item")?;
                        let [k, v] = kv.as_slice() else {
                            return Err(self.err("OrderedDict item is not a pair"));
                        };
                        flat.push(k.clone());
                        flat.push(v.clone());
                    }
                    self.new_dict(flat)
                }
                _ => Err(self.err("OrderedDict called with more than one argument")),
            },
            Global::RebuildTensor | Global::RebuildTensorV2 => {
                let (storage, offset, size, stride, grad) = match (g, args.as_slice()) {
                    (Global::RebuildTensor, [s, o, z, t]) => (s, o, z, t, None),
                    (Global::RebuildTensorV2, [s, o, z, t, r, _hooks] | [s, o, z, t, r, _hooks, _]) => {
                        (s, o, z, t, Some(r))
                    }
                    _ => {
                        return Err(self.err(format!("{} called with {} arguments", g.name(), args.len())));
                    }
                };
                let V::Storage(storage) = storage else {
                    return Err(self.err(format!("{}: first argument is not a storage", g.name())));
                };
                let offset = self.uint_arg(offset, "storage offset")?;
                let size = self.dims_arg(size, "tensor size")?;
                let stride = self.dims_arg(stride, "tensor stride")?;
                if size.len() != stride.len() {
                    return Err(self.err(format!(
                        "tensor size {size:?} and stride {stride:?} have different lengths"
                    )));
                }
                let requires_grad = match grad {
                    Some(r) => self.int_arg(r, "requires_grad")? != 0,
                    None => false,
                };
                Ok(V::Tensor(Rc::new(Tensor {
                    storage: (**storage).clone(),
                    offset,
                    size,
                    stride,
                    requires_grad,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let (data, grad) = match (g, args.as_slice()) {
                    (Global::RebuildParameter, [d, r, _]) => (d, r),
                    (Global::RebuildParameterWithState, [d, r, _, _]) => (d, r),
                    _ => {
                        return Err(self.err(format!("{} called with {} arguments", g.name(), args.len())));
                    }
                };
                let mut t = (*self.tensor_arg(data, "parameter data")?).clone();
                t.requires_grad = self.int_arg(grad, "requires_grad")? != 0;
                Ok(V::Tensor(Rc::new(t)))
            }
            Global::RebuildFromTypeV2 => {
                let [func, new_type, inner, _state] = args.as_slice() else {
                    return Err(self.err(format!("{} called with {} arguments", g.name(), args.len())));
                };
                match func {
                    V::Global(
                        Global::RebuildTensor
                        | Global::RebuildTensorV2
                        | Global::RebuildParameter
                        | Global::RebuildParameterWithState,
                    ) => {}
                    _ => {
                        return Err(self.err(format!("{}: the function is not a tensor rebuilder", g.name())));
                    }
                }
                if !matches!(new_type, V::Global(Global::TensorClass(_))) {
                    return Err(self.err(format!("{}: the type is not torch.Tensor or Parameter", g.name())));
                }
                let t = self.call(func, inner, how)?;
                self.tensor_arg(&t, "rebuilt value")?;
                Ok(t)
            }
            Global::Size => {
                let [dims] = args.as_slice() else {
                    return Err(self.err("torch.Size called with other than one argument"));
                };
                let dims = self.dims_arg(dims, "torch.Size")?;
                Ok(V::Size(dims.into()))
            }
            Global::Set | Global::FrozenSet => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [V::Node(id)] => match self.nodes.get(*id) {
                        Some(Node::Tuple(v) | Node::List(v) | Node::Set(v)) => v.clone(),
                        _ => return Err(self.err("set() of something that is not a sequence")),
                    },
                    _ => return Err(self.err("set() of something that is not a sequence")),
                };
                self.node(Node::Set(items))
            }
            Global::CodecsEncode => {
                let [V::Str(s), V::Str(enc)] = args.as_slice() else {
                    return Err(self.err("_codecs.encode is only accepted as encode(str, 'latin1')"));
                };
                if !matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") {
                    return Err(self.err(format!("_codecs.encode with encoding {enc:?}; only latin1 is accepted")));
                }
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    let Ok(b) = u8::try_from(u32::from(c)) else {
                        return Err(self.err("_codecs.encode: character outside latin1"));
                    };
                    out.push(b);
                }
                Ok(V::Bytes(out.into()))
            }
            Global::TensorClass(_) | Global::StorageClass(..) => {
                Err(self.err(format!("{how} of {} is not supported", g.name())))
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match resolve(module, name) {
            Some(v) => self.push(v),
            None => Err(Error::ForbiddenGlobal {
                module: module.chars().take(200).collect(),
                name: name.chars().take(200).collect(),
            }),
        }
    }

    fn int_from_le(&self, bytes: &[u8]) -> V {
        if bytes.is_empty() {
            return V::Int(0);
        }
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let fill = if negative { 0xff } else { 0 };
        // Strip redundant sign bytes.
        let mut n = bytes.len();
        while n > 1 {
            let (Some(&last), Some(&prev)) = (bytes.get(n - 1), bytes.get(n - 2)) else {
                break;
            };
            if last == fill && (prev & 0x80 != 0) == negative {
                n -= 1;
            } else {
                break;
            }
        }
        let bytes = bytes.get(..n).unwrap_or(bytes);
        if n <= 8 {
            let mut buf = [fill; 8];
            for (d, s) in buf.iter_mut().zip(bytes) {
                *d = *s;
            }
            V::Int(i64::from_le_bytes(buf))
        } else {
            V::Big(bytes.into())
        }
    }

    fn string_value(&self, bytes: &[u8]) -> V {
        match std::str::from_utf8(bytes) {
            Ok(s) => V::Str(s.into()),
            Err(_) => V::Bytes(bytes.into()),
        }
    }

    fn run(&mut self) -> Result<V> {
        loop {
            self.op_at = self.cur.pos();
            let Ok(op) = self.u8("opcode") else {
                return Err(self.err("the pickle ends without STOP (truncated?)"));
            };
            match op {
                0x80 => {
                    let p = self.u8("PROTO")?;
                    if p > 5 {
                        return Err(self.err(format!("pickle protocol {p} is not supported (0-5 are)")));
                    }
                }
                0x95 => {
                    self.u64("FRAME length")?;
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.err(format!("more than {MAX_MARKS} nested MARKs")));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    if self.stack.len() > self.floor() {
                        self.pop()?;
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top_mut()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(V::None)?,
                0x88 => self.push(V::Bool(true))?,
                0x89 => self.push(V::Bool(false))?,
                b'I' => {
                    let line = self.line_str("INT")?;
                    let v = match line {
                        "00" => V::Bool(false),
                        "01" => V::Bool(true),
                        s => V::Int(
                            s.trim_end_matches('L')
                                .parse()
                                .map_err(|_| self.err(format!("INT {s:?} is not an i64")))?,
                        ),
                    };
                    self.push(v)?;
                }
                b'L' => {
                    let line = self.line_str("LONG")?;
                    let s = line.trim_end_matches('L');
                    let v = match s.parse::<i64>() {
                        Ok(i) => V::Int(i),
                        Err(_) => {
                            let le = decimal_to_le(s).ok_or_else(|| {
                                self.err(format!(
                                    "LONG {:?} is not an integer of at most {MAX_LONG_BYTES} bytes",
                                    s.chars().take(40).collect::<String>()
                                ))
                            })?;
                            self.int_from_le(&le)
                        }
                    };
                    self.push(v)?;
                }
                b'J' => {
                    let i = self.i32("BININT")?;
                    self.push(V::Int(i64::from(i)))?;
                }
                b'K' => {
                    let i = self.u8("BININT1")?;
                    self.push(V::Int(i64::from(i)))?;
                }
                b'M' => {
                    let i = self.u16("BININT2")?;
                    self.push(V::Int(i64::from(i)))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.u8("LONG1 length")?)
                    } else {
                        let n = self.i32("LONG4 length")?;
                        u64::try_from(n).map_err(|_| self.err("LONG4 with a negative length"))?
                    };
                    if n > MAX_LONG_BYTES {
                        return Err(self.err(format!(
                            "{} integer of {n} bytes; at most {MAX_LONG_BYTES} are accepted",
                            opcode_name(op)
                        )));
                    }
                    let bytes = self.take(n, opcode_name(op))?;
                    let v = self.int_from_le(bytes);
                    self.push(v)?;
                }
                b'F' => {
                    let s = self.line_str("FLOAT")?;
                    let f: f64 = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("FLOAT {s:?} is not a number")))?;
                    self.push(V::Float(f))?;
                }
                b'G' => {
                    let f = f64::from_be_bytes(self.arr("BINFLOAT")?);
                    self.push(V::Float(f))?;
                }
                b'S' => {
                    let line = self.line("STRING")?;
                    let bytes =
                        unquote(line).ok_or_else(|| self.err("STRING is not a quoted Python string literal"))?;
                    let v = self.string_value(&bytes);
                    self.push(v)?;
                }
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = self.i32("BINSTRING length")?;
                        u64::try_from(n).map_err(|_| self.err("BINSTRING with a negative length"))?
                    } else {
                        u64::from(self.u8("SHORT_BINSTRING length")?)
                    };
                    let bytes = self.take(n, opcode_name(op))?;
                    let v = self.string_value(bytes);
                    self.push(v)?;
                }
                b'V' => {
                    let line = self.line("UNICODE")?;
                    let s = raw_unicode_unescape(line).ok_or_else(|| self.err("UNICODE has an invalid escape"))?;
                    self.push(V::Str(s.into()))?;
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u64::from(self.u32("BINUNICODE length")?),
                        0x8c => u64::from(self.u8("SHORT_BINUNICODE length")?),
                        _ => self.u64("BINUNICODE8 length")?,
                    };
                    let bytes = self.take(n, opcode_name(op))?;
                    let s = std::str::from_utf8(bytes)
                        .map_err(|_| self.err(format!("{} is not valid UTF-8", opcode_name(op))))?;
                    self.push(V::Str(s.into()))?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u64::from(self.u32("BINBYTES length")?),
                        b'C' => u64::from(self.u8("SHORT_BINBYTES length")?),
                        _ => self.u64("BINBYTES8 length")?,
                    };
                    let bytes = self.take(n, opcode_name(op))?;
                    self.push(V::Bytes(bytes.into()))?;
                }
                b')' => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let floor = self.floor();
                    if self.stack.len() < floor + n {
                        return Err(self.err("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                b']' => {
                    let l = self.node(Node::List(Vec::new()))?;
                    self.push(l)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.node(Node::List(items))?;
                    self.push(l)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], false)?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, false)?;
                }
                b'}' => {
                    let d = self.new_dict(Vec::new())?;
                    self.push(d)?;
                }
                b'd' => {
                    let flat = self.pop_mark()?;
                    let d = self.new_dict(flat)?;
                    self.push(d)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let flat = self.pop_mark()?;
                    self.set_items(flat)?;
                }
                0x8f => {
                    let s = self.node(Node::Set(Vec::new()))?;
                    self.push(s)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, true)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let s = self.node(Node::Set(items))?;
                    self.push(s)?;
                }
                b'p' => {
                    let s = self.line_str("PUT")?;
                    let i: u64 = s
                        .parse()
                        .map_err(|_| self.err(format!("PUT index {s:?} is not a number")))?;
                    let v = self.top_mut()?.clone();
                    self.memo_put(i, v)?;
                }
                b'q' => {
                    let i = u64::from(self.u8("BINPUT index")?);
                    let v = self.top_mut()?.clone();
                    self.memo_put(i, v)?;
                }
                b'r' => {
                    let i = u64::from(self.u32("LONG_BINPUT index")?);
                    let v = self.top_mut()?.clone();
                    self.memo_put(i, v)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    let v = self.top_mut()?.clone();
                    self.memo_put(i, v)?;
                }
                b'g' => {
                    let s = self.line_str("GET")?;
                    let i: u64 = s
                        .parse()
                        .map_err(|_| self.err(format!("GET index {s:?} is not a number")))?;
                    self.memo_get(i)?;
                }
                b'h' => {
                    let i = u64::from(self.u8("BINGET index")?);
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = u64::from(self.u32("LONG_BINGET index")?);
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line_str("GLOBAL module")?;
                    let name = self.line_str("GLOBAL name")?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (V::Str(module), V::Str(name)) = (module, name) else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args, "REDUCE")?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match cls {
                        V::Global(Global::OrderedDict | Global::Set | Global::FrozenSet | Global::Size) => {
                            let v = self.call(&cls, &args, "NEWOBJ")?;
                            self.push(v)?;
                        }
                        V::Global(g) => {
                            return Err(self.err(format!("NEWOBJ of {} is not supported", g.name())));
                        }
                        _ => {
                            return Err(self.err("NEWOBJ of something that is not an allowlisted class"));
                        }
                    }
                }
                b'b' => {
                    let _state = self.pop()?;
                    let obj = self.top_mut()?.clone();
                    let ok = match obj {
                        // OrderedDict state (`_metadata`) and tensor state (Parameter
                        // attributes) are not needed to locate the weights.
                        V::Node(id) => matches!(self.nodes.get(id), Some(Node::Dict(..))),
                        V::Tensor(_) => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(self.err("BUILD on something that is not a dict or tensor"));
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v)?;
                }
                b'P' => {
                    let s = self.line_str("PERSID")?;
                    let v = self.persistent_load(V::Str(s.into()))?;
                    self.push(v)?;
                }
                other => {
                    let name = opcode_name(other);
                    let why = match other {
                        b'i' | b'o' | 0x92 => "it creates instances of arbitrary classes",
                        0x82..=0x84 => "extension registry lookups can name arbitrary classes",
                        0x97 | 0x98 => "out-of-band buffers are not used by checkpoints",
                        _ => "it is not a pickle opcode of protocols 0-5",
                    };
                    return Err(self.err(format!("opcode {name} (0x{other:02x}) is refused: {why}")));
                }
            }
        }
    }
}

/// A decimal integer as little-endian two's-complement bytes, or `None` when it is
/// malformed or longer than [`MAX_LONG_BYTES`].
fn decimal_to_le(s: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    // 2.41 decimal digits per byte: anything longer cannot fit.
    if digits.is_empty() || digits.len() as u64 > MAX_LONG_BYTES * 5 / 2 {
        return None;
    }
    let mut mag: Vec<u8> = vec![0];
    for c in digits.bytes() {
        let d = c.checked_sub(b'0').filter(|&d| d < 10)?;
        let mut carry = u32::from(d);
        for byte in mag.iter_mut() {
            let x = u32::from(*byte) * 10 + carry;
            *byte = (x & 0xff) as u8;
            carry = x >> 8;
        }
        if carry > 0 {
            mag.push(carry as u8);
        }
    }
    // Room for the sign bit.
    mag.push(0);
    if negative {
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let x = u16::from(!*byte) + carry;
            *byte = (x & 0xff) as u8;
            carry = x >> 8;
        }
    }
    (mag.len() as u64 <= MAX_LONG_BYTES + 1).then_some(mag)
}

/// Decodes a protocol-0 `STRING` argument: a quoted Python literal with escapes.
fn unquote(line: &[u8]) -> Option<Vec<u8>> {
    let (&q, rest) = line.split_first()?;
    if q != b'\'' && q != b'"' {
        return None;
    }
    let (&end, body) = rest.split_last()?;
    if end != q {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.iter().copied();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next()? {
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'x' => {
                let h = [it.next()?, it.next()?];
                let s = std::str::from_utf8(&h).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes a protocol-0 `UNICODE` argument (`raw-unicode-escape`).
fn raw_unicode_unescape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        if b == b'\\' {
            let width = match line.get(i + 1) {
                Some(b'u') => 4,
                Some(b'U') => 8,
                _ => 0,
            };
            if width > 0 {
                let hex = line.get(i + 2..i + 2 + width)?;
                let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(char::from_u32(code)?);
                i += 2 + width;
                continue;
            }
        }
        out.push(char::from(b));
        i += 1;
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// From the VM's shared graph to an owned tree.

struct Convert<'n> {
    nodes: &'n [Node],
    budget: u64,
}

impl Convert<'_> {
    fn spend(&mut self, cost: u64) -> Result<()> {
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| Error::Pickle {
            offset: 0,
            reason: "the pickle expands to too many values (shared references repeated too often); refusing".into(),
        })?;
        Ok(())
    }

    fn seq(&mut self, items: &[V], depth: usize) -> Result<Vec<Value>> {
        items.iter().map(|x| self.value(x, depth + 1)).collect()
    }

    fn value(&mut self, v: &V, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(Error::Pickle {
                offset: 0,
                reason: format!("values nested deeper than {MAX_DEPTH} levels (or a container that contains itself)"),
            });
        }
        self.spend(1)?;
        Ok(match v {
            V::None => Value::None,
            V::Bool(b) => Value::Bool(*b),
            V::Int(i) => Value::Int(*i),
            V::Big(b) => {
                self.spend(b.len() as u64 / 16)?;
                Value::BigInt(b.to_vec())
            }
            V::Float(f) => Value::Float(*f),
            V::Str(s) => {
                self.spend(s.len() as u64 / 16)?;
                Value::Str(s.to_string())
            }
            V::Bytes(b) => {
                self.spend(b.len() as u64 / 16)?;
                Value::Bytes(b.to_vec())
            }
            V::Size(d) => {
                self.spend(d.len() as u64)?;
                Value::Size(d.to_vec())
            }
            V::Dtype(d) => Value::Dtype(*d),
            V::Storage(s) => {
                self.spend(s.key.len() as u64 / 16 + 1)?;
                Value::Storage((**s).clone())
            }
            V::Tensor(t) => {
                self.spend(t.size.len() as u64 * 2 + t.storage.key.len() as u64 / 16 + 1)?;
                Value::Tensor((**t).clone())
            }
            V::Global(g) => Value::Global(g.name().to_string()),
            V::Node(id) => match self.nodes.get(*id) {
                Some(Node::Tuple(items)) => Value::Tuple(self.seq(items, depth)?),
                Some(Node::List(items)) => Value::List(self.seq(items, depth)?),
                Some(Node::Set(items)) => Value::Set(self.seq(items, depth)?),
                Some(Node::Dict(items, _)) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (k, x) in items {
                        out.push((self.value(k, depth + 1)?, self.value(x, depth + 1)?));
                    }
                    Value::Dict(out)
                }
                None => {
                    return Err(Error::Pickle {
                        offset: 0,
                        reason: "internal: dangling container reference".into(),
                    });
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn allowlist_resolves_and_nothing_else_does() {
        for (m, n) in ALLOWLIST {
            assert!(resolve(m, n).is_some(), "{m}.{n}");
        }
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_device_tensor_from_numpy"),
            ("collections", "defaultdict"),
        ] {
            assert!(resolve(m, n).is_none(), "{m}.{n}");
        }
    }

    #[test]
    fn protocol_0_text_opcodes() {
        // pickle.dumps({'a': [1, 2.5, 'x', u'\u00e9', None, True]}, protocol=0)
        let p = b"(dp0\nVa\np1\n(lp2\nI1\naF2.5\naS'x'\np3\naV\\u00e9\np4\naNaI01\nas.";
        let v = load(p).unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![(
                s("a"),
                Value::List(vec![
                    Value::Int(1),
                    Value::Float(2.5),
                    s("x"),
                    s("é"),
                    Value::None,
                    Value::Bool(true)
                ])
            )])
        );
    }

    #[test]
    fn memo_shares_mutated_containers() {
        // d = {}; l = [d, d]; d['k'] = 1  (the dict is memoized before it is filled)
        let p = b"\x80\x02](}q\x00U\x01kK\x01sh\x00e.";
        let v = load(p).unwrap();
        let d = Value::Dict(vec![(s("k"), Value::Int(1))]);
        assert_eq!(v, Value::List(vec![d.clone(), d]));
    }

    #[test]
    fn long_integers() {
        assert_eq!(load(b"\x80\x02\x8a\x01\xff.").unwrap(), Value::Int(-1));
        assert_eq!(load(b"\x80\x02\x8a\x02\xff\x00.").unwrap(), Value::Int(255));
        assert_eq!(load(b"\x80\x02\x8a\x00.").unwrap(), Value::Int(0));
        let big = load(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.").unwrap();
        assert_eq!(
            big,
            Value::BigInt(vec![0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])
        );
        let err = load(b"\x80\x02\x8b\x00\x00\x00\x80.").unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
        let err = load(b"\x80\x02\x8b\xff\xff\xff\x7f.").unwrap_err().to_string();
        assert!(err.contains("LONG4 integer of 2147483647 bytes"), "{err}");
    }

    #[test]
    fn text_longs_of_any_size() {
        assert_eq!(load(b"L-5L\n.").unwrap(), Value::Int(-5));
        // 2**70 and -(2**70)
        assert_eq!(
            load(b"L1180591620717411303424L\n.").unwrap(),
            Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40])
        );
        assert_eq!(
            load(b"L-1180591620717411303424L\n.").unwrap(),
            Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0xc0])
        );
        // -(2**63) fits.
        assert_eq!(load(b"L-9223372036854775808L\n.").unwrap(), Value::Int(i64::MIN));
        assert!(load(format!("L{}L\n.", "9".repeat(700)).as_bytes()).is_err());
        assert!(load(b"L12x4L\n.").is_err());
    }

    #[test]
    fn python2_and_8_byte_length_strings() {
        assert_eq!(load(b"\x80\x04\x8d\x02\0\0\0\0\0\0\0hi.").unwrap(), s("hi"));
        assert_eq!(
            load(b"\x80\x04\x8e\x01\0\0\0\0\0\0\0\xff.").unwrap(),
            Value::Bytes(vec![0xff])
        );
        assert_eq!(load(b"U\x02ab.").unwrap(), s("ab"));
        assert_eq!(load(b"T\x01\0\0\0\xff.").unwrap(), Value::Bytes(vec![0xff]));
        assert_eq!(load(b"S'a\\n\\x41\\'b'\n.").unwrap(), s("a\nA'b"));
        assert!(load(b"S'unterminated\n.").is_err());
        assert!(load(b"T\xff\xff\xff\xff.").is_err());
    }

    #[test]
    fn codecs_encode_gives_bytes() {
        let p = b"\x80\x02c_codecs\nencode\nX\x04\x00\x00\x00ab\xc3\xa9X\x06\x00\x00\x00latin1\x86R.";
        assert_eq!(load(p).unwrap(), Value::Bytes(vec![b'a', b'b', 0xe9]));
        let p = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-7\x86R.";
        assert!(load(p).is_err());
    }

    #[test]
    fn sets_and_frozensets() {
        let p = b"\x80\x04\x8f(K\x01K\x02\x90.";
        assert_eq!(load(p).unwrap(), Value::Set(vec![Value::Int(1), Value::Int(2)]));
        let p = b"\x80\x04(K\x01\x91.";
        assert_eq!(load(p).unwrap(), Value::Set(vec![Value::Int(1)]));
    }

    #[test]
    fn torch_size_and_dtype() {
        let p = b"\x80\x02ctorch\nSize\nK\x02K\x03\x86\x85R.";
        assert_eq!(load(p).unwrap(), Value::Size(vec![2, 3]));
        let p = b"\x80\x02ctorch\nbfloat16\n.";
        assert_eq!(load(p).unwrap(), Value::Dtype(DType::BF16));
    }

    #[test]
    fn self_containing_list_is_refused() {
        // l = []; l.append(l)
        let p = b"\x80\x02]q\x00h\x00a.";
        let err = load(p).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn pop_and_pop_mark() {
        let p = b"\x80\x02K\x01(K\x02K\x031K\x040.";
        assert_eq!(load(p).unwrap(), Value::Int(1));
        assert!(load(b"\x80\x02(K\x01t0\x85.").is_err());
    }

    #[test]
    fn underflow_below_mark_is_an_error() {
        let err = load(b"\x80\x02K\x01(\x85.").unwrap_err().to_string();
        assert!(err.contains("underflow"), "{err}");
        assert!(load(b"\x80\x02.").is_err());
        assert!(load(b"").is_err());
    }

    #[test]
    fn unknown_and_refused_opcodes_are_named() {
        let err = load(b"\x80\x02\xff.").unwrap_err().to_string();
        assert!(err.contains("0xff"), "{err}");
        let err = load(b"\x80\x02\x82\x01.").unwrap_err().to_string();
        assert!(err.contains("EXT1"), "{err}");
        let err = load(b"\x80\x06.").unwrap_err().to_string();
        assert!(err.contains("protocol 6"), "{err}");
    }

    #[test]
    fn render_is_short() {
        let long = Value::List((0..1000).map(Value::Int).collect());
        assert!(long.render_short().chars().count() <= 80);
        assert_eq!(Value::Size(vec![2, 3]).to_string(), "torch.Size([2, 3])");
    }
}
