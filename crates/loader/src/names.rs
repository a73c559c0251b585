//! Tensor names between GGUF (`blk.N.attn_q.weight`, as llama.cpp's converter writes
//! them) and Hugging Face transformers (`model.layers.N.self_attn.q_proj.weight`), for
//! the llama (and mistral), gemma, gemma2/gemma3, qwen2, qwen3 and phi3 families.
//!
//! Names only: the mapping never changes data. One data difference matters and is
//! reported by [`Mapped::rope_permuted`]: llama.cpp's converter permutes the rows of
//! `q_proj`/`k_proj` for the llama family (it interleaves the two rotary halves), so a
//! GGUF `attn_q`/`attn_k` of a llama-family model equals the Hugging Face tensor only
//! after the inverse permutation.

use crate::error::{Error, Result};

/// A model family with its own naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// llama, mistral and their relatives.
    Llama,
    /// gemma (v1).
    Gemma,
    /// gemma2 and gemma3 (four norms per block).
    Gemma2,
    /// qwen2.
    Qwen2,
    /// qwen3 (per-head q/k norms).
    Qwen3,
    /// phi3 (fused qkv and gate/up).
    Phi3,
}

impl Family {
    /// Every family, for messages.
    pub const ALL: &'static [Family] = &[
        Family::Llama,
        Family::Gemma,
        Family::Gemma2,
        Family::Qwen2,
        Family::Qwen3,
        Family::Phi3,
    ];

    /// The family of a GGUF `general.architecture` or a Hugging Face `model_type`.
    pub fn from_architecture(arch: &str) -> Result<Family> {
        Ok(match arch.to_ascii_lowercase().as_str() {
            "llama" | "mistral" | "mixtral" => Family::Llama,
            "gemma" => Family::Gemma,
            "gemma2" | "gemma3" | "gemma3_text" => Family::Gemma2,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "phi3" => Family::Phi3,
            _ => {
                return Err(Error::UnknownFamily {
                    architecture: arch.to_string(),
                    known: "llama, mistral, gemma, gemma2, gemma3, qwen2, qwen3, phi3".into(),
                });
            }
        })
    }

    /// Whole-model tensors: (Hugging Face, GGUF).
    fn globals(self) -> &'static [(&'static str, &'static str)] {
        &[
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
        ]
    }

    /// Per-block name stems: (Hugging Face after `model.layers.N.`, GGUF after `blk.N.`),
    /// without the `.weight` / `.bias` suffix.
    fn block(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Family::Llama | Family::Gemma | Family::Qwen2 => {
                const T: &[(&str, &str)] = &[
                    ("self_attn.q_proj", "attn_q"),
                    ("self_attn.k_proj", "attn_k"),
                    ("self_attn.v_proj", "attn_v"),
                    ("self_attn.o_proj", "attn_output"),
                    ("mlp.gate_proj", "ffn_gate"),
                    ("mlp.up_proj", "ffn_up"),
                    ("mlp.down_proj", "ffn_down"),
                    ("input_layernorm", "attn_norm"),
                    ("post_attention_layernorm", "ffn_norm"),
                ];
                T
            }
            Family::Qwen3 => {
                const T: &[(&str, &str)] = &[
                    ("self_attn.q_proj", "attn_q"),
                    ("self_attn.k_proj", "attn_k"),
                    ("self_attn.v_proj", "attn_v"),
                    ("self_attn.o_proj", "attn_output"),
                    ("self_attn.q_norm", "attn_q_norm"),
                    ("self_attn.k_norm", "attn_k_norm"),
                    ("mlp.gate_proj", "ffn_gate"),
                    ("mlp.up_proj", "ffn_up"),
                    ("mlp.down_proj", "ffn_down"),
                    ("input_layernorm", "attn_norm"),
                    ("post_attention_layernorm", "ffn_norm"),
                ];
                T
            }
            Family::Gemma2 => {
                const T: &[(&str, &str)] = &[
                    ("self_attn.q_proj", "attn_q"),
                    ("self_attn.k_proj", "attn_k"),
                    ("self_attn.v_proj", "attn_v"),
                    ("self_attn.o_proj", "attn_output"),
                    ("self_attn.q_norm", "attn_q_norm"),
                    ("self_attn.k_norm", "attn_k_norm"),
                    ("mlp.gate_proj", "ffn_gate"),
                    ("mlp.up_proj", "ffn_up"),
                    ("mlp.down_proj", "ffn_down"),
                    ("input_layernorm", "attn_norm"),
                    ("post_attention_layernorm", "post_attention_norm"),
                    ("pre_feedforward_layernorm", "ffn_norm"),
                    ("post_feedforward_layernorm", "post_ffw_norm"),
                ];
                T
            }
            Family::Phi3 => {
                const T: &[(&str, &str)] = &[
                    ("self_attn.qkv_proj", "attn_qkv"),
                    ("self_attn.o_proj", "attn_output"),
                    ("mlp.gate_up_proj", "ffn_up"),
                    ("mlp.down_proj", "ffn_down"),
                    ("input_layernorm", "attn_norm"),
                    ("post_attention_layernorm", "ffn_norm"),
                ];
                T
            }
        }
    }
}

