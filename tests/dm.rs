//! The device-mapper layer (and the COW layout of `activate::cow` on plain
//! devices) against a real kernel (through vm/run), with
//! LVM2's tools as the oracle where LVM has an opinion.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{LoopDev, dm_names, dm_names_with, read_at, require_dm, sh, write_pattern};
use devicemapper::{Device, DmName, DmNameBuf, ThinDevId, ThinPoolStatus};
use lvsnap::ErrorKind;
use lvsnap::activate::{CowDevices, CowMerge, CowSnapshotSpec, ThinPool, WaitUntil};
use lvsnap::dm::{
    self, ChunkSize, DmControl, LvmDmName, LvmDmUuid, LvmId, Percent, SnapshotTargetStatus,
    TableLine, check_dm_name, node_path,
};
use lvsnap::units::Sectors;
use serial_test::{parallel, serial};

const MIB: u64 = 1 << 20;

fn dev_of(path: &Path) -> Device {
    let rdev = std::fs::metadata(path).expect("stat block device").rdev();
    Device {
        major: libc::major(rdev),
        minor: libc::minor(rdev),
    }
}

fn name(s: &str) -> DmNameBuf {
    check_dm_name(s).expect("valid test name")
}

/// A whole-device linear table over a loop device.
fn whole(l: &LoopDev, size: u64) -> Vec<TableLine> {
    vec![TableLine::linear(
        Sectors(0),
        Sectors(size / 512),
        dev_of(&l.path),
        Sectors(0),
    )]
}

/// One linear line over the first `sectors` of `dev`.
fn linear_on(dev: Device, sectors: u64) -> Vec<TableLine> {
    vec![TableLine::linear(
        Sectors(0),
        Sectors(sectors),
        dev,
        Sectors(0),
    )]
}

/// Removes leftovers (snapshot layers first) even when a test fails.
struct Cleanup(Vec<DmNameBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(dm) = DmControl::open() else { return };
        for n in self.0.iter() {
            if dm.exists(n).unwrap_or(false) {
                let _ = dm.resume(n);
                let _ = dm.remove(n);
            }
        }
    }
}

/// An origin device over a fresh loop device, plus a loop device for its COW.
struct Fixture {
    dm: DmControl,
    data: LoopDev,
    cow: LoopDev,
    origin: DmNameBuf,
    snap: DmNameBuf,
    size: u64,
    cow_size: u64,
    _cleanup: Cleanup,
}

fn fixture(tag: &str, size: u64, cow_size: u64) -> Fixture {
    let dm = DmControl::open().expect("open control");
    let data = LoopDev::new(size);
    let cow = LoopDev::new(cow_size);
    let origin = name(&format!("lvsnap--t-{tag}"));
    let snap = name(&format!("lvsnap--t-{tag}snap"));
    let cleanup = Cleanup(
        [
            format!("lvsnap--t-{tag}snap"),
            format!("lvsnap--t-{tag}snap-cow"),
            format!("lvsnap--t-{tag}"),
            format!("lvsnap--t-{tag}-real"),
        ]
        .iter()
        .map(|s| name(s))
        .collect(),
    );
    dm.create(&origin, None, &whole(&data, size), false)
        .expect("create origin");
    Fixture {
        dm,
        data,
        cow,
        origin,
        snap,
        size,
        cow_size,
        _cleanup: cleanup,
    }
}

impl Fixture {
    fn snapshot(&self, chunk: u64) -> dm::Result<CowDevices> {
        let cow = whole(&self.cow, self.cow_size);
        CowDevices::create(
            &self.dm,
            &CowSnapshotSpec {
                origin: &self.origin,
                snapshot: &self.snap,
                snapshot_uuid: None,
                cow: &cow,
                chunk: ChunkSize::new(Sectors(chunk))?,
                read_only: false,
            },
        )
    }

    fn origin_path(&self) -> PathBuf {
        node_path(&self.origin)
    }

    fn snap_path(&self) -> PathBuf {
        node_path(&self.snap)
    }
}

