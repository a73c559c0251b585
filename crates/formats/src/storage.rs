//! The bytes of one file: a read-only memory map or an owned buffer. The map call
//! and `release`'s `madvise` are the only `unsafe` in this crate.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a file's bytes are brought into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapMode {
    /// Map the file read-only (default): no copy, pages fault in on first touch.
    #[default]
    Mmap,
    /// Read the whole file into memory. Immune to the file being truncated while in
    /// use (a mapped file that shrinks raises SIGBUS on access), at the cost of RAM.
    Read,
}

/// The bytes of one opened file.
#[derive(Debug)]
pub struct FileBytes {
    path: PathBuf,
    bytes: Bytes,
}

#[derive(Debug)]
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Opens `path` with `mode`.
    pub fn open(path: &Path, mode: MapMode) -> Result<FileBytes> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bytes = match mode {
            MapMode::Mmap => {
                let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
                if len == 0 {
                    // Mapping an empty file fails on some platforms; there is nothing to map.
                    Bytes::Owned(Vec::new())
                } else {
                    // SAFETY: the map is read-only. Another process truncating or rewriting
                    // the file while it is mapped makes reads return the new bytes or raise
                    // SIGBUS; that is the documented contract of mapping (docs/RELIABILITY.md),
                    // and `MapMode::Read` exists for callers who cannot accept it. No Rust
                    // reference into the map outlives this `FileBytes`.
                    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
                    Bytes::Map(map)
                }
            }
            MapMode::Read => Bytes::Owned(std::fs::read(path).map_err(|e| Error::io(path, e))?),
        };
        Ok(FileBytes {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// Wraps bytes already in memory (tests, fuzzing, downloads).
    pub fn from_vec(path: impl Into<PathBuf>, bytes: Vec<u8>) -> FileBytes {
        FileBytes {
            path: path.into(),
            bytes: Bytes::Owned(bytes),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Drops the pages of `range` from this process's resident memory, when the file
    /// is mapped (best effort; a no-op for owned bytes). Reading them again faults
    /// them back in from the file unchanged. Loaders call this on source ranges they
    /// have finished converting, so that a conversion's RSS stays bounded.
    pub fn release(&self, range: std::ops::Range<u64>) {
        #[cfg(unix)]
        if let Bytes::Map(m) = &self.bytes {
            const PAGE: u64 = 4096;
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = range.end.min(m.len() as u64) / PAGE * PAGE;
            if end > start {
                // SAFETY: the map is a private, read-only file mapping that nothing
                // writes through; MADV_DONTNEED only discards resident pages, and a later
                // read faults them back from the file with the same contents, so no
                // reference into the map observes a change.
                let _ = unsafe {
                    m.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start as usize,
                        (end - start) as usize,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// Whether the bytes are a memory map (as opposed to an owned copy).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Map(_))
    }
}
