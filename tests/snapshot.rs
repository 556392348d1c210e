//! Volume snapshots on real LVM volume groups, with LVM2's tools as the
//! oracle: after every step `vgck` passes and no stray device is left.

mod common;

use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::{
    LoopDev, STATUS_JSON_KEYS, dm_listing, dm_names_of, lvsnap, read_at, require_dm, sh,
    write_pattern,
};
use lvsnap::ErrorKind;
use lvsnap::lvm::text::Style;
use lvsnap::lvm::vg::{Creation, Metadata};
use lvsnap::lvm::{ScanOptions, VgDisk};
use lvsnap::snapshot::{SnapSize, SnapshotOptions, State, Until, VolumeGroup, WatchEvent};
use lvsnap::units::{Bytes, Extents};
use serial_test::{parallel, serial};

const MIB: u64 = 1 << 20;

/// The fields of `lvs` that must agree between lvsnap's and LVM's snapshots.
const FIELDS: &str = "lv_attr,origin,lv_size,data_percent,snap_percent,lv_snapshot_invalid";

/// An lvsnap snapshot looks in `lvs` as an `lvcreate -s` one of the same
/// origin and size: attributes, origin, size, data_percent at several fill
/// levels; and the devices carry LVM's names and tables.
#[test]
#[parallel]
fn cow_snapshot_looks_like_lvcreate_s() {
    require_dm();
    let before = dm_names_of("snapvg");
    let vg = ScratchVg::new("snapvg", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 64M -n lv0");
    let origin = "/dev/snapvg/lv0";
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0xAB);

    let seq = vg.seqno();
    let v = VolumeGroup::open("snapvg").expect("open vg");
    let opts = SnapshotOptions::default()
        .snapsize(SnapSize::Bytes(Bytes(16 * MIB as u128)))
        .writable(true);
    let made = v.create_snapshot("lv0", "ours", &opts).expect("create");
    assert!(vg.seqno() > seq);
    vg.vgck();
    assert_eq!(made.status.source_volume, "lv0");
    assert_eq!(made.status.capacity, Bytes(16 * MIB as u128));
    assert_eq!(made.status.state, State::Ready);
    assert!(!made.status.thin && !made.status.merging && !made.status.invalid);
    assert_eq!(made.status.data_percent, Some(0.0));

    sh("lvcreate -q -s -L 16M -n theirs snapvg/lv0");
    vg.vgck();
    for fill in [0u64, 1, 5, 11] {
        if fill > 0 {
            write_pattern(origin.as_ref(), (fill - 1) * MIB, MIB as usize, fill as u8);
        }
        let lvs = vg.lvs(FIELDS);
        let (ours, theirs) = (&lvs["ours"], &lvs["theirs"]);
        for f in FIELDS.split(',') {
            assert_eq!(
                ours[f], theirs[f],
                "{f} differs at {fill} MiB written: {ours:?} vs {theirs:?}"
            );
        }
        let st = v.snapshot_status("ours").expect("status");
        let lvs_pct: f64 = ours["data_percent"].parse().expect("lvs data_percent");
        let our_pct = st.data_percent.expect("active snapshot has data_percent");
        assert!(
            (our_pct - lvs_pct).abs() < 0.01,
            "{our_pct} vs lvs {lvs_pct}"
        );
    }
    // The snapshot still reads what the origin held when it was taken.
    assert!(
        read_at("/dev/snapvg/ours".as_ref(), 0, MIB as usize)
            .iter()
            .all(|&b| b == 0xAB)
    );
    // Same layers and table shapes as LVM's snapshot.
    let tables = dm_listing("dmsetup table");
    assert!(tables.contains("snapvg-ours-cow:"), "{tables}");
    assert!(tables.contains("snapvg-lv0-real:"), "{tables}");
    let ours_line = tables
        .lines()
        .find(|l| l.starts_with("snapvg-ours:"))
        .expect("ours");
    assert!(
        ours_line.contains(" snapshot ") && ours_line.ends_with(" P 8"),
        "{ours_line}"
    );
    let uuids = dm_listing("dmsetup info -c --noheadings -o name,uuid");
    let uuid_of = |n: &str| {
        uuids
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{n}:")).map(str::to_owned))
            .unwrap_or_default()
    };
    let lv_uuid = sh("lvs --noheadings -o vg_uuid,lv_uuid snapvg/ours");
    let want: String = lv_uuid
        .split_whitespace()
        .collect::<String>()
        .replace('-', "");
    assert_eq!(uuid_of("snapvg-ours"), format!("LVM-{want}"));
    assert_eq!(uuid_of("snapvg-ours-cow"), format!("LVM-{want}-cow"));

    // Both listed by lvsnap with the same fields as lvs gives.
    let list = v.snapshots().expect("list");
    assert_eq!(list.len(), 2);
    let theirs = list
        .iter()
        .find(|s| s.name == "theirs")
        .expect("theirs listed");
    assert_eq!(theirs.source_volume, "lv0");
    assert_eq!(theirs.capacity, Bytes(16 * MIB as u128));
    let lvs = vg.lvs("data_percent,lv_time");
    let pct: f64 = lvs["theirs"]["data_percent"].parse().unwrap();
    assert!((theirs.data_percent.unwrap() - pct).abs() < 0.01);

    v.delete_snapshot("ours").expect("delete");
    vg.vgck();
    assert!(!vg.lvs("lv_attr").contains_key("ours"));
    assert!(!sh("dmsetup ls").contains("snapvg-ours"));
    sh("lvremove -q -y snapvg/theirs");
    assert_eq!(
        sh("dmsetup table snapvg-lv0").split_whitespace().nth(2),
        Some("linear")
    );
    drop(vg);
    assert_eq!(
        dm_names_of("snapvg"),
        before,
        "no stray device-mapper device"
    );
}

