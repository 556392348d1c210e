//! Recovery of what an interrupted run left, as LVM's activation
//! reconciles the kernel with the metadata: run at the start of every
//! operation on a VG (under its lock), and on demand by
//! [`VolumeGroup::recover`].
//!
//! The committed metadata is the truth. In order:
//! 1. every device of the VG (DM UUID `LVM-<vgid>…`) that is suspended or
//!    has a table waiting in its inactive slot is resumed: with that table
//!    if it is the one the committed metadata gives the device (the run
//!    died after its commit), else with its live one (the table dropped);
//! 2. each active origin gets the top table the metadata gives it: plain
//!    once it has no snapshot left, `snapshot-origin` while it has some; a
//!    merge recorded but not running is started (when nothing is open);
//! 3. devices the metadata does not have (an LV id it lacks, a `-real` of
//!    an LV with no snapshot, a `-cow` of an LV that is no COW store) are
//!    removed, users before what they use, with the origin suspended
//!    around a snapshot's removal;
//! 4. thin pool messages a killed run sent under metadata it only
//!    precommitted (LVM's order: the new transaction id precommitted,
//!    messages sent, then the commit) are undone: the devices they made
//!    deleted, the pool's transaction id moved back to the committed one;
//!    thin pool messages queued in the committed metadata are carried out
//!    in the pool (or found done) and dropped from the metadata; then an
//!    active thin LV whose table maps another thin device than the
//!    metadata names (a kept snapshot of a thin rollback stopped before
//!    its swap) is given that device;
//! 5. a restore target still marked incomplete is removed.

use std::collections::{HashMap, HashSet};
use std::fmt;

use devicemapper::{Device, DmNameBuf};

use super::vg::{Session, VolumeGroup};
use crate::activate::Layer;
use crate::dm::{self, DmControl, Info, LvmDmName, Suspend, TableLine};
use crate::error::Result;
use crate::lvm::vg::{SegmentKind, ThinMessage};

/// What one repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RepairKind {
    /// A suspended device was resumed.
    Resumed,
    /// A table left loaded in a device's inactive slot was dropped.
    DroppedInactiveTable,
    /// An origin got back the table the metadata gives it.
    RestoredOriginTable,
    /// A device the metadata does not know was removed.
    RemovedStrayDevice,
    /// A merge recorded in the metadata but not running was started.
    StartedMerge,
    /// Thin pool messages queued in the metadata were carried out.
    FinishedThinMessages,
    /// Thin pool messages sent under metadata that was never committed
    /// were undone.
    UndidUncommittedThinMessages,
    /// An active thin LV was given the thin device the metadata names.
    RemappedThinDevice,
    /// A restore target whose copy never completed was removed.
    RemovedIncompleteRestore,
}

impl fmt::Display for RepairKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepairKind::Resumed => "resumed a suspended device",
            RepairKind::DroppedInactiveTable => "dropped a pending inactive table",
            RepairKind::RestoredOriginTable => "gave an origin its table back",
            RepairKind::RemovedStrayDevice => "removed a stray device",
            RepairKind::StartedMerge => "started a recorded merge",
            RepairKind::FinishedThinMessages => "carried out queued thin pool messages",
            RepairKind::UndidUncommittedThinMessages => {
                "undid thin pool messages of metadata never committed"
            }
            RepairKind::RemappedThinDevice => {
                "gave a thin LV the thin device it has in the metadata"
            }
            RepairKind::RemovedIncompleteRestore => "removed an incomplete restore target",
        })
    }
}

/// One repair: what was done, and to what (a device or LV name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// What was done.
    pub kind: RepairKind,
    /// The device-mapper device or LV it was done to.
    pub target: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.target)
    }
}

/// What recovery found left by an interrupted run and what it did about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The repairs made, in order.
    pub repairs: Vec<Repair>,
    /// What was found but could not be repaired now, one line each (an
    /// open device, a snapshot whose devices are gone).
    pub unresolved: Vec<String>,
}

impl RecoveryReport {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.repairs.is_empty() && self.unresolved.is_empty()
    }

    fn did(&mut self, kind: RepairKind, target: impl fmt::Display) {
        let r = Repair {
            kind,
            target: target.to_string(),
        };
        // Info, not warn: the report carries it to the caller (the CLI
        // prints it once, as "recovered ...").
        log::info!("recovery: {r}");
        self.repairs.push(r);
    }

    fn left(&mut self, what: String) {
        log::info!("recovery: {what}");
        if !self.unresolved.contains(&what) {
            self.unresolved.push(what);
        }
    }

    pub(super) fn extend(&mut self, other: RecoveryReport) {
        self.repairs.extend(other.repairs);
        for u in other.unresolved {
            if !self.unresolved.contains(&u) {
                self.unresolved.push(u);
            }
        }
    }
}

