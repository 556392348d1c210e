//! Restores that need more than a copy: from an inactive COW snapshot
//! (its origin activated for the copy, then put back), and into a larger
//! LV whose extents held another LV's data (the tail must read as zeros).

mod common;

use common::lvm::ScratchVg;
use common::{dm_names_of, lvsnap, read_at, require_dm, sh, write_pattern};
use lvsnap::snapshot::{RestoreOptions, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;
use serial_test::parallel;

const MIB: u64 = 1 << 20;

fn first_pe(vg: &str, lv: &str) -> String {
    sh(&format!(
        "lvs --noheadings --segments -o seg_start_pe {vg}/{lv}"
    ))
    .split_whitespace()
    .next()
    .unwrap_or_default()
    .to_owned()
}

/// From an inactive snapshot into a 32 MiB LV over the extents of a
/// deleted LV full of 0xEE: the first 16 MiB are the snapshot's, the rest
/// zeros; the origin and its snapshot are inactive again afterwards, and
/// no other device is left.
#[test]
#[parallel]
fn restore_from_inactive_snapshot_zeroes_the_tail() {
    require_dm();
    let vg = ScratchVg::new("rsin", 1, 256, "");
    vg.lvm("lvcreate -q -y -L 32M -n old");
    write_pattern("/dev/rsin/old".as_ref(), 0, 32 * MIB as usize, 0xEE);
    let old_pe = first_pe("rsin", "old");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    sh("lvremove -q -y rsin/old");
    write_pattern("/dev/rsin/lv0".as_ref(), 0, 16 * MIB as usize, 0x42);
    let v = VolumeGroup::open("rsin").unwrap();
    v.create_snapshot("lv0", "s0", &SnapshotOptions::default())
        .unwrap();
    write_pattern("/dev/rsin/lv0".as_ref(), 0, 4 * MIB as usize, 0x43);
    sh("lvchange -an rsin/lv0");
    let devs = dm_names_of("rsin");

    let opts = RestoreOptions::default().size(Bytes(u128::from(32 * MIB)));
    let mut last = 0.0;
    let made = v
        .restore("s0", "new", &opts, |p| last = p.percent)
        .expect("restore from an inactive snapshot");
    assert_eq!(made.size, Bytes(u128::from(32 * MIB)));
    assert_eq!(last, 100.0);
    vg.vgck();
    assert_eq!(
        first_pe("rsin", "new"),
        old_pe,
        "not over the old LV: test is moot"
    );
    let data = read_at("/dev/rsin/new".as_ref(), 0, 32 * MIB as usize);
    assert!(
        data[..16 * MIB as usize].iter().all(|&b| b == 0x42),
        "not the snapshot's data"
    );
    assert!(
        data[16 * MIB as usize..].iter().all(|&b| b == 0),
        "stale bytes past the snapshot's size"
    );
    let lvs = vg.lvs("lv_attr");
    assert_eq!(
        &lvs["lv0"]["lv_attr"][4..5],
        "-",
        "origin left active: {lvs:?}"
    );
    assert_eq!(&lvs["s0"]["lv_attr"][4..5], "-", "{lvs:?}");
    assert_eq!(&lvs["new"]["lv_attr"][4..5], "a", "{lvs:?}");
    let mut want = devs.clone();
    want.push("rsin-new".into());
    want.sort();
    assert_eq!(dm_names_of("rsin"), want);

    // The CLI, the origin active this time: it stays active.
    sh("lvchange -ay rsin/lv0");
    let (code, out, err) = lvsnap(&["restore", "rsin/s0", "new2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        read_at("/dev/rsin/new2".as_ref(), 0, 16 * MIB as usize)
            .iter()
            .all(|&b| b == 0x42)
    );
    assert_eq!(&vg.lvs("lv_attr")["lv0"]["lv_attr"][4..5], "a");
    vg.vgck();
}
