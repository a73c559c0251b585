//! Target-quantization policies: which type each tensor becomes, and why.
//!
//! A policy is parsed from a spec (`q4_k`, `q4_k_m`, `q8_0`, `f16`, …) and decides per
//! tensor from its name, shape and stored type, before any data is read. Every
//! decision carries a reason, which lands in the load report.
//!
//! The rules, for a quantizing policy with target type T:
//! - tensors that are not floating point (integer tables, masks) are kept as stored;
//! - 1-D tensors (norms, biases, scales) and any tensor named `*norm*` stay as stored;
//! - the output head (`output.weight`, `lm_head.weight`) and the token embedding
//!   (`token_embd.weight`, `*embed_tokens.weight`) are promoted to Q6_K when T
//!   has fewer bits per weight (llama.cpp keeps the head at Q6_K for the K mixes; the
//!   embedding is promoted too because qload cannot know whether it is tied);
//! - the mixes add llama.cpp's per-layer rules: `q4_k_m` / `q5_k_m` put `attn_v` and
//!   `ffn_down` at Q6_K in the layers llama.cpp's `use_more_bits` picks (the first
//!   and last eighth of the layers and every third layer between);
//! - a row length (innermost dimension) that is not a multiple of T's block falls
//!   back as llama.cpp's quantizer does (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0,
//!   Q2_K/Q3_K/IQ4_XS → IQ4_NL, TQ1_0/TQ2_0 → Q4_0), and to the stored type when even
//!   the fallback's 32-element block does not divide it;
//! - a tensor already stored as its target type, or as a quantized type with no more
//!   bits per weight than its target, is kept as stored (requantizing would only lose).
//!
//! - `i2_s` (BitNet b1.58, bitnet.cpp's x86 layout): per-tensor absmean ternarization
//!   of every weight matrix; the token embedding and output head stay as stored.
//!   `tl1` / `tl2`: the same codes and scale in bitnet.cpp's lookup-table layouts (a
//!   shape no tiling fits falls back to `i2_s`).
//!
//! Float policies (`f32`, `f16`, `bf16`) convert every floating-point or quantized
//! tensor to that type (dequantizing quantized ones) and keep the rest.

use qload_formats::DType;
use qload_quant_core::bitnet::act::{ActConfig, ActMode, ActRounding};
use qload_quant_core::bitnet::ternary::{Granularity, TernaryConfig};
use qload_quant_core::bitnet::tl::{TlKind, TlParams};
use serde::{Deserialize, Serialize};

/// What the loader does with each tensor's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Keep every tensor as stored (the default).
    Keep,
    /// Quantize weight matrices to one type (with the promotions and fallbacks above).
    Uniform(DType),
    /// A named mix of types, like llama.cpp's `Q4_K_M`.
    Mix(Mix),
    /// Convert every numeric tensor to a float type (dequantizing quantized ones).
    Float(DType),
    /// Per-tensor rules over a base policy (a config file or a preset).
    Custom(Box<Custom>),
}

/// What a rule makes of the tensors it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTarget {
    /// Keep as stored.
    Keep,
    /// Quantize to a ggml type (with llama.cpp's fallbacks for rows that do not fit).
    Type(DType),
    /// Convert to a float type.
    Float(DType),
}

/// Which weights share a ternary scale (see [`TernarySpec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TernaryGroup {
    /// One scale per tensor (BitNet b1.58; the only grouping I2_S can store).
    Tensor,
    /// One scale per row (output feature).
    Row,
    /// One scale per this many contiguous elements of a row (TQ1_0/TQ2_0 store one
    /// scale per 256 elements, so a multiple of 256).
    Elements(usize),
}

/// How weights become ternary for the ternary targets (`i2_s`, and `tq1_0`/`tq2_0`
/// when a config asks for it): BitNet b1.58's absmean over each group, optionally
/// clipped. Without a spec, `tq1_0`/`tq2_0` use ggml's own quantizer (byte-exact with
/// ggml: each block's scale is its largest |w|).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TernarySpec {
    /// Which weights share a scale.
    pub group: TernaryGroup,
    /// Each group's mean taken over `min(|w|, clip · mean|w|)` (finite, > 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<f32>,
}

impl TernarySpec {
    /// BitNet b1.58: one absmean scale per tensor, no clipping.
    pub const BITNET: TernarySpec = TernarySpec {
        group: TernaryGroup::Tensor,
        clip: None,
    };

