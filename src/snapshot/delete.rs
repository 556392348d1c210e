//! Deleting snapshots, as `lvremove` does.

use super::Error as SnapError;
use super::vg::VolumeGroup;
use crate::dm::{CowSnapshot, DmControl};
use crate::error::Result;

impl VolumeGroup {
    /// Deletes snapshot `name` and its devices. Refused while it is merging
    /// or while its device is open; nothing changes then.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        let mut s = self.session()?;
        let vg = s.md.vg();
        let full = format!("{}/{name}", self.name());
        let Some(snap) = vg.cow_snapshot(name) else {
            return match vg.lv(name) {
                Some(lv) if lv.thin_origin().is_some() => {
                    let mut s = s;
                    self.delete_thin(&mut s, name)
                }
                Some(_) => {
                    Err(SnapError::InvalidArgument(format!("{full} is not a snapshot")).into())
                }
                None => Err(SnapError::NotFound(format!("snapshot {full}")).into()),
            };
        };
        if snap.merging {
            return Err(SnapError::Busy(format!(
                "{full} is merging into {}; it goes away by itself when the merge ends",
                snap.origin
            ))
            .into());
        }
        let origin_dev = self.dm_name(&snap.origin, None)?;
        let snap_dev = self.dm_name(name, None)?;
        let live = match DmControl::shared() {
            Ok(dm) if dm.exists(&snap_dev)? => {
                let info = dm.info(&snap_dev)?;
                if info.open_count > 0 {
                    return Err(SnapError::Busy(format!(
                        "snapshot {full} is open ({} opener(s) of {})",
                        info.open_count, &*snap_dev
                    ))
                    .into());
                }
                let devs = CowSnapshot::open(&dm, &origin_dev, &snap_dev)?;
                Some((dm, devs))
            }
            _ => None,
        };
        s.md.remove_lv(name)?;
        s.precommit(&format!("delete snapshot {full}"))?;
        if let Some((dm, devs)) = live {
            if let Err(e) = devs.remove(&dm) {
                s.revert();
                return Err(e.into());
            }
            self.remove_link(name);
        }
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        Ok(())
    }
}
