//! Watching a snapshot fill up or turn invalid.

use std::time::Duration;

use super::Error as SnapError;
use super::vg::VolumeGroup;
use crate::activate::{CowDevices, WaitUntil};
use crate::dm::{DmControl, Percent};
use crate::error::Result;

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Until {
    /// The snapshot turns invalid (its COW store overflowed).
    Invalid,
    /// It turns invalid, or its data_percent reaches this many percent.
    InvalidOrPercent(f64),
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WatchEvent {
    /// The snapshot is invalid: its data is gone.
    Invalid,
    /// data_percent reached the threshold; this is its value.
    Percent(f64),
    /// Neither happened before the timeout.
    TimedOut,
}

/// A watch on one active COW snapshot.
///
/// Invalidation wakes a waiter at once: the kernel raises a device-mapper
/// event for it. The kernel raises none as a snapshot fills, so a percent
/// threshold is also checked every [`Watch::recheck`] interval (250 ms by
/// default) between events.
///
/// ```no_run
/// use std::time::Duration;
/// use lvsnap::snapshot::{Until, VolumeGroup, WatchEvent};
/// let vg = VolumeGroup::open("vg0")?;
/// match vg.watch("snapcontent-1")?.wait(Until::InvalidOrPercent(90.0), Duration::from_secs(60))? {
///     WatchEvent::Invalid => eprintln!("snapshot lost"),
///     WatchEvent::Percent(p) => eprintln!("{p}% full: extend or drop it"),
///     WatchEvent::TimedOut => {}
/// }
/// # Ok::<(), lvsnap::Error>(())
/// ```
pub struct Watch {
    dm: DmControl,
    snap: CowDevices,
    recheck: Duration,
}

impl VolumeGroup {
    /// Starts watching COW snapshot `name`, which must be active.
    pub fn watch(&self, name: &str) -> Result<Watch> {
        let s = self.session()?;
        let full = format!("{}/{name}", self.name());
        let snap =
            s.md.vg()
                .cow_snapshot(name)
                .ok_or_else(|| match s.md.vg().lv(name) {
                    Some(_) => SnapError::InvalidArgument(format!(
                        "{full} is not a COW snapshot (thin snapshots cannot overflow)"
                    )),
                    None => SnapError::NotFound(format!("snapshot {full}")),
                })?;
        drop(s);
        let dm = DmControl::shared()?;
        let snap_dev = self.dm_name(name, None)?;
        if !dm.exists(&snap_dev)? {
            return Err(SnapError::InvalidArgument(format!(
                "snapshot {full} is not active; activate its origin {} first",
                snap.origin
            ))
            .into());
        }
        let origin_dev = self.dm_name(&snap.origin, None)?;
        let snap = CowDevices::open(&dm, &origin_dev, &snap_dev)?;
        Ok(Watch {
            dm,
            snap,
            recheck: Duration::from_millis(250),
        })
    }
}

impl Watch {
    /// How often a percent threshold is rechecked between events.
    pub fn recheck(mut self, every: Duration) -> Self {
        self.recheck = every.max(Duration::from_millis(1));
        self
    }

    /// Blocks until `until` holds or `timeout` passes.
    pub fn wait(&self, until: Until, timeout: Duration) -> Result<WatchEvent> {
        let dm_until = match until {
            Until::Invalid => WaitUntil::Invalid,
            Until::InvalidOrPercent(p) => {
                if !(0.0..=100.0).contains(&p) {
                    return Err(SnapError::InvalidArgument(format!(
                        "threshold {p}%: must be from 0 to 100"
                    ))
                    .into());
                }
                WaitUntil::InvalidOrPercent(Percent::from_ratio((p * 1e6) as u64, 100_000_000))
            }
        };
        let got = self.snap.wait(&self.dm, dm_until, timeout, self.recheck)?;
        Ok(match got {
            None => WatchEvent::TimedOut,
            Some(st) if st.is_invalid() => WatchEvent::Invalid,
            Some(st) => WatchEvent::Percent(st.data_percent().map_or(0.0, |p| p.as_f64())),
        })
    }
}
