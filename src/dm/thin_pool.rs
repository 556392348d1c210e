//! The `thin-pool` target: its table
//! (`thin-pool <metadata> <data> <block size> <low water mark> [<n> <feature>*]`),
//! its status and the messages it takes.

use std::fmt;
use std::str::FromStr;

use bitflags::bitflags;
use devicemapper::{
    DataBlocks, Device, DmName, TargetParams, TargetTypeBuf, ThinDevId, ThinPoolStatus,
};

use super::device::DmControl;
use super::error::{Error, Result};
use super::target::{Fields, target_type};
use crate::ErrorKind;
use crate::units::Sectors;

/// Target type of a thin pool.
pub const THIN_POOL: &str = "thin-pool";

/// The size of a pool's data blocks: a multiple of 64 KiB (128 sectors)
/// from 64 KiB to 1 GiB, as the kernel requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThinPoolBlockSize(Sectors);

impl ThinPoolBlockSize {
    /// The smallest block size, 128 sectors (64 KiB).
    pub const MIN: ThinPoolBlockSize = ThinPoolBlockSize(Sectors(128));
    /// The largest block size, 2097152 sectors (1 GiB).
    pub const MAX: ThinPoolBlockSize = ThinPoolBlockSize(Sectors(2_097_152));

    /// A block size of `sectors`, if the kernel takes it.
    ///
    /// ```
    /// use lvsnap::{dm::ThinPoolBlockSize, units::Sectors};
    /// assert!(ThinPoolBlockSize::new(Sectors(384)).is_ok());
    /// assert!(ThinPoolBlockSize::new(Sectors(64)).is_err());
    /// assert!(ThinPoolBlockSize::new(Sectors(200)).is_err());
    /// ```
    pub fn new(sectors: Sectors) -> Result<ThinPoolBlockSize> {
        let s = *sectors;
        if s < *Self::MIN.0 || s > *Self::MAX.0 || !s.is_multiple_of(*Self::MIN.0) {
            return Err(Error::InvalidArgument(format!(
                "thin pool block size {s} sectors is not a multiple of 64 KiB from 64 KiB to 1 GiB"
            )));
        }
        Ok(ThinPoolBlockSize(sectors))
    }

    /// The size in sectors.
    pub fn sectors(self) -> Sectors {
        self.0
    }
}

bitflags! {
    /// A pool's feature arguments, in the order the kernel writes them back.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ThinPoolFeatures: u8 {
        /// `skip_block_zeroing`: new blocks are not zeroed.
        const SKIP_BLOCK_ZEROING = 1 << 0;
        /// `ignore_discard`: discards are not supported.
        const IGNORE_DISCARD = 1 << 1;
        /// `no_discard_passdown`: discards unmap, but do not reach the data device.
        const NO_DISCARD_PASSDOWN = 1 << 2;
        /// `read_only`: the metadata is not changed.
        const READ_ONLY = 1 << 3;
        /// `error_if_no_space`: I/O fails, instead of queueing, when full.
        const ERROR_IF_NO_SPACE = 1 << 4;
    }
}

impl ThinPoolFeatures {
    const NAMES: [(ThinPoolFeatures, &'static str); 5] = [
        (Self::SKIP_BLOCK_ZEROING, "skip_block_zeroing"),
        (Self::IGNORE_DISCARD, "ignore_discard"),
        (Self::NO_DISCARD_PASSDOWN, "no_discard_passdown"),
        (Self::READ_ONLY, "read_only"),
        (Self::ERROR_IF_NO_SPACE, "error_if_no_space"),
    ];

    /// The feature's argument, if `self` is one feature.
    fn word(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, w)| *w)
    }
}

