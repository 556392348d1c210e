//! The VG-level raw API: lock a volume group, find its PVs, read its newest
//! metadata text, and commit new text to every metadata area the way LVM does.
//!
//! A commit runs in three phases, each flushed to the devices before the next:
//! the text goes into every area's circular buffer after the committed copy
//! (never over it), then into the precommit slot, then into the commit slot.
//! A crash before the last phase leaves the old metadata committed
//! everywhere; during it, some areas hold the old and some the new, and LVM
//! takes the highest seqno (and repairs the rest on its next write), as after
//! an interrupted `lvm` command.
//!
//! I/O uses `O_DIRECT`, as LVM's reads do, so each side sees the other's
//! writes at once; `fdatasync` orders the phases.

use std::path::{Path, PathBuf};

pub use super::blockdev::BlockDev;
use super::error::{Error, Result};
use super::id::{PvId, VgId};
use super::label::DiskLocn;
use super::lock::{LockGuard, LockMode};
use super::mda::{MdaHeader, RawLocn};
use super::scan::{
    FoundText, ScanOptions, ScannedPv, TextSummary, read_pv_dev, read_text, scan, summarize,
};
use crate::units::Bytes;

/// One metadata area lvsnap writes: its place and current header.
#[derive(Debug)]
pub struct Area {
    /// Where it is on the PV.
    pub locn: DiskLocn,
    /// Its header as last read or written.
    pub header: MdaHeader,
}

/// A PV of the volume group, as found on this system.
#[derive(Debug)]
pub struct VgPv {
    /// The PV id.
    pub pv_id: PvId,
    /// The device.
    pub path: PathBuf,
    /// The device's size.
    pub dev_size: Bytes,
    /// The start of its data area (`pe_start`).
    pub pe_start: Bytes,
    /// Its metadata areas in use (ignored ones are left alone).
    pub areas: Vec<Area>,
    dev: BlockDev,
}

/// Where the text [`VgDisk`] read came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSource {
    /// The device.
    pub path: PathBuf,
    /// Byte offset of the metadata area holding the copy.
    pub area_start: Bytes,
    /// The slot it was read through.
    pub locn: RawLocn,
}

#[derive(Debug)]
struct Pending {
    text: String,
    summary: TextSummary,
    seqno: u64,
    // New locations, per PV and per area.
    locns: Vec<Vec<RawLocn>>,
}

/// A locked volume group's on-disk metadata: newest text, PVs, and commits.
#[derive(Debug)]
pub struct VgDisk {
    name: String,
    id: VgId,
    seqno: u64,
    text: String,
    summary: TextSummary,
    source: TextSource,
    pvs: Vec<VgPv>,
    missing: Vec<PvId>,
    problems: Vec<String>,
    /// PVs seen on more than one device (one was chosen, as LVM does).
    duplicates: Vec<PvId>,
    pending: Option<Pending>,
    warnings: Vec<String>,
    _lock: LockGuard,
}

impl VgDisk {
    /// Locks `vg` exclusively, finds its PVs and reads its newest metadata.
    ///
    /// ```no_run
    /// use lvsnap::lvm::{disk::VgDisk, scan::ScanOptions};
    /// let mut vg = VgDisk::open("vg0", &ScanOptions::default())?;
    /// let next = vg.text().replacen(
    ///     &format!("seqno = {}", vg.seqno()), &format!("seqno = {}", vg.seqno() + 1), 1);
    /// vg.commit(&next)?;
    /// # Ok::<(), lvsnap::lvm::Error>(())
    /// ```
    ///
    /// A scan of the whole system (no [`ScanOptions::devices`]) records where
    /// it found PVs in [`ScanOptions::hints`]. Named devices are each opened
    /// once, for writing where they can be.
    pub fn open(vg: &str, opts: &ScanOptions) -> Result<VgDisk> {
        let lock = LockGuard::vg(&opts.lock_dir, vg, LockMode::Exclusive, opts.wait)?;
        let Some(paths) = &opts.devices else {
            let known = opts.known.as_deref();
            let scanned = match &opts.hints {
                Some(h) => super::hints::full_scan(h, known)?,
                None => scan(opts)?,
            };
            return VgDisk::from_scan(vg, scanned, Vec::new(), lock);
        };
        let devs = paths
            .iter()
            .map(|p| BlockDev::open(p, true).or_else(|_| BlockDev::open(p, false)))
            .collect::<Result<Vec<_>>>()?;
        VgDisk::read_devs(vg, devs, opts, lock)
    }

