//! PV keys (`pv0`) to block devices, from what the PV scan found.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use devicemapper::Device;

use super::error::{Error, Result};
use super::plan::PvMap;
use crate::lvm::VgDisk;
use crate::lvm::id::PvId;
use crate::lvm::vg::Vg;

/// The block device of each PV of `vg` that `disk` found (matched by PV id).
/// A PV not found is left out: planning only fails for LVs that use it.
pub fn pv_map(vg: &Vg, disk: &VgDisk) -> Result<PvMap> {
    pv_map_from(vg, disk.pvs().iter().map(|p| (p.pv_id, &*p.path)))
}

/// The same from `(pv id, device path)` pairs.
pub fn pv_map_from<'a>(
    vg: &Vg,
    found: impl IntoIterator<Item = (PvId, &'a Path)>,
) -> Result<PvMap> {
    let mut map = PvMap::new();
    for (id, path) in found {
        let Some(pv) = vg.pvs.iter().find(|p| p.id == id) else {
            continue;
        };
        let m = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        if !m.file_type().is_block_device() {
            return Err(Error::io(
                format!("PV {} at {}", pv.key, path.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a block device"),
            ));
        }
        let rdev = m.rdev();
        map.insert(
            pv.key.clone(),
            Device {
                major: libc::major(rdev),
                minor: libc::minor(rdev),
            },
        );
    }
    Ok(map)
}
