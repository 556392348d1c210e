//! The kernel interfaces lvsnap uses outside the devicemapper crate: the
//! block-device size ioctls, getrandom, device-mapper's status ioctl with a
//! small buffer (`dm_table_status`) and, for examples and tests, loop
//! devices. The ioctl numbers and structs (`struct loop_config`,
//! `struct dm_ioctl`) come from the system's `<linux/fs.h>`, `<linux/loop.h>`
//! and `<linux/dm-ioctl.h>` through bindgen (see `build.rs`), and nix's ioctl
//! macros give each a typed wrapper. This module is the crate's only unsafe
//! code: every other module is `#[forbid(unsafe_code)]` (see lib.rs).

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
    nix::ioctl_readwrite_bad!(dm_table_status, uapi::DM_TABLE_STATUS, u8);
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

/// What device-mapper's `DM_TABLE_STATUS` answers for one device: the
/// header's fields and each target's line.
#[derive(Debug, Clone)]
pub(crate) struct DmTableStatus {
    pub name: String,
    pub uuid: String,
    /// The kernel's `dev` (kdev_t "huge" encoding in the low 32 bits).
    pub dev: u64,
    pub open_count: i32,
    pub event_nr: u32,
    /// The header's `DM_*_FLAG` bits.
    pub flags: u32,
    /// Each target's line.
    pub targets: Vec<DmTargetStatus>,
}

/// One target's line of a [`DmTableStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DmTargetStatus {
    /// Its first sector.
    pub start: u64,
    /// Its length in sectors.
    pub length: u64,
    pub target_type: String,
    /// The target's status text.
    pub params: String,
}

