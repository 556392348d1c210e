//! Sizes as users write them (`1G`, `512M`, `1073741824`, `50%`) and the COW
//! sizing rules `lvcreate -s` applies to them.

use crate::error::{Error, Result};
use crate::units::{Bytes, Extents, Sectors};

/// Parses a size: plain bytes, or a number (decimals allowed) with one of the
/// suffixes `B` (bytes), `S` (512-byte sectors), `K`, `M`, `G`, `T`, `P`, `E`
/// (powers of 1024), in either case. Fractions round up to a whole byte.
///
/// ```
/// use lvsnap::snapshot::parse_size;
/// use lvsnap::units::Bytes;
/// assert_eq!(parse_size("1G").unwrap(), Bytes(1 << 30));
/// assert_eq!(parse_size("512m").unwrap(), Bytes(512 << 20));
/// assert_eq!(parse_size("1073741824").unwrap(), Bytes(1 << 30));
/// assert_eq!(parse_size("1.5K").unwrap(), Bytes(1536));
/// assert!(parse_size("12Q").is_err());
/// assert!(parse_size("-1").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<Bytes> {
    let bad = |why: &str| Error::InvalidArgument(format!("size '{s}': {why}"));
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad(
            "expected a number, optionally with a unit K, M, G or T",
        ));
    }
    let shift = match unit {
        "" | "b" | "B" => 0,
        "s" | "S" => 9,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return Err(bad("unknown unit (use K, M, G or T, powers of 1024)")),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if !(f.contains('.') || (i.is_empty() && f.is_empty())) => (i, f),
        Some(_) => return Err(bad("malformed number")),
        None => (num, ""),
    };
    let too_big = || bad("too large");
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_big())?
    };
    let mut bytes = int.checked_mul(1u128 << shift).ok_or_else(too_big)?;
    if !frac.is_empty() {
        // Exact: frac digits / 10^len, scaled by the unit, rounded up.
        let digits = frac.len().min(30) as u32;
        let f: u128 = frac[..digits as usize]
            .parse()
            .map_err(|_| bad("malformed number"))?;
        let den = 10u128.pow(digits);
        let scaled = f.checked_mul(1u128 << shift).ok_or_else(too_big)?;
        bytes = bytes
            .checked_add(scaled.div_ceil(den))
            .ok_or_else(too_big)?;
    }
    if bytes > u128::from(u64::MAX) {
        return Err(too_big());
    }
    Ok(Bytes(bytes))
}

/// How large a COW snapshot's exception store should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapSize {
    /// The origin's size (HwameiStor's default when `snapsize` is absent).
    #[default]
    OriginSize,
    /// This many bytes, rounded up to whole extents.
    Bytes(Bytes),
    /// A percentage of the origin, as `lvcreate -s -l N%ORIGIN` counts it:
    /// the exception store's own metadata comes on top.
    PercentOfOrigin(u32),
}

impl std::str::FromStr for SnapSize {
    type Err = Error;

    /// `50%` is a percentage of the origin; anything else a size for
    /// [`parse_size`].
    ///
    /// ```
    /// use lvsnap::snapshot::SnapSize;
    /// use lvsnap::units::Bytes;
    /// assert_eq!("50%".parse::<SnapSize>().unwrap(), SnapSize::PercentOfOrigin(50));
    /// assert_eq!("1G".parse::<SnapSize>().unwrap(), SnapSize::Bytes(Bytes(1 << 30)));
    /// assert!("0%".parse::<SnapSize>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<SnapSize> {
        if let Some(p) = s.trim().strip_suffix('%') {
            return match p.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(SnapSize::PercentOfOrigin(n)),
                _ => Err(Error::InvalidArgument(format!(
                    "snapsize '{s}': a percentage must be a whole number from 1 to 10000"
                ))),
            };
        }
        match parse_size(s)? {
            Bytes(0) => Err(Error::InvalidArgument(format!(
                "snapsize '{s}': must be larger than zero"
            ))),
            b => Ok(SnapSize::Bytes(b)),
        }
    }
}

