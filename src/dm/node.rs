//! Device nodes under /dev/mapper.
//!
//! With udev running, udev makes `/dev/mapper/<name>` and the devicemapper
//! crate waits for it (udev cookies) on resume and remove. Without udev (a
//! container, an initramfs, our test VM) nobody does, so we make and remove
//! the nodes ourselves, as LVM and dmsetup do.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use devicemapper::{Device, DmName};
use nix::sys::stat::{self, Mode, SFlag};
use nix::unistd::{self, Gid, Uid};

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

/// The entries of /dev/mapper in one directory walk, rather than a stat
/// per device: each name, and whether it is a symlink (which exists only
/// if its target does: [`node_exists`]). `None` if it cannot be read.
pub fn mapper_entries() -> Option<NodeEntries> {
    let mut out = std::collections::HashMap::new();
    for e in fs::read_dir(DM_DIR).ok()? {
        let e = e.ok()?;
        let link = e.file_type().ok()?.is_symlink();
        if let Ok(name) = e.file_name().into_string() {
            out.insert(name, link);
        }
    }
    Some(NodeEntries(out))
}

/// What [`mapper_entries`] read.
pub struct NodeEntries(std::collections::HashMap<String, bool>);

/// Whether [`node_path`] of `name` exists, as `Path::exists` says, from
/// `entries` where they were read (a symlink is still followed).
pub fn node_exists(entries: Option<&NodeEntries>, name: &DmName) -> bool {
    match entries.map(|e| e.0.get(&name.to_string())) {
        Some(None) => false,
        Some(Some(false)) => true,
        Some(Some(true)) | None => node_path(name).exists(),
    }
}

/// Makes `/dev/mapper/<name>` for `dev` unless udev does it; a stale node
/// with another device number is replaced.
pub fn ensure_node(name: &DmName, dev: Device) -> Result<PathBuf> {
    let path = node_path(name);
    if udev_running() {
        return Ok(path);
    }
    let rdev = stat::makedev(dev.major.into(), dev.minor.into());
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_block_device() && m.rdev() == rdev => return Ok(path),
        Ok(_) => fs::remove_file(&path)
            .map_err(|e| Error::io(format!("remove stale {}", path.display()), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
    }
    stat::mknod(&path, SFlag::S_IFBLK, Mode::from_bits_truncate(0o600), rdev)
        .map_err(|e| Error::io(format!("mknod {} {dev}", path.display()), e.into()))?;
    // As libdevmapper makes them: owner 0, group 6, mode 0660, whatever
    // the umask; as there, a node we cannot give that owner and mode is an
    // error.
    if let Err(e) = set_owner_mode(&path) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// The group of the nodes libdevmapper makes: its build's `DM_DEVICE_GID`,
/// which Debian's and Fedora's LVM2 packages set to 6 (`disk`). LVM chowns
/// to the number as built, without looking a group up (an NSS lookup per
/// process: nscd probes, nsswitch.conf and /etc/group), so lvsnap does the
/// same and its nodes match LVM's on a system whose `disk` is not 6.
const DM_DEVICE_GID: Gid = Gid::from_raw(6);

/// Gives a new node libdevmapper's owner (0:6) and mode 0660.
fn set_owner_mode(path: &Path) -> Result<()> {
    unistd::chown(path, Some(Uid::from_raw(0)), Some(DM_DEVICE_GID))
        .map_err(|e| Error::io(format!("chown {}", path.display()), e.into()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
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
