//! GGUF metadata values. Scalars and strings are read eagerly; arrays stay in the
//! file and are read on demand, so a 262,144-entry token list costs one pass to
//! measure and no allocation per element.

use std::fmt;
use std::ops::Range;

use crate::cursor::Cursor;
use crate::error::{Error, Result};

/// Deepest array nesting accepted (real files use 1; nested arrays are rare).
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// Longest metadata key accepted.
pub const MAX_KEY_LEN: u64 = 1 << 16;

/// A GGUF metadata value type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type with id `id`.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size of one value of this type, for fixed-size types.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Lower-case name (`u32`, `string`, `array`…).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// An array, left in the file (see [`Array::iter`]).
    Array(Array),
    /// An array built in memory (for writing).
    OwnedArray(ValueType, Vec<Value>),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(_) | Value::OwnedArray(..) => ValueType::Array,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A JSON rendering; arrays longer than `max_items` show their first and last
    /// items (`max_items` = `usize::MAX` renders everything).
    pub fn to_json(&self, data: &[u8], max_items: usize) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::U8(v) => J::from(*v),
            Value::I8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::F32(v) => float_json(f64::from(*v)),
            Value::Bool(v) => J::from(*v),
            Value::String(s) => J::from(s.as_str()),
            Value::U64(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::F64(v) => float_json(*v),
            Value::Array(a) => a.to_json(data, max_items),
            Value::OwnedArray(_, items) => J::Array(items.iter().map(|v| v.to_json(data, max_items)).collect()),
        }
    }
}

fn float_json(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(v.to_string()))
}

/// An array value left in the file: element type, count and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    /// Element type.
    pub elem_type: ValueType,
    /// Number of elements.
    pub len: u64,
    /// Absolute byte range of the elements (after the type and count fields).
    pub bytes: Range<u64>,
}

impl Array {
    /// Iterates over the elements, reading them from `data` (the whole file).
    pub fn iter<'a>(&self, data: &'a [u8]) -> ArrayIter<'a> {
        ArrayIter {
            cursor: Cursor::at(data, self.bytes.start as usize),
            elem_type: self.elem_type,
            left: self.len,
        }
    }

    /// Reads element `index` (linear in `index` for string and nested arrays).
    pub fn get(&self, data: &[u8], index: u64) -> Option<Result<Value>> {
        if index >= self.len {
            return None;
        }
        if let Some(size) = self.elem_type.fixed_size() {
            let pos = self.bytes.start + index * size;
            let mut c = Cursor::at(data, pos as usize);
            return Some(read_scalar(&mut c, self.elem_type, ""));
        }
        self.iter(data).nth(index as usize)
    }

    fn to_json(&self, data: &[u8], max_items: usize) -> serde_json::Value {
        use serde_json::Value as J;
        let render = |r: Option<Result<Value>>| match r {
            Some(Ok(v)) => v.to_json(data, max_items),
            _ => J::Null,
        };
        if self.len as u128 <= max_items as u128 {
            return J::Array(self.iter(data).map(|v| render(Some(v))).collect());
        }
        let head = max_items / 2;
        let tail = max_items - head;
        let mut items: Vec<J> = self.iter(data).take(head).map(|v| render(Some(v))).collect();
        items.push(J::String(format!("... {} more ...", self.len - max_items as u64)));
        for i in self.len - tail as u64..self.len {
            items.push(render(self.get(data, i)));
        }
        J::Array(items)
    }
}

/// Iterator over an [`Array`]'s elements.
#[derive(Debug)]
pub struct ArrayIter<'a> {
    cursor: Cursor<'a>,
    elem_type: ValueType,
    left: u64,
}

impl Iterator for ArrayIter<'_> {
    type Item = Result<Value>;
    fn next(&mut self) -> Option<Result<Value>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let v = read_value(&mut self.cursor, self.elem_type, "", 2);
        if v.is_err() {
            self.left = 0;
        }
        Some(v)
    }
}

