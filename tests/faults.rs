//! Fault tests: lvsnap killed (SIGKILL) before each step that changes the
//! kernel or the disk, a power cut (dm-flakey `drop_writes` under every PV)
//! at swept steps, and failing writes (dm-flakey `error_writes`) on the data
//! PV and on the metadata PV, during create, delete, rollback (merge) and
//! restore. The steps are counted by the `fault-injection` build of the CLI
//! (src/fault.rs), so each point is deterministic.
//!
//! After each fault, LVM2 is the judge: `vgck` passes, the metadata is the
//! old or the new state (a command that failed left the old one, one that
//! succeeded the new one), and after the next lvsnap command (any: `list`
//! here) no device of the VG is suspended or has a pending table, none is
//! left over, and the data reads back as it should.
//!
//! The tests run side by side: each has its own VG (its own name, flakey
//! devices and loop devices), and every check looks at that VG alone (its
//! devices, named `<vg>-…`; LVM commands naming it), so what another test's
//! faults leave cannot change what one asserts.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{LoopDev, read_at, require_dm, sh, write_pattern};
use devicemapper::{DM, DevId, DmFlags, DmName, DmOptions};
use lvsnap::snapshot::{RollbackState, SnapSize, SnapshotOptions, State, VolumeGroup};

const MIB: usize = 1 << 20;

/// The origin's size, in MiB.
const ORIGIN_MIB: usize = 32;

/// A VG of one test, on two flakey devices: `<vg>_pv0` holds the only
/// metadata area (its extents taken by an inactive pad LV, so nothing else
/// lands there), `<vg>_pv1` is a data PV with no metadata area and holds
/// every LV (the origin `a` first, filled with its pattern).
struct Fvg {
    /// The VG name; no other test uses it (nor a name it is a prefix of
    /// followed by `-`), so `<vg>-` names this VG's devices alone.
    name: &'static str,
    loops: Vec<LoopDev>,
    /// Each PV's healthy flakey table.
    tables: Vec<String>,
    /// The bytes LVM last judged and its view of them.
    judged: Mutex<Option<(Option<Vec<u8>>, LvmView)>>,
}

impl Fvg {
    fn new(name: &'static str) -> Fvg {
        let sizes = [9 << 20, 161 << 20];
        let loops: Vec<LoopDev> = sizes.iter().map(|&b| LoopDev::new(b)).collect();
        let tables: Vec<String> = loops
            .iter()
            .zip(sizes)
            .map(|(l, b)| flakey_table(&l.path, b))
            .collect();
        let vg = Fvg {
            name,
            loops,
            tables,
            judged: Mutex::new(None),
        };
        for (i, t) in vg.tables.iter().enumerate() {
            flakey_create(&vg.pv(i), t);
        }
        let (pv0, pv1) = (vg.pv_path(0), vg.pv_path(1));
        vg.lvm(&[
            &format!("pvcreate -q --metadatacopies 0 {pv1}"),
            // pv0 becomes a PV with one metadata area, as `pvcreate` makes it.
            &format!("vgcreate -q -s 1M {name} {pv0} {pv1}"),
            // Skipped by activation: a VG-wide `vgchange -ay` leaves it be.
            &format!("lvcreate -q -y -Zn -an -ky -l 100%PVS -n pad {name} {pv0}"),
            &format!("lvcreate -q -y -L {ORIGIN_MIB}M -n a {name} {pv1}"),
        ]);
        for m in 0..ORIGIN_MIB {
            write_pattern(
                Path::new(&vg.origin()),
                (m * MIB) as u64,
                MIB,
                0x10 + m as u8,
            );
        }
        vg
    }

    /// The flakey device under PV `i`.
    fn pv(&self, i: usize) -> String {
        format!("{}_pv{i}", self.name)
    }

    fn pv_path(&self, i: usize) -> String {
        format!("/dev/mapper/{}", self.pv(i))
    }

    /// Both flakey devices, comma-separated, as `LVSNAP_FAULT` takes them.
    fn both_pvs(&self) -> String {
        format!("{},{}", self.pv(0), self.pv(1))
    }

    /// `<vg>/<lv>`, as the CLI and LVM take an LV.
    fn lv(&self, lv: &str) -> String {
        format!("{}/{lv}", self.name)
    }

    /// The node of the VG's device `dev` (`a`, `s1-cow`, ...).
    fn dev(&self, dev: &str) -> String {
        format!("/dev/mapper/{}-{dev}", self.name)
    }

    fn origin(&self) -> String {
        self.dev("a")
    }
}

impl Drop for Fvg {
    /// Removes the VG's devices and the PVs under them (the loop devices and
    /// their files go next): nothing of the VG is left for the next test.
    fn drop(&mut self) {
        let Ok(dm) = DM::new() else { return };
        let pvs = [self.pv(0), self.pv(1)];
        for name in &pvs {
            if let Ok(n) = DmName::new(name) {
                // A resume (no DM_SUSPEND flag), so that nothing above waits.
                let _ = dm.device_suspend(&DevId::Name(n), DmOptions::default());
            }
        }
        self.remove_devices(&dm);
        for name in &pvs {
            if let Ok(n) = DmName::new(name) {
                if dm
                    .device_remove(&DevId::Name(n), DmOptions::default())
                    .is_ok()
                {
                    let _ = std::fs::remove_file(format!("/dev/mapper/{name}"));
                }
            }
        }
        let _ = std::fs::remove_dir_all(format!("/dev/{}", self.name));
        let _ = &self.loops;
    }
}

/// The flakey device maps its loop device (`bytes` long) from 1 MiB on,
/// so the PV label is seen once (on the flakey device), not also on the
/// loop device.
fn flakey_table(dev: &Path, bytes: u64) -> String {
    format!(
        "0 {} flakey {} 2048 100000 0",
        bytes / 512 - 2048,
        dev.display()
    )
}

/// `dmsetup create NAME --table TABLE` and its node, through ioctls (two
/// dmsetup processes less per PV).
fn flakey_create(name: &str, table: &str) {
    let dm = DM::new().expect("dm");
    let dm_name = DmName::new(name).expect("name");
    let info = dm
        .device_create(dm_name, None, DmOptions::default())
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let id = DevId::Name(dm_name);
    let w: Vec<&str> = table.splitn(4, ' ').collect();
    let line = [(
        w[0].parse::<u64>().expect("start"),
        w[1].parse::<u64>().expect("length"),
        w[2].to_string(),
        w[3].to_string(),
    )];
    dm.table_load(&id, &line, DmOptions::default())
        .unwrap_or_else(|e| panic!("load {name}: {e}"));
    dm.device_suspend(&id, DmOptions::default())
        .unwrap_or_else(|e| panic!("resume {name}: {e}"));
    // No udev in the VM: the node is made here, as `dmsetup mknodes` does.
    let dev = info.device();
    let node = std::ffi::CString::new(format!("/dev/mapper/{name}")).expect("path");
    // SAFETY: a NUL-terminated path; mknod reads nothing else.
    let r = unsafe {
        libc::mknod(
            node.as_ptr(),
            libc::S_IFBLK | 0o660,
            libc::makedev(dev.major, dev.minor),
        )
    };
    assert_eq!(r, 0, "mknod {name}: {}", std::io::Error::last_os_error());
}

