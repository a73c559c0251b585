//! Placement strategies: pure functions from (tensors, inventory) to a [`Plan`].

use std::collections::{BTreeMap, HashSet};

use crate::plan::{DeviceUsage, PLAN_SCHEMA, PlacedTensor, Plan};
use crate::tensor::is_head_projection;
use crate::{Device, DeviceMemory, Inventory, PlacementError, Role, TensorSpec, format_size};

/// A placement strategy. Implementations are pure and deterministic: no I/O, no
/// allocation of tensor memory, the same input gives the same plan.
pub trait Strategy {
    /// A short name (`gpu-first`), recorded in the plan.
    fn name(&self) -> &'static str;
    /// Places every tensor on a device of `inventory`, or says why it cannot.
    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError>;
}

impl<S: Strategy + ?Sized> Strategy for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        (**self).plan(tensors, inventory)
    }
}

/// How much of each GPU a strategy may use: `min(free × vram_fraction, free − reserve)`,
/// capped by `vram_limit`, on the first `max_gpus` GPUs. The CPU's budget is its free
/// (available) memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuBudget {
    /// Fraction of each GPU's free memory to use, in (0, 1]. Default 0.8.
    pub vram_fraction: f64,
    /// Bytes to leave free on each GPU (CUDA context, activations). Default 0.
    pub reserve_bytes: u64,
    /// An absolute cap per GPU (`--vram 8GiB`).
    pub vram_limit: Option<u64>,
    /// Use at most this many GPUs (the lowest ordinals).
    pub max_gpus: Option<usize>,
}

impl Default for GpuBudget {
    fn default() -> Self {
        Self {
            vram_fraction: 0.8,
            reserve_bytes: 0,
            vram_limit: None,
            max_gpus: None,
        }
    }
}

impl GpuBudget {
    fn validate(&self) -> Result<(), PlacementError> {
        if !(self.vram_fraction > 0.0 && self.vram_fraction <= 1.0) {
            return Err(PlacementError::BadOption {
                option: "vram_fraction",
                reason: format!("{} is not in (0, 1]", self.vram_fraction),
            });
        }
        Ok(())
    }

    /// The GPUs this budget allows, by ordinal.
    pub fn gpus(&self, inventory: &Inventory) -> Vec<Device> {
        let n = self.max_gpus.unwrap_or(usize::MAX);
        inventory.gpus().take(n).map(|d| d.device).collect()
    }

    /// The budget on one device.
    pub fn capacity(&self, m: &DeviceMemory) -> u64 {
        if !m.device.is_cuda() {
            return m.free_bytes;
        }
        let by_fraction = ((m.free_bytes as f64 * self.vram_fraction) as u64).min(m.free_bytes);
        let mut c = by_fraction.min(m.free_bytes.saturating_sub(self.reserve_bytes));
        if let Some(limit) = self.vram_limit {
            c = c.min(limit);
        }
        c
    }

    fn describe(&self, m: &DeviceMemory) -> String {
        let mut s = format!(
            "{} budget {} = {:.0}% of {} free",
            m.device,
            format_size(self.capacity(m)),
            self.vram_fraction * 100.0,
            format_size(m.free_bytes)
        );
        if self.reserve_bytes > 0 {
            let _ = std::fmt::Write::write_fmt(&mut s, format_args!(", {} reserved", format_size(self.reserve_bytes)));
        }
        if let Some(l) = self.vram_limit {
            let _ = std::fmt::Write::write_fmt(&mut s, format_args!(", capped at {}", format_size(l)));
        }
        s
    }
}

/// Where the input embedding or the output layer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgePlacement {
    /// Always on the CPU (llama.cpp's choice for the input embedding: a row lookup gains
    /// nothing on a GPU).
    Cpu,
    /// With the layers: the embedding before layer 0, the output layer after the last
    /// layer, on the same device when they fit.
    WithLayers,
}

