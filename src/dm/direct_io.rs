//! Reads of a block device that bypass the page cache (`O_DIRECT`), for
//! on-disk structures the kernel writes behind the page cache's back (COW
//! exception stores, thin-pool metadata).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// Alignment of buffers, offsets and lengths for `O_DIRECT` (the largest
/// logical block size in use).
const ALIGN: usize = 4096;

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
}

impl DirectReader {
    /// Opens `path` read-only, bypassing the page cache.
    pub fn open(path: &Path) -> Result<DirectReader> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let size =
            device_size(&file).map_err(|e| Error::io(format!("size of {}", path.display()), e))?;
        Ok(DirectReader {
            file,
            path: path.to_owned(),
            size,
        })
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadAt for DirectReader {
    /// Reads through an aligned bounce buffer covering whole aligned blocks,
    /// so any offset and length work.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let a = ALIGN as u64;
        let start = offset - offset % a;
        // The device's size is a multiple of 512, not always of 4096.
        let stop = end
            .div_ceil(a)
            .saturating_mul(a)
            .min(self.size.div_ceil(512) * 512);
        let len = usize::try_from(stop - start).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut raw = vec![0u8; len + ALIGN];
        let at = raw.as_ptr().align_offset(ALIGN);
        let window = &mut raw[at..at + len];
        self.file.read_exact_at(window, start)?;
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&window[skip..skip + buf.len()]);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// A block device's size (BLKGETSIZE64, through [`crate::sys`]), or a file's length.
fn device_size(f: &File) -> io::Result<u64> {
    let meta = f.metadata()?;
    if !std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
        return Ok(meta.len());
    }
    crate::sys::block_device_size(f).map(|(size, _)| size)
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
