//! Rollback (merge) and restore on real LVM volume groups, with LVM2's
//! tools as the oracle: `vgck` passes after every step, refusals change
//! neither the metadata (seqno) nor the device list.

mod common;

use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::{dm_listing, dm_names_of, lvsnap, read_at, require_dm, sh, write_pattern};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{RestoreOptions, RollbackState, SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;
use serial_test::parallel;

const MIB: u64 = 1 << 20;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn dev(vg: &str, lv: &str) -> String {
    format!("/dev/{vg}/{lv}")
}

fn read(path: &str, len: u64) -> Vec<u8> {
    read_at(path.as_ref(), 0, len as usize)
}

fn table_of(name: &str) -> String {
    sh(&format!("dmsetup table {name}"))
}

/// Waits until `f` holds (up to 60 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rollback restores the origin byte for byte while another snapshot of
/// it exists; that one keeps its own point in time; afterwards the merged
/// snapshot is gone, and the origin is a plain LV once the last snapshot
/// goes (no -real or -cow left).
#[test]
#[parallel]
fn rollback_restores_origin() {
    require_dm();
    let before_devs = dm_names_of("rbvg");
    let vg = ScratchVg::new("rbvg", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 32M -n lv0");
    let origin = dev("rbvg", "lv0");
    write_pattern(origin.as_ref(), 0, 8 * MIB as usize, 0xA1);
    write_pattern(origin.as_ref(), 8 * MIB, 8 * MIB as usize, 0xA2);
    let at_snap = read(&origin, 32 * MIB);

    let v = VolumeGroup::open("rbvg").unwrap();
    v.create_snapshot("lv0", "s0", &SnapshotOptions::default())
        .unwrap();
    vg.vgck();
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0xB1);
    let at_other = read(&origin, 32 * MIB);
    sh("lvcreate -q -s -L 16M -n other rbvg/lv0");
    write_pattern(origin.as_ref(), 2 * MIB, 8 * MIB as usize, 0xC1);
    assert_ne!(read(&origin, 32 * MIB), at_snap);

    let t = Instant::now();
    let mut rb = v.rollback("s0").unwrap();
    assert!(
        matches!(
            rb.state(),
            RollbackState::InProgress { .. } | RollbackState::Completed
        ),
        "{:?}",
        rb.state()
    );
    let mut seen = Vec::new();
    let end = rb.wait_with(|st| seen.push(st.clone())).unwrap();
    eprintln!(
        "lvsnap rollback of 32 MiB origin (16 MiB changed): {:?}",
        t.elapsed()
    );
    assert_eq!(end, RollbackState::Completed, "{seen:?}");
    assert_eq!(rb.state().percent(), 100.0);
    vg.vgck();
    assert!(read(&origin, 32 * MIB) == at_snap, "origin not rolled back");
    assert!(
        read(&dev("rbvg", "other"), 32 * MIB) == at_other,
        "the other snapshot lost its point in time"
    );
    let lvs = vg.lvs("lv_attr,origin");
    assert!(!lvs.contains_key("s0"), "{lvs:?}");
    assert!(lvs["lv0"]["lv_attr"].starts_with('o'), "{lvs:?}");
    assert_eq!(lvs["other"]["origin"], "lv0");
    let tables = dm_listing("dmsetup table");
    assert!(!tables.contains("rbvg-s0"), "{tables}");
    assert!(table_of("rbvg-lv0").contains(" snapshot-origin "));

    // The other snapshot still merges (LVM's own snapshot, lvsnap's CLI).
    let (code, out, err) = lvsnap(&["rollback", "rbvg/other", "--wait", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let j = json(&out);
    assert_eq!(j["state"], "Completed", "{j}");
    assert_eq!(j["percent"], 100.0);
    vg.vgck();
    assert!(read(&origin, 32 * MIB) == at_other);
    assert!(table_of("rbvg-lv0").contains(" linear "));
    let names = dm_names_of("rbvg");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("rbvg-lv0-") || n.contains("-cow")),
        "{names:?}"
    );
    let lvs = vg.lvs("lv_attr");
    assert_eq!(lvs.len(), 1, "{lvs:?}");
    assert!(lvs["lv0"]["lv_attr"].starts_with('-'), "{lvs:?}");

    // Both merge LVM's snapshots in this VG alike afterwards (benches/lvm2.rs
    // times them).
    for (who, name) in [("lvsnap", "t1"), ("lvconvert --merge", "t2")] {
        sh(&format!("lvcreate -q -s -L 8M -n {name} rbvg/lv0"));
        write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0xD1);
        if who == "lvsnap" {
            let st = v.rollback(name).unwrap().wait().unwrap();
            assert_eq!(st, RollbackState::Completed);
        } else {
            // Poll every second, not LVM's default 15 s.
            sh(&format!("lvconvert -q -i 1 --merge rbvg/{name}"));
        }
        vg.vgck();
        assert!(read(&origin, 32 * MIB) == at_other, "{who}");
    }
    drop(vg);
    assert_eq!(dm_names_of("rbvg"), before_devs, "no stray device");
}

