//! LVM2 on-disk format: PV labels, metadata areas, LVM's checksum, the
//! volume-group locks, PV discovery, reading and committing a VG's metadata
//! text as LVM does; the metadata text, typed volume-group view, extent
//! allocation and name rules.
//!
//! - [`text`]: the metadata text as a lossless tree ([`text::Document`]),
//!   written back in LVM's file or raw layout ([`text::Style`]).
//! - [`vg`]: [`vg::Metadata`], the tree plus a typed [`vg::Vg`] view, and the
//!   changes lvsnap makes (linear LV, COW snapshot pair, merge, thin LV and
//!   thin snapshot, removal, seqno) written as LVM writes them.
//! - [`alloc`]: where LVM's `normal` policy puts a new LV's extents.
//! - [`names`]: LVM's VG/LV name rules and new LVM ids.
//! - [`id`]: checked VG, PV and LV ids.
//! - [`flags`]: the `status` and `flags` words, typed and kept verbatim.
//!
//! ```
//! use lvsnap::lvm::text::Style;
//! use lvsnap::lvm::vg::{Creation, Metadata};
//! use lvsnap::units::{Extents, Sectors};
//!
//! let text = std::fs::read_to_string("tests/fixtures/linear.vg").unwrap();
//! let mut md = Metadata::parse(&text)?;
//! md.add_linear_lv("origin", Extents(2), &Creation::now())?;
//! md.add_cow_snapshot("origin", "snapcontent-1", Extents(1), Sectors(8), true, &Creation::now())?;
//! md.bump_seqno()?;
//! let snap = md.vg().cow_snapshot("snapcontent-1").unwrap();
//! assert_eq!((snap.origin.as_str(), snap.snapshot_lv.as_str()), ("origin", "snapshot0"));
//! let _for_the_metadata_area = md.to_text(Style::Raw);
//! # Ok::<(), lvsnap::lvm::vg::ModelError>(())
//! ```
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

pub mod alloc;
mod blockdev;
pub mod config;
pub mod crc;
pub mod disk;
mod error;
pub mod flags;
pub(crate) mod hints;
pub mod id;
pub mod label;
mod lexer;
pub mod lock;
pub mod mda;
pub mod names;
mod pv_io;
pub mod scan;
pub mod text;
pub mod vg;

pub use disk::VgDisk;
pub use error::{Error, Result};
pub use scan::ScanOptions;