/// The policy for the tensors outside the repeating layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgePolicy {
    /// The input embedding. Default [`EdgePlacement::Cpu`].
    pub embedding: EdgePlacement,
    /// The output layer (final norm + head). Default [`EdgePlacement::WithLayers`].
    pub output: EdgePlacement,
}

impl Default for EdgePolicy {
    fn default() -> Self {
        Self {
            embedding: EdgePlacement::Cpu,
            output: EdgePlacement::WithLayers,
        }
    }
}

// ---------------------------------------------------------------------------------
// Units and the plan builder shared by the strategies.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    Embedding,
    Layer(u32),
    Output,
    Other,
}

/// What moves as one: a layer, the embedding, the output layer, one other tensor (or
/// one tensor of anything when layers may be split).
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub kind: UnitKind,
    pub label: String,
    pub tensors: Vec<usize>,
    pub bytes: u64,
}

/// Groups tensors into units, in placement order: embedding, layers in order, output
/// layer, others in input order.
pub(crate) fn units(tensors: &[TensorSpec], split_layers: bool) -> Result<Vec<Unit>, PlacementError> {
    let mut seen = HashSet::new();
    let mut embedding = Vec::new();
    let mut layers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut output = Vec::new();
    let mut other = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        if !seen.insert(t.name.as_str()) {
            return Err(PlacementError::DuplicateTensor { name: t.name.clone() });
        }
        match (t.layer, t.role) {
            (Some(l), _) => layers.entry(l).or_default().push(i),
            (None, Role::Embedding) => embedding.push(i),
            (None, Role::Output) => output.push(i),
            (None, _) => other.push(i),
        }
    }
    let bytes = |ix: &[usize]| ix.iter().fold(0u64, |a, &i| a.saturating_add(tensors[i].bytes));
    let mut out = Vec::new();
    let mut push = |kind, label: String, ix: Vec<usize>| {
        if ix.is_empty() {
            return;
        }
        if split_layers && ix.len() > 1 {
            for i in ix {
                out.push(Unit {
                    kind,
                    label: format!("{label} tensor {}", tensors[i].name),
                    bytes: tensors[i].bytes,
                    tensors: vec![i],
                });
            }
        } else {
            out.push(Unit {
                kind,
                label,
                bytes: bytes(&ix),
                tensors: ix,
            });
        }
    };
    push(UnitKind::Embedding, "embedding".into(), embedding);
    for (l, ix) in layers {
        push(UnitKind::Layer(l), format!("layer {l}"), ix);
    }
    push(UnitKind::Output, "output layer".into(), output);
    for i in other {
        push(UnitKind::Other, format!("tensor {}", tensors[i].name), vec![i]);
    }
    Ok(out)
}

struct Slot {
    mem: DeviceMemory,
    capacity: u64,
    used: u64,
}

/// Accumulates placements with capacity checks; `finish` turns them into a [`Plan`].
pub(crate) struct Builder<'a> {
    tensors: &'a [TensorSpec],
    pub units: Vec<Unit>,
    slots: Vec<Slot>,
    assigned: Vec<Option<(Device, String)>>,
    pub decisions: Vec<String>,
}

impl<'a> Builder<'a> {
    pub fn new(
        tensors: &'a [TensorSpec],
        inventory: &Inventory,
        split_layers: bool,
        capacity: impl Fn(&DeviceMemory) -> u64,
    ) -> Result<Self, PlacementError> {
        let units = units(tensors, split_layers)?;
        let slots = inventory
            .devices()
            .iter()
            .map(|m| Slot {
                capacity: capacity(m).min(m.free_bytes),
                mem: m.clone(),
                used: 0,
            })
            .collect();
        let mut decisions: Vec<String> = inventory.notes.clone();
        if inventory.simulated {
            decisions.insert(0, "simulated inventory: no device was queried".into());
        }
        Ok(Self {
            tensors,
            units,
            slots,
            assigned: vec![None; tensors.len()],
            decisions,
        })
    }