    /// The quantization configuration it stands for.
    pub fn config(&self) -> TernaryConfig {
        TernaryConfig {
            granularity: match self.group {
                TernaryGroup::Tensor => Granularity::PerTensor,
                TernaryGroup::Row => Granularity::PerRow,
                TernaryGroup::Elements(size) => Granularity::PerGroup { size },
            },
            clip: self.clip,
        }
    }

    /// Whether `target` can store weights ternarized this way: I2_S holds one scale
    /// per tensor; TQ1_0/TQ2_0 one per 256-element block.
    pub fn check(&self, target: DType) -> Result<(), String> {
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(format!("ternary clip {c} must be a finite number above 0"));
        }
        match (target, self.group) {
            (DType::I2S | DType::TL1 | DType::TL2, TernaryGroup::Tensor) => Ok(()),
            (DType::I2S | DType::TL1 | DType::TL2, g) => Err(format!(
                "{} stores one scale per tensor (bitnet.cpp's layout), so group {} cannot be kept; use tq2_0 or tq1_0 (one scale per 256 elements) for per-row or per-group scales",
                target.name().to_ascii_lowercase(),
                g.label()
            )),
            (DType::TQ1_0 | DType::TQ2_0, TernaryGroup::Elements(n)) if n == 0 || n % 256 != 0 => Err(format!(
                "{target} stores one scale per 256-element block, so a ternary group of {n} elements cannot be kept; use a multiple of 256, \"row\" or \"tensor\""
            )),
            (DType::TQ1_0 | DType::TQ2_0, _) => Ok(()),
            (t, _) => Err(format!(
                "ternary group and clip settings apply to i2_s, tq1_0 and tq2_0, not {t}"
            )),
        }
    }
}

impl Eq for TernarySpec {}

impl TernaryGroup {
    fn label(self) -> String {
        match self {
            TernaryGroup::Tensor => "\"tensor\"".into(),
            TernaryGroup::Row => "\"row\"".into(),
            TernaryGroup::Elements(n) => n.to_string(),
        }
    }
}

/// One rule: tensors whose name matches `pattern` (a glob, or a regex after `re:`).
#[derive(Debug, Clone)]
pub struct Rule {
    /// The pattern as written.
    pub pattern: String,
    /// What matching tensors become.
    pub target: RuleTarget,
    /// For a ternary target: how to ternarize (overrides the config's `[ternary]`).
    pub ternary: Option<TernarySpec>,
    matcher: crate::filter::Filter,
}

impl PartialEq for Rule {
    fn eq(&self, o: &Rule) -> bool {
        self.pattern == o.pattern && self.target == o.target && self.ternary == o.ternary
    }
}
impl Eq for Rule {}

impl Rule {
    /// A rule; the pattern must compile.
    pub fn new(pattern: &str, target: RuleTarget) -> Result<Rule, String> {
        let matcher = crate::filter::Filter::all()
            .include(pattern)
            .map_err(|e| e.to_string())?;
        Ok(Rule {
            pattern: pattern.to_string(),
            target,
            ternary: None,
            matcher,
        })
    }

    /// The same rule ternarizing as `spec` says (its target must be able to store it).
    pub fn with_ternary(mut self, spec: TernarySpec) -> Result<Rule, String> {
        match self.target {
            RuleTarget::Type(t) => spec.check(t)?,
            _ => return Err("ternary group and clip settings apply to i2_s, tq1_0 and tq2_0 rules".into()),
        }
        self.ternary = Some(spec);
        Ok(self)
    }
}

/// A named policy made of rules over a base policy: the first rule whose pattern matches
/// a tensor decides it; tensors no rule matches follow the base.
#[derive(Debug, Clone, PartialEq)]
pub struct Custom {
    /// Its name (the preset's, or the config file's `name`).
    pub name: String,
    /// The policy for tensors no rule matches.
    pub base: Policy,
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
    /// How every ternary target without a rule of its own ternarizes (the config's
    /// `[ternary]`); `None`: BitNet b1.58 for I2_S, ggml's quantizer for TQ1_0/TQ2_0.
    pub ternary: Option<TernarySpec>,
    /// How activations are quantized where a kernel takes int8 activations (the
    /// config's `[activations]`); see [`Policy::activations`].
    pub activations: Option<ActConfig>,
}

/// The named mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// llama.cpp's Q4_K_M: Q4_K, with `attn_v`/`ffn_down` at Q6_K in `use_more_bits` layers.
    Q4KM,
    /// llama.cpp's Q4_K_S: Q4_K throughout (head at Q6_K).
    Q4KS,
    /// llama.cpp's Q5_K_M: Q5_K, with `attn_v`/`ffn_down` at Q6_K in `use_more_bits` layers.
    Q5KM,
    /// llama.cpp's Q5_K_S: Q5_K throughout (head at Q6_K).
    Q5KS,
}

