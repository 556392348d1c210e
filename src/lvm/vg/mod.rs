//! A typed view of a volume group's metadata, and changes made through the
//! lossless tree so that whatever lvsnap does not model survives.
//!
//! [`Metadata`] owns the [`Document`] and a [`Vg`] view updated by every
//! change. Changes write what LVM2 itself writes for the same operation
//! (checked against `vgcfgbackup` of LVM 2.03): a new LV goes after the last
//! visible LV, hidden LVs (`snapshotN`, pool components, merging COW LVs)
//! after all visible ones, as LVM's exporter orders them.
//!
//! The parts, as LVM2's `lib/metadata` and `lib/format_text` divide them:
//! `model` (the typed view), `import` (reading it from the tree), `change`
//! ([`Metadata`] and how every edit is made and undone), the edits (`edit`
//! for plain LVs, `cow` for COW snapshots and merges, `thin` for thin LVs
//! and pools), `writer` (sections as LVM's exporter lays them out) and
//! `check` (LVM's `vg_validate`).

use std::collections::HashMap;

use crate::error::ErrorKind;
use crate::lvm::alloc::{self, Area, FreeSpace, PvExtents, PvFree};
use crate::lvm::flags::{FlagList, LvFlags, PvFlags, VgFlags};
use crate::lvm::id::{IdError, LvId, PvId, VgId};
use crate::lvm::names::{self, NameError};
use crate::lvm::text::{Array, Body, Document, Entry, ParseError, Scalar, Section, Style, Value};
use crate::units::{ExtentSize, Extents, Sectors};

/// Why the metadata could not be read as a volume group, or a change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The text does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The text parses but is not valid volume group metadata.
    #[error("metadata: {0}")]
    Invalid(String),
    /// A named LV (or PV) is not in the volume group.
    #[error("logical volume \"{0}\" not found in volume group")]
    NotFound(String),
    /// A name is refused by LVM's rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An LV of that name exists already.
    #[error("Logical Volume \"{0}\" already exists in volume group")]
    Exists(String),
    /// The change does not make sense for these LVs.
    #[error("{0}")]
    Refused(String),
    /// Not enough free extents.
    #[error("Insufficient free space: {needed} extents needed, but only {free} available")]
    NoSpace {
        /// Extents asked for.
        needed: u64,
        /// Free extents there are.
        free: u64,
    },
    /// LVM metadata that lvsnap does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Reading random bytes for a new id failed.
    #[error("cannot create an LVM id: {0}")]
    Id(#[source] std::io::Error),
    /// The volume group fails the checks LVM2 makes before using or writing
    /// one (`vg_validate`, the importer's): lvsnap writes nothing to it.
    #[error("volume group {vg} is damaged, LVM refuses it and lvsnap changes nothing: {problem}")]
    Damaged {
        /// The VG's name.
        vg: String,
        /// The first problem found, as one line.
        problem: String,
    },
}

impl ModelError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModelError::Parse(e) => e.kind(),
            ModelError::Invalid(_) | ModelError::Damaged { .. } => ErrorKind::Corrupt,
            ModelError::NotFound(_) => ErrorKind::NotFound,
            ModelError::Name(e) => e.kind(),
            ModelError::Exists(_) | ModelError::Refused(_) => ErrorKind::InvalidArgument,
            ModelError::NoSpace { .. } => ErrorKind::NoSpace,
            ModelError::Unsupported(_) => ErrorKind::Unsupported,
            ModelError::Id(_) => ErrorKind::Io,
        }
    }
}

type Result<T> = std::result::Result<T, ModelError>;

fn invalid(what: impl Into<String>) -> ModelError {
    ModelError::Invalid(what.into())
}

mod change;
mod check;
mod cow;
mod edit;
mod import;
mod model;
#[cfg(test)]
mod tests;
mod thin;
mod writer;

pub use change::*;
use import::*;
pub use model::*;
pub use thin::NewThinLv;
use writer::*;