/// Parameters of a `thin-pool` line.
///
/// ```
/// use lvsnap::dm::{ThinPoolFeatures, ThinPoolTargetParams};
/// let p: ThinPoolTargetParams = "thin-pool 254:0 254:1 128 0 1 skip_block_zeroing".parse()?;
/// assert_eq!(p.features, ThinPoolFeatures::SKIP_BLOCK_ZEROING);
/// assert_eq!(p.to_string(), "thin-pool 254:0 254:1 128 0 1 skip_block_zeroing");
/// assert!("thin-pool 254:0 254:1 128 0 2 skip_block_zeroing".parse::<ThinPoolTargetParams>().is_err());
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinPoolTargetParams {
    /// The metadata device.
    pub metadata: Device,
    /// The data device.
    pub data: Device,
    /// The data block size.
    pub block_size: ThinPoolBlockSize,
    /// Free data blocks below which the kernel sends an event.
    pub low_water_mark: DataBlocks,
    /// Feature arguments.
    pub features: ThinPoolFeatures,
}

impl fmt::Display for ThinPoolTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{THIN_POOL} {}", self.param_str())
    }
}

impl FromStr for ThinPoolTargetParams {
    type Err = Error;
    /// Parses a `thin-pool` table line as the kernel shows it (features in
    /// any order, each at most once; unknown ones are refused).
    fn from_str(s: &str) -> Result<Self> {
        let mut f = Fields::of(s, THIN_POOL, "thin-pool table")?;
        let metadata = f.device()?;
        let data = f.device()?;
        let block_size = ThinPoolBlockSize::new(f.sectors()?).map_err(|_| f.bad())?;
        let low_water_mark = DataBlocks(f.number()?);
        let mut features = ThinPoolFeatures::empty();
        // The count is optional: none means no features.
        if f.maybe_count(&mut features)? {
            f.end()?;
        }
        Ok(ThinPoolTargetParams {
            metadata,
            data,
            block_size,
            low_water_mark,
            features,
        })
    }
}

impl Fields<'_> {
    /// Reads `[<n> <feature>*]` into `out`; whether a count was there.
    fn maybe_count(&mut self, out: &mut ThinPoolFeatures) -> Result<bool> {
        let Some(n) = self.maybe() else {
            return Ok(false);
        };
        let n: usize = n.parse().map_err(|_| self.bad())?;
        for _ in 0..n {
            let w = self.next()?;
            let (flag, _) = ThinPoolFeatures::NAMES
                .iter()
                .find(|(_, name)| *name == w)
                .ok_or_else(|| self.bad())?;
            if out.contains(*flag) {
                return Err(self.bad());
            }
            out.insert(*flag);
        }
        Ok(true)
    }
}

impl TargetParams for ThinPoolTargetParams {
    fn param_str(&self) -> String {
        let mut s = format!(
            "{} {} {} {} {}",
            self.metadata,
            self.data,
            *self.block_size.sectors(),
            *self.low_water_mark,
            self.features.iter().count()
        );
        for w in self.features.iter().filter_map(ThinPoolFeatures::word) {
            s.push(' ');
            s.push_str(w);
        }
        s
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(THIN_POOL)
    }
}

/// A message to a thin pool (the kernel's thin-provisioning.rst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinPoolMessage {
    /// `create_thin <id>`: a new, empty thin device.
    CreateThin(ThinDevId),
    /// `create_snap <id> <origin>`: thin device `id`, a snapshot of `origin`.
    CreateSnap {
        /// The new device.
        id: ThinDevId,
        /// The device it is a snapshot of.
        origin: ThinDevId,
    },
    /// `delete <id>`: the thin device is dropped, irreversibly.
    Delete(ThinDevId),
    /// `set_transaction_id <old> <new>`: compare-and-swap of the pool's
    /// transaction id.
    SetTransactionId {
        /// What the id must be now.
        old: u64,
        /// What it becomes.
        new: u64,
    },
    /// `reserve_metadata_snap`: holds a copy of the metadata root for readers.
    ReserveMetadataSnap,
    /// `release_metadata_snap`: lets the held copy go.
    ReleaseMetadataSnap,
}

