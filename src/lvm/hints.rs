//! PV hints that outlive a process, as LVM keeps `/run/lvm/hints`: which
//! devices held which VG's PVs at the last scan of the whole system, so a
//! later process reads those devices instead of every block device.
//!
//! A hint is only a place to look first, never a source of metadata:
//! - it is used only while the system's block devices are as they were when
//!   it was written: the same `/proc/partitions` (less device-mapper
//!   devices) and the same device-mapper devices that are not LVs. A
//!   device-mapper device not seen then is asked for its UUID, one ioctl;
//!   only LVs (UUID `LVM-`) leave the hints in force;
//! - each hinted device's label must still carry the hinted PV id, and its
//!   newest metadata the hinted VG id and no PV the hint lacks;
//! - whatever disagrees, the caller scans everything and writes new hints.
//!
//! Like LVM's, hints cannot see a PV copied (`dd`) onto a device that was
//! already there and not a PV; delete the file to force a full scan.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::blockdev::BlockDev;
use super::error::Result;
use super::id::{PvId, VgId};
use super::scan::{self, FoundText, ScannedPv, candidates_except, read_pv_dev, scan_devices};

/// Where lvsnap keeps its hints (a tmpfs: they do not survive a reboot).
pub const DEFAULT_HINTS: &str = "/run/lvsnap/hints";

const MAGIC: &str = "lvsnap-hints 1";

/// The block devices as hints record them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Devices {
    /// Entries of `/proc/partitions` that are not device-mapper devices:
    /// (name, size in KiB). The kernel leaves out devices of size 0, so a
    /// loop device that gets a backing file counts as new.
    disks: BTreeSet<(String, u64)>,
    /// Device-mapper devices that are not LVs: (minor, name).
    other_dm: BTreeSet<(u32, String)>,
    /// Device-mapper devices that are LVs: (minor, name).
    lvs: BTreeSet<(u32, String)>,
}

/// A PV as a hint names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintedPv {
    /// The PV id.
    pub pv_id: PvId,
    /// The device it was found on.
    pub path: PathBuf,
}

/// A volume group as a hint names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintedVg {
    /// The VG id.
    pub id: VgId,
    /// Its PVs that were found.
    pub pvs: Vec<HintedPv>,
}

/// Hints read from their file, checked against the system's devices.
#[derive(Debug, Clone)]
pub struct Hints {
    devices: Devices,
    vgs: BTreeMap<String, HintedVg>,
}

impl Hints {
    /// The hint for volume group `name`.
    pub fn vg(&self, name: &str) -> Option<&HintedVg> {
        self.vgs.get(name)
    }
}

/// The non-device-mapper entries of `/proc/partitions`.
fn disks_now() -> Option<BTreeSet<(String, u64)>> {
    let text = fs::read_to_string("/proc/partitions").ok()?;
    let mut out = BTreeSet::new();
    for line in text.lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [_major, _minor, blocks, name] = w[..] else {
            continue;
        };
        if name.starts_with("dm-") {
            continue;
        }
        out.insert((name.to_owned(), blocks.parse().ok()?));
    }
    Some(out)
}

/// The device-mapper devices: (minor, name), one ioctl.
fn dm_now() -> Option<Vec<(u32, String)>> {
    let dm = crate::dm::DmControl::shared().ok()?;
    let devs = dm.dm().list_devices().ok()?;
    Some(
        devs.into_iter()
            .map(|(name, dev, _)| (dev.minor, name.to_string()))
            .collect(),
    )
}

/// Whether device-mapper device `name` is an LV (its UUID starts `LVM-`).
fn is_lv(name: &str) -> Option<bool> {
    use devicemapper::{DevId, DmName};
    let dm = crate::dm::DmControl::shared().ok()?;
    let info = dm
        .dm()
        .device_info(&DevId::Name(DmName::new(name).ok()?))
        .ok()?;
    Some(
        info.uuid()
            .is_some_and(|u| u.to_string().starts_with("LVM-")),
    )
}

impl Devices {
    /// The devices now, each device-mapper device asked whether it is an LV.
    fn now() -> Option<Devices> {
        let mut d = Devices {
            disks: disks_now()?,
            ..Devices::default()
        };
        for (minor, name) in dm_now()? {
            if is_lv(&name)? {
                d.lvs.insert((minor, name));
            } else {
                d.other_dm.insert((minor, name));
            }
        }
        Some(d)
    }

    /// The kernel names (`dm-<minor>`) of the LVs.
    fn lv_disk_names(&self) -> HashSet<String> {
        self.lvs.iter().map(|(m, _)| format!("dm-{m}")).collect()
    }

