//! LVM2 on-disk format: PV labels, metadata areas, LVM's checksum, the
//! volume-group locks, PV discovery, and reading and committing a VG's
//! metadata text as LVM does.

pub mod crc;
pub mod disk;
mod error;
pub mod label;
pub mod lock;
pub mod mda;
pub mod scan;

pub use disk::VgDisk;
pub use error::{Error, Result};
pub use scan::ScanOptions;
