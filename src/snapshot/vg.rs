//! A volume group as the snapshot layer sees it: locked reads of its
//! metadata, and where its PVs are.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::Error as SnapError;
use super::SnapshotStatus;
use crate::activate::Layer;
use crate::dm::{LvmDmName, TableLine};
use crate::error::Result;
use crate::lvm::hints::Primed;
use crate::lvm::id::VgId;
use crate::lvm::names::validate_vg_name;
use crate::lvm::scan::FoundText;
use crate::lvm::text::Style;
use crate::lvm::vg::{Creation, Lv, Metadata};
use crate::lvm::{ScanOptions, VgDisk};

/// A volume group lvsnap works on. Each operation locks it (LVM's own
/// `V_<vg>` lock), reads its newest metadata from its PVs, and commits any
/// change before unlocking, so `lvm` commands and lvsnap never interleave.
///
/// ```no_run
/// use lvsnap::snapshot::{SnapshotOptions, VolumeGroup};
/// let vg = VolumeGroup::open("vg0")?;
/// let created = vg.create_snapshot("pvc-1", "snapcontent-1", &SnapshotOptions::default())?;
/// println!("{} is {}", created.status.name, created.status.state);
/// # Ok::<(), lvsnap::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    name: String,
    scan: ScanOptions,
    /// What the last read learnt, for the next one.
    memo: Arc<Mutex<Memo>>,
}

/// What one read of a VG leaves for the next.
#[derive(Debug, Default)]
struct Memo {
    /// The VG's PVs as the last read found them, and the VG's id: the next
    /// read tries these first, as LVM's hints do, instead of every block
    /// device.
    pvs: Option<(Vec<PathBuf>, VgId)>,
    /// What [`VolumeGroup::open`] read through the persistent hints without
    /// the lock, for the first locked read to confirm and use.
    primed: Option<Primed>,
    /// The last committed text and its parsed metadata. The next read
    /// takes the text instead of reading it where the metadata area still
    /// points at the same place, size and checksum, and takes the parsed
    /// copy if the text it ends up with is byte for byte this one.
    parsed: Option<(Arc<FoundText>, Metadata)>,
    /// What went wrong after changes had landed, for [`VolumeGroup::take_warnings`].
    warnings: Vec<String>,
    /// What recovery did since [`VolumeGroup::take_recovery`] was last called.
    recovery: super::RecoveryReport,
}

/// One locked read of the VG: the on-disk handle and the parsed metadata.
pub(crate) struct Session {
    pub disk: VgDisk,
    pub md: Metadata,
    memo: Arc<Mutex<Memo>>,
    /// The generation of `md` that is exactly the committed text.
    committed: Option<u64>,
    /// The generation of `md` that was precommitted.
    precommitted: Option<u64>,
    /// The statuses of the VG's devices as recovery left them, for a
    /// report made before anything else changes (see `report.rs`).
    pub(super) live: Option<super::recover::LiveStatus>,
}

impl Drop for Session {
    /// Leaves the parsed metadata for the next read, if it is exactly what
    /// the disk holds (an operation that failed half way may have changed it
    /// in memory only). Runs while the VG is still locked.
    fn drop(&mut self) {
        if self.disk.has_precommit() {
            return;
        }
        if self.committed != Some(self.md.generation()) {
            return;
        }
        let Some(blank) = placeholder() else { return };
        let md = std::mem::replace(&mut self.md, blank);
        if let Ok(mut m) = self.memo.lock() {
            m.parsed = Some((Arc::new(self.disk.found_text()), md));
        }
    }
}

/// A tiny metadata to leave in a dropped session's place.
fn placeholder() -> Option<Metadata> {
    static BLANK: OnceLock<Option<Metadata>> = OnceLock::new();
    BLANK
        .get_or_init(|| Metadata::parse(PLACEHOLDER).ok())
        .clone()
}

const PLACEHOLDER: &str = "placeholder {\nid = \"aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa\"\n\
    seqno = 1\nformat = \"lvm2\"\nstatus = [\"READ\"]\nflags = []\nextent_size = 8192\n\
    max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\nphysical_volumes {\n}\n}\n\
    contents = \"Text Format Volume Group\"\nversion = 1\n";

