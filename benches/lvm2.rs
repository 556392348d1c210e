//! lvsnap against LVM2's tools, each pair measured in the same run so the
//! ratio holds on a noisy machine. Run with `./vm/setup && cargo bench`
//! (through the VM runner where the host kernel has no device-mapper).
//!
//! Each timed call is measured alone: set-up (writing data, making the LVs
//! a benchmark needs) and tear-down (removing what it made) run outside the
//! clock. LVM commands are spawned directly, not through a shell.
//!
//! In criterion's test mode (`cargo test --bench lvm2`: each benchmark run
//! once, unmeasured) the set-up is smaller: status at 1 and 10 snapshots,
//! not 100; the scaled create in a VG of 50 LVs, not 500; a 16 MiB restore,
//! not 256 MiB. The benchmark ids stay those of the measured run.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::{require_dm, run, write_pattern};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use devicemapper::{DmNameBuf, DmUuid};
use lvsnap::activate::{CowDevices, CowSnapshotSpec};
use lvsnap::dm::{ChunkSize, DmControl};
use lvsnap::lvm::text::Style;
use lvsnap::lvm::vg::{Creation, Metadata};
use lvsnap::lvm::{ScanOptions, VgDisk};
use lvsnap::snapshot::{RestoreOptions, RollbackState, SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::{Bytes, Extents, Sectors};

const MIB: u64 = 1 << 20;

/// Whether the command line's filters (criterion's positional arguments)
/// may select a benchmark of `group`, so set-up is skipped for groups that
/// will not run. A filter is taken as a plain substring of the full id.
fn wanted(group: &str) -> bool {
    // Criterion's options that take a value as the next argument.
    const WITH_VALUE: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
        "--color",
        "--profile-time",
        "--format",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    filters.is_empty()
        || filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.starts_with(group))
}

/// Sums the time of `timed` over `iters` rounds, with `setup` before and
/// `teardown` after each round off the clock.
fn clocked<S, T>(
    iters: u64,
    mut setup: impl FnMut() -> S,
    mut timed: impl FnMut(S) -> T,
    mut teardown: impl FnMut(T),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let s = setup();
        let start = Instant::now();
        let t = black_box(timed(s));
        total += start.elapsed();
        teardown(t);
    }
    total
}

fn cow_opts(mib: u64) -> SnapshotOptions {
    // `lvcreate -s -L` makes writable snapshots; match it.
    SnapshotOptions::default()
        .snapsize(SnapSize::Bytes(Bytes(u128::from(mib * MIB))))
        .writable(true)
}

fn dm_path(vg: &str, lv: &str) -> String {
    format!("/dev/mapper/{vg}-{lv}")
}

/// COW create of an active 64 MiB origin with an 8 MiB store: lvsnap, the
/// bare device-mapper sequence it performs, and `lvcreate -s -L 8M`.
fn cow_create(c: &mut Criterion) {
    if !wanted("cow_create") {
        return;
    }
    let vg = ScratchVg::new("lvsnapbenchc", 1, 512, "");
    vg.lvm("lvcreate -q -L 64M -n origin");
    let dm = DmControl::open().expect("device-mapper");
    let cow_table = cow_area(&dm, &vg);
    let lvsnap_vg = VolumeGroup::open(&vg.name).expect("open VG");

    let mut g = c.benchmark_group("cow_create");
    g.sampling_mode(SamplingMode::Flat);
    bench_cow_create(&mut g, &lvsnap_vg);
    bench_floor(&mut g, &dm, &vg, &cow_table);
    bench_lvcreate_s(&mut g, &vg.name);
    g.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// lvsnap's create of `snap`, an 8 MiB COW snapshot of `origin`: through a
/// long-lived handle, through a new handle each time (a one-shot caller),
/// and as a whole `lvsnap create` process, as `lvcreate -s` is measured.
fn bench_cow_create(g: &mut Group<'_>, vg: &VolumeGroup) {
    let opts = cow_opts(8);
    g.bench_function("lvsnap", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| vg.create_snapshot("origin", "snap", &opts).unwrap(),
                |_| vg.delete_snapshot("snap").unwrap(),
            )
        })
    });
    g.bench_function("lvsnap, new handle", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| {
                    VolumeGroup::open(vg.name())
                        .unwrap()
                        .create_snapshot("origin", "snap", &opts)
                        .unwrap()
                },
                |_| vg.delete_snapshot("snap").unwrap(),
            )
        })
    });
    let origin = format!("{}/origin", vg.name());
    g.bench_function("lvsnap create (CLI)", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| {
                    run(&[
                        LVSNAP,
                        "create",
                        &origin,
                        "snap",
                        "--snapsize",
                        "8M",
                        "--writable",
                    ])
                },
                |()| vg.delete_snapshot("snap").unwrap(),
            )
        })
    });
}

