//! The crate's error type.

use crate::Device;

/// Everything that can go wrong while describing devices, detecting memory, planning or
/// allocating. Capacity problems are values, never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// CUDA was asked for, but this build has no `gpu` feature.
    #[error("{device}: not compiled with gpu support (rebuild with `--features gpu`, or use the CPU)")]
    GpuNotCompiled {
        /// The device that was asked for.
        device: Device,
    },
    /// The CUDA driver library (`libcuda.so`) could not be loaded.
    #[error("no CUDA device: driver not found ({detail}); install the NVIDIA driver or use the CPU")]
    NoCudaDriver {
        /// What was tried.
        detail: String,
    },
    /// The driver loaded but the device ordinal does not exist.
    #[error("no CUDA device {device}: the driver reports {available} device(s)")]
    NoSuchDevice {
        /// The device that was asked for.
        device: Device,
        /// How many CUDA devices the driver reports.
        available: usize,
    },
    /// A CUDA driver call failed.
    #[error("CUDA {call} failed on {device}: {message}")]
    Cuda {
        /// The device the call was for.
        device: Device,
        /// The driver call (`cuInit`, `cuMemcpyHtoDAsync`, ...).
        call: &'static str,
        /// The driver's message.
        message: String,
    },
    /// A device allocation failed for lack of memory (at load time, not planning time).
    #[error("out of memory on {device}: allocating {requested} bytes failed")]
    OutOfDeviceMemory {
        /// The device.
        device: Device,
        /// The size of the allocation that failed.
        requested: u64,
    },
    /// A tensor or layer does not fit on the device a strategy must put it on.
    #[error(
        "{what} needs {needed} bytes but {device} has {available} bytes left in its budget; \
         give it more memory (--vram, --vram-fraction), fewer GPU layers, or let it spill to the CPU"
    )]
    DoesNotFit {
        /// What was being placed (`layer 12`, `embedding`, a tensor name).
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left on the device.
        available: u64,
        /// The device.
        device: Device,
    },
    /// A size such as `24GiB` could not be parsed.
    #[error("bad size {text:?}: {reason} (examples: 300KiB, 8GiB, 1.5GB, 4096)")]
    BadSize {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A device name other than `cpu` or `cuda:N`.
    #[error("bad device {text:?}: expected `cpu` or `cuda:N`")]
    BadDevice {
        /// The text given.
        text: String,
    },
    /// A simulated inventory such as `cuda:0=24GiB,cpu=64GiB` could not be parsed.
    #[error("bad simulated inventory {spec:?}: {reason} (example: \"cuda:0=24GiB,cuda:1=24GiB,cpu=64GiB\")")]
    BadInventorySpec {
        /// The spec given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer map such as `0:10;1:20` could not be parsed.
    #[error("bad layer map {spec:?}: {reason} (example: \"0:10;1:20\" = 10 layers on cuda:0, 20 on cuda:1)")]
    BadLayerMap {
        /// The spec given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A strategy was told to use a device the inventory does not have.
    #[error("{device} is not in the memory inventory")]
    DeviceNotInInventory {
        /// The device.
        device: Device,
    },
    /// The inventory lists a device twice.
    #[error("{device} is listed twice in the memory inventory")]
    DuplicateDevice {
        /// The device.
        device: Device,
    },
    /// Two tensors with the same name were given to a strategy.
    #[error("tensor {name:?} is listed twice")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A tensor named in a fallback request is not in the plan.
    #[error("tensor {name:?} is not in the plan")]
    UnknownTensor {
        /// The name.
        name: String,
    },
    /// An option is out of range.
    #[error("bad option {option}: {reason}")]
    BadOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The host's memory information could not be read.
    #[error("cannot read memory information from {path}: {reason}")]
    MemoryInfo {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// This crate's result type.
pub type Result<T, E = PlacementError> = std::result::Result<T, E>;