/// How a tensor's type was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Kept as stored.
    Keep,
    /// Converted to the policy's type.
    Convert,
    /// Converted to a higher-precision type than the policy's (embeddings, head, mixes).
    Promote,
    /// Converted to a compatible type because the row length does not fit the target's block.
    Fallback,
}

/// The decision for one tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The type it will have.
    pub target: DType,
    /// Why.
    pub kind: DecisionKind,
    /// A short human reason ("1-D tensor stays float", "output head promoted to Q6_K", …).
    pub reason: String,
    /// For a ternary target: how to ternarize (always set for I2_S; for TQ1_0/TQ2_0
    /// only when a config asks for absmean, otherwise ggml's quantizer runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ternary: Option<TernarySpec>,
}

impl Decision {
    /// The tensor's size after this decision: `stored` bytes when kept, else its shape's
    /// size in the target type (what the load then produces, to the byte).
    pub fn size_after(&self, shape: &[u64], stored: u64) -> u64 {
        match self.kind {
            DecisionKind::Keep => stored,
            _ => self.target.nbytes(shape).unwrap_or(stored),
        }
    }
}

impl Policy {
    /// Parses a spec: `keep`, a ggml type name (`q4_k`, `q8_0`, `tq2_0`, …), a mix
    /// (`q4_k_m`, `q4_k_s`, `q5_k_m`, `q5_k_s`), a float type (`f32`, `f16`, `bf16`), or
    /// `i2_s` / `ternary` / `bitnet` (BitNet b1.58 ternary weights in bitnet.cpp's I2_S).
    pub fn parse(spec: &str) -> Result<Policy, String> {
        let s = spec.trim().to_ascii_lowercase();
        let mix = match s.as_str() {
            "keep" | "none" => return Ok(Policy::Keep),
            // BitNet b1.58 absmean ternarization, stored as bitnet.cpp's I2_S.
            "ternary" | "bitnet" => return Ok(Policy::Uniform(DType::I2S)),
            // Presets.
            "default" | "balanced" => return Ok(Policy::Mix(Mix::Q4KM)),
            "quality" => return Ok(Policy::Uniform(DType::Q6K)),
            "aggressive" => return Ok(Policy::aggressive()),
            // BitNet b1.58 absmean ternarization in bitnet.cpp's lookup-table layouts.
            "tl1" => return Ok(Policy::Uniform(DType::TL1)),
            "tl2" => return Ok(Policy::Uniform(DType::TL2)),
            "q4_k_m" => Some(Mix::Q4KM),
            "q4_k_s" => Some(Mix::Q4KS),
            "q5_k_m" => Some(Mix::Q5KM),
            "q5_k_s" => Some(Mix::Q5KS),
            _ => None,
        };
        if let Some(m) = mix {
            return Ok(Policy::Mix(m));
        }
        let dtype = DType::from_name(&s).ok_or_else(|| unknown(spec))?;
        if matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Ok(Policy::Float(dtype));
        }
        if dtype.is_quantized() && !matches!(dtype, DType::Q8_1 | DType::Q8K | DType::I8S | DType::TL1 | DType::TL2) {
            return Ok(Policy::Uniform(dtype));
        }
        Err(unknown(spec))
    }

    /// The `aggressive` preset: Q3_K, with `attn_v`/`ffn_down` (and their Hugging Face
    /// names) at Q4_K and the head and embedding promoted to Q6_K, like llama.cpp's
    /// Q3_K_M.
    pub fn aggressive() -> Policy {
        let rules = [
            "*attn_v.weight",
            "*v_proj.weight",
            "*ffn_down.weight",
            "*down_proj.weight",
        ]
        .iter()
        .filter_map(|p| Rule::new(p, RuleTarget::Type(DType::Q4K)).ok())
        .collect();
        Policy::Custom(Box::new(Custom {
            name: "aggressive".into(),
            base: Policy::Uniform(DType::Q3K),
            rules,
            ternary: None,
            activations: None,
        }))
    }

    /// A policy from a config file's text: TOML, or JSON when `json` is set.
    ///
    /// ```toml
    /// name = "my-mix"          # optional, for reports
    /// base = "q4_k_m"          # any --quantize spec or preset; default "keep"
    ///
    /// [[rules]]                # first match wins
    /// match = "blk.*.ffn_down.weight"   # glob, or a regex after re:
    /// type = "q6_k"            # a ggml type, f32/f16/bf16, or "keep"
    ///
    /// [[rules]]
    /// match = "blk.*.ffn_*"
    /// type = "tq2_0"           # ternary with BitNet absmean …
    /// group = 256              # … one scale per 256 elements ("tensor", "row", or a multiple of 256)
    /// clip = 3.0               # … each group's mean over min(|w|, 3·mean|w|)
    ///
    /// [ternary]                # defaults for every ternary target (i2_s, and tq1_0/tq2_0
    /// group = "tensor"         # rules, which otherwise use ggml's quantizer); a rule's
    /// clip = 2.5               # own group/clip override these one by one
    ///
    /// [activations]            # int8 activations of ternary (I2_S) weights' matvec
    /// mode = "symmetric"       # BitNet's absmax (default), or "asymmetric" (zero point)
    /// clip = 6.0               # |x| clipped at 6 before the range is taken
    /// rounding = "half_even"   # or "half_away_from_zero"
    /// ```
    pub fn from_config(text: &str, json: bool) -> Result<Policy, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: Option<String>,
            base: Option<String>,
            #[serde(default)]
            rules: Vec<RuleFile>,
            ternary: Option<TernaryFile>,
            activations: Option<ActFile>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RuleFile {
            #[serde(rename = "match")]
            pattern: String,
            #[serde(rename = "type")]
            target: String,
            group: Option<GroupFile>,
            clip: Option<f32>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct TernaryFile {
            group: Option<GroupFile>,
            clip: Option<f32>,
        }
        #[derive(serde::Deserialize, Clone)]
        #[serde(untagged)]
        enum GroupFile {
            Elements(u64),
            Word(String),
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ActFile {
            mode: Option<String>,
            clip: Option<f32>,
            rounding: Option<String>,
        }
        let spec = |group: Option<GroupFile>, clip: Option<f32>| -> Result<TernarySpec, String> {
            let group = match group {
                None => TernaryGroup::Tensor,
                Some(GroupFile::Elements(n)) => TernaryGroup::Elements(
                    usize::try_from(n)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("ternary group {n} must be a positive number of elements"))?,
                ),
                Some(GroupFile::Word(w)) => match w.to_ascii_lowercase().as_str() {
                    "tensor" => TernaryGroup::Tensor,
                    "row" => TernaryGroup::Row,
                    _ => {
                        return Err(format!(
                            "ternary group {w:?}: expected \"tensor\", \"row\" or a number of elements"
                        ));
                    }
                },
            };
            Ok(TernarySpec { group, clip })
        };
        let f: File = if json {
            serde_json::from_str(text).map_err(|e| format!("quantization config: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| format!("quantization config: {e}"))?
        };
        let base = Policy::parse(f.base.as_deref().unwrap_or("keep"))?;
        let defaults = f.ternary.as_ref().map_or_else(TernaryFile::default, |t| TernaryFile {
            group: t.group.clone(),
            clip: t.clip,
        });
        let ternary = match f.ternary {
            Some(t) => {
                let t = spec(t.group, t.clip)?;
                t.check(DType::TQ2_0).map_err(|e| format!("[ternary]: {e}"))?;
                if let Some(b) = base.base().filter(|b| is_ternary(*b)) {
                    t.check(b).map_err(|e| format!("[ternary] with base {b}: {e}"))?;
                }
                Some(t)
            }
            None => None,
        };
        let activations = match f.activations {
            None => None,
            Some(a) => Some(ActConfig {
                mode: match a.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("symmetric") => ActMode::Symmetric,
                    Some("asymmetric") => ActMode::Asymmetric,
                    Some(m) => return Err(format!("[activations] mode {m:?}: expected symmetric or asymmetric")),
                },
                clip: match a.clip {
                    Some(c) if !(c.is_finite() && c > 0.0) => {
                        return Err(format!("[activations] clip {c} must be a finite number above 0"));
                    }
                    c => c,
                },
                rounding: match a.rounding.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("half_even") => ActRounding::HalfEven,
                    Some("half_away_from_zero") => ActRounding::HalfAwayFromZero,
                    Some(r) => {
                        return Err(format!(
                            "[activations] rounding {r:?}: expected half_even or half_away_from_zero"
                        ));
                    }
                },
            }),
        };
        let mut rules = Vec::with_capacity(f.rules.len());
        for r in f.rules {
            // A rule's own settings, each defaulting to [ternary]'s.
            let own = (r.group.is_some() || r.clip.is_some())
                .then(|| spec(r.group.or(defaults.group.clone()), r.clip.or(defaults.clip)))
                .transpose()
                .map_err(|e| format!("rule {:?}: {e}", r.pattern))?;
            let target = match Policy::parse(&r.target)? {
                Policy::Keep => RuleTarget::Keep,
                Policy::Float(t) => RuleTarget::Float(t),
                Policy::Uniform(t) => RuleTarget::Type(t),
                _ => {
                    return Err(format!(
                        "rule {:?}: type {:?} must be one type (a ggml type, f32/f16/bf16 or keep), not a mix",
                        r.pattern, r.target
                    ));
                }
            };
            let mut rule = Rule::new(&r.pattern, target).map_err(|e| format!("rule {:?}: {e}", r.pattern))?;
            if let Some(own) = own {
                rule = rule
                    .with_ternary(own)
                    .map_err(|e| format!("rule {:?}: {e}", r.pattern))?;
            } else if let (Some(t), RuleTarget::Type(to)) = (ternary, target)
                && is_ternary(to)
            {
                t.check(to)
                    .map_err(|e| format!("rule {:?} takes [ternary]'s settings: {e}", r.pattern))?;
            }
            rules.push(rule);
        }
        Ok(Policy::Custom(Box::new(Custom {
            name: f.name.unwrap_or_else(|| format!("custom ({})", base.name())),
            base,
            rules,
            ternary,
            activations,
        })))
    }

    /// How activations are quantized for kernels that take int8 activations (I2_S
    /// weights' [`crate::Weight::matvec`]): the config's `[activations]`, or `None` for
    /// BitNet's symmetric per-token absmax. ggml types keep their own activation types
    /// (Q8_0/Q8_1/Q8_K), as ggml's kernels define them.
    pub fn activations(&self) -> Option<ActConfig> {
        match self {
            Policy::Custom(c) => c.activations.or_else(|| c.base.activations()),
            _ => None,
        }
    }

    /// [`Policy::from_config`] of a file (`.json` is JSON, anything else TOML; at most 1 MiB).
    pub fn from_config_file(path: &std::path::Path) -> Result<Policy, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > 1 << 20 {
            return Err(format!(
                "{}: {} bytes is too large for a quantization config",
                path.display(),
                meta.len()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Policy::from_config(&text, json).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The base type of a quantizing policy.
    pub fn base(&self) -> Option<DType> {
        match self {
            Policy::Keep | Policy::Float(_) => None,
            Policy::Uniform(t) => Some(*t),
            Policy::Mix(Mix::Q4KM | Mix::Q4KS) => Some(DType::Q4K),
            Policy::Mix(Mix::Q5KM | Mix::Q5KS) => Some(DType::Q5K),
            Policy::Custom(c) => c.base.base(),
        }
    }

    /// A short name for reports: `keep`, the type, the mix or the custom policy's name.
    pub fn name(&self) -> String {
        match self {
            Policy::Keep => "keep".into(),
            Policy::Uniform(t) | Policy::Float(t) => t.name().to_string(),
            Policy::Mix(m) => serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            Policy::Custom(c) => c.name.clone(),
        }
    }

    /// The decision for a pre-quantized weight (bitsandbytes, HQQ, MLX, quanto) whose
    /// dequantization is `out` and whose scheme is `label`: kept native under `keep`,
    /// dequantized under a float policy, otherwise decided like a tensor stored as `out`.
    pub fn decide_prequant(&self, name: &str, shape: &[u64], out: DType, label: &str, n_layers: u32) -> Decision {
        match self {
            Policy::Keep => Decision {
                target: out,
                kind: DecisionKind::Keep,
                reason: format!("pre-quantized ({label}) kept native"),
                ternary: None,
            },
            Policy::Float(t) => Decision {
                target: *t,
                kind: DecisionKind::Convert,
                reason: format!("pre-quantized ({label}) dequantized to {t}"),
                ternary: None,
            },
            p => {
                let mut d = p.decide(name, shape, out, n_layers);
                d.reason = format!("from {label}: {}", d.reason);
                d
            }
        }
    }

    /// The decision for a tensor named `name` with row-major `shape`, stored as
    /// `stored`, in a model of `n_layers` repeating layers.
    pub fn decide(&self, name: &str, shape: &[u64], stored: DType, n_layers: u32) -> Decision {
        let keep = |reason: &str| Decision {
            target: stored,
            kind: DecisionKind::Keep,
            reason: reason.to_string(),
            ternary: None,
        };
        let numeric = stored.is_float() || stored.is_quantized();
        match self {
            Policy::Keep => keep("kept as stored"),
            Policy::Float(t) => {
                if !numeric {
                    keep("not a floating-point tensor")
                } else if stored == *t {
                    keep("already the asked type")
                } else {
                    Decision {
                        target: *t,
                        kind: DecisionKind::Convert,
                        reason: format!("converted to {t}"),
                        ternary: None,
                    }
                }
            }
            Policy::Uniform(_) | Policy::Mix(_) => {
                let base = self.base().unwrap_or(DType::Q4K);
                if !numeric {
                    return keep("not a floating-point tensor");
                }
                if shape.len() < 2 || shape.iter().filter(|&&d| d > 1).count() < 2 {
                    return keep("1-D tensor (norm, bias, scale) stays as stored");
                }
                if name.contains("norm") {
                    return keep("normalization weights stay as stored");
                }
                let (mut target, mut kind, mut reason) = (base, DecisionKind::Convert, format!("quantized to {base}"));
                let head = is_output_head(name);
                if (head || is_embedding(name)) && matches!(base, DType::I2S | DType::TL1 | DType::TL2) {
                    return keep("BitNet keeps the token embedding and the output head in float (as bitnet.cpp does)");
                }
                if (head || is_embedding(name)) && bits_per_weight(base) < bits_per_weight(DType::Q6K) {
                    target = DType::Q6K;
                    kind = DecisionKind::Promote;
                    reason = format!(
                        "{} promoted to Q6_K",
                        if head { "output head" } else { "token embedding" }
                    );
                } else if let Policy::Mix(Mix::Q4KM | Mix::Q5KM) = self
                    && (name.contains("attn_v.")
                        || name.contains("v_proj.")
                        || name.contains("ffn_down.")
                        || name.contains("down_proj."))
                    && let Some(layer) = layer_index(name)
                    && use_more_bits(layer, n_layers)
                {
                    target = DType::Q6K;
                    kind = DecisionKind::Promote;
                    reason = format!("layer {layer} of {n_layers}: more bits (llama.cpp use_more_bits) → Q6_K");
                }
                ternarized(settle(target, kind, reason, shape, stored), None, shape)
            }
            Policy::Custom(c) => {
                let Some(rule) = c.rules.iter().find(|r| r.matcher.matches(name)) else {
                    let d = c.base.decide(name, shape, stored, n_layers);
                    return match c.ternary {
                        Some(spec) => ternarized(d, Some(spec), shape),
                        None => d,
                    };
                };
                let why = format!("rule {:?}", rule.pattern);
                match rule.target {
                    RuleTarget::Keep => keep(&format!("{why} keeps it as stored")),
                    _ if !numeric => keep(&format!("{why}: not a floating-point tensor; kept as stored")),
                    RuleTarget::Float(t) if t == stored => keep(&format!("{why}: already {t}")),
                    RuleTarget::Float(t) => Decision {
                        target: t,
                        kind: DecisionKind::Convert,
                        reason: format!("{why} → {t}"),
                        ternary: None,
                    },
                    RuleTarget::Type(_) if shape.iter().filter(|&&d| d > 1).count() < 2 => {
                        keep(&format!("{why}: a 1-D tensor stays as stored"))
                    }
                    RuleTarget::Type(t) => ternarized(
                        settle(t, DecisionKind::Convert, format!("{why} → {t}"), shape, stored),
                        rule.ternary.or(c.ternary),
                        shape,
                    ),
                }
            }
        }
    }
}

/// The end of every quantizing decision: llama.cpp's fallback when the row length does
/// not fit the target's block, and no requantizing to a type without more bits.
fn settle(mut target: DType, mut kind: DecisionKind, mut reason: String, shape: &[u64], stored: DType) -> Decision {
    let keep = |reason: String| Decision {
        target: stored,
        kind: DecisionKind::Keep,
        reason,
        ternary: None,
    };
    let row = *shape.last().unwrap_or(&1);
    if !row.is_multiple_of(target.block_size()) {
        match fallback(target) {
            Some(f) if row.is_multiple_of(f.block_size()) => {
                reason = format!(
                    "row length {row} is not a multiple of {target}'s block ({}) → {f}",
                    target.block_size()
                );
                target = f;
                kind = DecisionKind::Fallback;
            }
            _ => {
                return keep(format!(
                    "row length {row} fits no block of {target} or its fallback; kept as stored"
                ));
            }
        }
    }
    if target == stored {
        return keep(format!("already {stored}"));
    }
    if stored.is_quantized() && bits_per_weight(stored) <= bits_per_weight(target) {
        return keep(format!(
            "stored {stored} has no more bits than {target}: requantizing cannot add precision"
        ));
    }
    Decision {
        target,
        kind,
        reason,
        ternary: None,
    }
}

/// Attaches how to ternarize to a decision for a ternary target: `spec`, or BitNet
/// b1.58 for I2_S/TL1/TL2 when there is none (TQ1_0/TQ2_0 without a spec use ggml's
/// quantizer). A TL1/TL2 target whose shape no tiling fits falls back to I2_S (the same
/// ternary weights, one layout that holds any shape).
fn ternarized(mut d: Decision, spec: Option<TernarySpec>, shape: &[u64]) -> Decision {
    if d.kind == DecisionKind::Keep {
        return d;
    }
    if let (DType::TL1 | DType::TL2, [m, k]) = (d.target, shape) {
        let kind = if d.target == DType::TL1 {
            TlKind::Tl1
        } else {
            TlKind::Tl2
        };
        let fits = d.target.nbytes(shape).is_some()
            && usize::try_from(*m)
                .ok()
                .zip(usize::try_from(*k).ok())
                .is_some_and(|(m, k)| TlParams::for_shape(kind, m, k).is_ok());
        if !fits {
            d.reason = format!("{}: no {} tiling fits [{m}, {k}] → I2_S", d.reason, d.target);
            d.target = DType::I2S;
            d.kind = DecisionKind::Fallback;
        }
    } else if matches!(d.target, DType::TL1 | DType::TL2) {
        d.reason = format!("{}: TL layouts are 2-D → I2_S", d.reason);
        d.target = DType::I2S;
        d.kind = DecisionKind::Fallback;
    }
    {
        d.ternary = match d.target {
            DType::I2S | DType::TL1 | DType::TL2 => Some(spec.unwrap_or(TernarySpec::BITNET)),
            DType::TQ1_0 | DType::TQ2_0 => spec,
            _ => None,
        };
        if let Some(t) = d.ternary.filter(|t| *t != TernarySpec::BITNET) {
            d.reason = format!(
                "{} (absmean, group {}{})",
                d.reason,
                t.group.label().trim_matches('"'),
                t.clip.map_or(String::new(), |c| format!(", clip {c}"))
            );
        }
    }
    d
}

/// The targets BitNet absmean ternarization can feed: bitnet.cpp's I2_S, TL1 and TL2,
/// and ggml's TQ1_0/TQ2_0.
fn is_ternary(t: DType) -> bool {
    matches!(t, DType::I2S | DType::TL1 | DType::TL2 | DType::TQ1_0 | DType::TQ2_0)
}

fn unknown(spec: &str) -> String {
    format!(
        "unknown quantization {spec:?}: expected keep, a ggml type (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4), i2_s, tl1, tl2, a mix (q4_k_m, q4_k_s, q5_k_m, q5_k_s) or a float type (f32, f16, bf16)"
    )
}

/// llama.cpp's fallback for rows that do not fit a type's block.
fn fallback(t: DType) -> Option<DType> {
    Some(match t {
        DType::TQ1_0 | DType::TQ2_0 => DType::Q4_0,
        DType::IQ2XXS | DType::IQ2XS | DType::IQ2S | DType::IQ3XXS | DType::IQ3S | DType::IQ1S | DType::IQ1M => {
            DType::IQ4NL
        }
        DType::Q2K | DType::Q3K | DType::IQ4XS => DType::IQ4NL,
        DType::Q4K => DType::Q5_0,
        DType::Q5K => DType::Q5_1,
        DType::Q6K => DType::Q8_0,
        _ => return None,
    })
}

fn bits_per_weight(t: DType) -> f64 {
    match t.packing() {
        qload_dtype::Packing::Blocks { block, bytes } => bytes as f64 * 8.0 / block as f64,
        _ => 2.0,
    }
}

/// llama.cpp's `use_more_bits(i_layer, n_layers)`.
fn use_more_bits(i: u32, n: u32) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `blk.N.` or `layers.N.` → N.
pub fn layer_index(name: &str) -> Option<u32> {
    for marker in ["blk.", "layers.", "h.", "block."] {
        let mut rest = name;
        while let Some(pos) = rest.find(marker) {
            let after = &rest[pos + marker.len()..];
            let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
            if !digits.is_empty() && after[digits.len()..].starts_with('.') {
                return digits.parse().ok();
            }
            rest = &rest[pos + marker.len()..];
        }
    }
    None
}

fn is_output_head(name: &str) -> bool {
    name == "output.weight" || name == "lm_head.weight" || name.ends_with(".lm_head.weight")
}

fn is_embedding(name: &str) -> bool {
    name == "token_embd.weight" || name.ends_with("embed_tokens.weight") || name.ends_with("wte.weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(Policy::parse("q4_k").unwrap(), Policy::Uniform(DType::Q4K));
        assert_eq!(Policy::parse("Q4_K_M").unwrap(), Policy::Mix(Mix::Q4KM));
        assert_eq!(Policy::parse("bf16").unwrap(), Policy::Float(DType::BF16));
        assert_eq!(Policy::parse("keep").unwrap(), Policy::Keep);
        assert!(Policy::parse("q8_k").unwrap_err().contains("expected keep"));
        assert!(Policy::parse("i64").is_err());
        assert_eq!(Policy::parse("i2_s").unwrap(), Policy::Uniform(DType::I2S));
        let d = Policy::parse("i2_s")
            .unwrap()
            .decide("output.weight", &[256, 256], DType::F16, 2);
        assert_eq!(d.kind, DecisionKind::Keep);
    }

    #[test]
    fn decisions_follow_the_documented_rules() {
        let p = Policy::parse("q4_k_m").unwrap();
        let d = p.decide("blk.0.attn_norm.weight", &[4096], DType::F32, 32);
        assert_eq!((d.target, d.kind), (DType::F32, DecisionKind::Keep));
        let d = p.decide("output.weight", &[32000, 4096], DType::F16, 32);
        assert_eq!((d.target, d.kind), (DType::Q6K, DecisionKind::Promote));
        let d = p.decide("blk.0.ffn_down.weight", &[4096, 11008], DType::F16, 32);
        assert_eq!((d.target, d.kind), (DType::Q6K, DecisionKind::Promote));
        let d = p.decide("blk.4.ffn_down.weight", &[4096, 11008], DType::F16, 32);
        assert_eq!((d.target, d.kind), (DType::Q4K, DecisionKind::Convert));
        let d = p.decide("blk.4.attn_q.weight", &[4096, 4096], DType::F16, 32);
        assert_eq!(d.target, DType::Q4K);
        // 672 is not a multiple of 256 but is of 32: Q4_K falls back to Q5_0.
        let d = p.decide("blk.4.ffn_up.weight", &[288, 672], DType::F32, 32);
        assert_eq!((d.target, d.kind), (DType::Q5_0, DecisionKind::Fallback));
        // 100 fits no block: kept.
        let d = p.decide("blk.4.ffn_up.weight", &[288, 100], DType::F32, 32);
        assert_eq!(d.kind, DecisionKind::Keep);
        let d = Policy::parse("q4_k")
            .unwrap()
            .decide("blk.4.attn_q.weight", &[256, 256], DType::Q4K, 32);
        assert_eq!(d.kind, DecisionKind::Keep);
        let d = Policy::parse("q4_k")
            .unwrap()
            .decide("token_embd.weight", &[256, 256], DType::Q4K, 32);
        assert_eq!(
            d.kind,
            DecisionKind::Keep,
            "no promotion of an already smaller quantized tensor"
        );
        let d = Policy::parse("q4_k")
            .unwrap()
            .decide("blk.4.attn_q.weight", &[256, 256], DType::Q8_0, 32);
        assert_eq!(
            (d.target, d.kind),
            (DType::Q4K, DecisionKind::Convert),
            "requantized through f32"
        );
        let d = Policy::parse("f32")
            .unwrap()
            .decide("blk.4.attn_q.weight", &[256, 256], DType::Q4K, 32);
        assert_eq!((d.target, d.kind), (DType::F32, DecisionKind::Convert));
        let d = Policy::parse("q8_0")
            .unwrap()
            .decide("output.weight", &[256, 256], DType::F32, 32);
        assert_eq!(
            (d.target, d.kind),
            (DType::Q8_0, DecisionKind::Convert),
            "Q8_0 is above Q6_K: no promotion"
        );
    }

    #[test]
    fn use_more_bits_matches_llama_cpp() {
        let picked: Vec<u32> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(picked, vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
        assert_eq!(layer_index("model.layers.17.mlp.down_proj.weight"), Some(17));
        assert_eq!(layer_index("blk.3.attn_v.weight"), Some(3));
        assert_eq!(layer_index("output.weight"), None);
    }
}