/// The CLI, built for the benchmarks' profile.
const LVSNAP: &str = env!("CARGO_BIN_EXE_lvsnap");

/// `lvcreate -s -L 8M -n snap <vg>/origin`.
fn bench_lvcreate_s(g: &mut Group<'_>, vg: &str) {
    let origin = format!("{vg}/origin");
    let snap = format!("{vg}/snap");
    g.bench_function("lvcreate -s", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| run(&["lvcreate", "-q", "-s", "-L", "8M", "-n", "snap", &origin]),
                |()| run(&["lvremove", "-q", "-f", &snap]),
            )
        })
    });
}

/// The floor: the device-mapper sequence of a COW create of `<vg>-origin`
/// (new -real, -cow and snapshot devices, the origin's reload with
/// suspend and resume), over the extents of a deactivated LV, with no
/// metadata I/O.
fn bench_floor(
    g: &mut Group<'_>,
    dm: &DmControl,
    vg: &ScratchVg,
    cow_table: &[lvsnap::dm::TableLine],
) {
    let origin = DmNameBuf::new(format!("{}-origin", vg.name)).unwrap();
    let snap = DmNameBuf::new(format!("{}-floor", vg.name)).unwrap();
    let uuid =
        DmUuid::new("LVM-lvsnapbenchfloorsnapshotuuid0000000000000000000000000000000").unwrap();
    g.bench_function("floor (dm ioctls)", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || zero_cow_header(vg, cow_table),
                |()| {
                    let spec = CowSnapshotSpec {
                        origin: &origin,
                        snapshot: &snap,
                        snapshot_uuid: Some(uuid),
                        cow: cow_table,
                        chunk: ChunkSize::new(Sectors(8)).unwrap(),
                        read_only: false,
                    };
                    CowDevices::create(dm, &spec).unwrap()
                },
                |s| s.remove(dm).unwrap(),
            )
        })
    });
}

/// An 8 MiB LV `cowarea`, made and deactivated: extents for the floor's
/// exception store, taken in the metadata but unmapped. Returns its table.
fn cow_area(dm: &DmControl, vg: &ScratchVg) -> Vec<lvsnap::dm::TableLine> {
    vg.lvm("lvcreate -q -L 8M -n cowarea");
    let name = DmNameBuf::new(format!("{}-cowarea", vg.name)).unwrap();
    let table = dm.table(&name).expect("table of cowarea");
    run(&["lvchange", "-q", "-an", &format!("{}/cowarea", vg.name)]);
    table
}

/// Zeroes the first chunk the floor's exception store maps, as lvsnap and
/// LVM do before a snapshot uses it (off the clock: data I/O, not ioctls).
fn zero_cow_header(vg: &ScratchVg, table: &[lvsnap::dm::TableLine]) {
    let line = table.first().expect("a linear line");
    let mut words = line.params.split_whitespace();
    let _dev = words.next();
    let offset: u64 = words.next().and_then(|o| o.parse().ok()).expect("offset");
    write_pattern(&vg.pvs[0].path, offset * 512, 4096, 0);
}

/// Thin snapshot create of an active 64 MiB thin LV.
fn thin_create(c: &mut Criterion) {
    if !wanted("thin_create") {
        return;
    }
    let vg = ScratchVg::new("lvsnapbencht", 1, 512, "");
    vg.lvm("lvcreate -q -T -L 256M -n pool");
    run(&[
        "lvcreate",
        "-q",
        "-V",
        "64M",
        "-T",
        "lvsnapbencht/pool",
        "-n",
        "thin",
    ]);
    let lvsnap_vg = VolumeGroup::open(&vg.name).expect("open VG");
    let opts = SnapshotOptions::default();

    let mut g = c.benchmark_group("thin_create");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("lvsnap", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| lvsnap_vg.create_snapshot("thin", "tsnap", &opts).unwrap(),
                |_| lvsnap_vg.delete_snapshot("tsnap").unwrap(),
            )
        })
    });
    g.bench_function("lvcreate -s", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| run(&["lvcreate", "-q", "-s", "-n", "tsnap", "lvsnapbencht/thin"]),
                |()| run(&["lvremove", "-q", "-f", "lvsnapbencht/tsnap"]),
            )
        })
    });
    g.finish();
}

