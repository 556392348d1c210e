//! Rolling a thin origin back to one of its thin snapshots, without
//! copying data and without touching the other snapshots.
//!
//! The origin LV keeps its name and id and takes the snapshot's thin
//! device; a kept snapshot gets a new device, `create_snap <new> <snap>`;
//! the origin's old device is deleted. Siblings are thin devices of their
//! own, so they keep their data, and their `origin` still names the origin
//! LV (LVM's `lvconvert --merge` drops it: lvm2 issue 193).
//!
//! Crash safety is LVM's: the first commit records the end state with the
//! pool's work queued (`transaction_id` + 1, `create`/`delete` messages),
//! which LVM's own activation (and lvsnap's) replays if the kernel pool
//! never got it; the pool's transaction id, moved on last, tells done from
//! not done; the second commit drops the messages.

use devicemapper::{DmName, ThinDevId, ThinPoolStatus};

use super::Error as SnapError;
use super::rollback::{Rollback, RollbackState};
use super::vg::{Session, VolumeGroup};
use crate::activate::ThinPool;
use crate::dm::{self, DmControl, Suspend, TableLine, ThinPoolMessage, table_size};
use crate::error::Result;
use crate::lvm::flags::LvFlags;
use crate::lvm::vg::SegmentKind;

impl VolumeGroup {
    /// Rolls thin snapshot `name`'s origin back to it; see
    /// [`VolumeGroup::rollback_with`].
    pub(super) fn rollback_thin(&self, mut s: Session, name: &str, keep: bool) -> Result<Rollback> {
        let full = format!("{}/{name}", self.name());
        let vg = s.md.vg();
        let snap = vg
            .lv(name)
            .ok_or_else(|| SnapError::NotFound(format!("snapshot {full}")))?;
        let origin = snap
            .thin_origin()
            .ok_or_else(|| SnapError::not_a_snapshot(vg, name))?
            .to_owned();
        let origin_full = format!("{}/{origin}", self.name());
        let o = vg
            .lv(&origin)
            .ok_or_else(|| SnapError::NotFound(format!("origin {origin_full}")))?;
        if !o.has_status(LvFlags::WRITE) {
            return Err(SnapError::InvalidArgument(format!(
                "origin {origin_full} is read-only: it cannot be rolled back"
            ))
            .into());
        }
        let pool = snap
            .thin()
            .map(|(p, _)| p.to_owned())
            .ok_or_else(|| SnapError::InvalidArgument(format!("{full} is not thin")))?;
        let old_tid = match vg
            .lv(&pool)
            .and_then(|p| p.segments.first())
            .map(|g| &g.kind)
        {
            Some(SegmentKind::ThinPool {
                transaction_id,
                messages,
                ..
            }) => {
                if !messages.is_empty() {
                    return Err(SnapError::Busy(format!(
                        "thin pool {pool} has pool messages pending from an unfinished command"
                    ))
                    .into());
                }
                *transaction_id
            }
            _ => {
                return Err(
                    SnapError::InvalidArgument(format!("{pool} is not a thin pool")).into(),
                );
            }
        };
        let dm = DmControl::shared()?;
        let tpool = ThinPool::new(self.name(), &pool)?;
        let origin_dev = self.dm_name(&origin, None)?;
        let snap_dev = self.dm_name(name, None)?;
        let origin_live = dm.exists(&origin_dev)?;
        let snap_live = dm.exists(&snap_dev)?;
        let settled = |st| Rollback::settled(self, name, &origin, st);
        // Nothing is recorded while something is open: the rollback is
        // instant once it can run, and running rollback again does it.
        for (live, dev, what, needed) in [
            (
                origin_live,
                &origin_dev,
                format!("origin {origin_full}"),
                true,
            ),
            (snap_live, &snap_dev, format!("snapshot {full}"), !keep),
        ] {
            if live && needed {
                // A passing opener (a udev scan) is waited out, as delete does.
                let n = crate::activate::open_count_settled(&dm, &dm.info(dev)?)?;
                if n > 0 {
                    return Ok(settled(RollbackState::Deferred {
                        reason: format!(
                            "{what} (/dev/mapper/{}) is open ({n} opener(s)); nothing is changed: \
                             run rollback again once it is closed",
                            &**dev
                        ),
                    }));
                }
            }
        }
        let before = s.md.clone();
        let ids = s.md.thin_rollback(&origin, name, keep)?;
        let what = format!("roll back thin {origin_full} to {name}");
        if !tpool.is_active(&dm)? {
            self.through_inactive_pool(&mut s, &dm, &pool, &what, &before)?;
            return Ok(settled(RollbackState::Completed));
        }
        match tpool.status(&dm)? {
            ThinPoolStatus::Working(w) if w.transaction_id == old_tid => {}
            ThinPoolStatus::Working(w) => {
                return Err(SnapError::Busy(format!(
                    "thin pool {pool} has transaction id {} in the kernel, {old_tid} in the \
                     metadata",
                    w.transaction_id
                ))
                .into());
            }
            _ => {
                return Err(
                    SnapError::Busy(format!("thin pool {pool} has failed in the kernel")).into(),
                );
            }
        }
        let id = |n: u32| {
            ThinDevId::new_u64(n.into())
                .map_err(|_| SnapError::InvalidArgument(format!("thin device id {n} out of range")))
        };
        let (old_id, snap_id) = (id(ids.old_origin_id)?, id(ids.snap_id)?);
        let new_id = ids.new_snap_id.map(id).transpose()?;
        let thin_line = |dev: &DmName, tid: ThinDevId| -> Result<(Vec<TableLine>, bool)> {
            let size = table_size(&dm.table(dev)?);
            let ro = dm.info(dev)?.read_only;
            Ok((tpool.thin_lv_table(&dm, tid, size)?, ro))
        };
        let kept = match new_id {
            Some(n) if snap_live => Some((n, Some(thin_line(&snap_dev, n)?))),
            Some(n) => Some((n, None)),
            None => None,
        };
        // The origin's new table waits in its inactive slot from before the
        // commit, so nothing that can fail stands between the messages.
        if origin_live {
            let (t, ro) = thin_line(&origin_dev, snap_id)?;
            dm.load(&origin_dev, &t, ro)?;
        }
        let unload_origin = || {
            if origin_live {
                if let Err(e) = dm.clear_inactive(&origin_dev) {
                    log::error!("dropping the table loaded into {}: {e}", &*origin_dev);
                }
            }
        };
        if let Err(e) = s.precommit(&what) {
            unload_origin();
            return Err(e);
        }
        if let Err(e) = s.commit() {
            s.revert();
            unload_origin();
            return Err(e);
        }
        // The kept snapshot: a new device of its data, swapped in under it
        // while it is suspended, so it never shows anything else.
        if let Some((n, table)) = &kept {
            let r = (|| -> Result<()> {
                // The guard resumes it on every path, with the new table
                // if it was loaded.
                let g = match snap_live {
                    true => Some(dm.suspend_guard(&snap_dev, Suspend::FREEZE)?),
                    false => None,
                };
                let msg = ThinPoolMessage::CreateSnap {
                    id: *n,
                    origin: snap_id,
                };
                let swapped = tpool.send(&dm, &msg).and_then(|_| match table {
                    Some((t, ro)) => dm.load(&snap_dev, t, *ro),
                    None => Ok(()),
                });
                let resumed = g.map_or(Ok(()), |g| g.resume());
                swapped?;
                resumed?;
                Ok(())
            })();
            if let Err(e) = r {
                // The pool has not changed (or only by a device nothing
                // maps): the old metadata is committed again.
                unload_origin();
                if let Err(u) = s.recommit(before, &format!("undo {what}")) {
                    log::error!("undoing the thin rollback in the metadata: {u}");
                }
                return Err(e);
            }
        }
        // From here on the rollback only goes forward.
        let forward = (|| -> Result<()> {
            if origin_live {
                dm.suspend_guard(&origin_dev, Suspend::FLUSH)?.resume()?;
            }
            if !keep && snap_live {
                dm.remove(&snap_dev)?;
                dm::remove_node(&snap_dev)?;
                self.remove_link(name);
            }
            tpool.delete(&dm, old_id, old_tid, old_tid + 1)?;
            s.md.clear_thin_messages(&ids.pool)?;
            s.precommit(&format!("{what}: done in the pool"))?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = forward {
            log::error!(
                "thin rollback of {origin_full} to {full} stopped part way: {e}; the metadata \
                 records it with the pool's messages queued"
            );
            return Err(e);
        }
        Ok(settled(RollbackState::Completed))
    }
}
