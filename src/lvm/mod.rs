//! LVM2 on-disk format: PV labels, metadata areas, LVM's checksum, the
//! volume-group locks, PV discovery, reading and committing a VG's metadata
//! text as LVM does; the metadata text, typed volume-group view, extent
//! allocation and name rules.

pub mod alloc;
pub mod crc;
pub mod disk;
mod error;
pub mod label;
pub mod lock;
pub mod mda;
pub mod names;
pub mod scan;
pub mod text;
pub mod vg;

pub use disk::VgDisk;
pub use error::{Error, Result};
pub use scan::ScanOptions;