/// Which naming convention a list of names is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// llama.cpp's GGUF names (`blk.N.attn_q.weight`).
    Gguf,
    /// Hugging Face transformers names (`model.layers.N.self_attn.q_proj.weight`).
    HuggingFace,
}

/// The weights every model of `family` with `n_layers` blocks has, in `convention`:
/// the token embedding, the final norm and each block's projections and norms. The
/// output head is left out (tied models do not store it), and so are the per-head q/k
/// norms of the gemma2/gemma3 family (gemma3 only) and biases (qwen2 only).
pub fn template(family: Family, n_layers: u32, convention: Convention) -> Vec<String> {
    let pick = |pair: &(&'static str, &'static str)| match convention {
        Convention::Gguf => pair.1,
        Convention::HuggingFace => pair.0,
    };
    let mut out: Vec<String> = family
        .globals()
        .iter()
        .filter(|p| p.1 != "output.weight")
        .map(|p| pick(p).to_string())
        .collect();
    let prefix = match convention {
        Convention::Gguf => "blk.",
        Convention::HuggingFace => "model.layers.",
    };
    for layer in 0..n_layers {
        for pair in family.block() {
            if family == Family::Gemma2 && pair.1.ends_with("_norm") && pair.1.starts_with("attn_") {
                continue;
            }
            out.push(format!("{prefix}{layer}.{}.weight", pick(pair)));
        }
    }
    out
}

/// Which way to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `blk.N.attn_q.weight` -> `model.layers.N.self_attn.q_proj.weight`.
    GgufToHf,
    /// `model.layers.N.self_attn.q_proj.weight` -> `blk.N.attn_q.weight`.
    HfToGguf,
}

/// One mapped name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The name in the target convention.
    pub name: String,
    /// True for llama-family q/k projections, whose rows llama.cpp's converter permutes.
    pub rope_permuted: bool,
}

/// Maps one name; `None` when the family has no rule for it.
pub fn map_name(family: Family, name: &str, direction: Direction) -> Option<Mapped> {
    let (from_layer, to_layer) = match direction {
        Direction::GgufToHf => ("blk.", "model.layers."),
        Direction::HfToGguf => ("model.layers.", "blk."),
    };
    let pick = |pair: &(&'static str, &'static str)| match direction {
        Direction::GgufToHf => (pair.1, pair.0),
        Direction::HfToGguf => (pair.0, pair.1),
    };
    for pair in family.globals() {
        let (from, to) = pick(pair);
        if name == from {
            return Some(Mapped {
                name: to.to_string(),
                rope_permuted: false,
            });
        }
    }
    let rest = name.strip_prefix(from_layer)?;
    let (index, stem_and_suffix) = rest.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (stem, suffix) = stem_and_suffix.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    for pair in family.block() {
        let (from, to) = pick(pair);
        if stem == from {
            let q_or_k = pair.1 == "attn_q" || pair.1 == "attn_k";
            return Some(Mapped {
                name: format!("{to_layer}{index}.{to}.{suffix}"),
                rope_permuted: family == Family::Llama && q_or_k && suffix == "weight",
            });
        }
    }
    None
}