    fn slot(&self, d: Device) -> Option<&Slot> {
        self.slots.iter().find(|s| s.mem.device == d)
    }

    pub fn has(&self, d: Device) -> bool {
        self.slot(d).is_some()
    }

    pub fn capacity(&self, d: Device) -> u64 {
        self.slot(d).map_or(0, |s| s.capacity)
    }

    pub fn set_capacity(&mut self, d: Device, c: u64) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.mem.device == d) {
            s.capacity = c.min(s.mem.free_bytes);
        }
    }

    pub fn remaining(&self, d: Device) -> u64 {
        self.slot(d).map_or(0, |s| s.capacity - s.used)
    }

    pub fn fits(&self, d: Device, bytes: u64) -> bool {
        self.has(d) && bytes <= self.remaining(d)
    }

    /// Places tensors `ix` on `d`, failing with a typed error when they do not fit.
    pub fn place_tensors(&mut self, what: &str, ix: &[usize], d: Device, reason: &str) -> Result<(), PlacementError> {
        let bytes = ix.iter().fold(0u64, |a, &i| a.saturating_add(self.tensors[i].bytes));
        if !self.has(d) {
            return Err(PlacementError::DeviceNotInInventory { device: d });
        }
        if !self.fits(d, bytes) {
            return Err(PlacementError::DoesNotFit {
                what: what.to_string(),
                needed: bytes,
                available: self.remaining(d),
                device: d,
            });
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.mem.device == d)
            .expect("checked above");
        slot.used += bytes;
        for &i in ix {
            debug_assert!(self.assigned[i].is_none(), "tensor placed twice");
            self.assigned[i] = Some((d, reason.to_string()));
        }
        Ok(())
    }

    pub fn place(&mut self, u: usize, d: Device, reason: &str) -> Result<(), PlacementError> {
        let unit = self.units[u].clone();
        self.place_tensors(&unit.label, &unit.tensors, d, reason)
    }

    /// Places units in order along `chain`, never going back: a unit that does not fit
    /// the current device moves the cursor to the next one.
    pub fn pack_chain(
        &mut self,
        units: &[usize],
        chain: &[Device],
        reason: &dyn Fn(Device) -> String,
    ) -> Result<(), PlacementError> {
        let Some(&last) = chain.last() else {
            return match units.first() {
                None => Ok(()),
                Some(_) => Err(PlacementError::DeviceNotInInventory { device: Device::Cpu }),
            };
        };
        let mut cursor = 0;
        for &u in units {
            let bytes = self.units[u].bytes;
            while cursor + 1 < chain.len() && !self.fits(chain[cursor], bytes) {
                let d = chain[cursor];
                self.decisions.push(format!(
                    "{d} full at {} of {}: {} ({}) does not fit; it and what follows go to {}",
                    format_size(self.capacity(d) - self.remaining(d)),
                    format_size(self.capacity(d)),
                    self.units[u].label,
                    format_size(bytes),
                    chain[cursor + 1]
                ));
                cursor += 1;
            }
            let d = chain[cursor];
            if !self.fits(d, bytes) {
                return Err(PlacementError::DoesNotFit {
                    what: self.units[u].label.clone(),
                    needed: bytes,
                    available: self.remaining(d),
                    device: if self.has(d) { d } else { last },
                });
            }
            self.place(u, d, &reason(d))?;
        }
        Ok(())
    }

    pub fn finish(mut self, strategy: &str) -> Plan {
        let has_embedding = self.tensors.iter().any(|t| t.role == Role::Embedding);
        let has_head = self.tensors.iter().any(is_head_projection);
        if has_embedding && !has_head && self.tensors.iter().any(|t| t.layer.is_some()) {
            self.decisions.push(
                "no output head tensor: the embedding is probably tied (used as the output projection too); \
                 it is placed once, as the embedding"
                    .into(),
            );
        }
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for unit in &self.units {
            for &i in &unit.tensors {
                let t = &self.tensors[i];
                let (device, reason) = self.assigned[i].clone().expect("every strategy places every unit");
                tensors.push(PlacedTensor {
                    name: t.name.clone(),
                    device,
                    bytes: t.bytes,
                    layer: t.layer,
                    role: t.role,
                    reason,
                });
            }
        }
        let devices = self
            .slots
            .iter()
            .map(|s| {
                let here = tensors.iter().filter(|t| t.device == s.mem.device);
                let mut layers: Vec<u32> = here.clone().filter_map(|t| t.layer).collect();
                layers.dedup();
                layers.sort_unstable();
                layers.dedup();
                DeviceUsage {
                    device: s.mem.device,
                    name: s.mem.name.clone(),
                    total_bytes: s.mem.total_bytes,
                    free_bytes: s.mem.free_bytes,
                    capacity_bytes: s.capacity,
                    bytes_used: s.used,
                    tensors: here.count(),
                    layers,
                }
            })
            .collect();
        Plan {
            schema: PLAN_SCHEMA.into(),
            strategy: strategy.into(),
            decisions: self.decisions,
            devices,
            tensors,
        }
    }
}

