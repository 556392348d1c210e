//! LVM2's shell tests `lvcreate-thin-snap.sh`, `thin-errors.sh`,
//! `snapshot-remove-dmsetup.sh` and `lv-ancestry.sh`, ported: where they
//! check what `lvcreate -s`/`lvremove` do, these check lvsnap's create and
//! delete doing the same, with LVM2's tools (lvs, vgck, thin_check,
//! lvchange, lvremove), e2fsck and data checksums as the judge. Checks of
//! LVM's own command syntax, and of kernel behaviour no lvsnap operation
//! touches, are left out (listed in each test's comment).

mod common;

use std::collections::HashMap;

use common::lvm::ScratchVg;
use common::{Conf, dm_names_of, lvsnap, require_dm, sh};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{SnapshotOptions, VolumeGroup};
use serial_test::{parallel, serial};

/// SHA-256 of a whole device, read around the page cache.
fn sum(dev: &str) -> String {
    sh(&format!(
        "dd if={dev} iflag=direct bs=64K status=none | sha256sum"
    ))
    .split_whitespace()
    .next()
    .unwrap()
    .to_owned()
}

/// Fresh random data over 64 KiB at `kib` KiB of `dev`.
fn scribble(dev: &str, kib: u64) {
    sh(&format!(
        "dd if=/dev/urandom of={dev} bs=64K count=1 seek={} oflag=direct conv=fsync status=none",
        kib / 64
    ));
}

fn writable() -> SnapshotOptions {
    SnapshotOptions::default().writable(true)
}

