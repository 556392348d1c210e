//! Thin snapshots: read-only by default, and rolled back without copying
//! data, siblings kept. LVM2's tools (lvs, vgck, thin_check, activation)
//! and data checksums are the oracle.

mod common;

use std::time::Instant;

use common::lvm::ScratchVg;
use common::{dm_names_of, lvsnap, require_dm, sh};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{RollbackOptions, RollbackState, SnapshotOptions, VolumeGroup};
use serial_test::parallel;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A whole device's bytes, read around the page cache (in-process: a
/// dd | sha256sum pipeline costs three execs in the VM).
fn sum(dev: &str) -> Data {
    use std::io::{Seek, SeekFrom};
    let len = std::fs::File::open(dev)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .unwrap_or_else(|e| panic!("size of {dev}: {e}"));
    Data(common::read_at(
        std::path::Path::new(dev),
        0,
        usize::try_from(len).unwrap(),
    ))
}

/// A device's contents, compared byte for byte; printed as length and CRC32
/// (not megabytes of bytes) when an assertion fails.
#[derive(PartialEq, Eq)]
struct Data(Vec<u8>);

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, crc32 {:08x}",
            self.0.len(),
            crc32fast::hash(&self.0)
        )
    }
}

/// Fresh random data over 2 MiB at `mib` MiB of `dev`.
fn scribble(dev: &str, mib: u64) {
    sh(&format!(
        "dd if=/dev/urandom of={dev} bs=1M count=2 seek={mib} oflag=direct conv=fsync status=none"
    ));
}

/// `thin_check` on the pool's metadata, as LVM runs it: pool inactive,
/// `_tmeta` activated alone (read-only component activation).
fn thin_check(vg: &str, pool: &str) {
    sh(&format!("vgchange -q -an {vg}"));
    sh(&format!("lvchange -q -ay -y {vg}/{pool}_tmeta"));
    sh(&format!("thin_check /dev/{vg}/{pool}_tmeta"));
    sh(&format!("lvchange -q -an {vg}/{pool}_tmeta"));
}

/// A thin snapshot is read-only unless asked writable, and then looks
/// exactly as `lvcreate -s -p r` / `-p rw` make it (lv_attr, and the
/// kernel's read-only flag once activated).
#[test]
#[parallel]
fn thin_snapshots_read_only_by_default() {
    require_dm();
    let vg = ScratchVg::new("tro", 1, 128, "");
    sh("lvcreate -q -y -L 32M -T tro/pool -V 16M -n o");
    let v = VolumeGroup::open("tro").unwrap();
    v.create_snapshot("o", "ro", &SnapshotOptions::default())
        .unwrap();
    v.create_snapshot("o", "rw", &SnapshotOptions::default().writable(true))
        .unwrap();
    sh("lvcreate -q -s -p r -n lvm_ro tro/o && lvcreate -q -s -p rw -n lvm_rw tro/o");
    vg.vgck();
    let lvs = vg.lvs("lv_attr,origin");
    assert_eq!(lvs["ro"]["lv_attr"], lvs["lvm_ro"]["lv_attr"], "{lvs:?}");
    assert_eq!(lvs["rw"]["lv_attr"], lvs["lvm_rw"]["lv_attr"], "{lvs:?}");
    assert_eq!(&lvs["ro"]["lv_attr"][..2], "Vr");
    assert_eq!(&lvs["rw"]["lv_attr"][..2], "Vw");
    sh("lvchange -ay -K tro/ro tro/rw");
    assert!(sh("dmsetup info tro-ro").contains("READ-ONLY"));
    assert!(!sh("dmsetup info tro-rw").contains("READ-ONLY"));
    let (code, _, _) = lvsnap(&["create", "tro/o", "cli_rw", "--writable"]);
    assert_eq!(code, 0);
    assert_eq!(&vg.lvs("lv_attr")["cli_rw"]["lv_attr"][..2], "Vw");
}

