//! Group snapshots: several origins, COW and thin, snapshotted at one
//! instant and committed at once, or not at all. LVM2's tools are the
//! oracle, and a writer's sequence numbers show the instant.

mod common;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::{
    STATUS_JSON_KEYS, dm_listing, dm_names_of, lvsnap, read_at, require_dm, sh, write_pattern,
};
use lvsnap::ErrorKind;
use lvsnap::snapshot::{SnapSize, SnapshotOptions, State, VolumeGroup};
use lvsnap::units::Bytes;
use serial_test::parallel;

const MIB: u64 = 1 << 20;
const MAGIC: &[u8; 8] = b"lvsnapGS";

/// A 4 KiB block holding `seq`.
fn stamp_block(seq: u64) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b
}

/// The stamp in the first block of `dev`: 0 if never stamped.
fn read_stamp(dev: &Path) -> u64 {
    let b = read_at(dev, 0, 4096);
    if &b[..8] != MAGIC {
        assert!(
            b.iter().all(|&x| x == 0),
            "{}: neither stamp nor zeros",
            dev.display()
        );
        return 0;
    }
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// A writer stamping 1, 2, 3, ... into every origin in turn, one O_DIRECT
/// write at a time (each completes before the next starts).
struct Writer {
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(devs: Vec<String>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let files: Vec<std::fs::File> = devs
            .iter()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(d)
                    .unwrap_or_else(|e| panic!("open {d}: {e}"))
            })
            .collect();
        let (st, sq) = (Arc::clone(&stop), Arc::clone(&seq));
        let thread = std::thread::spawn(move || {
            // O_DIRECT wants an aligned buffer.
            let mut raw = vec![0u8; 8192];
            let at = raw.as_ptr().align_offset(4096);
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) {
                n += 1;
                let block = stamp_block(n);
                for f in &files {
                    raw[at..at + 4096].copy_from_slice(&block);
                    f.write_all_at(&raw[at..at + 4096], 0).expect("stamp");
                }
                sq.store(n, Ordering::Relaxed);
            }
        });
        Writer {
            stop,
            seq,
            thread: Some(thread),
        }
    }

    /// Waits until the writer has stamped every origin `n` more times.
    fn wait_more(&self, n: u64) {
        let from = self.seq.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.seq.load(Ordering::Relaxed) < from + n {
            assert!(Instant::now() < deadline, "the writer is stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("writer");
        self.seq.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One instant, for a writer that stamps origins 0..n in turn: the
/// snapshots hold every write before some point of its sequence and none
/// after, so the stamps read in the writer's order are k, ..., k, k-1, ...,
/// k-1: never rising, and the first at most one above the last.
fn assert_one_instant(stamps: &[u64]) {
    assert!(
        stamps.windows(2).all(|w| w[0] >= w[1]),
        "stamps rise along the writer's order: {stamps:?}"
    );
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    assert!(
        first <= last + 1,
        "stamps span more than one round of the writer: {stamps:?}"
    );
}

/// No device of VG `vg` is suspended (other tests' devices may be, for a
/// moment).
fn assert_none_suspended(vg: &str) {
    let out = dm_listing("dmsetup info -c --noheadings -o name,attr");
    for l in out.lines().filter(|l| l.starts_with(&format!("{vg}-"))) {
        let attr = l.rsplit(':').next().unwrap_or("");
        assert!(!attr.contains('s'), "suspended: {l}");
    }
}

/// The tables of VG `vg`'s devices, as `dmsetup table` lists them.
fn tables_of(vg: &str) -> String {
    dm_listing("dmsetup table")
        .lines()
        .filter(|l| l.starts_with(&format!("{vg}-")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A VG with three COW origins a, b, c and a thin origin t in pool `pool`.
fn mixed_vg(name: &str, mib: u64) -> ScratchVg {
    let vg = ScratchVg::new(name, 1, mib, "-s 1M");
    for lv in ["a", "b", "c"] {
        vg.lvm(&format!("lvcreate -q -y -an -L 16M -n {lv}"));
    }
    vg.lvm("lvcreate -q -y -T -L 32M -n pool");
    sh(&format!("lvcreate -q -y -V 16M -T {name}/pool -n t"));
    sh(&format!("vgchange -q -ay {name}"));
    vg
}

/// A writer stamping a, t, b, c in turn; group snapshots taken while it
/// runs hold one instant of all four, COW and thin alike. Three rounds.
#[test]
#[parallel]
fn group_snapshot_is_one_instant() {
    require_dm();
    let vg = mixed_vg("grpvg", 256);
    let order = ["a", "t", "b", "c"];
    let devs: Vec<String> = order
        .iter()
        .map(|o| format!("/dev/mapper/grpvg-{o}"))
        .collect();
    let v = VolumeGroup::open("grpvg").expect("open");
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    let writer = Writer::start(devs.clone());
    for round in 0..3 {
        writer.wait_more(20);
        let items: Vec<(&str, String)> =
            order.iter().map(|o| (*o, format!("{o}{round}"))).collect();
        let seq = vg.seqno();
        let made = v.create_group(&items, &opts).expect("create_group");
        assert!(vg.seqno() > seq);
        assert_eq!(made.len(), 4);
        for (c, (o, n)) in made.iter().zip(&items) {
            assert_eq!((&c.status.name, c.status.source_volume.as_str()), (n, *o));
            assert_eq!(c.status.state, State::Ready);
            assert_eq!(c.status.thin, *o == "t");
        }
        // The origins go on after the instant.
        writer.wait_more(5);
    }
    let last = writer.stop();
    vg.vgck();
    let lvs = vg.lvs("origin,lv_attr");
    for round in 0..3 {
        sh(&format!("lvchange -q -ay -K grpvg/t{round}"));
        let stamps: Vec<u64> = order
            .iter()
            .map(|o| read_stamp(Path::new(&format!("/dev/mapper/grpvg-{o}{round}"))))
            .collect();
        assert_one_instant(&stamps);
        assert!(
            stamps[0] >= 1 && stamps[0] < last,
            "round {round}: {stamps:?}, last {last}"
        );
        for o in order {
            assert_eq!(lvs[&format!("{o}{round}")]["origin"], o);
        }
    }
    for o in &devs {
        assert_eq!(read_stamp(Path::new(o)), last);
    }
    assert_none_suspended("grpvg");
}

/// A refusal anywhere in the group (a taken name in the second item, no
/// room for the third store, a name given twice) changes nothing.
#[test]
#[parallel]
fn group_refusals_change_nothing() {
    require_dm();
    let vg = mixed_vg("grpref", 100);
    // Stores sized so that two fit in what is left and three do not.
    let free: u64 = sh("vgs --noheadings -o vg_free_count grpref")
        .trim()
        .parse()
        .unwrap();
    let store = free * 2 / 5 + 1;
    assert!(2 * store <= free && store < 16, "{free} extents free");
    let v = VolumeGroup::open("grpref").expect("open");
    let before = dm_names_of("grpref");
    let seq = vg.seqno();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes((store * MIB) as u128)));
    let cases: [(&[(&str, &str)], ErrorKind); 4] = [
        (
            &[("a", "s1"), ("b", "c"), ("c", "s3")],
            ErrorKind::InvalidArgument,
        ),
        (&[("a", "s1"), ("b", "s2"), ("c", "s3")], ErrorKind::NoSpace),
        (&[("a", "s1"), ("b", "s1")], ErrorKind::InvalidArgument),
        (&[("a", "s1"), ("nosuch", "s2")], ErrorKind::NotFound),
    ];
    for (items, kind) in cases {
        let e = v.create_group(items, &opts).unwrap_err();
        assert_eq!(e.kind(), kind, "{items:?}: {e}");
        assert_eq!(vg.seqno(), seq, "{items:?} changed the metadata");
        assert_eq!(dm_names_of("grpref"), before, "{items:?} left devices");
        vg.vgck();
    }
    let lvs = vg.lvs("lv_attr");
    assert!(!lvs.contains_key("s1") && !lvs.contains_key("s2") && !lvs.contains_key("s3"));
    // Two of them fit.
    v.create_group(&[("a", "s1"), ("b", "s2")], &opts)
        .expect("two fit");
    vg.vgck();
    assert_none_suspended("grpref");
}

/// A failure after the COW devices are made and every origin is suspended
/// (the pool refuses the thin snapshot: its device id is taken) undoes it
/// all: no device, no snapshot, the old seqno, every origin resumed and
/// unchanged.
#[test]
#[parallel]
fn group_failure_after_the_devices_are_made_undoes_them() {
    require_dm();
    let vg = mixed_vg("grpfail", 256);
    for (i, o) in ["a", "b", "t"].iter().enumerate() {
        write_pattern(
            Path::new(&format!("/dev/mapper/grpfail-{o}")),
            0,
            4096,
            0x10 + i as u8,
        );
    }
    let v = VolumeGroup::open("grpfail").expect("open");
    let id: u64 = sh("lvs --noheadings -o thin_id grpfail/t")
        .trim()
        .parse()
        .expect("thin id");
    // The id lvsnap takes next, made behind LVM's back.
    let tpool = "grpfail-pool-tpool";
    sh(&format!(
        "dmsetup message {tpool} 0 'create_thin {}'",
        id + 1
    ));
    let before = dm_names_of("grpfail");
    let tables = tables_of("grpfail");
    let seq = vg.seqno();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    let items = [("a", "s1"), ("t", "ts"), ("b", "s2")];
    let e = v.create_group(&items, &opts).unwrap_err();
    eprintln!("refused as expected: {e}");
    assert_eq!(vg.seqno(), seq, "metadata changed");
    assert_eq!(dm_names_of("grpfail"), before, "devices left behind");
    assert_eq!(tables_of("grpfail"), tables, "tables changed");
    assert_none_suspended("grpfail");
    vg.vgck();
    let lvs = vg.lvs("lv_attr");
    assert!(!lvs.contains_key("s1") && !lvs.contains_key("ts") && !lvs.contains_key("s2"));
    let pool = sh(&format!("dmsetup status {tpool}"));
    let meta_tid = sh("lvs --noheadings -o transaction_id grpfail/pool");
    assert_eq!(
        pool.split_whitespace().nth(3),
        Some(meta_tid.trim()),
        "{pool}"
    );
    for (i, o) in ["a", "b", "t"].iter().enumerate() {
        let dev = format!("/dev/mapper/grpfail-{o}");
        assert_eq!(
            read_at(Path::new(&dev), 0, 4096),
            vec![0x10 + i as u8; 4096]
        );
        write_pattern(Path::new(&dev), 4096, 4096, 0x55);
    }
    // With the id free again, the same group is made.
    sh(&format!("dmsetup message {tpool} 0 'delete {}'", id + 1));
    v.create_group(&items, &opts).expect("create_group");
    vg.vgck();
    sh("lvchange -q -ay -K grpfail/ts");
    for (o, s) in [("a", "s1"), ("t", "ts"), ("b", "s2")] {
        let (od, sd) = (
            format!("/dev/mapper/grpfail-{o}"),
            format!("/dev/mapper/grpfail-{s}"),
        );
        assert_eq!(
            read_at(Path::new(&od), 0, 8192),
            read_at(Path::new(&sd), 0, 8192)
        );
    }
    assert_none_suspended("grpfail");
}

/// `lvsnap create-group VG LV=SNAP ... --json` prints an array of the
/// objects `status --json` prints; a bad pair is one line on stderr.
#[test]
#[parallel]
fn cli_create_group() {
    require_dm();
    let vg = mixed_vg("grpcli", 128);
    let (code, out, err) = lvsnap(&[
        "create-group",
        "grpcli",
        "a=sa",
        "t=st",
        "--snapsize",
        "4M",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    for (o, (name, src, thin)) in arr.iter().zip([("sa", "a", false), ("st", "t", true)]) {
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        for k in STATUS_JSON_KEYS {
            assert!(keys.contains(&k), "{k} missing in {o}");
        }
        assert_eq!(
            (o["name"].as_str(), o["source_volume"].as_str()),
            (Some(name), Some(src))
        );
        assert_eq!(o["thin"].as_bool(), Some(thin));
        assert_eq!(o["vg"], "grpcli");
    }
    assert!(err.contains("thin"), "the ignored snapsize is said: {err}");
    assert_eq!(arr[0]["capacity_bytes"], 4 * MIB);
    let (code, out, _) = lvsnap(&["status", "grpcli/sa", "--json"]);
    assert_eq!(code, 0);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["name"], "sa");
    // `create --json` prints the one object `status --json` prints.
    let (code, out, err) = lvsnap(&["create", "grpcli/a", "sc", "--snapsize", "4M", "--json"]);
    assert_eq!(code, 0, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).expect("create --json");
    let (code, out, _) = lvsnap(&["status", "grpcli/sc", "--json"]);
    assert_eq!(code, 0);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in STATUS_JSON_KEYS {
        assert_eq!(made[k], st[k], "{k}: {made} vs {st}");
    }
    assert_eq!(
        (made["name"].as_str(), made["capacity_bytes"].as_u64()),
        (Some("sc"), Some(4 * MIB))
    );
    let seq = vg.seqno();
    for bad in [
        vec!["create-group", "grpcli", "b"],
        vec!["create-group", "grpcli", "b=sb", "c=sa"],
    ] {
        let (code, _, err) = lvsnap(&bad);
        assert_ne!(code, 0, "{bad:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad:?}: {err}");
    }
    assert_eq!(vg.seqno(), seq);
    vg.vgck();
}