impl VolumeGroup {
    /// The volume group `name`, found by scanning the system's block devices.
    /// Fails with [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if no
    /// PV holds it.
    pub fn open(name: &str) -> Result<VolumeGroup> {
        VolumeGroup::open_with(name, ScanOptions::default())
    }

    /// The volume group `name`, looking for its PVs as `scan` says.
    ///
    /// Where hints from an earlier scan hold (LVM's hints file), the
    /// VG is found by reading its hinted PVs without the lock, and the first
    /// operation's locked read confirms it: a one-shot caller (the CLI) then
    /// takes the lock once. Otherwise the VG is read under its lock here.
    pub fn open_with(name: &str, scan: ScanOptions) -> Result<VolumeGroup> {
        validate_vg_name(name).map_err(|e| SnapError::InvalidArgument(e.to_string()))?;
        let primed = match (&scan.devices, &scan.hints) {
            (None, Some(h)) => crate::lvm::hints::prime(h, name),
            _ => None,
        };
        let found = primed.is_some();
        let vg = VolumeGroup {
            name: name.to_owned(),
            scan,
            memo: Arc::new(Mutex::new(Memo {
                primed,
                ..Memo::default()
            })),
        };
        if !found {
            vg.session()?;
        }
        Ok(vg)
    }

    /// The VG's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the VG's metadata as LVM2 does before it writes: an error of
    /// kind [`Corrupt`](crate::ErrorKind::Corrupt) naming the first problem
    /// (a segment on a missing PV, extents used twice, ...) when LVM would
    /// refuse the VG. Every change to such a VG is refused; reads still
    /// report what they can.
    pub fn check(&self) -> Result<()> {
        // A read of the metadata, not an operation: no recovery (the next
        // operation runs it), so a check before an operation does not
        // survey the VG's devices twice.
        Ok(self.read_session()?.md.validate()?)
    }

    /// [`VolumeGroup::session`] for an operation that changes the VG:
    /// refused, before anything is written, when LVM2 would refuse the VG.
    pub(crate) fn write_session(&self) -> Result<Session> {
        let s = self.session()?;
        s.md.validate()?;
        Ok(s)
    }

    /// Locks the VG, reads its newest metadata and repairs what an
    /// interrupted run left.
    pub(crate) fn session(&self) -> Result<Session> {
        let mut s = self.read_session()?;
        // Whatever an interrupted run left is repaired before anything else.
        match self.recover_in(&mut s) {
            Ok(rep) if rep.is_empty() => {}
            Ok(rep) => {
                if let Ok(mut m) = self.memo.lock() {
                    m.recovery.extend(rep);
                }
            }
            Err(e) => {
                s.warn(format!(
                    "VG {}: recovery of an interrupted run failed: {e}",
                    self.name
                ));
            }
        }
        Ok(s)
    }

    /// Locks the VG and reads its newest metadata, without recovery.
    fn read_session(&self) -> Result<Session> {
        let (parsed, primed) = match self.memo.lock() {
            Ok(mut m) => (m.parsed.take(), m.primed.take()),
            Err(_) => (None, None),
        };
        let disk = self.open_disk(parsed.as_ref().map(|p| Arc::clone(&p.0)), primed)?;
        let md = match parsed {
            Some((known, md)) if known.text == disk.text() => md,
            _ => Metadata::parse(disk.text())?,
        };
        let s = Session {
            committed: Some(md.generation()),
            precommitted: None,
            live: None,
            disk,
            md,
            memo: Arc::clone(&self.memo),
        };
        Ok(s)
    }

    /// What went wrong after an operation's change had landed (a metadata
    /// copy that failed, a device that could not be cleaned up: recovery
    /// retries on the next operation), oldest first; taking them clears
    /// them. The operation itself succeeded.
    pub fn take_warnings(&self) -> Vec<String> {
        self.memo
            .lock()
            .map(|mut m| std::mem::take(&mut m.warnings))
            .unwrap_or_default()
    }

    /// What recovery repaired (and left) in the operations since this was
    /// last called; taking it clears it.
    pub fn take_recovery(&self) -> super::RecoveryReport {
        self.memo
            .lock()
            .map(|mut m| std::mem::take(&mut m.recovery))
            .unwrap_or_default()
    }

