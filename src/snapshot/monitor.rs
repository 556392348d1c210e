//! Watching every COW snapshot of some volume groups, extending a store
//! before it fills (as dmeventd's snapshot plugin runs
//! `lvextend --use-policies`), and telling what happened.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use devicemapper::DmNameBuf;

use super::vg::VolumeGroup;
use super::{Error as SnapError, ExtendSize};
use crate::ErrorKind;
use crate::activate::{self, OriginLive, SnapshotLive};
use crate::dm::{DmControl, EventWaiter, Percent, SnapshotTargetStatus};
use crate::error::Result;
use crate::units::Bytes;

/// What a [`Monitor`] saw or did. Each is told once.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// A store was extended, from `old` to `new` bytes, because its
    /// data_percent (`percent`) was above the threshold.
    Extended {
        /// The volume group.
        vg: String,
        /// The snapshot.
        snapshot: String,
        /// The store's size before.
        old: Bytes,
        /// Its size now.
        new: Bytes,
        /// How full it was.
        percent: f64,
    },
    /// The snapshot is invalid: its store overflowed and its data is gone.
    Invalid {
        /// The volume group.
        vg: String,
        /// The snapshot.
        snapshot: String,
    },
    /// A merge of the snapshot into its origin completed.
    Merged {
        /// The volume group.
        vg: String,
        /// The snapshot.
        snapshot: String,
        /// The origin it merged into.
        origin: String,
    },
    /// The store is above the threshold but the VG cannot give the
    /// extension (told again only after a later extension succeeds).
    NoSpace {
        /// The volume group.
        vg: String,
        /// The snapshot.
        snapshot: String,
        /// LVM's words for why.
        reason: String,
    },
}

impl MonitorEvent {
    /// `extended`, `invalid`, `merged` or `no_space`.
    pub fn name(&self) -> &'static str {
        match self {
            MonitorEvent::Extended { .. } => "extended",
            MonitorEvent::Invalid { .. } => "invalid",
            MonitorEvent::Merged { .. } => "merged",
            MonitorEvent::NoSpace { .. } => "no_space",
        }
    }

    /// The volume group and the snapshot the event is about.
    pub fn snapshot(&self) -> (&str, &str) {
        match self {
            MonitorEvent::Extended { vg, snapshot, .. }
            | MonitorEvent::Invalid { vg, snapshot }
            | MonitorEvent::Merged { vg, snapshot, .. }
            | MonitorEvent::NoSpace { vg, snapshot, .. } => (vg, snapshot),
        }
    }
}

/// How a [`Monitor`] watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOptions {
    /// The volume groups to watch; empty: all of them, as found now and
    /// whenever device-mapper devices come or go.
    pub vgs: Vec<String>,
    /// Extend a store once its data_percent is above this (LVM's
    /// `snapshot_autoextend_threshold`; below 50 counts as 50, 100 never
    /// extends).
    pub threshold: u32,
    /// By how much of its size (`snapshot_autoextend_percent`), or by more
    /// where that would not bring it back under the threshold.
    pub percent: u32,
    /// How often every snapshot's status is read (invalidation is seen at
    /// once, from device-mapper events).
    pub interval: Duration,
}

impl Default for MonitorOptions {
    /// All VGs, LVM's defaults (threshold 100: never extend; 20%), a status
    /// read every second.
    fn default() -> Self {
        MonitorOptions {
            vgs: Vec::new(),
            threshold: 100,
            percent: 20,
            interval: Duration::from_secs(1),
        }
    }
}

impl MonitorOptions {
    /// The defaults, with threshold and percent from lvm.conf's
    /// `activation/snapshot_autoextend_threshold` and `_percent`
    /// (`$LVM_SYSTEM_DIR/lvm.conf`, else `/etc/lvm/lvm.conf`); LVM's
    /// defaults where it or they are absent or unreadable.
    pub fn from_lvm_conf() -> MonitorOptions {
        let c = crate::lvm::config::LvmConfig::load_or_default();
        MonitorOptions {
            threshold: c.snapshot_autoextend_threshold.min(100),
            percent: c.snapshot_autoextend_percent,
            ..MonitorOptions::default()
        }
    }
}

/// One COW snapshot being watched.
#[derive(Debug)]
struct Watched {
    vg: String,
    name: String,
    origin: String,
    snap_dev: DmNameBuf,
    origin_dev: DmNameBuf,
    merging: bool,
    invalid_told: bool,
    merged_told: bool,
    no_space_told: bool,
}

