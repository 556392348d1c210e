//! A PV's device (or image file) as the LVM layer reads and writes it:
//! bounds-checked, block-aligned direct I/O through [`crate::blockio`].

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::blockio;
use crate::units::Bytes;

/// An open device (or image file) with block-aligned, direct I/O.
#[derive(Debug)]
pub struct BlockDev {
    path: PathBuf,
    file: File,
    size: Bytes,
    block: u64,
    writable: bool,
}

impl BlockDev {
    /// Opens `path` (read-only unless `write`): a block device for direct
    /// I/O, as LVM does; an image file buffered (its data reaches the disk
    /// with [`BlockDev::sync`]).
    pub fn open(path: &Path, write: bool) -> Result<BlockDev> {
        let file = blockio::open(path, write).map_err(|e| Error::io_path("open", path, e))?;
        let (size, block) =
            blockio::geometry(&file).map_err(|e| Error::io_path("get size of", path, e))?;
        Ok(BlockDev {
            path: path.to_path_buf(),
            file,
            size: Bytes(u128::from(size)),
            block,
            writable: write,
        })
    }

    /// Whether it was opened for writing.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size.
    pub fn size(&self) -> Bytes {
        self.size
    }

    /// Fails unless `len` bytes at `off` lie within the device.
    fn check_span(&self, off: u64, len: usize) -> Result<()> {
        off.checked_add(len as u64)
            .filter(|&e| u128::from(e) <= *self.size)
            .map(|_| ())
            .ok_or_else(|| {
                Error::corrupt(
                    format!("location on {}", self.path.display()),
                    format!("{len} bytes at {off} run past the end ({})", self.size),
                )
            })
    }

    /// Reads `len` bytes at `off`, bounds-checked against the device size.
    pub fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>> {
        self.check_span(off, len)?;
        let mut out = vec![0u8; len];
        blockio::read_at(&self.file, &mut out, off, self.block).map_err(|e| {
            Error::io(
                format!("read {len} bytes at {off} of {}", self.path.display()),
                e,
            )
        })?;
        Ok(out)
    }

    /// Writes `data` at `off` (read-modify-write when not block-aligned).
    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<()> {
        self.check_span(off, data.len())?;
        blockio::write_at(&self.file, data, off, self.block).map_err(|e| {
            Error::io(
                format!(
                    "write {} bytes at {off} of {}",
                    data.len(),
                    self.path.display()
                ),
                e,
            )
        })
    }

    /// Flushes written data to stable storage.
    pub fn sync(&self) -> Result<()> {
        crate::fault::point("metadata sync");
        self.file
            .sync_data()
            .map_err(|e| Error::io_path("fdatasync", &self.path, e))
    }
}