/// Thin rollback: the origin takes the snapshot's data, siblings (LVM's
/// and lvsnap's) keep theirs and their `origin`; with --keep the snapshot
/// stays as it was, without it it is consumed. Deferred with nothing
/// changed while the origin is open; done through an inactive pool too.
/// vgck, thin_check and LVM's activation of everything agree.
#[test]
#[parallel]
fn thin_rollback_keeps_siblings() {
    require_dm();
    let vg = ScratchVg::new("trb", 1, 256, "");
    sh("lvcreate -q -y -L 64M -T trb/pool -V 16M -n o");
    sh("lvcreate -q -y -L 8M -n plain trb");
    let o = "/dev/trb/o";
    let v = VolumeGroup::open("trb").unwrap();
    scribble(o, 0);
    let a = sum(o);
    v.create_snapshot("o", "s", &SnapshotOptions::default())
        .unwrap();
    scribble(o, 4);
    let b = sum(o);
    sh("lvcreate -q -s -n sib trb/o");
    scribble(o, 8);
    let c = sum(o);
    v.create_snapshot("o", "sib2", &SnapshotOptions::default().writable(true))
        .unwrap();
    scribble(o, 2);
    let d = sum(o);
    assert!(a != b && b != c && c != d);

    // Open origin: Deferred, with the reason, and nothing changed.
    let seq = vg.seqno();
    let devs = dm_names_of("trb");
    {
        let _held = std::fs::File::open(o).unwrap();
        let rb = v.rollback("s").unwrap();
        let RollbackState::Deferred { reason } = rb.state() else {
            panic!("{:?}", rb.state())
        };
        assert!(reason.contains("open"), "{reason}");
    }
    assert_eq!(vg.seqno(), seq);
    assert_eq!(dm_names_of("trb"), devs);
    assert_eq!(sum(o), d);

    // --keep: the origin is back at A; the snapshot and the siblings keep
    // their data and all still name the origin.
    let (code, out, err) = lvsnap(&["rollback", "trb/s", "--keep", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["state"], "Completed", "{out}");
    vg.vgck();
    assert_eq!(sum(o), a, "origin not rolled back");
    sh("lvchange -ay -K trb/s trb/sib trb/sib2");
    assert_eq!(sum("/dev/trb/s"), a, "kept snapshot changed");
    assert_eq!(sum("/dev/trb/sib"), b);
    assert_eq!(sum("/dev/trb/sib2"), c);
    let lvs = vg.lvs("lv_attr,origin");
    for s in ["s", "sib", "sib2"] {
        assert_eq!(lvs[s]["origin"], "o", "{s}: {lvs:?}");
    }
    assert_eq!(&lvs["s"]["lv_attr"][..2], "Vr", "{lvs:?}");

    // Without --keep, with the snapshot active: consumed.
    scribble(o, 10);
    sh("lvchange -an trb/s");
    let rb = v.rollback("s").unwrap();
    assert_eq!(rb.state(), RollbackState::Completed);
    vg.vgck();
    assert_eq!(sum(o), a);
    let lvs = vg.lvs("lv_attr,origin");
    assert!(!lvs.contains_key("s"), "{lvs:?}");
    assert_eq!(lvs["sib"]["origin"], "o");
    assert_eq!(lvs["sib2"]["origin"], "o");
    assert_eq!(sum("/dev/trb/sib"), b);
    assert_eq!(sum("/dev/trb/sib2"), c);

    // To an LVM-made sibling, writable and active (kept live: its device
    // is swapped under it).
    let (code, out, err) = lvsnap(&["rollback", "trb/sib", "--keep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(sum(o), b);
    assert_eq!(sum("/dev/trb/sib"), b);
    vg.vgck();

    // Pool inactive: done through LVM's queued messages.
    scribble(o, 12);
    sh("vgchange -q -an trb");
    let rb = v.rollback("sib2").unwrap();
    assert_eq!(rb.state(), RollbackState::Completed);
    vg.vgck();
    sh("vgchange -q -ay trb");
    assert_eq!(sum(o), c);
    assert_eq!(&vg.lvs("lv_attr")["o"]["lv_attr"][4..5], "a");

    // The pool's metadata checks, and LVM activates everything again.
    thin_check("trb", "pool");
    sh("vgchange -q -ay trb && lvchange -q -ay -K trb/sib");
    assert_eq!(sum(o), c);
    assert_eq!(sum("/dev/trb/sib"), b);
    vg.vgck();

    // --keep is refused for a COW snapshot, before anything changes.
    sh("lvcreate -q -s -L 4M -n cow trb/plain");
    let seq = vg.seqno();
    let (code, _, err) = lvsnap(&["rollback", "trb/cow", "--keep"]);
    assert_ne!(code, 0);
    assert!(
        err.starts_with("lvsnap: ") && err.lines().count() == 1,
        "{err}"
    );
    let e = v
        .rollback_with("cow", &RollbackOptions::default().keep(true))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(vg.seqno(), seq);

    // Against LVM's merge of a thin snapshot (which drops the siblings'
    // origin): the same job, timed in the same run.
    for (who, name) in [("lvsnap rollback", "t1"), ("lvconvert --merge", "t2")] {
        sh(&format!("lvcreate -q -s -n {name} trb/o"));
        scribble(o, 0);
        let t = Instant::now();
        if who == "lvsnap rollback" {
            assert_eq!(v.rollback(name).unwrap().state(), RollbackState::Completed);
        } else {
            sh(&format!("lvconvert -q --merge trb/{name}"));
        }
        eprintln!("FIGURE thin rollback, {who}: {:?}", t.elapsed());
        assert_eq!(sum(o), c, "{who}");
        vg.vgck();
    }
}

/// LVM's view of a thin VG after a kill: no device of the VG suspended or
/// with a table waiting, `vgck` passes, and the LVs with their thin ids
/// and origins; then the LVM commands `then`, all in one `lvm` process.
fn thin_view(vg: &str, then: &[&str]) -> std::collections::BTreeMap<String, (String, String)> {
    let dm = devicemapper::DM::new().expect("dm");
    for (n, _, _) in dm.list_devices().expect("list") {
        let name = n.to_string();
        if !name.starts_with(&format!("{vg}-")) {
            continue;
        }
        let id = devicemapper::DevId::Name(&n);
        let f = dm.device_info(&id).expect("info").flags();
        assert!(
            !f.contains(devicemapper::DmFlags::DM_SUSPEND)
                && !f.contains(devicemapper::DmFlags::DM_INACTIVE_PRESENT),
            "{name} left suspended or with a pending table ({f:?})"
        );
    }
    let (vgck, lvs) = (format!("vgck {vg}"), thin_lvs_cmd(vg));
    let mut cmds = vec![vgck.as_str(), lvs.as_str()];
    cmds.extend(then);
    parse_thin_lvs(&common::lvm::script(&cmds))
}

/// The `lvs` command line of [`thin_lvs`] (no shell quoting needed).
fn thin_lvs_cmd(vg: &str) -> String {
    format!("lvs --noheadings --separator ; -o lv_name,thin_id,origin {vg}")
}

/// The LVs of `vg` with their thin ids and origins, as `lvs` has them.
fn thin_lvs(vg: &str) -> std::collections::BTreeMap<String, (String, String)> {
    parse_thin_lvs(&common::lvm::script(&[&thin_lvs_cmd(vg)]))
}

/// [`thin_lvs_cmd`]'s rows (`name;thin_id;origin`) in `out`; other lines
/// (what commands run after it print) are not rows.
fn parse_thin_lvs(out: &str) -> std::collections::BTreeMap<String, (String, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(';').collect();
            (f.len() == 3).then(|| (f[0].into(), (f[1].into(), f[2].into())))
        })
        .collect()
}

/// Thin device ids as LVM's metadata names them.
fn thin_ids(v: &std::collections::BTreeMap<String, (String, String)>) -> Vec<String> {
    let mut ids: Vec<String> = v
        .values()
        .map(|(id, _)| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    ids.sort_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX));
    ids
}

