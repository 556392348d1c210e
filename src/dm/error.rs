//! The device-mapper layer's error type.

use std::io;

use devicemapper::{DmError, errors};

use crate::ErrorKind;

/// What went wrong in the device-mapper layer, with the device and step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was rejected before anything was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A device-mapper ioctl failed.
    #[error("device-mapper {op} of {device} failed: {reason}")]
    Ioctl {
        /// The step: "create", "load", "suspend", "resume", "remove", ...
        op: &'static str,
        /// The device it was addressed to.
        device: String,
        /// The kernel's reason in a few words (errno description).
        reason: String,
        /// The kind derived from the errno.
        kind: ErrorKind,
        /// The devicemapper crate's error.
        #[source]
        source: DmError,
    },
    /// The device is in a state that forbids the operation.
    #[error("{device}: {message}")]
    State {
        /// The device concerned.
        device: String,
        /// What is wrong with its state.
        message: String,
        /// How a caller should treat it.
        kind: ErrorKind,
    },
    /// A status or table line from the kernel did not parse.
    #[error("cannot parse {what} {text:?}")]
    Parse {
        /// What was being parsed ("snapshot status", ...).
        what: &'static str,
        /// The offending text.
        text: String,
    },
    /// A system call outside the device-mapper ioctls failed.
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
    /// use lvsnap::{dm, ErrorKind};
    /// let e = dm::ChunkSize::new(lvsnap::units::Sectors(3)).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Ioctl { kind, .. } | Error::State { kind, .. } => *kind,
            Error::Parse { .. } => ErrorKind::Corrupt,
            Error::Io { source, .. } => crate::error::io_kind(source),
        }
    }

    pub(crate) fn ioctl(op: &'static str, device: impl ToString, source: DmError) -> Self {
        let (kind, reason) = match &source {
            DmError::Core(errors::Error::Ioctl(_, _, _, errno)) => {
                (errno_kind(**errno), errno.desc().to_string())
            }
            DmError::Core(errors::Error::ContextInit(m)) => (
                ErrorKind::NotFound,
                format!("cannot open /dev/mapper/control: {m}"),
            ),
            DmError::Core(errors::Error::InvalidArgument(m)) => {
                (ErrorKind::InvalidArgument, m.clone())
            }
            other => (ErrorKind::Io, other.to_string()),
        };
        Error::Ioctl {
            op,
            device: device.to_string(),
            reason,
            kind,
            source,
        }
    }

    pub(crate) fn state(
        device: impl ToString,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Error::State {
            device: device.to_string(),
            message: message.into(),
            kind,
        }
    }

    pub(crate) fn parse(what: &'static str, text: &str) -> Self {
        Error::Parse {
            what,
            text: text.chars().take(200).collect(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The errno of a failed ioctl, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ioctl {
                source: DmError::Core(errors::Error::Ioctl(_, _, _, errno)),
                ..
            } => Some(**errno as i32),
            _ => None,
        }
    }
}

fn errno_kind(errno: nix::errno::Errno) -> ErrorKind {
    use nix::errno::Errno;
    match errno {
        Errno::ENOENT | Errno::ENXIO | Errno::ENODEV => ErrorKind::NotFound,
        Errno::EBUSY | Errno::EEXIST | Errno::EAGAIN => ErrorKind::Busy,
        Errno::EINVAL | Errno::ENAMETOOLONG | Errno::ERANGE => ErrorKind::InvalidArgument,
        Errno::ENOSPC => ErrorKind::NoSpace,
        Errno::ENOTSUP | Errno::ENOTTY | Errno::ENOSYS => ErrorKind::Unsupported,
        _ => ErrorKind::Io,
    }
}

/// This layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn errno_maps_to_kind() {
        let e = Error::ioctl(
            "remove",
            "vg-lv",
            DmError::Core(errors::Error::Ioctl(0, None, None, Box::new(Errno::EBUSY))),
        );
        assert_eq!(e.kind(), ErrorKind::Busy);
        assert_eq!(e.errno(), Some(libc::EBUSY));
        assert_eq!(
            e.to_string(),
            "device-mapper remove of vg-lv failed: Device or resource busy"
        );
        for (n, k) in [
            (Errno::ENXIO, ErrorKind::NotFound),
            (Errno::ENOENT, ErrorKind::NotFound),
            (Errno::EINVAL, ErrorKind::InvalidArgument),
            (Errno::ENOSPC, ErrorKind::NoSpace),
            (Errno::EIO, ErrorKind::Io),
        ] {
            assert_eq!(errno_kind(n), k);
        }
    }
}