/// Checks a COW chunk size as `lvcreate` does: a power of two from 4 KiB to
/// 512 KiB. Returns it in sectors.
///
/// ```
/// use lvsnap::snapshot::check_chunk_size;
/// use lvsnap::units::{Bytes, Sectors};
/// assert_eq!(check_chunk_size(Bytes(4096)).unwrap(), Sectors(8));
/// assert!(check_chunk_size(Bytes(3 * 4096)).is_err());
/// assert!(check_chunk_size(Bytes(1 << 20)).is_err());
/// ```
pub fn check_chunk_size(size: Bytes) -> Result<Sectors> {
    let b = *size;
    let refused = || {
        Error::InvalidArgument(format!(
            "chunk size {b} bytes: must be a power of 2 in the range 4K to 512K"
        ))
    };
    if !b.is_multiple_of(512) {
        return Err(refused());
    }
    let sectors = u64::try_from(b / 512).map_err(|_| refused())?;
    crate::dm::ChunkSize::new(Sectors(sectors))
        .map(|c| c.sectors())
        .map_err(|_| refused())
}

/// LVM2's largest extent count (`MAX_EXTENT_COUNT`, `UINT32_MAX`): a
/// size needing more extents is refused ("Volume too large").
pub const MAX_EXTENT_COUNT: u64 = u32::MAX as u64;

/// The largest exception store that an origin of `origin` sectors can ever
/// fill with `chunk`-sector chunks, in extents of `extent_size` sectors, as
/// LVM's `cow_max_extents` computes it. Kernels whose snapshot target lacks the
/// "fixed leak" feature (target < 1.12) need 1/64 more, `leaky_target`.
/// Never more than [`MAX_EXTENT_COUNT`]; sums that would overflow saturate
/// (the result is a cap).
pub fn cow_max_extents(
    origin: Sectors,
    chunk: Sectors,
    extent_size: Sectors,
    leaky_target: bool,
) -> Extents {
    let (origin, chunk, ext) = (*origin, (*chunk).max(1), (*extent_size).max(1));
    let origin_chunks = origin.div_ceil(chunk);
    // One metadata chunk maps chunk*512/16 data chunks; a full last area
    // needs one more as terminator.
    let per_area = chunk.saturating_mul(32);
    let metadata_chunks = origin_chunks.saturating_add(per_area) / per_area;
    let n = origin_chunks
        .saturating_add(metadata_chunks)
        .saturating_add(1);
    let extra = if leaky_target { n.div_ceil(64) } else { 0 };
    let size = n.saturating_add(extra).saturating_mul(chunk);
    Extents(u32::try_from(size.div_ceil(ext)).unwrap_or(u32::MAX))
}

