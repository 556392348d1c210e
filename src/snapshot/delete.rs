//! Deleting snapshots, as `lvremove` does.

use super::Error as SnapError;
use super::vg::VolumeGroup;
use crate::activate::CowDevices;
use crate::dm::DmControl;
use crate::error::Result;

impl VolumeGroup {
    /// Deletes snapshot `name` and its devices. Refused while it is merging
    /// or while its device is open; nothing changes then.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        let mut s = self.write_session()?;
        let vg = s.md.vg();
        let full = format!("{}/{name}", self.name());
        let Some(snap) = vg.cow_snapshot(name) else {
            return match vg.lv(name) {
                Some(lv) if lv.tags.iter().any(|t| t == super::RESTORE_INCOMPLETE_TAG) => {
                    let mut s = s;
                    let dm = DmControl::shared().ok();
                    self.remove_restore_target(&mut s, dm.as_ref(), name)
                }
                Some(lv) if lv.thin_origin().is_some() => {
                    let mut s = s;
                    self.delete_thin(&mut s, name)
                }
                Some(_) => Err(SnapError::not_a_snapshot(vg, name).into()),
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
        let dm = DmControl::shared().ok();
        if let Some(dm) = &dm {
            if dm.exists(&snap_dev)? {
                let info = dm.info(&snap_dev)?;
                let open_count = crate::activate::open_count_settled(dm, &info)?;
                if open_count > 0 {
                    return Err(SnapError::Busy(format!(
                        "snapshot {full} is open ({open_count} opener(s) of {})",
                        &*snap_dev
                    ))
                    .into());
                }
            }
        }
        // The metadata commits first: once it has landed the snapshot is
        // deleted, whatever happens to its devices. They go next, as LVM
        // lays them down; what is left of them (an `error` table after
        // `dmsetup remove --force`, a device already gone, a step that
        // failed) recovery removes at once, or at the next operation.
        s.md.remove_lv(name)?;
        s.precommit(&format!("delete snapshot {full}"))?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        self.remove_link(name);
        let Some(dm) = dm else { return Ok(()) };
        if dm.exists(&snap_dev)? {
            match CowDevices::open(&dm, &origin_dev, &snap_dev) {
                Ok(devs) => {
                    if let Err(e) = devs.remove(&dm) {
                        log::info!("removing the devices of {full}: {e}; cleaning up");
                    }
                }
                Err(e) => {
                    log::info!("devices of {full} are not a whole snapshot ({e}); cleaning up")
                }
            }
        }
        match self.recover_in(&mut s) {
            Ok(rep) => {
                for u in &rep.unresolved {
                    s.warn(format!("{full} is deleted, but: {u}"));
                }
            }
            Err(e) => s.warn(format!(
                "{full} is deleted, but removing its devices failed: {e}; the next lvsnap \
                 operation on {} retries",
                self.name()
            )),
        }
        Ok(())
    }
}