/// A device of the VG as the kernel has it.
struct VgDev {
    name: DmNameBuf,
    lv_id: String,
    layer: Option<String>,
    info: Info,
}

impl VolumeGroup {
    /// Finds and repairs what interrupted runs left in the kernel and in
    /// the metadata of this VG (see the module docs of `recover`), and says
    /// what it did. Every operation does this first; call it to repair
    /// without doing anything else.
    pub fn recover(&self) -> Result<RecoveryReport> {
        let _s = self.session()?;
        Ok(self.take_recovery())
    }

    /// Runs recovery in a session just opened.
    pub(super) fn recover_in(&self, s: &mut Session) -> Result<RecoveryReport> {
        let mut rep = RecoveryReport::default();
        // Repairs follow the metadata; metadata LVM would refuse cannot be
        // trusted to say which device is which, so nothing is touched.
        if let Some(problem) = s.md.damage() {
            // The refusal that follows names the damage; this is detail.
            log::debug!(
                "VG {}: no recovery on damaged metadata ({problem})",
                self.name()
            );
            return Ok(rep);
        }
        let dm = match DmControl::shared() {
            Ok(dm) => Some(dm),
            Err(e) => {
                log::debug!("no device-mapper ({e}); recovering metadata only");
                None
            }
        };
        if let Some(dm) = &dm {
            let devs = self.vg_devices(s, dm)?;
            if !devs.is_empty() {
                self.settle_pending(s, dm, &devs, &mut rep)?;
                let devs = self.vg_devices(s, dm)?;
                self.fix_origins(s, dm, &devs, &mut rep)?;
                let devs = self.vg_devices(s, dm)?;
                self.remove_strays(s, dm, &devs, &mut rep)?;
            }
        }
        if let Some(dm) = &dm {
            self.undo_uncommitted_thin(s, dm, &mut rep)?;
        }
        self.finish_thin_messages(s, dm.as_ref(), &mut rep)?;
        if let Some(dm) = &dm {
            let devs = self.vg_devices(s, dm)?;
            self.remap_thin_devices(s, dm, &devs, &mut rep)?;
        }
        self.remove_incomplete_restores(s, dm.as_ref(), &mut rep)?;
        Ok(rep)
    }

    /// The devices of this VG: named `<vg>-…` with a UUID `LVM-<vgid>…`.
    fn vg_devices(&self, s: &Session, dm: &DmControl) -> Result<Vec<VgDev>> {
        let prefix = format!("LVM-{}", s.md.vg().id.as_str());
        let mut out = Vec::new();
        for (name, _) in dm.list()? {
            match LvmDmName::split(&name.to_string()) {
                Some((vg, _, _)) if vg == self.name() => {}
                _ => continue,
            }
            // Gone between the list and now: skip it.
            let Ok(info) = dm.info(&name) else { continue };
            let Some(rest) = info.uuid.as_deref().and_then(|u| u.strip_prefix(&prefix)) else {
                continue;
            };
            let (lv_id, layer) = match rest.split_once('-') {
                Some((id, layer)) => (id.to_owned(), Some(layer.to_owned())),
                None => (rest.to_owned(), None),
            };
            out.push(VgDev {
                name,
                lv_id,
                layer,
                info,
            });
        }
        Ok(out)
    }