impl ThinPoolMessage {
    /// The thin device a `create_thin` or `create_snap` makes.
    pub fn created(&self) -> Option<ThinDevId> {
        match self {
            ThinPoolMessage::CreateThin(id) | ThinPoolMessage::CreateSnap { id, .. } => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for ThinPoolMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThinPoolMessage::CreateThin(id) => write!(f, "create_thin {id}"),
            ThinPoolMessage::CreateSnap { id, origin } => write!(f, "create_snap {id} {origin}"),
            ThinPoolMessage::Delete(id) => write!(f, "delete {id}"),
            ThinPoolMessage::SetTransactionId { old, new } => {
                write!(f, "set_transaction_id {old} {new}")
            }
            ThinPoolMessage::ReserveMetadataSnap => f.write_str("reserve_metadata_snap"),
            ThinPoolMessage::ReleaseMetadataSnap => f.write_str("release_metadata_snap"),
        }
    }
}

impl FromStr for ThinPoolMessage {
    type Err = Error;
    /// Parses a message as `dmsetup message` would send it.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::parse("thin-pool message", s);
        let mut it = s.split_whitespace();
        let id = |v: Option<&str>| -> Result<ThinDevId> {
            v.and_then(|v| v.parse().ok()).ok_or_else(bad)
        };
        let num =
            |v: Option<&str>| -> Result<u64> { v.and_then(|v| v.parse().ok()).ok_or_else(bad) };
        let m = match it.next() {
            Some("create_thin") => ThinPoolMessage::CreateThin(id(it.next())?),
            Some("create_snap") => ThinPoolMessage::CreateSnap {
                id: id(it.next())?,
                origin: id(it.next())?,
            },
            Some("delete") => ThinPoolMessage::Delete(id(it.next())?),
            Some("set_transaction_id") => ThinPoolMessage::SetTransactionId {
                old: num(it.next())?,
                new: num(it.next())?,
            },
            Some("reserve_metadata_snap") => ThinPoolMessage::ReserveMetadataSnap,
            Some("release_metadata_snap") => ThinPoolMessage::ReleaseMetadataSnap,
            _ => return Err(bad()),
        };
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(m)
    }
}

/// Sends `msg` to thin pool `pool`.
pub fn thin_pool_message(dm: &DmControl, pool: &DmName, msg: &ThinPoolMessage) -> Result<()> {
    dm.message(pool, &msg.to_string()).map(|_| ())
}

/// The status of a thin pool (transaction id, data and metadata usage).
pub fn thin_pool_status(dm: &DmControl, pool: &DmName) -> Result<ThinPoolStatus> {
    let s = dm.status_of(pool, THIN_POOL, ErrorKind::InvalidArgument)?;
    parse_thin_pool_status(&s)
}

