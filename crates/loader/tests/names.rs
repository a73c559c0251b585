//! Name mapping on real files: the torch-written Hugging Face state dict and the
//! llama.cpp-named sample GGUF map completely, and onto each other's names.

use std::path::Path;

use qload_loader::names::{Direction, Family, map_names};

fn open(rel: &str) -> qload_formats::WeightSource {
    qload_formats::open(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn hf_and_gguf_fixtures_map_completely() {
    let hf = open("safetensors/tiny_f32.safetensors");
    let m = map_names(
        Family::Llama,
        hf.tensors().iter().map(|t| t.name.as_str()),
        Direction::HfToGguf,
    );
    assert!(m.unmatched.is_empty(), "{:?}", m.unmatched);
    assert_eq!(m.mapped.len(), hf.tensors().len());

    let gguf = open("gguf/tiny-llama-mixed.gguf");
    let m = map_names(
        Family::Llama,
        gguf.tensors().iter().map(|t| t.name.as_str()),
        Direction::GgufToHf,
    );
    assert!(m.unmatched.is_empty(), "{:?}", m.unmatched);
    // Both files are 2-block llama models: the GGUF's names, mapped, are HF names
    // that the HF file has (plus lm_head, which the safetensors file dropped as tied).
    for (_, mapped) in &m.mapped {
        assert!(
            hf.tensor(&mapped.name).is_some() || mapped.name == "lm_head.weight",
            "{}",
            mapped.name
        );
    }
}
