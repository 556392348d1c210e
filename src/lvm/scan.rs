//! PV discovery: which block devices carry LVM labels, what their metadata
//! areas hold, and which volume group each belongs to.
//!
//! With no device list, candidates come from `/sys/class/block`, skipping what
//! LVM's default filters skip and what would hang or mislead a reader: devices
//! under 2 MiB (`pv_min_size`), whole disks that have partitions, LVs
//! (device-mapper UUID `LVM-`, as `scan_lvs = 0`), suspended device-mapper
//! devices, and components of md or multipath devices.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blockdev::BlockDev;
use super::error::{Error, Result};
use super::id::{PvId, VgId};
use super::label::{DiskLocn, LABEL_SCAN_SECTORS, LABEL_SIZE, PvLabel, find_label};
use super::lexer::{LexError, Lexer, Tok, parse_int};
use super::mda::{MDA_HEADER_SIZE, MdaHeader, RawLocn, decode_text};
use crate::units::Bytes;

/// LVM's default `devices/pv_min_size`: smaller devices are not scanned.
pub const PV_MIN_SIZE: u64 = 2 << 20;

/// Where to look for PVs and how to lock.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Devices to read; `None` scans the system's block devices.
    pub devices: Option<Vec<PathBuf>>,
    /// LVM's `global/locking_dir`.
    pub lock_dir: PathBuf,
    /// Wait for a VG lock held elsewhere (else fail with `Busy`).
    pub wait: bool,
    /// A text read before. An area whose committed slot has the same
    /// offset, size and checksum gives this text without reading it again:
    /// LVM skips re-reading on the same match of checksum and size.
    pub known: Option<Arc<FoundText>>,
    /// Where a scan of the whole system records which devices are PVs, for
    /// later processes to read first (as LVM keeps `/run/lvm/hints`); `None` keeps
    /// no record.
    pub hints: Option<PathBuf>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            devices: None,
            // lvm.conf's global/locking_dir, as LVM locks there.
            lock_dir: super::config::LvmConfig::load_or_default().locking_dir,
            wait: true,
            known: None,
            hints: Some(PathBuf::from(super::hints::DEFAULT_HINTS)),
        }
    }
}

impl ScanOptions {
    /// Options that read only `devices`.
    pub fn devices(devices: impl IntoIterator<Item = impl Into<PathBuf>>) -> ScanOptions {
        ScanOptions {
            devices: Some(devices.into_iter().map(Into::into).collect()),
            ..ScanOptions::default()
        }
    }
}

/// What a metadata text says about itself, enough to group and order copies.
///
/// A minimal reading of the text (the VG section's name, `id`, `seqno`, and
/// the `id` of each `physical_volumes` entry); full parsing is the text
/// layer's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSummary {
    /// The VG name (the text's first section).
    pub vg_name: String,
    /// The VG id.
    pub vg_id: VgId,
    /// The sequence number.
    pub seqno: u64,
    /// The ids of the VG's PVs.
    pub pv_ids: Vec<PvId>,
}

fn lex_error(_: LexError) -> Error {
    Error::corrupt("metadata text", LexError::WHAT)
}

/// The next token without its offset.
#[inline(always)]
fn next_tok<'a>(lx: &mut Lexer<'a>) -> Result<Option<Tok<'a>>> {
    Ok(lx.next().map_err(lex_error)?.map(|(_, t)| t))
}

/// Reads the [`TextSummary`] of a metadata text.
///
/// ```
/// use lvsnap::lvm::scan::summarize;
/// let t = "vg0 {\nid = \"1EP5Yk-7MNl-5TKm-EFLx-PtJs-ndAJ-eenL1m\"\nseqno = 7\n\
///          physical_volumes {\npv0 {\nid = \"AbCdEf0123456789abcdefghijKLMNop\"\n}\n}\n}\n\
///          contents = \"Text Format Volume Group\"\n";
/// let s = summarize(t).unwrap();
/// let id = "1EP5Yk7MNl5TKmEFLxPtJsndAJeenL1m";
/// assert_eq!((s.vg_name.as_str(), s.vg_id.as_str(), s.seqno), ("vg0", id, 7));
/// assert_eq!(s.pv_ids, ["AbCdEf0123456789abcdefghijKLMNop".parse().unwrap()]);
/// ```
pub fn summarize(text: &str) -> Result<TextSummary> {
    let mut lx = Lexer::new(text);
    match summarize_tokens(&mut lx) {
        Ok(s) => Ok(s),
        // An unterminated string (always at the end) is what a reader that
        // tokenizes first reports, whatever else is wrong before it.
        Err(e) => loop {
            match lx.next() {
                Ok(Some(_)) => {}
                Ok(None) => return Err(e),
                Err(lexical) => return Err(lex_error(lexical)),
            }
        },
    }
}