/// With the origin inactive, only metadata changes, as with LVM; `lvm`
/// then activates origin and snapshot, and the snapshot works.
#[test]
#[parallel]
fn cow_snapshot_of_inactive_origin() {
    require_dm();
    let before = dm_names_of("inactvg");
    let vg = ScratchVg::new("inactvg", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 32M -n data");
    write_pattern("/dev/inactvg/data".as_ref(), 0, MIB as usize, 0x11);
    sh("lvchange -an inactvg/data");
    let v = VolumeGroup::open("inactvg").unwrap();
    let made = v
        .create_snapshot("data", "snap", &SnapshotOptions::default())
        .expect("create");
    // Default size: the origin's, capped by LVM's cow_max_extents.
    assert_eq!(made.status.capacity, Bytes(32 * MIB as u128));
    assert_eq!(made.status.data_percent, None, "inactive: no data_percent");
    assert!(
        dm_names_of("inactvg").is_empty(),
        "{:?}",
        dm_names_of("inactvg")
    );
    vg.vgck();
    let lvs = vg.lvs("lv_attr,origin,lv_size");
    assert_eq!(
        &lvs["snap"]["lv_attr"][..4],
        "sri-",
        "read-only snapshot: {:?}",
        lvs["snap"]
    );
    assert_eq!(lvs["snap"]["origin"], "data");
    sh("lvchange -ay inactvg/data");
    write_pattern("/dev/inactvg/data".as_ref(), 0, MIB as usize, 0x22);
    assert!(
        read_at("/dev/inactvg/snap".as_ref(), 0, MIB as usize)
            .iter()
            .all(|&b| b == 0x11)
    );
    let st = v.snapshot_status("snap").unwrap();
    let lvs = vg.lvs("data_percent");
    let pct: f64 = lvs["snap"]["data_percent"].parse().unwrap();
    assert!((st.data_percent.unwrap() - pct).abs() < 0.01);
    drop(vg);
    assert_eq!(dm_names_of("inactvg"), before);
}

/// Every refusal is an error of the right kind, with the VG's seqno and the
/// device list unchanged.
#[test]
#[parallel]
fn refusals_change_nothing() {
    require_dm();
    let vg = ScratchVg::new("refvg", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 64M -n big");
    vg.lvm("lvcreate -q -y -L 8M -n small");
    sh("lvcreate -q -s -L 8M -n lvmsnap refvg/small");
    let v = VolumeGroup::open("refvg").unwrap();
    let seq = vg.seqno();
    let devs = dm_names_of("refvg");
    let d = SnapshotOptions::default;
    let long = "n".repeat(200);
    let cases: Vec<(&str, &str, SnapshotOptions, ErrorKind)> = vec![
        ("lvmsnap", "s1", d(), ErrorKind::InvalidArgument),
        ("nosuch", "s1", d(), ErrorKind::NotFound),
        ("small", "lvmsnap", d(), ErrorKind::InvalidArgument),
        ("small", "small", d(), ErrorKind::InvalidArgument),
        ("small", "snapshot7", d(), ErrorKind::InvalidArgument),
        ("small", "-dash", d(), ErrorKind::InvalidArgument),
        ("small", "a/b", d(), ErrorKind::InvalidArgument),
        ("small", "x_tmeta", d(), ErrorKind::InvalidArgument),
        ("small", &long, d(), ErrorKind::InvalidArgument),
        ("big", "s1", d(), ErrorKind::NoSpace),
        (
            "small",
            "s1",
            d().chunk_size(Bytes(3 * 4096)),
            ErrorKind::InvalidArgument,
        ),
        (
            "small",
            "s1",
            d().chunk_size(Bytes(1 << 20)),
            ErrorKind::InvalidArgument,
        ),
    ];
    for (origin, name, opts, kind) in cases {
        let e = v.create_snapshot(origin, name, &opts).expect_err(name);
        assert_eq!(e.kind(), kind, "{origin} -> {name}: {e}");
        assert!(!e.to_string().is_empty());
        assert_eq!(vg.seqno(), seq, "{name}: metadata changed");
        assert_eq!(dm_names_of("refvg"), devs, "{name}: devices changed");
    }
    let e = v.create_snapshot("big", "s1", &d()).unwrap_err();
    assert!(
        e.to_string().contains("extents"),
        "NoSpace gives figures: {e}"
    );
    assert_eq!(
        VolumeGroup::open("novg").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        v.delete_snapshot("small").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        v.delete_snapshot("gone").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    vg.vgck();
}

/// A create that fails after its devices are made, here because the new
/// metadata no longer fits its area (found while the devices are being
/// made), removes them and leaves the metadata as it was.
#[test]
#[parallel]
fn failure_after_the_devices_are_made_undoes_them() {
    require_dm();
    let pv = LoopDev::new(4 << 30);
    // LVM stretches the metadata area to the data alignment (1 MiB by
    // default, room for ~2000 LVs); 128 KiB keeps it at ~200.
    sh(&format!(
        "pvcreate -q --metadatasize 16k --dataalignment 128k {0} && vgcreate -q -s 1M fullvg {0}",
        pv.path.display()
    ));
    let vg = ScratchVg {
        name: "fullvg".into(),
        pvs: vec![pv],
    };
    vg.lvm("lvcreate -q -y -L 8M -n origin");
    // Fill the metadata area with LVs, in one commit per batch, until not
    // even one more fits.
    let mut n = 0;
    for batch in [200, 20, 1] {
        loop {
            let mut disk = VgDisk::open("fullvg", &ScanOptions::default()).unwrap();
            let mut md = Metadata::parse(disk.text()).unwrap();
            let now = Creation::now();
            for i in 0..batch {
                md.add_linear_lv(&format!("f{}", n + i), Extents(1), &now)
                    .unwrap();
            }
            md.bump_seqno().unwrap();
            match disk.commit(&md.to_text(Style::Raw)) {
                Ok(()) => n += batch,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
                    break;
                }
            }
        }
    }
    assert!(n > 100, "only {n} LVs fit");
    let v = VolumeGroup::open("fullvg").unwrap();
    let seq = vg.seqno();
    let devs = dm_names_of("fullvg");
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 << 20)));
    let e = v.create_snapshot("origin", "s1", &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert_eq!(vg.seqno(), seq, "metadata changed");
    assert_eq!(dm_names_of("fullvg"), devs, "devices left behind");
    assert!(!vg.lvs("lv_attr").contains_key("s1"));
    vg.vgck();
    // The origin still works as a plain LV.
    write_pattern(
        std::path::Path::new("/dev/mapper/fullvg-origin"),
        0,
        4096,
        7,
    );
    assert_eq!(
        read_at(std::path::Path::new("/dev/mapper/fullvg-origin"), 0, 4096),
        vec![7; 4096]
    );
}