/// Watches every COW snapshot of some volume groups: reads each one's
/// status about every [`MonitorOptions::interval`] (one ioctl each: the
/// kernel raises no event as a store fills) and wakes at once on a
/// device-mapper event (an invalidation); extends a store whose
/// data_percent is above the threshold by [`extend_percent`] of its size,
/// as `lvextend --use-policies` does; tells each extension, invalidation,
/// completed merge and refused extension as a [`MonitorEvent`].
///
/// It takes the VG lock only for an extension or to learn of snapshots
/// made or removed since (when device-mapper devices come or go), never
/// between events, so `lvm` and other lvsnap calls go on beside it.
///
/// ```no_run
/// use std::time::Duration;
/// use lvsnap::snapshot::{Monitor, MonitorOptions};
/// let mut m = Monitor::new(MonitorOptions { threshold: 70, percent: 20, ..Default::default() })?;
/// while let Some(ev) = m.next_event(Duration::from_secs(60))? {
///     println!("{ev:?}");
/// }
/// # Ok::<(), lvsnap::Error>(())
/// ```
#[derive(Debug)]
pub struct Monitor {
    opts: MonitorOptions,
    dm: DmControl,
    waiter: EventWaiter,
    watched: Vec<Watched>,
    /// The device-mapper devices (name and number) at the last look, sorted.
    devices: Option<Vec<String>>,
    rescan: bool,
    pending: VecDeque<MonitorEvent>,
    next_tick: Instant,
    last_tick: Instant,
}

/// By how many percent `lvextend --use-policies` grows a store that is
/// `used` full, with `threshold` and `percent` as lvm.conf gives them:
/// nothing (0) unless above both 50% and the threshold; else `percent`, or
/// the least that brings it back to the threshold if that is more (LVM's
/// `_adjust_amount`, in its fixed-point units, rounding up).
///
/// ```
/// use lvsnap::dm::Percent;
/// use lvsnap::snapshot::extend_percent;
/// assert_eq!(extend_percent(Percent::from_ratio(69, 100), 70, 20), 0);
/// assert_eq!(extend_percent(Percent::from_ratio(71, 100), 70, 20), 20);
/// // 95% full: +36% brings it to 69.85%, under 70%.
/// assert_eq!(extend_percent(Percent::from_ratio(95, 100), 70, 20), 36);
/// assert_eq!(extend_percent(Percent::from_ratio(99, 100), 100, 20), 0);
/// ```
pub fn extend_percent(used: Percent, threshold: u32, percent: u32) -> u32 {
    let threshold = threshold.max(50);
    if threshold >= 100 || percent == 0 {
        return 0;
    }
    let p = u64::from(used.millionths());
    let one = 1_000_000u64;
    if !(50 * one < p && p <= 100 * one) || p <= u64::from(threshold) * one {
        return 0;
    }
    let t = u64::from(threshold) * (one / 100);
    let needed = p.div_ceil(t).saturating_sub(100);
    u32::try_from(needed).unwrap_or(u32::MAX).max(percent)
}

impl Monitor {
    /// Starts watching as `opts` says. Nothing is read until the first
    /// [`Monitor::next_event`].
    pub fn new(opts: MonitorOptions) -> Result<Monitor> {
        if opts.percent == 0 && opts.threshold < 100 {
            return Err(SnapError::InvalidArgument(
                "autoextend percent 0: a store cannot be extended by nothing".into(),
            )
            .into());
        }
        Ok(Monitor {
            opts,
            dm: DmControl::shared()?,
            waiter: EventWaiter::new()?,
            watched: Vec::new(),
            devices: None,
            rescan: true,
            pending: VecDeque::new(),
            next_tick: Instant::now(),
            last_tick: Instant::now(),
        })
    }

