//! Rolling an origin back to a COW snapshot by merging it, as
//! `lvconvert --merge` does.
//!
//! The merge is recorded in the metadata first (`snapshotN` loses VISIBLE,
//! `cow_store` becomes `merging_store`), then the kernel merges on its own:
//! nobody has to stay around. Whoever next observes the merge complete
//! (a later [`VolumeGroup::rollback`], [`Rollback::poll`] or
//! [`Rollback::wait`], or LVM itself) removes the COW pair from the metadata
//! and gives the origin its plain table again.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use super::Error as SnapError;
use super::vg::VolumeGroup;
use crate::activate;
use crate::activate::{CowDevices, CowMerge, OriginLive};
use crate::dm::{self, DmControl, LvmDmName};
use crate::error::Result;
use crate::lvm::config::LvmConfig;
use crate::lvm::flags::LvFlags;
use crate::units::Sectors;

/// Where a rollback stands (HwameiStor's states).
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackState {
    /// Recorded in the metadata; the kernel has not started merging yet
    /// (it starts on the next [`VolumeGroup::rollback`] or activation).
    Submitted,
    /// The kernel is merging; `percent` of the chunks are back.
    InProgress {
        /// Share merged so far (0 to 100).
        percent: f64,
    },
    /// Recorded, but it cannot start now; `reason` says what is in the way
    /// (an open device, an inactive origin). Run the rollback again once
    /// that is gone, or activate the origin with LVM: either resumes it.
    Deferred {
        /// What holds the merge back.
        reason: String,
    },
    /// The origin holds the snapshot's data; the snapshot is gone.
    Completed,
    /// The kernel stopped the merge.
    Failed {
        /// Why.
        reason: String,
    },
}

impl RollbackState {
    /// The state's name as the CLI prints it: `Submitted`, `InProgress`,
    /// `Deferred`, `Completed` or `Failed`.
    pub fn name(&self) -> &'static str {
        match self {
            RollbackState::Submitted => "Submitted",
            RollbackState::InProgress { .. } => "InProgress",
            RollbackState::Deferred { .. } => "Deferred",
            RollbackState::Completed => "Completed",
            RollbackState::Failed { .. } => "Failed",
        }
    }

    /// How much is merged: 100 once completed, 0 before the kernel starts.
    pub fn percent(&self) -> f64 {
        match self {
            RollbackState::InProgress { percent } => *percent,
            RollbackState::Completed => 100.0,
            _ => 0.0,
        }
    }

    /// The reason of a Deferred or Failed state.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RollbackState::Deferred { reason } | RollbackState::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether waiting longer changes nothing (Completed, Failed, Deferred).
    pub fn is_settled(&self) -> bool {
        !matches!(
            self,
            RollbackState::Submitted | RollbackState::InProgress { .. }
        )
    }
}

impl fmt::Display for RollbackState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackState::InProgress { percent } => write!(f, "InProgress ({percent:.2}%)"),
            RollbackState::Deferred { reason } | RollbackState::Failed { reason } => {
                write!(f, "{}: {reason}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// A rollback of an origin to one of its COW snapshots: the handle
/// [`VolumeGroup::rollback`] returns. Dropping it does not stop the merge.
///
/// ```no_run
/// use lvsnap::snapshot::{RollbackState, VolumeGroup};
/// let vg = VolumeGroup::open("vg0")?;
/// let mut rb = vg.rollback("snapcontent-1")?;
/// let end = rb.wait_with(|st| eprintln!("{st}"))?;
/// assert_eq!(end, RollbackState::Completed);
/// # Ok::<(), lvsnap::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rollback {
    vg: VolumeGroup,
    snapshot: String,
    origin: String,
    state: RollbackState,
    /// Sectors left to merge when first seen merging, for the percentage.
    start: Option<Sectors>,
}

/// How to roll back.
///
/// ```
/// use lvsnap::snapshot::RollbackOptions;
/// assert!(RollbackOptions::default().keep(true).keeps());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollbackOptions {
    keep: bool,
}

impl RollbackOptions {
    /// Keep the snapshot, unchanged, for another rollback later (thin
    /// snapshots only; default: it is consumed, as a merge consumes it).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Whether the snapshot is kept.
    pub fn keeps(&self) -> bool {
        self.keep
    }
}

