//! Zip archives over a byte slice (PyTorch checkpoints and NPZ files): the member
//! list with each member's absolute data range, validated.

use std::collections::HashSet;
use std::ops::Range;

use crate::error::{Error, Result};

/// Most members accepted in one archive.
pub const MAX_MEMBERS: usize = 1 << 20;

/// One member of a zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name as stored.
    pub name: String,
    /// Absolute byte range of the (possibly compressed) data in the file.
    pub data: Range<u64>,
    /// Whether the data is stored uncompressed (and so can be used in place).
    pub stored: bool,
    /// Uncompressed size as declared by the archive.
    pub size: u64,
}

/// Lists the members of the zip archive in `bytes`.
///
/// Refuses names with `..` components or absolute paths, duplicate names, and
/// members whose data lies outside the file.
pub fn members(bytes: &[u8]) -> Result<Vec<Member>> {
    let zip_err = |reason: String| Error::Zip { reason };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| zip_err(e.to_string()))?;
    if archive.len() > MAX_MEMBERS {
        return Err(Error::TooMany {
            what: "zip member",
            count: archive.len() as u64,
            max: MAX_MEMBERS as u64,
        });
    }
    let mut out = Vec::with_capacity(archive.len());
    let mut names = HashSet::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|e| zip_err(e.to_string()))?;
        let name = file.name().map_err(|e| zip_err(e.to_string()))?.to_string();
        if name.starts_with('/') || name.starts_with('\\') || name.split(['/', '\\']).any(|c| c == "..") {
            return Err(zip_err(format!("member {name:?} has an unsafe path")));
        }
        if !names.insert(name.clone()) {
            return Err(zip_err(format!("member {name:?} appears twice")));
        }
        let start = file
            .data_start()
            .ok_or_else(|| zip_err(format!("member {name:?} has no data offset")))?;
        let end = start
            .checked_add(file.compressed_size())
            .filter(|&e| e <= bytes.len() as u64)
            .ok_or_else(|| {
                zip_err(format!(
                    "member {name:?} data ({} bytes at {start}) runs past the end of the file",
                    file.compressed_size()
                ))
            })?;
        let stored = file.compression() == zip::CompressionMethod::Stored;
        if stored && file.size() != file.compressed_size() {
            return Err(zip_err(format!("stored member {name:?} has inconsistent sizes")));
        }
        out.push(Member {
            name,
            data: start..end,
            stored,
            size: file.size(),
        });
    }
    Ok(out)
}
