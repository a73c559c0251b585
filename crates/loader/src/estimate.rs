//! Size estimates without reading tensor data: what a load under each policy would
//! produce (bytes, bits per weight, decisions, fallbacks) and the memory it needs.

use std::path::Path;

use qload_formats::{DType, OpenOptions};
use qload_prequant::Requested;
use serde::Serialize;

use crate::error::Result;
use crate::policy::{DecisionKind, Policy, layer_index};

/// The estimate for one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The policy spec as given.
    pub spec: String,
    /// Logical tensors (pre-quantized weights count once).
    pub tensors: usize,
    /// Elements.
    pub parameters: u64,
    /// Bytes as stored in the source.
    pub original_bytes: u64,
    /// Bytes after the load.
    pub stored_bytes: u64,
    /// `8 × stored_bytes / parameters`.
    pub bits_per_weight: f64,
    /// `original_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// Tensors converted to the policy's type.
    pub converted: usize,
    /// Tensors promoted to a type with more bits.
    pub promoted: usize,
    /// Tensors kept as stored.
    pub kept: usize,
    /// Tensors that fall back to another type, as (name, type, reason).
    pub fallbacks: Vec<(String, DType, String)>,
    /// Resident memory of the loaded model on the CPU: bytes held in owned buffers
    /// (converted tensors) plus mapped tensors' pages once touched.
    pub cpu_resident_bytes: u64,
    /// The bound on peak memory while loading: resident + budget + 64 MiB.
    pub cpu_peak_bound_bytes: u64,
    /// Per type after the load: (type, tensors, bytes).
    pub by_type: Vec<(DType, usize, u64)>,
    /// Where the loaded tensors would go, when an inventory was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementEstimate>,
}

/// The placement of one estimate.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementEstimate {
    /// The strategy (`auto -> gpu-first`, …).
    pub strategy: String,
    /// Bytes per device (`cuda:0`, `cpu`).
    pub devices: Vec<(String, u64)>,
    /// Why it does not fit, when it does not.
    pub error: Option<String>,
}

/// Estimates a load of `path` under each policy in `specs`, reading headers (and the
/// small metadata tensors of pre-quantized checkpoints) only.
pub fn estimate(path: &Path, specs: &[(String, Policy)], budget: u64, requested: &Requested) -> Result<Vec<Estimate>> {
    estimate_placed(path, specs, budget, requested, None)
}

/// [`estimate`], and for each policy where `strategy` would put the loaded tensors on
/// `inventory`'s devices (a real or simulated inventory; nothing is allocated).
pub fn estimate_placed(
    path: &Path,
    specs: &[(String, Policy)],
    budget: u64,
    requested: &Requested,
    placement: Option<(&dyn qload_placement::Strategy, &qload_placement::Inventory)>,
) -> Result<Vec<Estimate>> {
    let source = qload_formats::open_with(path, &OpenOptions::default())?;
    let detection = match source.format() {
        qload_formats::Format::Gguf => qload_prequant::Detection::default(),
        _ => qload_prequant::detect_at(path, &source, requested)?,
    };
    // (name, shape, stored dtype for decisions, stored bytes, pre-quantized)
    let mut items: Vec<(String, Vec<u64>, DType, u64, bool)> = Vec::new();
    for (i, t) in source.tensors().iter().enumerate() {
        match detection.owner_of(i) {
            None => items.push((t.name.clone(), t.shape.clone(), t.dtype, t.byte_len(), false)),
            Some(w) if detection.is_data_part(&source, i) => items.push((
                w.name.clone(),
                w.shape.clone(),
                w.scheme.output_dtype(),
                w.stored_bytes(&source),
                true,
            )),
            Some(_) => {}
        }
    }
    let n_layers = items
        .iter()
        .filter_map(|(n, ..)| layer_index(n))
        .max()
        .map_or(0, |m| m + 1);
    let mut out = Vec::with_capacity(specs.len());
    for (spec, policy) in specs {
        let mut e = Estimate {
            spec: spec.clone(),
            tensors: items.len(),
            parameters: 0,
            original_bytes: 0,
            stored_bytes: 0,
            bits_per_weight: 0.0,
            compression_ratio: 1.0,
            converted: 0,
            promoted: 0,
            kept: 0,
            fallbacks: Vec::new(),
            cpu_resident_bytes: 0,
            cpu_peak_bound_bytes: 0,
            by_type: Vec::new(),
            placement: None,
        };
        let mut specs_after = Vec::with_capacity(items.len());
        let mut by_type: std::collections::BTreeMap<&'static str, (DType, usize, u64)> = Default::default();
        for (name, shape, stored, bytes, prequant) in &items {
            let d = if *prequant {
                policy.decide_prequant(name, shape, *stored, "", n_layers)
            } else {
                policy.decide(name, shape, *stored, n_layers)
            };
            let after = d.size_after(shape, *bytes);
            specs_after.push(qload_placement::TensorSpec::classify(name.clone(), after));
            e.parameters += shape.iter().product::<u64>();
            e.original_bytes += bytes;
            e.stored_bytes += after;
            e.cpu_resident_bytes += after;
            match d.kind {
                DecisionKind::Keep => e.kept += 1,
                DecisionKind::Convert => e.converted += 1,
                DecisionKind::Promote => e.promoted += 1,
                DecisionKind::Fallback => {
                    e.converted += 1;
                    e.fallbacks.push((name.clone(), d.target, d.reason.clone()));
                }
            }
            let label = if d.kind == DecisionKind::Keep && *prequant {
                "pre-quantized (native)"
            } else {
                d.target.name()
            };
            let slot = by_type.entry(label).or_insert((d.target, 0, 0));
            slot.1 += 1;
            slot.2 += after;
        }
        e.bits_per_weight = if e.parameters == 0 {
            0.0
        } else {
            8.0 * e.stored_bytes as f64 / e.parameters as f64
        };
        e.compression_ratio = if e.stored_bytes == 0 {
            1.0
        } else {
            e.original_bytes as f64 / e.stored_bytes as f64
        };
        e.cpu_peak_bound_bytes = e.cpu_resident_bytes + budget + (64 << 20);
        e.by_type = by_type.into_values().collect();
        if let Some((strategy, inventory)) = placement {
            e.placement = Some(match strategy.plan(&specs_after, inventory) {
                Ok(plan) => PlacementEstimate {
                    strategy: plan.strategy.clone(),
                    devices: plan
                        .devices
                        .iter()
                        .filter(|u| u.bytes_used > 0)
                        .map(|u| (u.device.to_string(), u.bytes_used))
                        .collect(),
                    error: None,
                },
                Err(err) => PlacementEstimate {
                    strategy: strategy.name().to_string(),
                    devices: Vec::new(),
                    error: Some(err.to_string()),
                },
            });
        }
        out.push(e);
    }
    Ok(out)
}
