//! Steps 2 and 3 of recovery: COW leftovers (an origin's top table,
//! a merge recorded but not running) and devices the metadata lacks.

use std::collections::HashSet;

use devicemapper::DmNameBuf;

use super::super::vg::{Session, VolumeGroup};
use super::{RecoveryReport, RepairKind, VgDev, lv_names_by_id};
use crate::activate::{self, OriginLive, OriginTop};
use crate::dm::{DmControl, LvmDmName};
use crate::error::Result;

impl VolumeGroup {
    /// Step 2: each active origin's top table as the metadata gives it.
    pub(super) fn fix_origins(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        // Indexed once: asking per device walks every LV.
        let links = vg.cow_links();
        for d in devs.iter().filter(|d| d.layer.is_none()) {
            let Some(lv) = by_id.get(&d.lv_id) else {
                continue;
            };
            // Its status as surveyed: nothing changed it since.
            let ty = OriginLive::of(Some(d.status.clone()));
            if ty == OriginLive::Absent {
                continue;
            }
            if let OriginLive::Other(_) = ty {
                if links.is_origin(lv) {
                    let snaps: Vec<String> =
                        links.snapshots_of(lv).into_iter().map(|c| c.name).collect();
                    rep.left(format!(
                        "origin {}/{lv} is active without its snapshot layer; snapshot(s) {} \
                         no longer see its writes: delete them",
                        self.name(),
                        snaps.join(", ")
                    ));
                }
                continue;
            }
            let snaps = links.snapshots_of(lv);
            let merging = snaps.iter().find(|c| c.merging);
            let real = activate::real_layer(&d.name)?;
            let real_dev = match devs.iter().find(|x| *x.name == *real) {
                Some(x) => x.info.device,
                None => {
                    rep.left(format!(
                        "origin {} has a {ty} table but no {}",
                        &*d.name, &*real
                    ));
                    continue;
                }
            };
            let want = if snaps.is_empty() {
                // No snapshot left: plain again, as its data layer maps.
                Some(OriginTop::Plain)
            } else if merging.is_none()
                && matches!(ty, OriginLive::Merging(_) | OriginLive::Unreadable(_))
            {
                Some(OriginTop::Origin)
            } else {
                None
            };
            if let Some(want) = want {
                let ro = d.info.read_only;
                activate::restore_origin_top(dm, &d.name, &real, real_dev, want, ro)?;
                rep.did(RepairKind::RestoredOriginTable, &*d.name);
                continue;
            }
            if let (Some(m), OriginLive::Origin) = (merging, &ty) {
                let snap_dev = self.dm_name(&m.name, None)?;
                let open = d.info.open_count > 0
                    || devs
                        .iter()
                        .any(|x| *x.name == *snap_dev.as_dm_name() && x.info.open_count > 0);
                if open {
                    // Deferred, as LVM defers it: not a leftover.
                    log::debug!(
                        "merge of {} into {lv} waits for its devices to close",
                        m.name
                    );
                    continue;
                }
                match activate::CowDevices::open(dm, &d.name, &snap_dev)
                    .and_then(|c| c.start_merge(dm))
                {
                    Ok(_) => rep.did(
                        RepairKind::StartedMerge,
                        format!("{}/{}", self.name(), m.name),
                    ),
                    Err(e) => rep.left(format!(
                        "merge of {}/{} into {lv} is recorded but cannot start: {e}",
                        self.name(),
                        m.name
                    )),
                }
            }
        }
        Ok(())
    }

    /// Step 3: devices the metadata does not have, removed users first.
    pub(super) fn remove_strays(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        // Indexed once: every layer device asks about its LV.
        let links = vg.cow_links();
        let stray = |d: &VgDev| -> bool {
            let Some(lv) = by_id.get(&d.lv_id) else {
                return true;
            };
            d.layer.as_deref().is_some_and(|layer| {
                activate::unwanted_layer_in(&links, lv, layer, |t| {
                    devs.iter().any(|x| *x.name == *t)
                })
            })
        };
        // A snapshot device no metadata snapshot uses is stray too, and so
        // is what it uses.
        let mut left: Vec<&VgDev> = devs.iter().filter(|d| stray(d)).collect();
        let mut done: HashSet<DmNameBuf> = HashSet::new();
        loop {
            let mut progress = false;
            for d in &left {
                if done.contains(&d.name) {
                    continue;
                }
                let Ok(info) = dm.info(&d.name) else {
                    done.insert(d.name.clone());
                    continue;
                };
                if info.open_count > 0 {
                    continue;
                }
                self.remove_one(dm, devs, &d.name)?;
                done.insert(d.name.clone());
                progress = true;
                if d.layer.is_none() {
                    if let Some((_, lv, None)) = LvmDmName::split(&d.name.to_string()) {
                        if vg.lv(&lv).is_none() {
                            self.remove_link(&lv);
                        }
                    }
                }
                rep.did(RepairKind::RemovedStrayDevice, &*d.name);
            }
            if !progress {
                break;
            }
        }
        left.retain(|d| !done.contains(&d.name));
        for d in left {
            rep.left(format!(
                "stray device {} is open; close it and run any lvsnap command on {}",
                &*d.name,
                self.name()
            ));
        }
        Ok(())
    }

    /// Removes `name`; a `snapshot` device with its origin suspended.
    fn remove_one(&self, dm: &DmControl, devs: &[VgDev], name: &DmNameBuf) -> Result<()> {
        let tops = devs
            .iter()
            .filter(|o| o.layer.is_none())
            .map(|o| o.name.as_ref());
        Ok(activate::remove_snapshot_aware(dm, name, tops)?)
    }
}
