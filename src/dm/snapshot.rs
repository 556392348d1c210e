//! The `snapshot-origin`, `snapshot` and `snapshot-merge` targets and the
//! `snapshot` status line, with LVM's data_percent.

use std::fmt;
use std::str::FromStr;

use devicemapper::{Device, Sectors, TargetParams, TargetTypeBuf};

use super::error::{Error, Result};
use super::percent::Percent;
use super::target::{parse_device, target_type};

/// Target type of the origin of COW snapshots.
pub const SNAPSHOT_ORIGIN: &str = "snapshot-origin";
/// Target type of a COW snapshot.
pub const SNAPSHOT: &str = "snapshot";
/// Target type of an origin merging a COW snapshot back.
pub const SNAPSHOT_MERGE: &str = "snapshot-merge";

/// A snapshot chunk size: a power of two from 4 KiB (8 sectors) to 512 KiB
/// (1024 sectors), as LVM allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkSize(Sectors);

impl ChunkSize {
    /// The smallest chunk size, 8 sectors (4 KiB); LVM's default.
    pub const MIN: ChunkSize = ChunkSize(Sectors(8));
    /// The largest chunk size, 1024 sectors (512 KiB).
    pub const MAX: ChunkSize = ChunkSize(Sectors(1024));

    /// A chunk size of `sectors`, if it is a power of two in 8..=1024.
    ///
    /// ```
    /// use lvsnap::{dm::ChunkSize, units::Sectors};
    /// assert!(ChunkSize::new(Sectors(16)).is_ok());
    /// assert!(ChunkSize::new(Sectors(24)).is_err());
    /// assert!(ChunkSize::new(Sectors(2048)).is_err());
    /// ```
    pub fn new(sectors: Sectors) -> Result<ChunkSize> {
        let s = *sectors;
        if !s.is_power_of_two() || s < *Self::MIN.0 || s > *Self::MAX.0 {
            return Err(Error::InvalidArgument(format!(
                "chunk size {s} sectors ({} bytes) is not a power of two from 4 KiB to 512 KiB",
                s.saturating_mul(512)
            )));
        }
        Ok(ChunkSize(sectors))
    }

    /// The size in sectors.
    pub fn sectors(self) -> Sectors {
        self.0
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::MIN
    }
}

/// Parameters of `snapshot-origin <origin>`: the device holding the origin's
/// data (LVM's `-real` layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOriginTargetParams {
    /// The device with the origin's data.
    pub real: Device,
}

impl fmt::Display for SnapshotOriginTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SNAPSHOT_ORIGIN} {}", self.param_str())
    }
}

impl FromStr for SnapshotOriginTargetParams {
    type Err = Error;
    /// Parses `snapshot-origin <maj:min>` as the kernel's table shows it.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::parse("snapshot-origin table", s);
        let mut it = s.split_whitespace();
        if it.next() != Some(SNAPSHOT_ORIGIN) {
            return Err(bad());
        }
        let real = it.next().and_then(parse_device).ok_or_else(bad)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(SnapshotOriginTargetParams { real })
    }
}

impl TargetParams for SnapshotOriginTargetParams {
    fn param_str(&self) -> String {
        self.real.to_string()
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(SNAPSHOT_ORIGIN)
    }
}

/// Parameters shared by `snapshot` and `snapshot-merge`:
/// `<origin> <cow> P <chunk>`. LVM always uses a persistent store (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTargetParams {
    /// The origin's data device (`-real`).
    pub real: Device,
    /// The exception store (`-cow`).
    pub cow: Device,
    /// The chunk size.
    pub chunk: ChunkSize,
    /// `snapshot-merge` (merging back into the origin) rather than `snapshot`.
    pub merge: bool,
}

impl SnapshotTargetParams {
    fn ty(&self) -> &'static str {
        if self.merge { SNAPSHOT_MERGE } else { SNAPSHOT }
    }
}

impl fmt::Display for SnapshotTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.ty(), self.param_str())
    }
}

impl FromStr for SnapshotTargetParams {
    type Err = Error;
    /// Parses `snapshot|snapshot-merge <maj:min> <maj:min> P <chunk>`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::parse("snapshot table", s);
        let f: Vec<&str> = s.split_whitespace().collect();
        let [ty, real, cow, store, chunk] = f.as_slice() else {
            return Err(bad());
        };
        let merge = match *ty {
            SNAPSHOT => false,
            SNAPSHOT_MERGE => true,
            _ => return Err(bad()),
        };
        if !store.eq_ignore_ascii_case("P") {
            return Err(bad());
        }
        let chunk = chunk.parse::<u64>().map_err(|_| bad())?;
        Ok(SnapshotTargetParams {
            real: parse_device(real).ok_or_else(bad)?,
            cow: parse_device(cow).ok_or_else(bad)?,
            chunk: ChunkSize::new(Sectors(chunk)).map_err(|_| bad())?,
            merge,
        })
    }
}

