//! The error type of the LVM on-disk layer.

use std::io;
use std::path::Path;

use crate::error::{io_kind, ErrorKind};

/// What went wrong reading, writing or locking LVM2 on-disk metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// On-disk bytes that fail LVM's checks: magic, checksum, bounds, text.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// The structure (and where it was read from, when known).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A volume group or one of its physical volumes is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller's input was rejected before anything was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A lock is held by someone else (non-blocking lock) or the VG is in a
    /// state that forbids writing (e.g. one of its PVs is missing).
    #[error("busy: {0}")]
    Busy(String),
    /// The new metadata text does not fit in a metadata area.
    #[error("no space: {0}")]
    NoSpace(String),
    /// A valid layout that lvsnap does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The kind of this error, as [`crate::Error::kind`] reports it.
    ///
    /// ```
    /// use lvsnap::lvm::Error;
    /// use lvsnap::ErrorKind;
    /// let e = Error::corrupt("label on /dev/sdb", "bad checksum");
    /// assert_eq!(e.kind(), ErrorKind::Corrupt);
    /// assert_eq!(e.to_string(), "corrupt label on /dev/sdb: bad checksum");
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Busy(_) => ErrorKind::Busy,
            Error::NoSpace(_) => ErrorKind::NoSpace,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Io { source, .. } => io_kind(source),
        }
    }

    /// A corrupt-structure error.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An I/O error on a path.
    pub(crate) fn io_path(doing: &str, path: &std::path::Path, source: io::Error) -> Error {
        Error::io(format!("{doing} {}", path.display()), source)
    }

    /// Prefix a corrupt error's location with where it was read from.
    pub(crate) fn at(self, place: &Path) -> Error {
        match self {
            Error::Corrupt { what, detail } => Error::Corrupt {
                what: format!("{what} on {}", place.display()),
                detail,
            },
            e => e,
        }
    }
}

/// The result type of the LVM on-disk layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
