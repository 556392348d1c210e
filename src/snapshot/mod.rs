//! Volume-snapshot semantics (HwameiStor's): create, status, watch, rollback
//! (merge), restore into a new volume, delete; changed-block export.

mod changed;
mod create;
mod delete;
mod error;
mod extend;
mod group;
mod monitor;
mod options;
mod recover;
mod report;
mod restore;
mod rollback;
mod size;
mod status;
mod thin;
mod thin_rollback;
mod vg;
mod watch;

pub use changed::{ChangedBlocks, ChangedRange};
pub use create::Created;
pub use error::Error;
pub use extend::{ExtendSize, Extended};
pub use monitor::{Monitor, MonitorEvent, MonitorOptions, extend_percent};
pub use options::SnapshotOptions;
pub use recover::{RecoveryReport, Repair, RepairKind};
pub use restore::{RESTORE_INCOMPLETE_TAG, RestoreOptions, RestoreProgress, Restored};
pub use rollback::{Rollback, RollbackOptions, RollbackState};
pub use size::{
    MAX_EXTENT_COUNT, SnapSize, check_chunk_size, cow_max_extents, parse_size, plan_cow_extents,
};
pub use status::{SnapshotStatus, State};
pub use vg::{VolumeGroup, all_snapshots, all_snapshots_and_problems, volume_groups};
pub use watch::{Until, Watch, WatchEvent};