    /// The next event, waiting up to `timeout` for one; `None` if none
    /// came. Status reads, extensions and wake-ups happen inside.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<MonitorEvent>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            // Armed before the look, so an event during it ends the sleep.
            self.waiter.arm()?;
            if now >= self.next_tick {
                self.last_tick = now;
                self.next_tick = now + self.opts.interval;
                self.tick()?;
                continue;
            }
            let until = deadline.map_or(self.next_tick, |d| d.min(self.next_tick));
            if self.waiter.sleep(until.saturating_duration_since(now))? {
                // An event (an invalidation, a merge ending, a table
                // swapped): look again now, but not more than every 10 ms
                // however many events come.
                self.next_tick = Instant::now().max(self.last_tick + Duration::from_millis(10));
            }
        }
    }

    /// One round: learn of snapshots made or removed if devices came or
    /// went, then read every watched snapshot's status and act on it.
    fn tick(&mut self) -> Result<()> {
        let mut devices: Vec<String> = (self.dm.list()?.into_iter())
            .map(|(n, d)| format!("{} {d}", &*n))
            .collect();
        devices.sort();
        if self.rescan || self.devices.as_ref() != Some(&devices) {
            self.devices = Some(devices);
            self.rescan = false;
            self.rediscover();
        }
        for i in 0..self.watched.len() {
            if let Err(e) = self.check(i) {
                // Gone or changed under us (deleted, merge started): the
                // metadata says what it is now.
                log::debug!("{}/{}: {e}", self.watched[i].vg, self.watched[i].name);
                self.rescan = true;
            }
        }
        Ok(())
    }

    /// Reads the metadata of the watched VGs for their COW snapshots. A VG
    /// that cannot be read is skipped this time (its snapshots stay
    /// watched), so one bad VG does not blind the others.
    fn rediscover(&mut self) {
        let names = if self.opts.vgs.is_empty() {
            match super::volume_groups() {
                Ok(v) => v,
                Err(e) => {
                    log::warn!("monitor: listing volume groups: {e}");
                    return;
                }
            }
        } else {
            self.opts.vgs.clone()
        };
        let mut found: Vec<Watched> = Vec::new();
        let mut unread: Vec<String> = Vec::new();
        for vg in names {
            match snapshots_of(&vg) {
                Ok(v) => found.extend(v),
                Err(e) => {
                    log::warn!("monitor: reading VG {vg}: {e}");
                    unread.push(vg);
                }
            }
        }
        let old = std::mem::take(&mut self.watched);
        for mut w in old {
            if unread.contains(&w.vg) {
                self.watched.push(w);
                continue;
            }
            match found.iter().position(|f| f.vg == w.vg && f.name == w.name) {
                Some(i) => {
                    let f = found.swap_remove(i);
                    w.merging = f.merging;
                    self.watched.push(w);
                }
                // Gone: a finished merge removes the snapshot.
                None if w.merging && !w.merged_told => {
                    self.pending.push_back(MonitorEvent::Merged {
                        vg: w.vg,
                        snapshot: w.name,
                        origin: w.origin,
                    });
                }
                None => {}
            }
        }
        self.watched.extend(found);
    }

    /// Reads one snapshot's status and acts on it.
    fn check(&mut self, i: usize) -> Result<()> {
        let w = &self.watched[i];
        if w.merging {
            if w.merged_told {
                return Ok(());
            }
            let done = match activate::origin_live(&self.dm, &w.origin_dev)? {
                OriginLive::Merging(st) => st.merge_done(),
                OriginLive::Unreadable(u) => return Err(u.error().into()),
                _ => false,
            };
            if done {
                let w = &mut self.watched[i];
                w.merged_told = true;
                self.pending.push_back(MonitorEvent::Merged {
                    vg: w.vg.clone(),
                    snapshot: w.name.clone(),
                    origin: w.origin.clone(),
                });
            }
            return Ok(());
        }
        let st = match activate::snapshot_live(&self.dm, &w.snap_dev)? {
            // Not active: nothing fills it.
            SnapshotLive::Absent => return Ok(()),
            SnapshotLive::Snapshot(st) => st,
            SnapshotLive::Unreadable(u) => return Err(u.error().into()),
            SnapshotLive::Other(ty) => {
                return Err(SnapError::Busy(format!("{} has a {ty} target", &*w.snap_dev)).into());
            }
        };
        if st.is_invalid() || st == SnapshotTargetStatus::Overflow {
            if !w.invalid_told {
                let w = &mut self.watched[i];
                w.invalid_told = true;
                self.pending.push_back(MonitorEvent::Invalid {
                    vg: w.vg.clone(),
                    snapshot: w.name.clone(),
                });
            }
            return Ok(());
        }
        let Some(used) = st.data_percent() else {
            return Ok(());
        };
        let by = extend_percent(used, self.opts.threshold, self.opts.percent);
        if by == 0 {
            return Ok(());
        }
        let vg = VolumeGroup::open(&w.vg)?;
        match vg.extend_snapshot(&w.name, ExtendSize::ByPercent(by)) {
            Ok(e) => {
                let w = &mut self.watched[i];
                w.no_space_told = false;
                if e.size > e.old_size {
                    self.pending.push_back(MonitorEvent::Extended {
                        vg: w.vg.clone(),
                        snapshot: w.name.clone(),
                        old: e.old_size,
                        new: e.size,
                        percent: used.as_f64(),
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NoSpace => {
                let w = &mut self.watched[i];
                if !w.no_space_told {
                    w.no_space_told = true;
                    self.pending.push_back(MonitorEvent::NoSpace {
                        vg: w.vg.clone(),
                        snapshot: w.name.clone(),
                        reason: e.to_string(),
                    });
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The COW snapshots of VG `vg` in its metadata, unwatched yet.
fn snapshots_of(vg: &str) -> Result<Vec<Watched>> {
    let v = VolumeGroup::open(vg)?;
    let s = v.session()?;
    let mut out = Vec::new();
    for c in s.md.vg().cow_snapshots() {
        out.push(Watched {
            vg: vg.to_owned(),
            snap_dev: v.dm_name(&c.name, None)?.into_dm_name(),
            origin_dev: v.dm_name(&c.origin, None)?.into_dm_name(),
            name: c.name,
            origin: c.origin,
            merging: c.merging,
            invalid_told: false,
            merged_told: false,
            no_space_told: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_policy_amounts() {
        let p = |n, d| Percent::from_ratio(n, d);
        // At or under the threshold, or at most 50%: nothing.
        assert_eq!(extend_percent(p(70, 100), 70, 20), 0);
        assert_eq!(extend_percent(p(45, 100), 40, 20), 0);
        // A threshold under 50 counts as 50.
        assert_eq!(extend_percent(p(51, 100), 10, 20), 20);
        // 100% full at threshold 50: double it.
        assert_eq!(extend_percent(Percent::HUNDRED, 50, 20), 100);
        assert_eq!(extend_percent(p(80, 100), 60, 0), 0);
        assert_eq!(extend_percent(p(80, 100), 100, 20), 0);
    }
}
