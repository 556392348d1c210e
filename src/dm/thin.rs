//! Thin snapshots, on the devicemapper crate's thin-pool and thin types.
//!
//! A thin snapshot is a pool message, `create_snap <new> <origin>`, sent
//! while the origin thin device (if active) is suspended with a freeze and
//! flush so the snapshot holds everything written before. LVM also bumps the
//! pool's transaction id with it (`set_transaction_id <old> <new>`).

use devicemapper::{DmName, Sectors, ThinDevId, ThinPoolStatus, ThinStatus};

use super::device::{DmControl, Suspend, TableLine};
use super::error::{Error, Result};
use crate::ErrorKind;

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
    if let Some((old, new)) = spec.transaction {
        let now = thin_pool_status(dm, spec.pool)?;
        if let ThinPoolStatus::Working(w) = now {
            if w.transaction_id != old {
                return Err(Error::state(
                    spec.pool,
                    ErrorKind::Busy,
                    format!(
                        "transaction id is {}, not {old} (wanted {old} -> {new})",
                        w.transaction_id
                    ),
                ));
            }
        }
    }
    if let Some(o) = spec.origin {
        dm.suspend(o, Suspend::FREEZE)?;
    }
    let r = dm
        .message(
            spec.pool,
            &format!("create_snap {} {}", spec.snapshot_id, spec.origin_id),
        )
        .and_then(|_| match spec.transaction {
            Some((old, new)) => {
                let r = thin_set_transaction_id(dm, spec.pool, old, new);
                if r.is_err() {
                    let _ = dm.message(spec.pool, &format!("delete {}", spec.snapshot_id));
                }
                r
            }
            None => Ok(()),
        });
    if let Some(o) = spec.origin {
        let resumed = dm.resume(o);
        if let (Ok(()), Err(e)) = (&r, resumed) {
            return Err(e);
        }
    }
    r
}

/// Sends `set_transaction_id <old> <new>` to a pool.
pub fn thin_set_transaction_id(dm: &DmControl, pool: &DmName, old: u64, new: u64) -> Result<()> {
    dm.message(pool, &format!("set_transaction_id {old} {new}"))
        .map(|_| ())
}

/// Creates a new, empty thin device `id` in the pool (`create_thin`).
pub fn thin_create(dm: &DmControl, pool: &DmName, id: ThinDevId) -> Result<()> {
    dm.message(pool, &format!("create_thin {id}")).map(|_| ())
}

/// Deletes thin device `id` from the pool (`delete`); it must not be active.
pub fn thin_delete(dm: &DmControl, pool: &DmName, id: ThinDevId) -> Result<()> {
    dm.message(pool, &format!("delete {id}")).map(|_| ())
}

/// The table of a thin device `id` of `size` sectors in the pool `pool`.
pub fn thin_table(pool: devicemapper::Device, id: ThinDevId, size: Sectors) -> TableLine {
    TableLine::new(Sectors(0), size, "thin", format!("{pool} {id}"))
}

/// The status of a thin pool (transaction id, data and metadata usage).
pub fn thin_pool_status(dm: &DmControl, pool: &DmName) -> Result<ThinPoolStatus> {
    let s = dm.status_of(pool, "thin-pool", ErrorKind::InvalidArgument)?;
    s.parse().map_err(|_| Error::parse("thin-pool status", &s))
}

/// The status of a thin device (mapped sectors).
pub fn thin_status(dm: &DmControl, thin: &DmName) -> Result<ThinStatus> {
    let s = dm.status_of(thin, "thin", ErrorKind::InvalidArgument)?;
    s.parse().map_err(|_| Error::parse("thin status", &s))
}