impl Rollback {
    /// A rollback already settled in `state` (a thin rollback is done at once).
    pub(super) fn settled(
        vg: &VolumeGroup,
        snapshot: &str,
        origin: &str,
        state: RollbackState,
    ) -> Rollback {
        Rollback {
            vg: vg.clone(),
            snapshot: snapshot.to_owned(),
            origin: origin.to_owned(),
            state,
            start: None,
        }
    }
}

impl VolumeGroup {
    /// Rolls the origin of COW snapshot `name` back to it by merging, as
    /// `lvconvert --merge` does: records the merge in the metadata and, if
    /// the origin is active and neither it nor the snapshot is open, starts
    /// the kernel merge and returns at once (state InProgress, or Completed
    /// if it was instant). An open device or an inactive origin gives
    /// Deferred with the reason; the merge stays recorded (LVM runs it at
    /// the origin's next activation).
    ///
    /// On a snapshot already merging (recorded by lvsnap or by LVM) it
    /// resumes: starts the kernel merge if it was deferred and nothing is
    /// open any more, or observes the running merge and, once done,
    /// finishes it (removes the COW pair; the origin goes back to a plain
    /// LV, or keeps its origin table if other snapshots remain).
    ///
    /// A thin snapshot is rolled back as [`VolumeGroup::rollback_with`] says.
    ///
    /// Refused before anything changes: an invalid snapshot, a read-only
    /// origin, an origin with another merging snapshot.
    pub fn rollback(&self, name: &str) -> Result<Rollback> {
        self.rollback_with(name, &RollbackOptions::default())
    }

