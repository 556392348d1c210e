//! The snapshot layer's own refusals.

use crate::error::ErrorKind;

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
