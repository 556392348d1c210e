//! Device-mapper: the layer that talks to the kernel.
//!
//! Usable alone, on any block devices, without LVM:
//! - [`DmControl`]: create, load, suspend, resume, remove, status, messages,
//!   with [`TableLine`] tables and /dev/mapper nodes when udev is absent;
//! - typed targets: [`SnapshotOriginTargetParams`], [`SnapshotTargetParams`]
//!   (`snapshot` and `snapshot-merge`) and [`SnapshotTargetStatus`] with LVM's
//!   [`Percent`]; thin pools and thin devices come from the `devicemapper`
//!   crate, with [`thin_create_snap`] for snapshots;
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
mod name;
mod node;
mod percent;
mod snapshot;
mod thin;
pub mod thin_metadata;
mod undo;

pub use device::{DmControl, Info, Suspend, Suspended, TableLine, table_size};
pub use direct_io::{DirectReader, ReadAt};
pub use error::{Error, Result};
pub use event::{EventWaiter, WaitOutcome};
pub use name::{
    DM_NAME_MAX, LVM_NAME_MAX, LvmDmName, LvmDmUuid, LvmId, check_dm_name, check_dm_uuid,
    check_lvm_name, layer_name, layer_uuid,
};
pub use node::{DM_DIR, ensure_node, node_path, remove_node, udev_running};
pub use percent::Percent;
pub use snapshot::{
    ChunkSize, SNAPSHOT, SNAPSHOT_MERGE, SNAPSHOT_ORIGIN, SnapshotOriginTargetParams,
    SnapshotTargetParams, SnapshotTargetStatus, SnapshotUsage,
};
pub use thin::{
    ThinSnapshotSpec, parse_thin_pool_status, thin_check_id_free, thin_create, thin_create_snap,
    thin_create_snaps, thin_delete, thin_message_replay, thin_pool_status, thin_set_transaction_id,
    thin_status, thin_table, thin_undo_snaps,
};
pub use undo::Undo;
