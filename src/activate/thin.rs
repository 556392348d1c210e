//! LVM's thin layout: a pool's `-tpool` device, which takes the pool's
//! messages, the table a thin LV gets on it, and what a message queued in
//! the metadata asks of the pool. `dm` sends the messages and loads the
//! tables; which device gets which is decided here, and so are LVM's rules
//! for them: the pool's transaction id must be the one the metadata moves
//! from, and a thin id the pool holds unknown to the metadata is refused.

use devicemapper::{Device, DmName, DmNameBuf, ThinDevId, ThinPoolStatus, ThinStatus};

use super::error::{Error, Result};
use super::layer::Layer;
use super::plan::{dm_name, dm_name_in};
use crate::ErrorKind;
use crate::dm::LvmDmName;
use crate::dm::{self, DmControl, TableLine, ThinPoolMessage, ThinTargetParams};
use crate::lvm::vg::{SegmentKind, ThinMessage, Vg};
use crate::units::Sectors;

/// A thin pool LV of a VG as LVM lays it out: its `<vg>-<pool>-tpool`
/// device takes the pool's messages and maps its thin LVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinPool {
    tpool: DmNameBuf,
}

impl ThinPool {
    /// Pool LV `pool` of the VG called `vg`.
    pub fn new(vg: &str, pool: &str) -> Result<ThinPool> {
        let tpool = dm_name_in(vg, pool, Some(Layer::Tpool))?.into_dm_name();
        Ok(ThinPool { tpool })
    }

    /// The device-mapper device that takes its messages (`-tpool`).
    pub fn dm_name(&self) -> &DmName {
        &self.tpool
    }

    /// Whether the pool is active.
    pub fn is_active(&self, dm: &DmControl) -> dm::Result<bool> {
        dm.exists(&self.tpool)
    }

    /// The kernel's status of the pool.
    pub fn status(&self, dm: &DmControl) -> dm::Result<ThinPoolStatus> {
        dm::thin_pool_status(dm, &self.tpool)
    }

    /// The pool's transaction id in the kernel; `None` if it has failed.
    pub fn transaction_id(&self, dm: &DmControl) -> dm::Result<Option<u64>> {
        Ok(match self.status(dm)? {
            ThinPoolStatus::Working(w) => Some(w.transaction_id),
            _ => None,
        })
    }

    /// Sends `msg` to the pool.
    pub fn send(&self, dm: &DmControl, msg: &ThinPoolMessage) -> dm::Result<()> {
        dm::thin_pool_message(dm, &self.tpool, msg)
    }

    /// Sends a message queued in the metadata again, for a run that
    /// stopped part way through sending them: the kernel moves the
    /// transaction id only after the last, so a `delete` it refuses with
    /// ENODATA was already done by that run, and so was a
    /// `create_thin`/`create_snap` it refuses with EEXIST if the device was
    /// made in the pool's current transaction. A device made earlier is one
    /// the metadata does not know (an older metadata restored, as LVM's
    /// thin-errors test does): that is refused as LVM refuses it, never
    /// handed to the new LV. Returns whether the message was sent now.
    pub fn replay(&self, dm: &DmControl, msg: &ThinPoolMessage) -> dm::Result<bool> {
        replay_message(dm, &self.tpool, msg)
    }

    /// Deletes thin device `id` (not active) and moves the transaction id
    /// from `old` to `new`, as LVM's removal of a thin LV does.
    pub fn delete(&self, dm: &DmControl, id: ThinDevId, old: u64, new: u64) -> dm::Result<()> {
        dm::thin_delete(dm, &self.tpool, id)?;
        dm::thin_set_transaction_id(dm, &self.tpool, old, new)
    }

    /// Moves the transaction id from `old` to `new`.
    pub fn set_transaction_id(&self, dm: &DmControl, old: u64, new: u64) -> dm::Result<()> {
        dm::thin_set_transaction_id(dm, &self.tpool, old, new)
    }

    /// Makes thin device `snapshot` a snapshot of `origin`, the origin LV's
    /// active device `origin_dev` (if any) suspended around it, with the
    /// transaction id moved as `transaction` asks
    /// ([`dm::thin_create_snap`]). A pool not at the old transaction id is
    /// `Busy`, refused before anything is suspended or sent.
    pub fn create_snap(
        &self,
        dm: &DmControl,
        origin_dev: Option<&DmName>,
        (origin, snapshot): (ThinDevId, ThinDevId),
        transaction: Option<(u64, u64)>,
    ) -> dm::Result<()> {
        if let Some((old, new)) = transaction {
            if let ThinPoolStatus::Working(w) = self.status(dm)? {
                if w.transaction_id != old {
                    return Err(dm::Error::state(
                        &*self.tpool,
                        ErrorKind::Busy,
                        format!(
                            "transaction id is {}, not {old} (wanted {old} -> {new})",
                            w.transaction_id
                        ),
                    ));
                }
            }
        }
        let spec = dm::ThinSnapshotSpec {
            pool: &self.tpool,
            origin: origin_dev,
            origin_id: origin,
            snapshot_id: snapshot,
            transaction,
        };
        dm::thin_create_snap(dm, &spec)
    }