fn summarize_tokens(lx: &mut Lexer<'_>) -> Result<TextSummary> {
    let bad = |d: String| Error::corrupt("metadata text", d);
    let mut path: Vec<&str> = Vec::new();
    let (mut vg_name, mut vg_id, mut seqno) = (None, None, None);
    let mut pv_ids = Vec::new();
    while let Some(t) = next_tok(lx)? {
        let key = match t {
            Tok::Close => {
                path.pop().ok_or_else(|| bad("unbalanced '}'".into()))?;
                continue;
            }
            Tok::Word(w) => w,
            t => return Err(bad(format!("unexpected {t:?}"))),
        };
        match next_tok(lx)? {
            Some(Tok::Open) => {
                if path.is_empty() && vg_name.is_none() {
                    vg_name = Some(key);
                }
                path.push(key);
                continue;
            }
            Some(Tok::Eq) => {}
            _ => return Err(bad(format!("unexpected {:?}", Tok::Word(key)))),
        }
        let value = next_tok(lx)?;
        if matches!(value, Some(Tok::LBracket)) {
            while next_tok(lx)?.is_some_and(|t| !matches!(t, Tok::RBracket)) {}
            continue;
        }
        // Only these two keys matter: where they are is worked out for them alone.
        let in_vg = || path.len() == 1 && vg_name.as_ref() == path.first();
        let in_pv = || {
            path.len() == 3
                && vg_name.as_ref() == path.first()
                && path.get(1) == Some(&"physical_volumes")
        };
        match (key, value) {
            // As LVM's vgsummary read: an id it cannot read makes the text unreadable.
            ("id", Some(Tok::Str(s))) if in_vg() => {
                vg_id = Some(VgId::parse(&s).map_err(|e| bad(format!("VG id: {e}")))?)
            }
            // And so does a PV id (LVM's full read cannot use the text either).
            ("id", Some(Tok::Str(s))) if in_pv() => {
                pv_ids.push(PvId::parse(&s).map_err(|e| bad(format!("PV id: {e}")))?)
            }
            ("seqno", Some(Tok::Int(n))) if in_vg() => {
                seqno = Some(
                    parse_int(n)
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(|| bad(format!("seqno {n:?}")))?,
                )
            }
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(bad("truncated: unclosed section".into()));
    }
    Ok(TextSummary {
        vg_name: vg_name
            .ok_or_else(|| bad("no volume group section".into()))?
            .to_owned(),
        vg_id: vg_id.ok_or_else(|| bad("no VG id".into()))?,
        seqno: seqno.ok_or_else(|| bad("no seqno".into()))?,
        pv_ids,
    })
}

/// A copy of metadata text found in a metadata area.
#[derive(Debug, Clone)]
pub struct FoundText {
    /// The text, without LVM's trailing NUL.
    pub text: String,
    /// What it says about itself.
    pub summary: TextSummary,
    /// The slot it was read through.
    pub locn: RawLocn,
}

/// One metadata area of a PV as read.
#[derive(Debug)]
pub struct AreaState {
    /// Where the area is.
    pub area: DiskLocn,
    /// Its header, or why it could not be used.
    pub header: Result<MdaHeader>,
    /// The committed text, if the slot points at one (and why not, if it fails).
    pub committed: Option<Result<FoundText>>,
}

/// A device with an LVM2 label.
#[derive(Debug)]
pub struct ScannedPv {
    /// The device.
    pub path: PathBuf,
    /// Its size now (the label records the size at pvcreate time).
    pub dev_size: Bytes,
    /// The label and pv_header.
    pub label: PvLabel,
    /// Its metadata areas, in pv_header order.
    pub areas: Vec<AreaState>,
}

impl ScannedPv {
    /// The newest committed text this PV holds, if any.
    pub fn newest(&self) -> Option<&FoundText> {
        self.areas
            .iter()
            .filter_map(|a| a.committed.as_ref()?.as_ref().ok())
            .max_by_key(|t| t.summary.seqno)
    }
}

fn read_area(dev: &BlockDev, area: DiskLocn, known: Option<&FoundText>) -> AreaState {
    let header = (|| {
        let end = area.offset.checked_add(area.size);
        if *area.size < u128::from(MDA_HEADER_SIZE) || end.is_none_or(|e| e > dev.size()) {
            return Err(Error::corrupt(
                format!("metadata area at byte {}", area.offset),
                format!(
                    "size {} does not fit the device of {}",
                    area.size,
                    dev.size()
                ),
            ));
        }
        let off = u64::try_from(*area.offset).unwrap_or(u64::MAX);
        let sector = dev.read_at(off, MDA_HEADER_SIZE as usize)?;
        MdaHeader::parse(&sector, area.offset, area.size)
    })()
    .map_err(|e| e.at(dev.path()));
    let committed = match &header {
        Ok(h) if !h.is_ignored() && !h.committed.is_empty() => match known {
            Some(k) if k.locn == h.committed => Some(Ok(k.clone())),
            _ => Some(read_text(dev, h, &h.committed)),
        },
        _ => None,
    };
    AreaState {
        area,
        header,
        committed,
    }
}

/// Reads and checks the text `locn` points at in the area of `header`.
pub(crate) fn read_text(dev: &BlockDev, header: &MdaHeader, locn: &RawLocn) -> Result<FoundText> {
    let r = (|| {
        let mut bytes = Vec::new();
        for (off, len) in header.text_pieces(locn)? {
            bytes.extend_from_slice(&dev.read_at(off, len as usize)?);
        }
        let text = decode_text(&bytes, locn)?;
        let summary = summarize(&text)?;
        Ok(FoundText {
            text,
            summary,
            locn: *locn,
        })
    })();
    r.map_err(|e: Error| e.at(dev.path()))
}

/// Reads one device: `Ok(None)` if it has no LVM label.
pub fn read_pv(path: &Path) -> Result<Option<ScannedPv>> {
    read_pv_known(path, None)
}

fn read_pv_known(path: &Path, known: Option<&FoundText>) -> Result<Option<ScannedPv>> {
    let dev = BlockDev::open(path, false)?;
    read_pv_dev(&dev, known)
}

pub(crate) fn read_pv_dev(dev: &BlockDev, known: Option<&FoundText>) -> Result<Option<ScannedPv>> {
    let n = (LABEL_SCAN_SECTORS * LABEL_SIZE) as u64;
    let n =
        u64::try_from(*dev.size()).map_or(n, |s| s.min(n)) / LABEL_SIZE as u64 * LABEL_SIZE as u64;
    let head = dev.read_at(0, n as usize)?;
    let Some(label) = find_label(&head).map_err(|e| e.at(dev.path()))? else {
        return Ok(None);
    };
    let areas = label
        .metadata_areas
        .iter()
        .map(|&a| read_area(dev, a, known))
        .collect();
    Ok(Some(ScannedPv {
        path: dev.path().to_path_buf(),
        dev_size: dev.size(),
        label,
        areas,
    }))
}

fn sys_read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Why LVM (or prudence) skips a `/sys/class/block` entry, or `None` to scan it.
fn skip_reason(sys: &Path, name: &str) -> Option<&'static str> {
    // LVs first, with one read: a system with many snapshots has hundreds.
    if let Some(uuid) = sys_read(&sys.join("dm/uuid")) {
        if uuid.starts_with("LVM-") {
            return Some("an LV (scan_lvs = 0)");
        }
        if sys_read(&sys.join("dm/suspended")).as_deref() == Some("1") {
            return Some("suspended");
        }
    }
    let sectors: u64 = sys_read(&sys.join("size"))?.parse().ok()?;
    if sectors.saturating_mul(512) < PV_MIN_SIZE {
        return Some("smaller than pv_min_size");
    }
    let has_partitions = fs::read_dir(sys).ok()?.flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with(name) && e.path().join("partition").exists()
    });
    if has_partitions {
        return Some("partitioned");
    }
    let holders = fs::read_dir(sys.join("holders"))
        .into_iter()
        .flatten()
        .flatten();
    for h in holders {
        let hn = h.file_name().to_string_lossy().into_owned();
        if hn.starts_with("md") {
            return Some("an md component");
        }
        let hu = sys_read(&sys.join("holders").join(&hn).join("dm/uuid")).unwrap_or_default();
        if hu.starts_with("mpath-") {
            return Some("a multipath component");
        }
    }
    None
}

