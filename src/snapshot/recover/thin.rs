//! Step 4 of recovery: thin leftovers (pool messages of uncommitted or
//! committed metadata, a thin LV mapping another thin device).

use std::collections::{HashMap, HashSet};

use devicemapper::ThinDevId;

use super::super::vg::{Session, VolumeGroup};
use super::{RecoveryReport, RepairKind, VgDev, lv_names_by_id, same_table, wanted_table};
use crate::activate::{self, ThinPool};
use crate::dm::{DmControl, Suspend, ThinPoolMessage};
use crate::error::Result;
use crate::lvm::vg::{SegmentKind, ThinMessage};

impl VolumeGroup {
    /// Step 4, first half: a run killed between sending its pool messages
    /// and the commit of the metadata that records them (a group snapshot
    /// with thin members) left the pool with devices the committed
    /// metadata does not know, and maybe its transaction id one ahead, as
    /// its precommitted text says. Not committed, the operation did not
    /// happen: each device its `create` messages made is deleted (none the
    /// committed metadata uses), then the transaction id goes back. A
    /// precommitted `delete` cannot be undone: that is reported.
    pub(super) fn undo_uncommitted_thin(
        &self,
        s: &mut Session,
        dm: &DmControl,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let Some(text) = s.disk.stale_precommit() else {
            return Ok(());
        };
        let pre = match crate::lvm::vg::Metadata::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("VG {}: unreadable stale precommit ({e})", self.name());
                return Ok(());
            }
        };
        let committed = s.md.vg();
        let used: HashSet<u32> = committed
            .lvs
            .iter()
            .filter_map(|l| l.thin().map(|(_, id)| id))
            .collect();
        let mut clean = true;
        for pl in &pre.vg().lvs {
            let Some(SegmentKind::ThinPool {
                transaction_id: ptid,
                messages,
                ..
            }) = pl.segments.first().map(|g| &g.kind)
            else {
                continue;
            };
            let ctid = match committed
                .lv(&pl.name)
                .and_then(|l| l.segments.first())
                .map(|g| &g.kind)
            {
                Some(SegmentKind::ThinPool {
                    transaction_id,
                    messages: cm,
                    ..
                }) if cm.is_empty() => *transaction_id,
                _ => continue,
            };
            if messages.is_empty() || ctid.checked_add(1) != Some(*ptid) {
                continue;
            }
            let pool = &pl.name;
            let tpool = ThinPool::new(self.name(), pool)?;
            if !tpool.is_active(dm)? {
                continue;
            }
            let kernel = match tpool.transaction_id(dm)? {
                Some(t) => t,
                None => {
                    rep.left(format!("thin pool {}/{pool} has failed", self.name()));
                    clean = false;
                    continue;
                }
            };
            if kernel != ctid && kernel != *ptid {
                continue;
            }
            if messages.iter().any(|m| matches!(m, ThinMessage::Delete(_))) {
                if kernel == *ptid {
                    rep.left(format!(
                        "Thin pool {}/{pool} has unexpected transaction id {kernel}, expecting \
                         {ctid}: an uncommitted run deleted thin devices in it",
                        self.name()
                    ));
                    clean = false;
                }
                continue;
            }
            let ids: Vec<u32> = messages
                .iter()
                .filter_map(|m| match m {
                    ThinMessage::Create(n) => pre.vg().lv(n).and_then(|l| l.thin()).map(|t| t.1),
                    ThinMessage::Delete(_) => None,
                })
                .filter(|id| !used.contains(id))
                .collect();
            // Not sent (the run died before its messages): nothing to undo.
            let mut undid = false;
            for id in ids.iter().rev() {
                let id = ThinDevId::new_u64((*id).into()).map_err(|_| {
                    super::super::Error::InvalidArgument(format!(
                        "thin device id {id} out of range"
                    ))
                })?;
                match tpool.send(dm, &ThinPoolMessage::Delete(id)) {
                    Ok(()) => undid = true,
                    Err(e) if e.errno() == Some(libc::ENODATA) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if kernel == *ptid {
                tpool.set_transaction_id(dm, kernel, ctid)?;
                undid = true;
            }
            if !undid {
                continue;
            }
            rep.did(
                RepairKind::UndidUncommittedThinMessages,
                format!("{}/{pool}", self.name()),
            );
        }
        if clean {
            s.disk.drop_stale_precommit()?;
        }
        Ok(())
    }

    /// Step 4: thin pool messages queued in the metadata.
    pub(super) fn finish_thin_messages(
        &self,
        s: &mut Session,
        dm: Option<&DmControl>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let pools: Vec<(String, u64, Vec<ThinMessage>)> =
            s.md.vg()
                .lvs
                .iter()
                .filter_map(|l| match l.segments.first().map(|g| &g.kind) {
                    Some(SegmentKind::ThinPool {
                        transaction_id,
                        messages,
                        ..
                    }) if !messages.is_empty() => {
                        Some((l.name.clone(), *transaction_id, messages.clone()))
                    }
                    _ => None,
                })
                .collect();
        for (pool, tid, messages) in pools {
            let Some(dm) = dm else {
                rep.left(format!(
                    "thin pool {}/{pool} has queued messages",
                    self.name()
                ));
                continue;
            };
            let tpool = ThinPool::new(self.name(), &pool)?;
            if !tpool.is_active(dm)? {
                match self.replay_through_activation(s, dm, &pool) {
                    Ok(()) => rep.did(
                        RepairKind::FinishedThinMessages,
                        format!("{}/{pool}", self.name()),
                    ),
                    Err(e) => rep.left(format!(
                        "thin pool {}/{pool} has queued messages that cannot be carried out: {e}",
                        self.name()
                    )),
                }
                continue;
            }
            let kernel = match tpool.transaction_id(dm)? {
                Some(t) => t,
                None => {
                    rep.left(format!("thin pool {}/{pool} has failed", self.name()));
                    continue;
                }
            };
            if kernel.checked_add(1) == Some(tid) {
                self.replay_messages(s, dm, &tpool, &messages)?;
                tpool.set_transaction_id(dm, kernel, tid)?;
            } else if kernel != tid {
                rep.left(format!(
                    "Thin pool {}/{pool} has unexpected transaction id {kernel}, expecting {tid}",
                    self.name()
                ));
                continue;
            }
            s.md.clear_thin_messages(&pool)?;
            s.precommit(&format!("recovery: queued messages of {pool} done"))?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            rep.did(
                RepairKind::FinishedThinMessages,
                format!("{}/{pool}", self.name()),
            );
        }
        Ok(())
    }

    /// Step 4, second half: each active thin LV maps the thin device the
    /// metadata gives it, once its pool has no messages queued.
    pub(super) fn remap_thin_devices(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        let mut pvs = None;
        let mut live = None;
        for d in devs
            .iter()
            .filter(|d| d.layer.is_none() && d.info.live_table)
        {
            let Some(lv) = by_id.get(&d.lv_id) else {
                continue;
            };
            let Some((pool, _)) = vg.lv(lv).and_then(|l| l.thin()) else {
                continue;
            };
            let queued = matches!(
                vg.lv(pool).and_then(|p| p.segments.first()).map(|g| &g.kind),
                Some(SegmentKind::ThinPool { messages, .. }) if !messages.is_empty()
            );
            if queued {
                continue;
            }
            if pvs.is_none() {
                pvs = Some(crate::activate::pv_map(vg, &s.disk)?);
                live = Some(dm.list()?.into_iter().collect::<HashMap<_, _>>());
            }
            let (Some(pvs), Some(live)) = (&pvs, &live) else {
                continue;
            };
            let Some(want) = wanted_table(vg, pvs, live, lv, &d.name) else {
                continue;
            };
            // Only a plain thin table over another thin device is remapped.
            let thin = activate::is_thin_lv_table;
            match dm.table(&d.name) {
                Ok(have) if thin(&have) && thin(&want) && !same_table(&want, &have) => {}
                _ => continue,
            }
            dm.load(&d.name, &want, d.info.read_only)?;
            let mut g = dm.suspend_guard(&d.name, Suspend::FLUSH)?;
            g.keep_on_drop();
            g.resume()?;
            rep.did(RepairKind::RemappedThinDevice, &*d.name);
        }
        Ok(())
    }

    /// Sends queued messages to an active pool, an active origin of a
    /// snapshot suspended around its message.
    fn replay_messages(
        &self,
        s: &Session,
        dm: &DmControl,
        tpool: &ThinPool,
        messages: &[ThinMessage],
    ) -> Result<()> {
        let vg = s.md.vg();
        for m in messages {
            let Some(q) = activate::queued_message(vg, m)? else {
                continue;
            };
            let odev = q.origin.map(|o| self.dm_name(o, None)).transpose()?;
            let g = match &odev {
                Some(o) if dm.exists(o)? => Some(dm.suspend_guard(o, Suspend::FREEZE)?),
                _ => None,
            };
            let r = tpool.replay(dm, &q.message);
            if let Some(g) = g {
                g.resume()?;
            }
            r?;
        }
        Ok(())
    }

    /// An inactive pool: activating it carries out its messages (as LVM
    /// does), then they are dropped from the metadata and the pool goes.
    fn replay_through_activation(&self, s: &mut Session, dm: &DmControl, pool: &str) -> Result<()> {
        let pvs = crate::activate::pv_map(s.md.vg(), &s.disk)?;
        let opts = crate::activate::ActivateOptions::default();
        crate::activate::activate(dm, s.md.vg(), &pvs, pool, &opts)?;
        let done = (|| -> Result<()> {
            s.md.clear_thin_messages(pool)?;
            s.precommit(&format!("recovery: queued messages of {pool} done"))?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = crate::activate::deactivate(dm, s.md.vg(), pool) {
            log::warn!("deactivating thin pool {pool} again: {e}");
        }
        done
    }
}