/// A merging origin refuses new snapshots, and a merging snapshot refuses
/// deletion.
#[test]
#[parallel]
fn merging_refusals() {
    require_dm();
    let vg = ScratchVg::new("mergevg", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    sh("lvcreate -q -s -L 8M -n s0 mergevg/lv0");
    // Hold the origin open so LVM only records the merge.
    let hold = std::fs::File::open("/dev/mergevg/lv0").unwrap();
    let out = sh("lvconvert --merge mergevg/s0 2>&1");
    assert!(
        out.contains("Delaying merge") || out.contains("merge"),
        "{out}"
    );
    let v = VolumeGroup::open("mergevg").unwrap();
    let st = v.snapshot_status("s0").unwrap();
    assert!(st.merging);
    assert_eq!(st.state, State::NotReady);
    let seq = vg.seqno();
    let e = v
        .create_snapshot("lv0", "s1", &SnapshotOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    let e = v.delete_snapshot("s0").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(vg.seqno(), seq);
    drop(hold);
    vg.vgck();
}

/// Delete waits out a passing opener of the snapshot (a udev scan reading
/// it), as `lvremove` does, and refuses one that stays, with nothing
/// changed: the metadata, the devices and the data are as they were.
#[test]
#[parallel]
fn delete_waits_out_a_passing_opener() {
    require_dm();
    let vg = ScratchVg::new("openvg", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    let v = VolumeGroup::open("openvg").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(8 << 20)));
    v.create_snapshot("lv0", "s0", &opts).unwrap();
    v.create_snapshot("lv0", "s1", &opts).unwrap();

    // Open for 600 ms while delete runs: it waits, then deletes.
    let f = std::fs::File::open("/dev/openvg/s0").unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        drop(f);
    });
    let t = Instant::now();
    v.delete_snapshot("s0")
        .expect("delete once the opener has gone");
    closer.join().unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        !dm_names_of("openvg")
            .iter()
            .any(|d| d.starts_with("openvg-s0"))
    );
    vg.vgck();

    // Held open throughout: Busy after the wait, nothing changed.
    let seq = vg.seqno();
    let devs = dm_names_of("openvg");
    let held = std::fs::File::open("/dev/openvg/s1").unwrap();
    let e = v.delete_snapshot("s1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(e.to_string().contains("open"), "{e}");
    assert_eq!(vg.seqno(), seq);
    assert_eq!(dm_names_of("openvg"), devs);
    drop(held);
    v.delete_snapshot("s1").unwrap();
    vg.vgck();
}