    /// `(snapshot, origin)` pairs made at once, their origins suspended by
    /// the caller ([`dm::thin_create_snaps`]).
    pub fn create_snaps(
        &self,
        dm: &DmControl,
        snaps: &[(ThinDevId, ThinDevId)],
        transaction: Option<(u64, u64)>,
    ) -> dm::Result<()> {
        dm::thin_create_snaps(dm, &self.tpool, snaps, transaction)
    }

    /// Undoes a [`ThinPool::create_snaps`] ([`dm::thin_undo_snaps`]).
    pub fn undo_snaps(
        &self,
        dm: &DmControl,
        snaps: &[ThinDevId],
        transaction: Option<(u64, u64)>,
    ) -> dm::Result<()> {
        dm::thin_undo_snaps(dm, &self.tpool, snaps, transaction)
    }

    /// Refuses, with LVM's message, a thin id the live pool already holds:
    /// a thin LV about to be made with it would get that device's data.
    pub fn check_id_free(&self, dm: &DmControl, id: u64) -> dm::Result<()> {
        match dm::thin_created_in(dm, &self.tpool, id)? {
            Some(_) => Err(foreign_device(&self.tpool, id)),
            None => Ok(()),
        }
    }

    /// The table of a thin LV `size` long mapping thin device `id` of the
    /// active pool.
    pub fn thin_lv_table(
        &self,
        dm: &DmControl,
        id: ThinDevId,
        size: Sectors,
    ) -> dm::Result<Vec<TableLine>> {
        let pool = dm.info(&self.tpool)?.device;
        Ok(thin_lv_table(pool, id, size))
    }
}