/// Status of every snapshot in a VG of 1, 10 and 100 snapshots, then COW
/// create in that VG grown to 500 LVs and 100 snapshots.
fn status_and_scale(c: &mut Criterion) {
    if !wanted("status_all_snapshots") && !wanted("cow_create_500_lvs_100_snapshots") {
        return;
    }
    const ORIGINS: usize = 10;
    let vg = ScratchVg::new("lvsnapbenchs", 1, 4096, "");
    for i in 0..ORIGINS {
        vg.lvm(&format!("lvcreate -q -L 8M -n o{i}"));
    }
    let lvsnap_vg = VolumeGroup::open(&vg.name).expect("open VG");
    let small = cow_opts(4);
    let mut made = 0;

    let test_mode = support::test_mode();
    let counts: &[usize] = if test_mode { &[1, 10] } else { &[1, 10, 100] };
    let mut g = c.benchmark_group("status_all_snapshots");
    g.sampling_mode(SamplingMode::Flat);
    for &count in counts {
        while made < count {
            let origin = format!("o{}", made % ORIGINS);
            lvsnap_vg
                .create_snapshot(&origin, &format!("s{made}"), &small)
                .unwrap();
            made += 1;
        }
        g.bench_with_input(BenchmarkId::new("lvsnap", count), &count, |b, &count| {
            b.iter(|| {
                let all = lvsnap_vg.snapshots().unwrap();
                assert_eq!(all.len(), count);
                all
            })
        });
        // A new handle each time: a full scan and parse, as a one-shot
        // caller (the CLI) pays.
        g.bench_with_input(
            BenchmarkId::new("lvsnap, new handle", count),
            &count,
            |b, &count| {
                b.iter(|| {
                    let all = VolumeGroup::open(&vg.name).unwrap().snapshots().unwrap();
                    assert_eq!(all.len(), count);
                    all
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("lvsnap list (CLI)", count),
            &count,
            |b, _| b.iter(|| run(&[LVSNAP, "list", "lvsnapbenchs"])),
        );
        g.bench_with_input(
            BenchmarkId::new("lvs -o data_percent,lv_attr", count),
            &count,
            |b, _| {
                b.iter(|| {
                    run(&[
                        "lvs",
                        "--noheadings",
                        "-o",
                        "lv_name,origin,lv_size,lv_time,data_percent,lv_attr",
                        "lvsnapbenchs",
                    ])
                })
            },
        );
    }
    g.finish();

    if !wanted("cow_create_500_lvs_100_snapshots") {
        return;
    }
    // Grow to 500 LVs (50 in test mode) in one commit: the snapshots'
    // origins, an origin as in `cow_create`, the floor's area and inactive
    // ones.
    let lvs = if test_mode { 50 } else { 500 };
    vg.lvm("lvcreate -q -L 64M -n origin");
    let dm = DmControl::open().expect("device-mapper");
    let cow_table = cow_area(&dm, &vg);
    add_linear_lvs(&vg.name, ORIGINS + 2..lvs);
    let mut g = c.benchmark_group("cow_create_500_lvs_100_snapshots");
    g.sampling_mode(SamplingMode::Flat);
    bench_cow_create(&mut g, &lvsnap_vg);
    bench_floor(&mut g, &dm, &vg, &cow_table);
    bench_lvcreate_s(&mut g, &vg.name);
    g.finish();
}

/// Adds inactive one-extent linear LVs `l<i>` for each `i` in `range`, in one
/// commit through lvsnap's metadata layer (LVM would take a command each).
fn add_linear_lvs(vg: &str, range: std::ops::Range<usize>) {
    let mut disk = VgDisk::open(vg, &ScanOptions::default()).expect("open VG");
    let mut md = Metadata::parse(disk.text()).expect("parse");
    let now = Creation::now();
    for i in range {
        md.add_linear_lv(&format!("l{i}"), Extents(1), &now)
            .expect("add LV");
    }
    md.bump_seqno().expect("seqno");
    disk.commit(&md.to_text(Style::Raw)).expect("commit");
    drop(disk);
    run(&["vgck", vg]);
}

/// Rollback to completion of a snapshot with 1 MiB changed on its origin.
fn rollback(c: &mut Criterion) {
    if !wanted("rollback_1MiB_changed") {
        return;
    }
    let vg = ScratchVg::new("lvsnapbenchr", 1, 256, "");
    vg.lvm("lvcreate -q -L 64M -n origin");
    let lvsnap_vg = VolumeGroup::open(&vg.name).expect("open VG");
    let origin = dm_path(&vg.name, "origin");
    // Off the clock: a snapshot by LVM's own tool, then 1 MiB overwritten.
    let snap_and_change = || {
        run(&[
            "lvcreate",
            "-q",
            "-s",
            "-L",
            "8M",
            "-n",
            "snap",
            "lvsnapbenchr/origin",
        ]);
        write_pattern(Path::new(&origin), 0, MIB as usize, 0x5a);
    };

    let mut g = c.benchmark_group("rollback_1MiB_changed");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("lvsnap", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                &snap_and_change,
                |()| {
                    let mut r = lvsnap_vg.rollback("snap").unwrap();
                    let end = r.wait().unwrap();
                    assert_eq!(end, RollbackState::Completed, "rollback ended {end:?}");
                },
                |()| (),
            )
        })
    });
    g.bench_function("lvconvert --merge -i1", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                &snap_and_change,
                |()| run(&["lvconvert", "-q", "--merge", "-i", "1", "lvsnapbenchr/snap"]),
                |()| (),
            )
        })
    });
    g.finish();
}