    /// Opens the VG on disk. Where the scan is of the whole system, the
    /// PVs the last read found are read first: reading every block device
    /// (every active LV among them) costs far more than the metadata itself.
    /// The hint is only taken when it yields the VG, with the id it had and
    /// all the PVs its newest metadata lists; otherwise, or on any error, the
    /// whole system is scanned, as without a hint.
    fn open_disk(&self, known: Option<Arc<FoundText>>, primed: Option<Primed>) -> Result<VgDisk> {
        let (known, primed) = match primed {
            Some(p) => (known.or(Some(Arc::new(p.known))), Some((p.devs, p.vg_id))),
            None => (known, None),
        };
        let scan = ScanOptions {
            known,
            ..self.scan.clone()
        };
        if scan.devices.is_some() {
            return Ok(VgDisk::open(&self.name, &scan)?);
        }
        let hinted = match primed {
            Some((devs, id)) => Some((VgDisk::open_devs(&self.name, devs, &scan), id)),
            None => {
                let hint = self.memo.lock().ok().and_then(|m| m.pvs.clone());
                hint.map(|(paths, id)| {
                    let opts = ScanOptions {
                        devices: Some(paths),
                        ..scan.clone()
                    };
                    (VgDisk::open(&self.name, &opts), id)
                })
            }
        };
        match hinted {
            Some((Ok(disk), id)) if disk.missing_pvs().is_empty() && disk.id() == id => {
                self.remember_pvs(&disk);
                return Ok(disk);
            }
            Some((Ok(disk), _)) => log::debug!(
                "VG {}: not as hinted (id {}, missing PVs {:?}); scanning",
                self.name,
                disk.id(),
                disk.missing_pvs()
            ),
            Some((Err(e), _)) => {
                log::debug!("VG {}: hinted PVs failed ({e}); scanning", self.name)
            }
            None => {}
        }
        let disk = VgDisk::open(&self.name, &scan)?;
        self.remember_pvs(&disk);
        Ok(disk)
    }

    /// Keeps where `disk` found the VG, for the next read to try first.
    fn remember_pvs(&self, disk: &VgDisk) {
        if let Ok(mut m) = self.memo.lock() {
            // With a PV on two devices, a hint would hide the other one.
            if !disk.duplicate_pvs().is_empty() {
                m.pvs = None;
                return;
            }
            let paths = disk.pvs().iter().map(|p| p.path.clone()).collect();
            m.pvs = Some((paths, disk.id()));
        }
    }

    /// The DM name of LV `lv` (with `layer`) in this VG.
    pub(crate) fn dm_name(&self, lv: &str, layer: Option<Layer>) -> Result<LvmDmName> {
        Ok(crate::activate::dm_name_in(&self.name, lv, layer)?)
    }
}

impl Session {
    /// Bumps seqno, stamps the header and precommits `self.md` as the new
    /// metadata; the caller then commits or reverts.
    pub fn precommit(&mut self, what: &str) -> Result<()> {
        // As LVM's vg_write: never write metadata vg_validate refuses.
        self.md.validate()?;
        self.md.bump_seqno()?;
        self.md
            .set_header(&format!("lvsnap: {what}"), &Creation::now());
        let text = self.md.to_text(Style::Raw);
        self.disk.precommit(&text)?;
        self.precommitted = Some(self.md.generation());
        Ok(())
    }

    /// Commits what [`Session::precommit`] wrote. An error means it did
    /// not land (the old metadata is committed); copies that failed after
    /// it landed are warnings.
    pub fn commit(&mut self) -> Result<()> {
        self.disk.commit_precommitted()?;
        self.committed = self.precommitted.take();
        for w in self.disk.take_warnings() {
            self.warn(w);
        }
        Ok(())
    }

    /// Commits `before` (the metadata as it was before a change that has
    /// since been committed) again, to undo that change: at the next seqno,
    /// as every write must be.
    pub fn recommit(&mut self, before: crate::lvm::vg::Metadata, what: &str) -> Result<()> {
        let committed = self.md.vg().seqno;
        self.md = before;
        while self.md.vg().seqno < committed {
            self.md.bump_seqno()?;
        }
        self.precommit(what)?;
        if let Err(e) = self.commit() {
            self.revert();
            return Err(e);
        }
        Ok(())
    }

