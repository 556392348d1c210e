//! Metadata LVM2 refuses is never written: for each way of damaging a VG's
//! metadata that `lvs` refuses, every lvsnap operation that would change it
//! fails with ErrorKind::Corrupt and one line, and the PV's bytes are the
//! same before and after; reads still report what they can.

mod common;

use std::process::Command;

use common::lvm::ScratchVg;
use common::{lvsnap, read_at, require_dm, sh};
use lvsnap::ErrorKind;
use lvsnap::lvm::vg::Metadata;
use lvsnap::lvm::{ScanOptions, VgDisk};
use lvsnap::snapshot::{RestoreOptions, SnapshotOptions, VolumeGroup};
use serial_test::{parallel, serial};

const PV_BYTES: usize = 16 << 20;

/// Writes `text` as the VG's next metadata with lvsnap's raw on-disk layer
/// (which checks nothing but the seqno): the checksums are right, so only
/// the content is wrong.
fn write_raw(vg: &str, pv: &std::path::Path, text: &str) {
    let mut d = VgDisk::open(vg, &ScanOptions::devices([pv])).expect("open the VG raw");
    let n = d.seqno();
    let next = text
        .lines()
        .map(|l| match l.strip_prefix("seqno = ") {
            Some(_) => format!("seqno = {}", n + 1),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    d.commit(&next).expect("raw commit");
}

/// `s` with `from` replaced once by `to`; the case is void unless it changes.
fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from:?} not in the text");
    s.replacen(from, to, 1)
}

