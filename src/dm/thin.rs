//! The `thin` target (`thin <pool> <id> [<external origin>]`) and its
//! status, and thin snapshots made through the pool's messages.
//!
//! A thin snapshot is a pool message, `create_snap <new> <origin>`, sent
//! while the origin thin device (if active) is suspended with a freeze and
//! flush so the snapshot holds everything written before. LVM also bumps the
//! pool's transaction id with it (`set_transaction_id <old> <new>`).
//! Which transaction and which thin ids LVM allows is `activate`'s to
//! judge; this is the mechanism only.

use std::fmt;
use std::str::FromStr;

use devicemapper::{Device, DmName, TargetParams, TargetTypeBuf, ThinDevId, ThinStatus};

use super::device::{DmControl, Suspend};
use super::error::{Error, Result};
use super::target::{Fields, target_type};
use super::thin_pool::{ThinPoolMessage, ThinPoolTargetParams, thin_pool_message};
use crate::ErrorKind;

/// Target type of a thin device of a pool.
pub const THIN: &str = "thin";

/// Parameters of `thin <pool> <id> [<external origin>]`: thin device `id`
/// of the pool, reading what it never wrote from `external_origin`.
///
/// ```
/// use lvsnap::dm::ThinTargetParams;
/// let p: ThinTargetParams = "thin 254:2 7".parse()?;
/// assert_eq!(u32::from(p.id), 7);
/// assert_eq!(p.to_string(), "thin 254:2 7");
/// assert!("thin 254:2 16777216".parse::<ThinTargetParams>().is_err());
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinTargetParams {
    /// The pool device (`thin-pool`).
    pub pool: Device,
    /// The thin device's id in the pool.
    pub id: ThinDevId,
    /// A read-only device beneath it, if any.
    pub external_origin: Option<Device>,
}

impl fmt::Display for ThinTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{THIN} {}", self.param_str())
    }
}

impl FromStr for ThinTargetParams {
    type Err = Error;
    /// Parses `thin <maj:min> <id> [<maj:min>]` as the kernel's table shows it.
    fn from_str(s: &str) -> Result<Self> {
        let mut f = Fields::of(s, THIN, "thin table")?;
        let pool = f.device()?;
        let id = f.number()?;
        let external_origin = match f.maybe() {
            Some(d) => Some(super::target::parse_device(d).ok_or_else(|| f.bad())?),
            None => None,
        };
        f.end()?;
        Ok(ThinTargetParams {
            pool,
            id,
            external_origin,
        })
    }
}

impl TargetParams for ThinTargetParams {
    fn param_str(&self) -> String {
        match self.external_origin {
            Some(o) => format!("{} {} {o}", self.pool, self.id),
            None => format!("{} {}", self.pool, self.id),
        }
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(THIN)
    }
}

/// A request for a thin snapshot.
#[derive(Debug, Clone, Copy)]
pub struct ThinSnapshotSpec<'a> {
    /// The pool device (LVM's `<vg>-<pool>-tpool`).
    pub pool: &'a DmName,
    /// The origin's active thin device, suspended around the message; `None`
    /// if the origin is not active.
    pub origin: Option<&'a DmName>,
    /// The origin's thin device id in the pool.
    pub origin_id: ThinDevId,
    /// The new snapshot's thin device id.
    pub snapshot_id: ThinDevId,
    /// Move the pool's transaction id from `.0` to `.1` with the snapshot.
    pub transaction: Option<(u64, u64)>,
}

/// Makes thin device `snapshot_id` a snapshot of `origin_id` in the pool.
/// On error the origin is resumed and a half-made snapshot deleted.
///
/// ```no_run
/// use lvsnap::dm::{check_dm_name, thin_create_snap, DmControl, ThinSnapshotSpec};
/// use devicemapper::ThinDevId;
/// let dm = DmControl::open()?;
/// let (pool, thin) = (check_dm_name("vg-pool-tpool")?, check_dm_name("vg-thin")?);
/// thin_create_snap(&dm, &ThinSnapshotSpec {
///     pool: &pool, origin: Some(&thin),
///     origin_id: ThinDevId::new_u64(1).unwrap(), snapshot_id: ThinDevId::new_u64(2).unwrap(),
///     transaction: Some((1, 2)),
/// })?;
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
pub fn thin_create_snap(dm: &DmControl, spec: &ThinSnapshotSpec<'_>) -> Result<()> {
    if spec.origin_id == spec.snapshot_id {
        return Err(Error::InvalidArgument(format!(
            "snapshot id {} is the origin's id",
            spec.snapshot_id
        )));
    }
    let frozen = match spec.origin {
        Some(o) => Some(dm.suspend_guard(o, Suspend::FREEZE)?),
        None => None,
    };
    let r = thin_create_snaps(
        dm,
        spec.pool,
        &[(spec.snapshot_id, spec.origin_id)],
        spec.transaction,
    );
    if let Some(g) = frozen {
        let resumed = g.resume();
        if let (Ok(()), Err(e)) = (&r, resumed) {
            return Err(e);
        }
    }
    r
}