/// The ids of the thin devices in the pool's metadata (thin_dump), after
/// `thin_check` passes on it: `tmeta` is the path to check, `flags` are
/// thin_check's and thin_dump's (`-m` for a live pool's metadata snapshot).
fn pool_ids(tmeta: &str, flags: &[&str]) -> Vec<String> {
    let argv = |cmd: &'static str, pre: &[&'static str]| {
        let mut a: Vec<&str> = vec![cmd];
        a.extend(pre);
        a.extend(flags);
        a.push(tmeta);
        a
    };
    common::output(&argv("thin_check", &["-q"]));
    let dump = common::output(&argv("thin_dump", &[]));
    let mut ids: Vec<String> = dump
        .split("dev_id=\"")
        .skip(1)
        .map(|r| r.chars().take_while(char::is_ascii_digit).collect())
        .collect();
    ids.sort_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX));
    ids
}

/// An active pool checks (thin_check on a metadata snapshot the kernel
/// takes) and holds exactly the thin devices `want`: none leaked or lost.
fn live_pool_matches(vg: &str, pool: &str, want: &[String]) {
    let dm = devicemapper::DM::new().expect("dm");
    let tpool = format!("{vg}-{pool}-tpool");
    let tpool = devicemapper::DmName::new(&tpool).expect("dm name");
    let id = devicemapper::DevId::Name(tpool);
    dm.target_msg(&id, None, "reserve_metadata_snap")
        .expect("reserve_metadata_snap");
    let have =
        std::panic::catch_unwind(|| pool_ids(&format!("/dev/mapper/{vg}-{pool}_tmeta"), &["-m"]));
    dm.target_msg(&id, None, "release_metadata_snap")
        .expect("release_metadata_snap");
    assert_eq!(
        have.expect("thin_check"),
        want,
        "thin devices in the pool vs LVM's thin ids"
    );
}

