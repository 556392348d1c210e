//! Building [`SnapshotStatus`] from the metadata and the kernel, with no
//! process spawned.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devicemapper::ThinStatus;

use super::recover::LiveStatus;
use super::vg::{Session, VolumeGroup};
use super::{Error as SnapError, SnapshotStatus, State};
use crate::activate;
use crate::dm::{self, DmControl, Percent};
use crate::error::Result;
use crate::lvm::vg::{CowSnapshot, Lv};
use crate::units::{Bytes, Sectors};

/// The on-disk header of a persistent exception store: magic `SnAp`, then
/// `valid` (0 once the kernel invalidated the snapshot).
const COW_MAGIC: u32 = 0x7041_6e53;

impl VolumeGroup {
    /// The status of snapshot `name` (a COW snapshot's COW LV, or a thin
    /// snapshot).
    pub fn snapshot_status(&self, name: &str) -> Result<SnapshotStatus> {
        let mut s = self.session()?;
        let live = s.live.take();
        self.status_with(&s, name, live.as_ref())
    }

    /// The status of snapshot `name` as the metadata of `s` records it.
    pub(super) fn status_in(&self, s: &Session, name: &str) -> Result<SnapshotStatus> {
        self.status_with(s, name, None)
    }

    /// As `status_in`, taking a device's status from `live` where it has
    /// it (recovery's survey of this session, nothing changed since).
    fn status_with(
        &self,
        s: &Session,
        name: &str,
        live: Option<&LiveStatus>,
    ) -> Result<SnapshotStatus> {
        let dm = DmControl::shared().ok();
        let vg = s.md.vg();
        if let Some(snap) = vg.cow_snapshot(name) {
            return self.cow_status_with(s, &snap, dm.as_ref(), live);
        }
        match vg.lv(name) {
            Some(lv) if is_incomplete_restore(lv) => Ok(self.restore_status(s, lv)),
            Some(lv) if lv.thin_origin().is_some() => self.thin_status(s, lv, dm.as_ref()),
            Some(_) => Err(SnapError::not_a_snapshot(vg, name).into()),
            None => Err(SnapError::NotFound(format!("snapshot {}/{name}", self.name())).into()),
        }
    }

    /// The status of every snapshot in the VG, in metadata order.
    pub fn snapshots(&self) -> Result<Vec<SnapshotStatus>> {
        let mut s = self.session()?;
        let live = s.live.take();
        let dm = DmControl::shared().ok();
        let vg = s.md.vg();
        // One walk for all COW snapshots: asking per LV would be O(LVs²).
        let mut cows: HashMap<String, CowSnapshot> = vg
            .cow_snapshots()
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let mut out = Vec::new();
        for lv in &vg.lvs {
            if let Some(snap) = cows.remove(&lv.name) {
                out.push(self.cow_status_with(&s, &snap, dm.as_ref(), live.as_ref())?);
            } else if is_incomplete_restore(lv) {
                out.push(self.restore_status(&s, lv));
            } else if lv.thin_origin().is_some() {
                out.push(self.thin_status(&s, lv, dm.as_ref())?);
            }
        }
        Ok(out)
    }

    pub(super) fn cow_status(
        &self,
        s: &Session,
        snap: &CowSnapshot,
        dm: Option<&DmControl>,
    ) -> Result<SnapshotStatus> {
        self.cow_status_with(s, snap, dm, None)
    }

    fn cow_status_with(
        &self,
        s: &Session,
        snap: &CowSnapshot,
        dm: Option<&DmControl>,
        known: Option<&LiveStatus>,
    ) -> Result<SnapshotStatus> {
        let vg = s.md.vg();
        let cow_lv = vg
            .lv(&snap.name)
            .ok_or_else(|| SnapError::NotFound(format!("COW LV {}", snap.name)))?;
        let live = match dm {
            Some(dm) => self.live_cow_status(dm, snap, known)?,
            None => None,
        };
        let (invalid, data_percent) = match live {
            Some(st) => (st.is_invalid(), st.data_percent().map(percent_f64)),
            // Not active: the exception store's header still says whether
            // the kernel invalidated it.
            None => {
                let head = s.read_lv_start(cow_lv)?;
                let word =
                    |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
                (word(0) == COW_MAGIC && word(4) == 0, None)
            }
        };
        let merging = snap.merging;
        Ok(SnapshotStatus {
            name: snap.name.clone(),
            vg: self.name().to_owned(),
            source_volume: snap.origin.clone(),
            capacity: lv_bytes(s, cow_lv),
            thin: false,
            state: state(invalid, merging),
            merging,
            invalid,
            data_percent,
            creation_time: created(cow_lv),
            reason: None,
        })
    }