/// LVM2's `lvs` of the VG: (succeeded, stderr).
fn lvs(vg: &str) -> (bool, String) {
    let out = Command::new("lvs").arg(vg).output().expect("run lvs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[test]
#[serial]
fn damaged_vgs_are_refused_and_never_written() {
    require_dm();
    let vg = ScratchVg::new("dmgvg", 1, 16, "-s 1M");
    vg.lvm("lvcreate -q -y -L 4M -n a");
    vg.lvm("lvcreate -q -y -L 6M -n b");
    sh("lvcreate -q -y -s -L 2M -n s dmgvg/a");
    let pv = vg.pvs[0].path.clone();
    let good = VgDisk::open("dmgvg", &ScanOptions::devices([&pv]))
        .unwrap()
        .text()
        .to_owned();
    let md = Metadata::parse(&good).unwrap();
    assert_eq!(md.damage(), None);
    let v = md.vg();
    let pe_count = v.pvs[0].pe_count.0;
    let (id_a, id_b) = (
        v.lv("a").unwrap().id.to_string(),
        v.lv("b").unwrap().id.to_string(),
    );
    // b's extents in the text: 6 from extent 4, after a's 4.
    let b_stripe = "\"pv0\", 4\n]";
    assert!(good.contains(b_stripe), "{good}");
    let cases: Vec<(&str, String)> = vec![
        (
            "segment on a missing PV",
            edit(&good, "\"pv0\", 0\n]", "\"pv7\", 0\n]"),
        ),
        (
            "extents beyond the PV",
            edit(&good, b_stripe, &format!("\"pv0\", {}\n]", pe_count - 2)),
        ),
        ("overlapping LVs", edit(&good, b_stripe, "\"pv0\", 2\n]")),
        ("duplicate LV name", edit(&good, "\nb {\n", "\na {\n")),
        ("duplicate LV id", edit(&good, &id_b, &id_a)),
        (
            "missing cow_store LV",
            edit(&good, "cow_store = \"s\"", "cow_store = \"nosuch\""),
        ),
        (
            "missing origin LV",
            edit(&good, "origin = \"a\"", "origin = \"nosuch\""),
        ),
        (
            "extent_size 0",
            edit(&good, "extent_size = 2048", "extent_size = 0"),
        ),
        (
            "extent_size 2^40",
            edit(&good, "extent_size = 2048", "extent_size = 1099511627776"),
        ),
    ];
    let mut tested = 0;
    for (what, text) in &cases {
        write_raw("dmgvg", &pv, text);
        let (lvs_ok, lvs_err) = lvs("dmgvg");
        eprintln!("{what}: lvs: {}", lvs_err.lines().next().unwrap_or(""));
        // Where LVM reads the VG, it still refuses to write it; it is only
        // lenient about an extent_size that is nonsense (its lvcreate fails
        // slowly there), which lvsnap refuses to write too.
        let nonsense = what.starts_with("extent_size");
        assert!(
            lvs_ok == what.contains(" id") || nonsense,
            "{what}: {lvs_err}"
        );
        if lvs_ok && !nonsense {
            let out = Command::new("lvcreate")
                .args(["-q", "-y", "-L", "1M", "-n", "probe", "dmgvg"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            eprintln!(
                "{what}: lvcreate: {}",
                err.trim().lines().last().unwrap_or("")
            );
            assert!(!out.status.success(), "{what}: lvcreate wrote it");
        }
        let before = read_at(&pv, 0, PV_BYTES);
        let seq = vg_seqno(&pv);
        for args in [
            vec!["create", "dmgvg/a", "s1", "--snapsize", "4M"],
            vec!["create", "dmgvg/b", "s2"],
            vec!["delete", "dmgvg/s"],
        ] {
            let (code, out, err) = lvsnap(&args);
            assert_ne!(code, 0, "{what}: {args:?} succeeded: {out}");
            assert_eq!(err.lines().count(), 1, "{what}: {args:?}: {err:?}");
            assert!(err.contains("damaged"), "{what}: {args:?}: {err}");
        }
        // Every operation that writes, through the library.
        let v = VolumeGroup::open_with("dmgvg", ScanOptions::devices([&pv])).unwrap();
        let o = SnapshotOptions::default;
        for e in [
            v.create_snapshot("a", "s1", &o()).unwrap_err(),
            v.delete_snapshot("s").unwrap_err(),
            v.rollback("s").map(|_| ()).unwrap_err(),
            v.restore("s", "r1", &RestoreOptions::default(), |_| {})
                .map(|_| ())
                .unwrap_err(),
            v.check().unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        }
        // Reads still answer, and say the VG is damaged.
        let (code, out, err) = lvsnap(&["list", "dmgvg"]);
        assert_eq!(code, 0, "{what}: list: {err}");
        assert!(out.starts_with("NAME"), "{what}: {out}");
        assert_eq!(err.lines().count(), 1, "{what}: list: {err:?}");
        assert!(err.contains("damaged"), "{what}: list: {err}");
        assert_eq!(vg_seqno(&pv), seq, "{what}: seqno changed");
        assert!(
            read_at(&pv, 0, PV_BYTES) == before,
            "{what}: the PV's bytes changed"
        );
        tested += 1;
        write_raw("dmgvg", &pv, &good);
    }
    eprintln!("{tested} damaged-VG cases, 0 bytes written to any");
    vg.vgck();
    // Healthy again: lvsnap works on it.
    let (code, _, err) = lvsnap(&["create", "dmgvg/b", "s2", "--snapsize", "2M"]);
    assert_eq!(code, 0, "{err}");
    vg.vgck();
}

fn vg_seqno(pv: &std::path::Path) -> u64 {
    VgDisk::open("dmgvg", &ScanOptions::devices([pv]))
        .unwrap()
        .seqno()
}

/// Bad argument vectors, of clap's kind and of lvsnap's: each fails with a
/// non-zero exit, exactly one line on stderr (control characters in echoed
/// names escaped), nothing on stdout, and nothing changed.
#[test]
#[parallel]
fn bad_arguments_get_one_line_and_change_nothing() {
    require_dm();
    let vg = ScratchVg::new("argvg", 1, 64, "");
    vg.lvm("lvcreate -q -y -L 8M -n a");
    let (code, _, err) = lvsnap(&["create", "argvg/a", "s", "--snapsize", "4M"]);
    assert_eq!(code, 0, "{err}");
    let seq = vg.seqno();
    let devs = common::dm_names_of("argvg");
    let long = "x".repeat(300);
    let vectors: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frob"],
        vec!["--frob"],
        vec!["-x"],
        vec!["create"],
        vec!["create", "argvg/a"],
        vec!["create", "argvg/a", "t", "extra"],
        vec!["create", "argvg/a", "t", "--bogus"],
        vec!["create", "argvg/a", "t", "--snapsize"],
        vec!["create", "argvg/a", "t", "--snapsize", "1E"],
        vec!["create", "argvg/a", "t", "--snapsize", "8E"],
        vec!["create", "argvg/a", "t", "--snapsize", "16E"],
        vec!["create", "argvg/a", "t", "--snapsize", "16384P"],
        vec![
            "create",
            "argvg/a",
            "t",
            "--snapsize",
            "99999999999999999999",
        ],
        vec!["create", "argvg/a", "t", "--snapsize", "-1M"],
        vec!["create", "argvg/a", "t", "--snapsize", "0"],
        vec!["create", "argvg/a", "t", "--snapsize", "12Q"],
        vec!["create", "argvg/a", "t", "--snapsize", "0%"],
        vec!["create", "argvg/a", "t", "--snapsize", "1.2.3M"],
        vec!["create", "argvg/a", "t", "--snapsize", ""],
        vec!["create", "argvg/a", "t", "--chunk-size", "3K"],
        vec!["create", "argvg/a", "t", "--chunk-size", "1M"],
        vec!["create", "argvg/a", "t", "--chunk-size", "x"],
        vec!["create", "argvg/a", "t", "--writable=3"],
        vec!["create", "argvg/a", "s"],
        vec!["create", "argvg/a", "bad\nname"],
        vec!["create", "argvg/a", "bad\x1b[31mname"],
        vec!["create", "arg\nvg/a", "t"],
        vec!["create", "argvg/no\nsuch", "t"],
        vec!["create", "argvg/a", &long],
        vec!["create", "argvg", "t"],
        vec!["create", "/a", "t"],
        vec!["create", "argvg/", "t"],
        vec!["create", "a/b/c", "t"],
        vec!["create", "novg/a", "t"],
        vec!["create", "argvg/nosuch", "t"],
        vec!["create", "argvg/s", "t"],
        vec!["create", "argvg/a", "snapshot0"],
        vec!["create", "argvg/a", "-t"],
        vec!["list", "novg"],
        vec!["list", "bad\nvg"],
        vec!["list", "a", "b"],
        vec!["list", "--json", "--json"],
        vec!["status"],
        vec!["status", "argvg/nosuch"],
        vec!["status", "argvg/a"],
        vec!["status", "argvg"],
        vec!["status", "argvg/s\n"],
        vec!["rollback"],
        vec!["rollback", "argvg/a"],
        vec!["rollback", "argvg/nosuch", "--wait"],
        vec!["rollback", "argvg/s", "--keep"],
        vec!["restore", "argvg/s"],
        vec!["restore", "argvg/s", "a"],
        vec!["restore", "argvg/s", "r1", "--size", "1E"],
        vec!["restore", "argvg/s", "r1", "--size", "1K"],
        vec!["restore", "argvg/s", "r\tx"],
        vec!["restore", "argvg/nosuch", "r1"],
        vec!["delete"],
        vec!["delete", "argvg/a"],
        vec!["delete", "argvg/nosuch"],
        vec!["delete", "argvg/s", "argvg/s"],
        vec!["delete", "\u{7}"],
        vec!["help", "nosuch"],
    ];
    let (mut bad, mut total) = (0, 0);
    for args in &vectors {
        let (code, out, err) = lvsnap(args);
        total += 1;
        assert_ne!(code, 0, "{args:?} succeeded: {out}");
        assert!(out.is_empty(), "{args:?}: stdout {out:?}");
        if err.lines().count() != 1 || !err.starts_with("lvsnap: ") {
            bad += 1;
            eprintln!("{args:?}: {err:?}");
        }
        assert!(!err.contains('\x1b'), "{args:?}: raw escape in {err:?}");
    }
    eprintln!("{total} bad argument vectors, {bad} multi-line errors");
    assert_eq!(bad, 0);
    assert_eq!(vg.seqno(), seq, "metadata changed");
    assert_eq!(common::dm_names_of("argvg"), devs, "devices changed");
    for ok in [
        vec!["--help"],
        vec!["--version"],
        vec!["create", "--help"],
        vec!["help"],
    ] {
        let (code, out, err) = lvsnap(&ok);
        assert_eq!(code, 0, "{ok:?}: {err}");
        assert!(!out.is_empty(), "{ok:?}");
    }
    vg.vgck();
}

/// Damages the header of the metadata area at 4096 of `dev` (its checksum
/// no longer matches), as a stray write would.
fn break_mda_header(dev: &std::path::Path) {
    common::write_pattern(dev, 4096 + 200, 1, 0x55);
}

/// lvsnap reads what LVM2 reads: a VG with one bad metadata area of two
/// still works (and the bad one is left alone, as lvcreate leaves it);
/// `list` of all VGs lists the healthy ones and warns of the device it
/// cannot read; a PV seen on two devices is read through the one LVM
/// picks, and writes are refused as LVM refuses them.
#[test]
#[serial]
fn reads_what_lvm_reads() {
    require_dm();
    let vg = ScratchVg::new("rdvg", 2, 32, "");
    vg.lvm("lvcreate -q -y -L 8M -n a");
    break_mda_header(&vg.pvs[1].path);
    assert!(lvs("rdvg").0, "LVM reads a VG with one bad area of two");
    let (code, _, err) = lvsnap(&["create", "rdvg/a", "s1", "--snapsize", "4M"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning"), "the bad area is reported: {err}");
    assert!(sh("lvs --noheadings -o lv_name rdvg").contains("s1"));
    assert_eq!(read_at(&vg.pvs[1].path, 4096, 512)[200], 0x55, "left alone");

    // A second VG whose only metadata area is bad: `list` still lists rdvg.
    let bad = ScratchVg::new("rdbad", 1, 16, "");
    break_mda_header(&bad.pvs[0].path);
    let (code, out, err) = lvsnap(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("s1"), "{out}");
    let dev = bad.pvs[0].path.display().to_string();
    assert!(
        err.lines()
            .any(|l| l.starts_with("lvsnap: warning: ") && l.contains(&dev)),
        "names {dev}: {err}"
    );
    let (code, _, err) = lvsnap(&["list", "rdbad"]);
    assert_ne!(code, 0, "as `lvs rdbad`, a named unreadable VG fails");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = lvsnap(&["delete", "rdvg/s1"]);
    assert_eq!(code, 0, "{err}");
    drop(bad);

    // One PV label on two devices: a dm linear device over the whole disk.
    let dup = ScratchVg::new("rddup", 1, 16, "");
    dup.lvm("lvcreate -q -y -an -L 4M -n a");
    let disk = dup.pvs[0].path.display().to_string();
    sh(&format!(
        "dmsetup create rddup_over --table \"0 $(blockdev --getsz {disk}) linear {disk} 0\""
    ));
    struct Remove;
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("dmsetup")
                .args(["remove", "rddup_over"])
                .status();
        }
    }
    let _remove = Remove;
    assert!(lvs("rddup").0, "LVM reads it");
    let lvm_write = Command::new("lvcreate")
        .args(["-q", "-y", "-an", "-L", "4M", "-n", "b", "rddup"])
        .output()
        .unwrap();
    let lvm_err = String::from_utf8_lossy(&lvm_write.stderr);
    assert!(!lvm_write.status.success(), "LVM writes it: {lvm_err}");
    let (code, out, err) = lvsnap(&["list", "rddup"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        err.contains("Not using device") && err.contains("prefers device"),
        "warns as LVM: {err}"
    );
    let (code, _, err) = lvsnap(&["create", "rddup/a", "s"]);
    assert_ne!(code, 0, "writes are refused with duplicates");
    assert!(err.contains("duplicate PV devices"), "{err}");
    let e = VolumeGroup::open("rddup")
        .unwrap()
        .create_snapshot("a", "s", &SnapshotOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    drop(_remove);
    dup.vgck();
}
