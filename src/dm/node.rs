//! Device nodes under /dev/mapper.
//!
//! With udev running, udev makes `/dev/mapper/<name>` and the devicemapper
//! crate waits for it (udev cookies) on resume and remove. Without udev (a
//! container, an initramfs, our test VM) nobody does, so we make and remove
//! the nodes ourselves, as LVM and dmsetup do.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use devicemapper::{Device, DmName};

use super::error::{Error, Result};

/// Where device-mapper nodes live.
pub const DM_DIR: &str = "/dev/mapper";

/// Whether udev is running (its control socket exists), the same test the
/// devicemapper crate and libdevmapper use.
pub fn udev_running() -> bool {
    Path::new("/run/udev/control").exists()
}

/// The node path of a device-mapper device: `/dev/mapper/<name>`.
pub fn node_path(name: &DmName) -> PathBuf {
    Path::new(DM_DIR).join(name.to_string())
}

/// Makes `/dev/mapper/<name>` for `dev` unless udev does it; a stale node
/// with another device number is replaced.
pub fn ensure_node(name: &DmName, dev: Device) -> Result<PathBuf> {
    let path = node_path(name);
    if udev_running() {
        return Ok(path);
    }
    let rdev = libc::makedev(dev.major, dev.minor);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_block_device() && m.rdev() == rdev => return Ok(path),
        Ok(_) => fs::remove_file(&path)
            .map_err(|e| Error::io(format!("remove stale {}", path.display()), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
    }
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument(format!("node path {} has a NUL", path.display())))?;
    // SAFETY: a valid NUL-terminated path; mknod does not keep the pointer.
    let r = unsafe { libc::mknod(cpath.as_ptr(), libc::S_IFBLK | 0o600, rdev) };
    if r != 0 {
        return Err(Error::io(
            format!("mknod {} {dev}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    // As libdevmapper makes them: root:disk, mode 0660, whatever the umask.
    // SAFETY: a valid NUL-terminated string; nothing is kept.
    unsafe {
        if let Some(gid) = disk_gid() {
            libc::chown(cpath.as_ptr(), 0, gid);
        }
        libc::chmod(cpath.as_ptr(), 0o660);
    }
    Ok(path)
}

/// The `disk` group's id, looked up once per process: each lookup goes
/// through NSS (nscd probes, nsswitch.conf, /etc/group).
fn disk_gid() -> Option<libc::gid_t> {
    static GID: OnceLock<Option<libc::gid_t>> = OnceLock::new();
    *GID.get_or_init(|| {
        nix::unistd::Group::from_name("disk")
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    })
}

/// Removes `/dev/mapper/<name>` unless udev manages it; a missing node is fine.
pub fn remove_node(name: &DmName) -> Result<()> {
    if udev_running() {
        return Ok(());
    }
    let path = node_path(name);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
