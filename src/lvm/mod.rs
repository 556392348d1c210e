//! LVM2 on-disk format: metadata text, typed volume-group view, extent
//! allocation and name rules.

pub mod alloc;
pub mod names;
pub mod text;
pub mod vg;
