//! The kernel interfaces lvsnap uses outside device-mapper: the block-device
//! size ioctls, getrandom and, for examples and tests, loop devices. The ioctl numbers
//! and `struct loop_config` come from the system's `<linux/fs.h>` and
//! `<linux/loop.h>` through bindgen (see `build.rs`), and nix's ioctl macros
//! give each a typed wrapper. This module is the crate's only unsafe code:
//! every other module is `#[forbid(unsafe_code)]` (see lib.rs).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// bindgen's output for `src/sys/uapi.h`.
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, missing_docs)]
mod uapi {
    include!(concat!(env!("OUT_DIR"), "/uapi.rs"));
}

/// Typed wrappers of the ioctls. They are all "bad" (the `_IO` number does
/// not encode the argument, or we take the number from the headers rather
/// than rebuilding it), so each names its argument type here.
mod ioctl {
    use super::uapi;
    nix::ioctl_read_bad!(blkgetsize64, uapi::BLKGETSIZE64, u64);
    nix::ioctl_read_bad!(blksszget, uapi::BLKSSZGET, libc::c_int);
    nix::ioctl_write_ptr_bad!(blkzeroout, uapi::BLKZEROOUT, [u64; 2]);
    nix::ioctl_none_bad!(loop_ctl_get_free, uapi::LOOP_CTL_GET_FREE);
    nix::ioctl_write_ptr_bad!(loop_configure, uapi::LOOP_CONFIGURE, uapi::loop_config);
    nix::ioctl_none_bad!(loop_clr_fd, uapi::LOOP_CLR_FD);
}

/// The size in bytes and the logical sector size of the block device `file`.
pub(crate) fn block_device_size(file: &File) -> io::Result<(u64, u32)> {
    let mut size: u64 = 0;
    let mut ss: libc::c_int = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 and BLKSSZGET one int through the
    // pointer, which points at a live local of that type.
    unsafe {
        ioctl::blkgetsize64(file.as_raw_fd(), &mut size)?;
        ioctl::blksszget(file.as_raw_fd(), &mut ss)?;
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
    unsafe { ioctl::blkzeroout(file.as_raw_fd(), &range) }?;
    Ok(())
}

/// Fills `buf` from the kernel's random source, as `/dev/urandom` gives it
/// (getrandom(2) with no flags: it blocks only before the pool is first
/// seeded, which /dev/urandom does not), in one system call rather than
/// an open, a read and a close.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`,
        // a live, writable slice of exactly that length.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
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
            let n = unsafe { ioctl::loop_ctl_get_free(ctl.as_raw_fd()) }?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let dev = OpenOptions::new().read(true).write(true).open(&path)?;
            let config = uapi::loop_config {
                fd: u32::try_from(file.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
                ..Default::default()
            };
            // SAFETY: LOOP_CONFIGURE reads one struct loop_config, which
            // lives on the stack for the call; the kernel takes its own
            // reference to the backing file.
            match unsafe { ioctl::loop_configure(dev.as_raw_fd(), &config) } {
                Ok(_) => return Ok(LoopDevice { path, dev }),
                Err(nix::errno::Errno::EBUSY) => {}
                Err(e) => return Err(e.into()),
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
        if let Err(e) = unsafe { ioctl::loop_clr_fd(self.dev.as_raw_fd()) } {
            log::debug!("detach {}: {e}", self.path.display());
        }
    }
}
