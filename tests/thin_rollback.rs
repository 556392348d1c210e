//! Thin snapshots: read-only by default, and rolled back without copying
//! data, siblings kept. LVM2's tools (lvs, vgck, thin_check, activation)
//! and data checksums are the oracle.

mod common;

use std::time::Instant;

use common::lvm::ScratchVg;
use common::{dm_names, lvsnap, require_dm, sh};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{RollbackOptions, RollbackState, SnapshotOptions, VolumeGroup};
use serial_test::serial;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// SHA-256 of a whole device, read around the page cache.
fn sum(dev: &str) -> String {
    sh(&format!(
        "dd if={dev} iflag=direct bs=1M status=none | sha256sum"
    ))
    .split_whitespace()
    .next()
    .unwrap()
    .to_owned()
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
#[serial]
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
#[serial]
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
    let devs = dm_names();
    {
        let _held = std::fs::File::open(o).unwrap();
        let rb = v.rollback("s").unwrap();
        let RollbackState::Deferred { reason } = rb.state() else {
            panic!("{:?}", rb.state())
        };
        assert!(reason.contains("open"), "{reason}");
    }
    assert_eq!(vg.seqno(), seq);
    assert_eq!(dm_names(), devs);
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
