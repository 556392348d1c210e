//! Step 5 of recovery: restore targets still marked incomplete.

use super::super::vg::{Session, VolumeGroup};
use super::{RecoveryReport, RepairKind};
use crate::dm::DmControl;
use crate::error::Result;

impl VolumeGroup {
    /// Step 5: restore targets still marked incomplete.
    pub(super) fn remove_incomplete_restores(
        &self,
        s: &mut Session,
        dm: Option<&DmControl>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let marked: Vec<String> =
            s.md.vg()
                .lvs
                .iter()
                .filter(|l| {
                    l.tags
                        .iter()
                        .any(|t| t == super::super::RESTORE_INCOMPLETE_TAG)
                })
                .map(|l| l.name.clone())
                .collect();
        for lv in marked {
            // A restore running now (in another process) holds the VG lock
            // only at its start and end; its target is open while it copies.
            let dev = self.dm_name(&lv, None)?;
            if let Some(dm) = dm {
                if dm.exists(&dev)? && dm.info(&dev)?.open_count > 0 {
                    continue;
                }
            }
            match self.remove_restore_target(s, dm, &lv) {
                Ok(()) => rep.did(
                    RepairKind::RemovedIncompleteRestore,
                    format!("{}/{lv}", self.name()),
                ),
                Err(e) => rep.left(format!(
                    "incomplete restore target {}/{lv} cannot be removed: {e}",
                    self.name()
                )),
            }
        }
        Ok(())
    }
}
