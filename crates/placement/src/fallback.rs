//! Re-planning when an allocation fails at load time.

use crate::strategy::{Builder, units};
use crate::{Device, Inventory, PlacementError, Plan, TensorSpec, format_size};

/// An allocation that failed while a plan was being carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationFailure {
    /// The device the allocation was for.
    pub device: Device,
    /// The tensor being allocated.
    pub tensor: String,
}

/// The order in which devices take over from a device whose allocation failed:
/// by default the plan's own order (CUDA by ordinal, then the CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackChain {
    /// Devices in fallback order.
    pub chain: Vec<Device>,
}

impl FallbackChain {
    /// The chain of a plan's devices, in the plan's order.
    pub fn from_plan(plan: &Plan) -> Self {
        Self {
            chain: plan.devices.iter().map(|d| d.device).collect(),
        }
    }

    /// A pure re-plan after `failure`: tensors placed before the failed one's unit
    /// (a layer, the embedding, the output layer) keep their places — they were
    /// allocated; the failed device is treated as full at what it already holds; the
    /// failed unit and every later unit on that device or on a device after it in the
    /// chain are packed again, in order, onto the devices after it. Units on devices
    /// before it in the chain keep their places.
    pub fn replan_after_failure(
        &self,
        plan: &Plan,
        tensors: &[TensorSpec],
        failure: &AllocationFailure,
    ) -> Result<Plan, PlacementError> {
        let split = !plan.split_layers().is_empty();
        let units = units(tensors, split)?;
        let Some(failed_unit) = units
            .iter()
            .position(|u| u.tensors.iter().any(|&i| tensors[i].name == failure.tensor))
        else {
            return Err(PlacementError::UnknownTensor {
                name: failure.tensor.clone(),
            });
        };
        let device_of = |i: usize| {
            plan.device_of(&tensors[i].name)
                .ok_or_else(|| PlacementError::UnknownTensor {
                    name: tensors[i].name.clone(),
                })
        };
        let pos = |d: Device| self.chain.iter().position(|&c| c == d);
        let Some(failed_pos) = pos(failure.device) else {
            return Err(PlacementError::DeviceNotInInventory { device: failure.device });
        };
        // The plan's devices and capacities, as an inventory.
        let inventory = Inventory::new(
            plan.devices
                .iter()
                .map(|d| crate::DeviceMemory {
                    device: d.device,
                    total_bytes: d.total_bytes,
                    free_bytes: d.free_bytes,
                    name: d.name.clone(),
                })
                .collect(),
        )?;
        let capacity = |d: Device| plan.usage(d).map_or(0, |u| u.capacity_bytes);
        let mut b = Builder::new(tensors, &inventory, split, |m| capacity(m.device))?;
        b.units = units;
        b.decisions = plan.decisions.clone();
        let reason_of = |i: usize| {
            plan.tensors
                .iter()
                .find(|t| t.name == tensors[i].name)
                .map(|t| t.reason.clone())
                .unwrap_or_default()
        };
        // Keep what was allocated before the failure.
        let mut held = 0u64;
        for u in 0..failed_unit {
            for i in b.units[u].tensors.clone() {
                let d = device_of(i)?;
                if d == failure.device {
                    held += tensors[i].bytes;
                }
                b.place_tensors(&tensors[i].name, &[i], d, &reason_of(i))?;
            }
        }
        b.set_capacity(failure.device, held);
        // Keep later units on devices before the failed one; re-pack the rest.
        let mut repack = Vec::new();
        for u in failed_unit..b.units.len() {
            let ds: Vec<Device> = b.units[u]
                .tensors
                .iter()
                .map(|&i| device_of(i))
                .collect::<Result<_, _>>()?;
            let before = ds.iter().all(|&d| pos(d).is_some_and(|p| p < failed_pos));
            if before {
                for (&i, &d) in b.units[u].tensors.clone().iter().zip(&ds) {
                    b.place_tensors(&tensors[i].name, &[i], d, &reason_of(i))?;
                }
            } else {
                repack.push(u);
            }
        }
        let next: Vec<Device> = self.chain[failed_pos + 1..]
            .iter()
            .copied()
            .filter(|&d| b.has(d))
            .collect();
        let moved: Vec<String> = repack.iter().map(|&u| b.units[u].label.clone()).collect();
        b.decisions.push(format!(
            "fallback: allocating {} on {} failed; {} capped at the {} it holds; re-planned onto {}: {}",
            failure.tensor,
            failure.device,
            failure.device,
            format_size(held),
            if next.is_empty() {
                "nothing".into()
            } else {
                next.iter().map(Device::to_string).collect::<Vec<_>>().join(", ")
            },
            summarize(&moved)
        ));
        let failed = failure.device;
        if let (true, Some(&u)) = (next.is_empty(), repack.first()) {
            return Err(PlacementError::DoesNotFit {
                what: b.units[u].label.clone(),
                needed: b.units[u].bytes,
                available: 0,
                device: failed,
            });
        }
        b.pack_chain(&repack, &next, &|d| format!("fallback from {failed}: {d}"))?;
        let name = if plan.strategy.ends_with("+ fallback") {
            plan.strategy.clone()
        } else {
            format!("{} + fallback", plan.strategy)
        };
        Ok(b.finish(&name))
    }
}

fn summarize(labels: &[String]) -> String {
    match labels.len() {
        0 => "nothing to move".into(),
        1..=4 => labels.join(", "),
        n => format!("{}, ... {} units in all, ... {}", labels[0], n, labels[n - 1]),
    }
}