/// The COW size `lvcreate -s` would give, in extents: `want` converted and
/// rounded up to whole extents, reduced to [`cow_max_extents`] when larger,
/// and refused when under three chunks, or, as LVM refuses it, when it needs
/// more than [`MAX_EXTENT_COUNT`] extents.
///
/// ```
/// use lvsnap::snapshot::{SnapSize, plan_cow_extents};
/// use lvsnap::units::{Bytes, Extents, Sectors};
/// // lvcreate -s -L 1E with 4 MiB extents: "Volume too large".
/// let e = plan_cow_extents(SnapSize::Bytes(Bytes(1 << 60)), Extents(2), Sectors(8192), Sectors(8), false);
/// assert!(e.unwrap_err().to_string().contains("too large"));
/// // An extent size no VG can have is refused, not overflowed.
/// assert!(plan_cow_extents(SnapSize::OriginSize, Extents(4), Sectors(1 << 40), Sectors(8), false).is_err());
/// ```
pub fn plan_cow_extents(
    want: SnapSize,
    origin_extents: Extents,
    extent_size: Sectors,
    chunk: Sectors,
    leaky_target: bool,
) -> Result<Extents> {
    let ext = *extent_size;
    if ext == 0 || ext > u64::from(u32::MAX) {
        return Err(Error::InvalidArgument(format!(
            "extent size of {ext} sectors is outside LVM's range"
        )));
    }
    let origin = origin_extents
        .sectors(extent_size)
        .ok_or_else(|| Error::InvalidArgument("origin size overflows".into()))?;
    let max = cow_max_extents(origin, chunk, extent_size, leaky_target);
    let wanted = match want {
        SnapSize::OriginSize => origin_extents,
        SnapSize::Bytes(b) => {
            let ext_bytes = *extent_size.bytes();
            let n = (*b).div_ceil(ext_bytes);
            if n > u128::from(MAX_EXTENT_COUNT) {
                return Err(Error::InvalidArgument(format!(
                    "snapsize of {} bytes is too large for extent size {ext_bytes} bytes:                      the limit is less than {} bytes",
                    *b,
                    u128::from(MAX_EXTENT_COUNT) * ext_bytes
                )));
            }
            Extents(u32::try_from(n).unwrap_or(u32::MAX))
        }
        SnapSize::PercentOfOrigin(p) => {
            // percent_of_extents(.., roundup = 1)
            let pct = u128::from(p) * u128::from(origin_extents.0);
            let pct = u64::try_from(pct.div_ceil(100)).unwrap_or(u64::MAX);
            let v = u64::from(max.0 - origin_extents.0.min(max.0)).saturating_add(pct);
            Extents(u32::try_from(v).unwrap_or(u32::MAX))
        }
    };
    let cow = wanted.min(max);
    let three_chunks = Sectors((*chunk).saturating_mul(3));
    if cow.sectors(extent_size).is_none_or(|s| s < three_chunks) {
        return Err(Error::InvalidArgument(format!(
            "snapshot volume cannot be smaller than 3 chunks ({} bytes)",
            *three_chunks.bytes()
        )));
    }
    Ok(cow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_refuse() {
        assert_eq!(parse_size("0").unwrap(), Bytes(0));
        assert_eq!(parse_size("8s").unwrap(), Bytes(4096));
        assert_eq!(parse_size("1T").unwrap(), Bytes(1 << 40));
        assert_eq!(parse_size(".5M").unwrap(), Bytes(512 << 10));
        assert_eq!(parse_size("0.0000001K").unwrap(), Bytes(1));
        for bad in [
            "",
            "G",
            "1.2.3G",
            ".",
            "1 G x",
            "1GG",
            "16E",
            "99999999999999999999999",
            "-5M",
            "1e3",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn snapsize_forms() {
        assert_eq!(
            "100%".parse::<SnapSize>().unwrap(),
            SnapSize::PercentOfOrigin(100)
        );
        for bad in ["%", "-1%", "1.5%", "0", "abc", "10001%"] {
            assert!(bad.parse::<SnapSize>().is_err(), "{bad:?} accepted");
        }
    }

    // Figures checked against lvcreate 2.03.16 in the VM (4 MiB extents,
    // 4 KiB chunks): a 64 MiB origin's snapshot is capped at 17 extents.
    #[test]
    fn cow_cap_matches_lvm() {
        let ext = Sectors(8192);
        assert_eq!(
            cow_max_extents(Sectors(131072), Sectors(8), ext, false),
            Extents(17)
        );
        let cow = plan_cow_extents(SnapSize::OriginSize, Extents(16), ext, Sectors(8), false);
        assert_eq!(cow.unwrap(), Extents(16));
        let cow = plan_cow_extents(
            SnapSize::Bytes(Bytes(1 << 30)),
            Extents(16),
            ext,
            Sectors(8),
            false,
        );
        assert_eq!(cow.unwrap(), Extents(17));
        let cow = plan_cow_extents(
            SnapSize::Bytes(Bytes(1)),
            Extents(16),
            ext,
            Sectors(8),
            false,
        );
        assert_eq!(cow.unwrap(), Extents(1));
        let cow = plan_cow_extents(
            SnapSize::PercentOfOrigin(50),
            Extents(16),
            ext,
            Sectors(8),
            false,
        );
        assert_eq!(cow.unwrap(), Extents(9));
    }

    #[test]
    fn too_small_cow_refused() {
        // 1 extent of 8 KiB with 4 KiB chunks holds 2 chunks: refused.
        let r = plan_cow_extents(
            SnapSize::Bytes(Bytes(1)),
            Extents(100),
            Sectors(16),
            Sectors(8),
            false,
        );
        assert!(r.is_err());
        let r = plan_cow_extents(
            SnapSize::Bytes(Bytes(1)),
            Extents(1),
            Sectors(0),
            Sectors(8),
            false,
        );
        assert!(r.is_err());
    }
}