/// The result of mapping a list of names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// `(original, mapped)` for every name with a rule.
    pub mapped: Vec<(String, Mapped)>,
    /// Names the family has no rule for, kept as they are and reported.
    pub unmatched: Vec<String>,
}

/// Maps every name in `names`, collecting the ones without a rule.
pub fn map_names<'a>(family: Family, names: impl IntoIterator<Item = &'a str>, direction: Direction) -> Mapping {
    let mut out = Mapping::default();
    for n in names {
        match map_name(family, n, direction) {
            Some(m) => out.mapped.push((n.to_string(), m)),
            None => out.unmatched.push(n.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_for_every_family() {
        for &family in Family::ALL {
            for pair in family.globals().iter().chain(family.block()) {
                for (hf, suffix) in [(pair.0.to_string(), "weight"), (pair.0.to_string(), "bias")] {
                    let hf_name = if family.globals().contains(pair) {
                        if suffix == "bias" {
                            continue;
                        }
                        hf
                    } else {
                        format!("model.layers.17.{hf}.{suffix}")
                    };
                    let g = map_name(family, &hf_name, Direction::HfToGguf).unwrap_or_else(|| panic!("{hf_name}"));
                    let back = map_name(family, &g.name, Direction::GgufToHf).unwrap();
                    assert_eq!(back.name, hf_name, "{family:?}");
                }
            }
        }
    }

    #[test]
    fn family_specific_rules() {
        let m = |f, n| map_name(f, n, Direction::HfToGguf).map(|m| m.name);
        assert_eq!(
            m(Family::Llama, "model.layers.3.post_attention_layernorm.weight").unwrap(),
            "blk.3.ffn_norm.weight"
        );
        assert_eq!(
            m(Family::Gemma2, "model.layers.3.post_attention_layernorm.weight").unwrap(),
            "blk.3.post_attention_norm.weight"
        );
        assert_eq!(
            m(Family::Gemma2, "model.layers.3.pre_feedforward_layernorm.weight").unwrap(),
            "blk.3.ffn_norm.weight"
        );
        assert_eq!(
            m(Family::Qwen3, "model.layers.0.self_attn.k_norm.weight").unwrap(),
            "blk.0.attn_k_norm.weight"
        );
        assert_eq!(
            m(Family::Qwen2, "model.layers.0.self_attn.q_proj.bias").unwrap(),
            "blk.0.attn_q.bias"
        );
        assert_eq!(
            m(Family::Phi3, "model.layers.2.self_attn.qkv_proj.weight").unwrap(),
            "blk.2.attn_qkv.weight"
        );
        assert_eq!(m(Family::Llama, "model.layers.0.self_attn.rotary_emb.inv_freq"), None);
        assert_eq!(m(Family::Llama, "model.layers.x.mlp.up_proj.weight"), None);
        let q = map_name(Family::Llama, "blk.0.attn_q.weight", Direction::GgufToHf).unwrap();
        assert!(q.rope_permuted);
        assert!(
            !map_name(Family::Qwen2, "blk.0.attn_q.weight", Direction::GgufToHf)
                .unwrap()
                .rope_permuted
        );
        assert!(
            !map_name(Family::Llama, "blk.0.attn_v.weight", Direction::GgufToHf)
                .unwrap()
                .rope_permuted
        );
        assert_eq!(Family::from_architecture("Mistral").unwrap(), Family::Llama);
        assert!(matches!(
            Family::from_architecture("rwkv6"),
            Err(Error::UnknownFamily { .. })
        ));
    }

    #[test]
    fn unmatched_names_are_collected() {
        let names = [
            "token_embd.weight",
            "blk.0.attn_q.weight",
            "rope_freqs.weight",
            "blk.0.ffn_gate_exps.weight",
        ];
        let m = map_names(Family::Llama, names, Direction::GgufToHf);
        assert_eq!(m.mapped.len(), 2);
        assert_eq!(m.unmatched, vec!["rope_freqs.weight", "blk.0.ffn_gate_exps.weight"]);
    }
}