/// lvcreate-thin-snap.sh: thin snapshots of a thin LV, read-only and
/// writable, of an origin that also has (LVM-made) COW snapshots, with its
/// ext4 mounted (frozen for the snapshot: e2fsck finds it clean, no journal
/// to replay), and a chain snapshot of snapshot of snapshot; in an
/// over-provisioned pool (its third part: a 20M thin LV in a 10M pool).
/// lvsnap refuses a snapshot of a COW snapshot, as lvcreate does, and LVM
/// removes all of it. Not ported: lvcreate's option syntaxes (`-T`,
/// `--type thin`, `--thin`), `--type snapshot` without a size, and `-V`
/// without a pool: lvsnap has one create command. lvsnap differs on
/// purpose where a thin origin is given a snapsize: the snapshot is thin
/// and the CLI says the size is not used (LVM makes a COW snapshot of the
/// thin LV then).
#[test]
#[parallel]
fn lvcreate_thin_snap() {
    require_dm();
    let vg = ScratchVg::new("p14a", 1, 128, "-s 64K");
    sh("lvcreate -q -y -L10M -V20M -T p14a/pool -n lv1");
    sh("mkfs.ext4 -q /dev/p14a/lv1");
    let v = VolumeGroup::open("p14a").unwrap();
    // -pr, then the default (lvcreate's is writable, lvsnap's read-only).
    v.create_snapshot("lv1", "snap", &SnapshotOptions::default())
        .unwrap();
    v.create_snapshot("lv1", "lv2", &writable()).unwrap();
    // The CLI, with a snapsize that a thin origin does not use.
    let (code, out, err) = lvsnap(&["create", "p14a/lv1", "lv3", "--snapsize", "4M"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("thin") && err.contains("snapsize"), "{err}");

    // Old-style snapshots of thin lv2, by LVM, with lv2 active: its device
    // is then a snapshot-origin over lv2-real.
    sh("lvchange -q -ay -K p14a/lv2 && \
        lvcreate -q -s -L2M -n oldsnap1 p14a/lv2 && lvcreate -q -s -L2M -n oldsnap2 p14a/lv2");
    std::fs::create_dir_all("/run/tmp/p14a-mnt").unwrap();
    sh("mount /dev/p14a/lv2 /run/tmp/p14a-mnt && \
        dd if=/dev/urandom of=/run/tmp/p14a-mnt/f bs=64K count=4 status=none");
    let v = VolumeGroup::open("p14a").unwrap();
    let f = sh("sha256sum /run/tmp/p14a-mnt/f");
    // Taken with the file system mounted and its last writes unsynced.
    v.create_snapshot("lv2", "sn1", &writable()).unwrap();
    sh(
        "dd if=/dev/urandom of=/run/tmp/p14a-mnt/g bs=64K count=4 status=none; umount /run/tmp/p14a-mnt",
    );
    for (o, s) in [("sn1", "sn2"), ("sn2", "sn3"), ("sn3", "sn4")] {
        v.create_snapshot(o, s, &SnapshotOptions::default())
            .unwrap();
    }
    // A snapshot of a COW snapshot: refused by both, nothing changed.
    let seq = vg.seqno();
    let e = v
        .create_snapshot("oldsnap1", "x", &SnapshotOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        std::process::Command::new("lvcreate")
            .args(["-q", "-s", "-n", "x", "p14a/oldsnap1"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    assert_eq!(vg.seqno(), seq);

    vg.vgck();
    let lvs = vg.lvs("lv_attr,origin,segtype,lv_size");
    let want = [
        ("snap", "lv1", "Vri"),
        ("lv2", "lv1", "owi"),
        ("lv3", "lv1", "Vri"),
        ("sn1", "lv2", "Vwi"),
        ("sn2", "sn1", "Vri"),
        ("sn3", "sn2", "Vri"),
        ("sn4", "sn3", "Vri"),
    ];
    for (lv, origin, attr) in want {
        let r = &lvs[lv];
        assert_eq!(
            (
                r["origin"].as_str(),
                r["segtype"].as_str(),
                &r["lv_attr"][..3]
            ),
            (origin, "thin", attr),
            "{lv}: {lvs:?}"
        );
        assert_eq!(r["lv_size"], lvs["lv1"]["lv_size"], "{lv}");
        assert!(r["lv_attr"].ends_with('k'), "{lv}: activation skip");
    }
    assert_eq!(lvs["oldsnap1"]["origin"], "lv2");

    // Each snapshot's file system as taken: clean, the file whole, and the
    // chain's end equal to its start.
    sh("lvchange -q -ay -K p14a/snap p14a/sn1 p14a/sn4");
    for s in ["snap", "sn1", "sn4"] {
        let dev = format!("/dev/p14a/{s}");
        sh(&format!("e2fsck -fn {dev} >/dev/null"));
        let features = sh(&format!("dumpe2fs -h {dev} 2>/dev/null | grep -i features"));
        assert!(!features.contains("needs_recovery"), "{s}: {features}");
    }
    assert_eq!(sum("/dev/p14a/sn1"), sum("/dev/p14a/sn4"));
    sh("mount -o ro /dev/p14a/sn4 /run/tmp/p14a-mnt");
    let got = sh("sha256sum /run/tmp/p14a-mnt/f; ls /run/tmp/p14a-mnt; umount /run/tmp/p14a-mnt");
    assert!(
        got.starts_with(f.split_whitespace().next().unwrap()),
        "{got}"
    );
    assert!(!got.contains("\ng\n"), "{got}");

    // LVM removes the lot (lvsnap's LVs among them).
    sh("lvremove -q -ff p14a");
    assert!(vg.lvs("lv_name").is_empty());
    assert!(dm_names_of("p14a").is_empty());
}

/// thin-errors.sh: with the pool active, a snapshot is refused while the
/// metadata is out of step with the pool (an older metadata restored:
/// another transaction id), and again when the transaction id matches but
/// the kernel already holds a device the metadata does not know; each
/// refusal changes nothing and can be tried again, with the pool active
/// or inactive (lvsnap then activates it itself). With the right metadata
/// back, a snapshot is made and LVM activates every LV: no thin device of
/// the pool was lost or handed to another LV (each keeps its data). Not
/// ported: `--errorwhenfull`, which lvsnap neither sets nor reads.
#[test]
#[parallel]
fn thin_errors() {
    require_dm();
    let vg = ScratchVg::new("p14b", 1, 64, "");
    sh(
        "lvcreate -q -y -T -L8M --errorwhenfull y p14b/pool && lvcreate -q -y -V2M -n lv1 p14b/pool",
    );
    let lv1 = "/dev/p14b/lv1";
    let dir = std::env::temp_dir();
    let mda = |n: &str| dir.join(format!("p14b-{n}")).display().to_string();
    let mut sums = HashMap::new();
    let v = VolumeGroup::open("p14b").unwrap();
    scribble(lv1, 0);
    v.create_snapshot("lv1", "lv2", &writable()).unwrap();
    sums.insert("lv2", sum(lv1));
    sh(&format!("vgcfgbackup -q -f {} p14b", mda("tid2")));
    for (i, s) in ["lv3", "lv4", "lv5"].into_iter().enumerate() {
        scribble(lv1, 64 * (i as u64 + 1));
        v.create_snapshot("lv1", s, &writable()).unwrap();
        sums.insert(s, sum(lv1));
    }
    sh(&format!("vgcfgbackup -q -f {} p14b", mda("tid5")));
    let restore = |n: &str| {
        sh(&format!(
            "vgcfgrestore -q -f {} --force --yes p14b 2>&1",
            mda(n)
        ))
    };

    // Another transaction id: refused before anything is written.
    restore("tid2");
    let seq = vg.seqno();
    let devs = dm_names_of("p14b");
    let v = VolumeGroup::open("p14b").unwrap();
    let e = v.create_snapshot("lv1", "lv5", &writable()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("transaction id"), "{e}");
    assert_eq!((vg.seqno(), dm_names_of("p14b")), (seq, devs.clone()));

    // The right transaction id, but thin ids 3-5 are taken in the kernel:
    // refused, nothing changed, twice.
    sh(&format!(
        "sed -e 's/transaction_id = 2/transaction_id = 5/g' {} > {}",
        mda("tid2"),
        mda("tid2_5")
    ));
    restore("tid2_5");
    // The pool's message is committed before it is sent (LVM's order), so
    // undoing it takes a commit too: the seqno moves, the content does not.
    let view = || sh("lvs -a --noheadings -o lv_name,thin_id,transaction_id p14b");
    let seen = view();
    assert!(!seen.contains("lv5"), "{seen}");
    for _ in 0..2 {
        let v = VolumeGroup::open("p14b").unwrap();
        let e = v.create_snapshot("lv1", "lv5", &writable()).unwrap_err();
        assert!(e.to_string().contains("create_snap 3 1"), "{e}");
        assert_eq!(view(), seen, "{e}");
        assert_eq!(dm_names_of("p14b"), devs, "{e}");
        vg.vgck();
    }
    // Through the inactive pool (lvsnap activates it): refused before
    // anything is written, no device left.
    sh("vgchange -q -an p14b");
    let (seq, devs) = (vg.seqno(), dm_names_of("p14b"));
    for _ in 0..2 {
        let v = VolumeGroup::open("p14b").unwrap();
        let e = v.create_snapshot("lv1", "lv5", &writable()).unwrap_err();
        assert!(e.to_string().contains("device_id 3"), "{e}");
        assert_eq!(
            (vg.seqno(), dm_names_of("p14b")),
            (seq, devs.clone()),
            "{e}"
        );
    }
    sh("lvchange -q -ay p14b/lv1");

    // The metadata that matches the pool: all works, and nothing was lost.
    restore("tid5");
    let v = VolumeGroup::open("p14b").unwrap();
    scribble(lv1, 0);
    v.create_snapshot("lv1", "lv6", &writable()).unwrap();
    sums.insert("lv6", sum(lv1));
    vg.vgck();
    sh("lvchange -q -ay -K p14b");
    let lvs = vg.lvs("lv_attr,origin");
    for (s, want) in &sums {
        assert_eq!(&lvs[*s]["lv_attr"][4..5], "a", "{s}: {lvs:?}");
        assert_eq!(&sum(&format!("/dev/p14b/{s}")), want, "{s}");
    }
}

/// snapshot-remove-dmsetup.sh: a snapshot whose device `dmsetup remove
/// --force` turned into an `error` table while its file system was mounted
/// is then deleted cleanly, as `lvremove -f` deletes it; and so is one
/// (LVM-made) whose device `dmsetup remove` took away. Each time the origin
/// is left a plain linear LV with its data, no device of the snapshot
/// (`-cow`, `-real`) is left, and vgck passes. Not ported: the stacked VG
/// on a snapshot with the layer below suspended, which checks how the
/// kernel's suspend and remove behave, not anything lvsnap does. (With
/// the VG at hand: the CLI reports a recovery once.)
#[test]
#[parallel]
fn snapshot_remove_dmsetup() {
    require_dm();
    let vg = ScratchVg::new("p14c", 1, 64, "");
    sh("lvcreate -q -y -L20M -n lv1 p14c");
    common::write_pattern(std::path::Path::new("/dev/p14c/lv1"), 0, 1 << 20, 0x5a);
    let data = sum("/dev/p14c/lv1");
    let before = dm_names_of("p14c");
    let v = VolumeGroup::open("p14c").unwrap();
    v.create_snapshot(
        "lv1",
        "snap",
        &writable().snapsize(lvsnap::snapshot::SnapSize::Bytes(lvsnap::units::Bytes(
            10 << 20,
        ))),
    )
    .unwrap();
    std::fs::create_dir_all("/run/tmp/p14c-mnt").unwrap();
    sh(
        "mkfs.ext2 -q /dev/p14c/snap && mount -o errors=remount-ro,noinit_itable /dev/p14c/snap /run/tmp/p14c-mnt && sync",
    );
    // Open, so `dmsetup remove --force` fails, leaving an `error` table.
    let out = std::process::Command::new("dmsetup")
        .args(["remove", "--force", "p14c-snap"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(sh("dmsetup table p14c-snap").contains("error"));
    let _ = std::process::Command::new("umount")
        .arg("/run/tmp/p14c-mnt")
        .output();
    v.delete_snapshot("snap").unwrap();

    // An LVM-made snapshot whose device is gone altogether.
    sh("lvcreate -q -s -L4M -n snap2 p14c/lv1");
    sh("dmsetup remove p14c-snap2");
    let v = VolumeGroup::open("p14c").unwrap();
    v.delete_snapshot("snap2").unwrap();

    vg.vgck();
    let lvs = vg.lvs("lv_attr,segtype");
    assert_eq!(lvs.len(), 1, "{lvs:?}");
    assert!(lvs["lv1"]["lv_attr"].starts_with("-wi-a-"), "{lvs:?}");
    assert_eq!(dm_names_of("p14c"), before);
    assert!(sh("dmsetup table p14c-lv1").contains(" linear "));
    assert_eq!(sum("/dev/p14c/lv1"), data);

    // The CLI says what recovery did once (its "recovered" line), not
    // once more through the log.
    sh("dmsetup suspend p14c-lv1");
    let (code, out, err) = lvsnap(&["create", "p14c/lv1", "s3", "--snapsize", "4M"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(err.matches("resumed").count(), 1, "{err}");
    assert!(err.contains("recovered p14c"), "{err}");
}

/// Asserts `lvs -H`'s full_ancestors and full_descendants of every LV (live
/// and historical) named in `want` as `NAME ANCESTORS DESCENDANTS` lines
/// (`-` for empty), and that no other lv* LV is listed.
fn check_history(vg: &str, want: &str) {
    let got: HashMap<String, (String, String)> = sh(&format!(
        "lvs -H --noheadings --separator '|' -o lv_name,lv_full_ancestors,lv_full_descendants {vg}"
    ))
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.trim().split('|').collect();
        (f.len() == 3 && f[0].trim_start_matches('-').starts_with("lv"))
            .then(|| (f[0].to_owned(), (f[1].to_owned(), f[2].to_owned())))
    })
    .collect();
    let mut n = 0;
    for line in want.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let empty = |s: &str| {
            if s == "-" {
                String::new()
            } else {
                s.to_owned()
            }
        };
        let row = got
            .get(w[0])
            .unwrap_or_else(|| panic!("no {} in {got:?}", w[0]));
        assert_eq!(row, &(empty(w[1]), empty(w[2])), "{}: {got:?}", w[0]);
        n += 1;
    }
    assert_eq!(got.len(), n, "{got:?}");
}

/// lv-ancestry.sh, with `record_lvs_history = 1`: the same chain with two
/// branches, made by lvsnap, and the same deletions, by lvsnap where they
/// delete a snapshot (lv4, lv3, lv2); LVM's `lvs -H` shows the
/// ancestors and descendants LVM's test expects after each. Then LVM's own
/// steps on the history lvsnap wrote: `lvremove` of the historical -lv3,
/// and `lvremove --nohistory` of lv1 and -lv6. lvsnap refuses to delete
/// lv1, which is no snapshot, and lv6 once its origin lv3 is historical
/// (`lvs` shows it with no origin then): `lvremove` removes it. lvsnap has
/// no command for historical LVs. A delete through the inactive pool
/// runs thin_check once.
#[test]
#[serial]
fn lv_ancestry() {
    require_dm();
    // thin_check through a wrapper that counts its runs.
    let runs = std::env::temp_dir().join("p14d-thin-check-runs");
    let wrapper = std::env::temp_dir().join("p14d-thin-check");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho run >> {}\nexec thin_check \"$@\"\n",
            runs.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", wrapper.display()));
    let _conf = Conf::with(&format!(
        "metadata {{\n\trecord_lvs_history = 1\n}}\nglobal {{\n\tthin_check_executable = \"{}\"\n}}",
        wrapper.display()
    ));
    let vg = ScratchVg::new("p14d", 1, 16, "-s 64K");
    sh("lvcreate -q -y -l100%FREE -T p14d/pool && lvcreate -q -y -V1M -n lv1 p14d/pool");
    let v = VolumeGroup::open("p14d").unwrap();
    for (o, s) in [
        ("lv1", "lv2"),
        ("lv2", "lv3"),
        ("lv3", "lv4"),
        ("lv4", "lv5"),
        ("lv3", "lv6"),
        ("lv6", "lv7"),
    ] {
        v.create_snapshot(o, s, &writable()).unwrap();
    }
    check_history(
        "p14d",
        "lv1 - lv2,lv3,lv4,lv5,lv6,lv7
         lv2 lv1 lv3,lv4,lv5,lv6,lv7
         lv3 lv2,lv1 lv4,lv5,lv6,lv7
         lv4 lv3,lv2,lv1 lv5
         lv5 lv4,lv3,lv2,lv1 -
         lv6 lv3,lv2,lv1 lv7
         lv7 lv6,lv3,lv2,lv1 -",
    );
    v.delete_snapshot("lv4").unwrap();
    check_history(
        "p14d",
        "lv1 - lv2,lv3,lv6,lv7,-lv4,lv5
         lv2 lv1 lv3,lv6,lv7,-lv4,lv5
         lv3 lv2,lv1 lv6,lv7,-lv4,lv5
         -lv4 lv3,lv2,lv1 lv5
         lv5 -lv4,lv3,lv2,lv1 -
         lv6 lv3,lv2,lv1 lv7
         lv7 lv6,lv3,lv2,lv1 -",
    );
    v.delete_snapshot("lv3").unwrap();
    check_history(
        "p14d",
        "lv1 - lv2,-lv3,-lv4,lv5,lv6,lv7
         lv2 lv1 -lv3,-lv4,lv5,lv6,lv7
         -lv3 lv2,lv1 -lv4,lv5,lv6,lv7
         -lv4 -lv3,lv2,lv1 lv5
         lv5 -lv4,-lv3,lv2,lv1 -
         lv6 -lv3,lv2,lv1 lv7
         lv7 lv6,-lv3,lv2,lv1 -",
    );
    // Through the inactive pool: its metadata is checked once.
    sh("vgchange -q -an p14d");
    let _ = std::fs::remove_file(&runs);
    v.delete_snapshot("lv2").unwrap();
    let n = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(n.lines().count(), 1, "thin_check runs");
    // lv6 came from lv3, now historical: a thin LV without an origin, no
    // longer a snapshot to lvsnap, which refuses it; LVM removes it.
    let seq = vg.seqno();
    let e = v.delete_snapshot("lv6").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(vg.seqno(), seq);
    sh("lvremove -q -ff p14d/lv6");
    check_history(
        "p14d",
        "lv1 - -lv2,-lv3,-lv4,lv5,-lv6,lv7
         -lv2 lv1 -lv3,-lv4,lv5,-lv6,lv7
         -lv3 -lv2,lv1 -lv4,lv5,-lv6,lv7
         -lv4 -lv3,-lv2,lv1 lv5
         lv5 -lv4,-lv3,-lv2,lv1 -
         -lv6 -lv3,-lv2,lv1 lv7
         lv7 -lv6,-lv3,-lv2,lv1 -",
    );
    let seq = vg.seqno();
    let e = v.delete_snapshot("lv1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(vg.seqno(), seq);
    vg.vgck();

    // LVM's own steps on the history lvsnap wrote.
    sh("lvremove -q -ff p14d/-lv3");
    check_history(
        "p14d",
        "lv1 - -lv2,-lv4,lv5,-lv6,lv7
         -lv2 lv1 -lv4,lv5,-lv6,lv7
         -lv4 -lv2,lv1 lv5
         lv5 -lv4,-lv2,lv1 -
         -lv6 -lv2,lv1 lv7
         lv7 -lv6,-lv2,lv1 -",
    );
    sh("lvremove -q --nohistory -ff p14d/lv1 && lvremove -q --nohistory -ff p14d/-lv6");
    check_history(
        "p14d",
        "-lv2 - -lv4,lv5
         -lv4 -lv2 lv5
         lv5 -lv4,-lv2 -
         lv7 - -",
    );
    vg.vgck();
}
