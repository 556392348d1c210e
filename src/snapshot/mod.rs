//! Volume-snapshot semantics (HwameiStor's): create, status, watch, rollback,
//! restore, delete.

mod options;
mod size;
mod status;

pub use options::SnapshotOptions;
pub use size::{SnapSize, check_chunk_size, cow_max_extents, parse_size, plan_cow_extents};
pub use status::{SnapshotStatus, State};
