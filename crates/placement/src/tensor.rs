//! What a strategy places: tensors with byte sizes, layer indices and roles.

use serde::{Deserialize, Serialize};

/// What a tensor is for, as far as placement cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// The input token embedding (`token_embd.weight`, `model.embed_tokens.weight`).
    Embedding,
    /// A tensor of one repeating block (`blk.N.*`, `model.layers.N.*`); has a layer index.
    Layer,
    /// The output layer: the final norm and the head projection (`output_norm.weight`,
    /// `output.weight`, `model.norm.weight`, `lm_head.weight`) — llama.cpp's "output
    /// layer", placed together.
    Output,
    /// Anything else (rope tables, vision towers, unknown names).
    Other,
}

/// One tensor as a strategy sees it: no data, no dtype, just a name, a size and a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Bytes it takes on the device it goes to.
    pub bytes: u64,
    /// The repeating block it belongs to, for [`Role::Layer`].
    pub layer: Option<u32>,
    /// What it is for.
    pub role: Role,
}

/// Dotted-name segments that introduce a block index: `blk.N.` (GGUF),
/// `model.layers.N.` (Hugging Face), `transformer.h.N.` (GPT-2), `layer.N.` / `block.N.`.
const LAYER_SEGMENTS: [&str; 6] = ["blk", "layers", "h", "layer", "block", "blocks"];

impl TensorSpec {
    /// A tensor with an explicit role and layer.
    pub fn new(name: impl Into<String>, bytes: u64, layer: Option<u32>, role: Role) -> Self {
        Self {
            name: name.into(),
            bytes,
            layer,
            role,
        }
    }

    /// A tensor classified by its name, GGUF or Hugging Face convention:
    ///
    /// ```
    /// use qload_placement::{Role, TensorSpec};
    /// let t = TensorSpec::classify("model.layers.12.self_attn.q_proj.weight", 4096);
    /// assert_eq!((t.layer, t.role), (Some(12), Role::Layer));
    /// assert_eq!(TensorSpec::classify("token_embd.weight", 1).role, Role::Embedding);
    /// assert_eq!(TensorSpec::classify("lm_head.weight", 1).role, Role::Output);
    /// ```
    pub fn classify(name: impl Into<String>, bytes: u64) -> Self {
        let name = name.into();
        let (layer, role) = match layer_index(&name) {
            Some(n) => (Some(n), Role::Layer),
            None => (None, classify_non_layer(&name)),
        };
        Self {
            name,
            bytes,
            layer,
            role,
        }
    }
}

/// The index after the first layer segment (`blk.12.` -> 12).
fn layer_index(name: &str) -> Option<u32> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(3).find_map(|w| {
        // A number followed by more name: `h.3.attn`, not a bare `h.3`.
        (LAYER_SEGMENTS.contains(&w[0]) && !w[2].is_empty())
            .then(|| w[1].parse::<u32>().ok())
            .flatten()
            .filter(|_| w[1].bytes().all(|b| b.is_ascii_digit()))
    })
}

fn classify_non_layer(name: &str) -> Role {
    let stem = name
        .strip_suffix(".weight")
        .or_else(|| name.strip_suffix(".bias"))
        .unwrap_or(name);
    let last = stem.rsplit('.').next().unwrap_or(stem);
    const EMBED: [&str; 6] = [
        "token_embd",
        "embed_tokens",
        "wte",
        "word_embeddings",
        "tok_embeddings",
        "embed_in",
    ];
    const HEAD: [&str; 4] = ["output", "lm_head", "embed_out", "output_norm"];
    const FINAL_NORM: [&str; 5] = [
        "model.norm",
        "transformer.ln_f",
        "ln_f",
        "norm",
        "model.final_layernorm",
    ];
    if EMBED.contains(&last) {
        Role::Embedding
    } else if HEAD.contains(&last) || FINAL_NORM.contains(&stem) {
        Role::Output
    } else {
        Role::Other
    }
}

/// True when a tensor is the output head's projection (not the final norm).
pub(crate) fn is_head_projection(t: &TensorSpec) -> bool {
    t.role == Role::Output && {
        let stem = t.name.strip_suffix(".weight").unwrap_or(&t.name);
        let last = stem.rsplit('.').next().unwrap_or(stem);
        matches!(last, "output" | "lm_head" | "embed_out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names() {
        let c = |n| {
            let t = TensorSpec::classify(n, 1);
            (t.layer, t.role)
        };
        assert_eq!(c("blk.12.attn_q.weight"), (Some(12), Role::Layer));
        assert_eq!(c("blk.0.ffn_down.weight"), (Some(0), Role::Layer));
        assert_eq!(c("token_embd.weight"), (None, Role::Embedding));
        assert_eq!(c("output.weight"), (None, Role::Output));
        assert_eq!(c("output_norm.weight"), (None, Role::Output));
        assert_eq!(c("rope_freqs.weight"), (None, Role::Other));
    }

    #[test]
    fn hf_names() {
        let c = |n| {
            let t = TensorSpec::classify(n, 1);
            (t.layer, t.role)
        };
        assert_eq!(c("model.layers.31.mlp.up_proj.weight"), (Some(31), Role::Layer));
        assert_eq!(c("model.embed_tokens.weight"), (None, Role::Embedding));
        assert_eq!(c("lm_head.weight"), (None, Role::Output));
        assert_eq!(c("model.norm.weight"), (None, Role::Output));
        assert_eq!(c("transformer.h.3.attn.c_attn.weight"), (Some(3), Role::Layer));
        assert_eq!(c("transformer.wte.weight"), (None, Role::Embedding));
        assert_eq!(c("transformer.ln_f.weight"), (None, Role::Output));
        assert_eq!(c("model.layers.x.mlp.weight"), (None, Role::Other));
        assert_eq!(c("model.layers.+3.mlp.weight"), (None, Role::Other));
        assert_eq!(c("vision_tower.blocks"), (None, Role::Other));
    }

    #[test]
    fn head_projection() {
        assert!(is_head_projection(&TensorSpec::classify("lm_head.weight", 1)));
        assert!(is_head_projection(&TensorSpec::classify("output.weight", 1)));
        assert!(!is_head_projection(&TensorSpec::classify("output_norm.weight", 1)));
    }
}
