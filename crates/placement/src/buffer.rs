//! Host buffers: an owned, 64-byte aligned allocation, or a borrowed view (of a mapped
//! file, typically).

use std::ops::{Deref, DerefMut};

/// 64 bytes, 64-aligned: the unit of [`AlignedBuffer`]'s storage.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

const _: () = assert!(size_of::<Line>() == 64 && align_of::<Line>() == 64);

/// An owned byte buffer whose start is 64-byte aligned (a cache line; enough for any
/// SIMD load and for ggml's block types). Zero-initialised; no `unsafe`.
#[derive(Clone)]
pub struct AlignedBuffer {
    lines: Vec<Line>,
    len: usize,
}

impl std::fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuffer").field("len", &self.len).finish()
    }
}

impl AlignedBuffer {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Self {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.copy_from_slice(bytes);
        b
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Deref for AlignedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice::<Line, u8>(&self.lines)[..self.len]
    }
}

impl DerefMut for AlignedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Line, u8>(&mut self.lines)[..self.len]
    }
}

/// A tensor's bytes in host memory: owned and aligned, or borrowed (a view of a mapped
/// file, zero copy).
#[derive(Debug, Clone)]
pub enum CpuBuffer<'a> {
    /// Owned, 64-byte aligned.
    Owned(AlignedBuffer),
    /// Borrowed, as aligned as its source.
    Borrowed(&'a [u8]),
}

impl CpuBuffer<'_> {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuBuffer::Owned(b) => b,
            CpuBuffer::Borrowed(b) => b,
        }
    }

    /// An owned copy (a no-op for owned buffers).
    pub fn into_owned(self) -> CpuBuffer<'static> {
        match self {
            CpuBuffer::Owned(b) => CpuBuffer::Owned(b),
            CpuBuffer::Borrowed(b) => CpuBuffer::Owned(AlignedBuffer::copy_from(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_exact() {
        for len in [0usize, 1, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let b = AlignedBuffer::copy_from(&data);
            assert_eq!(&*b, &data[..]);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % 64, 0, "len {len}");
        }
        let borrowed = CpuBuffer::Borrowed(&[1, 2, 3]);
        let owned = borrowed.clone().into_owned();
        assert_eq!(owned.as_bytes(), borrowed.as_bytes());
        assert!(matches!(owned, CpuBuffer::Owned(_)));
    }
}
