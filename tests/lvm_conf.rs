//! lvm.conf settings lvsnap follows, with LVM_SYSTEM_DIR pointing both LVM
//! and lvsnap at a test's own lvm.conf (the VM's, plus the settings tried).

mod common;

use common::lvm::ScratchVg;
use common::{Conf, require_dm, sh};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{RestoreOptions, RollbackState, SnapshotOptions, VolumeGroup};
use serial_test::serial;

/// `lvs -H` rows: name, full ancestors, full descendants.
fn history(vg: &str) -> Vec<String> {
    let mut v: Vec<String> = sh(&format!(
        "lvs -H --noheadings -o lv_name,lv_full_ancestors,lv_full_descendants -S 'lv_name=~^[os]' {vg}"
    ))
    .lines()
    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    .collect();
    v.sort();
    v
}

/// With `record_lvs_history = 1`, deleting a thin snapshot in the middle of
/// a chain leaves the historical record `lvremove` leaves: `lvs -H` shows
/// the same ancestors and descendants for lvsnap's VG as for LVM's twin.
#[test]
#[serial]
fn record_lvs_history_keeps_the_chain() {
    require_dm();
    let _conf = Conf::with("metadata {\n\trecord_lvs_history = 1\n}");
    let a = ScratchVg::new("hista", 1, 128, "");
    let b = ScratchVg::new("histb", 1, 128, "");
    for vg in ["hista", "histb"] {
        sh(&format!("lvcreate -q -y -L 32M -T {vg}/pool -V 8M -n o"));
    }
    let v = VolumeGroup::open("hista").unwrap();
    let opts = SnapshotOptions::default().writable(true);
    for (origin, snap) in [("o", "s1"), ("s1", "s2"), ("s2", "s3")] {
        v.create_snapshot(origin, snap, &opts).unwrap();
        sh(&format!("lvcreate -q -s -n {snap} histb/{origin}"));
    }
    v.delete_snapshot("s2").unwrap();
    sh("lvremove -q -y histb/s2");
    a.vgck();
    let (ha, hb) = (history("hista"), history("histb"));
    assert_eq!(ha, hb);
    assert!(
        ha.iter().any(|r| r.starts_with("-s2 ")),
        "no historical s2: {ha:?}"
    );
    assert!(ha.iter().any(|r| r == "s3 -s2,s1,o"), "{ha:?}");
    drop(b);
}

/// An inactive origin's rollback is started by activating it, as LVM's
/// activation does, unless lvm.conf's volume_list forbids activating it:
/// then it is recorded and Submitted (the kernel has not started it).
#[test]
#[serial]
fn volume_list_leaves_a_rollback_submitted() {
    require_dm();
    let vg = ScratchVg::new("vlist", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 16M -n lv0");
    let v = VolumeGroup::open("vlist").unwrap();
    v.create_snapshot("lv0", "s0", &SnapshotOptions::default())
        .unwrap();
    vg.lvm("lvcreate -q -y -L 8M -n lv1");
    v.create_snapshot("lv1", "t0", &SnapshotOptions::default())
        .unwrap();
    sh("lvchange -an vlist/lv0 vlist/lv1");
    {
        let _conf = Conf::with("activation {\n\tvolume_list = [ \"othervg\" ]\n}");
        let rb = v.rollback("s0").unwrap();
        assert_eq!(rb.state(), RollbackState::Submitted);
        vg.vgck();
        let lvs = vg.lvs("lv_attr,lv_merging");
        assert!(lvs["lv0"]["lv_attr"].starts_with("Owi-"), "{lvs:?}");
        // Nor is an inactive snapshot's origin activated for a restore.
        let seq = vg.seqno();
        let e = v
            .restore("t0", "new", &RestoreOptions::default(), |_| {})
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(vg.seqno(), seq);
        assert_eq!(&vg.lvs("lv_attr")["lv1"]["lv_attr"][4..5], "-");
    }
    // Allowed again: running rollback again activates the origin.
    let mut rb = v.rollback("s0").unwrap();
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
    let lvs = vg.lvs("lv_attr");
    assert!(lvs["lv0"]["lv_attr"].starts_with("-wi-a-"), "{lvs:?}");
}
