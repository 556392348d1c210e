//! Step 1 of recovery: no device of the VG stays suspended or with a
//! pending table.

use std::collections::HashMap;

use devicemapper::{Device, DmNameBuf};

use super::super::vg::{Session, VolumeGroup};
use super::{RecoveryReport, RepairKind, VgDev, lv_names_by_id, same_table, wanted_table};
use crate::activate;
use crate::dm::{self, DmControl};
use crate::error::Result;

impl VolumeGroup {
    /// Step 1: no device stays suspended or with a pending table. A table
    /// waiting in a device's inactive slot is the one the committed
    /// metadata gives it when the run died after its commit (LVM commits
    /// with the devices suspended and the new tables loaded): then it goes
    /// live; otherwise it is dropped and the device resumes as it was.
    pub(super) fn settle_pending(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        // Only a pending table is compared with the metadata's, which needs
        // every device's number and the PVs: not read when none is pending.
        let (live, pvs): (HashMap<DmNameBuf, Device>, _) =
            if devs.iter().any(|d| d.info.inactive_table) {
                let live = dm.list()?.into_iter().collect();
                (live, crate::activate::pv_map(vg, &s.disk).ok())
            } else {
                (HashMap::new(), None)
            };
        // Layers first, then snapshots, origins last: LVM's resume order.
        // Only the devices that need a step are ordered: asking each
        // whether it is an origin walks the LVs, and a VG of hundreds of
        // devices usually has none to settle.
        let mut order: Vec<&VgDev> = devs
            .iter()
            .filter(|d| d.info.suspended || d.info.inactive_table || !d.info.live_table)
            .collect();
        order.sort_by_cached_key(|d| {
            let name = by_id.get(&d.lv_id).map(String::as_str).unwrap_or("");
            (d.layer.is_none(), vg.is_origin(name))
        });
        // Pending tables not wanted go first: a snapshot cannot resume
        // while a merge table loaded over its store waits in its origin.
        let mut pending = Vec::new();
        for d in order {
            let lv = by_id.get(&d.lv_id).map(String::as_str);
            let kept = match (d.info.inactive_table, lv, &pvs) {
                (true, Some(lv), Some(pvs)) => {
                    wanted_table(vg, pvs, &live, lv, &d.name).and_then(|want| {
                        dm.inactive_table(&d.name)
                            .ok()
                            .filter(|have| same_table(&want, have))
                    })
                }
                _ => None,
            };
            let keep = kept.is_some();
            if d.info.inactive_table && !keep {
                dm.clear_inactive(&d.name)?;
                rep.did(RepairKind::DroppedInactiveTable, &*d.name);
            }
            // Made but never resumed, and not what the metadata wants: it
            // maps nothing, yet LVM counts it active (and refuses to
            // activate the LV's users): removed.
            if d.info.live_table || keep {
                let merge = kept.is_some_and(|t| activate::is_merge_table(&t));
                pending.push((d, merge));
            } else if d.info.open_count == 0 {
                dm.remove(&d.name)?;
                rep.did(RepairKind::RemovedStrayDevice, &*d.name);
            }
        }
        // A merging origin resumes before its snapshot: that resume hands
        // the exceptions over from the suspended snapshot; resuming the
        // snapshot first (with its error table) would cancel the handover.
        pending.sort_by_key(|&(d, merge)| match (d.layer.is_some(), merge) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        });
        let mut pending: Vec<&VgDev> = pending.into_iter().map(|(d, _)| d).collect();
        // Resumed in that order, a device the kernel refuses now retried
        // after the others.
        loop {
            let mut left = Vec::new();
            let mut last = None;
            for d in pending.iter().copied() {
                match dm.resume(&d.name) {
                    Ok(()) => rep.did(RepairKind::Resumed, &*d.name),
                    Err(e) => {
                        last = Some(e);
                        left.push(d);
                    }
                }
            }
            if left.is_empty() {
                break;
            }
            if left.len() == pending.len() {
                for d in &left {
                    rep.left(format!(
                        "{} stays suspended: {}",
                        &*d.name,
                        last.as_ref().map(|e| e.to_string()).unwrap_or_default()
                    ));
                }
                break;
            }
            pending = left;
        }
        // A run that died between a resume and making the node (no udev)
        // left a live device without its /dev/mapper node or link.
        // One walk of /dev/mapper, not a stat per device.
        let nodes = dm::mapper_entries();
        for d in devs {
            let Some(lv) = by_id.get(&d.lv_id) else {
                continue;
            };
            if dm::node_exists(nodes.as_ref(), &d.name)
                || !dm.info(&d.name).is_ok_and(|i| i.live_table)
            {
                continue;
            }
            if let Err(e) = dm::ensure_node(&d.name, d.info.device) {
                log::warn!("recovery: node of {}: {e}", &*d.name);
            }
            if d.layer.is_none() && vg.is_visible(lv) {
                self.make_link(lv);
            }
        }
        Ok(())
    }
}