fn all(buf: &[u8], b: u8) -> bool {
    buf.iter().all(|&x| x == b)
}

fn checksum(buf: &[u8]) -> u64 {
    // FNV-1a: enough to tell contents apart in a test.
    buf.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The snapshot keeps the old bytes while the origin changes, with LVM's
/// layer names; removing it gives the origin back its table. Serial: a
/// timed wait must end on time, so no other test loads the VM meanwhile.
#[test]
#[serial]
fn snapshot_keeps_old_bytes() {
    require_dm();
    let before = dm_names();
    let f = fixture("keep", 32 * MIB, 8 * MIB);
    write_pattern(&f.origin_path(), 0, 2 * MIB as usize, 0xAA);
    let t = Instant::now();
    let snap = f.snapshot(8).expect("create snapshot");
    eprintln!(
        "FIGURE: DM-level COW snapshot create took {:?}",
        t.elapsed()
    );
    let names = dm_names();
    for n in [
        "lvsnap--t-keep-real",
        "lvsnap--t-keepsnap-cow",
        "lvsnap--t-keepsnap",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    let ot = f.dm.table(&f.origin).unwrap();
    assert_eq!(ot.len(), 1);
    assert_eq!(ot[0].target_type, "snapshot-origin");
    let st = f.dm.table(&f.snap).unwrap();
    assert_eq!(st[0].target_type, "snapshot");
    assert!(st[0].params.ends_with(" P 8"), "{}", st[0].params);
    // The snapshot's table refers to -real and -cow by major:minor.
    let real = f.dm.info(&name("lvsnap--t-keep-real")).unwrap().device;
    let cow = f.dm.info(&name("lvsnap--t-keepsnap-cow")).unwrap().device;
    assert_eq!(st[0].params, format!("{real} {cow} P 8"));
    assert_eq!(
        snap.status(&f.dm).unwrap().data_percent(),
        Some(Percent::ZERO)
    );

    write_pattern(&f.origin_path(), 0, MIB as usize, 0xBB);
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0xBB));
    assert!(all(&read_at(&f.snap_path(), 0, 2 * MIB as usize), 0xAA));
    assert!(all(&read_at(&f.origin_path(), MIB, MIB as usize), 0xAA));
    let pc = snap.status(&f.dm).unwrap().data_percent().unwrap();
    assert!(pc > Percent::ZERO, "COW use after 1 MiB of writes: {pc}");

    // A threshold already passed returns at once; one not reached times out.
    let low = Percent::from_ratio(1, 1000);
    let st = snap
        .wait(
            &f.dm,
            WaitUntil::InvalidOrPercent(low),
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .unwrap()
        .expect("threshold reached");
    assert!(st.data_percent().unwrap() >= low);
    let t = Instant::now();
    let high = Percent::from_ratio(99, 100);
    let r = snap
        .wait(
            &f.dm,
            WaitUntil::InvalidOrPercent(high),
            Duration::from_millis(300),
            Duration::from_millis(50),
        )
        .unwrap();
    assert_eq!(r, None);
    assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(2));

    // Reopening from the kernel's tables finds the same devices.
    let again = CowDevices::open(&f.dm, &f.origin, &f.snap).expect("open");
    assert_eq!(again, snap);

    snap.remove(&f.dm).expect("remove snapshot");
    assert_eq!(f.dm.table(&f.origin).unwrap(), whole(&f.data, f.size));
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0xBB));
    f.dm.remove(&f.origin).unwrap();
    assert_eq!(dm_names(), before);
}