/// Overflow: a watcher wakes within a second of the snapshot turning
/// invalid, and status then says NotReady/invalid, like lvs. Serial: the
/// wake-up is timed, so no other test loads the VM meanwhile.
#[test]
#[serial]
fn overflow_is_seen_at_once() {
    require_dm();
    let vg = ScratchVg::new("ovfvg", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 32M -n lv0");
    let v = VolumeGroup::open("ovfvg").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    v.create_snapshot("lv0", "small", &opts).unwrap();
    let watch = v.watch("small").unwrap();
    let t = std::thread::spawn(move || {
        let r = watch.wait(Until::Invalid, Duration::from_secs(60));
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    write_pattern("/dev/ovfvg/lv0".as_ref(), 0, 8 * MIB as usize, 0x77);
    let written = Instant::now();
    let (r, woke) = t.join().unwrap();
    assert_eq!(r.unwrap(), WatchEvent::Invalid);
    let late = woke.saturating_duration_since(written);
    assert!(
        late < Duration::from_secs(1),
        "woke {late:?} after the overflow"
    );
    let st = v.snapshot_status("small").unwrap();
    assert!(st.invalid);
    assert_eq!(st.state, State::NotReady);
    assert_eq!(
        vg.lvs("lv_snapshot_invalid")["small"]["lv_snapshot_invalid"],
        "snapshot invalid"
    );
    // An inactive invalid snapshot is still known invalid from its store.
    sh("lvchange -an ovfvg/lv0");
    assert!(v.snapshot_status("small").unwrap().invalid);
    sh("lvchange -ay ovfvg/lv0");
    vg.vgck();
}

/// The CLI contract: create, list, status, delete; JSON keys; errors on
/// stderr with a non-zero exit and nothing changed.
#[test]
#[serial]
fn cli_contract() {
    require_dm();
    let vg = ScratchVg::new("clivg", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 16M -n pvc-1");
    vg.lvm("lvcreate -q -y -L 80M -n pvc-2");
    let (code, out, err) = lvsnap(&["create", "clivg/pvc-1", "snapcontent-1", "--snapsize", "8M"]);
    assert_eq!(code, 0, "{out}{err}");
    vg.vgck();
    let (code, out, _) = lvsnap(&["list", "clivg", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("list --json");
    let s = &v[0];
    for k in STATUS_JSON_KEYS {
        assert!(s.get(k).is_some(), "missing {k} in {s}");
    }
    assert_eq!(s["name"], "snapcontent-1");
    assert_eq!(s["source_volume"], "pvc-1");
    assert_eq!(s["capacity_bytes"], 8 * MIB);
    assert_eq!(s["state"], "Ready");
    assert_eq!(s["thin"], false);
    let (code, out, _) = lvsnap(&["status", "clivg/snapcontent-1", "--json"]);
    assert_eq!(code, 0);
    let one: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(one["name"], "snapcontent-1");
    let ct = one["creation_time"].as_str().unwrap();
    assert!(
        ct.len() == 20 && ct.ends_with('Z') && ct.as_bytes()[10] == b'T',
        "RFC 3339: {ct}"
    );
    let (code, out, _) = lvsnap(&["list"]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "CAPACITY",
            "SOURCEVOLUME",
            "STATE",
            "MERGING",
            "INVALID",
            "AGE"
        ]
    );
    assert!(out.contains("snapcontent-1") && out.contains("8388608") && out.contains("Ready"));

    let seq = vg.seqno();
    for args in [
        vec!["create", "clivg/pvc-1", "snapcontent-1"],
        vec!["create", "clivg/pvc-1", "x", "--snapsize", "12Q"],
        vec!["create", "clivg/pvc-1", "x", "--snapsize", "0"],
        vec!["create", "clivg/pvc-2", "x"],
        vec!["create", "clivg/pvc-1", "x", "--chunk-size", "3K"],
        vec!["create", "clivg", "x"],
        vec!["status", "clivg/nosuch"],
        vec!["delete", "clivg/pvc-1"],
        vec!["list", "novg"],
    ] {
        let (code, out, err) = lvsnap(&args);
        assert_ne!(code, 0, "{args:?} succeeded: {out}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: one clear line, got {err:?}"
        );
        assert!(err.starts_with("lvsnap: "), "{err}");
        assert_eq!(vg.seqno(), seq, "{args:?} changed metadata");
    }
    let (code, _, err) = lvsnap(&["delete", "clivg/snapcontent-1"]);
    assert_eq!(code, 0, "{err}");
    vg.vgck();
    let (_, out, _) = lvsnap(&["list", "clivg", "--json"]);
    assert_eq!(out.trim(), "[]");
}

/// A thin origin gets a thin snapshot (snapsize ignored, and said so) that
/// keeps the origin's old bytes; `lvs` shows its origin and pool; deleting
/// it leaves the pool's transaction ids consistent for LVM.
#[test]
#[parallel]
fn thin_snapshot() {
    require_dm();
    let before = dm_names_of("thinvg");
    let vg = ScratchVg::new("thinvg", 1, 128, "");
    sh("lvcreate -q -y -L 32M -T thinvg/pool");
    sh("lvcreate -q -y -V 16M -T thinvg/pool -n vol");
    write_pattern("/dev/thinvg/vol".as_ref(), 0, MIB as usize, 0x31);
    let v = VolumeGroup::open("thinvg").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    let made = v
        .create_snapshot("vol", "tsnap", &opts)
        .expect("thin snapshot");
    assert!(made.snapsize_ignored);
    assert!(made.status.thin);
    assert_eq!(made.status.source_volume, "vol");
    assert_eq!(made.status.capacity, Bytes(16 * MIB as u128));
    vg.vgck();
    let lvs = vg.lvs("lv_attr,origin,pool_lv,lv_size");
    assert_eq!(lvs["tsnap"]["origin"], "vol");
    assert_eq!(lvs["tsnap"]["pool_lv"], "pool");
    assert_eq!(&lvs["tsnap"]["lv_attr"][..1], "V");
    write_pattern("/dev/thinvg/vol".as_ref(), 0, MIB as usize, 0x32);
    sh("lvchange -ay -K thinvg/tsnap");
    assert!(
        read_at("/dev/thinvg/tsnap".as_ref(), 0, MIB as usize)
            .iter()
            .all(|&b| b == 0x31)
    );
    let st = v.snapshot_status("tsnap").unwrap();
    let pct: f64 = vg.lvs("data_percent")["tsnap"]["data_percent"]
        .parse()
        .unwrap();
    assert!((st.data_percent.unwrap() - pct).abs() < 0.01);
    sh("lvchange -an thinvg/tsnap");

    // One LVM made, listed alongside.
    sh("lvcreate -q -s -n lvmthin thinvg/vol");
    let names: Vec<String> = v.snapshots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["tsnap", "lvmthin"]);

    v.delete_snapshot("tsnap").expect("delete thin");
    vg.vgck();
    assert!(!vg.lvs("lv_attr").contains_key("tsnap"));
    // LVM agrees with the pool on transaction ids: it can cycle the pool.
    sh("vgchange -an thinvg && vgchange -ay thinvg");
    sh("lvremove -q -y thinvg/lvmthin");

    // With the pool inactive, lvsnap activates it for the pool message and
    // deactivates it again, as lvcreate does.
    sh("vgchange -an thinvg");
    let devs = dm_names_of("thinvg");
    v.create_snapshot("vol", "cold", &SnapshotOptions::default())
        .expect("thin snapshot, pool inactive");
    assert_eq!(dm_names_of("thinvg"), devs, "pool left as it was");
    vg.vgck();
    sh("vgchange -ay thinvg && lvchange -ay -K thinvg/cold");
    assert!(
        read_at("/dev/thinvg/cold".as_ref(), 0, MIB as usize)
            .iter()
            .all(|&b| b == 0x32)
    );
    sh("vgchange -an thinvg");
    v.delete_snapshot("cold").expect("delete, pool inactive");
    assert_eq!(dm_names_of("thinvg"), devs);
    vg.vgck();
    sh("vgchange -ay thinvg");

    // LVM drops a thin snapshot's origin link with its origin: a volume
    // then, which lvsnap refuses to delete as a snapshot, saying why.
    sh("lvcreate -q -s -n orph thinvg/vol && lvremove -q -y thinvg/vol");
    let e = v.delete_snapshot("orph").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("thin volume with no origin"), "{e}");
    assert!(vg.lvs("lv_attr").contains_key("orph"));
    drop(vg);
    assert_eq!(dm_names_of("thinvg"), before);
}
