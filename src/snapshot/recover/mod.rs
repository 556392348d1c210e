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
//!    once it has no snapshot left, an origin target while it has some; a
//!    merge recorded but not running is started (when nothing is open);
//! 3. devices the metadata does not have (an LV id it lacks, a data layer
//!    of an LV with no snapshot, a store layer of an LV that is no COW
//!    store: [`activate::unwanted_layer`](crate::activate::unwanted_layer)) are
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

use std::collections::HashMap;
use std::fmt;

use devicemapper::{Device, DmNameBuf};

use super::vg::{Session, VolumeGroup};
use crate::activate::same_table;
use crate::dm::{DmControl, Info, LvmDmName, TableLine};
use crate::error::Result;

mod cow;
mod pending;
mod restore;
mod thin;

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

    /// How many repairs and unresolved findings it holds.
    fn len(&self) -> usize {
        self.repairs.len() + self.unresolved.len()
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
    /// Its live table's status lines, read with `info` (one ioctl).
    status: Vec<TableLine>,
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
        // The VG's devices, read once and read again only after a step
        // changed something: every change a step makes is in the report,
        // so an unchanged report means the kernel is as read. A VG of
        // hundreds of LVs is then surveyed once per operation, not four
        // times.
        let mut survey = None;
        if let Some(dm) = &dm {
            let mut devs = Survey::read(self, s, dm, &rep)?;
            if !devs.devs.is_empty() {
                self.settle_pending(s, dm, &devs.devs, &mut rep)?;
                devs.refresh(self, s, dm, &rep, false)?;
                self.fix_origins(s, dm, &devs.devs, &mut rep)?;
                devs.refresh(self, s, dm, &rep, false)?;
                self.remove_strays(s, dm, &devs.devs, &mut rep)?;
            }
            survey = Some(devs);
        }
        if let Some(dm) = &dm {
            self.undo_uncommitted_thin(s, dm, &mut rep)?;
        }
        self.finish_thin_messages(s, dm.as_ref(), &mut rep)?;
        // Not folded into step 1's walk: the thin device the metadata
        // names may exist only once the queued messages are carried out.
        // The thin steps may activate a pool for their messages without a
        // report line, so a VG with a thin pool is read again.
        if let (Some(dm), Some(devs)) = (&dm, survey.as_mut()) {
            let thin = s.md.vg().lvs.iter().any(|l| l.is_thin_pool());
            devs.refresh(self, s, dm, &rep, thin)?;
            self.remap_thin_devices(s, dm, &devs.devs, &mut rep)?;
        }
        self.remove_incomplete_restores(s, dm.as_ref(), &mut rep)?;
        // The statuses stay with the session for its report while nothing
        // changed since they were read (every change is in the report).
        s.live = survey
            .filter(|d| d.seen == rep.len())
            .map(|d| LiveStatus(d.devs.into_iter().map(|d| (d.name, d.status)).collect()));
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
            // Gone between the list and now: skip it. The status comes with
            // the info at no extra cost, and spares the steps and the report
            // an ioctl per device.
            let Ok((info, status)) = dm.info_and_status(&name) else {
                continue;
            };
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
                status,
            });
        }
        Ok(out)
    }
}

/// The status lines of the VG's devices as recovery last read them, by
/// name: what the kernel had when recovery left the VG under the session's
/// lock.
pub(crate) struct LiveStatus(HashMap<DmNameBuf, Vec<TableLine>>);

impl LiveStatus {
    /// The status lines of `name` if it is one of the VG's devices.
    pub(crate) fn get(&self, name: &devicemapper::DmName) -> Option<&[TableLine]> {
        self.0.get(name).map(Vec::as_slice)
    }
}

/// The VG's devices as last read, and the report's length then.
struct Survey {
    devs: Vec<VgDev>,
    seen: usize,
}

impl Survey {
    fn read(vg: &VolumeGroup, s: &Session, dm: &DmControl, rep: &RecoveryReport) -> Result<Self> {
        Ok(Survey {
            devs: vg.vg_devices(s, dm)?,
            seen: rep.len(),
        })
    }

    /// Reads the devices again if the report grew since they were read,
    /// or if `always`.
    fn refresh(
        &mut self,
        vg: &VolumeGroup,
        s: &Session,
        dm: &DmControl,
        rep: &RecoveryReport,
        always: bool,
    ) -> Result<()> {
        if always || rep.len() != self.seen {
            *self = Survey::read(vg, s, dm, rep)?;
        }
        Ok(())
    }
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