    /// [`VgDisk::open`] on devices already open (as
    /// [`hints::prime`](super::hints::prime) leaves them): each is read again
    /// under the lock, and kept for writing if it was opened so.
    pub(crate) fn open_devs(vg: &str, devs: Vec<BlockDev>, opts: &ScanOptions) -> Result<VgDisk> {
        let lock = LockGuard::vg(&opts.lock_dir, vg, LockMode::Exclusive, opts.wait)?;
        VgDisk::read_devs(vg, devs, opts, lock)
    }

    fn read_devs(
        vg: &str,
        devs: Vec<BlockDev>,
        opts: &ScanOptions,
        lock: LockGuard,
    ) -> Result<VgDisk> {
        let mut scanned = Vec::new();
        for d in &devs {
            if let Some(pv) = read_pv_dev(d, opts.known.as_deref())? {
                scanned.push(pv);
            }
        }
        VgDisk::from_scan(vg, scanned, devs, lock)
    }

    fn from_scan(
        vg: &str,
        scanned: Vec<ScannedPv>,
        mut devs: Vec<BlockDev>,
        lock: LockGuard,
    ) -> Result<VgDisk> {
        // The newest committed copy among all areas that name this VG.
        let mut best: Option<(usize, usize)> = None;
        for (pi, pv) in scanned.iter().enumerate() {
            for (ai, a) in pv.areas.iter().enumerate() {
                let Some(Ok(t)) = &a.committed else { continue };
                if t.summary.vg_name != vg {
                    continue;
                }
                match best.and_then(|(p, a)| found(&scanned, p, a)) {
                    Some(b) if b.summary.vg_id != t.summary.vg_id => {
                        return Err(Error::Unsupported(format!(
                            "two volume groups named {vg} ({} and {})",
                            b.summary.vg_id, t.summary.vg_id
                        )));
                    }
                    Some(b) if b.summary.seqno >= t.summary.seqno => {}
                    _ => best = Some((pi, ai)),
                }
            }
        }
        let (bp, ba) = best.ok_or_else(|| {
            let unreadable: Vec<String> = scanned
                .iter()
                .flat_map(|p| &p.areas)
                .filter_map(|a| match (&a.header, &a.committed) {
                    (Err(e), _) | (_, Some(Err(e))) => Some(e.to_string()),
                    _ => None,
                })
                .collect();
            if unreadable.is_empty() {
                Error::NotFound(format!("volume group {vg}"))
            } else {
                Error::NotFound(format!(
                    "volume group {vg} (unreadable metadata areas: {})",
                    unreadable.join("; ")
                ))
            }
        })?;
        let newest = found(&scanned, bp, ba)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("volume group {vg}")))?;
        let source = TextSource {
            path: scanned[bp].path.clone(),
            area_start: scanned[bp].areas[ba].area.offset,
            locn: newest.locn,
        };
        let mut pvs = Vec::new();
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        let mut duplicates = Vec::new();
        for id in &newest.summary.pv_ids {
            let matches: Vec<&ScannedPv> =
                scanned.iter().filter(|p| p.label.pv_id() == *id).collect();
            let pv = match matches.as_slice() {
                [] => {
                    missing.push(*id);
                    continue;
                }
                [pv] => *pv,
                _ => {
                    let pv = choose_duplicate(*id, &matches, &newest.text);
                    duplicates.push(*id);
                    pv
                }
            };
            let mut areas = Vec::new();
            for a in &pv.areas {
                match &a.header {
                    Ok(h) if h.is_ignored() => {}
                    Ok(h) => {
                        if let Some(Ok(t)) = &a.committed {
                            if t.summary.vg_id != newest.summary.vg_id {
                                problems.push(format!(
                                    "{} holds metadata of VG {}",
                                    pv.path.display(),
                                    t.summary.vg_name
                                ));
                            } else if t.summary.seqno < newest.summary.seqno {
                                log::warn!(
                                    "{}: metadata area at {} has seqno {}, newest is {}; the next commit updates it",
                                    pv.path.display(),
                                    a.area.offset,
                                    t.summary.seqno,
                                    newest.summary.seqno
                                );
                            }
                        }
                        areas.push(Area {
                            locn: a.area,
                            header: h.clone(),
                        });
                    }
                    // As LVM: a bad copy is skipped (and left alone) while
                    // another area holds the metadata; `vgck --updatemetadata`
                    // repairs it.
                    Err(e) => log::warn!(
                        "{e}; using the other metadata areas of VG {vg} (repair with vgck --updatemetadata)"
                    ),
                }
            }
            let dev = match devs
                .iter()
                .position(|d| d.path() == pv.path && d.writable())
            {
                Some(i) => devs.swap_remove(i),
                None => BlockDev::open(&pv.path, true)?,
            };
            pvs.push(VgPv {
                pv_id: *id,
                path: pv.path.clone(),
                dev_size: pv.dev_size,
                pe_start: pv.label.data_areas.first().map_or(Bytes(0), |d| d.offset),
                areas,
                dev,
            });
        }
        Ok(VgDisk {
            name: vg.to_owned(),
            id: newest.summary.vg_id,
            seqno: newest.summary.seqno,
            text: newest.text,
            summary: newest.summary,
            source,
            pvs,
            missing,
            problems,
            duplicates,
            pending: None,
            warnings: Vec::new(),
            _lock: lock,
        })
    }

    /// The committed text as a scan finds it, for
    /// [`ScanOptions::known`](super::scan::ScanOptions::known).
    pub fn found_text(&self) -> FoundText {
        FoundText {
            text: self.text.clone(),
            summary: self.summary.clone(),
            locn: self.source.locn,
        }
    }

    /// The VG name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The VG id.
    pub fn id(&self) -> VgId {
        self.id
    }
    /// The committed seqno.
    pub fn seqno(&self) -> u64 {
        self.seqno
    }
    /// The committed metadata text (without LVM's trailing NUL).
    pub fn text(&self) -> &str {
        &self.text
    }
    /// Where [`VgDisk::text`] was read from.
    pub fn source(&self) -> &TextSource {
        &self.source
    }
    /// The VG's PVs found on this system.
    pub fn pvs(&self) -> &[VgPv] {
        &self.pvs
    }
    /// Ids of PVs the metadata lists but no scanned device carries.
    pub fn missing_pvs(&self) -> &[PvId] {
        &self.missing
    }
    /// Ids of PVs found on more than one device: LVM's choice was taken,
    /// and writes are refused until the duplicates are gone.
    pub fn duplicate_pvs(&self) -> &[PvId] {
        &self.duplicates
    }
    /// Whether a precommitted text awaits [`VgDisk::commit_precommitted`] or [`VgDisk::revert`].
    pub fn has_precommit(&self) -> bool {
        self.pending.is_some()
    }

    /// Writes `text` (whose seqno must be the current + 1) and commits it
    /// to every metadata area: text, precommit slot, commit slot.
    pub fn commit(&mut self, text: &str) -> Result<()> {
        self.precommit(text)?;
        self.commit_precommitted()
    }

    /// Writes `text` into every area's circular buffer and its precommit
    /// slot; LVM's readers still see the old text until
    /// [`VgDisk::commit_precommitted`]. [`VgDisk::revert`] drops it.
    pub fn precommit(&mut self, text: &str) -> Result<()> {
        if self.pending.is_some() {
            return Err(Error::InvalidArgument(
                "a precommitted text is pending".into(),
            ));
        }
        if !self.missing.is_empty() {
            return Err(Error::Busy(format!(
                "VG {} has missing PVs: {}",
                self.name,
                join_ids(&self.missing)
            )));
        }
        if !self.duplicates.is_empty() {
            return Err(Error::Busy(format!(
                "Cannot update volume group {} with duplicate PV devices ({})",
                self.name,
                join_ids(&self.duplicates)
            )));
        }
        if !self.problems.is_empty() {
            return Err(Error::corrupt(
                format!("metadata areas of VG {}", self.name),
                self.problems.join("; "),
            ));
        }
        let s = summarize(text).map_err(|e| Error::InvalidArgument(format!("new text: {e}")))?;
        if s.vg_name != self.name || s.vg_id != self.id {
            return Err(Error::InvalidArgument(format!(
                "new text is for VG {} ({}), not {} ({})",
                s.vg_name, s.vg_id, self.name, self.id
            )));
        }
        if Some(s.seqno) != self.seqno.checked_add(1) {
            return Err(Error::InvalidArgument(format!(
                "new text has seqno {}, expected {}",
                s.seqno,
                self.seqno.saturating_add(1)
            )));
        }
        if self.pvs.iter().all(|p| p.areas.is_empty()) {
            return Err(Error::Unsupported(format!(
                "VG {} has no metadata area in use",
                self.name
            )));
        }
        // Plan every area before writing any, so a text too big fails cleanly.
        let plans = self
            .pvs
            .iter()
            .map(|p| {
                p.areas
                    .iter()
                    .map(|a| a.header.plan_write(text))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        // Only PVs with a metadata area are written, so only they are
        // synced: a data PV failing must not fail a metadata write.
        let r = (|| {
            for (pv, pplans) in self.pvs.iter().zip(&plans) {
                if pv.areas.is_empty() {
                    continue;
                }
                for plan in pplans {
                    for (off, bytes) in &plan.writes {
                        crate::fault::point("metadata text write");
                        pv.dev.write_at(*off, bytes)?;
                    }
                }
                pv.dev.sync()?;
            }
            for (pv, pplans) in self.pvs.iter_mut().zip(&plans) {
                if pv.areas.is_empty() {
                    continue;
                }
                for (a, plan) in pv.areas.iter_mut().zip(pplans) {
                    let h = a.header.precommit(&plan.locn);
                    crate::fault::point("metadata precommit");
                    write_header(&pv.dev, &h)?;
                    a.header = h;
                }
                pv.dev.sync()?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            let _ = self.clear_precommit();
            return Err(e);
        }
        self.pending = Some(Pending {
            text: text.to_owned(),
            seqno: s.seqno,
            summary: s,
            locns: plans
                .iter()
                .map(|pp| pp.iter().map(|p| p.locn).collect())
                .collect(),
        });
        Ok(())
    }

    /// Commits the precommitted text: the commit slot of every area.
    ///
    /// Success is decided by what is on disk: the commit has landed once
    /// any area's commit slot holds the new text (LVM's readers take the
    /// highest seqno, and rewrite the stale areas on their next commit), so
    /// areas that failed then are reported by [`VgDisk::take_warnings`], not as
    /// an error. Only if no area holds it is the commit an error, and the
    /// old metadata is still what every reader sees.
    pub fn commit_precommitted(&mut self) -> Result<()> {
        let p = self
            .pending
            .take()
            .ok_or_else(|| Error::InvalidArgument("nothing precommitted".into()))?;
        let old: Vec<Vec<MdaHeader>> = self
            .pvs
            .iter()
            .map(|pv| pv.areas.iter().map(|a| a.header.clone()).collect())
            .collect();
        let mut landed = 0usize;
        let mut failed: Vec<Error> = Vec::new();
        for (pv, locns) in self.pvs.iter_mut().zip(&p.locns) {
            if pv.areas.is_empty() {
                continue;
            }
            let mut written = Vec::new();
            for (ai, (a, locn)) in pv.areas.iter_mut().zip(locns).enumerate() {
                let h = a.header.commit(locn);
                crate::fault::point("metadata commit");
                match write_header(&pv.dev, &h) {
                    Ok(()) => written.push(ai),
                    Err(e) => failed.push(e),
                }
                a.header = h;
            }
            match pv.dev.sync() {
                Ok(()) => landed += written.len(),
                Err(e) => {
                    // Written but maybe not stable: what the device reads back decides.
                    for ai in written {
                        if area_holds(&pv.dev, &pv.areas[ai], locns.get(ai)) {
                            landed += 1;
                        }
                    }
                    failed.push(e);
                }
            }
        }
        if landed == 0 {
            // Nothing landed: the old text stays committed, and the
            // precommit stays pending for the caller's revert.
            for (pv, hs) in self.pvs.iter_mut().zip(old) {
                for (a, h) in pv.areas.iter_mut().zip(hs) {
                    a.header = h;
                }
            }
            if let Err(e) = self.reload_headers() {
                log::debug!("VG {}: re-reading headers: {e}", self.name);
            }
            let e = failed.into_iter().next().unwrap_or_else(|| {
                Error::Unsupported(format!("VG {} has no metadata area in use", self.name))
            });
            self.pending = Some(p);
            return Err(e);
        }
        for e in failed {
            let w = format!(
                "VG {}: metadata seqno {} committed, but one copy failed: {e}",
                self.name, p.seqno
            );
            log::warn!("{w}");
            self.warnings.push(w);
        }
        let first = self
            .pvs
            .iter()
            .zip(&p.locns)
            .find_map(|(pv, l)| Some((pv, pv.areas.first()?, l.first()?)));
        if let Some((pv, area, locn)) = first {
            self.source = TextSource {
                path: pv.path.clone(),
                area_start: area.locn.offset,
                locn: *locn,
            };
        }
        self.text = p.text;
        self.summary = p.summary;
        self.seqno = p.seqno;
        Ok(())
    }

    /// What went wrong after a change had landed (a metadata copy that
    /// could not be written), oldest first; taking them clears the list.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Re-reads every area's header from disk, after a failed commit left
    /// the in-memory copies unsure.
    fn reload_headers(&mut self) -> Result<()> {
        for pv in &mut self.pvs {
            for a in &mut pv.areas {
                let off = u64::try_from(*a.locn.offset)
                    .map_err(|_| Error::InvalidArgument(format!("area at {}", a.locn.offset)))?;
                let sector = pv.dev.read_at(off, 512)?;
                a.header = MdaHeader::parse(&sector, a.locn.offset, a.locn.size)?;
            }
        }
        Ok(())
    }

    /// A text an earlier run precommitted and never committed or reverted
    /// (it was killed in between): the next seqno after the committed one,
    /// in some area's precommit slot. LVM's readers ignore it; recovery
    /// reads it to undo what that run did outside the metadata (thin pool
    /// messages are sent before the commit).
    pub fn stale_precommit(&self) -> Option<String> {
        if self.pending.is_some() {
            return None;
        }
        let want = self.seqno.checked_add(1)?;
        self.pvs.iter().find_map(|pv| {
            pv.areas.iter().find_map(|a| {
                let p = &a.header.precommitted;
                if p.is_empty() || *p == a.header.committed {
                    return None;
                }
                let t = super::scan::read_text(&pv.dev, &a.header, p).ok()?;
                (t.summary.seqno == want).then_some(t.text)
            })
        })
    }

    /// Clears the precommit slots a killed run left (see
    /// [`VgDisk::stale_precommit`]), as LVM's revert does.
    pub fn drop_stale_precommit(&mut self) -> Result<()> {
        if self.pending.is_some() {
            return Err(Error::InvalidArgument(
                "a precommit of this session is pending".into(),
            ));
        }
        self.clear_precommit()
    }

    /// Drops the precommitted text: clears every precommit slot; the
    /// committed metadata was never changed.
    pub fn revert(&mut self) -> Result<()> {
        if self.pending.take().is_none() {
            return Err(Error::InvalidArgument("nothing precommitted".into()));
        }
        self.clear_precommit()
    }

    fn clear_precommit(&mut self) -> Result<()> {
        let mut first_err = None;
        for pv in &mut self.pvs {
            if pv.areas.is_empty() {
                continue;
            }
            for a in &mut pv.areas {
                let h = a.header.revert();
                match write_header(&pv.dev, &h) {
                    Ok(()) => a.header = h,
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = pv.dev.sync() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Re-reads every area of the VG's PVs and checks that each holds the
    /// committed text at the current seqno (a self-check after a commit).
    pub fn verify(&self) -> Result<()> {
        for pv in &self.pvs {
            let Some(scanned) = read_pv_dev(&pv.dev, None)? else {
                return Err(Error::corrupt(
                    format!("PV {}", pv.path.display()),
                    "label vanished",
                ));
            };
            for a in scanned
                .areas
                .iter()
                .filter(|a| a.header.as_ref().is_ok_and(|h| !h.is_ignored()))
            {
                let h = a
                    .header
                    .as_ref()
                    .map_err(|e| Error::corrupt("header", e.to_string()))?;
                let t = read_text(&pv.dev, h, &h.committed)?;
                if t.summary.seqno != self.seqno || t.text != self.text {
                    return Err(Error::corrupt(
                        format!(
                            "metadata area at {} on {}",
                            a.area.offset,
                            pv.path.display()
                        ),
                        format!("holds seqno {}, expected {}", t.summary.seqno, self.seqno),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The device LVM uses for PV `id` found on several devices (lvmcache's
/// choice among duplicates): one an active LV uses, else the one the
/// metadata last saw it on, else a device-mapper device (a multipath or
/// other mapping over the disk) over a plain one, else the first. Warns as
/// LVM does; writes to the VG are refused while the duplicates remain.
fn choose_duplicate<'a>(id: PvId, devs: &[&'a ScannedPv], text: &str) -> &'a ScannedPv {
    let hint = device_hint(text, id);
    let name = |p: &ScannedPv| p.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let is_dm = |p: &ScannedPv| {
        name(p).is_some_and(|n| n.starts_with("dm-")) || p.path.starts_with("/dev/mapper")
    };
    let used_by_lv = |p: &ScannedPv| {
        let Some(n) = name(p) else { return false };
        let holders = Path::new("/sys/class/block").join(n).join("holders");
        std::fs::read_dir(holders)
            .into_iter()
            .flatten()
            .flatten()
            .any(|h| {
                std::fs::read_to_string(h.path().join("dm/uuid"))
                    .is_ok_and(|u| u.starts_with("LVM-"))
            })
    };
    let (chosen, why) = if let Some(p) = devs.iter().find(|p| used_by_lv(p)) {
        (*p, "device is used by LV")
    } else if let Some(p) = devs
        .iter()
        .find(|p| hint.as_deref().is_some_and(|h| p.path == Path::new(h)))
    {
        (*p, "device name matches previous")
    } else if let Some(p) = devs.iter().find(|p| is_dm(p)) {
        (*p, "device is dm")
    } else {
        (devs[0], "device is first")
    };
    for d in devs.iter().filter(|d| d.path != chosen.path) {
        log::warn!("Not using device {} for PV {id}.", d.path.display());
    }
    log::warn!(
        "PV {id} prefers device {} because {why}.",
        chosen.path.display()
    );
    chosen
}

/// The `device` hint the metadata records for PV `id` (only read when a PV
/// is seen twice, so the text is parsed for it alone).
fn device_hint(text: &str, id: PvId) -> Option<String> {
    let doc = super::text::Document::parse(text).ok()?;
    let pvs = doc.vg_section()?.body.section("physical_volumes")?;
    let pv = pvs
        .body
        .sections()
        .find(|p| p.body.str("id").and_then(|s| PvId::parse(s).ok()) == Some(id))?;
    pv.body.str("device").map(str::to_owned)
}

fn join_ids(ids: &[PvId]) -> String {
    ids.iter()
        .map(PvId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn found(scanned: &[ScannedPv], p: usize, a: usize) -> Option<&super::scan::FoundText> {
    scanned
        .get(p)?
        .areas
        .get(a)?
        .committed
        .as_ref()?
        .as_ref()
        .ok()
}

/// Whether the header of `area` on `dev` now commits `locn`.
fn area_holds(dev: &BlockDev, area: &Area, locn: Option<&RawLocn>) -> bool {
    let Some(locn) = locn else { return false };
    let Ok(off) = u64::try_from(*area.locn.offset) else {
        return false;
    };
    dev.read_at(off, 512)
        .and_then(|s| MdaHeader::parse(&s, area.locn.offset, area.locn.size))
        .is_ok_and(|h| h.committed == *locn)
}

fn write_header(dev: &BlockDev, h: &MdaHeader) -> Result<()> {
    let off = u64::try_from(*h.start)
        .map_err(|_| Error::InvalidArgument(format!("area start {}", h.start)))?;
    dev.write_at(off, &h.to_sector()?)
}

impl Drop for VgDisk {
    fn drop(&mut self) {
        if self.pending.take().is_some() {
            log::warn!(
                "VG {}: dropping an uncommitted precommit; reverting",
                self.name
            );
            if let Err(e) = self.clear_precommit() {
                log::warn!("VG {}: revert failed: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