    /// Whether the system's devices are still these: `Some(None)` if so,
    /// `Some(Some(newer))` if they are but for LVs made since (asked one
    /// ioctl each), `None` if not (or if that cannot be told).
    fn still(&self) -> Option<Option<Devices>> {
        if disks_now()? != self.disks {
            log::debug!("hints: block devices changed");
            return None;
        }
        let mut seen_other = 0;
        let mut lvs = BTreeSet::new();
        let mut new_lvs = false;
        for key in dm_now()? {
            if self.other_dm.contains(&key) {
                seen_other += 1;
            } else if self.lvs.contains(&key) {
                lvs.insert(key);
            } else if is_lv(&key.1)? {
                new_lvs = true;
                lvs.insert(key);
            } else {
                log::debug!("hints: new device-mapper device {}", key.1);
                return None;
            }
        }
        if seen_other != self.other_dm.len() {
            log::debug!("hints: a device-mapper device went away");
            return None;
        }
        Some(new_lvs.then(|| Devices {
            lvs,
            ..self.clone()
        }))
    }
}

/// Reads the hints at `path`, if they are there and still hold for the
/// system's devices (see the module docs). Rewrites them when LVs were
/// made since, so the next reader need not ask about those again.
pub fn load(path: &Path) -> Option<Hints> {
    let text = fs::read_to_string(path).ok()?;
    let hints = parse(&text)?;
    match hints.devices.still()? {
        None => Some(hints),
        Some(devices) => {
            let hints = Hints { devices, ..hints };
            write(path, &hints);
            Some(hints)
        }
    }
}

fn parse(text: &str) -> Option<Hints> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    if lines.next()? != MAGIC {
        return None;
    }
    let mut devices = Devices::default();
    let mut vgs: BTreeMap<String, HintedVg> = BTreeMap::new();
    for line in lines {
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "disk" => {
                let (blocks, name) = rest.split_once(' ')?;
                devices
                    .disks
                    .insert((name.to_owned(), blocks.parse().ok()?));
            }
            "dm" | "lv" => {
                let (minor, name) = rest.split_once(' ')?;
                let key = (minor.parse().ok()?, name.to_owned());
                if kind == "dm" {
                    devices.other_dm.insert(key);
                } else {
                    devices.lvs.insert(key);
                }
            }
            "pv" => {
                let mut w = rest.splitn(4, ' ');
                let (vg, id, pv_id, dev) = (w.next()?, w.next()?, w.next()?, w.next()?);
                let id = VgId::parse(id).ok()?;
                let entry = vgs.entry(vg.to_owned()).or_insert_with(|| HintedVg {
                    id,
                    pvs: Vec::new(),
                });
                if entry.id != id {
                    return None;
                }
                entry.pvs.push(HintedPv {
                    pv_id: PvId::parse(pv_id).ok()?,
                    path: PathBuf::from(dev),
                });
            }
            _ => return None,
        }
    }
    Some(Hints { devices, vgs })
}