/// Overflowing the COW turns the snapshot Invalid, a waiter wakes within a
/// second, the origin keeps working, and the invalid snapshot cannot merge.
/// Serial: the wake-up is timed.
#[test]
#[serial]
fn overflow_invalidates_and_wakes_waiter() {
    require_dm();
    let before = dm_names();
    // 64 KiB of COW in 4 KiB chunks: 16 chunks, some for metadata.
    let f = fixture("ovf", 16 * MIB, 64 * 1024);
    let snap = f.snapshot(8).expect("create snapshot");
    let (tx, rx) = mpsc::channel();
    let waiter_snap = snap.clone();
    let waiter = std::thread::spawn(move || {
        let dm = DmControl::open().unwrap();
        let r = waiter_snap.wait(
            &dm,
            WaitUntil::Invalid,
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        tx.send(Instant::now()).unwrap();
        r
    });
    // Let the waiter block first.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "the waiter returned before any write"
    );
    let start = Instant::now();
    write_pattern(&f.origin_path(), 0, MIB as usize, 0x11);
    let written = Instant::now();
    let woke = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("waiter woke");
    let st = waiter
        .join()
        .unwrap()
        .expect("wait ok")
        .expect("not timed out");
    assert!(st.is_invalid(), "{st:?}");
    let lag = woke.saturating_duration_since(written);
    eprintln!(
        "FIGURE: waiter woke {:?} after the overflowing write began; the write took {:?}",
        woke.duration_since(start),
        written.duration_since(start)
    );
    assert!(lag < Duration::from_secs(1), "waiter took {lag:?}");
    assert_eq!(snap.status(&f.dm).unwrap(), SnapshotTargetStatus::Invalid);
    assert_eq!(
        snap.status(&f.dm).unwrap().data_percent(),
        Some(Percent::HUNDRED)
    );
    // A timed wait on a quiet device times out on time.
    let since = f.dm.event_nr(&f.snap).unwrap();
    let t = Instant::now();
    let out =
        f.dm.wait_event(&f.snap, since, Duration::from_millis(300))
            .unwrap();
    assert_eq!(out, dm::WaitOutcome::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(2));

    // The origin keeps working.
    write_pattern(&f.origin_path(), 4 * MIB, MIB as usize, 0x22);
    assert!(all(&read_at(&f.origin_path(), 4 * MIB, MIB as usize), 0x22));
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0x11));

    let names = dm_names();
    let e = snap.clone().start_merge(&f.dm).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(dm_names(), names);
    assert_eq!(
        f.dm.table(&f.origin).unwrap()[0].target_type,
        "snapshot-origin"
    );

    snap.remove(&f.dm).unwrap();
    f.dm.remove(&f.origin).unwrap();
    assert_eq!(dm_names(), before);
}