    /// As [`VolumeGroup::rollback`], with options. A thin snapshot is
    /// rolled back at once, without copying data (see [`RollbackOptions`]):
    /// Completed, or Deferred with nothing changed while the origin is open.
    /// `keep` is refused for a COW snapshot, which a merge consumes.
    pub fn rollback_with(&self, name: &str, opts: &RollbackOptions) -> Result<Rollback> {
        let full = format!("{}/{name}", self.name());
        let mut s = self.write_session()?;
        let thin = s.md.vg().cow_snapshot(name).is_none()
            && s.md
                .vg()
                .lv(name)
                .is_some_and(|l| l.thin_origin().is_some());
        if thin {
            return self.rollback_thin(s, name, opts.keep);
        }
        let vg = s.md.vg();
        let Some(snap) = vg.cow_snapshot(name) else {
            return Err(match vg.lv(name) {
                Some(_) => SnapError::not_a_snapshot(vg, name),
                None => SnapError::NotFound(format!("snapshot {full}")),
            }
            .into());
        };
        if opts.keep {
            return Err(SnapError::InvalidArgument(format!(
                "{full} is a COW snapshot: a merge consumes it, so it cannot be kept \
                 (keep is for thin snapshots)"
            ))
            .into());
        }
        let origin = snap.origin.clone();
        let origin_full = format!("{}/{origin}", self.name());
        let origin_dev = self.dm_name(&origin, None)?;
        let snap_dev = self.dm_name(name, None)?;
        let dm = DmControl::shared().ok();
        let origin_live = match &dm {
            Some(dm) => dm.exists(&origin_dev)?,
            None => false,
        };
        let mut rb = Rollback {
            vg: self.clone(),
            snapshot: name.to_owned(),
            origin: origin.clone(),
            state: RollbackState::Submitted,
            start: None,
        };
        if !snap.merging {
            if vg.snapshots_of(&origin).iter().any(|o| o.merging) {
                return Err(SnapError::Busy(format!(
                    "{origin_full} already has a snapshot merging into it"
                ))
                .into());
            }
            let o = vg
                .lv(&origin)
                .ok_or_else(|| SnapError::NotFound(format!("origin {origin_full}")))?;
            let ro_dev = match (&dm, origin_live) {
                (Some(dm), true) => dm.info(&origin_dev)?.read_only,
                _ => false,
            };
            if !o.has_status(LvFlags::WRITE) || ro_dev {
                return Err(SnapError::InvalidArgument(format!(
                    "origin {origin_full} is read-only: it cannot be rolled back"
                ))
                .into());
            }
            let st = self.cow_status(&s, &snap, dm.as_ref())?;
            if st.invalid {
                return Err(SnapError::InvalidArgument(format!(
                    "snapshot {full} is invalid (its COW store overflowed): it cannot be \
                     rolled back"
                ))
                .into());
            }
            s.md.start_merge(name)?;
            s.precommit(&format!("merge snapshot {full} into {origin}"))?;
            let (Some(dm), true) = (&dm, origin_live) else {
                if let Err(e) = s.commit() {
                    s.revert();
                    return Err(e);
                }
                rb.state = self.activate_for_merge(&s, dm.as_ref(), &origin);
                drop(s);
                if !rb.state.is_settled() && rb.state != RollbackState::Submitted {
                    rb.poll_recorded();
                }
                return Ok(rb);
            };
            match open_reason(dm, &origin_full, &origin_dev, &full, &snap_dev) {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    s.commit()?;
                    rb.state = RollbackState::Deferred { reason };
                    return Ok(rb);
                }
                Err(e) => {
                    s.revert();
                    return Err(e);
                }
            }
            // LVM's order: merging state precommitted, tables loaded, origin
            // and snapshot suspended, metadata committed, then resumed: the
            // kernel starts merging.
            let committed = Cell::new(false);
            let started = CowDevices::open(dm, &origin_dev, &snap_dev)
                .map_err(crate::Error::from)
                .and_then(|c| {
                    c.start_merge_then(dm, || {
                        s.commit()?;
                        committed.set(true);
                        Ok::<(), crate::Error>(())
                    })
                });
            let merge = match started {
                Ok(m) => m,
                Err(e) if !committed.get() => {
                    s.revert();
                    return Err(e);
                }
                // Recorded: the rollback stands; the kernel side is retried
                // by the next rollback (or any operation's recovery).
                Err(e) => {
                    let reason = format!(
                        "the merge of {full} is recorded but the kernel did not start it ({e}); \
                         run rollback again"
                    );
                    s.warn(reason.clone());
                    rb.state = RollbackState::Deferred { reason };
                    return Ok(rb);
                }
            };
            rb.start = merge.progress(dm).ok().map(|p| p.remaining);
            rb.state = RollbackState::InProgress { percent: 0.0 };
        } else {
            // Recorded already (by lvsnap or `lvconvert --merge`): resume.
            let (Some(dm), true) = (&dm, origin_live) else {
                rb.state = self.activate_for_merge(&s, dm.as_ref(), &origin);
                drop(s);
                if !rb.state.is_settled() && rb.state != RollbackState::Submitted {
                    rb.poll_recorded();
                }
                return Ok(rb);
            };
            match activate::origin_live(dm, &origin_dev)? {
                OriginLive::Origin => {
                    if let Some(reason) =
                        open_reason(dm, &origin_full, &origin_dev, &full, &snap_dev)?
                    {
                        rb.state = RollbackState::Deferred { reason };
                        return Ok(rb);
                    }
                    let merge = CowDevices::open(dm, &origin_dev, &snap_dev)?.start_merge(dm)?;
                    rb.start = merge.progress(dm).ok().map(|p| p.remaining);
                }
                OriginLive::Merging(_) | OriginLive::Unreadable(_) => {}
                OriginLive::Absent => {
                    return Err(
                        SnapError::NotFound(format!("origin device {}", &*origin_dev)).into(),
                    );
                }
                ty @ OriginLive::Other(_) => {
                    return Err(SnapError::Busy(format!(
                        "{full} is recorded as merging but origin {origin_full} has a {ty} \
                         table; deactivate and activate it so LVM can restart the merge"
                    ))
                    .into());
                }
            }
            rb.state = RollbackState::InProgress { percent: 0.0 };
        }
        drop(s);
        rb.poll_recorded();
        Ok(rb)
    }
}

impl Rollback {
    /// [`Rollback::poll`] once the merge is recorded: the rollback stands
    /// whatever that look meets. A finish that cannot commit (a failing
    /// metadata disk) leaves the merge recorded, Deferred with the reason,
    /// for the next rollback or any operation's recovery to finish.
    fn poll_recorded(&mut self) {
        if let Err(e) = self.poll() {
            let reason = format!(
                "the merge of {}/{} is recorded, but finishing it failed ({e}); run rollback \
                 again",
                self.vg.name(),
                self.snapshot
            );
            log::warn!("{reason}");
            self.state = RollbackState::Deferred { reason };
        }
    }
}