/// Places the embedding and output units pinned to the CPU by `edges` (when there is a
/// CPU), and returns the indices of the units left for the layer chain.
fn place_pinned_edges(b: &mut Builder<'_>, edges: EdgePolicy) -> Result<Vec<usize>, PlacementError> {
    let mut rest = Vec::new();
    for u in 0..b.units.len() {
        let pinned = match b.units[u].kind {
            UnitKind::Embedding => edges.embedding == EdgePlacement::Cpu,
            UnitKind::Output => edges.output == EdgePlacement::Cpu,
            _ => false,
        };
        if pinned && b.has(Device::Cpu) {
            let reason = match b.units[u].kind {
                UnitKind::Embedding => "input embedding kept on the CPU (policy: a row lookup gains nothing on a GPU)",
                _ => "output layer kept on the CPU (policy)",
            };
            b.place(u, Device::Cpu, reason)?;
        } else {
            if pinned {
                b.decisions.push(format!(
                    "no CPU in the inventory: the {} goes with the layers",
                    b.units[u].label
                ));
            }
            rest.push(u);
        }
    }
    Ok(rest)
}

fn chain_reason(gpus_exist: bool) -> impl Fn(Device) -> String {
    move |d: Device| {
        if d.is_cuda() {
            format!("fits {d}'s budget")
        } else if gpus_exist {
            "spilled to the CPU: no GPU budget left for it".into()
        } else {
            "no GPU: CPU".into()
        }
    }
}

// ---------------------------------------------------------------------------------
// The strategies.

/// Everything on the CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuOnly;

impl Strategy for CpuOnly {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        let mut b = Builder::new(tensors, inventory, false, |m| {
            if m.device.is_cuda() { 0 } else { m.free_bytes }
        })?;
        b.decisions.push("CPU only: every tensor in host memory".into());
        let all: Vec<usize> = (0..b.units.len()).collect();
        if !b.has(Device::Cpu) && !all.is_empty() {
            return Err(PlacementError::DeviceNotInInventory { device: Device::Cpu });
        }
        b.pack_chain(&all, &[Device::Cpu], &|_| "CPU only".into())?;
        Ok(b.finish(self.name()))
    }
}

/// Fills the GPUs in ordinal order up to their budgets, then spills whole layers (and
/// what follows them) to the CPU. Order is kept: a device is never revisited, so
/// consecutive layers stay together.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuFirst {
    /// Per GPU budget.
    pub budget: GpuBudget,
    /// Embedding and output layer policy.
    pub edges: EdgePolicy,
    /// Place tensor by tensor instead of layer by layer, so a layer may straddle two
    /// devices. Off by default.
    pub split_layers: bool,
}

