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
            dm.message(pool, &format!("create_snap {snap} {origin}"))?;
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

/// Sends a pool message queued in the metadata again, for a run that
/// stopped part way through sending them: the kernel moves the transaction
/// id only after the last, so a `delete` it refuses with ENODATA was
/// already done by that run, and so was a `create_thin`/`create_snap` it
/// refuses with EEXIST if the device was made in the pool's current
/// transaction. A device made earlier is one the metadata does not know
/// (an older metadata restored, as LVM's thin-errors test does): that is
/// refused as LVM refuses it, never handed to the new LV. Returns whether
/// the message was sent now.
pub fn thin_message_replay(dm: &DmControl, pool: &DmName, msg: &str) -> Result<bool> {
    let done_errno = if msg.starts_with("delete ") {
        libc::ENODATA
    } else if msg.starts_with("create_") {
        libc::EEXIST
    } else {
        0
    };
    match dm.message(pool, msg) {
        Ok(_) => Ok(true),
        Err(e) if done_errno != 0 && e.errno() == Some(done_errno) => {
            if done_errno == libc::EEXIST {
                let id = msg.split_whitespace().nth(1).and_then(|i| i.parse().ok());
                let Some(id) = id else { return Err(e) };
                if !made_this_transaction(dm, pool, id)? {
                    return Err(foreign_device(pool, id));
                }
            }
            log::info!("{pool}: queued message \"{msg}\" was already carried out");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// LVM's refusal of a thin id the pool holds but the metadata does not.
fn foreign_device(pool: &DmName, id: u64) -> Error {
    Error::state(
        pool,
        ErrorKind::Corrupt,
        format!(
            "Thin pool {pool} already contains thin device with device_id {id}, unknown \
             to the metadata: manual intervention may be required"
        ),
    )
}

/// Whether thin device `id` of `pool` was made in the pool's current
/// transaction.
fn made_this_transaction(dm: &DmControl, pool: &DmName, id: u64) -> Result<bool> {
    let ThinPoolStatus::Working(w) = thin_pool_status(dm, pool)? else {
        return Err(Error::state(
            pool,
            ErrorKind::Busy,
            "the thin pool has failed",
        ));
    };
    Ok(created_in(dm, pool, id)? == Some(w.transaction_id))
}

/// Refuses, with LVM's message, a thin id the live pool `pool` already
/// holds: a thin LV about to be made with it would get that device's data.
pub fn thin_check_id_free(dm: &DmControl, pool: &DmName, id: u64) -> Result<()> {
    match created_in(dm, pool, id)? {
        Some(_) => Err(foreign_device(pool, id)),
        None => Ok(()),
    }
}

/// The pool's transaction id when thin device `id` of live pool `pool` was
/// made (`None`: no such device), read from its details under a metadata
/// snapshot. One already held (by another reader) may predate the device,
/// so that is an error, not a guess.
fn created_in(dm: &DmControl, pool: &DmName, id: u64) -> Result<Option<u64>> {
    let meta: devicemapper::Device = dm
        .table(pool)?
        .first()
        .and_then(|t| t.params.split_whitespace().next())
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| Error::state(pool, ErrorKind::Corrupt, "no metadata device in its table"))?;
    let (name, _) = dm
        .list()?
        .into_iter()
        .find(|(_, d)| *d == meta)
        .ok_or_else(|| Error::state(pool, ErrorKind::NotFound, "its metadata device is gone"))?;
    let reader = super::DirectReader::open(&super::ensure_node(&name, meta)?)?;
    dm.message(pool, "reserve_metadata_snap")?;
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
    let released = dm.message(pool, "release_metadata_snap");
    let made = got?;
    released?;
    Ok(made)
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

/// The status of a thin device (mapped sectors).
pub fn thin_status(dm: &DmControl, thin: &DmName) -> Result<ThinStatus> {
    let s = dm.status_of(thin, "thin", ErrorKind::InvalidArgument)?;
    s.parse().map_err(|_| Error::parse("thin status", &s))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