impl TargetParams for SnapshotTargetParams {
    fn param_str(&self) -> String {
        format!("{} {} P {}", self.real, self.cow, *self.chunk.sectors())
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(self.ty())
    }
}

/// Use of a working snapshot's exception store, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotUsage {
    /// Sectors of the COW in use (data and metadata).
    pub used: Sectors,
    /// Size of the COW.
    pub total: Sectors,
    /// Sectors of metadata (older kernels leave it out).
    pub metadata: Option<Sectors>,
}

/// The status of a `snapshot` or `snapshot-merge` target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotTargetStatus {
    /// Working: `<used>/<total> [<metadata>]`.
    Active(SnapshotUsage),
    /// The COW filled up (or failed): the snapshot is dropped for good.
    Invalid,
    /// A merge hit an error and stopped.
    MergeFailed,
    /// A transient (`PO`) store overflowed; LVM never uses one.
    Overflow,
}

impl SnapshotTargetStatus {
    /// LVM's `data_percent` of a snapshot (`lvs -o data_percent`): 100 when
    /// invalid or overflowed, unknown (`None`) when a merge failed, 0 when
    /// only metadata is used, else `used/total` as `dm_make_percent` does.
    ///
    /// ```
    /// use lvsnap::dm::SnapshotTargetStatus;
    /// let st: SnapshotTargetStatus = "16/8192 16".parse().unwrap();
    /// assert_eq!(st.data_percent().unwrap().to_string(), "0.00");
    /// let st: SnapshotTargetStatus = "4112/8192 16".parse().unwrap();
    /// assert_eq!(st.data_percent().unwrap().to_string(), "50.20");
    /// let st: SnapshotTargetStatus = "Invalid".parse().unwrap();
    /// assert_eq!(st.data_percent().unwrap().to_string(), "100.00");
    /// ```
    pub fn data_percent(&self) -> Option<Percent> {
        match self {
            SnapshotTargetStatus::MergeFailed => None,
            SnapshotTargetStatus::Invalid => Some(Percent::HUNDRED),
            // LVM parses no numbers here, so it computes 0/0: 100%.
            SnapshotTargetStatus::Overflow => Some(Percent::HUNDRED),
            SnapshotTargetStatus::Active(u) => {
                if u.metadata == Some(u.used) {
                    Some(Percent::ZERO)
                } else {
                    Some(Percent::from_ratio(*u.used, *u.total))
                }
            }
        }
    }

    /// Whether the snapshot was invalidated.
    pub fn is_invalid(&self) -> bool {
        matches!(self, SnapshotTargetStatus::Invalid)
    }

    /// For a `snapshot-merge` target: whether nothing is left to merge
    /// (only metadata in use), as LVM decides.
    pub fn merge_done(&self) -> bool {
        matches!(self, SnapshotTargetStatus::Active(u) if u.metadata == Some(u.used))
    }
}

