//! The monitor: auto-extension ahead of a writer, no_space, invalidation,
//! a completed merge, a snapshot deleted or created while it watches; and
//! the `lvsnap monitor` CLI. LVM2's tools are the oracle.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::{lvsnap, read_at, require_dm, sh, write_pattern};
use lvsnap::snapshot::{
    Monitor, MonitorEvent, MonitorOptions, RollbackState, SnapSize, SnapshotOptions, VolumeGroup,
};
use lvsnap::units::Bytes;
use serial_test::serial;

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// Events as a monitor thread sends them: `None` is a heartbeat, so the
/// thread sees when nobody listens any more and stops.
type Events = mpsc::Receiver<(Instant, Option<MonitorEvent>)>;

/// A monitor of `vg` on its own thread, its events sent back with the
/// time each came.
fn spawn_monitor(vg: &str, threshold: u32, percent: u32) -> Events {
    let opts = MonitorOptions {
        vgs: vec![vg.to_owned()],
        threshold,
        percent,
        interval: Duration::from_millis(200),
    };
    let mut m = Monitor::new(opts).expect("monitor");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        loop {
            let ev = m.next_event(Duration::from_millis(500)).expect("monitor");
            if tx.send((Instant::now(), ev)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Collects events into `got` until `until` holds for one (true) or
/// `timeout` passes (false).
fn events_until(
    rx: &Events,
    got: &mut Vec<(Instant, MonitorEvent)>,
    timeout: Duration,
    until: impl Fn(&MonitorEvent) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((_, None)) => {}
            Ok((t, Some(ev))) => {
                let done = until(&ev);
                got.push((t, ev));
                if done {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Writes `total` bytes of `byte` into `dev` from `from`, `piece` at a
/// time with `pause` between.
fn paced_write(dev: &Path, from: u64, total: u64, piece: u64, pause: Duration, byte: u8) {
    let mut off = from;
    while off < from + total {
        write_pattern(dev, off, piece as usize, byte);
        off += piece;
        std::thread::sleep(pause);
    }
}

fn cow_bytes(vg: &ScratchVg, snap: &str) -> u64 {
    vg.lvs("lv_size")[snap]["lv_size"].parse().expect("lv_size")
}

/// A snapshot made after the monitor started, written ahead of by more
/// than one extension covers, is extended again and again and stays valid;
/// the reaction time (the write that crossed the threshold to the event)
/// is printed.
#[test]
#[serial]
fn monitor_extends_ahead_of_a_writer() {
    require_dm();
    let vg = ScratchVg::new("monvg", 1, 256, "-s 1M");
    vg.lvm("lvcreate -q -y -L 64M -n o");
    let origin = Path::new("/dev/mapper/monvg-o");
    write_pattern(origin, 0, 16 * MIB as usize, 0x11);
    let rx = spawn_monitor("monvg", 50, 50);
    // Made after the monitor started.
    std::thread::sleep(Duration::from_millis(300));
    let v = VolumeGroup::open("monvg").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    v.create_snapshot("o", "s", &opts).expect("create");
    let store = cow_bytes(&vg, "s");
    assert_eq!(store, 4 * MIB);
    // Just over half the store, then wait for the first extension.
    write_pattern(origin, 0, (2 * MIB + 256 * KIB) as usize, 0x22);
    let crossed = Instant::now();
    let mut got = Vec::new();
    assert!(
        events_until(&rx, &mut got, Duration::from_secs(30), |e| matches!(
            e,
            MonitorEvent::Extended { .. }
        )),
        "no extension: {got:?}"
    );
    eprintln!(
        "reaction: {:?} from the write that crossed 50% to the extended event",
        got.last().unwrap().0 - crossed
    );
    // 10 MiB more at ~1.3 MiB/s: more than the first extension's 2 MiB.
    paced_write(
        origin,
        2 * MIB + 256 * KIB,
        10 * MIB,
        128 * KIB,
        Duration::from_millis(100),
        0x33,
    );
    events_until(&rx, &mut got, Duration::from_secs(2), |_| false);
    drop(rx);
    let st = v.snapshot_status("s").unwrap();
    assert!(!st.invalid, "the snapshot overflowed: {got:?}");
    let ext: Vec<(u64, u64)> = got
        .iter()
        .filter_map(|(_, e)| match e {
            MonitorEvent::Extended {
                snapshot, old, new, ..
            } if snapshot == "s" => Some((old.0 as u64, new.0 as u64)),
            _ => None,
        })
        .collect();
    assert!(ext.len() >= 2, "{got:?}");
    assert_eq!(ext[0].0, 4 * MIB);
    for w in ext.windows(2) {
        assert_eq!(w[0].1, w[1].0, "{ext:?}");
    }
    let lvs = vg.lvs("lv_size,lv_snapshot_invalid");
    assert_eq!(
        lvs["s"]["lv_size"].parse::<u64>().unwrap(),
        ext.last().unwrap().1
    );
    assert!(lvs["s"]["lv_snapshot_invalid"].is_empty(), "{:?}", lvs["s"]);
    // The snapshot still holds what the origin held.
    assert_eq!(
        read_at(Path::new("/dev/mapper/monvg-s"), 0, 16 * MIB as usize),
        vec![0x11; 16 * MIB as usize]
    );
    vg.vgck();
}

/// Where the VG has no room, the monitor says no_space once, and then
/// invalid as soon as the store overflows.
#[test]
#[serial]
fn monitor_no_space_then_invalid() {
    require_dm();
    let vg = ScratchVg::new("monfull", 1, 64, "-s 1M");
    vg.lvm("lvcreate -q -y -L 16M -n o");
    let v = VolumeGroup::open("monfull").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(2 * MIB as u128)));
    v.create_snapshot("o", "s", &opts).expect("create");
    sh("lvcreate -q -y -l 100%FREE -n filler monfull");
    let rx = spawn_monitor("monfull", 60, 20);
    let origin = Path::new("/dev/mapper/monfull-o");
    write_pattern(origin, 0, (1536 * KIB) as usize, 0x44);
    let mut got = Vec::new();
    assert!(
        events_until(&rx, &mut got, Duration::from_secs(30), |e| matches!(
            e,
            MonitorEvent::NoSpace { .. }
        )),
        "{got:?}"
    );
    write_pattern(origin, 2 * MIB, 2 * MIB as usize, 0x55);
    let wrote = Instant::now();
    assert!(
        events_until(&rx, &mut got, Duration::from_secs(30), |e| matches!(
            e,
            MonitorEvent::Invalid { .. }
        )),
        "{got:?}"
    );
    eprintln!(
        "invalid told {:?} after the overflowing write",
        got.last().unwrap().0 - wrote
    );
    let names: Vec<&str> = got.iter().map(|(_, e)| e.name()).collect();
    assert_eq!(names, ["no_space", "invalid"], "{got:?}");
    assert_eq!(got[1].1.snapshot(), ("monfull", "s"));
    assert_eq!(
        vg.lvs("lv_snapshot_invalid")["s"]["lv_snapshot_invalid"],
        "snapshot invalid"
    );
    assert_eq!(cow_bytes(&vg, "s"), 2 * MIB);
    drop(rx);
    vg.vgck();
}

/// A snapshot removed by `lvremove` while watched is dropped quietly;
/// another is still extended, and its merge's end is told.
#[test]
#[serial]
fn monitor_survives_a_deleted_snapshot_and_tells_a_merge() {
    require_dm();
    let vg = ScratchVg::new("mondel", 1, 128, "-s 1M");
    vg.lvm("lvcreate -q -y -L 16M -n o");
    vg.lvm("lvcreate -q -y -L 16M -n p");
    let v = VolumeGroup::open("mondel").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    v.create_group(&[("o", "so"), ("p", "sp")], &opts)
        .expect("create");
    let rx = spawn_monitor("mondel", 50, 20);
    std::thread::sleep(Duration::from_millis(500));
    sh("lvremove -q -f mondel/so");
    write_pattern(Path::new("/dev/mapper/mondel-p"), 0, 3 * MIB as usize, 0x66);
    let mut got = Vec::new();
    assert!(
        events_until(&rx, &mut got, Duration::from_secs(30), |e| matches!(
            e,
            MonitorEvent::Extended { .. }
        )),
        "{got:?}"
    );
    assert_eq!(got.last().unwrap().1.snapshot(), ("mondel", "sp"));
    // Nobody finishes the merge until the monitor told its end.
    let mut rb = v.rollback("sp").expect("rollback");
    match rb.state() {
        RollbackState::InProgress { .. } => {
            assert!(
                events_until(&rx, &mut got, Duration::from_secs(60), |e| matches!(
                    e,
                    MonitorEvent::Merged { .. }
                )),
                "{got:?}"
            );
            match &got.last().unwrap().1 {
                MonitorEvent::Merged {
                    snapshot, origin, ..
                } => assert_eq!((snapshot.as_str(), origin.as_str()), ("sp", "p")),
                e => panic!("{e:?}"),
            }
            assert_eq!(
                rb.wait().expect("finish the merge"),
                RollbackState::Completed
            );
        }
        // Under load a 3 MiB merge can end before rollback's own look at
        // it, which then finishes it; the monitor may never have seen it
        // merging, so no event is owed. The merge must still have happened.
        RollbackState::Completed => {}
        st => panic!("a rollback just started is {st:?}"),
    }
    assert!(!vg.lvs("lv_attr").contains_key("sp"), "sp not merged away");
    assert!(
        read_at(Path::new("/dev/mapper/mondel-p"), 0, 3 * MIB as usize)
            .iter()
            .all(|&b| b != 0x66),
        "p does not read as it did when sp was taken"
    );
    assert!(got.iter().all(|(_, e)| e.snapshot().1 == "sp"), "{got:?}");
    drop(rx);
    vg.vgck();
}

/// `lvsnap monitor VG --json --exit-after S`, with lvm.conf's threshold
/// and percent, prints JSON lines and exits 0; a bad threshold is one line
/// and a failure.
#[test]
#[serial]
fn cli_monitor() {
    require_dm();
    let vg = ScratchVg::new("moncli", 1, 128, "-s 1M");
    vg.lvm("lvcreate -q -y -L 16M -n o");
    let v = VolumeGroup::open("moncli").unwrap();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(4 * MIB as u128)));
    v.create_snapshot("o", "s", &opts).expect("create");
    let conf_dir = std::env::temp_dir().join(format!("lvsnap-moncli-{}", std::process::id()));
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("lvm.conf"),
        "activation {\n\tsnapshot_autoextend_threshold = 50\n\tsnapshot_autoextend_percent = 25\n}\n",
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lvsnap"))
        .args(["monitor", "moncli", "--json", "--exit-after", "8"])
        // The threshold and percent from lvm.conf.
        .env("LVM_SYSTEM_DIR", &conf_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(2));
    // 2.25 MiB of 4: +25% (one extent) brings it under 50%.
    write_pattern(
        Path::new("/dev/mapper/moncli-o"),
        0,
        (2 * MIB + 256 * KIB) as usize,
        0x77,
    );
    let out = child.wait_with_output().expect("monitor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let ev = &lines[0];
    assert_eq!(ev["event"], "extended");
    assert_eq!(
        (ev["vg"].as_str(), ev["snapshot"].as_str()),
        (Some("moncli"), Some("s"))
    );
    assert_eq!(ev["old_size_bytes"], 4 * MIB);
    assert_eq!(ev["new_size_bytes"], 5 * MIB);
    assert_eq!(cow_bytes(&vg, "s"), 5 * MIB);
    let (code, _, err) = lvsnap(&[
        "monitor",
        "moncli",
        "--threshold",
        "101",
        "--exit-after",
        "1",
    ]);
    assert_ne!(code, 0);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    vg.vgck();
}