/// The kernel names (`dm-<minor>`) of the device-mapper devices that are
/// LVs, asked of device-mapper itself: one ioctl each is far cheaper than
/// the sysfs lookups that would otherwise tell, and a system with many
/// snapshots has hundreds. Empty where device-mapper cannot be asked; the
/// sysfs checks then decide alone.
fn lv_disk_names() -> std::collections::HashSet<String> {
    use devicemapper::DevId;
    let mut out = std::collections::HashSet::new();
    let Ok(dm) = crate::dm::DmControl::shared() else {
        return out;
    };
    let dm = dm.dm();
    let Ok(devs) = dm.list_devices() else {
        return out;
    };
    for (name, dev, _) in devs {
        let is_lv = dm
            .device_info(&DevId::Name(&name))
            .ok()
            .and_then(|i| i.uuid().map(|u| u.to_string().starts_with("LVM-")))
            .unwrap_or(false);
        if is_lv {
            // The kernel names every mapped device's disk dm-<minor>.
            out.insert(format!("dm-{}", dev.minor));
        }
    }
    out
}

/// The system's block devices that may hold PVs (see the module docs).
pub fn candidate_devices() -> Result<Vec<PathBuf>> {
    candidates_except(&lv_disk_names())
}

/// [`candidate_devices`], given the kernel names (`dm-<minor>`) of the
/// device-mapper devices that are LVs.
pub(crate) fn candidates_except(lvs: &std::collections::HashSet<String>) -> Result<Vec<PathBuf>> {
    let dir = Path::new("/sys/class/block");
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io_path("read", dir, e))? {
        let e = e.map_err(|e| Error::io_path("read", dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if lvs.contains(&name) {
            log::debug!("scan: skipping {name}: an LV (scan_lvs = 0)");
            continue;
        }
        let dev = Path::new("/dev").join(&name);
        match skip_reason(&e.path(), &name) {
            Some(why) => log::debug!("scan: skipping {name}: {why}"),
            None if dev.exists() => v.push(dev),
            None => log::debug!("scan: skipping {name}: no {}", dev.display()),
        }
    }
    v.sort();
    Ok(v)
}

/// Reads every candidate device (or `opts.devices`) and returns those with
/// an LVM label. A named device that cannot be read is an error; a scanned
/// one is logged and skipped, as LVM does.
pub fn scan(opts: &ScanOptions) -> Result<Vec<ScannedPv>> {
    match &opts.devices {
        Some(d) => scan_devices(d.clone(), opts.known.as_deref(), true),
        None => scan_devices(candidate_devices()?, opts.known.as_deref(), false),
    }
}

/// Reads `devs`; with `strict`, a device that cannot be read is an error.
pub(crate) fn scan_devices(
    devs: Vec<PathBuf>,
    known: Option<&FoundText>,
    strict: bool,
) -> Result<Vec<ScannedPv>> {
    let mut out = Vec::new();
    for d in devs {
        match read_pv_known(&d, known) {
            Ok(Some(pv)) => out.push(pv),
            Ok(None) => {}
            Err(e) if strict => return Err(e),
            Err(e) => log::debug!("scan: {}: {e}", d.display()),
        }
    }
    Ok(out)
}

/// A volume group seen in a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgSeen {
    /// The VG name.
    pub name: String,
    /// Its id.
    pub id: VgId,
    /// The highest committed seqno found.
    pub seqno: u64,
    /// Paths of the scanned PVs its newest metadata lists.
    pub pv_paths: Vec<PathBuf>,
}