impl Strategy for GpuFirst {
    fn name(&self) -> &'static str {
        "gpu-first"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        self.budget.validate()?;
        let gpus = self.budget.gpus(inventory);
        let mut b = Builder::new(tensors, inventory, self.split_layers, |m| {
            if gpus.contains(&m.device) || !m.device.is_cuda() {
                self.budget.capacity(m)
            } else {
                0
            }
        })?;
        for g in &gpus {
            let m = inventory.get(*g).expect("from the inventory");
            b.decisions.push(format!("GPU first: {}", self.budget.describe(m)));
        }
        if gpus.is_empty() {
            b.decisions.push("GPU first, but no GPU in the inventory: CPU".into());
        }
        if self.split_layers {
            b.decisions
                .push("layers may be split across devices (tensor by tensor)".into());
        }
        let rest = place_pinned_edges(&mut b, self.edges)?;
        let mut chain = gpus.clone();
        if b.has(Device::Cpu) {
            chain.push(Device::Cpu);
        }
        b.pack_chain(&rest, &chain, &chain_reason(!gpus.is_empty()))?;
        Ok(b.finish(self.name()))
    }
}

/// Splits the layers across several GPUs in proportion to their budgets (free memory),
/// in order, each GPU taking a contiguous range; what the GPUs cannot hold goes to the
/// CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct MultiGpu {
    /// Per GPU budget.
    pub budget: GpuBudget,
    /// Embedding and output layer policy.
    pub edges: EdgePolicy,
}

impl Strategy for MultiGpu {
    fn name(&self) -> &'static str {
        "multi-gpu"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        self.budget.validate()?;
        let gpus = self.budget.gpus(inventory);
        let mut b = Builder::new(tensors, inventory, false, |m| {
            if gpus.contains(&m.device) || !m.device.is_cuda() {
                self.budget.capacity(m)
            } else {
                0
            }
        })?;
        let rest = place_pinned_edges(&mut b, self.edges)?;
        let total: u64 = rest.iter().map(|&u| b.units[u].bytes).sum();
        let caps: Vec<u64> = gpus.iter().map(|&g| b.capacity(g)).collect();
        let sum: u128 = caps.iter().map(|&c| u128::from(c)).sum();
        // Soft targets: each GPU's share of what the chain holds, at most its budget.
        let targets: Vec<u64> = caps
            .iter()
            .map(|&c| {
                (u128::from(total) * u128::from(c))
                    .checked_div(sum)
                    .map_or(0, |t| (t as u64).min(c))
            })
            .collect();
        let shares: Vec<String> = gpus
            .iter()
            .zip(&targets)
            .zip(&caps)
            .map(|((g, t), c)| format!("{g} {} of a {} budget", format_size(*t), format_size(*c)))
            .collect();
        b.decisions.push(format!(
            "multi-GPU: {} of layers (and what follows them) across {} GPU(s) in proportion to their budgets: {}",
            format_size(total),
            gpus.len(),
            if shares.is_empty() {
                "none".into()
            } else {
                shares.join(", ")
            }
        ));
        let mut gi = 0;
        for &u in &rest {
            let bytes = b.units[u].bytes;
            let mut placed = false;
            while gi < gpus.len() {
                let g = gpus[gi];
                let used = b.capacity(g) - b.remaining(g);
                let last = gi + 1 == gpus.len();
                let over_share = !last && used > 0 && used.saturating_add(bytes / 2) > targets[gi];
                if !over_share && b.fits(g, bytes) {
                    b.place(u, g, &format!("{g}'s share of the layers"))?;
                    placed = true;
                    break;
                }
                b.decisions.push(format!(
                    "{g} {} at {}: {} goes to the next device",
                    if over_share { "reached its share" } else { "full" },
                    format_size(used),
                    b.units[u].label
                ));
                gi += 1;
            }
            if !placed {
                if !b.has(Device::Cpu) {
                    let last = gpus.last().copied().unwrap_or(Device::Cpu);
                    return Err(PlacementError::DoesNotFit {
                        what: b.units[u].label.clone(),
                        needed: bytes,
                        available: b.remaining(last),
                        device: last,
                    });
                }
                let reason = if gpus.is_empty() {
                    "no GPU: CPU"
                } else {
                    "spilled to the CPU: the GPUs are full"
                };
                b.place(u, Device::Cpu, reason)?;
            }
        }
        Ok(b.finish(self.name()))
    }
}

