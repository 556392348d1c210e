//! What a caller sees of a snapshot.

use std::time::SystemTime;

use crate::units::Bytes;

/// Whether a snapshot can be used (read, restored from, rolled back to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Valid and not being merged.
    Ready,
    /// Invalidated (its COW store overflowed) or being merged into its origin.
    NotReady,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Ready => "Ready",
            State::NotReady => "NotReady",
        })
    }
}

/// One snapshot's status, as HwameiStor's LocalVolumeSnapshot reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotStatus {
    /// The snapshot LV's name (for a COW snapshot, its COW LV: the name users
    /// and `lvs` give it).
    pub name: String,
    /// The volume group.
    pub vg: String,
    /// The origin LV.
    pub source_volume: String,
    /// The snapshot LV's size: the COW store for a COW snapshot, the virtual
    /// size for a thin one.
    pub capacity: Bytes,
    /// A thin snapshot (of a thin LV), rather than a COW one.
    pub thin: bool,
    /// [`State::Ready`] unless invalid or merging.
    pub state: State,
    /// A merge into the origin is pending or running.
    pub merging: bool,
    /// The COW store overflowed; the snapshot's data is lost.
    pub invalid: bool,
    /// How full the store is, in percent, as `lvs` computes data_percent;
    /// `None` when the snapshot is not active (as `lvs` shows blank).
    pub data_percent: Option<f64>,
    /// The snapshot LV's creation time, from the LVM metadata.
    pub creation_time: SystemTime,
    /// Why it is [`State::NotReady`], when that is not merging or invalid
    /// (a restore target whose copy has not completed).
    pub reason: Option<String>,
}
