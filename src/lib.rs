//! lvsnap: LVM volume snapshots without the `lvm` command.
//!
//! lvsnap reads and writes LVM2's on-disk metadata itself and drives the
//! kernel's device-mapper through ioctls, so a program can create, watch, roll
//! back, restore and delete LVM snapshots natively, and LVM2's own tools
//! accept everything it leaves behind.
//!
//! Layers, each only calling the ones below it:
//! `snapshot` (volume-snapshot semantics) → `activate` (LV to device-mapper
//! trees: the one owner of LVM's layouts, `-real`, `-cow`, `-tpool`) → `lvm`
//! (on-disk format) → `dm` (device-mapper mechanism: typed targets, ordered
//! steps with undo).

#![deny(missing_docs)]

// Unsafe code lives in `sys` only (the ioctls nix has no wrapper for).
#[forbid(unsafe_code)]
pub mod activate;
#[forbid(unsafe_code)]
pub(crate) mod blockio;
#[forbid(unsafe_code)]
pub mod dm;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
mod fault;
#[forbid(unsafe_code)]
pub mod lvm;
#[forbid(unsafe_code)]
pub mod snapshot;
pub mod sys;
#[forbid(unsafe_code)]
pub mod units;

pub use error::{Error, ErrorKind, Result};
