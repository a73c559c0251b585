//! CUDA through the driver API, loaded at run time (cudarc with `dynamic-loading`):
//! builds without a CUDA toolkit and runs without a driver, where every entry point
//! answers [`PlacementError::NoCudaDriver`].
//!
//! cudarc panics when asked to load a library that is not there, so the driver is
//! probed first with `is_culib_present` (a `dlopen` of the candidate names); as a last
//! resort against a driver library missing a symbol, the first calls run under
//! `catch_unwind` and a panic there becomes `NoCudaDriver` too.
//!
//! Uploads go through a small pinned staging area (two buffers of `chunk` bytes, so
//! copying one chunk into host memory overlaps the DMA of the previous one).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::CUresult;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError, PinnedHostSlice, result,
};

use crate::{Device, DeviceMemory, PlacementError};

/// Default staging chunk: 8 MiB split in two pinned buffers of 4 MiB.
pub const DEFAULT_STAGING_BYTES: usize = 8 << 20;

fn no_driver(detail: impl Into<String>) -> PlacementError {
    PlacementError::NoCudaDriver { detail: detail.into() }
}

fn cuda_err(device: Device, call: &'static str, e: DriverError) -> PlacementError {
    PlacementError::Cuda {
        device,
        call,
        message: e.to_string(),
    }
}

/// Runs a first driver call, turning a cudarc panic (library or symbol missing) into
/// `NoCudaDriver`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, PlacementError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the CUDA driver library could not be used".into());
        no_driver(msg)
    })
}

/// Loads and initialises the driver once; the outcome is remembered.
fn driver() -> Result<(), PlacementError> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            // SAFETY: `is_culib_present` only tries `dlopen` on libcuda's usual names and
            // closes what it opened; loading libcuda runs the driver's own initialisers,
            // as in every CUDA program.
            let present = unsafe { cudarc::driver::sys::is_culib_present() };
            if !present {
                return Err("libcuda.so could not be loaded (is the NVIDIA driver installed? LD_LIBRARY_PATH?)".into());
            }
            match guarded(result::init) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("cuInit failed: {e}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
        .map_err(no_driver)
}

/// Number of CUDA devices the driver reports.
pub fn device_count() -> Result<u32, PlacementError> {
    driver()?;
    let n = guarded(CudaContext::device_count)?.map_err(|e| cuda_err(Device::Cuda(0), "cuDeviceGetCount", e))?;
    Ok(u32::try_from(n).unwrap_or(0))
}

/// Free and total memory of every CUDA device (creating each device's primary context).
pub fn cuda_memory() -> Result<Vec<DeviceMemory>, PlacementError> {
    let n = device_count()?;
    if n == 0 {
        return Err(PlacementError::NoSuchDevice {
            device: Device::Cuda(0),
            available: 0,
        });
    }
    (0..n).map(|o| CudaDevice::open(o)?.memory()).collect()
}

/// One CUDA device: its primary context and a stream.
#[derive(Debug)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    device: Device,
}

impl CudaDevice {
    /// Opens device `ordinal`.
    pub fn open(ordinal: u32) -> Result<Self, PlacementError> {
        let device = Device::Cuda(ordinal);
        let n = device_count()?;
        if ordinal >= n {
            return Err(PlacementError::NoSuchDevice {
                device,
                available: n as usize,
            });
        }
        let ctx = guarded(|| CudaContext::new(ordinal as usize))?
            .map_err(|e| cuda_err(device, "cuDevicePrimaryCtxRetain", e))?;
        let stream = ctx.new_stream().map_err(|e| cuda_err(device, "cuStreamCreate", e))?;
        Ok(Self { ctx, stream, device })
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Free and total memory now.
    pub fn memory(&self) -> Result<DeviceMemory, PlacementError> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(|e| cuda_err(self.device, "cuMemGetInfo", e))?;
        Ok(DeviceMemory {
            device: self.device,
            total_bytes: total as u64,
            free_bytes: free as u64,
            name: self.ctx.name().ok(),
        })
    }