    /// The kernel's view of a COW snapshot, if it is active: from `known`
    /// where it has the device, else asked of the kernel.
    fn live_cow_status(
        &self,
        dm: &DmControl,
        snap: &CowSnapshot,
        known: Option<&LiveStatus>,
    ) -> Result<Option<dm::SnapshotTargetStatus>> {
        let snap_dev = self.dm_name(&snap.name, None)?;
        let origin_dev = self.dm_name(&snap.origin, None)?;
        let status = |n: &devicemapper::DmName| match known.and_then(|k| k.get(n)) {
            Some(lines) => Ok(Some(lines.to_vec())),
            None => dm.status_if_exists(n),
        };
        Ok(activate::cow_live_status_with(
            status,
            &snap_dev,
            &origin_dev,
            snap.merging,
        )?)
    }

    fn thin_status(&self, s: &Session, lv: &Lv, dm: Option<&DmControl>) -> Result<SnapshotStatus> {
        let capacity = lv_bytes(s, lv);
        let total = u64::try_from(*capacity / 512).unwrap_or(u64::MAX);
        let mut data_percent = None;
        if let Some(dm) = dm {
            let dev = self.dm_name(&lv.name, None)?;
            if dm.exists(&dev)? {
                if let Ok(ThinStatus::Working(w)) = activate::thin_lv_status(dm, &dev) {
                    data_percent = Some(percent_f64(Percent::from_ratio(
                        *w.nr_mapped_sectors,
                        total,
                    )));
                }
            }
        }
        Ok(SnapshotStatus {
            name: lv.name.clone(),
            vg: self.name().to_owned(),
            source_volume: lv.thin_origin().unwrap_or_default().to_owned(),
            capacity,
            thin: true,
            state: State::Ready,
            merging: false,
            invalid: false,
            data_percent,
            creation_time: created(lv),
            reason: None,
        })
    }

    /// A restore target whose copy has not completed: never Ready.
    fn restore_status(&self, s: &Session, lv: &Lv) -> SnapshotStatus {
        SnapshotStatus {
            name: lv.name.clone(),
            vg: self.name().to_owned(),
            source_volume: String::new(),
            capacity: lv_bytes(s, lv),
            thin: lv.thin().is_some(),
            state: State::NotReady,
            merging: false,
            invalid: false,
            data_percent: None,
            creation_time: created(lv),
            reason: Some(format!(
                "restore into {}/{} has not completed (tagged {}); it is removed by the next \
                 lvsnap operation, or run the restore again",
                self.name(),
                lv.name,
                super::RESTORE_INCOMPLETE_TAG
            )),
        }
    }
}

fn is_incomplete_restore(lv: &Lv) -> bool {
    lv.tags.iter().any(|t| t == super::RESTORE_INCOMPLETE_TAG)
}

fn state(invalid: bool, merging: bool) -> State {
    if invalid || merging {
        State::NotReady
    } else {
        State::Ready
    }
}

fn lv_bytes(s: &Session, lv: &Lv) -> Bytes {
    lv.extents()
        .sectors(s.md.vg().extent_size)
        .unwrap_or(Sectors(u64::MAX))
        .bytes()
}

fn created(lv: &Lv) -> SystemTime {
    let secs = lv.creation_time.unwrap_or(0).max(0) as u64;
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The figure `lvs` prints (two decimals), as a float.
fn percent_f64(p: Percent) -> f64 {
    p.to_string().parse().unwrap_or_else(|_| p.as_f64())
}
