//! Thin snapshots: a pool message, and LVM's two commits around it.

use devicemapper::ThinDevId;

use super::Error as SnapError;
use super::vg::{Session, VolumeGroup};
use crate::activate::{self, ThinPool};
use crate::dm::{self, DmControl};
use crate::error::Result;
use crate::lvm::vg::{Creation, NewThinLv, SegmentKind, ThinMessage};
use crate::units::Extents;

impl VolumeGroup {
    /// Creates thin snapshot `name` of thin LV `origin`, as `lvcreate -s`
    /// does: the first commit records it with the pool's message queued and
    /// transaction id + 1; the pool creates the device; the second commit
    /// drops the message. The snapshot gets ACTIVATION_SKIP, as LVM's do,
    /// and is read-only unless `writable` (`lvcreate -s -p r|rw`).
    pub(crate) fn create_thin(
        &self,
        s: &mut Session,
        origin: &str,
        name: &str,
        writable: bool,
    ) -> Result<()> {
        self.create_thin_lv(s, origin, name, None, true, writable)
            .map(|_| ())
    }

    /// As [`VolumeGroup::create_thin`], with the new LV `extents` large
    /// (default: the origin's size, as `lvcreate -s`; larger is what
    /// `lvextend` of the snapshot would give), ACTIVATION_SKIP and
    /// permission as asked. Returns the new thin device id.
    pub(crate) fn create_thin_lv(
        &self,
        s: &mut Session,
        origin: &str,
        name: &str,
        extents: Option<Extents>,
        activation_skip: bool,
        writable: bool,
    ) -> Result<u32> {
        let vg = s.md.vg();
        let extents = match extents {
            Some(e) => e,
            None => vg
                .lv(origin)
                .map(|o| o.extents())
                .ok_or_else(|| SnapError::NotFound(format!("thin LV {origin}")))?,
        };
        let (pool, origin_id) = vg
            .lv(origin)
            .and_then(|o| o.thin())
            .map(|(p, id)| (p.to_owned(), id))
            .ok_or_else(|| SnapError::NotFound(format!("thin LV {origin}")))?;
        let old_tid = pool_transaction(s, &pool)?;
        let dm = DmControl::shared()?;
        let tpool = ThinPool::new(self.name(), &pool)?;
        let before = s.md.clone();
        let lv = NewThinLv {
            name,
            pool: &pool,
            extents,
            origin: Some(origin),
            activation_skip,
            batched: false,
        };
        let snap_id = s.md.add_thin_lv(&lv, &Creation::now())?;
        if let Err(e) = s.md.set_writable(name, writable) {
            s.md = before;
            return Err(e.into());
        }
        let pool_live = tpool.is_active(&dm)?;
        if pool_live {
            // Before anything is written: the kernel's pool must be where
            // the metadata says, or the new device id may be taken.
            if let Err(e) = check_transaction(&dm, &tpool, self.name(), &pool, old_tid) {
                s.md = before;
                return Err(e);
            }
        }
        if !pool_live {
            let what = format!("create thin snapshot {name}");
            self.through_inactive_pool(s, &dm, &pool, &what, &before)?;
            return Ok(snap_id);
        }
        s.precommit(&format!(
            "create thin snapshot {}/{name} of {origin}",
            self.name()
        ))?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        let origin_dev = self.dm_name(origin, None)?;
        let origin_live = dm.exists(&origin_dev)?;
        let ids = (thin_id(origin_id)?, thin_id(snap_id)?);
        let origin_live = origin_live.then_some(&*origin_dev);
        let tid = Some((old_tid, old_tid + 1));
        // The pool makes the device only after the metadata says it is owed,
        // so a crash leaves nothing the metadata does not know of. If the
        // pool refuses, the old content is committed again.
        if let Err(e) = tpool.create_snap(&dm, origin_live, ids, tid) {
            let what = format!("undo thin snapshot {}/{name}", self.name());
            if let Err(u) = s.recommit(before, &what) {
                log::error!("undoing thin snapshot {name} in metadata: {u}");
            }
            return Err(e.into());
        }
        s.md.clear_thin_messages(&pool)?;
        s.precommit(&format!(
            "thin snapshot {}/{name} made in the pool",
            self.name()
        ))?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        Ok(snap_id)
    }

    /// Deletes thin snapshot `name`: its device if active (refused while
    /// open), then the pool's thin device, with LVM's two commits.
    pub(crate) fn delete_thin(&self, s: &mut Session, name: &str) -> Result<()> {
        let full = format!("{}/{name}", self.name());
        let (pool, id) =
            s.md.vg()
                .lv(name)
                .and_then(|l| l.thin())
                .map(|(p, id)| (p.to_owned(), id))
                .ok_or_else(|| SnapError::NotFound(format!("thin snapshot {full}")))?;
        let old_tid = pool_transaction(s, &pool)?;
        let dm = DmControl::shared()?;
        let tpool = ThinPool::new(self.name(), &pool)?;
        if !tpool.is_active(&dm)? {
            let before = s.md.clone();
            remove_thin_lv(s, name)?;
            return self.through_inactive_pool(
                s,
                &dm,
                &pool,
                &format!("delete thin snapshot {full}"),
                &before,
            );
        }
        let dev = self.dm_name(name, None)?;
        let live = dm.exists(&dev)?;
        if live {
            let open_count = activate::open_count_settled(&dm, &dm.info(&dev)?)?;
            if open_count > 0 {
                return Err(SnapError::Busy(format!(
                    "thin snapshot {full} is open ({open_count} opener(s))"
                ))
                .into());
            }
        }
        check_transaction(&dm, &tpool, self.name(), &pool, old_tid)?;
        remove_thin_lv(s, name)?;
        s.precommit(&format!("delete thin snapshot {full}"))?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        // Committed (with the pool's message queued): the snapshot is
        // deleted. A later step that fails is left for recovery, which
        // carries out the queued message on the next operation.
        let after = (|| -> Result<()> {
            if live {
                dm.remove(&dev)?;
                dm::remove_node(&dev)?;
                self.remove_link(name);
            }
            tpool.delete(&dm, thin_id(id)?, old_tid, old_tid + 1)?;
            s.md.clear_thin_messages(&pool)?;
            s.precommit(&format!("thin snapshot {full} deleted in the pool"))?;
            s.commit()
        })();
        if let Err(e) = after {
            if s.disk.has_precommit() {
                s.revert();
            }
            s.warn(format!(
                "thin snapshot {full} is deleted, but the pool has not caught up: {e}; the next \
                 lvsnap operation on {} finishes it",
                self.name()
            ));
        }
        Ok(())
    }