/// Restore of a 256 MiB COW snapshot (16 MiB in test mode) into a new LV,
/// against `dd` copying the same snapshot into an LV made beforehand.
fn restore(c: &mut Criterion) {
    if !wanted("restore_256MiB") {
        return;
    }
    let mib = if support::test_mode() { 16 } else { 256 };
    let size = mib * MIB;
    let vg = ScratchVg::new("lvsnapbenchx", 1, 8 * mib, "");
    vg.lvm(&format!("lvcreate -q -L {mib}M -n origin"));
    vg.lvm(&format!("lvcreate -q -L {mib}M -n ddtarget"));
    fill(&dm_path(&vg.name, "origin"), size);
    let lvsnap_vg = VolumeGroup::open(&vg.name).expect("open VG");
    lvsnap_vg
        .create_snapshot("origin", "snap", &SnapshotOptions::default())
        .unwrap();

    let mut g = c.benchmark_group("restore_256MiB");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(size));
    g.bench_function("lvsnap", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| {
                    lvsnap_vg
                        .restore("snap", "restored", &RestoreOptions::default(), |_| {})
                        .unwrap()
                },
                |_| run(&["lvremove", "-q", "-f", "lvsnapbenchx/restored"]),
            )
        })
    });
    let input = format!("if={}", dm_path(&vg.name, "snap"));
    let output = format!("of={}", dm_path(&vg.name, "ddtarget"));
    g.bench_function("dd bs=4M direct", |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || (),
                |()| {
                    run(&[
                        "dd",
                        &input,
                        &output,
                        "bs=4M",
                        "iflag=direct",
                        "oflag=direct",
                        "status=none",
                    ])
                },
                |()| (),
            )
        })
    });
    g.finish();
}

/// Writes `len` bytes of varied data over a device.
fn fill(dev: &str, len: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .expect("open for fill");
    let block: Vec<u8> = (0..4 * MIB).map(|i| (i % 251) as u8).collect();
    let mut at = 0;
    while at < len {
        f.write_all_at(&block, at).expect("fill");
        at += block.len() as u64;
    }
    f.sync_all().expect("fsync");
}

fn config() -> Criterion {
    require_dm();
    // LVM commands take seconds under TCG: few samples, short windows.
    // The analysis runs under TCG too: with criterion's default 100 000
    // bootstrap resamples (and the plots of their distributions) it took
    // minutes per benchmark, longer than the samples; 10 000 still give
    // its confidence intervals, and the samples are as before.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = cow_create, thin_create, status_and_scale, rollback, restore
}
criterion_main!(benches);