/// Sends `create_snap <snapshot> <origin>` for each pair, then moves the
/// transaction id from `.0` to `.1` (LVM: one id step for all the messages
/// of one commit). Suspends nothing: the caller has the active origins
/// suspended. On error the snapshots made are deleted again.
pub fn thin_create_snaps(
    dm: &DmControl,
    pool: &DmName,
    snaps: &[(ThinDevId, ThinDevId)],
    transaction: Option<(u64, u64)>,
) -> Result<()> {
    let mut made = Vec::with_capacity(snaps.len());
    let r = (|| {
        for &(snap, origin) in snaps {
            let msg = ThinPoolMessage::CreateSnap { id: snap, origin };
            thin_pool_message(dm, pool, &msg)?;
            made.push(snap);
        }
        match transaction {
            Some((old, new)) => thin_set_transaction_id(dm, pool, old, new),
            None => Ok(()),
        }
    })();
    if r.is_err() {
        for id in made.iter().rev() {
            if let Err(e) = thin_delete(dm, pool, *id) {
                log::error!("undo: delete thin device {id} in {pool}: {e}");
            }
        }
    }
    r
}

/// Undoes a [`thin_create_snaps`] that succeeded: deletes the snapshots
/// (none may be active) and moves the transaction id back from `.1` to `.0`.
pub fn thin_undo_snaps(
    dm: &DmControl,
    pool: &DmName,
    snaps: &[ThinDevId],
    transaction: Option<(u64, u64)>,
) -> Result<()> {
    let mut first = None;
    for id in snaps.iter().rev() {
        if let Err(e) = thin_delete(dm, pool, *id) {
            log::error!("undo: delete thin device {id} in {pool}: {e}");
            first.get_or_insert(e);
        }
    }
    if let Some((old, new)) = transaction {
        if let Err(e) = thin_set_transaction_id(dm, pool, new, old) {
            log::error!("undo: transaction id of {pool} back to {old}: {e}");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The pool's transaction id when thin device `id` of live pool `pool` was
/// made (`None`: no such device), read from its details under a metadata
/// snapshot. One already held (by another reader) may predate the device,
/// so that is an error, not a guess.
pub fn thin_created_in(dm: &DmControl, pool: &DmName, id: u64) -> Result<Option<u64>> {
    let meta = match dm.table(pool)?.as_slice() {
        [t] => t.params_as::<ThinPoolTargetParams>()?.metadata,
        _ => {
            return Err(Error::state(
                pool,
                ErrorKind::Corrupt,
                "not one thin-pool line",
            ));
        }
    };
    let (name, _) = dm
        .list()?
        .into_iter()
        .find(|(_, d)| *d == meta)
        .ok_or_else(|| Error::state(pool, ErrorKind::NotFound, "its metadata device is gone"))?;
    let reader = super::DirectReader::open(&super::ensure_node(&name, meta)?)?;
    thin_pool_message(dm, pool, &ThinPoolMessage::ReserveMetadataSnap)?;
    // The live superblock may be torn by a commit as it is read: try again.
    let read = || {
        super::thin_metadata::ThinMetadata::open_held(&reader)
            .and_then(|m| m.created_in_transaction(id))
    };
    let mut got = read();
    for _ in 0..2 {
        if !matches!(&got, Err(e) if e.kind() == ErrorKind::Corrupt) {
            break;
        }
        got = read();
    }
    let released = thin_pool_message(dm, pool, &ThinPoolMessage::ReleaseMetadataSnap);
    let made = got?;
    released?;
    Ok(made)
}

/// Sends `set_transaction_id <old> <new>` to a pool.
pub fn thin_set_transaction_id(dm: &DmControl, pool: &DmName, old: u64, new: u64) -> Result<()> {
    thin_pool_message(dm, pool, &ThinPoolMessage::SetTransactionId { old, new })
}

/// Creates a new, empty thin device `id` in the pool (`create_thin`).
pub fn thin_create(dm: &DmControl, pool: &DmName, id: ThinDevId) -> Result<()> {
    thin_pool_message(dm, pool, &ThinPoolMessage::CreateThin(id))
}

/// Deletes thin device `id` from the pool (`delete`); it must not be active.
pub fn thin_delete(dm: &DmControl, pool: &DmName, id: ThinDevId) -> Result<()> {
    thin_pool_message(dm, pool, &ThinPoolMessage::Delete(id))
}

/// The status of a thin device (mapped sectors).
pub fn thin_status(dm: &DmControl, thin: &DmName) -> Result<ThinStatus> {
    let s = dm.status_of(thin, THIN, ErrorKind::InvalidArgument)?;
    s.parse().map_err(|_| Error::parse("thin status", &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tables_round_trip_and_bad_ones_are_refused() {
        let dev = |minor| Device { major: 254, minor };
        let p = ThinTargetParams {
            pool: dev(2),
            id: ThinDevId::new_u64(2).unwrap(),
            external_origin: None,
        };
        assert_eq!(p.param_str(), "254:2 2");
        assert_eq!(p.to_string().parse::<ThinTargetParams>().unwrap(), p);
        let ext = ThinTargetParams {
            external_origin: Some(dev(9)),
            ..p
        };
        assert_eq!(ext.to_string(), "thin 254:2 2 254:9");
        assert_eq!(ext.to_string().parse::<ThinTargetParams>().unwrap(), ext);
        for bad in [
            "",
            "thin",
            "thin 254:2",
            "thin 254:2 x",
            "thin 254:2 -1",
            "thin 254:2 16777216",
            "thin 254:2 2 254",
            "thin 254:2 2 254:9 1",
            "thin 254 2",
            "thin-pool 254:2 2",
        ] {
            let e = bad.parse::<ThinTargetParams>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "(thin)? ?[0-9: a-z]{0,24}") {
            if let Ok(p) = s.parse::<ThinTargetParams>() {
                prop_assert_eq!(p.to_string().parse::<ThinTargetParams>().unwrap(), p);
            }
        }
    }
}
