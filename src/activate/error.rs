//! The activation layer's error type.

use std::io;

use crate::ErrorKind;

/// What went wrong while planning, activating or deactivating an LV.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device-mapper step failed.
    #[error(transparent)]
    Dm(#[from] crate::dm::Error),
    /// An LV, PV or device named by the metadata or the caller is missing.
    #[error("{0} not found")]
    NotFound(String),
    /// The LV uses a segment type lvsnap does not activate.
    #[error("cannot activate {lv}: segment type \"{segment_type}\" is not supported")]
    Unsupported {
        /// The LV.
        lv: String,
        /// The segment type (raid1, cache, mirror, vdo, ...).
        segment_type: String,
    },
    /// The metadata does not describe a consistent LV.
    #[error("metadata of {lv}: {message}")]
    Invalid {
        /// The LV.
        lv: String,
        /// What is wrong.
        message: String,
    },
    /// A device is open, so the LV cannot be deactivated.
    #[error("logical volume {lv} in use: {device} is open ({open_count} openers)")]
    Busy {
        /// The LV asked for.
        lv: String,
        /// The open device-mapper device.
        device: String,
        /// How many openers it has.
        open_count: i32,
    },
    /// An active device differs from what the metadata says it should be.
    #[error("{device} is active with {found}, but the metadata gives {expected}")]
    Mismatch {
        /// The device.
        device: String,
        /// What the metadata gives (uuid, table or read-only flag).
        expected: String,
        /// What the kernel has.
        found: String,
    },
    /// A thin pool's kernel transaction id is not the metadata's.
    #[error("thin pool {pool}: kernel transaction_id is {kernel}, metadata says {metadata}")]
    Transaction {
        /// The pool's device.
        pool: String,
        /// The kernel's transaction id.
        kernel: u64,
        /// The metadata's transaction id.
        metadata: u64,
    },
    /// `thin_check` (lvm.conf's `global/thin_check_executable`) failed on
    /// a pool's metadata, so the pool was not activated.
    #[error("Check of pool {pool} failed (status:{status}). Manual repair required! ({detail})")]
    ThinCheck {
        /// The pool, `vg/lv`.
        pool: String,
        /// The checker's exit status (-1: killed by a signal).
        status: i32,
        /// The first line it printed, or the command run.
        detail: String,
    },
    /// A file system step (device links) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The kind of this error, stable across versions.
    ///
    /// ```
    /// use lvsnap::{activate::Error, ErrorKind};
    /// let e = Error::Unsupported { lv: "r".into(), segment_type: "raid1".into() };
    /// assert_eq!(e.kind(), ErrorKind::Unsupported);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Dm(e) => e.kind(),
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Invalid { .. } | Error::Transaction { .. } | Error::ThinCheck { .. } => {
                ErrorKind::Corrupt
            }
            Error::Busy { .. } | Error::Mismatch { .. } => ErrorKind::Busy,
            Error::Io { source, .. } => crate::error::io_kind(source),
        }
    }

    pub(crate) fn invalid(lv: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            lv: lv.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// This layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