/// `DM_TABLE_STATUS` of the device `name` on the control file `control`,
/// with `flags` (`DM_*_FLAG`) in the header.
///
/// The devicemapper crate passes a 16 KiB buffer to every ioctl, which the
/// kernel copies in whole and allocates for a status (not for an info):
/// that made a status three times an info's cost. A status line is a few
/// dozen bytes, so this starts at 1 KiB and doubles while the kernel says
/// the buffer was full, as libdevmapper does.
pub(crate) fn dm_table_status(control: &File, name: &str, flags: u32) -> io::Result<DmTableStatus> {
    let hdr_len = std::mem::size_of::<uapi::dm_ioctl>();
    let mut hdr = uapi::dm_ioctl {
        // What the devicemapper crate and libdevmapper send for a status.
        version: [4, 0, 0],
        data_start: u32::try_from(hdr_len).map_err(|_| io::Error::other("dm_ioctl size"))?,
        flags,
        ..Default::default()
    };
    let bytes = name.as_bytes();
    if bytes.len() >= hdr.name.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, b) in hdr.name.iter_mut().zip(bytes) {
        *d = *b as libc::c_char;
    }
    let mut size = 1024usize;
    loop {
        hdr.data_size = u32::try_from(size).map_err(|_| io::Error::other("status too large"))?;
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` is `size` >= hdr_len bytes; the header is copied into
        // its start byte for byte (no alignment is needed for that).
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast::<uapi::dm_ioctl>(), hdr) };
        // SAFETY: the kernel reads and writes at most `data_size` bytes
        // through the pointer, which is the length of `buf`.
        unsafe { ioctl::dm_table_status(control.as_raw_fd(), buf.as_mut_ptr()) }?;
        // SAFETY: as above, the buffer holds a whole header at its start.
        let out = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<uapi::dm_ioctl>()) };
        if out.flags & uapi::DM_BUFFER_FULL_FLAG != 0 {
            size = size
                .checked_mul(2)
                .filter(|&s| s <= 1 << 24)
                .ok_or_else(|| io::Error::other("device-mapper status does not fit in 16 MiB"))?;
            continue;
        }
        return parse_table_status(&out, &buf);
    }
}

/// The targets of a status answer in `buf` (whose header is `out`); every
/// offset the kernel gave is checked against the buffer.
fn parse_table_status(out: &uapi::dm_ioctl, buf: &[u8]) -> io::Result<DmTableStatus> {
    let bad = || io::Error::other("malformed device-mapper status answer");
    let c_str = |s: &[libc::c_char]| -> String {
        let b: Vec<u8> = s
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    let start = usize::try_from(out.data_start).map_err(|_| bad())?;
    let end = usize::try_from(out.data_size)
        .map_err(|_| bad())?
        .min(buf.len());
    // A device without a live table gets no data: the kernel leaves
    // `data_size` at the header's fixed part, short of `data_start`.
    let data = buf.get(start..end).unwrap_or_default();
    let spec_len = std::mem::size_of::<uapi::dm_target_spec>();
    let mut targets = Vec::new();
    let mut at = 0usize;
    for _ in 0..out.target_count {
        let spec_bytes = data
            .get(at..at.checked_add(spec_len).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        // SAFETY: `spec_bytes` holds exactly one dm_target_spec, read
        // without alignment; every bit pattern is a valid one.
        let spec =
            unsafe { std::ptr::read_unaligned(spec_bytes.as_ptr().cast::<uapi::dm_target_spec>()) };
        let params = data.get(at + spec_len..).ok_or_else(bad)?;
        let params = &params[..params.iter().position(|&b| b == 0).ok_or_else(bad)?];
        targets.push(DmTargetStatus {
            start: spec.sector_start,
            length: spec.length,
            target_type: c_str(&spec.target_type),
            params: String::from_utf8_lossy(params).into_owned(),
        });
        // `next` is the offset of the next spec from the data's start.
        at = usize::try_from(spec.next).map_err(|_| bad())?;
    }
    Ok(DmTableStatus {
        name: c_str(&out.name),
        uuid: c_str(&out.uuid),
        dev: out.dev,
        open_count: out.open_count,
        event_nr: out.event_nr,
        flags: out.flags,
        targets,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A status answer as the kernel lays it out: the header, then each
    /// target's spec followed by its text.
    fn answer(targets: &[(&str, &str)], next_of: impl Fn(usize, usize) -> u32) -> Vec<u8> {
        let hdr_len = std::mem::size_of::<uapi::dm_ioctl>();
        let spec_len = std::mem::size_of::<uapi::dm_target_spec>();
        let mut data = Vec::new();
        for (i, (ty, params)) in targets.iter().enumerate() {
            let start = data.len();
            let mut spec = uapi::dm_target_spec {
                sector_start: 8 * i as u64,
                length: 8,
                ..Default::default()
            };
            for (d, b) in spec.target_type.iter_mut().zip(ty.bytes()) {
                *d = b as libc::c_char;
            }
            let mut text = params.as_bytes().to_vec();
            text.push(0);
            let end = (start + spec_len + text.len()).next_multiple_of(8);
            spec.next = next_of(i, end);
            data.resize(start + spec_len, 0);
            // SAFETY: the slice is exactly one spec long.
            unsafe {
                std::ptr::write_unaligned(data[start..].as_mut_ptr().cast(), spec);
            }
            data.extend_from_slice(&text);
            data.resize(end, 0);
        }
        let hdr = uapi::dm_ioctl {
            data_start: hdr_len as u32,
            data_size: (hdr_len + data.len()) as u32,
            target_count: targets.len() as u32,
            ..Default::default()
        };
        let mut buf = vec![0u8; hdr_len];
        // SAFETY: `buf` is one header long.
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast(), hdr) };
        buf.extend_from_slice(&data);
        buf
    }

    fn header(buf: &[u8]) -> uapi::dm_ioctl {
        // SAFETY: every answer starts with a whole header.
        unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) }
    }

    #[test]
    fn status_answers_are_parsed() {
        let buf = answer(&[("snapshot", "16/8192 16"), ("linear", "")], |_, end| {
            end as u32
        });
        let st = parse_table_status(&header(&buf), &buf).unwrap();
        assert_eq!(
            st.targets,
            vec![
                DmTargetStatus {
                    start: 0,
                    length: 8,
                    target_type: "snapshot".to_owned(),
                    params: "16/8192 16".to_owned(),
                },
                DmTargetStatus {
                    start: 8,
                    length: 8,
                    target_type: "linear".to_owned(),
                    params: String::new(),
                },
            ]
        );
    }

    #[test]
    fn a_device_without_a_table_has_no_targets() {
        let buf = answer(&[], |_, end| end as u32);
        let mut h = header(&buf);
        // What the kernel leaves: offsetof(struct dm_ioctl, data).
        h.data_size = 305;
        let st = parse_table_status(&h, &buf).unwrap();
        assert!(st.targets.is_empty());
    }

    #[test]
    fn bad_offsets_are_errors_not_panics() {
        // A `next` past the end, and a text with no terminator.
        let buf = answer(&[("linear", ""), ("linear", "")], |_, _| 1 << 20);
        assert!(parse_table_status(&header(&buf), &buf).is_err());
        let mut buf = answer(&[("linear", "abc")], |_, end| end as u32);
        let hdr_len = std::mem::size_of::<uapi::dm_ioctl>();
        let spec_len = std::mem::size_of::<uapi::dm_target_spec>();
        buf.truncate(hdr_len + spec_len + 3);
        let mut h = header(&buf);
        h.data_size = buf.len() as u32;
        assert!(parse_table_status(&h, &buf).is_err());
        // A header claiming more targets than the data holds.
        let buf = answer(&[("linear", "")], |_, end| end as u32);
        let mut h = header(&buf);
        h.target_count = 3;
        assert!(parse_table_status(&h, &buf).is_err());
    }
}
