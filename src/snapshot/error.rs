//! The snapshot layer's own refusals.

use crate::error::ErrorKind;
use crate::lvm::vg::Vg;

/// Why the snapshot layer refused an operation before changing anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such volume group, volume or snapshot.
    #[error("{0} not found")]
    NotFound(String),
    /// A request LVM would refuse too (snapshot of a snapshot, bad name...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The volume or snapshot is in use or in a state that forbids it now.
    #[error("{0}")]
    Busy(String),
    /// Not enough free extents; says how many are needed and free.
    #[error("{0}")]
    NoSpace(String),
    /// Something lvsnap does not do (yet).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// LV `lv` of `vg` exists but is no snapshot (InvalidArgument). A thin
    /// volume with no origin is told why: LVM drops a thin snapshot's
    /// origin link when its origin is removed, and it is a volume then.
    pub(crate) fn not_a_snapshot(vg: &Vg, lv: &str) -> Error {
        let thin_volume = vg
            .lv(lv)
            .is_some_and(|l| l.thin().is_some() && l.thin_origin().is_none());
        let why = if thin_volume {
            ": it is a thin volume with no origin (a thin snapshot whose origin was removed \
             becomes one); lvremove removes it"
        } else {
            ""
        };
        Error::InvalidArgument(format!("{}/{lv} is not a snapshot{why}", vg.name))
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Busy(_) => ErrorKind::Busy,
            Error::NoSpace(_) => ErrorKind::NoSpace,
            Error::Unsupported(_) => ErrorKind::Unsupported,
        }
    }
}