    /// Allocates `bytes` of device memory (uninitialised). Out of memory is
    /// [`PlacementError::OutOfDeviceMemory`], for a [`crate::FallbackChain`] to handle.
    pub fn alloc(&self, bytes: usize) -> Result<CudaBuffer, PlacementError> {
        if bytes == 0 {
            return Ok(CudaBuffer {
                slice: None,
                device: self.device,
                stream: self.stream.clone(),
            });
        }
        // SAFETY: the memory is uninitialised; `CudaBuffer` only hands it out through
        // `download`, and `upload_from` requires the full length to be written first
        // for the bytes to be meaningful (reading unwritten device memory is defined,
        // just unspecified, for `u8`).
        let slice = unsafe { self.stream.alloc::<u8>(bytes) }.map_err(|e| {
            if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                PlacementError::OutOfDeviceMemory {
                    device: self.device,
                    requested: bytes as u64,
                }
            } else {
                cuda_err(self.device, "cuMemAlloc", e)
            }
        })?;
        Ok(CudaBuffer {
            slice: Some(slice),
            device: self.device,
            stream: self.stream.clone(),
        })
    }

    /// A pinned staging area of `bytes` (two buffers of half that).
    pub fn stager(&self, bytes: usize) -> Result<Stager, PlacementError> {
        let half = (bytes / 2).max(4096);
        let mut bufs = Vec::with_capacity(2);
        let mut events = Vec::with_capacity(2);
        for _ in 0..2 {
            // SAFETY: pinned memory starts uninitialised; a chunk is always written
            // before the part of it that is copied is read by the DMA.
            let b =
                unsafe { self.ctx.alloc_pinned::<u8>(half) }.map_err(|e| cuda_err(self.device, "cuMemHostAlloc", e))?;
            bufs.push(b);
            events.push(
                self.ctx
                    .new_event(None)
                    .map_err(|e| cuda_err(self.device, "cuEventCreate", e))?,
            );
        }
        Ok(Stager {
            bufs,
            events,
            chunk: half,
            device: self.device,
        })
    }

    /// Allocates and fills a buffer with `data` through `stager`.
    pub fn upload(&self, stager: &mut Stager, data: &[u8]) -> Result<CudaBuffer, PlacementError> {
        let mut b = self.alloc(data.len())?;
        b.upload_from(stager, data)?;
        Ok(b)
    }
}

/// Two pinned host buffers and their events, reused across uploads.
#[derive(Debug)]
pub struct Stager {
    bufs: Vec<PinnedHostSlice<u8>>,
    events: Vec<CudaEvent>,
    chunk: usize,
    device: Device,
}

impl Stager {
    /// Bytes per chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk
    }
}

/// Device memory holding one tensor's bytes.
#[derive(Debug)]
pub struct CudaBuffer {
    slice: Option<CudaSlice<u8>>,
    device: Device,
    stream: Arc<CudaStream>,
}

impl CudaBuffer {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.slice.as_ref().map_or(0, |s| s.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device it lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Copies `data` (exactly [`Self::len`] bytes) from host memory into the buffer in
    /// chunks through the pinned `stager`, and waits for the copy to finish.
    pub fn upload_from(&mut self, stager: &mut Stager, data: &[u8]) -> Result<(), PlacementError> {
        if data.len() != self.len() {
            return Err(PlacementError::BadOption {
                option: "upload_from",
                reason: format!("{} bytes given for a buffer of {}", data.len(), self.len()),
            });
        }
        if stager.device != self.device {
            return Err(PlacementError::BadOption {
                option: "upload_from",
                reason: format!("stager for {} used with a buffer on {}", stager.device, self.device),
            });
        }
        let Some(slice) = self.slice.as_mut() else {
            return Ok(());
        };
        let device = self.device;
        let chunk = stager.chunk;
        let Stager { bufs, events, .. } = stager;
        for (k, part) in data.chunks(chunk).enumerate() {
            let j = k % 2;
            // The previous copy out of this pinned buffer must be done before refilling it.
            events[j]
                .synchronize()
                .map_err(|e| cuda_err(device, "cuEventSynchronize", e))?;
            let host = bufs[j]
                .as_mut_slice()
                .map_err(|e| cuda_err(device, "cuEventSynchronize", e))?;
            host[..part.len()].copy_from_slice(part);
            let off = k * chunk;
            let mut view = slice.slice_mut(off..off + part.len());
            let (dst, record) = view.device_ptr_mut(&self.stream);
            // SAFETY: `dst` points at `part.len()` bytes of this allocation (the view's
            // range), `host[..part.len()]` is pinned memory that stays untouched until
            // `events[j]`, recorded right after on the same stream, completes.
            unsafe { result::memcpy_htod_async(dst, &host[..part.len()], self.stream.cu_stream()) }
                .map_err(|e| cuda_err(device, "cuMemcpyHtoDAsync", e))?;
            drop(record);
            events[j]
                .record(&self.stream)
                .map_err(|e| cuda_err(device, "cuEventRecord", e))?;
        }
        self.stream
            .synchronize()
            .map_err(|e| cuda_err(device, "cuStreamSynchronize", e))
    }

    /// Copies the buffer back to host memory (for checking).
    pub fn download(&self) -> Result<Vec<u8>, PlacementError> {
        let Some(slice) = self.slice.as_ref() else {
            return Ok(Vec::new());
        };
        let mut out = vec![0u8; slice.len()];
        let (src, record) = slice.device_ptr(&self.stream);
        // SAFETY: `out` has exactly the allocation's length and outlives the copy: the
        // stream is synchronised before it is returned.
        unsafe { result::memcpy_dtoh_async(&mut out[..], src, self.stream.cu_stream()) }
            .map_err(|e| cuda_err(self.device, "cuMemcpyDtoHAsync", e))?;
        drop(record);
        self.stream
            .synchronize()
            .map_err(|e| cuda_err(self.device, "cuStreamSynchronize", e))?;
        Ok(out)
    }
}
