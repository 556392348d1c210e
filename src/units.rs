//! Size units.
//!
//! [`Bytes`] and [`Sectors`] (512 bytes) come from the `devicemapper` crate so
//! values pass to it unchanged; [`Extents`] counts a volume group's extents,
//! whose size only the volume group knows.

pub use devicemapper::{Bytes, SECTOR_SIZE, Sectors};

/// A number of physical or logical extents of one volume group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extents(pub u64);

impl Extents {
    /// The size of this many extents of `extent_size` sectors, or `None` on overflow.
    ///
    /// ```
    /// use lvsnap::units::{Extents, Sectors};
    /// assert_eq!(Extents(3).sectors(Sectors(8192)), Some(Sectors(24576)));
    /// assert_eq!(Extents(u64::MAX).sectors(Sectors(2)), None);
    /// ```
    pub fn sectors(self, extent_size: Sectors) -> Option<Sectors> {
        self.0.checked_mul(*extent_size).map(Sectors)
    }

    /// The fewest extents of `extent_size` sectors that hold `size`
    /// (rounding up, as LVM does), or `None` if `extent_size` is zero.
    ///
    /// ```
    /// use lvsnap::units::{Extents, Sectors};
    /// assert_eq!(Extents::covering(Sectors(8193), Sectors(8192)), Some(Extents(2)));
    /// assert_eq!(Extents::covering(Sectors(0), Sectors(8192)), Some(Extents(0)));
    /// ```
    pub fn covering(size: Sectors, extent_size: Sectors) -> Option<Extents> {
        if *extent_size == 0 {
            return None;
        }
        Some(Extents((*size).div_ceil(*extent_size)))
    }
}

impl std::fmt::Display for Extents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} extents", self.0)
    }
}