impl VolumeGroup {
    /// With the merge recorded and the origin inactive: activates the origin
    /// as LVM's activation does (the merge table on it, an error table on
    /// the snapshot), which starts the merge, and leaves it active, as LVM
    /// leaves it. Submitted where lvsnap may not activate it (no
    /// device-mapper here, or lvm.conf's volume_list leaves it out): the
    /// merge starts at its next activation. An activation that fails gives
    /// Deferred with the reason.
    fn activate_for_merge(
        &self,
        s: &super::vg::Session,
        dm: Option<&DmControl>,
        origin: &str,
    ) -> RollbackState {
        let Some(dm) = dm else {
            return RollbackState::Submitted;
        };
        let vg = s.md.vg();
        let tags: Vec<String> = vg
            .tags
            .iter()
            .chain(vg.lv(origin).into_iter().flat_map(|l| &l.tags))
            .cloned()
            .collect();
        let conf = LvmConfig::load_or_default();
        if !conf.volume_allowed(self.name(), origin, &tags) {
            log::info!(
                "{}/{origin}: not in lvm.conf's activation/volume_list; the merge waits for \
                 its next activation",
                self.name()
            );
            return RollbackState::Submitted;
        }
        let activated = activate::pv_map(vg, &s.disk).and_then(|pvs| {
            activate::activate(dm, vg, &pvs, origin, &activate::ActivateOptions::default())
        });
        match activated {
            Ok(_) => RollbackState::InProgress { percent: 0.0 },
            Err(e) => RollbackState::Deferred {
                reason: format!(
                    "the merge is recorded, but activating origin {}/{origin} failed: {e}; it \
                     runs when the origin is next activated",
                    self.name()
                ),
            },
        }
    }
}

/// Why the merge must wait: the origin or the snapshot is open.
fn open_reason(
    dm: &DmControl,
    origin_full: &str,
    origin_dev: &LvmDmName,
    snap_full: &str,
    snap_dev: &LvmDmName,
) -> Result<Option<String>> {
    let o = dm.info(origin_dev)?;
    if o.open_count > 0 {
        return Ok(Some(format!(
            "origin {origin_full} (/dev/mapper/{}) is open ({} opener(s)); the merge is \
             recorded and starts once it is closed and rollback runs again",
            &**origin_dev, o.open_count
        )));
    }
    if dm.exists(snap_dev)? {
        let i = dm.info(snap_dev)?;
        if i.open_count > 0 {
            return Ok(Some(format!(
                "snapshot {snap_full} (/dev/mapper/{}) is open ({} opener(s)); the merge is \
                 recorded and starts once it is closed and rollback runs again",
                &**snap_dev, i.open_count
            )));
        }
    }
    Ok(None)
}

impl Rollback {
    /// The snapshot being merged.
    pub fn snapshot(&self) -> &str {
        &self.snapshot
    }

    /// The origin being rolled back.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The state last observed.
    pub fn state(&self) -> RollbackState {
        self.state.clone()
    }

    /// Looks at the kernel's merge and updates the state; a merge found
    /// complete is finished here (metadata and devices). Deferred, Completed
    /// and Failed stay as they are (run [`VolumeGroup::rollback`] again to
    /// retry a deferred one). Takes the VG lock only to finish.
    pub fn poll(&mut self) -> Result<RollbackState> {
        if self.state.is_settled() {
            return Ok(self.state.clone());
        }
        let dm = DmControl::shared()?;
        let origin_dev = self.vg.dm_name(&self.origin, None)?;
        let status = match activate::origin_live(&dm, &origin_dev)? {
            OriginLive::Merging(st) => st,
            OriginLive::Unreadable(u) => return Err(u.error().into()),
            // Finished by someone else (LVM on refresh), or stopped.
            OriginLive::Absent | OriginLive::Origin | OriginLive::Other(_) => {
                self.state = self.settle_elsewhere()?;
                return Ok(self.state.clone());
            }
        };
        let dm::SnapshotTargetStatus::Active(u) = status else {
            self.state = RollbackState::Failed {
                reason: format!(
                    "the kernel stopped the merge into {}/{}: {status:?}",
                    self.vg.name(),
                    self.origin
                ),
            };
            return Ok(self.state.clone());
        };
        if status.merge_done() {
            self.finish(&dm)?;
            self.state = RollbackState::Completed;
            return Ok(self.state.clone());
        }
        let left = Sectors(u.used.saturating_sub(*u.metadata.unwrap_or_default()));
        let start = *self.start.get_or_insert(left);
        let percent = if *start == 0 {
            0.0
        } else {
            dm::Percent::from_ratio(start.saturating_sub(*left), *start).as_f64()
        };
        self.state = RollbackState::InProgress { percent };
        Ok(self.state.clone())
    }

    /// Blocks until the rollback is Completed, Failed or Deferred.
    pub fn wait(&mut self) -> Result<RollbackState> {
        self.wait_with(|_| {})
    }

