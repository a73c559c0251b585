//! Shared by every target: open bytes as a weight file and touch everything a user
//! could ask for (tensor bytes, materialized views, metadata rendering).

use qload_formats::{Details, OpenOptions, open_bytes};

pub fn exercise(name: &str, data: &[u8]) {
    let Ok(src) = open_bytes(name, data.to_vec(), &OpenOptions::default()) else {
        return;
    };
    for t in src.tensors() {
        let bytes = src.tensor_bytes(t).expect("validated ranges are readable");
        assert_eq!(bytes.len() as u64, t.byte_len());
        if t.numel() <= 1 << 20 {
            let _ = src.materialize(t);
        }
    }
    if let Details::Gguf(headers) = src.details() {
        for (i, h) in headers.iter().enumerate() {
            let file = src.files()[i].bytes();
            for kv in &h.metadata {
                let _ = kv.value.to_json(file, 8);
            }
            let _ = h.ggml_compat_problems(src.tensors(), file.len() as u64);
        }
    }
}