impl FromStr for SnapshotTargetStatus {
    type Err = Error;
    /// Parses a `snapshot`/`snapshot-merge` status as the kernel prints it.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::parse("snapshot status", s);
        match s.trim() {
            "Invalid" => return Ok(SnapshotTargetStatus::Invalid),
            "Merge failed" => return Ok(SnapshotTargetStatus::MergeFailed),
            "Overflow" => return Ok(SnapshotTargetStatus::Overflow),
            _ => {}
        }
        let mut it = s.split_whitespace();
        let (used, total) = it.next().and_then(|f| f.split_once('/')).ok_or_else(bad)?;
        let num = |v: &str| v.parse::<u64>().map(Sectors).map_err(|_| bad());
        let used = num(used)?;
        let total = num(total)?;
        let metadata = it.next().map(num).transpose()?;
        if it.next().is_some() || *used > *total || metadata.is_some_and(|m| *m > *used) {
            return Err(bad());
        }
        Ok(SnapshotTargetStatus::Active(SnapshotUsage {
            used,
            total,
            metadata,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tables_round_trip() {
        let p = SnapshotTargetParams {
            real: Device {
                major: 253,
                minor: 1,
            },
            cow: Device {
                major: 253,
                minor: 2,
            },
            chunk: ChunkSize::new(Sectors(16)).unwrap(),
            merge: false,
        };
        assert_eq!(p.param_str(), "253:1 253:2 P 16");
        assert_eq!(p.to_string().parse::<SnapshotTargetParams>().unwrap(), p);
        let m = SnapshotTargetParams { merge: true, ..p };
        assert_eq!(m.to_string(), "snapshot-merge 253:1 253:2 P 16");
        assert_eq!(m.to_string().parse::<SnapshotTargetParams>().unwrap(), m);
        let o = SnapshotOriginTargetParams { real: p.real };
        assert_eq!(
            o.to_string().parse::<SnapshotOriginTargetParams>().unwrap(),
            o
        );
        for bad in [
            "",
            "snapshot",
            "snapshot 253:1 253:2 P",
            "snapshot 253:1 253:2 N 16",
            "snapshot 253:1 253:2 P 12",
            "snapshot 253 253:2 P 16",
            "snapshot 253:1 253:x P 16",
            "thin 253:1 253:2 P 16",
            "snapshot 253:1 253:2 P 16 extra",
            "snapshot-origin",
            "snapshot-origin 1:2 3:4",
        ] {
            assert!(bad.parse::<SnapshotTargetParams>().is_err(), "{bad}");
            assert!(bad.parse::<SnapshotOriginTargetParams>().is_err(), "{bad}");
        }
    }

    #[test]
    fn status_parses() {
        assert_eq!(
            "32/2048 16".parse::<SnapshotTargetStatus>().unwrap(),
            SnapshotTargetStatus::Active(SnapshotUsage {
                used: Sectors(32),
                total: Sectors(2048),
                metadata: Some(Sectors(16))
            })
        );
        let old: SnapshotTargetStatus = "32/2048".parse().unwrap();
        assert!(matches!(
            old,
            SnapshotTargetStatus::Active(SnapshotUsage { metadata: None, .. })
        ));
        assert!(
            "Invalid"
                .parse::<SnapshotTargetStatus>()
                .unwrap()
                .is_invalid()
        );
        assert_eq!(
            "Merge failed".parse::<SnapshotTargetStatus>().unwrap(),
            SnapshotTargetStatus::MergeFailed
        );
        assert_eq!(
            "Overflow".parse::<SnapshotTargetStatus>().unwrap(),
            SnapshotTargetStatus::Overflow
        );
        for bad in [
            "",
            " ",
            "/",
            "1/",
            "/2",
            "a/b c",
            "1/2 x",
            "3/2 1",
            "2/4 3",
            "1/2 1 1",
            "Invalid!",
            "invalid",
            "Merge",
            "-1/2 0",
            "1//2",
            "99999999999999999999/1",
        ] {
            let e = bad.parse::<SnapshotTargetStatus>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    #[test]
    fn data_percent_follows_lvm() {
        let p = |s: &str| {
            s.parse::<SnapshotTargetStatus>()
                .unwrap()
                .data_percent()
                .unwrap()
                .to_string()
        };
        assert_eq!(p("16/8192 16"), "0.00");
        assert_eq!(p("24/8192 16"), "0.29");
        // Tiny but non-zero use never shows as 0, nearly full never as 100.
        assert_eq!(p("17/100000000 16"), "0.01");
        assert_eq!(p("8191/8192 16"), "99.99");
        assert_eq!(p("8192/8192 16"), "100.00");
        assert_eq!(p("0/8192"), "0.00");
        assert_eq!(p("0/0"), "100.00");
        assert_eq!(p("Invalid"), "100.00");
        assert!(
            "Merge failed"
                .parse::<SnapshotTargetStatus>()
                .unwrap()
                .data_percent()
                .is_none()
        );
        assert!(
            "16/8192 16"
                .parse::<SnapshotTargetStatus>()
                .unwrap()
                .merge_done()
        );
        assert!(
            !"24/8192 16"
                .parse::<SnapshotTargetStatus>()
                .unwrap()
                .merge_done()
        );
    }

    proptest! {
        #[test]
        fn status_parser_never_panics(s in ".*") {
            let _ = s.parse::<SnapshotTargetStatus>().map(|st| st.data_percent());
            let _ = s.parse::<SnapshotTargetParams>();
            let _ = s.parse::<SnapshotOriginTargetParams>();
        }

        #[test]
        fn status_parser_never_panics_on_near_misses(
            a in any::<u64>(), b in any::<u64>(), c in proptest::option::of(any::<u64>()),
            sep in "[ /]{0,2}", tail in "[ a-z0-9/]{0,4}"
        ) {
            let s = match c {
                Some(c) => format!("{a}/{b}{sep}{c}{tail}"),
                None => format!("{a}{sep}{b}{tail}"),
            };
            if let Ok(st) = s.parse::<SnapshotTargetStatus>() {
                let pc = st.data_percent();
                prop_assert!(pc.is_some_and(|p| p.millionths() <= Percent::HUNDRED.millionths()));
            }
        }
    }
}