/// As LVM checks a pool: inactive, `_tmeta` activated alone, thin_check;
/// the pool holds exactly the devices `want`. Leaves the VG inactive.
fn pool_matches(vg: &str, pool: &str, want: &[String]) {
    common::lvm::script(&[
        &format!("vgchange -q -an {vg}"),
        &format!("lvchange -q -ay -y {vg}/{pool}_tmeta"),
    ]);
    let have = std::panic::catch_unwind(|| pool_ids(&format!("/dev/{vg}/{pool}_tmeta"), &[]));
    common::output(&["lvchange", "-q", "-an", &format!("{vg}/{pool}_tmeta")]);
    assert_eq!(
        have.expect("thin_check"),
        want,
        "thin devices in the pool vs LVM's thin ids"
    );
}

/// Thin rollback killed (SIGKILL) before each step that changes the kernel
/// or the disk, with the snapshot kept and consumed, pool active and not.
/// After each kill LVM must see the old state or the new one, never a half
/// state: the origin holds its data or the snapshot's, the siblings keep
/// theirs and their origin link, nothing suspended, vgck and thin_check
/// pass and the pool holds exactly the devices LVM names; and rollback run
/// again (when the snapshot is still there) completes it. Each case has its
/// own VG (so the cases run in parallel), made once; each point puts back
/// only what the rollback changed.
#[test]
#[parallel]
fn kill_sweep_thin_rollback_keep() {
    kill_sweep("tks1", true, true, 1, 1);
}

/// As kill_sweep_thin_rollback_keep, the snapshot consumed.
#[test]
#[parallel]
fn kill_sweep_thin_rollback_consume() {
    kill_sweep("tks2", false, true, 1, 1);
}

/// As kill_sweep_thin_rollback_keep, consumed, the whole VG inactive: the
/// odd kill points. This case has about three times the others' points
/// (the rollback activates the pool and takes it down again), so two
/// tests on two VGs share them and run side by side.
#[test]
#[parallel]
fn kill_sweep_thin_rollback_inactive_pool() {
    kill_sweep("tks3", false, false, 1, 2);
}