/// data_percent from our status parser equals `lvs -o data_percent` at
/// several fill levels, on a snapshot LVM made; our names and UUIDs for its
/// devices are the ones LVM gave them, and `CowDevices::open` reads LVM's
/// layout.
#[test]
#[parallel]
fn data_percent_matches_lvm() {
    require_dm();
    let before = dm_names_with(&["lvsnap--t--pc-"]);
    let pv = LoopDev::new(64 * MIB);
    let vg = "lvsnap-t-pc";
    sh(&format!(
        "pvcreate -q {p} && vgcreate -q -s 1M {vg} {p}",
        p = pv.path.display()
    ));
    let _vg = scopeguard(vg);
    sh(&format!("lvcreate -q -y -L 24M -n data-1 {vg}"));
    let t = Instant::now();
    sh(&format!("lvcreate -q -y -s -L 8M -n snap-1 {vg}/data-1"));
    eprintln!(
        "FIGURE: lvcreate -s (same VM, for comparison) took {:?}",
        t.elapsed()
    );
    let dm = DmControl::open().unwrap();
    let origin = LvmDmName::new(vg, "data-1", None).unwrap();
    let snapn = LvmDmName::new(vg, "snap-1", None).unwrap();
    assert_eq!(origin.to_string(), "lvsnap--t--pc-data--1");

    // UUIDs as LVM builds them from its ids.
    let ids = sh(&format!("lvs --noheadings -o vg_uuid,lv_uuid,lv_name {vg}"));
    for line in ids.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (vgid, lvid, lv) = (
            LvmId::parse(f[0]).unwrap(),
            LvmId::parse(f[1]).unwrap(),
            f[2],
        );
        let n = LvmDmName::new(vg, lv, None).unwrap();
        let u = LvmDmUuid::new(&vgid, &lvid, None).unwrap();
        if lv == "data-1" {
            assert_eq!(dm.info(&n).unwrap().uuid.as_deref(), Some(&*u.to_string()));
            let real = LvmDmName::new(vg, lv, Some("real")).unwrap();
            let ru = LvmDmUuid::new(&vgid, &lvid, Some("real")).unwrap();
            assert_eq!(dm.info(&real).unwrap().uuid.unwrap(), ru.to_string());
        }
        if lv == "snap-1" {
            assert_eq!(dm.info(&n).unwrap().uuid.unwrap(), u.to_string());
            let cow = LvmDmName::new(vg, lv, Some("cow")).unwrap();
            let cu = LvmDmUuid::new(&vgid, &lvid, Some("cow")).unwrap();
            assert_eq!(dm.info(&cow).unwrap().uuid.unwrap(), cu.to_string());
        }
    }
    let snap = CowDevices::open(&dm, &origin, &snapn).expect("open LVM's snapshot");
    assert_eq!(snap.params.chunk, ChunkSize::MIN);

    let dev = PathBuf::from(format!("/dev/{vg}/data-1"));
    let mut seen = Vec::new();
    for (i, mib) in [0u64, 1, 3, 6].iter().enumerate() {
        if *mib > 0 {
            write_pattern(&dev, i as u64 * 2 * MIB, (*mib * MIB) as usize / 2, i as u8);
        }
        let ours = snap
            .status(&dm)
            .unwrap()
            .data_percent()
            .unwrap()
            .to_string();
        let lvs = sh(&format!("lvs --noheadings -o data_percent {vg}/snap-1"));
        assert_eq!(ours, lvs.trim(), "at fill step {i}");
        seen.push(ours);
    }
    eprintln!("FIGURE: data_percent steps (ours == lvs): {seen:?}");
    seen.dedup();
    assert!(seen.len() >= 3, "fill levels did not differ: {seen:?}");

    // Fill it up: Invalid, and LVM shows 100.00 as we do.
    write_pattern(&dev, 0, 12 * MIB as usize, 0xEE);
    let st = snap.status(&dm).unwrap();
    assert!(st.is_invalid(), "{st:?}");
    let lvs = sh(&format!("lvs --noheadings -o data_percent {vg}/snap-1"));
    assert_eq!(st.data_percent().unwrap().to_string(), lvs.trim());
    drop(_vg);
    assert_eq!(dm_names_with(&["lvsnap--t--pc-"]), before);
}

struct VgGuard(String);
fn scopeguard(vg: &str) -> VgGuard {
    VgGuard(vg.to_string())
}
impl Drop for VgGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("vgremove")
            .args(["-f", "-q", &self.0])
            .status();
    }
}