/// Writes `hints` to `path` whole (a new file renamed over the old), so a
/// reader sees the old hints or the new, never a mix. Failure is only logged:
/// without hints the next reader scans.
fn write(path: &Path, hints: &Hints) {
    let mut s = format!("# lvsnap: where a scan found PVs; safe to delete\n{MAGIC}\n");
    for (name, blocks) in &hints.devices.disks {
        let _ = writeln!(s, "disk {blocks} {name}");
    }
    for (kind, set) in [("dm", &hints.devices.other_dm), ("lv", &hints.devices.lvs)] {
        for (minor, name) in set {
            let _ = writeln!(s, "{kind} {minor} {name}");
        }
    }
    for (name, vg) in &hints.vgs {
        for pv in &vg.pvs {
            let _ = writeln!(s, "pv {name} {} {} {}", vg.id, pv.pv_id, pv.path.display());
        }
    }
    // One record a line: a name with a line break (or a path that is not
    // UTF-8) would not read back the same, so such a system keeps no hints.
    match parse(&s) {
        Some(back) if back.devices == hints.devices && back.vgs == hints.vgs => {}
        _ => {
            let _ = fs::remove_file(path);
            return;
        }
    }
    let r = (|| {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        // One temporary file per writer, threads of one process included:
        // two writers of one file could rename the other's half-written text.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let mut tmp = path.as_os_str().to_owned();
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        tmp.push(format!(".{}.{n}", std::process::id()));
        fs::write(&tmp, &s)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = r {
        log::debug!("writing hints {}: {e}", path.display());
    }
}

/// Scans the whole system, as [`scan::scan`] does, and records at `path`
/// where it found each VG's PVs.
pub(crate) fn full_scan(path: &Path, known: Option<&FoundText>) -> Result<Vec<ScannedPv>> {
    let Some(devices) = Devices::now() else {
        return scan_devices(scan::candidate_devices()?, known, false);
    };
    let scanned = scan_devices(candidates_except(&devices.lv_disk_names())?, known, false)?;
    let vgs = scan::volume_groups(&scanned).into_iter().map(|v| {
        let pvs = v
            .pv_paths
            .iter()
            .filter_map(|p| scanned.iter().find(|s| &s.path == p))
            .map(|s| HintedPv {
                pv_id: s.label.pv_id(),
                path: s.path.clone(),
            })
            .collect();
        (v.name, HintedVg { id: v.id, pvs })
    });
    // Two VGs of one name: no hint can say which is meant.
    let mut map = BTreeMap::new();
    let mut twice = BTreeSet::new();
    for (name, vg) in vgs {
        if map.insert(name.clone(), vg).is_some() {
            twice.insert(name);
        }
    }
    for name in twice {
        map.remove(&name);
    }
    write(path, &Hints { devices, vgs: map });
    Ok(scanned)
}

/// A VG found through its hint, read without its lock: the open devices
/// (writable) and the newest text they hold, for a locked read to confirm.
#[derive(Debug)]
pub struct Primed {
    /// The hinted PVs, opened for reading and writing.
    pub devs: Vec<BlockDev>,
    /// The newest committed text among them.
    pub known: FoundText,
    /// The VG id.
    pub vg_id: VgId,
}

/// Finds VG `vg` through the hints at `path` and reads it without its lock:
/// `None` if there is no hint that holds, or any hinted device disagrees
/// with it (the caller then scans).
pub fn prime(path: &Path, vg: &str) -> Option<Primed> {
    let hints = load(path)?;
    let h = hints.vg(vg)?;
    let mut devs = Vec::new();
    let mut newest: Option<FoundText> = None;
    for pv in &h.pvs {
        let dev = BlockDev::open(&pv.path, true).ok()?;
        let scanned = read_pv_dev(&dev, None).ok()??;
        if scanned.label.pv_id() != pv.pv_id {
            log::debug!(
                "hints: {} no longer holds PV {}",
                pv.path.display(),
                pv.pv_id
            );
            return None;
        }
        let t = scanned
            .areas
            .into_iter()
            .filter_map(|a| a.committed?.ok())
            .filter(|t| t.summary.vg_name == vg)
            .max_by_key(|t| t.summary.seqno);
        if let Some(t) = t {
            if t.summary.vg_id != h.id {
                return None;
            }
            if newest
                .as_ref()
                .is_none_or(|n| n.summary.seqno < t.summary.seqno)
            {
                newest = Some(t);
            }
        }
        devs.push(dev);
    }
    let known = newest?;
    let all_hinted = known
        .summary
        .pv_ids
        .iter()
        .all(|id| h.pvs.iter().any(|p| p.pv_id == *id));
    all_hinted.then(|| Primed {
        devs,
        known,
        vg_id: h.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_read_back_as_written() {
        let dir = std::env::temp_dir().join(format!("lvsnap-hints-{}", std::process::id()));
        let path = dir.join("hints");
        let mut devices = Devices::default();
        devices.disks.insert(("loop0".into(), 524288));
        devices.other_dm.insert((3, "crypt with space".into()));
        devices.lvs.insert((1, "vg0-lv".into()));
        let mut vgs = BTreeMap::new();
        vgs.insert(
            "vg0".to_string(),
            HintedVg {
                id: VgId::parse("AbCdEf-0123-4567-89ab-cdef-ghij-KLMNop").unwrap(),
                pvs: vec![HintedPv {
                    pv_id: PvId::parse("Pv0001-aaaa-bbbb-cccc-dddd-eeee-ffffff").unwrap(),
                    path: "/dev/loop0".into(),
                }],
            },
        );
        write(
            &path,
            &Hints {
                devices: devices.clone(),
                vgs: vgs.clone(),
            },
        );
        let back = parse(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.devices, devices);
        assert_eq!(back.vgs, vgs);
        // A name that would not read back leaves no file.
        devices.lvs.insert((2, "bad\nname".into()));
        write(&path, &Hints { devices, vgs });
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    const PV_1: &str = "Pv0001aaaabbbbccccddddeeeeffffff";
    const PV_2: &str = "Pv0002-aaaa-bbbb-cccc-dddd-eeee-ffffff";

    #[test]
    fn broken_hints_are_not_used() {
        for t in [
            "",
            "lvsnap-hints 2\n",
            "lvsnap-hints 1\nwhat 1\n",
            "lvsnap-hints 1\ndisk x loop0\n",
            "lvsnap-hints 1\npv vg0 AbCdEf0123456789abcdefghijKLMNop {PV_1} /dev/a\n\
             pv vg0 AbCdEf0123456789abcdefghijKLMNoq {PV_2} /dev/b\n",
            "lvsnap-hints 1\npv vg0 id1 {PV_1} /dev/a\n",
            "lvsnap-hints 1\npv vg0 AbCdEf0123456789abcdefghijKLMNop p1 /dev/a\n",
        ] {
            let t = t.replace("{PV_1}", PV_1).replace("{PV_2}", PV_2);
            assert!(parse(&t).is_none(), "{t:?}");
        }
        let one =
            format!("lvsnap-hints 1\npv vg0 AbCdEf0123456789abcdefghijKLMNop {PV_1} /dev/a\n");
        assert!(parse(&one).is_some());
    }
}