/// kill_sweep_thin_rollback_inactive_pool's even kill points.
#[test]
#[parallel]
fn kill_sweep_thin_rollback_inactive_pool_even() {
    kill_sweep("tks4", false, false, 2, 2);
}

/// The snapshots of `vgn` as the library lists them, in this process
/// (recovery of what a killed run left comes first, as in `lvsnap list`).
fn lib_list(vgn: &str, at: &str) -> Vec<String> {
    VolumeGroup::open(vgn)
        .and_then(|vg| vg.snapshots())
        .unwrap_or_else(|e| panic!("{at}: list: {e}"))
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// `lvsnap rollback VG/SNAP [--keep]` through the library, in this process;
/// it must not fail.
fn lib_rollback(vgn: &str, snap: &str, keep: bool, at: &str) {
    let state = VolumeGroup::open(vgn)
        .and_then(|vg| vg.rollback_with(snap, &RollbackOptions::default().keep(keep)))
        .map(|rb| rb.state())
        .unwrap_or_else(|e| panic!("{at}: rollback again: {e}"));
    assert!(
        !matches!(state, RollbackState::Failed { .. }),
        "{at}: rollback again: {state}"
    );
}

/// `lvsnap create VG/ORIGIN NAME` through the library, in this process.
fn lib_create(vgn: &str, origin: &str, name: &str) {
    VolumeGroup::open(vgn)
        .and_then(|vg| vg.create_snapshot(origin, name, &SnapshotOptions::default()))
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Fewest judged kill points a case must reach (the three had 15 or more
/// together when they ran as one test).
const MIN_POINTS: u32 = 5;

/// Kill points `first`, `first + stride`, ... of one case, until a run is
/// not killed.
fn kill_sweep(vgn: &str, keep: bool, pool_active: bool, first: u32, stride: u32) {
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    require_dm();
    const MIB: usize = 1 << 20;
    let vg = ScratchVg::new(vgn, 1, 96, "");
    sh(&format!("lvcreate -q -y -L 32M -T {vgn}/pool -V 4M -n o"));
    let o = &format!("/dev/{vgn}/o");
    let on = format!("{vgn}/o");
    common::write_pattern(Path::new(o), 0, 4 * MIB, 0xA1);
    let a = sum(o);
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec!["create", on.as_str(), name];
        args.extend(extra);
        let (code, _, err) = lvsnap(&args);
        assert_eq!(code, 0, "create {name}: {err}");
    };
    create("s", &[]);
    common::write_pattern(Path::new(o), 1 << 20, MIB, 0xB2);
    let b = sum(o);
    create("sib", &["--writable"]);
    sh(&format!(
        "lvcreate -q -s -n lsib {vgn}/o && lvchange -q -ay -K {vgn}/sib {vgn}/lsib"
    ));
    // The change the rollback undoes (over B's part too, so it reads the
    // same from A or B).
    let change = || common::write_pattern(Path::new(o), 0, 2 * MIB, 0xC3);
    change();
    let c = sum(o);
    assert!(a != b && b != c && a != c);
    let run = |args: &[&str], fault: Option<u32>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lvsnap"));
        cmd.args(args);
        match fault {
            Some(n) => cmd.env("LVSNAP_FAULT", format!("{n}:kill")),
            None => cmd.env_remove("LVSNAP_FAULT"),
        };
        let out = cmd.output().expect("run lvsnap");
        (
            out.status.signal() == Some(libc::SIGKILL),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (mut points, mut old, mut new) = (0u32, 0u32, 0u32);
    let sn = format!("{vgn}/s");
    let mut args = vec!["rollback", sn.as_str()];
    if keep {
        args.push("--keep");
    }
    let cfg = format!("keep={keep} pool_active={pool_active} points {first}+{stride}k");
    // Where the pool is active the snapshot is too, so its device is
    // swapped or removed live; otherwise the whole VG is inactive.
    let start = || {
        if pool_active {
            sh(&format!("lvchange -q -ay -K {vgn}/s"));
        } else {
            sh(&format!("vgchange -q -an {vgn}"));
        }
    };
    // Back to where each point starts: the snapshot (made again if it
    // was consumed) holds A, the origin C.
    let reset = |consumed: bool| {
        if !Path::new(o).exists() {
            sh(&format!("lvchange -q -ay {vgn}/o"));
        }
        if consumed {
            lib_create(vgn, "o", "s");
        }
        change();
        start();
    };
    let sibs_active = format!("lvchange -q -ay -K {vgn}/sib {vgn}/lsib");
    let vg_active = format!("vgchange -q -ay {vgn}");
    let activate_all = [vg_active.as_str(), sibs_active.as_str()];
    let (sib, lsib, snap) = (
        format!("/dev/{vgn}/sib"),
        format!("/dev/{vgn}/lsib"),
        format!("/dev/{vgn}/s"),
    );
    start();
    let mut n = first;
    loop {
        let (killed, code, err, _) = run(&args, Some(n));
        if !killed {
            assert_eq!(code, 0, "{cfg}: rollback with no fault left: {err}");
            assert!(
                n > first,
                "no kill point fired: is fault injection compiled in?"
            );
            break;
        }
        let step = err
            .lines()
            .find(|l| l.contains("fault injection"))
            .unwrap_or("");
        let at = format!("{cfg}: killed at {n} [{step}]");
        // The next run (any command) repairs what the kill left: here the
        // library's list, in this process (the CLI's code less its process
        // start).
        let listed = lib_list(vgn, &at);
        // A kill before a metadata write, sync or precommit leaves what
        // a kill before that commit's header write ("metadata commit")
        // leaves, which is judged: these are only repaired.
        if ["text write", "sync", "precommit"]
            .iter()
            .any(|w| step.ends_with(&format!("(metadata {w})")))
        {
            reset(!keep && !listed.iter().any(|n| n == "s"));
            n += stride;
            continue;
        }
        points += 1;
        // With the VG inactive, LVM activates it and the siblings in the
        // same process that judged it.
        let mut v = thin_view(vgn, if pool_active { &[] } else { &activate_all });
        for sib in ["sib", "lsib"] {
            assert_eq!(v[sib].1, "o", "{at}: {sib} lost its origin: {v:?}");
        }
        // No thin device leaked or lost by the kill.
        live_pool_matches(vgn, "pool", &thin_ids(&v));
        let now = sum(o);
        assert!(
            now == a || now == c,
            "{at}: origin holds neither the old nor the snapshot's data"
        );
        // A consumed snapshot is gone exactly when the origin is rolled
        // back.
        if !keep {
            assert_eq!(v.contains_key("s"), now == c, "{at}: {v:?}");
        }
        if now == a {
            new += 1
        } else {
            old += 1
        }
        assert_eq!(sum(&sib), b, "{at}: sibling changed");
        // Running rollback again finishes it.
        if v.contains_key("s") {
            lib_rollback(vgn, "s", keep, &at);
            v = thin_lvs(vgn);
        }
        assert_eq!(v.contains_key("s"), keep, "{at}: {v:?}");
        assert_eq!(sum(o), a, "{at}: origin not rolled back");
        if keep {
            assert_eq!(sum(&snap), a, "{at}: kept snapshot changed");
        }
        reset(!keep);
        n += stride;
        assert!(n < 100, "runaway sweep");
    }
    // The run that was not killed completed it; LVM's own check of
    // the pool, and LVM activates everything again.
    let v = thin_view(vgn, &[]);
    pool_matches(vgn, "pool", &thin_ids(&v));
    common::lvm::script(&activate_all);
    assert_eq!(sum(o), a, "{cfg}: origin not rolled back");
    assert_eq!(sum(&sib), b, "{cfg}: sibling changed");
    assert_eq!(sum(&lsib), b, "{cfg}: LVM's sibling changed");
    eprintln!(
        "FAULTS thin rollback (SIGKILL, {cfg}): {points} points, old state at {old}, new at {new}"
    );
    assert!(points >= MIN_POINTS, "{cfg}: only {points} points");
    drop(vg);
}