/// Groups scanned PVs by the VG of their newest metadata. PVs without
/// metadata areas join the VG whose metadata lists their id.
pub fn volume_groups(pvs: &[ScannedPv]) -> Vec<VgSeen> {
    let mut vgs: Vec<TextSummary> = Vec::new();
    for t in pvs
        .iter()
        .flat_map(|p| p.areas.iter())
        .filter_map(|a| a.committed.as_ref()?.as_ref().ok())
    {
        let s = &t.summary;
        match vgs
            .iter_mut()
            .find(|v| v.vg_id == s.vg_id && v.vg_name == s.vg_name)
        {
            Some(v) if v.seqno < s.seqno => *v = s.clone(),
            Some(_) => {}
            None => vgs.push(s.clone()),
        }
    }
    let mut out: Vec<VgSeen> = vgs
        .into_iter()
        .map(|s| VgSeen {
            pv_paths: pvs
                .iter()
                .filter(|p| s.pv_ids.contains(&p.label.pv_id()))
                .map(|p| p.path.clone())
                .collect(),
            name: s.vg_name,
            id: s.vg_id,
            seqno: s.seqno,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A VG id as LVM writes one, and the same without dashes.
    const VG_ID: &str = "AbCdEf-0123-4567-89ab-cdef-ghij-KLMNop";
    const VG_ID_PLAIN: &str = "AbCdEf0123456789abcdefghijKLMNop";

    /// Two PV ids, as LVM writes them.
    const PV_1: &str = "Pv0001-aaaa-bbbb-cccc-dddd-eeee-ffffff";
    const PV_2: &str = "Pv0002-aaaa-bbbb-cccc-dddd-eeee-ffffff";

    const TEXT: &str = "vg0 {\nid = \"AbCdEf-0123-4567-89ab-cdef-ghij-KLMNop\"\nseqno = 12\nstatus = [\"READ\", \"WRITE\"]\n\
        physical_volumes {\n\npv0 {\nid = \"Pv0001-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\ndevice = \"/dev/sdb\" # hint\n}\n\
        pv1 {\nid = \"Pv0002-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n}\n}\nlogical_volumes {\nlv {\nid = \"L-1\"\n}\n}\n}\n\
        # Generated by LVM2\ncontents = \"Text Format Volume Group\"\nversion = 1\n\
        description = \"a \\\"quoted\\\" {brace}\"\n";

    #[test]
    fn summarizes_lvm_text() {
        let s = summarize(TEXT).unwrap();
        assert_eq!(s.vg_name, "vg0");
        assert_eq!(s.vg_id.to_string(), VG_ID);
        assert_eq!(s.vg_id.as_str(), VG_ID_PLAIN);
        assert_eq!(s.seqno, 12);
        let pvs: Vec<PvId> = [PV_1, PV_2].map(|p| p.parse().unwrap()).into();
        assert_eq!(s.pv_ids, pvs, "LV ids are not PV ids");
    }

    #[test]
    fn truncated_or_broken_text_is_corrupt() {
        for cut in [0, 5, 30, TEXT.len() / 2, TEXT.find("}\n#").unwrap()] {
            let e = summarize(&TEXT[..cut]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "cut at {cut}");
        }
        let id = VG_ID_PLAIN;
        assert!(summarize(&format!("vg {{\nseqno = x\nid = \"{id}\"\n}}\n")).is_err());
        assert!(summarize(&format!("vg {{\nid = \"{id}\"\n}}\n}}\n")).is_err());
        // An id LVM cannot read makes the text unreadable, as in LVM's summary read.
        let e = summarize("vg {\nid = \"Abc-1\"\nseqno = 1\n}\n").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        assert!(e.to_string().contains("VG id"), "{e}");
        let t = format!(
            "vg {{\nid = \"{id}\"\nseqno = 1\nphysical_volumes {{\npv0 {{\nid = \"P-1\"\n}}\n}}\n}}\n"
        );
        let e = summarize(&t).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        assert!(e.to_string().contains("PV id"), "{e}");
        assert!(summarize("vg {\nid = \"a\n}\n").is_err());
    }

    /// What the full parser reads as the summary, where it reads one
    /// without doubt (each key once).
    fn parsed_summary(t: &str) -> Option<TextSummary> {
        use crate::lvm::text::{Document, Entry};
        let doc = Document::parse(t).ok()?;
        let vg = doc.root.sections().next()?;
        let once = |b: &crate::lvm::text::Body, k: &str| {
            b.entries
                .iter()
                .filter(|e| matches!(e, Entry::Assign(a) if a.key == k))
                .count()
                == 1
        };
        if !once(&vg.body, "id") || !once(&vg.body, "seqno") {
            return None;
        }
        let mut pv_ids = Vec::new();
        for pvs in vg.body.sections().filter(|s| s.name == "physical_volumes") {
            for pv in pvs.body.sections() {
                if let Some(id) = pv.body.str("id") {
                    pv_ids.push(id.parse().ok()?);
                }
            }
        }
        Some(TextSummary {
            vg_name: vg.name.clone(),
            vg_id: vg.body.str("id")?.parse().ok()?,
            seqno: u64::try_from(vg.body.int("seqno")?).ok()?,
            pv_ids,
        })
    }

    /// The summary reads what the full parser reads: one tokenizer.
    fn assert_agrees(t: &str) {
        if let Some(want) = parsed_summary(t) {
            assert_eq!(summarize(t).ok(), Some(want), "{t:?}");
        }
    }

    #[test]
    fn summary_and_parser_read_alike() {
        for t in [
            TEXT,
            "vg {\nid = 'AbCdEf0123456789abcdefghijKLMNop'\nseqno = 010\n}\n",
            "vg {\nid = \"AbCdEf0123456789abcdefghijKLMNop\"\nseqno = 1\n\
             physical_volumes {\npv0 {\ndevice = \"a\\\"b\\\\c\\n\"\n\
             id = \"Pv0001aaaabbbbccccddddeeeeffffff\"\n}\n}\n}\n",
            "vg {\nid = \"AbCdEf0123456789abcdefghijKLMNop\"\u{b}seqno = 2 \
             physical_volumes {\npv0 {\nid = 'Pv0002aaaabbbbccccddddeeeeffffff'\n}\n}\n}\n",
            "v\u{a0}g {\nid = \"AbCdEf0123456789abcdefghijKLMNop\"\nseqno = 3\n}\0junk",
        ] {
            assert!(parsed_summary(t).is_some(), "{t:?}");
            assert_agrees(t);
        }
        // As strtoll(_, _, 0) reads it: octal.
        assert_eq!(
            summarize("vg {\nid = 'AbCdEf0123456789abcdefghijKLMNop'\nseqno = 010\n}\n")
                .unwrap()
                .seqno,
            8
        );
    }

    proptest! {
        #[test]
        fn any_text_never_panics(s in "[a-z0-9 =\\[\\]{},\"#\n\\\\]{0,200}") {
            let _ = summarize(&s);
        }

        #[test]
        fn cut_text_never_panics(cut in 0usize..300) {
            let _ = summarize(&TEXT[..cut.min(TEXT.len())]);
        }

        #[test]
        fn any_text_summarizes_as_parsed(
            s in "[a-z0-9 =\\[\\]{},\"#\n\\\\\t'\u{a0}\u{2028}\u{85}\u{b}\u{c}\r\u{0}\u{1680}é€]{0,200}"
        ) {
            assert_agrees(&s);
        }

        #[test]
        fn any_lvm_like_text_summarizes_as_parsed(
            s in "(vg0 |\\{|\\}|id|seqno|physical_volumes|pv0|= |\"Pv0001-aaaa-bbbb-cccc-dddd-eeee-ffffff\" |'Pv0002aaaabbbbccccddddeeeeffffff' |\"AbCdEf-0123-4567-89ab-cdef-ghij-KLMNop\" |'AbCdEf0123456789abcdefghij!#KLMN' |\\[|\\]|, |7 |010 |x |\\\\|#c|\n){0,60}"
        ) {
            assert_agrees(&s);
        }

        #[test]
        fn cut_text_summarizes_as_parsed(cut in 0usize..300) {
            assert_agrees(&TEXT[..cut.min(TEXT.len())]);
        }
    }
}
