//! # qload-placement
//!
//! Devices (the CPU; CUDA behind the `gpu` feature), memory inventories and placement
//! strategies: pure functions from (tensors with byte sizes and layer indices, an
//! inventory) to a [`Plan`] that says which tensor goes where and why.
//!
//! ```
//! use qload_placement::{GpuFirst, Inventory, Strategy, TensorSpec, Device};
//!
//! let mut tensors = vec![TensorSpec::classify("token_embd.weight", 100)];
//! for l in 0..4 {
//!     tensors.push(TensorSpec::classify(format!("blk.{l}.attn_q.weight"), 1000));
//! }
//! tensors.push(TensorSpec::classify("output.weight", 100));
//! let inventory = Inventory::simulate("cuda:0=2500B,cpu=1MiB").unwrap();
//! let plan = GpuFirst::default().plan(&tensors, &inventory).unwrap();
//! // 80% of 2500 bytes = 2000: two layers on the GPU, the rest spills to the CPU.
//! assert_eq!(plan.usage(Device::Cuda(0)).unwrap().layers, [0, 1]);
//! assert_eq!(plan.device_of("blk.2.attn_q.weight"), Some(Device::Cpu));
//! plan.verify(&tensors).unwrap();
//! ```
//!
//! Without the `gpu` feature every CUDA request is [`PlacementError::GpuNotCompiled`];
//! with it but without a driver, [`PlacementError::NoCudaDriver`]. Neither panics;
//! [`CudaPolicy::IfAvailable`] falls back to the CPU instead.
#![deny(missing_docs)]

mod buffer;
#[cfg(feature = "gpu")]
pub mod cuda;
mod device;
mod error;
mod fallback;
mod inventory;
mod plan;
mod size;
mod strategy;
pub mod sysmem;
mod tensor;

pub use buffer::{AlignedBuffer, CpuBuffer};
pub use device::Device;
pub use error::{PlacementError, Result};
pub use fallback::{AllocationFailure, FallbackChain};
pub use inventory::{CudaPolicy, DeviceMemory, Inventory};
pub use plan::{DeviceUsage, PLAN_SCHEMA, PlacedTensor, Plan, layer_ranges};
pub use size::{format_size, parse_size};
pub use strategy::{
    Auto, CpuOnly, EdgePlacement, EdgePolicy, GpuBudget, GpuFirst, LayerMap, MultiGpu, NGpuLayers, Strategy,
};
pub use tensor::{Role, TensorSpec};

/// Whether this build was compiled with CUDA support (the `gpu` feature).
pub const GPU_COMPILED: bool = cfg!(feature = "gpu");

/// Free and total memory of every CUDA device. Without the `gpu` feature:
/// [`PlacementError::GpuNotCompiled`]; without a driver: [`PlacementError::NoCudaDriver`].
pub fn cuda_memory() -> Result<Vec<DeviceMemory>> {
    #[cfg(feature = "gpu")]
    {
        cuda::cuda_memory()
    }
    #[cfg(not(feature = "gpu"))]
    {
        Err(PlacementError::GpuNotCompiled {
            device: Device::Cuda(0),
        })
    }
}