/// Parses a thin-pool status line. devicemapper 0.34 indexes the
/// `used/total` pairs without checking them (a panic on `0 1 2 ...`, found
/// by fuzzing): such a line is refused before it gets there. The fields are
/// split on single spaces, as devicemapper splits them, so that a doubled
/// space cannot shift which field is checked.
pub fn parse_thin_pool_status(s: &str) -> Result<ThinPoolStatus> {
    let f: Vec<&str> = s.split(' ').collect();
    if f.len() >= 8 && !(f[1].contains('/') && f[2].contains('/')) {
        return Err(Error::parse("thin-pool status", s));
    }
    s.parse().map_err(|_| Error::parse("thin-pool status", s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pool_status_with_shifted_fields_is_an_error_not_a_panic() {
        // Found by fuzzing: a doubled space puts a field without '/' where
        // devicemapper indexes a `used/total` pair.
        let s = "0 11 02/410/1600- rwscard_pa_passdown  ueue_if_no_space - 103-";
        assert!(parse_thin_pool_status(s).is_err());
        assert!(parse_thin_pool_status("0 1 2 3 4 5 6 7").is_err());
    }

    #[test]
    fn pool_status_of_the_kernel_parses() {
        let s = "1 11/1024 0/1600 - rw discard_passdown queue_if_no_space - 1024";
        let ThinPoolStatus::Working(w) = parse_thin_pool_status(s).unwrap() else {
            panic!("not Working");
        };
        assert_eq!(w.transaction_id, 1);
    }

    #[test]
    fn tables_round_trip_and_bad_ones_are_refused() {
        let dev = |minor| Device { major: 254, minor };
        let p = ThinPoolTargetParams {
            metadata: dev(0),
            data: dev(1),
            block_size: ThinPoolBlockSize::new(Sectors(128)).unwrap(),
            low_water_mark: DataBlocks(0),
            features: ThinPoolFeatures::empty(),
        };
        // As the kernel writes it back (with its trailing space).
        assert_eq!(p.param_str(), "254:0 254:1 128 0 0");
        assert_eq!(
            "thin-pool 254:0 254:1 128 0 0 "
                .parse::<ThinPoolTargetParams>()
                .unwrap(),
            p
        );
        assert_eq!(
            "thin-pool 254:0 254:1 128 0"
                .parse::<ThinPoolTargetParams>()
                .unwrap(),
            p
        );
        let all = ThinPoolTargetParams {
            features: ThinPoolFeatures::all(),
            low_water_mark: DataBlocks(10),
            ..p
        };
        assert_eq!(
            all.to_string(),
            "thin-pool 254:0 254:1 128 10 5 skip_block_zeroing ignore_discard \
             no_discard_passdown read_only error_if_no_space"
        );
        assert_eq!(
            all.to_string().parse::<ThinPoolTargetParams>().unwrap(),
            all
        );
        // libdm's order (error_if_no_space before read_only) reads the same.
        let libdm = "thin-pool 254:0 254:1 128 10 5 skip_block_zeroing ignore_discard \
                     no_discard_passdown error_if_no_space read_only";
        assert_eq!(libdm.parse::<ThinPoolTargetParams>().unwrap(), all);
        for bad in [
            "",
            "thin-pool",
            "thin-pool 254:0",
            "thin-pool 254:0 254:1",
            "thin-pool 254:0 254:1 128",
            "thin-pool 254:0 254:1 64 0 0",
            "thin-pool 254:0 254:1 129 0 0",
            "thin-pool 254:0 254:1 4194304 0 0",
            "thin-pool 254:0 254:1 128 x 0",
            "thin-pool 254:0 254:1 128 0 1",
            "thin-pool 254:0 254:1 128 0 1 skip_block_zeroing extra",
            "thin-pool 254:0 254:1 128 0 1 no_such_feature",
            "thin-pool 254:0 254:1 128 0 2 read_only read_only",
            "thin-pool 254:0 254:1 128 0 99999999999999999999999",
            "thin-pool 254 254:1 128 0 0",
            "thin 254:0 254:1 128 0 0",
        ] {
            let e = bad.parse::<ThinPoolTargetParams>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let id = |n| ThinDevId::new_u64(n).unwrap();
        for m in [
            ThinPoolMessage::CreateThin(id(1)),
            ThinPoolMessage::CreateSnap {
                id: id(2),
                origin: id(1),
            },
            ThinPoolMessage::Delete(id(16_777_215)),
            ThinPoolMessage::SetTransactionId { old: 3, new: 4 },
            ThinPoolMessage::ReserveMetadataSnap,
            ThinPoolMessage::ReleaseMetadataSnap,
        ] {
            assert_eq!(m.to_string().parse::<ThinPoolMessage>().unwrap(), m);
        }
        assert_eq!(
            "create_snap 2 1"
                .parse::<ThinPoolMessage>()
                .unwrap()
                .created(),
            Some(id(2))
        );
        assert_eq!(
            "delete 2".parse::<ThinPoolMessage>().unwrap().created(),
            None
        );
        for bad in [
            "",
            "create_thin",
            "create_thin x",
            "create_thin 16777216",
            "create_snap 1",
            "create_snap 1 2 3",
            "delete -1",
            "set_transaction_id 1",
            "reserve_metadata_snap now",
            "trim 1",
        ] {
            let e = bad.parse::<ThinPoolMessage>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "(thin-pool|create_snap|delete)? ?[0-9: a-z_]{0,48}") {
            if let Ok(p) = s.parse::<ThinPoolTargetParams>() {
                prop_assert_eq!(p.to_string().parse::<ThinPoolTargetParams>().unwrap(), p);
            }
            if let Ok(m) = s.parse::<ThinPoolMessage>() {
                prop_assert_eq!(m.to_string().parse::<ThinPoolMessage>().unwrap(), m);
            }
        }
    }
}
