//! Growing a COW snapshot's store (`extend`) against `lvextend` of a
//! snapshot: same sizes, same placement, same refusals; live, the snapshot
//! keeps its data and takes more changes than its old store held.

mod common;

use common::lvm::ScratchVg;
use common::{dm_listing, dm_names_of, lvsnap, read_at, require_dm, sh, write_pattern};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{ExtendSize, SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;
use serial_test::parallel;

const MIB: u64 = 1 << 20;

/// A VG of one 256 MiB PV: origin lv0 (64 MiB) with an 8 MiB snapshot s0,
/// then one free extent, then b1: s0 can grow in place by one extent only.
fn layout(name: &str) -> ScratchVg {
    let vg = ScratchVg::new(name, 1, 256, "");
    vg.lvm("lvcreate -q -y -L 64M -n lv0");
    sh(&format!("lvcreate -q -s -L 8M -n s0 {name}/lv0"));
    vg.lvm("lvcreate -q -y -L 4M -n gap");
    vg.lvm("lvcreate -q -y -L 4M -n b1");
    sh(&format!("lvremove -q -y {name}/gap"));
    vg
}

/// Segments of an LV as `lvs --segments` gives them: (start, size, PE start).
fn segments(vg: &str, lv: &str) -> Vec<String> {
    sh(&format!(
        "lvs --noheadings --segments --units b --nosuffix -o seg_start,seg_size,seg_start_pe {vg}/{lv}"
    ))
    .lines()
    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    .collect()
}

/// A table with device numbers blanked (the two VGs' loop devices differ).
fn table_shape(dev: &str) -> String {
    sh(&format!("dmsetup table {dev}"))
        .split_whitespace()
        .map(|w| if w.contains(':') { "D" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn size_of(vg: &str, lv: &str) -> u64 {
    sh(&format!(
        "lvs --noheadings --units b --nosuffix -o lv_size {vg}/{lv}"
    ))
    .trim()
    .parse()
    .unwrap()
}

fn sh_fails(cmd: &str) -> bool {
    !std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap()
        .status
        .success()
}

/// No device of the VGs `vgs` is left suspended (other tests' devices may
/// be, for a moment).
fn no_suspended_device(vgs: &[&str]) {
    let out = dm_listing("dmsetup info -c --noheadings -o name,attr");
    for l in out
        .lines()
        .filter(|l| vgs.iter().any(|vg| l.starts_with(&format!("{vg}-"))))
    {
        let attr = l.split(':').nth(1).unwrap_or_default();
        assert!(!attr.contains('s'), "left suspended: {l}");
    }
}

/// lvsnap's `extend` and `lvextend` on twin VGs: the same rounding (to
/// whole extents), the same placement (the adjacent free extent joins the
/// last segment, the rest a new one), the same -cow table, the same cap;
/// live, the snapshot keeps its point in time and, grown, takes more
/// changes than its old store could hold, staying valid.
#[test]
#[parallel]
fn extend_matches_lvextend_live() {
    require_dm();
    let a = layout("exa");
    let b = layout("exb");
    let origin = "/dev/exa/lv0";
    write_pattern(origin.as_ref(), 0, 4 * MIB as usize, 0x5A);
    let before = read_at("/dev/exa/s0".as_ref(), 0, 64 * MIB as usize);
    // 4 MiB changed after the snapshot: the 8 MiB store is about half full.
    sh("dd if=/dev/urandom of=/dev/exa/lv0 bs=1M count=4 oflag=direct status=none");

    // Rounding: +1 byte is one extent, 18M rounds up to 20M, as lvextend.
    for (arg, lvm) in [("+8M", "+8M"), ("18M", "18M"), ("+1", "+1")] {
        let (code, out, err) = lvsnap(&["extend", "exa/s0", arg]);
        assert_eq!(code, 0, "{arg}: {out}{err}");
        sh(&format!("lvextend -q -L {lvm} exb/s0"));
        assert_eq!(size_of("exa", "s0"), size_of("exb", "s0"), "{arg}");
        assert_eq!(segments("exa", "s0"), segments("exb", "s0"), "{arg}");
        assert_eq!(
            table_shape("exa-s0-cow"),
            table_shape("exb-s0-cow"),
            "{arg}"
        );
        no_suspended_device(&["exa", "exb"]);
        a.vgck();
    }
    assert_eq!(size_of("exa", "s0"), 24 * MIB);
    assert_eq!(
        segments("exa", "s0").len(),
        2,
        "{:?}",
        segments("exa", "s0")
    );
    assert!(
        read_at("/dev/exa/s0".as_ref(), 0, 64 * MIB as usize) == before,
        "the snapshot lost its data"
    );
    // 16 MiB more changes: past the old 8 MiB store, within the new one.
    sh("dd if=/dev/urandom of=/dev/exa/lv0 bs=1M seek=8 count=16 oflag=direct status=none");
    let lvs = a.lvs("lv_attr,lv_snapshot_invalid,snap_percent");
    assert!(!lvs["s0"]["lv_attr"].contains('I'), "{lvs:?}");
    assert!(
        read_at("/dev/exa/s0".as_ref(), 0, 64 * MIB as usize) == before,
        "the grown snapshot lost its data"
    );

    // The cap: LVM's cow_max_extents (17 extents for 64 MiB, 4 KiB chunks).
    let v = VolumeGroup::open("exa").unwrap();
    let e = v
        .extend_snapshot("s0", ExtendSize::To(Bytes(1 << 30)))
        .unwrap();
    sh("lvextend -q -L 1G exb/s0");
    assert!(e.capped);
    assert_eq!(*e.size, u128::from(size_of("exb", "s0")));
    assert_eq!(size_of("exa", "s0"), size_of("exb", "s0"));
    assert_eq!(segments("exa", "s0"), segments("exb", "s0"));
    // At the cap, a further extend changes nothing and succeeds, as LVM.
    let seq = a.seqno();
    let e = v
        .extend_snapshot("s0", ExtendSize::By(Bytes(4 * MIB as u128)))
        .unwrap();
    assert!(e.capped);
    assert_eq!(e.size, e.old_size);
    assert_eq!(a.seqno(), seq);
    no_suspended_device(&["exa", "exb"]);
    a.vgck();
    // LVM takes it all back: deactivate, activate, the data is there.
    sh("lvchange -an exa/lv0 && lvchange -ay exa/lv0");
    assert!(read_at("/dev/exa/s0".as_ref(), 0, 64 * MIB as usize) == before);
    drop(b);
}

/// Refusals, each before anything changes (seqno, devices): a shrink, the
/// same size, more than the free space, a plain LV, a thin snapshot, a
/// merging snapshot, no such LV; lvextend refuses the same (except for the
/// thin snapshot, whose virtual size lvextend grows: lvsnap grows stores
/// only). With the origin inactive, the extend is metadata only and LVM
/// activates the result.
#[test]
#[parallel]
fn extend_refusals_and_inactive() {
    require_dm();
    let vg = ScratchVg::new("exr", 1, 128, "");
    vg.lvm("lvcreate -q -y -L 32M -n lv0");
    sh("lvcreate -q -y -L 16M -T exr/pool -V 8M -n th");
    sh("lvcreate -q -s -n ts exr/th");
    let v = VolumeGroup::open("exr").unwrap();
    v.create_snapshot(
        "lv0",
        "s0",
        &SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(8 * MIB as u128))),
    )
    .unwrap();
    let free_mib = |vg: &str| -> u64 {
        sh(&format!(
            "vgs --noheadings --units b --nosuffix -o vg_free {vg}"
        ))
        .trim()
        .parse::<u64>()
        .unwrap()
            / MIB
    };
    let seq = vg.seqno();
    let devs = dm_names_of("exr");
    let mb = |n: u64| Bytes(u128::from(n * MIB));
    let cases = [
        (
            "s0",
            ExtendSize::To(mb(4)),
            ErrorKind::InvalidArgument,
            Some("-L 4M"),
        ),
        (
            "s0",
            ExtendSize::To(mb(8)),
            ErrorKind::InvalidArgument,
            Some("-L 8M"),
        ),
        (
            "s0",
            ExtendSize::By(Bytes(0)),
            ErrorKind::InvalidArgument,
            Some("-L +0"),
        ),
        (
            "lv0",
            ExtendSize::By(mb(4)),
            ErrorKind::InvalidArgument,
            None,
        ),
        ("ts", ExtendSize::By(mb(4)), ErrorKind::Unsupported, None),
        (
            "pool",
            ExtendSize::By(mb(4)),
            ErrorKind::InvalidArgument,
            None,
        ),
        ("nosuch", ExtendSize::By(mb(4)), ErrorKind::NotFound, None),
    ];
    for (name, size, kind, lvm) in cases {
        let e = v.extend_snapshot(name, size).expect_err(name);
        assert_eq!(e.kind(), kind, "{name} {size:?}: {e}");
        assert_eq!(vg.seqno(), seq, "{name}: metadata changed");
        assert_eq!(dm_names_of("exr"), devs, "{name}: devices changed");
        if let Some(args) = lvm {
            assert!(
                sh_fails(&format!("lvextend {args} exr/s0")),
                "lvextend {args} accepted it"
            );
        }
    }
    // Beyond the free space (one extent left, two asked for).
    sh(&format!(
        "lvcreate -q -y -L {}M -n fill exr",
        free_mib("exr") - 4
    ));
    let seq = vg.seqno();
    let e = v.extend_snapshot("s0", ExtendSize::By(mb(8))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert!(e.to_string().contains("extents"), "{e}");
    assert_eq!(vg.seqno(), seq);
    assert!(sh_fails("lvextend -L +8M exr/s0"));
    sh("lvremove -q -y exr/fill");
    let seq = vg.seqno();
    let (code, _, err) = lvsnap(&["extend", "exr/s0", "4M"]);
    assert_ne!(code, 0);
    assert!(
        err.starts_with("lvsnap: ") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(vg.seqno(), seq);

    // Merging (recorded with the origin inactive): refused, as lvextend
    // ("Can't resize internal logical volume").
    sh("lvchange -an exr/lv0");
    let e = v.extend_snapshot("s0", ExtendSize::By(mb(4)));
    assert!(e.is_ok(), "{e:?}");
    assert_eq!(size_of("exr", "s0"), 12 * MIB);
    vg.vgck();
    sh("lvchange -ay exr/lv0");
    let lvs = vg.lvs("lv_attr,lv_size");
    let attr = &lvs["s0"]["lv_attr"];
    assert!(attr.starts_with("sri-a-s"), "{lvs:?}");
    assert_eq!(table_shape("exr-s0-cow").split(' ').nth(1), Some("24576"));
    sh("lvchange -an exr/lv0 && lvconvert -q --merge exr/s0");
    let seq = vg.seqno();
    let e = v.extend_snapshot("s0", ExtendSize::By(mb(4))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(vg.seqno(), seq);
    vg.vgck();
}