    /// As [`Rollback::wait`], calling `on_progress` with each state seen.
    /// The VG is not locked while waiting.
    pub fn wait_with(
        &mut self,
        mut on_progress: impl FnMut(&RollbackState),
    ) -> Result<RollbackState> {
        let dm = DmControl::shared()?;
        let origin_dev = self.vg.dm_name(&self.origin, None)?;
        // The kernel raises no event when a merge ends, so the status is
        // polled: soon at first (a small merge ends in milliseconds), then
        // every 20 ms. One status ioctl each: fifty a second cost nothing
        // beside the merge's I/O, and the end is seen within 20 ms (with
        // 100 ms between polls, up to 100 ms late).
        let mut pause = Duration::from_millis(5);
        loop {
            let since = dm.event_nr(&origin_dev).ok();
            let st = self.poll()?;
            on_progress(&st);
            if st.is_settled() {
                return Ok(st);
            }
            match since {
                Some(since) => {
                    dm.wait_event(&origin_dev, since, pause)?;
                }
                None => std::thread::sleep(pause),
            }
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// The kernel is not merging into the origin: the metadata says why.
    fn settle_elsewhere(&self) -> Result<RollbackState> {
        let s = self.vg.session()?;
        Ok(match s.md.vg().cow_snapshot(&self.snapshot) {
            None => RollbackState::Completed,
            Some(snap) if snap.merging => RollbackState::Deferred {
                reason: format!(
                    "the merge of {}/{} is recorded but not running; run rollback again or \
                     activate the origin",
                    self.vg.name(),
                    self.snapshot
                ),
            },
            Some(_) => RollbackState::Failed {
                reason: format!(
                    "{}/{} is no longer marked as merging",
                    self.vg.name(),
                    self.snapshot
                ),
            },
        })
    }

    /// The merge is complete: drop the COW pair from the metadata and give
    /// the origin its plain table (or its origin table, if other snapshots
    /// remain), as LVM does when its poll sees the merge done.
    fn finish(&self, dm: &DmControl) -> Result<()> {
        let mut s = self.vg.write_session()?;
        match s.md.vg().cow_snapshot(&self.snapshot) {
            Some(snap) if snap.merging => {}
            // Someone else finished it while we took the lock.
            _ => return Ok(()),
        }
        let origin_dev = self.vg.dm_name(&self.origin, None)?;
        let snap_dev = self.vg.dm_name(&self.snapshot, None)?;
        let merge = CowMerge::resume(dm, CowDevices::open(dm, &origin_dev, &snap_dev)?)?;
        s.md.finish_merge(&self.snapshot)?;
        s.precommit(&format!(
            "merge of {}/{} into {} finished",
            self.vg.name(),
            self.snapshot,
            self.origin
        ))?;
        // As LVM: origin's new table loaded and suspended, commit, resume,
        // then the snapshot's layers removed.
        let committed = Cell::new(false);
        let r = merge.finish_then(dm, || {
            s.commit()?;
            committed.set(true);
            Ok::<(), crate::Error>(())
        });
        self.vg.remove_link(&self.snapshot);
        match r {
            Ok(()) => Ok(()),
            Err(e) if !committed.get() => {
                s.revert();
                Err(e)
            }
            // The merge is finished in the metadata; the devices left are
            // recovery's to remove.
            Err(e) => {
                s.warn(format!(
                    "merge of {}/{} finished, but its devices were not all removed: {e}",
                    self.vg.name(),
                    self.snapshot
                ));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_and_figures() {
        let all = [
            (RollbackState::Submitted, "Submitted", 0.0, false),
            (
                RollbackState::InProgress { percent: 42.5 },
                "InProgress",
                42.5,
                false,
            ),
            (
                RollbackState::Deferred {
                    reason: "open".into(),
                },
                "Deferred",
                0.0,
                true,
            ),
            (RollbackState::Completed, "Completed", 100.0, true),
            (
                RollbackState::Failed { reason: "x".into() },
                "Failed",
                0.0,
                true,
            ),
        ];
        for (st, name, pct, settled) in all {
            assert_eq!(st.name(), name);
            assert_eq!(st.percent(), pct);
            assert_eq!(st.is_settled(), settled, "{st}");
            assert!(st.to_string().starts_with(name));
        }
        assert_eq!(
            RollbackState::Deferred {
                reason: "origin is open".into()
            }
            .reason(),
            Some("origin is open")
        );
        assert_eq!(RollbackState::Completed.reason(), None);
    }
}