/// llama.cpp's `--n-gpu-layers N`: the layer slots are the repeating layers 0..n plus
/// the output layer as slot n; the **last N slots** go to the GPU(s) — so N = 1 offloads
/// only the output layer, N = n leaves layer 0 on the CPU and N ≥ n + 1 offloads
/// everything (current llama.cpp, `i_gpu_start = n_layer + 1 - n_gpu_layers`; releases
/// before 2025 used `n_layer - n_gpu_layers` and offloaded the output layer only for
/// N > n). With several GPUs the GPU slots are split in proportion to the GPUs'
/// budgets, as llama.cpp's default tensor split does. The input embedding follows the
/// [`EdgePolicy`] (CPU by default, as in llama.cpp). Layers that do not fit their GPU
/// are an error, not a silent spill.
#[derive(Debug, Clone, Copy, Default)]
pub struct NGpuLayers {
    /// Number of layer slots to offload (llama.cpp `-ngl`).
    pub n_gpu_layers: u32,
    /// Per GPU budget.
    pub budget: GpuBudget,
    /// Embedding and output layer policy.
    pub edges: EdgePolicy,
}

impl Strategy for NGpuLayers {
    fn name(&self) -> &'static str {
        "n-gpu-layers"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        self.budget.validate()?;
        let gpus = self.budget.gpus(inventory);
        let b = Builder::new(tensors, inventory, false, |m| {
            if gpus.contains(&m.device) || !m.device.is_cuda() {
                self.budget.capacity(m)
            } else {
                0
            }
        })?;
        let layers: Vec<u32> = b
            .units
            .iter()
            .filter_map(|u| match u.kind {
                UnitKind::Layer(l) => Some(l),
                _ => None,
            })
            .collect();
        let n = layers.len() as u64;
        let k = u64::from(self.n_gpu_layers);
        let start = (n + 1).saturating_sub(k);
        let act = if gpus.is_empty() { 0 } else { k.min(n + 1) };
        let caps: Vec<u128> = gpus.iter().map(|&g| u128::from(b.capacity(g))).collect();
        let sum: u128 = caps.iter().sum();
        // Slot s (0..=n) -> device, llama.cpp's upper_bound over cumulative split points.
        let slot_device = |s: u64| -> Device {
            if act == 0 || s < start {
                return Device::Cpu;
            }
            let p = u128::from(s - start);
            let mut cum = 0u128;
            for (j, &c) in caps.iter().enumerate() {
                cum += c;
                if sum == 0 || p * sum < cum * u128::from(act) {
                    return gpus[j];
                }
            }
            *gpus.last().expect("act > 0 means a GPU")
        };
        let mut map: BTreeMap<u32, Device> = BTreeMap::new();
        for (s, &l) in layers.iter().enumerate() {
            map.insert(l, slot_device(s as u64));
        }
        let output = slot_device(n);
        let mut decisions = vec![format!(
            "n_gpu_layers {}: {} of {} layer slot(s) (n layers + the output layer) on GPU{}",
            self.n_gpu_layers,
            act,
            n + 1,
            if gpus.is_empty() {
                " — but there is no GPU, so all on the CPU".to_string()
            } else {
                String::new()
            }
        )];
        if act > 0 {
            let first_gpu_layer = layers.get(start as usize).map_or("none".into(), |l| l.to_string());
            decisions.push(format!(
                "layers from {first_gpu_layer} on and the output layer{} go to {}",
                if output.is_cuda() {
                    ""
                } else {
                    " (not: it is slot n, beyond the offloaded range)"
                },
                gpus.iter().map(Device::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        place_by_layer_map(b, &map, output, self.edges, decisions, self.name(), "n_gpu_layers")
    }
}

/// mistral.rs-style layer map `0:10;1:20`: the first 10 layers on `cuda:0`, the next 20
/// on `cuda:1`, the rest on the CPU. Layers that do not fit their GPU are an error.
#[derive(Debug, Clone, Default)]
pub struct LayerMap {
    /// (CUDA ordinal, number of layers), in layer order.
    pub map: Vec<(u32, u32)>,
    /// Per GPU budget (`max_gpus` is ignored: the map names the GPUs).
    pub budget: GpuBudget,
    /// Embedding and output layer policy.
    pub edges: EdgePolicy,
}

impl LayerMap {
    /// Parses `ORD:N;ORD:N...` (`,` also separates entries).
    pub fn parse(spec: &str) -> Result<Vec<(u32, u32)>, PlacementError> {
        let bad = |reason: String| PlacementError::BadLayerMap {
            spec: spec.to_string(),
            reason,
        };
        let mut out: Vec<(u32, u32)> = Vec::new();
        for entry in spec.split([';', ',']).map(str::trim).filter(|e| !e.is_empty()) {
            let (o, n) = entry
                .split_once(':')
                .ok_or_else(|| bad(format!("entry {entry:?} is not ORDINAL:LAYERS")))?;
            let o = o.trim().trim_start_matches("cuda");
            let ord: u32 = o
                .trim()
                .parse()
                .map_err(|_| bad(format!("{o:?} is not a device ordinal")))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| bad(format!("{n:?} is not a number of layers")))?;
            if out.iter().any(|&(x, _)| x == ord) {
                return Err(bad(format!("cuda:{ord} is listed twice")));
            }
            out.push((ord, n));
        }
        if out.is_empty() {
            return Err(bad("no entries".into()));
        }
        Ok(out)
    }
}

impl Strategy for LayerMap {
    fn name(&self) -> &'static str {
        "layer-map"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        self.budget.validate()?;
        let named: Vec<Device> = self.map.iter().map(|&(o, _)| Device::Cuda(o)).collect();
        if let Some(&d) = named.iter().find(|d| inventory.get(**d).is_none()) {
            return Err(PlacementError::DeviceNotInInventory { device: d });
        }
        let budget = GpuBudget {
            max_gpus: None,
            ..self.budget
        };
        let b = Builder::new(tensors, inventory, false, |m| {
            if named.contains(&m.device) || !m.device.is_cuda() {
                budget.capacity(m)
            } else {
                0
            }
        })?;
        let layers: Vec<u32> = b
            .units
            .iter()
            .filter_map(|u| match u.kind {
                UnitKind::Layer(l) => Some(l),
                _ => None,
            })
            .collect();
        let mut map = BTreeMap::new();
        let mut it = layers.iter();
        let mut asked = 0u64;
        for &(ord, n) in &self.map {
            asked += u64::from(n);
            for &l in it.by_ref().take(n as usize) {
                map.insert(l, Device::Cuda(ord));
            }
        }
        for &l in it {
            map.insert(l, Device::Cpu);
        }
        let mut decisions = vec![format!(
            "layer map {}: {} of {} layer(s) on GPU, the rest on the CPU",
            self.map
                .iter()
                .map(|(o, n)| format!("{o}:{n}"))
                .collect::<Vec<_>>()
                .join(";"),
            asked.min(layers.len() as u64),
            layers.len()
        )];
        if asked > layers.len() as u64 {
            decisions.push(format!("the map names {asked} layers; the model has {}", layers.len()));
        }
        let output = layers.last().and_then(|l| map.get(l)).copied().unwrap_or(Device::Cpu);
        place_by_layer_map(b, &map, output, self.edges, decisions, self.name(), "the layer map")
    }
}

/// Shared by the explicit strategies: layers where `map` says, the output layer on
/// `output` (unless pinned to the CPU), the embedding with layer 0 or on the CPU, other
/// tensors on the CPU.
fn place_by_layer_map(
    mut b: Builder<'_>,
    map: &BTreeMap<u32, Device>,
    output: Device,
    edges: EdgePolicy,
    decisions: Vec<String>,
    name: &str,
    asked_by: &str,
) -> Result<Plan, PlacementError> {
    b.decisions.extend(decisions);
    let first_layer = map.values().next().copied().unwrap_or(Device::Cpu);
    let fallback = |b: &Builder<'_>, d: Device| if b.has(Device::Cpu) { Device::Cpu } else { d };
    for u in 0..b.units.len() {
        let (d, reason) = match b.units[u].kind {
            UnitKind::Layer(l) => {
                let d = map[&l];
                (d, format!("{d}: asked by {asked_by}"))
            }
            UnitKind::Embedding => match edges.embedding {
                EdgePlacement::Cpu => (
                    fallback(&b, first_layer),
                    "input embedding kept on the CPU (policy: a row lookup gains nothing on a GPU)".into(),
                ),
                EdgePlacement::WithLayers => (first_layer, "input embedding with layer 0".into()),
            },
            UnitKind::Output => match edges.output {
                EdgePlacement::Cpu => (fallback(&b, output), "output layer kept on the CPU (policy)".into()),
                EdgePlacement::WithLayers => (output, format!("output layer on {output}: asked by {asked_by}")),
            },
            UnitKind::Other => (fallback(&b, output), "not part of a layer: CPU".into()),
        };
        b.place(u, d, &reason)?;
    }
    Ok(b.finish(name))
}

/// Chooses a strategy from the inventory and records why: CPU only without GPUs;
/// GPU first when the model fits the first GPU's budget or there is only one GPU;
/// multi-GPU otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Auto {
    /// Per GPU budget.
    pub budget: GpuBudget,
    /// Embedding and output layer policy.
    pub edges: EdgePolicy,
}

