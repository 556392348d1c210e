//! Reads of a block device that bypass the page cache (`O_DIRECT`), for
//! on-disk structures the kernel writes behind the page cache's back (COW
//! exception stores, thin-pool metadata).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::blockio;

/// Something bytes can be read from at an offset: a device, or a slice in
/// tests and fuzzing.
pub trait ReadAt {
    /// Fills `buf` from byte `offset`; fails unless all of it is there.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The size in bytes.
    fn size(&self) -> u64;
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A block device opened read-only with `O_DIRECT`.
#[derive(Debug)]
pub struct DirectReader {
    file: File,
    path: PathBuf,
    size: u64,
    block: u64,
}

impl DirectReader {
    /// Opens `path` read-only, bypassing the page cache.
    pub fn open(path: &Path) -> Result<DirectReader> {
        let file = blockio::open(path, false)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let (size, block) = blockio::geometry(&file)
            .map_err(|e| Error::io(format!("size of {}", path.display()), e))?;
        Ok(DirectReader {
            file,
            path: path.to_owned(),
            size,
            block,
        })
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open device.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ReadAt for DirectReader {
    /// Reads through an aligned bounce buffer covering whole blocks, so any
    /// offset and length work.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        blockio::read_at(&self.file, buf, offset, self.block)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_in_bounds_only() {
        let v: Vec<u8> = (0..10).collect();
        let mut b = [0u8; 3];
        v.read_exact_at(&mut b, 7).unwrap();
        assert_eq!(b, [7, 8, 9]);
        assert!(v.read_exact_at(&mut b, 8).is_err());
        assert!(v.read_exact_at(&mut b, u64::MAX).is_err());
    }
}