/// A merge restores the origin byte for byte, progress reaches 100, and the
/// origin ends plain with no -real/-cow left.
#[test]
#[parallel]
fn merge_restores_origin() {
    require_dm();
    let before = dm_names_with(&["lvsnap--t-mrg"]);
    let f = fixture("mrg", 32 * MIB, 16 * MIB);
    for i in 0..8u64 {
        write_pattern(&f.origin_path(), i * MIB, MIB as usize, 0x30 + i as u8);
    }
    let orig = read_at(&f.origin_path(), 0, 8 * MIB as usize);
    let snap = f.snapshot(16).expect("snapshot");
    write_pattern(&f.origin_path(), MIB, 4 * MIB as usize, 0xCC);
    assert_ne!(
        checksum(&read_at(&f.origin_path(), 0, 8 * MIB as usize)),
        checksum(&orig)
    );

    let t = Instant::now();
    let merge = snap.start_merge(&f.dm).expect("start merge");
    assert_eq!(
        f.dm.table(&f.origin).unwrap()[0].target_type,
        "snapshot-merge"
    );
    assert_eq!(f.dm.table(&f.snap).unwrap()[0].target_type, "error");
    // The merge is found again from the kernel's tables (e.g. after a restart).
    let found = CowDevices::open(&f.dm, &f.origin, &f.snap).expect("open merging");
    assert_eq!(&found, merge.snapshot());
    assert!(found.is_merging(&f.dm).unwrap());
    let again = CowMerge::resume(&f.dm, found).expect("resume merge");
    assert!(again.progress(&f.dm).is_ok());
    let mut percents = Vec::new();
    let p = merge
        .wait(
            &f.dm,
            Duration::from_secs(60),
            Duration::from_millis(20),
            |p| percents.push(p.percent),
        )
        .expect("wait")
        .expect("merge finished in time");
    eprintln!(
        "FIGURE: merge of 4 MiB took {:?}; progress {percents:?}",
        t.elapsed()
    );
    assert!(p.done);
    assert_eq!(percents.last(), Some(&Percent::HUNDRED));
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    // The origin reads back the snapshot-time data even before it is collapsed.
    assert_eq!(read_at(&f.origin_path(), 0, 8 * MIB as usize), orig);
    merge.finish(&f.dm).expect("finish");

    let after = read_at(&f.origin_path(), 0, 8 * MIB as usize);
    assert_eq!(checksum(&after), checksum(&orig));
    assert_eq!(after, orig);
    assert_eq!(f.dm.table(&f.origin).unwrap(), whole(&f.data, f.size));
    let names = dm_names_with(&["lvsnap--t-mrg"]);
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("lvsnap--t-mrg") && n != "lvsnap--t-mrg"),
        "layers left: {names:?}"
    );
    f.dm.remove(&f.origin).unwrap();
    assert_eq!(dm_names_with(&["lvsnap--t-mrg"]), before);
}

