//! The kernel interfaces lvsnap uses outside device-mapper: the block-device
//! size ioctls and, for examples and tests, loop devices. The ioctl numbers
//! and `struct loop_config` come from the system's `<linux/fs.h>` and
//! `<linux/loop.h>` through bindgen (see `build.rs`); this module is the only
//! place that issues them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// bindgen's output for `src/sys/uapi.h`.
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, missing_docs)]
mod uapi {
    include!(concat!(env!("OUT_DIR"), "/uapi.rs"));
}

/// The size in bytes and the logical sector size of the block device `file`.
pub(crate) fn block_device_size(file: &File) -> io::Result<(u64, u32)> {
    let mut size: u64 = 0;
    let mut ss: libc::c_int = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 and BLKSSZGET one int through the
    // pointer, which points at a live local of that type.
    let ok = unsafe {
        libc::ioctl(file.as_raw_fd(), uapi::BLKGETSIZE64 as _, &mut size) == 0
            && libc::ioctl(file.as_raw_fd(), uapi::BLKSSZGET as _, &mut ss) == 0
    };
    if !ok {
        return Err(io::Error::last_os_error());
    }
    Ok((size, u32::try_from(ss).unwrap_or(512)))
}

/// Zeroes `len` bytes at `offset` of the block device `file` (BLKZEROOUT:
/// the kernel writes zeroes, or uses a write-zeroes command that guarantees
/// them; never a discard that might not). Both must be multiples of the
/// logical sector size.
pub(crate) fn zero_out(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64s (start, length) through the pointer,
    // which points at a live local array of two u64s.
    if unsafe { libc::ioctl(file.as_raw_fd(), uapi::BLKZEROOUT as _, range.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A loop device attached to a backing file, detached when dropped (the
/// kernel defers the detach while something, e.g. a device-mapper table,
/// still holds it). For examples and tests that need a block device.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    dev: File,
}

impl LoopDevice {
    /// Attaches the first free loop device to `backing` (read-write).
    pub fn attach(backing: &Path) -> io::Result<LoopDevice> {
        let file = OpenOptions::new().read(true).write(true).open(backing)?;
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")?;
        // Another process may take the free device between the two ioctls:
        // then LOOP_CONFIGURE says EBUSY and we ask for the next one.
        for _ in 0..64 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns an index.
            let n = unsafe { libc::ioctl(ctl.as_raw_fd(), uapi::LOOP_CTL_GET_FREE as _) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let dev = OpenOptions::new().read(true).write(true).open(&path)?;
            let config = uapi::loop_config {
                fd: u32::try_from(file.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
                ..Default::default()
            };
            // SAFETY: LOOP_CONFIGURE reads one struct loop_config, which
            // lives on the stack for the call; the kernel takes its own
            // reference to the backing file.
            let r = unsafe { libc::ioctl(dev.as_raw_fd(), uapi::LOOP_CONFIGURE as _, &config) };
            if r == 0 {
                return Ok(LoopDevice { path, dev });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(e);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "no free loop device after 64 tries",
        ))
    }

    /// The device node, `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { libc::ioctl(self.dev.as_raw_fd(), uapi::LOOP_CLR_FD as _) };
    }
}
