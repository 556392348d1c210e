//! `/dev/<vg>/<lv>` links, made as LVM makes them when udev does not.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use devicemapper::DmName;

use super::error::{Error, Result};
use crate::dm::{node_path, udev_running};

/// `/dev/<vg>`.
pub fn vg_dir(vg: &str) -> PathBuf {
    Path::new("/dev").join(vg)
}

/// `/dev/<vg>/<lv>`.
pub fn lv_link(vg: &str, lv: &str) -> PathBuf {
    vg_dir(vg).join(lv)
}

/// Makes `/dev/<vg>/<lv>` point at `/dev/mapper/<name>` unless udev does it.
pub(crate) fn ensure_link(vg: &str, lv: &str, name: &DmName) -> Result<()> {
    if udev_running() {
        return Ok(());
    }
    let dir = vg_dir(vg);
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("mkdir {}", dir.display()), e))?;
    let link = lv_link(vg, lv);
    let target = node_path(name);
    match fs::read_link(&link) {
        Ok(t) if t == target => return Ok(()),
        Ok(_) => fs::remove_file(&link)
            .map_err(|e| Error::io(format!("remove stale {}", link.display()), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("readlink {}", link.display()), e)),
    }
    std::os::unix::fs::symlink(&target, &link)
        .map_err(|e| Error::io(format!("symlink {}", link.display()), e))
}

/// Removes `/dev/<vg>/<lv>`, and `/dev/<vg>` once empty, unless udev does it.
pub(crate) fn remove_link(vg: &str, lv: &str) -> Result<()> {
    if udev_running() {
        return Ok(());
    }
    let link = lv_link(vg, lv);
    match fs::remove_file(&link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(Error::io(format!("remove {}", link.display()), e));
        }
        _ => {}
    }
    // Fails while other LVs are linked there: that is the point.
    let _ = fs::remove_dir(vg_dir(vg));
    Ok(())
}
