//! Activation: maps LVs to device-mapper trees exactly as LVM does (names,
//! UUIDs, layers, create/load/resume order), so an LV activated by `lvm` and
//! one activated here are the same devices, and either tool can deactivate
//! what the other activated.
//!
//! - [`plan`]: the pure planner, from a typed [`Vg`](crate::lvm::vg::Vg) to
//!   a [`Plan`] of devices and steps;
//! - [`activate`], [`deactivate`], [`is_active`], [`live_devices`]: the
//!   executor on [`DmControl`](crate::dm::DmControl);
//! - [`cow`]: a COW snapshot's life as LVM lays it out ([`CowDevices`],
//!   [`CowMerge`]): create, status, wait, merge back, grow, tear down;
//! - [`snapshot_live`], [`origin_live`], [`cow_live_status`]: what the
//!   kernel has live for a COW snapshot and its origin, typed; with the
//!   repairs recovery makes of them ([`restore_origin_top`],
//!   [`remove_snapshot_aware`], [`same_table`]);
//! - [`Layer`]: the layers LVM stacks (`-real`, `-cow`, `-tpool`, ...), the
//!   only place their names are spelt; plans carry typed targets
//!   ([`PlannedTarget`]: the `dm` params types);
//! - [`ThinPool`]: a thin pool's `-tpool` device, its status and messages,
//!   and its thin LVs' tables and status ([`thin_lv_table`],
//!   [`thin_lv_status`]); what a message queued in
//!   the metadata asks of the pool ([`queued_message`]);
//! - [`lv_table`], [`dm_name`], [`dm_uuid`]: an LV's own table, names, UUIDs;
//! - [`pv_map`]: PV keys to block devices from the PV scan.

pub mod cow;
mod error;
mod exec;
mod layer;
mod links;
mod live;
mod merge;
mod plan;
mod pvs;
mod thin;

pub use cow::{CowDevices, CowSnapshotSpec, PreparedCow, WaitUntil};
pub use error::{Error, Result};
pub use exec::{
    ActivateOptions, Activation, LiveDevice, activate, deactivate, is_active, live_devices,
    open_count_settled,
};
pub use layer::Layer;
pub(crate) use links::{ensure_link, remove_link};
pub use links::{lv_link, vg_dir};
pub use live::{
    OriginLive, OriginTop, SnapshotLive, UnreadableStatus, cow_live_status, cow_live_status_with,
    is_merge_table, origin_live, real_layer, remove_snapshot_aware, restore_origin_top, same_table,
    snapshot_live, unwanted_layer, unwanted_layer_in,
};
pub use merge::{CowMerge, MergeProgress};
pub use plan::{
    Area, DevRef, Plan, PlannedDevice, PlannedLine, PlannedTarget, PvMap, Role, Step, dm_name,
    dm_name_in, dm_uuid, lv_table, plan,
};
pub use pvs::{pv_map, pv_map_from};
pub use thin::{
    QueuedMessage, ThinPool, is_thin_lv_table, pool_metadata_name, queued_message, thin_lv_status,
    thin_lv_table,
};
