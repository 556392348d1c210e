//! A COW snapshot merging back into its origin, as LVM runs it: the
//! origin's `snapshot-merge` target, its progress, and the finish.

use std::time::{Duration, Instant};

use devicemapper::Sectors;

use super::cow::CowDevices;
use super::live::{OriginLive, origin_live};
use crate::ErrorKind;
use crate::dm::{DmControl, Error, Percent, Result, SNAPSHOT_MERGE, SnapshotTargetStatus};

/// A running merge of a COW snapshot into its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CowMerge {
    snap: CowDevices,
    start: Sectors,
}

/// How far a merge has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeProgress {
    /// The `snapshot-merge` target's status.
    pub status: SnapshotTargetStatus,
    /// Data sectors still to merge.
    pub remaining: Sectors,
    /// Share merged so far: 100 when done.
    pub percent: Percent,
    /// Whether all chunks are merged.
    pub done: bool,
}

impl CowMerge {
    pub(super) fn new(snap: CowDevices, start: Sectors) -> CowMerge {
        CowMerge { snap, start }
    }

    /// The merge going on in `snap`'s origin, found from the kernel's tables
    /// (e.g. after a restart); progress is then counted from now.
    pub fn resume(dm: &DmControl, snap: CowDevices) -> Result<CowMerge> {
        let mut m = CowMerge {
            snap,
            start: Sectors(0),
        };
        if let SnapshotTargetStatus::Active(u) = m.status(dm)? {
            m.start = Sectors(u.used.saturating_sub(*u.metadata.unwrap_or_default()));
        }
        Ok(m)
    }

    /// The devices.
    pub fn snapshot(&self) -> &CowDevices {
        &self.snap
    }

    /// The merge's status, from the one origin query: an origin that is
    /// not merging is `Busy`, one gone `NotFound`, one of several lines
    /// `Corrupt`.
    fn status(&self, dm: &DmControl) -> Result<SnapshotTargetStatus> {
        let origin = &*self.snap.origin;
        let not = |kind, why: String| Err(Error::state(origin, kind, why));
        match origin_live(dm, origin)? {
            OriginLive::Merging(st) => Ok(st),
            OriginLive::Unreadable(u) => Err(u.error()),
            OriginLive::Absent => not(ErrorKind::NotFound, "no such device".into()),
            OriginLive::Other(t) if t.is_empty() => not(
                ErrorKind::Corrupt,
                "expected a table of exactly one target".into(),
            ),
            other => not(
                ErrorKind::Busy,
                format!("has a {other} target, not {SNAPSHOT_MERGE}"),
            ),
        }
    }

    /// Where the merge stands. A failed merge is an error.
    pub fn progress(&self, dm: &DmControl) -> Result<MergeProgress> {
        let status = self.status(dm)?;
        let remaining = match status {
            SnapshotTargetStatus::Active(u) => {
                Sectors(u.used.saturating_sub(*u.metadata.unwrap_or_default()))
            }
            other => {
                return Err(Error::state(
                    &*self.snap.origin,
                    ErrorKind::Io,
                    format!("merge stopped: {other:?}"),
                ));
            }
        };
        let done = status.merge_done();
        let percent = if done || *self.start == 0 {
            Percent::HUNDRED
        } else {
            Percent::from_ratio(self.start.saturating_sub(*remaining), *self.start)
        };
        Ok(MergeProgress {
            status,
            remaining,
            percent,
            done,
        })
    }

    /// Waits until the merge is done, calling `on_progress` on each check
    /// (on events, and every `recheck`). `None` if `timeout` passes first.
    pub fn wait(
        &self,
        dm: &DmControl,
        timeout: Duration,
        recheck: Duration,
        mut on_progress: impl FnMut(&MergeProgress),
    ) -> Result<Option<MergeProgress>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let since = dm.event_nr(&self.snap.origin)?;
            let p = self.progress(dm)?;
            on_progress(&p);
            if p.done {
                return Ok(Some(p));
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(None);
            }
            dm.wait_event(&self.snap.origin, since, left.min(recheck))?;
        }
    }

    /// Once done: the origin becomes a plain device again (the table `-real`
    /// had) and the snapshot, `-cow` and `-real` are removed; if the origin
    /// has other snapshots, it goes back to `snapshot-origin` and keeps `-real`.
    pub fn finish(self, dm: &DmControl) -> Result<()> {
        self.finish_then(dm, || Ok::<(), Error>(()))
    }

    /// As [`CowMerge::finish`], running `while_suspended` while the origin
    /// is suspended with its new table loaded (where LVM commits the
    /// metadata without the snapshot). If it fails, the origin keeps merging
    /// and nothing is removed.
    pub fn finish_then<E: From<Error>>(
        self,
        dm: &DmControl,
        while_suspended: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if !self.progress(dm)?.done {
            return Err(
                Error::state(&*self.snap.origin, ErrorKind::Busy, "merge is not finished").into(),
            );
        }
        let others = !self.snap.siblings(dm)?.is_empty();
        self.snap.detach(dm, others, while_suspended)
    }
}