/// A thin snapshot keeps the old bytes; the pool reports its usage and the
/// new transaction id.
#[test]
#[parallel]
fn thin_snapshot_keeps_old_bytes() {
    require_dm();
    let before = dm_names_with(&["lvsnap--t-thin", "lvsnap-t-tpool"]);
    let dm = DmControl::open().unwrap();
    let meta = LoopDev::new(8 * MIB);
    let data = LoopDev::new(64 * MIB);
    write_pattern(&meta.path, 0, 4096, 0);
    // Named as LVM names pool t of VG lvsnap, for activate's pool rules.
    let tpool = ThinPool::new("lvsnap", "t").unwrap();
    let pool = tpool.dm_name().to_owned();
    let thin_line = |pool, id, size| {
        let p = dm::ThinTargetParams {
            pool,
            id,
            external_origin: None,
        };
        TableLine::target(Sectors(0), size, &p)
    };
    let thin = name("lvsnap--t-thin");
    let tsnap = name("lvsnap--t-thinsnap");
    let _c = Cleanup(vec![tsnap.clone(), thin.clone(), pool.clone()]);
    let pool_params = format!(
        "{} {} 128 0 1 skip_block_zeroing",
        dev_of(&meta.path),
        dev_of(&data.path)
    );
    let pool_dev = dm
        .create(
            &pool,
            None,
            &[TableLine::new(
                Sectors(0),
                Sectors(64 * MIB / 512),
                "thin-pool",
                pool_params,
            )],
            false,
        )
        .expect("pool");
    let id1 = ThinDevId::new_u64(1).unwrap();
    let id2 = ThinDevId::new_u64(2).unwrap();
    let size = Sectors(32 * MIB / 512);
    dm::thin_create(&dm, &pool, id1).unwrap();
    dm.create(&thin, None, &[thin_line(pool_dev, id1, size)], false)
        .unwrap();
    write_pattern(&node_path(&thin), 0, 2 * MIB as usize, 0x5A);
    dm::thin_create_snap(
        &dm,
        &dm::ThinSnapshotSpec {
            pool: &pool,
            origin: Some(&thin),
            origin_id: id1,
            snapshot_id: id2,
            transaction: Some((0, 1)),
        },
    )
    .expect("thin snapshot");
    // A wrong old transaction id is refused (by activate, LVM's rule)
    // before anything happens.
    let e = tpool
        .create_snap(
            &dm,
            Some(&thin),
            (id1, ThinDevId::new_u64(3).unwrap()),
            Some((0, 1)),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(!dm.info(&thin).unwrap().suspended);
    dm.create(&tsnap, None, &[thin_line(pool_dev, id2, size)], false)
        .unwrap();
    write_pattern(&node_path(&thin), 0, MIB as usize, 0xA5);
    assert!(all(&read_at(&node_path(&thin), 0, MIB as usize), 0xA5));
    assert!(all(&read_at(&node_path(&tsnap), 0, 2 * MIB as usize), 0x5A));
    match dm::thin_pool_status(&dm, &pool).unwrap() {
        ThinPoolStatus::Working(w) => {
            assert_eq!(w.transaction_id, 1);
            // 2 MiB shared + 1 MiB rewritten, in 64 KiB blocks.
            assert_eq!(w.usage.used_data.0, 48, "{:?}", w.usage);
            assert!(w.usage.used_meta.0 > 0);
            eprintln!("FIGURE: thin pool usage after snapshot: {:?}", w.usage);
        }
        other => panic!("pool not working: {other:?}"),
    }
    dm.remove(&tsnap).unwrap();
    dm.remove(&thin).unwrap();
    dm::thin_delete(&dm, &pool, id2).unwrap();
    dm::thin_delete(&dm, &pool, id1).unwrap();
    dm.remove(&pool).unwrap();
    assert_eq!(dm_names_with(&["lvsnap--t-thin", "lvsnap-t-tpool"]), before);
}

/// Bad input gets a clear error of the right kind, no panic, and leaves
/// the device list as it was.
#[test]
#[parallel]
fn bad_input_is_refused_cleanly() {
    require_dm();
    for c in [0u64, 4, 12, 24, 2048, 4096] {
        let e = ChunkSize::new(Sectors(c)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("power of two"), "{e}");
    }
    for c in [8u64, 16, 1024] {
        ChunkSize::new(Sectors(c)).unwrap();
    }
    let f = fixture("bad", 16 * MIB, 8 * MIB);
    // Every name this test hands the kernel, and the layers made from them.
    let long_name = "s".repeat(125);
    let ours = || {
        dm_names_with(&[
            "lvsnap--t-bad",
            "lvsnap--t-nosuch",
            "lvsnap--t-ghost",
            &long_name,
        ])
    };
    let before = ours();
    let check = |r: dm::Result<CowDevices>, kind: ErrorKind, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        eprintln!("{what}: {e}");
        assert_eq!(ours(), before, "{what} left devices behind");
        assert_eq!(
            f.dm.table(&f.origin).unwrap(),
            whole(&f.data, f.size),
            "{what}"
        );
        let info = f.dm.info(&f.origin).unwrap();
        assert!(
            !info.inactive_table && !info.suspended,
            "{what}: origin left {info:?}"
        );
    };
    let spec = |snapshot: &'static DmName,
                cow: &'static [TableLine],
                chunk: u64|
     -> dm::Result<CowDevices> {
        CowDevices::create(
            &f.dm,
            &CowSnapshotSpec {
                origin: &f.origin,
                snapshot,
                snapshot_uuid: None,
                cow,
                chunk: ChunkSize::new(Sectors(chunk))?,
                read_only: false,
            },
        )
    };
    let leak = |v: Vec<TableLine>| -> &'static [TableLine] { Box::leak(v.into_boxed_slice()) };
    let leak_name = |s: &str| -> &'static DmName { Box::leak(Box::new(name(s))) };
    let cow_dev = dev_of(&f.cow.path);

    // COW smaller than 3 chunks.
    let tiny = leak(linear_on(cow_dev, 16));
    check(
        spec(leak_name("lvsnap--t-badsnap"), tiny, 8),
        ErrorKind::InvalidArgument,
        "2-chunk COW",
    );
    let small = leak(linear_on(cow_dev, 2047));
    check(
        spec(leak_name("lvsnap--t-badsnap"), small, 1024),
        ErrorKind::InvalidArgument,
        "COW < 3 x 512 KiB",
    );
    // Chunk size not allowed.
    let ok_cow = leak(whole(&f.cow, f.cow_size));
    check(
        spec(leak_name("lvsnap--t-badsnap"), ok_cow, 12),
        ErrorKind::InvalidArgument,
        "chunk 12",
    );
    // A snapshot name whose -cow layer would be over-long.
    let long = leak_name(&long_name);
    check(
        spec(long, ok_cow, 8),
        ErrorKind::InvalidArgument,
        "over-long name",
    );
    // Ill-formed and over-long names never reach the kernel.
    for bad in ["", "a/b", "a b", "..", &"x".repeat(128)] {
        assert_eq!(
            check_dm_name(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
    }
    for (vg, lv) in [
        ("vg", "a/b"),
        ("-vg", "lv"),
        ("vg", ""),
        ("vg", &*"l".repeat(130)),
    ] {
        assert_eq!(
            LvmDmName::new(vg, lv, None).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert!(LvmId::parse("not-an-id").is_err());
    // A missing origin.
    let cow = whole(&f.cow, f.cow_size);
    let e = CowDevices::create(
        &f.dm,
        &CowSnapshotSpec {
            origin: &name("lvsnap--t-nosuch"),
            snapshot: &f.snap,
            snapshot_uuid: None,
            cow: &cow,
            chunk: ChunkSize::MIN,
            read_only: false,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(ours(), before);
    // A COW table past the end of its device: the kernel refuses the -cow
    // load after -real exists, and the undo removes -real again.
    let past = leak(linear_on(cow_dev, f.cow_size / 512 * 4));
    check(
        spec(leak_name("lvsnap--t-badsnap"), past, 8),
        ErrorKind::InvalidArgument,
        "COW past its device",
    );
    // A missing device in a table.
    // (An unbound loop minor would do too, but the kernel takes it as a
    // device of unknown size: the failure then comes when zeroing the header.)
    let nodev = Device {
        major: 240,
        minor: 77,
    };
    let missing = leak(linear_on(nodev, 8192));
    check(
        spec(leak_name("lvsnap--t-badsnap"), missing, 8),
        ErrorKind::NotFound,
        "missing COW device",
    );
    let unbound = Device {
        major: 7,
        minor: 250,
    };
    let unbound = leak(linear_on(unbound, 8192));
    check(
        spec(leak_name("lvsnap--t-badsnap"), unbound, 8),
        ErrorKind::Io,
        "unbound loop device as COW",
    );
    assert_eq!(ours(), before);
    // Operations on a missing device.
    let ghost = name("lvsnap--t-ghost");
    assert_eq!(f.dm.info(&ghost).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(f.dm.remove(&ghost).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(f.dm.resume(&ghost).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(f.dm.status(&ghost).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(ours(), before);
}

/// Two snapshots of one origin share its -real; each keeps its own time's
/// bytes; merging one while the other stays leaves the origin a
/// snapshot-origin; removing the last one leaves it plain.
#[test]
#[parallel]
fn two_snapshots_share_real() {
    require_dm();
    let before = dm_names_with(&["lvsnap--t-two"]);
    let f = fixture("two", 32 * MIB, 8 * MIB);
    let cow2 = LoopDev::new(8 * MIB);
    let snap2n = name("lvsnap--t-twosnap2");
    let _c = Cleanup(vec![snap2n.clone(), name("lvsnap--t-twosnap2-cow")]);
    write_pattern(&f.origin_path(), 0, MIB as usize, 0x01);
    let snap1 = f.snapshot(8).expect("first snapshot");
    write_pattern(&f.origin_path(), 0, MIB as usize, 0x02);
    let cow2_table = whole(&cow2, 8 * MIB);
    let snap2 = CowDevices::create(
        &f.dm,
        &CowSnapshotSpec {
            origin: &f.origin,
            snapshot: &snap2n,
            snapshot_uuid: None,
            cow: &cow2_table,
            chunk: ChunkSize::new(Sectors(16)).unwrap(),
            read_only: false,
        },
    )
    .expect("second snapshot");
    write_pattern(&f.origin_path(), 0, MIB as usize, 0x03);
    assert_eq!(snap1.params.real, snap2.params.real);
    assert_eq!(snap1.siblings(&f.dm).unwrap(), vec![snap2n.clone()]);
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0x03));
    assert!(all(&read_at(&f.snap_path(), 0, MIB as usize), 0x01));
    assert!(all(&read_at(&node_path(&snap2n), 0, MIB as usize), 0x02));

    let merge = snap2.start_merge(&f.dm).expect("merge the second");
    merge
        .wait(
            &f.dm,
            Duration::from_secs(60),
            Duration::from_millis(20),
            |_| {},
        )
        .unwrap()
        .expect("merged");
    merge.finish(&f.dm).expect("finish");
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0x02));
    assert!(all(&read_at(&f.snap_path(), 0, MIB as usize), 0x01));
    assert_eq!(
        f.dm.table(&f.origin).unwrap()[0].target_type,
        "snapshot-origin"
    );
    assert!(!dm_names_with(&["lvsnap--t-two"]).contains(&"lvsnap--t-twosnap2-cow".to_string()));

    snap1.remove(&f.dm).expect("remove the last");
    assert_eq!(f.dm.table(&f.origin).unwrap(), whole(&f.data, f.size));
    assert!(all(&read_at(&f.origin_path(), 0, MIB as usize), 0x02));
    f.dm.remove(&f.origin).unwrap();
    assert_eq!(dm_names_with(&["lvsnap--t-two"]), before);
}

/// Writes in flight while the snapshot is taken are not lost: with a
/// writer going block after block (each synchronous), the origin ends with
/// every block, and the snapshot holds exactly the blocks written before
/// some point between the create's start and its end. Serial: the writer
/// must still be writing when the create ends, a race other tests' load
/// would skew.
#[test]
#[serial]
fn writes_in_flight_during_create_are_kept() {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    require_dm();
    let before = dm_names();
    let f = fixture("fly", 16 * MIB, 16 * MIB);
    const BLOCKS: usize = 2048;
    let done = Arc::new(AtomicUsize::new(0));
    let (d, path) = (done.clone(), f.origin_path());
    let writer = std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(&path)
            .unwrap();
        let mut raw = vec![0u8; 8192];
        let off = raw.as_ptr().align_offset(4096);
        let buf = &mut raw[off..off + 4096];
        for i in 0..BLOCKS {
            buf.fill(0xEE);
            buf[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            file.write_all_at(buf, i as u64 * 4096).unwrap();
            d.store(i + 1, Ordering::SeqCst);
        }
    });
    while done.load(Ordering::SeqCst) < BLOCKS / 8 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let at_start = done.load(Ordering::SeqCst);
    let snap = f.snapshot(8).expect("snapshot under writes");
    let at_end = done.load(Ordering::SeqCst);
    writer.join().unwrap();
    eprintln!("FIGURE: blocks written before/after the create: {at_start}/{at_end} of {BLOCKS}");
    assert!(
        at_end < BLOCKS,
        "the writer finished before the snapshot; nothing in flight"
    );

    let tag = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    let origin = read_at(&f.origin_path(), 0, BLOCKS * 4096);
    for (i, b) in origin.chunks(4096).enumerate() {
        assert_eq!(tag(b), i as u64 + 1, "origin block {i} lost its write");
    }
    let snapd = read_at(&f.snap_path(), 0, BLOCKS * 4096);
    let k = snapd.chunks(4096).take_while(|b| tag(b) != 0).count();
    for (i, b) in snapd.chunks(4096).enumerate() {
        if i < k {
            assert_eq!(tag(b), i as u64 + 1, "snapshot block {i}");
            assert!(b[8..].iter().all(|&x| x == 0xEE));
        } else {
            assert!(
                all(b, 0),
                "snapshot block {i} after the cut at {k} was written"
            );
        }
    }
    assert!(
        k >= at_start && k <= at_end + 1,
        "cut at {k}, outside {at_start}..={}",
        at_end + 1
    );
    snap.remove(&f.dm).unwrap();
    f.dm.remove(&f.origin).unwrap();
    assert_eq!(dm_names(), before);
}
