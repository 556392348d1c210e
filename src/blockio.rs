//! Block I/O shared by every layer: aligned buffers for `O_DIRECT`, opening
//! a device for direct I/O, its size and logical sector size, reads and
//! writes at any offset through a bounce buffer, and zeroing a range.
//!
//! `O_DIRECT` wants the buffer, the offset and the length aligned to the
//! device's logical block size; [`ALIGN`] (4096) covers every block size in
//! use, so buffers are always aligned to it.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of `O_DIRECT` buffers (the largest logical block size in use).
pub(crate) const ALIGN: usize = 4096;

/// A zeroed heap buffer of `len` bytes whose data starts on an [`ALIGN`]
/// boundary.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub(crate) fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len.saturating_add(ALIGN)];
        // `align_offset` may say it cannot align (usize::MAX): then the data
        // starts unaligned, and the kernel refuses the I/O (EINVAL) rather
        // than the slice running past the allocation.
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// Opens `path` for reading (and writing if `write`): a block device with
/// `O_DIRECT`, bypassing the page cache as LVM does; an image file buffered.
pub(crate) fn open(path: &Path, write: bool) -> io::Result<File> {
    let direct = std::fs::metadata(path)?.file_type().is_block_device();
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(path)
}

/// The size in bytes of `file` and the granularity its direct I/O needs:
/// a block device's logical sector size (512 to [`ALIGN`]), 512 for a file.
pub(crate) fn geometry(file: &File) -> io::Result<(u64, u64)> {
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Ok((meta.len(), 512));
    }
    let (size, ss) = crate::sys::block_device_size(file)?;
    Ok((size, u64::from(ss).clamp(512, ALIGN as u64)))
}

/// The whole blocks of `block` bytes that cover `len` bytes at `off`:
/// their start and length.
fn cover(off: u64, len: usize, block: u64) -> io::Result<(u64, usize)> {
    let end = off
        .checked_add(len as u64)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let a = off - off % block;
    let b = end
        .checked_next_multiple_of(block)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let n = usize::try_from(b - a).map_err(|_| io::ErrorKind::InvalidInput)?;
    Ok((a, n))
}

/// Fills `buf` from byte `off` of `file`, reading whole `block`-byte blocks
/// into an aligned bounce buffer, so any offset and length work with
/// `O_DIRECT`. The caller checks the range against the device's size.
pub(crate) fn read_at(file: &File, buf: &mut [u8], off: u64, block: u64) -> io::Result<()> {
    let (a, n) = cover(off, buf.len(), block)?;
    let mut bounce = AlignedBuf::new(n);
    file.read_exact_at(&mut bounce, a)?;
    let skip = (off - a) as usize;
    buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
    Ok(())
}

/// Writes `data` at byte `off` of `file` in whole `block`-byte blocks
/// (read-modify-write of a partial first or last block).
pub(crate) fn write_at(file: &File, data: &[u8], off: u64, block: u64) -> io::Result<()> {
    let (a, n) = cover(off, data.len(), block)?;
    let mut bounce = AlignedBuf::new(n);
    if a != off || n != data.len() {
        file.read_exact_at(&mut bounce, a)?;
    }
    let skip = (off - a) as usize;
    bounce[skip..skip + data.len()].copy_from_slice(data);
    file.write_all_at(&bounce, a)
}

/// Zeroes bytes `from..to` of `file` (both multiples of its logical sector
/// size) with BLKZEROOUT, which guarantees zeroes (never a discard that
/// might not); where the device has no such ioctl, by writing zeroes
/// `chunk` bytes at a time.
pub(crate) fn zero_range(file: &File, from: u64, to: u64, chunk: usize) -> io::Result<()> {
    if from >= to {
        return Ok(());
    }
    match crate::sys::zero_out(file, from, to - from) {
        Ok(()) => return Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)
            ) =>
        {
            log::debug!("BLKZEROOUT: {e}; writing zeros");
        }
        Err(e) => return Err(e),
    }
    let zeros = AlignedBuf::new(chunk.max(ALIGN));
    let mut off = from;
    while off < to {
        let n = usize::try_from((to - off).min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all_at(&zeros[..n], off)
            .map_err(|e| io::Error::new(e.kind(), format!("write zeroes at byte {off}: {e}")))?;
        off += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_zeroed() {
        for len in [0, 1, 511, 4096, 10_000] {
            let b = AlignedBuf::new(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert!(b.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn cover_rounds_out_to_whole_blocks() {
        assert_eq!(cover(0, 512, 512).unwrap(), (0, 512));
        assert_eq!(cover(100, 10, 512).unwrap(), (0, 512));
        assert_eq!(cover(500, 20, 512).unwrap(), (0, 1024));
        assert_eq!(cover(4096, 1, 4096).unwrap(), (4096, 4096));
        assert!(cover(u64::MAX - 1, 10, 512).is_err());
    }

    #[test]
    fn reads_and_writes_at_any_offset_of_a_file() {
        let path = std::env::temp_dir().join(format!("lvsnap-blockio-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let f = open(&path, true).unwrap();
        assert_eq!(geometry(&f).unwrap(), (4096, 512));
        write_at(&f, &[1, 2, 3], 510, 512).unwrap();
        let mut b = [0u8; 5];
        read_at(&f, &mut b, 509, 512).unwrap();
        assert_eq!(b, [7, 1, 2, 3, 7]);
        zero_range(&f, 512, 1024, 4096).unwrap();
        let mut z = [9u8; 514];
        read_at(&f, &mut z, 511, 512).unwrap();
        assert_eq!((z[0], z[1], z[512], z[513]), (2, 0, 0, 7));
        let _ = std::fs::remove_file(&path);
    }
}