/// [`ThinPool::replay`] to the pool's `-tpool` device `tpool`.
pub(crate) fn replay_message(
    dm: &DmControl,
    tpool: &DmName,
    msg: &ThinPoolMessage,
) -> dm::Result<bool> {
    let done_errno = match msg {
        ThinPoolMessage::Delete(_) => libc::ENODATA,
        ThinPoolMessage::CreateThin(_) | ThinPoolMessage::CreateSnap { .. } => libc::EEXIST,
        _ => 0,
    };
    match dm::thin_pool_message(dm, tpool, msg) {
        Ok(()) => Ok(true),
        Err(e) if done_errno != 0 && e.errno() == Some(done_errno) => {
            if let Some(id) = msg.created() {
                let id = u64::from(u32::from(id));
                if !made_this_transaction(dm, tpool, id)? {
                    return Err(foreign_device(tpool, id));
                }
            }
            log::info!("{tpool}: queued message \"{msg}\" was already carried out");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// LVM's refusal of a thin id the pool holds but the metadata does not.
fn foreign_device(tpool: &DmName, id: u64) -> dm::Error {
    dm::Error::state(
        tpool,
        ErrorKind::Corrupt,
        format!(
            "Thin pool {tpool} already contains thin device with device_id {id}, unknown \
             to the metadata: manual intervention may be required"
        ),
    )
}

/// Whether thin device `id` of the pool was made in its current transaction.
fn made_this_transaction(dm: &DmControl, tpool: &DmName, id: u64) -> dm::Result<bool> {
    let ThinPoolStatus::Working(w) = dm::thin_pool_status(dm, tpool)? else {
        return Err(dm::Error::state(
            tpool,
            ErrorKind::Busy,
            "the thin pool has failed",
        ));
    };
    Ok(dm::thin_created_in(dm, tpool, id)? == Some(w.transaction_id))
}

/// The device of pool `pool`'s metadata LV (`<vg>-<pool>_tmeta`), from
/// the pool's segment.
pub fn pool_metadata_name(vg: &Vg, pool: &str) -> Result<LvmDmName> {
    match vg
        .lv(pool)
        .and_then(|l| l.segments.first())
        .map(|s| &s.kind)
    {
        Some(SegmentKind::ThinPool { metadata, .. }) => dm_name(vg, metadata, None),
        _ => Err(Error::invalid(pool, "not a thin pool")),
    }
}

/// Whether `table` is a thin LV's: one `thin` line.
pub fn is_thin_lv_table(table: &[TableLine]) -> bool {
    matches!(table, [l] if l.params_as::<ThinTargetParams>().is_ok())
}

/// The kernel's status of an active thin LV, `dev` its own device
/// ([`dm_name`](super::dm_name) without a layer): the sectors it maps. A
/// device that is not a `thin` target is `InvalidArgument`.
pub fn thin_lv_status(dm: &DmControl, dev: &DmName) -> dm::Result<ThinStatus> {
    dm::thin_status(dm, dev)
}

/// The table of a thin LV `size` long mapping thin device `id` of the pool
/// whose `-tpool` device is `pool`, as LVM loads it.
///
/// ```
/// use lvsnap::{activate::thin_lv_table, units::Sectors};
/// use devicemapper::{Device, ThinDevId};
/// let t = thin_lv_table(Device { major: 254, minor: 2 }, ThinDevId::new_u64(3).unwrap(), Sectors(8));
/// assert_eq!(t[0].to_string(), "0 8 thin 254:2 3");
/// ```
pub fn thin_lv_table(pool: Device, id: ThinDevId, size: Sectors) -> Vec<TableLine> {
    let p = ThinTargetParams {
        pool,
        id,
        external_origin: None,
    };
    vec![TableLine::target(Sectors(0), size, &p)]
}

/// A message queued in a pool's metadata, as the pool is sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedMessage<'a> {
    /// The message.
    pub message: ThinPoolMessage,
    /// For a `create_snap`, the origin thin LV: an active one is suspended
    /// around the message.
    pub origin: Option<&'a str>,
}

/// What queued message `m` of `vg` asks of its pool; `None` when the
/// metadata no longer describes it (its LV gone, or not thin).
pub fn queued_message<'a>(vg: &'a Vg, m: &ThinMessage) -> Result<Option<QueuedMessage<'a>>> {
    let id = |lv: &str, n: u32| {
        ThinDevId::new_u64(n.into())
            .map_err(|_| Error::invalid(lv, "device_id does not fit in 24 bits"))
    };
    Ok(match m {
        ThinMessage::Delete(n) => Some(QueuedMessage {
            message: ThinPoolMessage::Delete(id("queued delete", *n)?),
            origin: None,
        }),
        ThinMessage::Create(name) => {
            let Some(thin) = vg.lv(name) else {
                return Ok(None);
            };
            let Some((_, n)) = thin.thin() else {
                return Ok(None);
            };
            let new = id(name, n)?;
            match thin.thin_origin() {
                None => Some(QueuedMessage {
                    message: ThinPoolMessage::CreateThin(new),
                    origin: None,
                }),
                Some(o) => {
                    let Some((_, on)) = vg.lv(o).and_then(|l| l.thin()) else {
                        return Ok(None);
                    };
                    Some(QueuedMessage {
                        message: ThinPoolMessage::CreateSnap {
                            id: new,
                            origin: id(o, on)?,
                        },
                        origin: Some(o),
                    })
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::vg::Metadata;

    fn vg(fixture: &str) -> Vg {
        let path = format!("{}/tests/fixtures/{fixture}.vg", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        Metadata::parse(&text).unwrap().vg().clone()
    }

    #[test]
    fn queued_messages_are_what_the_pool_is_sent() {
        let vg = vg("thinsnap");
        let id = |n: u32| ThinDevId::new_u64(n.into()).unwrap();
        let (_, thin1) = vg.lv("thin1").unwrap().thin().unwrap();
        let (_, tsnap) = vg.lv("tsnap").unwrap().thin().unwrap();
        let q = queued_message(&vg, &ThinMessage::Create("thin1".into()))
            .unwrap()
            .unwrap();
        assert_eq!(q.message, ThinPoolMessage::CreateThin(id(thin1)));
        assert_eq!(q.origin, None);
        let q = queued_message(&vg, &ThinMessage::Create("tsnap".into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            q.message.to_string(),
            format!("create_snap {tsnap} {thin1}")
        );
        assert_eq!(q.origin, Some("thin1"));
        let q = queued_message(&vg, &ThinMessage::Delete(7))
            .unwrap()
            .unwrap();
        assert_eq!(q.message.to_string(), "delete 7");
        // An LV the metadata no longer has, or one that is not thin.
        assert_eq!(
            queued_message(&vg, &ThinMessage::Create("gone".into())).unwrap(),
            None
        );
        assert_eq!(
            queued_message(&vg, &ThinMessage::Create("pool".into())).unwrap(),
            None
        );
        assert_eq!(
            pool_metadata_name(&vg, "pool").unwrap().to_string(),
            "vg-pool_tmeta"
        );
        assert!(pool_metadata_name(&vg, "thin1").is_err());
        // A device id past 24 bits in the metadata is corrupt metadata.
        let e = queued_message(&vg, &ThinMessage::Delete(1 << 24)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn thin_lv_tables_are_one_thin_line() {
        let t = thin_lv_table(
            Device {
                major: 254,
                minor: 2,
            },
            ThinDevId::new_u64(5).unwrap(),
            Sectors(64),
        );
        assert_eq!(t[0].to_string(), "0 64 thin 254:2 5");
        assert!(is_thin_lv_table(&t));
        assert!(!is_thin_lv_table(&[t[0].clone(), t[0].clone()]));
        let lin = TableLine::new(Sectors(0), Sectors(64), "linear", "254:2 0");
        assert!(!is_thin_lv_table(&[lin]));
    }
}