/// Reads a GGUF string (u64 length + bytes) with a length cap.
pub(crate) fn read_string(c: &mut Cursor<'_>, what: &'static str, max: u64) -> Result<String> {
    let at = c.pos() as u64;
    let len = c.u64(what)?;
    if len > max {
        return Err(Error::StringTooLong {
            what,
            offset: at,
            len,
            max,
        });
    }
    let bytes = c.take(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidUtf8 { what, offset: at + 8 })
}

fn read_scalar(c: &mut Cursor<'_>, t: ValueType, key: &str) -> Result<Value> {
    const W: &str = "metadata value";
    Ok(match t {
        ValueType::U8 => Value::U8(c.u8(W)?),
        ValueType::I8 => Value::I8(c.u8(W)? as i8),
        ValueType::U16 => Value::U16(c.u16(W)?),
        ValueType::I16 => Value::I16(c.u16(W)? as i16),
        ValueType::U32 => Value::U32(c.u32(W)?),
        ValueType::I32 => Value::I32(c.i32(W)?),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32(W)?)),
        ValueType::Bool => {
            let at = c.pos() as u64;
            match c.u8(W)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                value => {
                    return Err(Error::InvalidBool {
                        key: key.to_string(),
                        value,
                        offset: at,
                    });
                }
            }
        }
        ValueType::U64 => Value::U64(c.u64(W)?),
        ValueType::I64 => Value::I64(c.i64(W)?),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64(W)?)),
        ValueType::String => Value::String(read_string(c, "metadata string", c.remaining() as u64)?),
        ValueType::Array => return read_array(c, key, 1),
    })
}

/// Reads one value of type `t` at the cursor. Arrays are measured (and their
/// strings' UTF-8 checked) but not materialized.
pub(crate) fn read_value(c: &mut Cursor<'_>, t: ValueType, key: &str, depth: u32) -> Result<Value> {
    if t == ValueType::Array {
        read_array(c, key, depth)
    } else {
        read_scalar(c, t, key)
    }
}

fn read_array(c: &mut Cursor<'_>, key: &str, depth: u32) -> Result<Value> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(Error::NestingTooDeep {
            key: key.to_string(),
            max: MAX_ARRAY_DEPTH,
        });
    }
    let at = c.pos() as u64;
    let type_id = c.u32("array element type")?;
    let elem_type = ValueType::from_id(type_id).ok_or_else(|| Error::InvalidValueType {
        key: key.to_string(),
        type_id,
        offset: at,
    })?;
    let len = c.u64("array length")?;
    let start = c.pos() as u64;
    // Every element takes at least one byte (strings eight, arrays twelve): a count
    // beyond the remaining bytes is rejected before any work proportional to it.
    let min_size = elem_type
        .fixed_size()
        .unwrap_or(if elem_type == ValueType::String { 8 } else { 12 });
    let remaining = c.remaining() as u64;
    if len > remaining / min_size {
        return Err(Error::truncated(
            format!("array of {len} {} for key {key:?}", elem_type.name()),
            start,
            len.saturating_mul(min_size),
            start + remaining,
        ));
    }
    match elem_type.fixed_size() {
        Some(size) => {
            let bytes = c.take(len * size, "array elements")?;
            if elem_type == ValueType::Bool
                && let Some(pos) = bytes.iter().position(|&b| b > 1)
            {
                return Err(Error::InvalidBool {
                    key: key.to_string(),
                    value: bytes[pos],
                    offset: start + pos as u64,
                });
            }
        }
        None => {
            for _ in 0..len {
                match elem_type {
                    ValueType::String => {
                        let at = c.pos() as u64;
                        let n = c.u64("array string length")?;
                        let bytes = c.take(n, "array string")?;
                        if std::str::from_utf8(bytes).is_err() {
                            return Err(Error::InvalidUtf8 {
                                what: "array string",
                                offset: at + 8,
                            });
                        }
                    }
                    _ => {
                        read_array(c, key, depth + 1)?;
                    }
                }
            }
        }
    }
    Ok(Value::Array(Array {
        elem_type,
        len,
        bytes: start..c.pos() as u64,
    }))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Array(a) => write!(f, "[{}; {}]", a.elem_type.name(), a.len),
            Value::OwnedArray(t, items) => write!(f, "[{}; {}]", t.name(), items.len()),
        }
    }
}
