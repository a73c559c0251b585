//! The plan: which tensor goes where, per-device totals and the reasons. Plain data,
//! serializable as JSON (schema [`PLAN_SCHEMA`]) and printable as text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{Device, Role, TensorSpec, format_size};

/// The `schema` tag of a serialized [`Plan`].
pub const PLAN_SCHEMA: &str = "qload.plan/1";

/// One tensor's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedTensor {
    /// The tensor's name.
    pub name: String,
    /// Where it goes.
    pub device: Device,
    /// Bytes it takes there.
    pub bytes: u64,
    /// Its layer, for layer tensors.
    pub layer: Option<u32>,
    /// What it is for.
    pub role: Role,
    /// Why it goes there.
    pub reason: String,
}

/// One device's totals in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceUsage {
    /// The device.
    pub device: Device,
    /// Its name when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Total memory, from the inventory.
    pub total_bytes: u64,
    /// Free memory, from the inventory.
    pub free_bytes: u64,
    /// The budget the strategy allowed itself on this device (at most `free_bytes`).
    pub capacity_bytes: u64,
    /// Bytes placed here (never more than `capacity_bytes`).
    pub bytes_used: u64,
    /// Number of tensors placed here.
    pub tensors: usize,
    /// Layers placed here (wholly or, when a strategy was told to split, in part).
    pub layers: Vec<u32>,
}

/// A placement plan. Tensors are listed in placement order (embedding, layers in
/// order, output layer, others), which is the order a loader should allocate them in
/// for [`crate::FallbackChain`] to reason about failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// The strategy that made it (`gpu-first`, `auto -> multi-gpu`, ...).
    pub strategy: String,
    /// The decisions taken and why, in order.
    pub decisions: Vec<String>,
    /// Per device totals: CUDA devices by ordinal, then the CPU.
    pub devices: Vec<DeviceUsage>,
    /// Per tensor placement.
    pub tensors: Vec<PlacedTensor>,
}

impl Plan {
    /// Where a tensor goes.
    pub fn device_of(&self, name: &str) -> Option<Device> {
        self.tensors.iter().find(|t| t.name == name).map(|t| t.device)
    }

    /// One device's totals.
    pub fn usage(&self, device: Device) -> Option<&DeviceUsage> {
        self.devices.iter().find(|d| d.device == device)
    }

    /// Total bytes placed.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Layers whose tensors are on more than one device (empty unless a strategy was
    /// told it may split layers).
    pub fn split_layers(&self) -> Vec<u32> {
        let mut by_layer: BTreeMap<u32, BTreeSet<Device>> = BTreeMap::new();
        for t in &self.tensors {
            if let Some(l) = t.layer {
                by_layer.entry(l).or_default().insert(t.device);
            }
        }
        by_layer
            .into_iter()
            .filter(|(_, d)| d.len() > 1)
            .map(|(l, _)| l)
            .collect()
    }

    /// Checks the plan against the tensors it was made for: every tensor placed exactly
    /// once with its size, per-device totals that add up, no device over its capacity
    /// and no capacity over the free memory. Returns the first problem found.
    pub fn verify(&self, tensors: &[TensorSpec]) -> Result<(), String> {
        if self.tensors.len() != tensors.len() {
            return Err(format!(
                "{} tensors placed, {} given",
                self.tensors.len(),
                tensors.len()
            ));
        }
        let mut placed: HashMap<&str, &PlacedTensor> = HashMap::new();
        for t in &self.tensors {
            if placed.insert(t.name.as_str(), t).is_some() {
                return Err(format!("{} placed twice", t.name));
            }
        }
        for t in tensors {
            let Some(p) = placed.get(t.name.as_str()) else {
                return Err(format!("{} not placed", t.name));
            };
            if p.bytes != t.bytes {
                return Err(format!("{}: {} bytes placed, {} given", t.name, p.bytes, t.bytes));
            }
        }
        for d in &self.devices {
            let here = self.tensors.iter().filter(|t| t.device == d.device);
            let (n, bytes) = here.fold((0usize, 0u64), |(n, b), t| (n + 1, b + t.bytes));
            if n != d.tensors || bytes != d.bytes_used {
                return Err(format!("{}: totals do not add up", d.device));
            }
            if d.bytes_used > d.capacity_bytes {
                return Err(format!(
                    "{}: {} bytes used over a capacity of {}",
                    d.device, d.bytes_used, d.capacity_bytes
                ));
            }
            if d.capacity_bytes > d.free_bytes {
                return Err(format!(
                    "{}: capacity {} over free memory {}",
                    d.device, d.capacity_bytes, d.free_bytes
                ));
            }
        }
        if let Some(t) = self.tensors.iter().find(|t| self.usage(t.device).is_none()) {
            return Err(format!("{} placed on {}, which has no totals", t.name, t.device));
        }
        Ok(())
    }

    /// The plan as text: per device its budget, tensors, layers and bytes; then the
    /// decisions; with `per_tensor`, a table of every tensor and its reason.
    pub fn to_text(&self, per_tensor: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan:     {} ({} tensors, {})",
            self.strategy,
            self.tensors.len(),
            format_size(self.total_bytes())
        );
        let _ = writeln!(
            s,
            "{:<8} {:>11} {:>11} {:>11} {:>6} {:>8}  LAYERS",
            "DEVICE", "FREE", "BUDGET", "USED", "USE%", "TENSORS"
        );
        for d in &self.devices {
            let pct = if d.capacity_bytes == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", d.bytes_used as f64 * 100.0 / d.capacity_bytes as f64)
            };
            let mut extra: Vec<&str> = Vec::new();
            let has = |r: Role| self.tensors.iter().any(|t| t.device == d.device && t.role == r);
            if has(Role::Embedding) {
                extra.push("embedding");
            }
            if has(Role::Output) {
                extra.push("output");
            }
            if has(Role::Other) {
                extra.push("other");
            }
            let mut layers = layer_ranges(&d.layers);
            if !extra.is_empty() {
                if !layers.is_empty() {
                    layers.push_str(" + ");
                }
                layers.push_str(&extra.join(" + "));
            }
            if layers.is_empty() {
                layers.push('-');
            }
            let _ = writeln!(
                s,
                "{:<8} {:>11} {:>11} {:>11} {:>6} {:>8}  {}",
                d.device.to_string(),
                format_size(d.free_bytes),
                format_size(d.capacity_bytes),
                format_size(d.bytes_used),
                pct,
                d.tensors,
                layers
            );
        }
        if !self.decisions.is_empty() {
            s.push_str("decisions:\n");
            for d in &self.decisions {
                let _ = writeln!(s, "  - {d}");
            }
        }
        if per_tensor {
            let w = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
            let _ = writeln!(s, "{:<w$}  {:<7} {:>11}  REASON", "NAME", "DEVICE", "BYTES");
            for t in &self.tensors {
                let _ = writeln!(
                    s,
                    "{:<w$}  {:<7} {:>11}  {}",
                    t.name,
                    t.device.to_string(),
                    t.bytes,
                    t.reason
                );
            }
        }
        s
    }
}

/// `[0, 1, 2, 5, 7, 8]` -> `0-2, 5, 7-8`.
pub fn layer_ranges(layers: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let start = layers[i];
        let mut end = start;
        while i + 1 < layers.len() && layers[i + 1] == end + 1 {
            i += 1;
            end = layers[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(layer_ranges(&[]), "");
        assert_eq!(layer_ranges(&[3]), "3");
        assert_eq!(layer_ranges(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
    }
}
