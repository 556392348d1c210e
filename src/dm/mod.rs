//! Device-mapper: the layer that talks to the kernel.
//!
//! Usable alone, on any block devices, without LVM:
//! - [`DmControl`]: create, load, suspend, resume, remove, status, messages,
//!   with [`TableLine`] tables and /dev/mapper nodes when udev is absent;
//! - typed targets, one file each, whose `Display` and `FromStr` are the
//!   kernel's table syntax: [`LinearTargetParams`], [`StripedTargetParams`],
//!   [`SnapshotOriginTargetParams`], [`SnapshotTargetParams`] (`snapshot`
//!   and `snapshot-merge`, with [`SnapshotTargetStatus`] and LVM's
//!   [`Percent`]), [`ThinPoolTargetParams`] (with [`ThinPoolMessage`]) and
//!   [`ThinTargetParams`], with [`thin_create_snap`] for snapshots;
//! - LVM names and UUIDs: [`LvmDmName`], [`LvmDmUuid`], [`LvmId`];
//! - event waits: [`DmControl::wait_event`];
//! - [`Undo`]: multi-step changes taken back, newest first, unless they
//!   complete;
//! - on-disk formats read natively: COW exception stores
//!   ([`exception_store`]) and thin-pool metadata ([`thin_metadata`]).

mod device;
mod direct_io;
mod error;
mod event;
pub mod exception_store;
mod linear;
mod name;
mod node;
mod percent;
mod snapshot;
mod striped;
mod target;
mod thin;
pub mod thin_metadata;
mod thin_pool;
mod undo;

pub use device::{DmControl, Info, Suspend, Suspended, TableLine, table_size};
pub use direct_io::{DirectReader, ReadAt};
pub use error::{Error, Result};
pub use event::{EventWaiter, WaitOutcome};
pub use linear::{LINEAR, LinearTargetParams};
pub use name::{
    DM_NAME_MAX, LVM_NAME_MAX, LvmDmName, LvmDmUuid, LvmId, check_dm_name, check_dm_uuid,
    check_lvm_name, layer_name, layer_uuid,
};
pub use node::{
    DM_DIR, NodeEntries, ensure_node, mapper_entries, node_exists, node_path, remove_node,
    udev_running,
};
pub use percent::Percent;
pub use snapshot::{
    ChunkSize, SNAPSHOT, SNAPSHOT_MERGE, SNAPSHOT_ORIGIN, SnapshotOriginTargetParams,
    SnapshotTargetParams, SnapshotTargetStatus, SnapshotUsage,
};
pub use striped::{STRIPED, Stripe, StripedTargetParams};
pub use thin::{
    THIN, ThinSnapshotSpec, ThinTargetParams, thin_create, thin_create_snap, thin_create_snaps,
    thin_created_in, thin_delete, thin_set_transaction_id, thin_status, thin_undo_snaps,
};
pub use thin_pool::{
    THIN_POOL, ThinPoolBlockSize, ThinPoolFeatures, ThinPoolMessage, ThinPoolTargetParams,
    parse_thin_pool_status, thin_pool_message, thin_pool_status,
};
pub use undo::Undo;