/// An open origin defers the merge with a reason naming the device; run
/// again after release it completes. A merge LVM deferred is finished by
/// lvsnap, and LVM finishes one lvsnap deferred.
#[test]
#[parallel]
fn deferred_merges() {
    require_dm();
    let vg = ScratchVg::new("dfvg", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    let origin = dev("dfvg", "lv0");
    let v = VolumeGroup::open("dfvg").unwrap();

    // lvsnap defers, lvsnap resumes.
    write_pattern(origin.as_ref(), 0, 16 * MIB as usize, 0x11);
    let want = read(&origin, 16 * MIB);
    v.create_snapshot("lv0", "s0", &SnapshotOptions::default())
        .unwrap();
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x22);
    let hold = std::fs::File::open(&origin).unwrap();
    let rb = v.rollback("s0").unwrap();
    let RollbackState::Deferred { reason } = rb.state() else {
        panic!("not deferred: {:?}", rb.state());
    };
    assert!(reason.contains("dfvg-lv0"), "{reason}");
    assert!(reason.contains("open"), "{reason}");
    vg.vgck();
    let lvs = vg.lvs("lv_attr,lv_merging");
    assert!(lvs["s0"]["lv_attr"].starts_with('S'), "{lvs:?}");
    assert!(lvs["lv0"]["lv_attr"].starts_with('O'), "{lvs:?}");
    // Still deferred while open; the CLI says so and exits 0 (non-zero with --wait).
    let (code, out, _) = lvsnap(&["rollback", "dfvg/s0", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["state"], "Deferred");
    assert!(json(&out)["reason"].as_str().unwrap().contains("dfvg-lv0"));
    let (code, out, _) = lvsnap(&["rollback", "dfvg/s0", "--json", "--wait"]);
    assert_ne!(code, 0);
    assert_eq!(json(&out)["state"], "Deferred");
    drop(hold);
    let st = v.rollback("s0").unwrap().wait().unwrap();
    assert_eq!(st, RollbackState::Completed);
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);
    assert!(table_of("dfvg-lv0").contains(" linear "));

    // LVM defers, lvsnap finishes.
    sh("lvcreate -q -s -L 8M -n s1 dfvg/lv0");
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x33);
    let hold = std::fs::File::open(&origin).unwrap();
    let out = sh("lvconvert --merge dfvg/s1 2>&1");
    assert!(out.contains("Delaying merge"), "{out}");
    drop(hold);
    let (code, out, err) = lvsnap(&["rollback", "dfvg/s1", "--wait", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["state"], "Completed");
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);
    assert!(!vg.lvs("lv_attr").contains_key("s1"));
    assert!(table_of("dfvg-lv0").contains(" linear "));

    // lvsnap defers, LVM finishes (refresh).
    v.create_snapshot("lv0", "s2", &SnapshotOptions::default())
        .unwrap();
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x44);
    let hold = std::fs::File::open(&origin).unwrap();
    assert!(matches!(
        v.rollback("s2").unwrap().state(),
        RollbackState::Deferred { .. }
    ));
    drop(hold);
    sh("lvchange --refresh dfvg/lv0");
    eventually("LVM finishes the merge", || {
        !sh("lvs -a --noheadings -o lv_name dfvg").contains("s2")
    });
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);

    // An inactive origin: lvsnap activates it as LVM's activation would,
    // which starts the merge, and leaves it active.
    v.create_snapshot("lv0", "s3", &SnapshotOptions::default())
        .unwrap();
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x55);
    sh("lvchange -an dfvg/lv0");
    let mut rb = v.rollback("s3").unwrap();
    assert!(
        matches!(
            rb.state(),
            RollbackState::InProgress { .. } | RollbackState::Completed
        ),
        "{:?}",
        rb.state()
    );
    assert_eq!(rb.wait().unwrap(), RollbackState::Completed);
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);
    let lvs = vg.lvs("lv_attr");
    assert!(!lvs.contains_key("s3"), "{lvs:?}");
    assert!(lvs["lv0"]["lv_attr"].starts_with("-wi-a-"), "{lvs:?}");

    // Recorded by LVM with the origin inactive: lvsnap activates and ends it.
    sh("lvcreate -q -s -L 8M -n s3b dfvg/lv0");
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x56);
    sh("lvchange -an dfvg/lv0 && lvconvert -q --merge dfvg/s3b");
    let (code, out, err) = lvsnap(&["rollback", "dfvg/s3b", "--wait", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["state"], "Completed", "{out}");
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);
    assert!(vg.lvs("lv_attr")["lv0"]["lv_attr"].starts_with("-wi-a-"));

    // An open snapshot defers too; status shows it merging meanwhile.
    v.create_snapshot("lv0", "s4", &SnapshotOptions::default())
        .unwrap();
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x66);
    let hold = std::fs::File::open(dev("dfvg", "s4")).unwrap();
    let st = v.rollback("s4").unwrap().state();
    let RollbackState::Deferred { reason } = st else {
        panic!("{st:?}")
    };
    assert!(reason.contains("dfvg-s4"), "{reason}");
    let status = v.snapshot_status("s4").unwrap();
    assert!(status.merging, "{status:?}");
    vg.vgck();
    drop(hold);
    assert_eq!(
        v.rollback("s4").unwrap().wait().unwrap(),
        RollbackState::Completed
    );
    vg.vgck();
    assert!(read(&origin, 16 * MIB) == want);
    assert!(table_of("dfvg-lv0").contains(" linear "));
}

