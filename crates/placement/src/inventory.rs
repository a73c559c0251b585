//! Memory inventories: how much memory each device has, detected or simulated.

use serde::{Deserialize, Serialize};

use crate::{Device, PlacementError, parse_size};

/// One device's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// The device.
    pub device: Device,
    /// Total bytes (for the CPU: `MemTotal` or the cgroup limit).
    pub total_bytes: u64,
    /// Bytes free now (for the CPU: `MemAvailable` or what the cgroup still allows).
    pub free_bytes: u64,
    /// The device's name when known (`NVIDIA H100 80GB HBM3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What to do about CUDA when detecting an inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaPolicy {
    /// Do not look for CUDA devices.
    Ignore,
    /// Use CUDA devices when the build and the machine have them; otherwise fall back
    /// to the CPU and say why in [`Inventory::notes`].
    IfAvailable,
    /// Fail with a typed error when no CUDA device can be used.
    Require,
}

/// The devices a strategy may use and their memory: CUDA devices by ordinal, then the
/// CPU. Built by [`Inventory::detect`], [`Inventory::simulate`] or [`Inventory::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    devices: Vec<DeviceMemory>,
    /// Where the numbers came from and what was left out (cgroup limits, a missing
    /// driver).
    pub notes: Vec<String>,
    /// True for [`Inventory::simulate`]d inventories.
    pub simulated: bool,
}

impl Inventory {
    /// An inventory from explicit device memories (sorted: CUDA by ordinal, CPU last).
    pub fn new(mut devices: Vec<DeviceMemory>) -> Result<Self, PlacementError> {
        devices.sort_by_key(|d| d.device);
        if let Some(w) = devices.windows(2).find(|w| w[0].device == w[1].device) {
            return Err(PlacementError::DuplicateDevice { device: w[0].device });
        }
        for d in &mut devices {
            d.free_bytes = d.free_bytes.min(d.total_bytes);
        }
        Ok(Self {
            devices,
            notes: Vec::new(),
            simulated: false,
        })
    }

