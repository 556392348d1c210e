//! LVM2 on-disk format: PV labels, metadata areas, LVM's checksum, the
//! volume-group locks, PV discovery, and reading and committing a VG's
//! metadata text as LVM does.
//!
//! The flow of a metadata change: [`VgDisk::open`] locks the VG (LVM's
//! `V_<vg>` flock), scans for its PVs and reads the newest committed text;
//! the caller parses and changes it and sets `seqno` to the current + 1;
//! [`VgDisk::commit`] writes it to every metadata area. For changes that
//! must wait on other work (a snapshot's device-mapper steps), use
//! [`VgDisk::precommit`], then [`VgDisk::commit_precommitted`] or
//! [`VgDisk::revert`].
//!
//! ```no_run
//! use lvsnap::lvm::{ScanOptions, VgDisk};
//! let mut vg = VgDisk::open("vg0", &ScanOptions::default())?;
//! let (n, text) = (vg.seqno(), vg.text().to_owned());
//! let next = text.replacen(&format!("\nseqno = {n}\n"), &format!("\nseqno = {}\n", n + 1), 1);
//! vg.precommit(&next)?;
//! // ... device-mapper work; on failure: vg.revert()?
//! vg.commit_precommitted()?;
//! # Ok::<(), lvsnap::lvm::Error>(())
//! ```

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