    /// Step 1: no device stays suspended or with a pending table. A table
    /// waiting in a device's inactive slot is the one the committed
    /// metadata gives it when the run died after its commit (LVM commits
    /// with the devices suspended and the new tables loaded): then it goes
    /// live; otherwise it is dropped and the device resumes as it was.
    fn settle_pending(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        let live: HashMap<DmNameBuf, Device> = dm.list()?.into_iter().collect();
        let pvs = crate::activate::pv_map(vg, &s.disk).ok();
        // Layers first, then snapshots, origins last: LVM's resume order.
        let mut order: Vec<&VgDev> = devs.iter().collect();
        order.sort_by_key(|d| {
            let name = by_id.get(&d.lv_id).map(String::as_str).unwrap_or("");
            (d.layer.is_none(), vg.is_origin(name))
        });
        // Pending tables not wanted go first: a snapshot cannot resume
        // while a merge table loaded over its store waits in its origin.
        let mut pending = Vec::new();
        for d in order {
            if !d.info.suspended && !d.info.inactive_table && d.info.live_table {
                continue;
            }
            let lv = by_id.get(&d.lv_id).map(String::as_str);
            let kept = match (d.info.inactive_table, lv, &pvs) {
                (true, Some(lv), Some(pvs)) => {
                    wanted_table(vg, pvs, &live, lv, &d.name).and_then(|want| {
                        dm.inactive_table(&d.name)
                            .ok()
                            .filter(|have| same_table(&want, have))
                    })
                }
                _ => None,
            };
            let keep = kept.is_some();
            if d.info.inactive_table && !keep {
                dm.clear_inactive(&d.name)?;
                rep.did(RepairKind::DroppedInactiveTable, &*d.name);
            }
            // Made but never resumed, and not what the metadata wants: it
            // maps nothing, yet LVM counts it active (and refuses to
            // activate the LV's users): removed.
            if d.info.live_table || keep {
                let merge =
                    kept.is_some_and(|t| t.iter().any(|l| l.target_type == dm::SNAPSHOT_MERGE));
                pending.push((d, merge));
            } else if d.info.open_count == 0 {
                dm.remove(&d.name)?;
                rep.did(RepairKind::RemovedStrayDevice, &*d.name);
            }
        }
        // A merging origin resumes before its snapshot: that resume hands
        // the exceptions over from the suspended snapshot; resuming the
        // snapshot first (with its error table) would cancel the handover.
        pending.sort_by_key(|&(d, merge)| match (d.layer.is_some(), merge) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        });
        let mut pending: Vec<&VgDev> = pending.into_iter().map(|(d, _)| d).collect();
        // Resumed in that order, a device the kernel refuses now retried
        // after the others.
        loop {
            let mut left = Vec::new();
            let mut last = None;
            for d in pending.iter().copied() {
                match dm.resume(&d.name) {
                    Ok(()) => rep.did(RepairKind::Resumed, &*d.name),
                    Err(e) => {
                        last = Some(e);
                        left.push(d);
                    }
                }
            }
            if left.is_empty() {
                break;
            }
            if left.len() == pending.len() {
                for d in &left {
                    rep.left(format!(
                        "{} stays suspended: {}",
                        &*d.name,
                        last.as_ref().map(|e| e.to_string()).unwrap_or_default()
                    ));
                }
                break;
            }
            pending = left;
        }
        // A run that died between a resume and making the node (no udev)
        // left a live device without its /dev/mapper node or link.
        for d in devs {
            let Some(lv) = by_id.get(&d.lv_id) else {
                continue;
            };
            if dm::node_path(&d.name).exists() || !dm.info(&d.name).is_ok_and(|i| i.live_table) {
                continue;
            }
            if let Err(e) = dm::ensure_node(&d.name, d.info.device) {
                log::warn!("recovery: node of {}: {e}", &*d.name);
            }
            if d.layer.is_none() && vg.is_visible(lv) {
                self.make_link(lv);
            }
        }
        Ok(())
    }

    /// Step 2: each active origin's top table as the metadata gives it.
    fn fix_origins(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        for d in devs.iter().filter(|d| d.layer.is_none()) {
            let Some(lv) = by_id.get(&d.lv_id) else {
                continue;
            };
            let Ok(table) = dm.table(&d.name) else {
                continue;
            };
            let ty = match table.as_slice() {
                [l] => l.target_type.as_str(),
                _ => "",
            };
            if ty != dm::SNAPSHOT_ORIGIN && ty != dm::SNAPSHOT_MERGE {
                if vg.is_origin(lv) {
                    let snaps: Vec<String> =
                        vg.snapshots_of(lv).into_iter().map(|c| c.name).collect();
                    rep.left(format!(
                        "origin {}/{lv} is active without its snapshot layer; snapshot(s) {} \
                         no longer see its writes: delete them",
                        self.name(),
                        snaps.join(", ")
                    ));
                }
                continue;
            }
            let snaps = vg.snapshots_of(lv);
            let merging = snaps.iter().find(|c| c.merging);
            let real = dm::layer_name(&d.name, Layer::Real.as_str())?;
            let real_dev = match devs.iter().find(|x| *x.name == *real) {
                Some(x) => x.info.device,
                None => {
                    rep.left(format!(
                        "origin {} has a {ty} table but no {}",
                        &*d.name, &*real
                    ));
                    continue;
                }
            };
            let want: Option<Vec<TableLine>> = if snaps.is_empty() {
                // No snapshot left: plain again, with the table -real has.
                Some(dm.table(&real)?)
            } else if merging.is_none() && ty == dm::SNAPSHOT_MERGE {
                let size = dm::table_size(&table);
                Some(vec![origin_line(size, real_dev)])
            } else {
                None
            };
            if let Some(want) = want {
                let ro = d.info.read_only;
                dm.load(&d.name, &want, ro)?;
                let mut g = dm.suspend_guard(&d.name, Suspend::FLUSH)?;
                g.keep_on_drop();
                g.resume()?;
                rep.did(RepairKind::RestoredOriginTable, &*d.name);
                continue;
            }
            if let (Some(m), true) = (merging, ty == dm::SNAPSHOT_ORIGIN) {
                let snap_dev = self.dm_name(&m.name, None)?;
                let open = d.info.open_count > 0
                    || devs
                        .iter()
                        .any(|x| *x.name == *snap_dev.as_dm_name() && x.info.open_count > 0);
                if open {
                    // Deferred, as LVM defers it: not a leftover.
                    log::debug!(
                        "merge of {} into {lv} waits for its devices to close",
                        m.name
                    );
                    continue;
                }
                match crate::activate::CowDevices::open(dm, &d.name, &snap_dev)
                    .and_then(|c| c.start_merge(dm))
                {
                    Ok(_) => rep.did(
                        RepairKind::StartedMerge,
                        format!("{}/{}", self.name(), m.name),
                    ),
                    Err(e) => rep.left(format!(
                        "merge of {}/{} into {lv} is recorded but cannot start: {e}",
                        self.name(),
                        m.name
                    )),
                }
            }
        }
        Ok(())
    }

    /// Step 3: devices the metadata does not have, removed users first.
    fn remove_strays(
        &self,
        s: &Session,
        dm: &DmControl,
        devs: &[VgDev],
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let vg = s.md.vg();
        let by_id = lv_names_by_id(s);
        let stray = |d: &VgDev| -> bool {
            let Some(lv) = by_id.get(&d.lv_id) else {
                return true;
            };
            match d.layer.as_deref().and_then(Layer::parse) {
                Some(Layer::Real) => !vg.is_origin(lv),
                Some(Layer::Cow) => vg.cow_snapshot(lv).is_none(),
                // A pool's data or metadata layer left without its pool (a
                // deactivation or activation cut short): LVM counts the
                // component active and refuses to activate the pool.
                Some(Layer::Tmeta | Layer::Tdata) => {
                    let pool = vg.lvs.iter().find(|p| {
                        matches!(p.segments.first().map(|g| &g.kind),
                            Some(SegmentKind::ThinPool { metadata, pool: data, .. })
                                if metadata == lv || data == lv)
                    });
                    match pool.map(|p| self.dm_name(&p.name, Some(Layer::Tpool))) {
                        Some(Ok(t)) => !devs.iter().any(|x| *x.name == *t.as_dm_name()),
                        _ => false,
                    }
                }
                _ => false,
            }
        };
        // A snapshot device no metadata snapshot uses is stray too, and so
        // is what it uses.
        let mut left: Vec<&VgDev> = devs.iter().filter(|d| stray(d)).collect();
        let mut done: HashSet<DmNameBuf> = HashSet::new();
        loop {
            let mut progress = false;
            for d in &left {
                if done.contains(&d.name) {
                    continue;
                }
                let Ok(info) = dm.info(&d.name) else {
                    done.insert(d.name.clone());
                    continue;
                };
                if info.open_count > 0 {
                    continue;
                }
                self.remove_one(dm, devs, &d.name)?;
                done.insert(d.name.clone());
                progress = true;
                if d.layer.is_none() {
                    if let Some((_, lv, None)) = LvmDmName::split(&d.name.to_string()) {
                        if vg.lv(&lv).is_none() {
                            self.remove_link(&lv);
                        }
                    }
                }
                rep.did(RepairKind::RemovedStrayDevice, &*d.name);
            }
            if !progress {
                break;
            }
        }
        left.retain(|d| !done.contains(&d.name));
        for d in left {
            rep.left(format!(
                "stray device {} is open; close it and run any lvsnap command on {}",
                &*d.name,
                self.name()
            ));
        }
        Ok(())
    }

    /// Removes `name`; a `snapshot` device with its origin suspended.
    fn remove_one(&self, dm: &DmControl, devs: &[VgDev], name: &DmNameBuf) -> Result<()> {
        let real = match dm.table(name).ok().as_deref() {
            Some([l]) if l.target_type == dm::SNAPSHOT => {
                l.params.split_whitespace().next().and_then(parse_dev)
            }
            _ => None,
        };
        let origin = real.and_then(|r| {
            devs.iter().find(|o| {
                o.layer.is_none()
                    && o.name != *name
                    && matches!(dm.table(&o.name).ok().as_deref(),
                        Some([l]) if l.target_type == dm::SNAPSHOT_ORIGIN
                            && l.params.split_whitespace().next().and_then(parse_dev) == Some(r))
            })
        });
        match origin {
            Some(o) => {
                let g = dm.suspend_guard(&o.name, Suspend::FLUSH)?;
                let r = dm.remove(name);
                g.resume()?;
                r?;
            }
            None => dm.remove(name)?,
        }
        Ok(())
    }

    /// Step 4, first half: a run killed between sending its pool messages
    /// and the commit of the metadata that records them (a group snapshot
    /// with thin members) left the pool with devices the committed
    /// metadata does not know, and maybe its transaction id one ahead, as
    /// its precommitted text says. Not committed, the operation did not
    /// happen: each device its `create` messages made is deleted (none the
    /// committed metadata uses), then the transaction id goes back. A
    /// precommitted `delete` cannot be undone: that is reported.
    fn undo_uncommitted_thin(
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
        let used: HashSet<u64> = committed
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
            let tpool = self.dm_name(pool, Some(Layer::Tpool))?.into_dm_name();
            if !dm.exists(&tpool)? {
                continue;
            }
            let kernel = match dm::thin_pool_status(dm, &tpool)? {
                devicemapper::ThinPoolStatus::Working(w) => w.transaction_id,
                _ => {
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
            let ids: Vec<u64> = messages
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
                match dm.message(&tpool, &format!("delete {id}")) {
                    Ok(_) => undid = true,
                    Err(e) if e.errno() == Some(libc::ENODATA) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if kernel == *ptid {
                dm::thin_set_transaction_id(dm, &tpool, kernel, ctid)?;
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
    fn finish_thin_messages(
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
            let tpool = self.dm_name(&pool, Some(Layer::Tpool))?.into_dm_name();
            if !dm.exists(&tpool)? {
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
            let kernel = match dm::thin_pool_status(dm, &tpool)? {
                devicemapper::ThinPoolStatus::Working(w) => w.transaction_id,
                _ => {
                    rep.left(format!("thin pool {}/{pool} has failed", self.name()));
                    continue;
                }
            };
            if kernel.checked_add(1) == Some(tid) {
                self.replay_messages(s, dm, &tpool, &messages)?;
                dm::thin_set_transaction_id(dm, &tpool, kernel, tid)?;
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
    fn remap_thin_devices(
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
            let thin = |t: &[TableLine]| matches!(t, [l] if l.target_type == "thin");
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
        tpool: &DmNameBuf,
        messages: &[ThinMessage],
    ) -> Result<()> {
        let vg = s.md.vg();
        for m in messages {
            match m {
                ThinMessage::Delete(id) => {
                    dm::thin_message_replay(dm, tpool, &format!("delete {id}"))?;
                }
                ThinMessage::Create(name) => {
                    let Some(thin) = vg.lv(name) else { continue };
                    let Some((_, id)) = thin.thin() else { continue };
                    match thin.thin_origin() {
                        None => {
                            dm::thin_message_replay(dm, tpool, &format!("create_thin {id}"))?;
                        }
                        Some(o) => {
                            let Some((_, oid)) = vg.lv(o).and_then(|l| l.thin()) else {
                                continue;
                            };
                            let odev = self.dm_name(o, None)?;
                            let g = if dm.exists(&odev)? {
                                Some(dm.suspend_guard(&odev, Suspend::FREEZE)?)
                            } else {
                                None
                            };
                            let r = dm::thin_message_replay(
                                dm,
                                tpool,
                                &format!("create_snap {id} {oid}"),
                            );
                            if let Some(g) = g {
                                g.resume()?;
                            }
                            r?;
                        }
                    }
                }
            }
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

    /// Step 5: restore targets still marked incomplete.
    fn remove_incomplete_restores(
        &self,
        s: &mut Session,
        dm: Option<&DmControl>,
        rep: &mut RecoveryReport,
    ) -> Result<()> {
        let marked: Vec<String> =
            s.md.vg()
                .lvs
                .iter()
                .filter(|l| l.tags.iter().any(|t| t == super::RESTORE_INCOMPLETE_TAG))
                .map(|l| l.name.clone())
                .collect();
        for lv in marked {
            // A restore running now (in another process) holds the VG lock
            // only at its start and end; its target is open while it copies.
            let dev = self.dm_name(&lv, None)?;
            if let Some(dm) = dm {
                if dm.exists(&dev)? && dm.info(&dev)?.open_count > 0 {
                    continue;
                }
            }
            match self.remove_restore_target(s, dm, &lv) {
                Ok(()) => rep.did(
                    RepairKind::RemovedIncompleteRestore,
                    format!("{}/{lv}", self.name()),
                ),
                Err(e) => rep.left(format!(
                    "incomplete restore target {}/{lv} cannot be removed: {e}",
                    self.name()
                )),
            }
        }
        Ok(())
    }
}

/// The `snapshot-origin` line over `real`.
fn origin_line(size: devicemapper::Sectors, real: Device) -> TableLine {
    use devicemapper::TargetParams;
    TableLine::new(
        devicemapper::Sectors(0),
        size,
        dm::SNAPSHOT_ORIGIN,
        dm::SnapshotOriginTargetParams { real }.param_str(),
    )
}

fn parse_dev(s: &str) -> Option<Device> {
    let (a, b) = s.split_once(':')?;
    Some(Device {
        major: a.parse().ok()?,
        minor: b.parse().ok()?,
    })
}

/// LV names by LV id without dashes (as DM UUIDs carry them).
fn lv_names_by_id(s: &Session) -> HashMap<String, String> {
    s.md.vg()
        .lvs
        .iter()
        .map(|l| (l.id.as_str().to_owned(), l.name.clone()))
        .collect()
}

/// The table the committed metadata gives device `name` of LV `lv`, as
/// LVM's activation plans it, with devices resolved through `live`.
fn wanted_table(
    vg: &crate::lvm::vg::Vg,
    pvs: &crate::activate::PvMap,
    live: &HashMap<DmNameBuf, Device>,
    lv: &str,
    name: &DmNameBuf,
) -> Option<Vec<TableLine>> {
    let plan = crate::activate::plan(vg, lv).ok()?;
    let d = plan.device(name)?;
    let lookup = |n: &devicemapper::DmName| live.get(n).copied();
    d.table
        .iter()
        .map(|l| l.resolve(vg, pvs, &lookup).ok())
        .collect()
}

/// Tables compared as the kernel prints them: it adds trailing spaces, and
/// a `snapshot`/`snapshot-merge` table waiting for an exception handover
/// shows chunk size 0 until its resume (dm-snap's constructor zeroes it).
fn same_table(want: &[TableLine], have: &[TableLine]) -> bool {
    want.len() == have.len()
        && want.iter().zip(have).all(|(x, y)| {
            let snap = x.target_type == dm::SNAPSHOT || x.target_type == dm::SNAPSHOT_MERGE;
            let (xs, ys): (Vec<&str>, Vec<&str>) = (
                x.params.split_whitespace().collect(),
                y.params.split_whitespace().collect(),
            );
            x.start == y.start
                && x.length == y.length
                && x.target_type == y.target_type
                && xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(&ys)
                    .enumerate()
                    .all(|(i, (a, b))| a == b || (snap && i == 3 && *b == "0"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ty: &str, params: &str) -> TableLine {
        TableLine::new(
            devicemapper::Sectors(0),
            devicemapper::Sectors(64),
            ty,
            params.to_owned(),
        )
    }

    #[test]
    fn a_table_awaiting_handover_is_the_one_wanted() {
        let want = [line(dm::SNAPSHOT_MERGE, "254:3 254:4 P 8")];
        assert!(same_table(
            &want,
            &[line(dm::SNAPSHOT_MERGE, "254:3 254:4 P 0 ")]
        ));
        assert!(same_table(
            &want,
            &[line(dm::SNAPSHOT_MERGE, "254:3 254:4 P 8")]
        ));
        assert!(!same_table(
            &want,
            &[line(dm::SNAPSHOT_MERGE, "254:3 254:5 P 0")]
        ));
        assert!(!same_table(&want, &[line(dm::SNAPSHOT, "254:3 254:4 P 0")]));
        let lin = [line("linear", "254:1 0")];
        assert!(!same_table(&lin, &[line("linear", "254:1 8")]));
    }
}