/// Restores from COW and thin snapshots hold the snapshot's bytes; the
/// progress reaches 100%; a larger size is honoured.
#[test]
#[parallel]
fn restores() {
    require_dm();
    let vg = ScratchVg::new("rsvg", 1, 512, "");
    vg.lvm("lvcreate -q -y -L 64M -n lv0");
    let origin = dev("rsvg", "lv0");
    write_pattern(origin.as_ref(), 0, 32 * MIB as usize, 0x5A);
    write_pattern(origin.as_ref(), 32 * MIB, 32 * MIB as usize, 0x6B);
    let want = read(&origin, 64 * MIB);
    let v = VolumeGroup::open("rsvg").unwrap();
    v.create_snapshot("lv0", "s0", &SnapshotOptions::default())
        .unwrap();
    write_pattern(origin.as_ref(), 0, 8 * MIB as usize, 0x00);

    let mut last = None;
    let mut calls = 0;
    let made = v
        .restore("s0", "copy", &RestoreOptions::default(), |p| {
            calls += 1;
            last = Some(p.percent);
        })
        .unwrap();
    assert_eq!(last, Some(100.0));
    assert!(calls >= 16, "{calls} progress calls");
    assert_eq!(made.size, Bytes(u128::from(64 * MIB)));
    vg.vgck();
    assert!(read(&dev("rsvg", "copy"), 64 * MIB) == want);
    assert_eq!(vg.lvs("lv_size")["copy"]["lv_size"], (64 * MIB).to_string());

    // Larger than the snapshot, through the CLI.
    let (code, out, err) = lvsnap(&["restore", "rsvg/s0", "big", "--size", "80M", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    vg.vgck();
    assert_eq!(vg.lvs("lv_size")["big"]["lv_size"], (80 * MIB).to_string());
    assert!(read(&dev("rsvg", "big"), 64 * MIB) == want);

    // Thin: a thin snapshot of the thin snapshot, extended.
    sh("lvcreate -q -y -L 64M -T rsvg/pool && lvcreate -q -y -V 32M -T rsvg/pool -n thin0");
    let thin0 = dev("rsvg", "thin0");
    write_pattern(thin0.as_ref(), 0, 16 * MIB as usize, 0x7C);
    let twant = read(&thin0, 32 * MIB);
    v.create_snapshot("thin0", "ts", &SnapshotOptions::default())
        .unwrap();
    write_pattern(thin0.as_ref(), 0, 8 * MIB as usize, 0x01);
    let mut last = None;
    let made = v
        .restore(
            "ts",
            "trest",
            &RestoreOptions::default().size(Bytes(u128::from(40 * MIB))),
            |p| last = Some(p.percent),
        )
        .unwrap();
    assert!(made.thin);
    assert_eq!(last, Some(100.0));
    vg.vgck();
    let lvs = vg.lvs("lv_size,origin,pool_lv");
    assert_eq!(lvs["trest"]["lv_size"], (40 * MIB).to_string());
    assert_eq!(lvs["trest"]["origin"], "ts");
    assert_eq!(lvs["trest"]["pool_lv"], "pool");
    assert!(read(&dev("rsvg", "trest"), 32 * MIB) == twant);
    // LVM can take it down and bring it up again.
    sh("lvchange -an rsvg/trest && lvchange -ay -K rsvg/trest");
    assert!(read(&dev("rsvg", "trest"), 32 * MIB) == twant);
}

/// Every refusal: a clear error of the right kind, CLI exit non-zero with
/// one line on stderr, VG seqno and device list unchanged.
#[test]
#[parallel]
fn refusals_change_nothing() {
    require_dm();
    let vg = ScratchVg::new("rfvg", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    vg.lvm("lvcreate -q -y -L 16M -n ro");
    vg.lvm("lvcreate -q -y -L 16M -n lv2");
    vg.lvm("lvcreate -q -y -L 16M -n lv3");
    let v = VolumeGroup::open("rfvg").unwrap();
    // Invalid: a 4 MiB store overflowed.
    v.create_snapshot(
        "lv0",
        "small",
        &SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(u128::from(4 * MIB)))),
    )
    .unwrap();
    write_pattern(dev("rfvg", "lv0").as_ref(), 0, 8 * MIB as usize, 0x99);
    v.create_snapshot("lv0", "good", &SnapshotOptions::default())
        .unwrap();
    // Read-only origin.
    v.create_snapshot("ro", "ros", &SnapshotOptions::default())
        .unwrap();
    sh("lvchange -q -pr rfvg/ro");
    // An origin with a merging snapshot (LVM deferred it).
    sh("lvcreate -q -s -L 8M -n m1 rfvg/lv2 && lvcreate -q -s -L 8M -n m2 rfvg/lv2");
    let hold = std::fs::File::open(dev("rfvg", "lv2")).unwrap();
    sh("lvconvert --merge rfvg/m1 2>&1");
    sh("lvcreate -q -y -L 16M -T rfvg/pool && lvcreate -q -y -V 16M -T rfvg/pool -n thin0");
    v.create_snapshot("thin0", "tsnap", &SnapshotOptions::default())
        .unwrap();
    sh("lvchange -q -pr rfvg/thin0");
    vg.vgck();

    let check = |what: &str, kind: ErrorKind, f: &dyn Fn() -> lvsnap::Result<()>, cli: &[&str]| {
        let (seq, devs) = (vg.seqno(), dm_names_of("rfvg"));
        let e = f().expect_err(what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(!e.to_string().is_empty());
        assert_eq!(dm_names_of("rfvg"), devs, "{what} changed the devices");
        let (code, out, err) = lvsnap(cli);
        assert_ne!(code, 0, "{what}: CLI exit 0: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(err.starts_with("lvsnap: "), "{err}");
        // seqno only grows: one vgs after both refusals sees a commit by either.
        assert_eq!(
            vg.seqno(),
            seq,
            "{what} (library or CLI) changed the metadata"
        );
        assert_eq!(
            dm_names_of("rfvg"),
            devs,
            "{what} (CLI) changed the devices"
        );
        vg.vgck();
    };
    check(
        "invalid snapshot",
        ErrorKind::InvalidArgument,
        &|| v.rollback("small").map(|_| ()),
        &["rollback", "rfvg/small"],
    );
    check(
        "read-only origin",
        ErrorKind::InvalidArgument,
        &|| v.rollback("ros").map(|_| ()),
        &["rollback", "rfvg/ros"],
    );
    check(
        "origin already merging",
        ErrorKind::Busy,
        &|| v.rollback("m2").map(|_| ()),
        &["rollback", "rfvg/m2"],
    );
    check(
        "not a snapshot",
        ErrorKind::InvalidArgument,
        &|| v.rollback("lv0").map(|_| ()),
        &["rollback", "rfvg/lv0"],
    );
    check(
        "no such snapshot",
        ErrorKind::NotFound,
        &|| v.rollback("nope").map(|_| ()),
        &["rollback", "rfvg/nope", "--wait"],
    );
    check(
        "restore below the snapshot's size",
        ErrorKind::InvalidArgument,
        &|| {
            v.restore(
                "good",
                "new",
                &RestoreOptions::default().size(Bytes(u128::from(8 * MIB))),
                |_| {},
            )
            .map(|_| ())
        },
        &["restore", "rfvg/good", "new", "--size", "8M"],
    );
    check(
        "restore onto a taken name",
        ErrorKind::InvalidArgument,
        &|| {
            v.restore("good", "lv2", &RestoreOptions::default(), |_| {})
                .map(|_| ())
        },
        &["restore", "rfvg/good", "lv2"],
    );
    check(
        "restore an invalid snapshot",
        ErrorKind::InvalidArgument,
        &|| {
            v.restore("small", "new", &RestoreOptions::default(), |_| {})
                .map(|_| ())
        },
        &["restore", "rfvg/small", "new"],
    );
    check(
        "restore with no space",
        ErrorKind::NoSpace,
        &|| {
            v.restore(
                "good",
                "new",
                &RestoreOptions::default().size(Bytes(u128::from(1024 * MIB))),
                |_| {},
            )
            .map(|_| ())
        },
        &["restore", "rfvg/good", "new", "--size", "1G"],
    );
    check(
        "thin rollback to a snapshot of a read-only origin",
        ErrorKind::InvalidArgument,
        &|| v.rollback("tsnap").map(|_| ()),
        &["rollback", "rfvg/tsnap"],
    );
    drop(hold);
}
