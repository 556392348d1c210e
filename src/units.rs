//! Size units.
//!
//! [`Bytes`] and [`Sectors`] (512 bytes) come from the `devicemapper` crate so
//! values pass to it unchanged; [`Extents`] counts a volume group's extents,
//! whose size only the volume group knows.

pub use devicemapper::{Bytes, SECTOR_SIZE, Sectors};

/// Byte counts of [`Sectors`] as the integer types I/O takes: checked, so a
/// size read from disk never wraps.
///
/// ```
/// use lvsnap::units::{SectorBytes, Sectors};
/// assert_eq!(Sectors(8).bytes_u64(), Some(4096));
/// assert_eq!(Sectors(u64::MAX).bytes_u64(), None);
/// ```
pub trait SectorBytes {
    /// The size in bytes as `u64`, or `None` past its range.
    fn bytes_u64(self) -> Option<u64>;
    /// The size in bytes as `usize` (a buffer length), or `None` past its range.
    fn bytes_usize(self) -> Option<usize>;
}

impl SectorBytes for Sectors {
    fn bytes_u64(self) -> Option<u64> {
        u64::try_from(*self.bytes()).ok()
    }

    fn bytes_usize(self) -> Option<usize> {
        usize::try_from(*self.bytes()).ok()
    }
}

/// The size of one extent of a volume group, held as LVM2 holds it
/// (`uint32_t extent_size` of `struct volume_group`, in sectors).
///
/// ```
/// use lvsnap::units::{ExtentSize, Extents, Sectors};
/// assert_eq!(ExtentSize(8192).sectors(), Sectors(8192));
/// assert_eq!(Extents(2).sectors(ExtentSize(u32::MAX)), Some(Sectors(2 * u64::from(u32::MAX))));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtentSize(pub u32);

impl ExtentSize {
    /// The size in sectors.
    pub fn sectors(self) -> Sectors {
        Sectors(u64::from(self.0))
    }

    /// The size in bytes.
    pub fn bytes(self) -> Bytes {
        self.sectors().bytes()
    }
}

impl From<ExtentSize> for Sectors {
    fn from(e: ExtentSize) -> Sectors {
        e.sectors()
    }
}

/// A number of physical or logical extents of one volume group, held as
/// LVM2 holds it (`uint32_t` `pe_count`, `le`, `len`, `pe` of lib/metadata).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extents(pub u32);

impl Extents {
    /// The size of this many extents of `extent_size` sectors, or `None` on overflow.
    ///
    /// ```
    /// use lvsnap::units::{Extents, Sectors};
    /// assert_eq!(Extents(3).sectors(Sectors(8192)), Some(Sectors(24576)));
    /// assert_eq!(Extents(u32::MAX).sectors(Sectors(u64::MAX / 2)), None);
    /// ```
    pub fn sectors(self, extent_size: impl Into<Sectors>) -> Option<Sectors> {
        u64::from(self.0)
            .checked_mul(*extent_size.into())
            .map(Sectors)
    }

    /// The fewest extents of `extent_size` sectors that hold `size`
    /// (rounding up, as LVM does), or `None` if `extent_size` is zero or
    /// the count is past LVM's `uint32_t`.
    ///
    /// ```
    /// use lvsnap::units::{Extents, Sectors};
    /// assert_eq!(Extents::covering(Sectors(8193), Sectors(8192)), Some(Extents(2)));
    /// assert_eq!(Extents::covering(Sectors(0), Sectors(8192)), Some(Extents(0)));
    /// assert_eq!(Extents::covering(Sectors(1 << 40), Sectors(8)), None);
    /// ```
    pub fn covering(size: Sectors, extent_size: impl Into<Sectors>) -> Option<Extents> {
        let extent_size = extent_size.into();
        if *extent_size == 0 {
            return None;
        }
        Extents::from_u64((*size).div_ceil(*extent_size))
    }

    /// `n` extents, or `None` past LVM's `uint32_t`.
    pub fn from_u64(n: u64) -> Option<Extents> {
        u32::try_from(n).ok().map(Extents)
    }

    /// The count as `u64`, for sums that may pass `u32`.
    pub fn as_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// `self + other`, or `None` past LVM's `uint32_t`.
    pub fn checked_add(self, other: Extents) -> Option<Extents> {
        self.0.checked_add(other.0).map(Extents)
    }
}

impl std::fmt::Display for Extents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} extents", self.0)
    }
}