    /// A simulated inventory: `cuda:0=24GiB,cuda:1=24GiB,cpu=64GiB`. Each entry is
    /// `DEVICE=TOTAL` (all free) or `DEVICE=TOTAL/FREE`; entries are separated by `,`
    /// or `;`. A spec without `cpu` has no CPU: what does not fit the GPUs fails.
    pub fn simulate(spec: &str) -> Result<Self, PlacementError> {
        let bad = |reason: String| PlacementError::BadInventorySpec {
            spec: spec.to_string(),
            reason,
        };
        let mut devices = Vec::new();
        for entry in spec.split([',', ';']).map(str::trim).filter(|e| !e.is_empty()) {
            let (dev, size) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("entry {entry:?} is not DEVICE=SIZE")))?;
            let device = dev.parse::<Device>().map_err(|e| bad(e.to_string()))?;
            let (total, free) = match size.split_once('/') {
                Some((t, f)) => (t, Some(f)),
                None => (size, None),
            };
            let total_bytes = parse_size(total).map_err(|e| bad(e.to_string()))?;
            let free_bytes = match free {
                Some(f) => parse_size(f).map_err(|e| bad(e.to_string()))?,
                None => total_bytes,
            };
            if free_bytes > total_bytes {
                return Err(bad(format!(
                    "{device}: free {free_bytes} is more than total {total_bytes}"
                )));
            }
            devices.push(DeviceMemory {
                device,
                total_bytes,
                free_bytes,
                name: Some("simulated".into()),
            });
        }
        if devices.is_empty() {
            return Err(bad("no devices".into()));
        }
        let mut inv = Self::new(devices).map_err(|e| bad(e.to_string()))?;
        inv.simulated = true;
        if inv.cpu().is_none() {
            inv.notes
                .push("simulated inventory has no cpu entry: nothing can spill to the CPU".into());
        }
        Ok(inv)
    }

    /// Detects the CPU's memory (cgroup limits honoured) and, by `policy`, the CUDA
    /// devices' free and total memory through the driver API.
    pub fn detect(policy: CudaPolicy) -> Result<Self, PlacementError> {
        let cpu = crate::sysmem::cpu_memory()?;
        let mut notes = Vec::new();
        if let Some(limit) = &cpu.limit {
            notes.push(format!("cpu: {limit}"));
        }
        let mut devices = vec![DeviceMemory {
            device: Device::Cpu,
            total_bytes: cpu.total,
            free_bytes: cpu.available,
            name: None,
        }];
        match policy {
            CudaPolicy::Ignore => {}
            CudaPolicy::Require => devices.extend(crate::cuda_memory()?),
            CudaPolicy::IfAvailable => match crate::cuda_memory() {
                Ok(gpus) => devices.extend(gpus),
                Err(e) => notes.push(format!("CPU only: {e}")),
            },
        }
        let mut inv = Self::new(devices)?;
        inv.notes = notes;
        Ok(inv)
    }

    /// All devices: CUDA by ordinal, then the CPU.
    pub fn devices(&self) -> &[DeviceMemory] {
        &self.devices
    }

    /// One device's memory.
    pub fn get(&self, device: Device) -> Option<&DeviceMemory> {
        self.devices.iter().find(|d| d.device == device)
    }

    /// The CUDA devices, by ordinal.
    pub fn gpus(&self) -> impl Iterator<Item = &DeviceMemory> {
        self.devices.iter().filter(|d| d.device.is_cuda())
    }

    /// The CPU, when present.
    pub fn cpu(&self) -> Option<&DeviceMemory> {
        self.get(Device::Cpu)
    }

    /// Keeps the CPU and only the CUDA devices for which `keep` is true.
    pub fn retain_gpus(mut self, mut keep: impl FnMut(&DeviceMemory) -> bool) -> Self {
        self.devices.retain(|d| !d.device.is_cuda() || keep(d));
        self
    }

    /// Keeps the CPU and the first `n` CUDA devices.
    pub fn limit_gpus(self, n: usize) -> Self {
        let mut seen = 0;
        self.retain_gpus(|_| {
            seen += 1;
            seen <= n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulate_parses_and_sorts() {
        let inv = Inventory::simulate("cpu=64GiB, cuda:1=24GiB;cuda:0=24GiB/20GiB").unwrap();
        let d: Vec<_> = inv.devices().iter().map(|d| d.device).collect();
        assert_eq!(d, [Device::Cuda(0), Device::Cuda(1), Device::Cpu]);
        assert_eq!(inv.get(Device::Cuda(0)).unwrap().free_bytes, 20 << 30);
        assert_eq!(inv.cpu().unwrap().total_bytes, 64 << 30);
        assert!(inv.simulated && inv.notes.is_empty());
        assert_eq!(inv.clone().limit_gpus(1).gpus().count(), 1);
        let gpu_only = Inventory::simulate("cuda:0=1GiB").unwrap();
        assert!(gpu_only.cpu().is_none() && !gpu_only.notes.is_empty());
    }

    #[test]
    fn simulate_errors_name_the_problem() {
        for (spec, needle) in [
            ("", "no devices"),
            ("cuda:0", "not DEVICE=SIZE"),
            ("gpu0=1GiB", "expected `cpu` or `cuda:N`"),
            ("cuda:0=lots", "bad size"),
            ("cuda:0=1GiB,cuda:0=2GiB", "listed twice"),
            ("cpu=1GiB/2GiB", "more than total"),
        ] {
            let e = Inventory::simulate(spec).unwrap_err();
            assert!(matches!(e, PlacementError::BadInventorySpec { .. }), "{spec}: {e}");
            assert!(e.to_string().contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn duplicate_devices_are_refused() {
        let m = |device| DeviceMemory {
            device,
            total_bytes: 1,
            free_bytes: 1,
            name: None,
        };
        let e = Inventory::new(vec![m(Device::Cpu), m(Device::Cpu)]).unwrap_err();
        assert!(matches!(e, PlacementError::DuplicateDevice { device: Device::Cpu }));
    }

    #[test]
    fn detect_cpu_only() {
        let inv = Inventory::detect(CudaPolicy::Ignore).unwrap();
        assert_eq!(inv.devices().len(), 1);
        assert!(inv.cpu().unwrap().free_bytes > 0);
    }

    #[test]
    fn detect_without_a_usable_gpu_falls_back_or_fails_by_policy() {
        // On machines without CUDA (or builds without `gpu`) IfAvailable says why and
        // keeps the CPU; Require is a typed error. With a real GPU both succeed.
        let inv = Inventory::detect(CudaPolicy::IfAvailable).unwrap();
        if inv.gpus().next().is_none() {
            assert!(inv.notes.iter().any(|n| n.starts_with("CPU only:")), "{:?}", inv.notes);
            let e = Inventory::detect(CudaPolicy::Require).unwrap_err();
            if cfg!(feature = "gpu") {
                assert!(
                    matches!(
                        e,
                        PlacementError::NoCudaDriver { .. }
                            | PlacementError::NoSuchDevice { .. }
                            | PlacementError::Cuda { .. }
                    ),
                    "{e}"
                );
            } else {
                assert!(matches!(e, PlacementError::GpuNotCompiled { .. }), "{e}");
                assert!(e.to_string().contains("not compiled with gpu support"));
            }
        }
    }
}
