//! Changed-block export on real COW and thin snapshots: known writes at
//! known offsets, every written byte covered, nothing reported beyond the
//! written blocks; thin results against `thin_delta` as the oracle.

mod common;

use std::collections::BTreeSet;

use common::lvm::ScratchVg;
use common::{dm_names_of, lvsnap, require_dm, sh, write_pattern};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{ChangedBlocks, SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;
use serial_test::parallel;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A write: offset, length, byte.
type W = (u64, usize, u8);

/// Several small writes, one across a 4 KiB and a 64 KiB boundary, a large one.
const FIRST: &[W] = &[
    (10 * 4096 + 100, 512, 0x11),
    (5 * MIB + 7, 1, 0x12),
    (9 * MIB + 3000, 3000, 0x13),
    (64 * KIB - 100, 200, 0x14),
    (2 * MIB, MIB as usize, 0x15),
];

/// After the second snapshot: one over a first write's chunk, new ones.
const SECOND: &[W] = &[
    (10 * 4096 + 200, 100, 0x21),
    (12 * MIB + 5, 10, 0x22),
    (2 * MIB + 512 * KIB, 4096, 0x23),
];

fn write_all(dev: &str, ws: &[W]) {
    for &(off, len, b) in ws {
        write_pattern(dev.as_ref(), off, len, b);
    }
}

/// The blocks of `bs` bytes the writes touch.
fn touched(ws: &[&[W]], bs: u64) -> BTreeSet<u64> {
    ws.iter()
        .flat_map(|w| w.iter())
        .flat_map(|&(off, len, _)| off / bs..=(off + len as u64 - 1) / bs)
        .collect()
}

/// The blocks the ranges cover.
fn reported(c: &ChangedBlocks) -> BTreeSet<u64> {
    let bs = c.block_size;
    c.ranges
        .iter()
        .flat_map(|r| {
            assert_eq!(r.byte_offset % bs, 0, "{r:?} not block-aligned");
            r.byte_offset / bs..(r.byte_offset + r.size_bytes).div_ceil(bs)
        })
        .collect()
}

/// Asserts every written byte is covered and says how many.
fn assert_covered(what: &str, c: &ChangedBlocks, ws: &[&[W]]) {
    let total: u64 = ws.iter().flat_map(|w| w.iter()).map(|w| w.1 as u64).sum();
    let covered: u64 = ws
        .iter()
        .flat_map(|w| w.iter())
        .filter(|&&(off, len, _)| c.covers(off, len as u64))
        .map(|w| w.1 as u64)
        .sum();
    eprintln!(
        "{what}: {covered}/{total} written bytes covered (100%: {}), {} ranges, {} bytes reported, block {}",
        covered == total,
        c.ranges.len(),
        c.total_bytes(),
        c.block_size
    );
    assert_eq!(covered, total, "{what}: written bytes not covered: {c:?}");
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = lvsnap(args);
    assert_eq!(code, 0, "lvsnap {args:?}: {err}");
    serde_json::from_str(&out).expect("changed --json")
}

fn as_json(c: &ChangedBlocks) -> serde_json::Value {
    let ranges: Vec<_> = c
        .ranges
        .iter()
        .map(|r| serde_json::json!({"byte_offset": r.byte_offset, "size_bytes": r.size_bytes}))
        .collect();
    serde_json::json!({"block_size": c.block_size, "ranges": ranges})
}

/// COW: since S0, since S1, and between S0 and S1, exact at chunk level,
/// the CLI printing the same; a swapped base refused.
#[test]
#[parallel]
fn cow_changes_with_and_without_base() {
    require_dm();
    let before = dm_names_of("chgvg");
    let vg = ScratchVg::new("chgvg", 1, 96, "");
    vg.lvm("lvcreate -q -y -L 16M -n data");
    let dev = "/dev/chgvg/data";
    let v = VolumeGroup::open("chgvg").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(8 * MIB as u128)));
    v.create_snapshot("data", "s0", &opts).unwrap();
    let none = v.changed_blocks("s0", None).unwrap();
    assert_eq!(none.block_size, 4096);
    assert!(none.ranges.is_empty(), "{none:?}");

    write_all(dev, FIRST);
    let c0 = v.changed_blocks("s0", None).unwrap();
    assert_covered("cow s0 after first writes", &c0, &[FIRST]);
    assert_eq!(reported(&c0), touched(&[FIRST], 4096), "precision");

    v.create_snapshot("data", "s1", &opts).unwrap();
    write_all(dev, SECOND);
    let c0 = v.changed_blocks("s0", None).unwrap();
    assert_covered("cow s0 after both", &c0, &[FIRST, SECOND]);
    assert_eq!(reported(&c0), touched(&[FIRST, SECOND], 4096));
    let c1 = v.changed_blocks("s1", None).unwrap();
    assert_covered("cow s1", &c1, &[SECOND]);
    assert_eq!(reported(&c1), touched(&[SECOND], 4096));

    // Between S0 and S1: exactly the first writes' chunks; the second
    // writes' chunks that the first did not touch are the same in both.
    let d = v.changed_blocks("s1", Some("s0")).unwrap();
    assert_covered("cow s1 base s0", &d, &[FIRST]);
    assert_eq!(reported(&d), touched(&[FIRST], 4096));

    assert_eq!(
        json_of(&["changed", "chgvg/s1", "--base", "chgvg/s0", "--json"]),
        as_json(&d)
    );
    assert_eq!(json_of(&["changed", "chgvg/s0", "--json"]), as_json(&c0));
    let (code, text, _) = lvsnap(&["changed", "chgvg/s1"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("BYTE_OFFSET"), "{text}");
    assert!(
        text.contains(&format!("{} range(s)", c1.ranges.len())),
        "{text}"
    );

    let e = v.changed_blocks("s0", Some("s1")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let (code, _, err) = lvsnap(&["changed", "chgvg/s0", "--base", "chgvg/s1"]);
    assert_ne!(code, 0);
    assert!(err.contains("older") || err.contains("after"), "{err}");
    let e = v.changed_blocks("data", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    vg.vgck();
    drop(v);
    drop(vg);
    assert_eq!(dm_names_of("chgvg"), before);
}

/// A base with another chunk size: the block is the smaller chunk, every
/// written byte covered, nothing beyond the written blocks (SNAP0's 64 KiB
/// chunks saved for the later writes compare equal).
#[test]
#[parallel]
fn cow_base_of_another_chunk_size() {
    require_dm();
    let vg = ScratchVg::new("chgcvg", 1, 96, "");
    vg.lvm("lvcreate -q -y -L 16M -n data");
    let dev = "/dev/chgcvg/data";
    let v = VolumeGroup::open("chgcvg").unwrap();
    let snap = |name: &str, chunk: u64| {
        let o = SnapshotOptions::default()
            .snapsize(SnapSize::Bytes(Bytes(8 * MIB as u128)))
            .chunk_size(Bytes(u128::from(chunk)));
        v.create_snapshot("data", name, &o).unwrap();
    };
    snap("big", 64 * KIB);
    write_all(dev, FIRST);
    snap("small", 4 * KIB);
    write_all(dev, SECOND);
    let d = v.changed_blocks("small", Some("big")).unwrap();
    assert_eq!(d.block_size, 4096);
    assert_covered("cow 4K base 64K", &d, &[FIRST]);
    assert_eq!(reported(&d), touched(&[FIRST], 4096), "precision");
    let b = v.changed_blocks("big", None).unwrap();
    assert_eq!(b.block_size, 64 * KIB);
    assert_covered("cow 64K", &b, &[FIRST, SECOND]);
    assert_eq!(reported(&b), touched(&[FIRST, SECOND], 64 * KIB));
    vg.vgck();
}

/// An invalid snapshot is refused with a clear error; a merging one too.
#[test]
#[parallel]
fn cow_invalid_and_merging_refused() {
    require_dm();
    let vg = ScratchVg::new("chgivg", 1, 96, "");
    vg.lvm("lvcreate -q -y -L 16M -n data");
    let v = VolumeGroup::open("chgivg").unwrap();
    let small = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    v.create_snapshot("data", "full", &small).unwrap();
    write_pattern("/dev/chgivg/data".as_ref(), 0, 8 * MIB as usize, 0x55);
    assert!(v.snapshot_status("full").unwrap().invalid);
    let e = v.changed_blocks("full", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("invalid"), "{e}");
    let (code, _, err) = lvsnap(&["changed", "chgivg/full", "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid") && err.lines().count() == 1, "{err}");
    sh("lvremove -q -y chgivg/full");

    sh("lvcreate -q -s -L 8M -n m chgivg/data");
    // Held open, the origin only records the merge.
    let hold = std::fs::File::open("/dev/chgivg/data").unwrap();
    sh("lvconvert --merge chgivg/m 2>&1");
    let v = VolumeGroup::open("chgivg").unwrap();
    assert!(v.snapshot_status("m").unwrap().merging);
    let e = v.changed_blocks("m", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(e.to_string().contains("merging"), "{e}");
    drop(hold);
    vg.vgck();
}

/// `thin_delta` on the pool's metadata snapshot: the blocks it lists as
/// different or only in one device.
fn thin_delta(pool: &str, a: u64, b: u64) -> BTreeSet<u64> {
    let tpool = format!("{pool}-tpool");
    sh(&format!("dmsetup message {tpool} 0 reserve_metadata_snap"));
    let out = std::process::Command::new("thin_delta")
        .args([
            "--metadata-snap",
            "--snap1",
            &a.to_string(),
            "--snap2",
            &b.to_string(),
        ])
        .arg(format!("/dev/mapper/{pool}_tmeta"))
        .output()
        .expect("run thin_delta");
    sh(&format!("dmsetup message {tpool} 0 release_metadata_snap"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "thin_delta: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attr = |line: &str, key: &str| -> u64 {
        let at = line.find(&format!("{key}=\"")).expect(key) + key.len() + 2;
        line[at..].split('"').next().unwrap().parse().unwrap()
    };
    let mut blocks = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("<different")
            || line.starts_with("<left_only")
            || line.starts_with("<right_only")
        {
            let (begin, len) = (attr(line, "begin"), attr(line, "length"));
            blocks.extend(begin..begin + len);
        }
    }
    blocks
}

fn thin_id(vg: &ScratchVg, lv: &str) -> u64 {
    vg.lvs("thin_id")[lv]["thin_id"]
        .trim()
        .parse()
        .expect("thin_id")
}

/// Thin: vs the origin and between two snapshots, exact at the pool's
/// block size and equal to thin_delta's answer; the metadata snapshot is
/// released every time.
#[test]
#[parallel]
fn thin_changes_match_thin_delta() {
    require_dm();
    let vg = ScratchVg::new("chgtvg", 1, 128, "");
    sh("lvcreate -q -y -L 48M -T chgtvg/pool");
    sh("lvcreate -q -y -V 16M -T chgtvg/pool -n vol");
    let dev = "/dev/chgtvg/vol";
    write_pattern(dev.as_ref(), 0, 4 * MIB as usize, 0x01);
    let v = VolumeGroup::open("chgtvg").unwrap();
    v.create_snapshot("vol", "t0", &SnapshotOptions::default())
        .unwrap();
    let none = v.changed_blocks("t0", None).unwrap();
    assert!(none.ranges.is_empty(), "{none:?}");
    let bs = none.block_size;
    assert_eq!(bs, 64 * KIB, "LVM's default thin chunk");
    write_all(dev, FIRST);
    v.create_snapshot("vol", "t1", &SnapshotOptions::default())
        .unwrap();
    write_all(dev, SECOND);

    let (vol, t0, t1) = (thin_id(&vg, "vol"), thin_id(&vg, "t0"), thin_id(&vg, "t1"));
    let c0 = v.changed_blocks("t0", None).unwrap();
    assert_covered("thin t0 vs origin", &c0, &[FIRST, SECOND]);
    assert_eq!(reported(&c0), touched(&[FIRST, SECOND], bs), "precision");
    assert_eq!(
        reported(&c0),
        thin_delta("chgtvg-pool", t0, vol),
        "thin_delta"
    );
    let c1 = v.changed_blocks("t1", None).unwrap();
    assert_covered("thin t1 vs origin", &c1, &[SECOND]);
    assert_eq!(reported(&c1), touched(&[SECOND], bs));
    assert_eq!(reported(&c1), thin_delta("chgtvg-pool", t1, vol));
    let d = v.changed_blocks("t1", Some("t0")).unwrap();
    assert_covered("thin t1 base t0", &d, &[FIRST]);
    assert_eq!(reported(&d), touched(&[FIRST], bs));
    assert_eq!(reported(&d), thin_delta("chgtvg-pool", t0, t1));
    assert_eq!(
        json_of(&["changed", "chgtvg/t1", "--base", "chgtvg/t0", "--json"]),
        as_json(&d)
    );

    // A metadata snapshot held by someone else: refused, and theirs kept.
    sh("dmsetup message chgtvg-pool-tpool 0 reserve_metadata_snap");
    let e = v.changed_blocks("t1", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    sh("dmsetup message chgtvg-pool-tpool 0 release_metadata_snap");
    // Nothing left held: a new reservation succeeds.
    sh("dmsetup message chgtvg-pool-tpool 0 reserve_metadata_snap");
    sh("dmsetup message chgtvg-pool-tpool 0 release_metadata_snap");
    vg.vgck();
}