/// Runs the CLI with `fault` in `LVSNAP_FAULT` (if any): whether it was
/// killed, its exit code, its stderr.
fn run(args: &[&str], fault: Option<&str>) -> (bool, i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvsnap"));
    c.args(args);
    match fault {
        Some(f) => c.env("LVSNAP_FAULT", f),
        None => c.env_remove("LVSNAP_FAULT"),
    };
    let out = c.output().expect("run lvsnap");
    use std::os::unix::process::ExitStatusExt;
    let killed = out.status.signal() == Some(libc::SIGKILL);
    (
        killed,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A device of the VG as the kernel has it.
#[derive(Debug)]
struct Dev {
    /// Its name less the VG's `<vg>-` (`a`, `a-real`, `s1-cow`, ...).
    name: String,
    suspended: bool,
    inactive: bool,
    table: String,
}

/// What LVM sees: `vgck` must pass; the LVs (hidden ones too) and their
/// tags; the seqno.
#[derive(Debug, Clone, PartialEq)]
struct LvmView {
    lvs: BTreeSet<String>,
    tagged: BTreeSet<String>,
    merging: BTreeSet<String>,
    seqno: u64,
    /// The thin pool `pool`'s transaction id, if there is one.
    tid: Option<u64>,
    /// Thin LVs by their thin device id.
    thin_ids: BTreeSet<(u64, String)>,
}

/// Runs LVM commands one after another in one `lvm` process (its script
/// mode), which stops at the first that fails: one process start instead
/// of one per command. Panics unless all succeed; returns their stdout.
fn lvm_script(cmds: &[String]) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let script = std::env::temp_dir().join(format!(
        "lvsnap-faults-{}-{}.lvm",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // The script mode takes a file whose first line starts with "#!";
    // lines are split at blanks, with no shell quoting.
    std::fs::write(&script, format!("#!lvm\n{}\n", cmds.join("\n"))).expect("lvm script");
    let out = common::output(&["lvm", &script.display().to_string()]);
    let _ = std::fs::remove_file(&script);
    out
}

/// `len` bytes at `off` of `dev`, read in whole 512-byte sectors.
fn read_span(dev: &Path, off: u64, len: u64) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let from = off / 512 * 512;
    let to = (off + len).div_ceil(512) * 512;
    let b = read_at(dev, from, (to - from) as usize);
    b[(off - from) as usize..(off - from + len) as usize].to_vec()
}

fn visible(v: &LvmView) -> BTreeSet<String> {
    v.lvs
        .iter()
        .filter(|l| !l.starts_with("snapshot"))
        .cloned()
        .collect()
}

/// The table of device `name` among `devs` (its target types).
fn table_in(devs: &[Dev], name: &str) -> String {
    devs.iter()
        .find(|d| d.name == name)
        .map(|d| d.table.clone())
        .unwrap_or_default()
}

/// The bytes the origin was filled with (pattern `base`).
fn check_pattern(dev: &str, base: u8, changed: Option<u8>, at: &str) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    // Opened once, O_DIRECT (what the disk holds, not the page cache).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
        .unwrap_or_else(|e| panic!("{at}: open {dev}: {e}"));
    let mut raw = vec![0u8; 2 * 4096];
    let start = raw.as_ptr().align_offset(4096);
    let got = &mut raw[start..start + 4096];
    for m in 0..ORIGIN_MIB {
        f.read_exact_at(got, (m * MIB) as u64)
            .unwrap_or_else(|e| panic!("{at}: read {dev} at MiB {m}: {e}"));
        let want = match changed {
            Some(c) if m < CHANGED_MIB => c,
            _ => base + m as u8,
        };
        // A slice compare (memcmp), not a byte loop: tests build unoptimized.
        assert!(
            *got == [want; 4096],
            "{at}: {dev} MiB {m} holds {:#x}, expected {want:#x}",
            got[0]
        );
    }
}

/// MiB of the origin overwritten after the snapshot, for rollback.
const CHANGED_MIB: usize = 4;

impl Fvg {
    /// [`lvm_script`], each command reading only this VG's two PVs (a
    /// `global_filter` given with `--config`): LVM sees the VG whole and no
    /// other test's devices, and scans 2 devices, not every one of theirs.
    fn lvm(&self, cmds: &[&str]) -> String {
        // The script mode splits lines at blanks and quotes nothing: the
        // config value goes as one word, its quotes to LVM's parser.
        let filter = format!(
            "--config devices/global_filter=[\"a|^/dev/mapper/{}_pv[01]$|\",\"r|.*|\"]",
            self.name
        );
        let cmds: Vec<String> = cmds
            .iter()
            .map(|c| match c.split_once(' ') {
                Some((cmd, args)) => format!("{cmd} {filter} {args}"),
                None => format!("{c} {filter}"),
            })
            .collect();
        lvm_script(&cmds)
    }

    /// Both PVs healthy again (after a fault the injection switched in):
    /// through ioctls, not six dmsetup processes per point.
    fn flakey_up(&self) {
        let dm = DM::new().expect("dm");
        for (i, t) in self.tables.iter().enumerate() {
            let name = self.pv(i);
            let id = DevId::Name(DmName::new(&name).expect("name"));
            let w: Vec<&str> = t.splitn(4, ' ').collect();
            let table = [(
                w[0].parse::<u64>().expect("start"),
                w[1].parse::<u64>().expect("length"),
                w[2].to_string(),
                w[3].to_string(),
            )];
            dm.table_load(&id, &table, DmOptions::default())
                .expect("flakey load");
            dm.device_suspend(
                &id,
                DmOptions::default().set_flags(DmFlags::DM_SUSPEND | DmFlags::DM_NOFLUSH),
            )
            .expect("flakey suspend");
            dm.device_suspend(&id, DmOptions::default())
                .expect("flakey resume");
        }
    }

    /// The names of the VG's devices, in full.
    fn device_names(&self, dm: &DM) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        let Ok(list) = dm.list_devices() else {
            return Vec::new();
        };
        list.into_iter()
            .map(|(n, _, _)| n.to_string())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// Removes every device of the VG, holders before what they hold (a few
    /// passes), each resumed first so that none waits on a suspended one.
    fn remove_devices(&self, dm: &DM) {
        for _ in 0..4 {
            let names = self.device_names(dm);
            if names.is_empty() {
                return;
            }
            for n in &names {
                let Ok(name) = DmName::new(n) else { continue };
                let id = DevId::Name(name);
                let _ = dm.device_suspend(&id, DmOptions::default());
                if dm.device_remove(&id, DmOptions::default()).is_ok() {
                    // No udev in the VM: the node goes as `dmsetup remove` takes it.
                    let _ = std::fs::remove_file(format!("/dev/mapper/{n}"));
                }
            }
        }
    }

    /// The VG's devices as the kernel has them, sorted by name.
    fn devices(&self) -> Vec<Dev> {
        let dm = DM::new().expect("dm");
        let mut out = Vec::new();
        for name in self.device_names(&dm) {
            let id = DevId::Name(DmName::new(&name).expect("name"));
            // The table ioctl reports the device's flags too: one ioctl each.
            let (f, t) = match dm.table_status(
                &id,
                DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE | DmFlags::DM_NOFLUSH),
            ) {
                Ok((i, t)) => (i.flags(), t),
                Err(_) => {
                    let Ok(i) = dm.device_info(&id) else { continue };
                    (i.flags(), Vec::new())
                }
            };
            out.push(Dev {
                name: name[self.name.len() + 1..].to_string(),
                suspended: f.contains(DmFlags::DM_SUSPEND),
                inactive: f.contains(DmFlags::DM_INACTIVE_PRESENT),
                table: t.iter().map(|l| l.2.clone()).collect::<Vec<_>>().join(","),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// No device of the VG suspended or with a pending table.
    fn assert_settled(&self, at: &str) {
        let devs = self.devices();
        assert!(
            devs.iter().all(|d| !d.suspended && !d.inactive),
            "{at}: {devs:?}"
        );
    }

    /// No device suspended or with a pending table; exactly `want` devices
    /// (named without the `<vg>-`); returns them.
    fn assert_devices(&self, want: &[&str], at: &str) -> Vec<Dev> {
        let devs = self.devices();
        for d in &devs {
            assert!(
                !d.suspended && !d.inactive,
                "{at}: {} left suspended={} inactive-table={}: {devs:?}",
                d.name,
                d.suspended,
                d.inactive
            );
        }
        let have: BTreeSet<&str> = devs.iter().map(|d| d.name.as_str()).collect();
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(have, want, "{at}: leftover or missing devices: {devs:?}");
        devs
    }

    fn table_of(&self, name: &str) -> String {
        table_in(&self.devices(), name)
    }

    /// The whole origin and snapshot contents as they should be: the origin
    /// holds pattern 0x10.. (or 0xEE over its first MiB after a change), the
    /// snapshot the original pattern.
    fn data_ok(&self, origin_changed: bool, snaps: &[&str], at: &str) {
        check_pattern(&self.origin(), 0x10, origin_changed.then_some(0xEE), at);
        for s in snaps {
            check_pattern(&self.dev(s), 0x10, None, at);
        }
    }

    /// Overwrites the origin's first [`CHANGED_MIB`] MiB with 0xEE, or
    /// writes its pattern back there.
    fn change_origin(&self, changed: bool) {
        for m in 0..CHANGED_MIB {
            let byte = if changed { 0xEE } else { 0x10 + m as u8 };
            write_pattern(Path::new(&self.origin()), (m * MIB) as u64, MIB, byte);
        }
    }

    /// An unfaulted lvsnap operation through the library, in this process:
    /// the CLI's code without its process start (~0.3 s in the VM), for the
    /// steps between faults. `["list"]`, `["create", origin, name]` (8 MiB),
    /// `["delete", name]`, `["rollback", name]` (waited for). Returns the
    /// error, if any, and whether recovery repaired anything first.
    fn lib(&self, args: &[&str]) -> (Result<(), String>, bool) {
        let vg = match VolumeGroup::open(self.name) {
            Ok(v) => v,
            Err(e) => return (Err(e.to_string()), false),
        };
        let r = (|| -> Result<(), String> {
            let e = |e: lvsnap::Error| e.to_string();
            match args {
                ["list"] => {
                    vg.snapshots().map_err(e)?;
                }
                ["create", origin, name] => {
                    let size: SnapSize = "8M".parse().map_err(e)?;
                    let opts = SnapshotOptions::default().snapsize(size);
                    vg.create_snapshot(origin, name, &opts).map_err(e)?;
                }
                ["delete", name] => vg.delete_snapshot(name).map_err(e)?,
                ["rollback", name] => {
                    let end = vg.rollback(name).and_then(|mut r| r.wait()).map_err(e)?;
                    if end != RollbackState::Completed {
                        return Err(format!("rollback ended {end}"));
                    }
                }
                _ => panic!("lib: {args:?}"),
            }
            Ok(())
        })();
        let repaired = !vg.take_recovery().repairs.is_empty();
        (r, repaired)
    }

    /// [`Fvg::lib`], which must succeed.
    fn lib_ok(&self, args: &[&str], at: &str) -> bool {
        let (r, repaired) = self.lib(args);
        if let Err(e) = r {
            panic!("{at}: {args:?}: {e}");
        }
        repaired
    }

    /// The VG's metadata text, as lvsnap reads it.
    fn text(&self, at: &str) -> String {
        lvsnap::lvm::disk::VgDisk::open(self.name, &Default::default())
            .map(|d| d.text().to_owned())
            .unwrap_or_else(|e| panic!("{at}: reading the metadata: {e}"))
    }

    /// What `lvs` and `vgck` read to judge the VG, or `None` if this test
    /// cannot tell (then LVM is asked): each PV's first 4 KiB (the label,
    /// the PV header, the partition-table sector) and last 128 KiB (where
    /// LVM probes for md and other signatures), and of `<vg>_pv0`'s
    /// metadata area (the only one) the header but for its precommit slot
    /// (which LVM's reads ignore) and the committed text it points at. A
    /// header whose checksum LVM would refuse gives `None`.
    fn lvm_input(&self) -> Option<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8"));
        let mut key = Vec::new();
        let pvs = [self.pv_path(0), self.pv_path(1)];
        for pv in &pvs {
            let size = std::fs::File::open(pv)
                .and_then(|mut f| f.seek(SeekFrom::End(0)))
                .expect("PV size");
            key.extend(read_at(Path::new(pv), 0, 4096));
            key.extend(read_at(Path::new(pv), size - (128 << 10), 128 << 10));
        }
        // The metadata area at 4 KiB, as pvcreate lays it out.
        let pv0 = Path::new(&pvs[0]);
        let h = read_at(pv0, 4096, 512);
        if &h[4..20] != b" LVM2 x[5A%r0N*>" {
            return None;
        }
        // LVM's CRC-32: initial value 0xf597a6cf, no final inversion.
        let mut crc = crc32fast::Hasher::new_with_initial(!0xf597_a6cf);
        crc.update(&h[4..512]);
        if !crc.finalize() != u32::from_le_bytes(h[0..4].try_into().expect("4")) {
            return None;
        }
        // magic, version, start, size and raw_locns[0] (offset, size,
        // checksum, flags); raw_locns[1] (64..88) is the precommit slot.
        key.extend(&h[4..64]);
        let (start, size) = (u64_at(&h, 24), u64_at(&h, 32));
        let (off, len) = (u64_at(&h, 40), u64_at(&h, 48));
        if start != 4096 || off < 512 || off >= size || len > size - 512 {
            return None;
        }
        // The text wraps from the area's end to just past its header.
        let first = len.min(size - off);
        key.extend(read_span(pv0, start + off, first));
        key.extend(read_span(pv0, start + 512, len - first));
        key.extend(&h[88..512]);
        Some(key)
    }

    /// [`Fvg::view`] after `before` (LVM commands run first, in the same
    /// `lvm` process).
    fn view_after(&self, before: &[&str]) -> LvmView {
        let vg = self.name;
        let lvs = format!(
            "lvs -a --noheadings --separator ; \
             -o lv_name,lv_tags,lv_attr,vg_seqno,transaction_id,thin_id {vg}"
        );
        let vgck = format!("vgck {vg}");
        let mut cmds = before.to_vec();
        // `vgck` (LVM's vg_validate) must pass the same metadata `lvs` reports.
        cmds.extend([lvs.as_str(), vgck.as_str()]);
        let out = self.lvm(&cmds);
        let mut v = LvmView {
            lvs: BTreeSet::new(),
            tagged: BTreeSet::new(),
            merging: BTreeSet::new(),
            seqno: 0,
            tid: None,
            thin_ids: BTreeSet::new(),
        };
        for l in out.lines().filter(|l| l.contains(';')) {
            let f: Vec<&str> = l.trim().split(';').collect();
            v.seqno = f.get(3).and_then(|n| n.trim().parse().ok()).expect("seqno");
            let name = f[0].trim_matches(['[', ']']).to_string();
            if name == "pool" {
                v.tid = f.get(4).and_then(|t| t.trim().parse().ok());
            }
            if let Some(id) = f.get(5).and_then(|t| t.trim().parse().ok()) {
                v.thin_ids.insert((id, name.clone()));
            }
            if name == "pad" {
                continue;
            }
            if f.get(1)
                .is_some_and(|t| t.contains("lvsnap_restore_incomplete"))
            {
                v.tagged.insert(name.clone());
            }
            // lv_attr 'S' (merging snapshot) or 'O' (origin with merging snapshot).
            if f.get(2).is_some_and(|a| a.starts_with('S')) {
                v.merging.insert(name.clone());
            }
            v.lvs.insert(name);
        }
        assert!(v.lvs.contains("a"), "lvs reported no origin: {out}");
        *self.judged.lock().expect("judged") = Some((self.lvm_input(), v.clone()));
        v
    }

    /// What LVM sees (`lvs`, with `vgck` passing). Every field is LVM's
    /// reading of the on-disk metadata alone (names, tags, the attr's volume
    /// type, seqno, transaction and thin ids), so when the bytes LVM reads
    /// are the ones it last judged, bit for bit, that judgement stands and
    /// is not run again (each lvm command costs ~0.3-0.5 s in the VM).
    fn view(&self) -> LvmView {
        if let Some((Some(bytes), v)) = self.judged.lock().expect("judged").as_ref() {
            if Some(bytes) == self.lvm_input().as_ref() {
                return v.clone();
            }
        }
        self.view_after(&[])
    }
}
struct Tally {
    op: &'static str,
    points: u32,
    old: u32,
    new: u32,
    failed_landed: u32,
    left_suspended_before: u32,
    repaired: u32,
}

impl Tally {
    fn new(op: &'static str) -> Tally {
        Tally {
            op,
            points: 0,
            old: 0,
            new: 0,
            failed_landed: 0,
            left_suspended_before: 0,
            repaired: 0,
        }
    }
    fn print(&self) {
        eprintln!(
            "FAULTS {}: {} points, old state at {}, new at {} ({}% old-or-new); failed \
             but landed {}; runs that left a device suspended {} (all resumed by the next run); \
             points needing repair {}",
            self.op,
            self.points,
            self.old,
            self.new,
            ((self.old + self.new) * 100)
                .checked_div(self.points)
                .unwrap_or(0),
            self.failed_landed,
            self.left_suspended_before,
            self.repaired
        );
    }
}

impl Fvg {
    /// Runs `args` killed before each step in turn, until a run completes;
    /// `check` judges each point after the next lvsnap run (`list`) and puts
    /// the VG back where the sweep starts from. Returns the points swept.
    fn kill_sweep(
        &self,
        t: &mut Tally,
        args: &[&str],
        mut check: impl FnMut(&mut Tally, u32, &LvmView, &str),
    ) -> u32 {
        let mut n = 1u32;
        loop {
            let (killed, code, err) = run(args, Some(&format!("{n}:kill")));
            if !killed {
                assert_eq!(code, 0, "{args:?} with no fault left: {err}");
                assert!(
                    n > 1,
                    "no kill point fired: is fault injection compiled in?"
                );
                return n - 1;
            }
            t.points += 1;
            if self.devices().iter().any(|d| d.suspended) {
                t.left_suspended_before += 1;
            }
            if self.lib_ok(&["list"], &format!("list after kill {n} of {args:?}")) {
                t.repaired += 1;
            }
            let view = self.view();
            check(t, n, &view, &format!("{args:?} killed at {n}"));
            n += 1;
            assert!(n < 200, "runaway sweep");
        }
    }
}

/// Create, killed at every step: afterwards the snapshot exists whole or
/// not at all, and the next create works.
#[test]
fn kill_sweep_create_and_delete() {
    require_dm();
    let vg = Fvg::new("fkcd");
    let base = vg.view();
    let mut t = Tally::new("create (SIGKILL)");
    let origin = vg.lv("a");
    // The first snapshot of the origin, then a second one beside it.
    for (snap, others) in [("s1", vec![]), ("s2", vec!["s1"])] {
        // The first sweep's last (unkilled) run left its snapshot.
        for o in &others {
            assert!(vg.view().lvs.contains(*o), "{o} missing before the sweep");
        }
        let create = ["create", origin.as_str(), snap, "--snapsize", "8M"];
        let devs = |with: &[&str]| -> Vec<String> {
            let mut d = vec!["a".to_string()];
            if !with.is_empty() {
                d.push("a-real".into());
            }
            for s in with {
                d.push(s.to_string());
                d.push(format!("{s}-cow"));
            }
            d
        };
        vg.kill_sweep(&mut t, &create, |t, _, v, at| {
            let mut with = others.clone();
            if v.lvs.contains(snap) {
                t.new += 1;
                with.push(snap);
            } else {
                t.old += 1;
                let mut want = visible(&base);
                want.extend(others.iter().map(|s| s.to_string()));
                assert_eq!(visible(v), want, "{at}");
            }
            let d = devs(&with);
            let devs = vg.assert_devices(&d.iter().map(String::as_str).collect::<Vec<_>>(), at);
            let top = if with.is_empty() {
                "linear"
            } else {
                "snapshot-origin"
            };
            assert_eq!(table_in(&devs, "a"), top, "{at}");
            vg.data_ok(false, &with, at);
            if v.lvs.contains(snap) {
                vg.lib_ok(&["delete", snap], at);
            }
        });
    }
    t.print();
    assert_eq!(t.old + t.new, t.points);
    assert!(t.points >= 20, "only {} create points", t.points);
    vg.lib_ok(&["delete", "s1"], "after the create sweep");

    // Delete: of a snapshot with a sibling, then of the last one.
    let mut t = Tally::new("delete (SIGKILL)");
    for (victim, other) in [("s1", Some("s2")), ("s2", None)] {
        let snap = vg.lv(victim);
        let args = ["delete", snap.as_str()];
        for s in [Some(victim), other].into_iter().flatten() {
            if !vg.view().lvs.contains(s) {
                vg.lib_ok(&["create", "a", s], "delete sweep set-up");
            }
        }
        vg.kill_sweep(&mut t, &args, |t, _, v, at| {
            let mut want = vec!["a"];
            let other_cows: Vec<String> = other.iter().map(|o| format!("{o}-cow")).collect();
            want.extend(other.iter());
            want.extend(other_cows.iter().map(String::as_str));
            if v.lvs.contains(victim) {
                t.old += 1;
                let vc = format!("{victim}-cow");
                want.extend(["a-real", victim, vc.as_str()]);
                vg.assert_devices(&want, at);
                let mut snaps = vec![victim];
                snaps.extend(other);
                vg.data_ok(false, &snaps, at);
            } else {
                t.new += 1;
                if other.is_some() {
                    want.push("a-real");
                }
                vg.assert_devices(&want, at);
                vg.data_ok(false, other.as_slice(), at);
                vg.lib_ok(&["create", "a", victim], &format!("{at}: the next create"));
            }
        });
    }
    t.print();
    assert_eq!(t.old + t.new, t.points);
    assert!(t.points >= 20, "only {} delete points", t.points);
    vg.assert_devices(&["a"], "after the delete sweep");
}

/// Rollback (merge, then its finish), killed at every step: afterwards
/// the snapshot is intact and the origin unchanged, or the merge is
/// recorded (and running or done) and completes to the snapshot's data.
#[test]
fn kill_sweep_rollback() {
    require_dm();
    let vg = Fvg::new("fkrb");
    let mut t = Tally::new("rollback (SIGKILL)");
    // Only the MiB a point changed are written back: the rest of the
    // origin holds its pattern throughout (data_ok checks all of it).
    let prepare = || {
        vg.change_origin(false);
        vg.lib_ok(&["create", "a", "s1"], "rollback sweep set-up");
        vg.change_origin(true);
    };
    prepare();
    let snap = vg.lv("s1");
    let args = ["rollback", snap.as_str(), "--wait"];
    vg.kill_sweep(&mut t, &args, |t, _, v, at| {
        if v.lvs.contains("s1") && v.merging.is_empty() {
            t.old += 1;
            let devs = vg.assert_devices(&["a", "a-real", "s1", "s1-cow"], at);
            assert_eq!(table_in(&devs, "a"), "snapshot-origin", "{at}");
            vg.data_ok(true, &["s1"], at);
            // This is the state the sweep starts from, as LVM, the kernel
            // and the data show: the next point's rollback starts from it.
            return;
        } else {
            t.new += 1;
            // Recorded: the next lvsnap run has the kernel merging (a
            // merge table it dropped, or a handover it cancelled, would
            // leave snapshot-origin here), and the next rollback runs it
            // to the end.
            if v.lvs.contains("s1") {
                assert_eq!(vg.table_of("a"), "snapshot-merge", "{at}");
                vg.lib_ok(&["rollback", "s1"], &format!("{at}: resumed rollback"));
                assert!(!vg.view().lvs.contains("s1"), "{at}");
            }
            vg.assert_devices(&["a"], at);
            vg.data_ok(false, &[], at);
        }
        prepare();
    });
    t.print();
    assert_eq!(t.old + t.new, t.points);
    assert!(t.points >= 20, "only {} rollback points", t.points);
}

impl Fvg {
    /// The thin pool's side after a point: its kernel transaction id is the
    /// metadata's, and its devices (thin_ls, on a metadata snapshot of the
    /// live pool) are exactly the thin ids the metadata gives its LVs.
    fn thin_agrees(&self, v: &LvmView, at: &str) {
        let dm = DM::new().expect("dm");
        let tpool = format!("{}-pool-tpool", self.name);
        let id = DevId::Name(DmName::new(&tpool).expect("name"));
        let (_, st) = dm
            .table_status(&id, DmOptions::default().set_flags(DmFlags::DM_NOFLUSH))
            .expect("pool status");
        let kernel: u64 = st[0]
            .3
            .split(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("tid");
        assert_eq!(
            Some(kernel),
            v.tid,
            "{at}: kernel transaction id {kernel}, metadata {:?}",
            v.tid
        );
        let devs = self.live_pool_devices(at);
        let ids: BTreeSet<u64> = v.thin_ids.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            devs, ids,
            "{at}: thin devices in the pool vs the metadata's ids"
        );
    }

    /// The thin device ids in the live pool `<vg>/pool`, as `thin_ls`
    /// reads them from a metadata snapshot.
    fn live_pool_devices(&self, at: &str) -> BTreeSet<u64> {
        let dm = DM::new().expect("dm");
        let tpool = format!("{}-pool-tpool", self.name);
        let id = DevId::Name(DmName::new(&tpool).expect("name"));
        let msg = |m: &str| {
            dm.target_msg(&id, None, m)
                .unwrap_or_else(|e| panic!("{at}: {m}: {e}"));
        };
        msg("reserve_metadata_snap");
        let pool = common::output(&[
            "thin_ls",
            "--metadata-snap",
            "-o",
            "DEV",
            "--no-headers",
            &self.dev("pool_tmeta"),
        ]);
        msg("release_metadata_snap");
        pool.split_whitespace()
            .filter_map(|d| d.parse().ok())
            .collect()
    }
}

/// Thin snapshot create and delete, killed at every step: LVM's two
/// commits around the pool's messages. After the next run the kernel's
/// transaction id is the metadata's, no queued message is left, the pool
/// holds exactly the devices the metadata knows (none lost, none leaked),
/// and the next create or delete works.
#[test]
fn kill_sweep_thin() {
    require_dm();
    let vg = Fvg::new("fkth");
    vg.lvm(&[&format!(
        "lvcreate -q -y -L 8M -T {} -V 8M -n t {}",
        vg.lv("pool"),
        vg.pv_path(1)
    )]);
    let mut t = Tally::new("thin create and delete (SIGKILL)");
    let (thin, snap) = (vg.lv("t"), vg.lv("ts1"));
    for (args, made) in [
        (vec!["create", thin.as_str(), "ts1"], true),
        (vec!["delete", snap.as_str()], false),
    ] {
        vg.kill_sweep(&mut t, &args, |t, _, v, at| {
            vg.thin_agrees(v, at);
            vg.assert_settled(at);
            assert!(
                !vg.text(at).contains("message1 {"),
                "{at}: a pool message is left queued"
            );
            // Back to where the sweep starts, by the next operation.
            if v.lvs.contains("ts1") == made {
                t.new += 1;
                let (r, _) = if made {
                    vg.lib(&["delete", "ts1"])
                } else {
                    vg.lib(&["create", "t", "ts1"])
                };
                r.unwrap_or_else(|e| panic!("{at}: the next operation: {e}"));
            } else {
                t.old += 1;
            }
        });
    }
    t.print();
    assert_eq!(t.old + t.new, t.points);

    // A group of a COW and a thin origin: the pool's messages go out
    // before the one commit (LVM's order), so a run killed in between
    // leaves the pool ahead of the metadata, which recovery undoes.
    let mut t = Tally::new("group of COW and thin (SIGKILL)");
    let args = ["create-group", vg.name, "a=g1", "t=g2", "--snapsize", "8M"];
    vg.kill_sweep(&mut t, &args, |t, _, v, at| {
        vg.thin_agrees(v, at);
        let made = v.lvs.contains("g1");
        assert_eq!(made, v.lvs.contains("g2"), "{at}: half a group: {v:?}");
        let devs = vg.devices();
        assert!(
            devs.iter().all(|d| !d.suspended && !d.inactive),
            "{at}: {devs:?}"
        );
        let cow: Vec<&str> = devs
            .iter()
            .map(|d| d.name.as_str())
            .filter(|n| ["g1", "g1-cow", "a-real"].contains(n))
            .collect();
        assert_eq!(cow.len(), if made { 3 } else { 0 }, "{at}: {devs:?}");
        vg.data_ok(false, if made { &["g1"] } else { &[] }, at);
        if made {
            t.new += 1;
            vg.lib_ok(&["delete", "g1"], at);
            vg.lib_ok(&["delete", "g2"], at);
        } else {
            t.old += 1;
        }
    });
    t.print();
    assert_eq!(t.old + t.new, t.points);
}

/// A pool whose kernel transaction id is ahead of the metadata's (an
/// older metadata restored with vgcfgrestore after a thin create): a thin
/// create is refused with LVM's message before anything is written, the
/// next operation's recovery deletes no thin device, and the pool's
/// devices are still there.
#[test]
fn thin_create_on_a_pool_out_of_step() {
    require_dm();
    let vg = Fvg::new("ftos");
    let name = vg.name;
    let backup = std::env::temp_dir().join(format!("{name}-before.vg"));
    let backup = backup.display();
    let v = vg.view_after(&[
        &format!(
            "lvcreate -q -y -L 8M -T {name}/pool -V 8M -n t {}",
            vg.pv_path(1)
        ),
        &format!("vgcfgbackup -q -f {backup} {name}"),
        &format!("lvcreate -q -s -n lvm_s {name}/t"),
        &format!("vgcfgrestore -q -y --force -f {backup} {name}"),
    ]);
    assert!(!v.lvs.contains("lvm_s"));
    vg.refused_thin_create(
        "ts1",
        "unexpected transaction id",
        "thin create on a pool out of step",
    );
    let text = vg.text("after the refusal");
    assert!(!text.contains("message1 {"), "a message was queued");
    // lvm_s's device (id 2) is still in the pool: nothing deleted it.
    let devs = vg.live_pool_devices("after the refusal");
    assert_eq!(devs, [1, 2].into(), "the pool's devices");

    // The same with the pool inactive: its activation checks the id.
    vg.view_after(&[&format!("vgchange -q -an {name}")]);
    vg.refused_thin_create(
        "ts2",
        "transaction",
        "thin create through an inactive pool out of step",
    );
    assert!(vg.devices().is_empty(), "{:?}", vg.devices());
    let pool = sh(&format!(
        "lvchange -q -ay -y {name}/pool_tmeta && \
         thin_ls -o DEV --no-headers {}; \
         lvchange -q -an {name}/pool_tmeta",
        vg.dev("pool_tmeta")
    ));
    let devs: BTreeSet<u64> = pool
        .split_whitespace()
        .filter_map(|d| d.parse().ok())
        .collect();
    assert_eq!(devs, [1, 2].into(), "the pool's devices");
}

impl Fvg {
    /// A thin snapshot `snap` of `<vg>/t` is refused, with `needle` in the
    /// error, and after the next lvsnap run LVM sees the metadata unchanged.
    fn refused_thin_create(&self, snap: &str, needle: &str, what: &str) {
        let before = self.view();
        let (_, code, err) = run(&["create", &self.lv("t"), snap], None);
        assert_ne!(code, 0, "{what} succeeded");
        assert!(err.contains(needle), "{what}: {err}");
        self.lib_ok(&["list"], "list after the refusal");
        let after = self.view();
        assert_eq!(
            after.seqno, before.seqno,
            "{what}: a refused create changed the metadata"
        );
        assert_eq!(after.lvs, before.lvs, "{what}");
    }
}

/// `dmsetup remove --force` run on a snapshot's devices (its device held
/// open, so the kernel leaves it an `error` table; its `-cow` then gone):
/// `lvsnap delete` works as `lvremove -f` does, and a sibling is untouched.
#[test]
fn delete_after_dmsetup_remove_force() {
    require_dm();
    let vg = Fvg::new("fdrf");
    let name = vg.name;
    vg.lib_ok(&["create", "a", "s1"], "set-up");
    vg.lib_ok(&["create", "a", "s2"], "set-up");
    {
        let _held = std::fs::File::open(vg.dev("s1")).expect("open s1");
        sh(&format!(
            "dmsetup remove --force {name}-s1 2>/dev/null; dmsetup remove --force {name}-s1-cow"
        ));
    }
    assert_eq!(vg.table_of("s1"), "error");
    let (_, code, err) = run(&["delete", &vg.lv("s1")], None);
    assert_eq!(code, 0, "delete after dmsetup remove --force: {err}");
    let v = vg.view();
    assert!(!v.lvs.contains("s1") && v.lvs.contains("s2"), "{v:?}");
    vg.assert_devices(&["a", "a-real", "s2", "s2-cow"], "after the delete");
    assert_eq!(vg.table_of("a"), "snapshot-origin");
    vg.data_ok(false, &["s2"], "after the delete");
    let (_, code, err) = run(&["delete", &vg.lv("s2")], None);
    assert_eq!(code, 0, "{err}");
    vg.assert_devices(&["a"], "after deleting the sibling");
    assert_eq!(vg.table_of("a"), "linear");
    vg.data_ok(false, &[], "after deleting the sibling");
}

/// Restore, killed at every step: the target is complete (untagged) or
/// tagged incomplete (never Ready) and removed by the next run; a re-run
/// and delete work.
#[test]
fn kill_sweep_restore() {
    require_dm();
    let vg = Fvg::new("fkrs");
    let (_, code, err) = run(&["create", &vg.lv("a"), "s1", "--snapsize", "8M"], None);
    assert_eq!(code, 0, "create: {err}");
    let mut t = Tally::new("restore (SIGKILL)");
    let mut shown_not_ready = 0;
    let mut partial_shown_ready = 0;
    let mut marked_point = None;
    let (snap, target) = (vg.lv("s1"), vg.lv("r1"));
    let args = ["restore", snap.as_str(), "r1"];
    let r1 = vg.dev("r1");
    let mut n = 1u32;
    loop {
        let (killed, code, err) = run(&args, Some(&format!("{n}:kill")));
        if !killed {
            assert_eq!(code, 0, "restore with no fault left: {err}");
            assert!(
                n > 1,
                "no kill point fired: is fault injection compiled in?"
            );
            break;
        }
        let at = format!("restore killed at {n}");
        t.points += 1;
        let before = vg.view();
        // Seen by LVM before any lvsnap run: a target is either complete
        // or carries the tag.
        if before.lvs.contains("r1") && !before.tagged.contains("r1") {
            check_pattern(&r1, 0x10, None, &at);
        }
        if before.tagged.contains("r1") {
            // Held open, it stays (a copy might be running): shown NotReady.
            marked_point = Some(n);
            let f = std::fs::File::open(&r1);
            if let Ok(_f) = f {
                // The CLI's report at the first such point, the library's
                // (which the CLI prints) at the others.
                let (ready, not_ready, reason) = if shown_not_ready == 0 {
                    let out = Command::new(env!("CARGO_BIN_EXE_lvsnap"))
                        .args(["status", &target, "--json"])
                        .env_remove("LVSNAP_FAULT")
                        .output()
                        .expect("status");
                    let json = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success(),
                        "{at}: status of a marked target: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    (
                        json.contains("\"Ready\""),
                        json.contains("\"NotReady\""),
                        json.contains("reason"),
                    )
                } else {
                    let st = VolumeGroup::open(vg.name)
                        .and_then(|v| v.snapshot_status("r1"))
                        .unwrap_or_else(|e| panic!("{at}: status of a marked target: {e}"));
                    (
                        st.state == State::Ready,
                        st.state == State::NotReady,
                        st.reason.is_some(),
                    )
                };
                if ready {
                    partial_shown_ready += 1;
                }
                assert!(not_ready, "{at}: a marked target not shown NotReady");
                assert!(reason, "{at}: a marked target shown with no reason");
                shown_not_ready += 1;
            }
        }
        vg.lib_ok(&["list"], &format!("{at}: list"));
        let v = vg.view();
        assert!(v.tagged.is_empty(), "{at}: marked target left: {v:?}");
        if v.lvs.contains("r1") {
            t.new += 1;
            vg.assert_devices(&["a", "a-real", "s1", "s1-cow", "r1"], &at);
            check_pattern(&r1, 0x10, None, &at);
            let (_, code, err) = run(&["delete", &target], None);
            // r1 is a plain LV now, not a snapshot: LVM removes it.
            assert_ne!(code, 0, "{at}: delete of a finished volume: {err}");
            vg.lvm(&[&format!("lvremove -q -y {target}")]);
        } else {
            t.old += 1;
            vg.assert_devices(&["a", "a-real", "s1", "s1-cow"], &at);
        }
        vg.data_ok(false, &["s1"], &at);
        n += 1;
    }
    t.print();
    eprintln!(
        "FAULTS restore: marked targets shown NotReady {shown_not_ready}, partial restores \
         shown Ready {partial_shown_ready}"
    );
    assert!(shown_not_ready > 0, "no point left a marked target");
    assert_eq!(partial_shown_ready, 0);
    assert_eq!(t.old + t.new, t.points);
    assert!(t.points >= 20, "only {} restore points", t.points);
    // A marked target: delete removes it; a re-run starts over.
    vg.lvm(&[&format!("lvremove -q -y {target}")]);
    let p = marked_point.expect("a point left a marked target");
    let (killed, _, _) = run(&args, Some(&format!("{p}:kill")));
    assert!(killed);
    if vg.view().tagged.contains("r1") {
        let (_, code, err) = run(&args, None);
        assert_eq!(code, 0, "re-run on a marked target: {err}");
        check_pattern(&r1, 0x10, None, "re-run");
        assert!(vg.view().tagged.is_empty());
    }
}

/// A power cut (every PV drops its writes from a swept step on, then the
/// machine "reboots": all of the VG's devices gone) during create and
/// delete: LVM finds the old or the new metadata, and lvsnap works on.
#[test]
fn power_cut_sweep() {
    require_dm();
    let vg = Fvg::new("fpcs");
    let name = vg.name;
    // The machine comes back: the PVs work again, the page cache and every
    // device of the VG are gone, LVM activates the VG as a boot does and
    // judges it, and each of its LVs has its devices.
    let reboot = |at: &str| -> LvmView {
        vg.flakey_up();
        vg.remove_devices(&DM::new().expect("dm"));
        assert!(vg.devices().is_empty(), "{at}: {:?}", vg.devices());
        for i in 0..2 {
            flush_bufs(&vg.pv_path(i));
        }
        let v = vg.view_after(&[&format!("vgchange -q -ay {name}")]);
        let snaps = v
            .lvs
            .iter()
            .any(|l| l.starts_with('s') && !l.starts_with("snapshot"));
        let want: Vec<String> = v
            .lvs
            .iter()
            .filter(|l| !l.starts_with("snapshot"))
            .flat_map(|l| {
                if l == "a" && snaps {
                    vec!["a".to_string(), "a-real".to_string()]
                } else if l.starts_with('s') {
                    vec![l.clone(), format!("{l}-cow")]
                } else {
                    vec![l.clone()]
                }
            })
            .collect();
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        vg.assert_devices(&want, &format!("{at}: after the reboot"));
        v
    };
    let (origin, snap) = (vg.lv("a"), vg.lv("s1"));
    for (op, args) in [
        ("create", vec!["create", &origin, "s1", "--snapsize", "8M"]),
        ("delete", vec!["delete", &snap]),
    ] {
        let mut t = Tally::new(if op == "create" {
            "create (power cut)"
        } else {
            "delete (power cut)"
        });
        let mut n = 1u32;
        loop {
            // The state the sweep starts from.
            let has = vg.view().lvs.contains("s1");
            if op == "create" && has {
                vg.lib_ok(&["delete", "s1"], "power cut sweep set-up");
            }
            if op == "delete" && !has {
                vg.lib_ok(&["create", "a", "s1"], "power cut sweep set-up");
            }
            let old = vg.view();
            let fault = format!("{n}:flakey:{}:drop_writes", vg.both_pvs());
            let (_, code, err) = run(&args, Some(&fault));
            let cut = err.contains("fault injection");
            if !cut {
                assert_eq!(code, 0, "{op} with no fault left: {err}");
                break;
            }
            t.points += 1;
            let at = format!("{op}, power cut at {n}");
            let v = reboot(&at);
            let landed = v.lvs.contains("s1") != old.lvs.contains("s1");
            if landed {
                t.new += 1;
                assert_eq!(v.seqno, old.seqno + 1, "{at}");
            } else {
                t.old += 1;
                assert_eq!(v.seqno, old.seqno, "{at}");
                assert_eq!(v.lvs, old.lvs, "{at}");
            }
            vg.data_ok(false, &[], &at);
            // lvsnap works on: the next command clears and succeeds.
            vg.lib_ok(&["list"], &format!("{at}: list"));
            n += 1;
            assert!(n < 100);
        }
        t.print();
        assert_eq!(t.old + t.new, t.points);
        assert!(t.points >= 10, "only {} {op} points", t.points);
    }
}

/// Drops the page cache of block device `dev` (`blockdev --flushbufs`),
/// as a reboot loses it.
fn flush_bufs(dev: &str) {
    use std::os::fd::AsRawFd;
    // BLKFLSBUF, _IO(0x12, 97).
    const BLKFLSBUF: libc::c_ulong = 0x1261;
    let f = std::fs::File::open(dev).expect("open PV");
    // SAFETY: BLKFLSBUF takes no argument; the fd is open for the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKFLSBUF as _, 0) };
    assert_eq!(r, 0, "BLKFLSBUF {dev}: {}", std::io::Error::last_os_error());
}

/// Writes failing on the data PV or on the metadata PV from a swept step
/// on, during create, delete, rollback and restore: a command that
/// succeeded left the new state, one that failed the old; nothing is left
/// suspended; the next run clears what is left over.
#[test]
fn write_error_sweep() {
    require_dm();
    let vg = Fvg::new("fwes");
    let (origin, snap, target) = (vg.lv("a"), vg.lv("s1"), vg.lv("r1"));
    // The VG as the sweep wants it before a point: s1 there or not, no r1,
    // no merge; returns what LVM sees then (one view when nothing changed).
    let ensure = |want_s1: bool, v: LvmView| -> LvmView {
        let mut changed = false;
        if !v.merging.is_empty() {
            // The last, unfaulted, rollback left its merge running.
            vg.lib_ok(&["rollback", "s1"], "finishing a merge");
            changed = true;
        }
        let has = v.lvs.contains("s1") && v.merging.is_empty();
        if has != want_s1 {
            let args: &[&str] = if want_s1 {
                &["create", "a", "s1"]
            } else {
                &["delete", "s1"]
            };
            vg.lib_ok(args, "write error sweep set-up");
            changed = true;
        }
        if v.lvs.contains("r1") {
            // LVM removes a finished restore (a plain LV), and judges the VG
            // in the same process.
            vg.view_after(&[&format!("lvremove -q -y {target}")])
        } else if changed {
            vg.view()
        } else {
            v
        }
    };
    let mut v = vg.view();
    let mut totals = Tally::new("all (write errors)");
    for pv in [vg.pv(1), vg.pv(0)] {
        for (op, args, has_s1) in [
            (
                "create",
                vec!["create", &origin, "s1", "--snapsize", "8M"],
                false,
            ),
            ("delete", vec!["delete", &snap], true),
            ("rollback", vec!["rollback", &snap], true),
            ("restore", vec!["restore", &snap, "r1"], true),
        ] {
            let mut t = Tally::new("write errors");
            let mut n = 1u32;
            loop {
                let old = ensure(has_s1, v);
                if op == "rollback" {
                    vg.change_origin(true);
                }
                let fault = format!("{n}:flakey:{pv}:error_writes");
                let (killed, code, err) = run(&args, Some(&fault));
                assert!(!killed);
                let faulted = err.contains("fault injection");
                vg.flakey_up();
                let at = format!("{op}, {pv} failing writes from step {n}: exit {code}: {err}");
                vg.lib_ok(&["list"], &at);
                v = vg.view();
                vg.assert_settled(&at);
                if !faulted {
                    break;
                }
                t.points += 1;
                let new_state = match op {
                    "create" => v.lvs.contains("s1"),
                    "delete" => !v.lvs.contains("s1"),
                    "rollback" => !v.merging.is_empty() || !v.lvs.contains("s1"),
                    _ => v.lvs.contains("r1"),
                };
                // A rollback that reports the kernel's merge Failed (exit 2)
                // has its merge recorded: that is its new state.
                if code == 0 || (op == "rollback" && code == 2) {
                    t.new += 1;
                    assert!(new_state, "{at}: succeeded but the state is old: {v:?}");
                } else {
                    t.old += 1;
                    if new_state {
                        t.failed_landed += 1;
                    }
                    assert!(!new_state, "{at}: failed but its change landed: {v:?}");
                    // A restore makes its target, then removes it again.
                    if op != "restore" {
                        assert_eq!(v.seqno, old.seqno, "{at}: failed, but the metadata changed");
                    }
                }
                // Finish a recorded merge (one the failing writes stopped
                // restarts, as LVM restarts it, on the origin's activation).
                if op == "rollback" && !v.merging.is_empty() {
                    if vg.lib(&["rollback", "s1"]).0.is_err() {
                        // LVM's activation restarts it, and lvsnap's rollback
                        // finishes it: `--poll n`, so that no LVM poller in
                        // the background races it to the end.
                        let again = vg.view_after(&[
                            &format!("lvchange -q -an {origin}"),
                            &format!("lvchange -q -ay --poll n {origin}"),
                        ]);
                        if again.lvs.contains("s1") {
                            vg.lib_ok(&["rollback", "s1"], &format!("{at}: merge restarted"));
                        }
                    }
                    v = vg.view();
                    assert!(!v.lvs.contains("s1"), "{at}: merged, but s1 is left");
                }
                if op != "rollback" || !v.lvs.contains("s1") {
                    // The origin holds its data (a rollback: the snapshot's).
                    vg.data_ok(false, &[], &at);
                }
                if op == "restore" && v.lvs.contains("r1") {
                    check_pattern(&vg.dev("r1"), 0x10, None, &at);
                }
                // Every fifth step: the sweep stays short, and each kind of
                // step (dm, metadata text, header, sync, copy) is hit.
                n += 5;
            }
            totals.points += t.points;
            totals.old += t.old;
            totals.new += t.new;
            totals.failed_landed += t.failed_landed;
            eprintln!(
                "FAULTS {op} with {pv} failing writes: {} points, {} failed (old state), {} \
                 succeeded (new state), failed but landed {}",
                t.points, t.old, t.new, t.failed_landed
            );
        }
    }
    totals.print();
    assert_eq!(totals.failed_landed, 0);
}