    /// Records a problem met after the operation's change landed: logged,
    /// and kept for [`VolumeGroup::take_warnings`].
    pub fn warn(&self, w: String) {
        log::warn!("{w}");
        if let Ok(mut m) = self.memo.lock() {
            m.warnings.push(w);
        }
    }

    /// Drops a precommitted change, leaving the committed metadata as it was.
    pub fn revert(&mut self) {
        self.precommitted = None;
        if let Err(e) = self.disk.revert() {
            log::warn!("reverting precommitted metadata: {e}");
        }
    }

    /// The device-mapper table of an LV's own segments (what its store
    /// layer or an origin's data layer maps), as the activation layer
    /// plans it.
    pub fn lv_table(&self, lv: &Lv) -> Result<Vec<TableLine>> {
        let pvs = crate::activate::pv_map(self.md.vg(), &self.disk)?;
        Ok(crate::activate::lv_table(self.md.vg(), &lv.name, &pvs)?)
    }

    /// Writes zeros over the first `len` bytes of LV `lv`'s first extent,
    /// straight to its PV: a fresh COW store must start with a zero header.
    pub fn zero_lv_start(&self, lv: &Lv, len: usize) -> Result<()> {
        Ok(self.disk.zero_lv_start(self.md.vg(), lv, len)?)
    }

    /// Reads the first 512 bytes of LV `lv` straight from its PV.
    pub fn read_lv_start(&self, lv: &Lv) -> Result<Vec<u8>> {
        Ok(self.disk.read_lv_start(self.md.vg(), lv)?)
    }
}

/// Names of the volume groups found on the system's block devices, sorted.
pub fn volume_groups() -> Result<Vec<String>> {
    let pvs = crate::lvm::hints::full_scan(crate::lvm::hints::DEFAULT_HINTS.as_ref(), None)?;
    Ok(vg_names(&pvs))
}

/// The names of the VGs `pvs` hold, sorted, each once.
fn vg_names(pvs: &[crate::lvm::scan::ScannedPv]) -> Vec<String> {
    let mut names: Vec<String> = crate::lvm::scan::volume_groups(pvs)
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The status of every snapshot in every volume group on the system that
/// can be read; each that cannot is logged (`log::warn!`) and skipped, as
/// `lvs` lists the healthy VGs and warns of the rest.
pub fn all_snapshots() -> Result<Vec<SnapshotStatus>> {
    let (snaps, problems) = all_snapshots_and_problems()?;
    for p in problems {
        log::warn!("{p}");
    }
    Ok(snaps)
}

/// [`all_snapshots`], with one line per volume group or device that could
/// not be read (or is damaged, and so read only as far as it could be).
pub fn all_snapshots_and_problems() -> Result<(Vec<SnapshotStatus>, Vec<String>)> {
    let pvs = crate::lvm::scan::scan(&ScanOptions::default())?;
    let mut problems = Vec::new();
    // Devices with a label but no readable metadata name no VG: say which.
    for pv in &pvs {
        if pv.newest().is_some() {
            continue;
        }
        let errors: Vec<String> = pv
            .areas
            .iter()
            .filter_map(|a| match (&a.header, &a.committed) {
                (Err(e), _) | (_, Some(Err(e))) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        if !errors.is_empty() {
            problems.push(format!(
                "{}: no readable metadata ({})",
                pv.path.display(),
                errors.join("; ")
            ));
        }
    }
    let names = vg_names(&pvs);
    let mut out = Vec::new();
    for name in names {
        let r = VolumeGroup::open(&name).and_then(|vg| {
            if let Err(e) = vg.check() {
                problems.push(e.to_string());
            }
            vg.snapshots()
        });
        match r {
            Ok(s) => out.extend(s),
            Err(e) => problems.push(format!("volume group {name}: {e}")),
        }
    }
    Ok((out, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_parses() {
        let md = placeholder().expect("the placeholder text parses");
        assert_eq!(md.vg().name, "placeholder");
    }
}
