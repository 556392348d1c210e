//! The crate's error type.
//!
//! Each layer has its own error enum; all of them fold into [`Error`], whose
//! [`Error::kind`] gives a caller one stable [`ErrorKind`] to match on.

use std::io;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A volume group, volume, device or file does not exist.
    NotFound,
    /// The caller passed something malformed or out of range.
    InvalidArgument,
    /// The object is in use or in a state that forbids the operation now.
    Busy,
    /// Not enough free space (extents, COW, pool) for the operation.
    NoSpace,
    /// A valid request that lvsnap does not (yet) carry out.
    Unsupported,
    /// On-disk or kernel data that does not parse or fails its checks.
    Corrupt,
    /// An I/O or system call failure.
    Io,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Busy => "busy",
            ErrorKind::NoSpace => "no space",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "I/O error",
        };
        f.write_str(s)
    }
}

/// The crate's error: a layer's error, or a plain I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was rejected before anything was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An I/O error with what was being done when it happened.
    #[error("{context}: {source}")]
    Io {
        /// What lvsnap was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An activation error.
    #[error(transparent)]
    Activate(Box<crate::activate::Error>),
    /// A device-mapper error.
    #[error(transparent)]
    Dm(#[from] crate::dm::Error),
    /// From the LVM metadata model (text, typed view, allocation, names).
    #[error(transparent)]
    Metadata(#[from] crate::lvm::vg::ModelError),
    /// A refusal of the snapshot layer.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::Error),
    /// From the LVM on-disk layer.
    #[error(transparent)]
    Lvm(#[from] crate::lvm::Error),
}

impl Error {
    /// The kind of this error, stable across versions.
    ///
    /// ```
    /// use lvsnap::{Error, ErrorKind};
    /// let e = Error::InvalidArgument("chunk size 3 KiB is not a power of two".into());
    /// assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Io { source, .. } => io_kind(source),
            Error::Activate(e) => e.kind(),
            Error::Dm(e) => e.kind(),
            Error::Lvm(e) => e.kind(),
            Error::Metadata(e) => e.kind(),
            Error::Snapshot(e) => e.kind(),
        }
    }

    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Map an OS error to the kind a caller would expect.
pub(crate) fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
        io::ErrorKind::ResourceBusy => ErrorKind::Busy,
        io::ErrorKind::StorageFull => ErrorKind::NoSpace,
        io::ErrorKind::Unsupported => ErrorKind::Unsupported,
        io::ErrorKind::InvalidData => ErrorKind::Corrupt,
        _ => ErrorKind::Io,
    }
}

impl From<crate::activate::Error> for Error {
    // Boxed: activation errors carry whole device descriptions, and every
    // Result of the crate pays for the largest variant.
    fn from(e: crate::activate::Error) -> Self {
        Error::Activate(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let e = Error::io("open /dev/x", io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "open /dev/x: entity not found");
        let e = Error::io("ioctl", io::Error::from_raw_os_error(libc_ebusy()));
        assert_eq!(e.kind(), ErrorKind::Busy);
    }

    fn libc_ebusy() -> i32 {
        16
    }
}
