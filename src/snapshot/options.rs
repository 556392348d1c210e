//! Options of snapshot creation.

use super::SnapSize;
use crate::units::Bytes;

/// How to create a snapshot. The default is what HwameiStor asks for: a
/// read-only COW snapshot as large as its origin, with 4 KiB chunks.
///
/// ```
/// use lvsnap::snapshot::{SnapSize, SnapshotOptions};
/// use lvsnap::units::Bytes;
/// let o = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(1 << 30))).writable(true);
/// assert!(o.is_writable());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotOptions {
    pub(crate) snapsize: SnapSize,
    pub(crate) chunk_size: Option<Bytes>,
    pub(crate) writable: bool,
}

impl SnapshotOptions {
    /// The COW store's size (ignored for thin snapshots, which take no size).
    pub fn snapsize(mut self, size: SnapSize) -> Self {
        self.snapsize = size;
        self
    }

    /// The COW chunk size: a power of two from 4 KiB to 512 KiB (default 4 KiB).
    pub fn chunk_size(mut self, size: Bytes) -> Self {
        self.chunk_size = Some(size);
        self
    }

    /// Make the snapshot writable (default: read-only, as HwameiStor does).
    pub fn writable(mut self, writable: bool) -> Self {
        self.writable = writable;
        self
    }

    /// Whether the snapshot will be writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The requested COW size.
    pub fn requested_snapsize(&self) -> SnapSize {
        self.snapsize
    }
}
