//! Format detection from a file's first bytes, never from its name.

use crate::source::Format;

/// What the first bytes say about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// A supported format (for zip archives, the caller tells PyTorch from NPZ by
    /// the member names).
    Format(Format),
    /// A zip archive: a PyTorch checkpoint or an NPZ, decided by its members.
    Zip,
    /// Not supported; a description of what it looks like.
    Unknown(String),
}

/// The magic prefix of a legacy `torch.save` stream: PROTO 2, then LONG1 with the
/// 10-byte magic number 0x1950a86a20f9469cfc6c.
pub const TORCH_LEGACY_MAGIC: &[u8] = &[
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// Classifies `head` (the first bytes of a file; 512 are plenty) of a file of `len` bytes.
pub fn detect(head: &[u8], len: u64) -> Detected {
    if head.is_empty() {
        return Detected::Unknown("an empty file".into());
    }
    if head.starts_with(b"GGUF") {
        return Detected::Format(Format::Gguf);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Detected::Format(Format::Npy);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Detected::Zip;
    }
    if head.starts_with(TORCH_LEGACY_MAGIC) {
        return Detected::Format(Format::PytorchLegacy);
    }
    if head.len() >= 9 {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        if head[8] == b'{' && n >= 2 && n.checked_add(8).is_some_and(|end| end <= len) {
            return Detected::Format(Format::Safetensors);
        }
    }
    Detected::Unknown(describe(head))
}

fn describe(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(&head[..head.len().min(256)]);
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_start();
    if trimmed.starts_with("version https://git-lfs") {
        return "a Git LFS pointer file, not the weights: run `git lfs pull` (or download the file itself)".into();
    }
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") || trimmed.starts_with("<?xml") {
        return "an HTML/XML page (a download that saved an error or login page?)".into();
    }
    match head.get(..4) {
        Some(b"lmgg") | Some(b"fmgg") | Some(b"tjgg") | Some(b"algg") | Some(b"ggml") | Some(b"ggjt") => {
            return "a pre-GGUF ggml/ggjt model file: convert it to GGUF with llama.cpp first".into();
        }
        Some(b"\x89HDF") => return "an HDF5 file (Keras .h5?)".into(),
        Some([0x1f, 0x8b, ..]) => return "a gzip-compressed file: decompress it first".into(),
        Some([b'B', b'Z', b'h', _]) => return "a bzip2-compressed file: decompress it first".into(),
        Some([0x28, 0xb5, 0x2f, 0xfd]) => return "a zstd-compressed file: decompress it first".into(),
        Some([0xfd, b'7', b'z', b'X']) => return "an xz-compressed file: decompress it first".into(),
        _ => {}
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return "a tar archive: extract it first".into();
    }
    if head[0] == 0x80 && head.len() > 1 && head[1] <= 5 {
        return "a Python pickle that is not a PyTorch checkpoint".into();
    }
    // ONNX ModelProto: field 1 (ir_version, varint) then producer_name / opset fields.
    if head[0] == 0x08 && head.len() > 3 && head[1] < 0x20 && matches!(head[2], 0x12 | 0x1a | 0x3a | 0x42) {
        return "an ONNX (protobuf) model".into();
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return "a JSON file (a config or index? pass the weights file, or the index.json of a sharded checkpoint)"
            .into();
    }
    let printable = head
        .iter()
        .take(256)
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if printable * 10 >= head.len().min(256) * 9 {
        let first = text.lines().next().unwrap_or("").chars().take(60).collect::<String>();
        return format!("a text file starting with {first:?}");
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("an unrecognized binary file starting with {}", hex.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(detect(b"GGUF\x03\0\0\0", 8), Detected::Format(Format::Gguf));
        assert_eq!(detect(b"\x93NUMPY\x01\0", 8), Detected::Format(Format::Npy));
        assert_eq!(detect(b"PK\x03\x04", 4), Detected::Zip);
        assert_eq!(detect(TORCH_LEGACY_MAGIC, 100), Detected::Format(Format::PytorchLegacy));
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(detect(&st, 10), Detected::Format(Format::Safetensors));
        // A header length past the end of the file is not safetensors.
        assert!(matches!(detect(&st, 9), Detected::Unknown(_)));
    }

    #[test]
    fn descriptions() {
        let lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n";
        assert!(matches!(detect(lfs, 70), Detected::Unknown(s) if s.contains("Git LFS")));
        assert!(matches!(detect(b"<!DOCTYPE html><html>", 30), Detected::Unknown(s) if s.contains("HTML")));
        assert!(matches!(detect(b"\x08\x07\x12\x07pytorch", 30), Detected::Unknown(s) if s.contains("ONNX")));
        assert!(matches!(detect(b"\0\0\0\0\xff", 5), Detected::Unknown(s) if s.contains("binary")));
        assert!(matches!(detect(b"", 0), Detected::Unknown(s) if s.contains("empty")));
    }
}