    /// With the pool inactive, as `lvcreate`/`lvremove` do: commit with the
    /// pool message queued, activate the pool (which carries out queued
    /// messages and moves its transaction id on), commit without the message,
    /// and deactivate the pool again. First the pool is activated (and
    /// deactivated) as the committed metadata `before` has it, which checks
    /// its metadata with thin_check and its transaction id as LVM's
    /// activation does: a pool out of step (an
    /// older metadata restored) is refused before anything is written,
    /// where the one-ahead id of the new metadata could match it by chance
    /// and hand the new LV a device id the pool already uses.
    pub(super) fn through_inactive_pool(
        &self,
        s: &mut Session,
        dm: &DmControl,
        pool: &str,
        what: &str,
        before: &crate::lvm::vg::Metadata,
    ) -> Result<()> {
        {
            let pvs = activate::pv_map(before.vg(), &s.disk)?;
            let opts = activate::ActivateOptions::default();
            activate::activate(dm, before.vg(), &pvs, pool, &opts)?;
            let free = self.check_new_ids_free(s, dm, pool);
            if let Err(e) = activate::deactivate(dm, before.vg(), pool) {
                log::warn!("deactivating thin pool {pool} after its check: {e}");
            }
            free?;
        }
        s.precommit(what)?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        let pvs = activate::pv_map(s.md.vg(), &s.disk)?;
        // Its metadata was checked by the activation above, and only the
        // kernel has written to it since: one thin_check per operation.
        let opts = activate::ActivateOptions {
            skip_thin_check: true,
            ..Default::default()
        };
        activate::activate(dm, s.md.vg(), &pvs, pool, &opts)?;
        let done = (|| -> Result<()> {
            s.md.clear_thin_messages(pool)?;
            s.precommit(&format!("{what}: done in the pool"))?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = activate::deactivate(dm, s.md.vg(), pool) {
            log::warn!("deactivating thin pool {pool} again: {e}");
        }
        done
    }
}

impl VolumeGroup {
    /// Refuses, before anything is written, thin ids that the messages
    /// queued in `s` would create but that the live pool already holds,
    /// unknown to the metadata (LVM's thin-errors test): activating the
    /// pool with them queued would fail part way, or hand the new LV
    /// another device's data.
    fn check_new_ids_free(&self, s: &Session, dm: &DmControl, pool: &str) -> Result<()> {
        let vg = s.md.vg();
        let Some(SegmentKind::ThinPool { messages, .. }) = vg
            .lv(pool)
            .and_then(|l| l.segments.first())
            .map(|g| &g.kind)
        else {
            return Ok(());
        };
        let tpool = ThinPool::new(self.name(), pool)?;
        for m in messages {
            if let ThinMessage::Create(name) = m {
                if let Some((_, id)) = vg.lv(name).and_then(|l| l.thin()) {
                    tpool.check_id_free(dm, id.into())?;
                }
            }
        }
        Ok(())
    }
}

/// Removes thin LV `name` from the metadata, leaving a historical record
/// of it where lvm.conf asks for one (`record_lvs_history`), as `lvremove`.
fn remove_thin_lv(s: &mut Session, name: &str) -> Result<()> {
    if crate::lvm::config::LvmConfig::load_or_default().record_lvs_history {
        s.md.record_history(name, Creation::now().time)?;
    }
    s.md.remove_lv(name)?;
    Ok(())
}

pub(super) fn pool_transaction(s: &Session, pool: &str) -> Result<u64> {
    let lv =
        s.md.vg()
            .lv(pool)
            .ok_or_else(|| SnapError::NotFound(format!("thin pool {pool}")))?;
    match lv.segments.first().map(|g| &g.kind) {
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
            Ok(*transaction_id)
        }
        _ => Err(SnapError::InvalidArgument(format!("{pool} is not a thin pool")).into()),
    }
}

/// The pool's kernel transaction id must be the metadata's, as LVM checks.
fn check_transaction(
    dm: &DmControl,
    tpool: &ThinPool,
    vg: &str,
    pool: &str,
    want: u64,
) -> Result<()> {
    if let Some(kernel) = tpool.transaction_id(dm)? {
        if kernel != want {
            return Err(crate::Error::Lvm(crate::lvm::Error::corrupt(
                "kernel state of a thin pool",
                format!(
                    "Thin pool {vg}/{pool} has unexpected transaction id {kernel}, expecting {want}"
                ),
            )));
        }
    }
    Ok(())
}

fn thin_id(id: u32) -> Result<ThinDevId> {
    ThinDevId::new_u64(id.into())
        .map_err(|_| SnapError::InvalidArgument(format!("thin device id {id} out of range")).into())
}