impl Strategy for Auto {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn plan(&self, tensors: &[TensorSpec], inventory: &Inventory) -> Result<Plan, PlacementError> {
        self.budget.validate()?;
        let gpus = self.budget.gpus(inventory);
        let total: u64 = tensors.iter().map(|t| t.bytes).sum();
        let (mut plan, why) = if gpus.is_empty() {
            (
                CpuOnly.plan(tensors, inventory)?,
                "auto: no CUDA device in the inventory, so CPU only".to_string(),
            )
        } else {
            let first = inventory.get(gpus[0]).expect("from the inventory");
            let cap = self.budget.capacity(first);
            if total <= cap || gpus.len() == 1 {
                let why = if total <= cap {
                    format!(
                        "auto: the model ({}) fits {}'s budget ({}): GPU first",
                        format_size(total),
                        gpus[0],
                        format_size(cap)
                    )
                } else {
                    format!(
                        "auto: the model ({}) exceeds {}'s budget ({}) and there is one GPU: GPU first, whole layers spill to the CPU",
                        format_size(total),
                        gpus[0],
                        format_size(cap)
                    )
                };
                let s = GpuFirst {
                    budget: self.budget,
                    edges: self.edges,
                    split_layers: false,
                };
                (s.plan(tensors, inventory)?, why)
            } else {
                let why = format!(
                    "auto: the model ({}) exceeds {}'s budget ({}) and there are {} GPUs: split across them",
                    format_size(total),
                    gpus[0],
                    format_size(cap),
                    gpus.len()
                );
                let s = MultiGpu {
                    budget: self.budget,
                    edges: self.edges,
                };
                (s.plan(tensors, inventory)?, why)
            }
        };
        plan.strategy = format!("auto -> {}", plan.strategy);
        // After the inventory's own notes, before the chosen strategy's decisions.
        let at = (inventory.notes.len() + usize::from(inventory.simulated)).min(plan.decisions.len());
        plan.decisions.insert(at, why);
        Ok(plan)
    }
}
