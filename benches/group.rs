//! Group snapshots: one `create_group` of N COW origins against N
//! `create_snapshot` calls and N `lvcreate -s` calls, in the same run.
//! Only the group create takes the N snapshots at one instant; the other
//! two are what a caller without it does. Set-up and tear-down (removing
//! the snapshots) run outside the clock.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::require_dm;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use lvsnap::snapshot::{SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;

const MIB: u64 = 1 << 20;
/// Origins per group.
const N: usize = 4;

/// Runs a command directly; panics with its output on failure.
fn run(argv: &[&str]) {
    let (cmd, args) = argv.split_first().expect("a command");
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sums the time of `timed` over `iters` rounds, `teardown` after each off
/// the clock.
fn clocked(iters: u64, mut timed: impl FnMut(), mut teardown: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        timed();
        total += start.elapsed();
        teardown();
    }
    total
}

fn group_create(c: &mut Criterion) {
    require_dm();
    let vg = ScratchVg::new("lvsnapbenchg", 1, 512, "");
    let origins: Vec<String> = (0..N).map(|i| format!("o{i}")).collect();
    let snaps: Vec<String> = (0..N).map(|i| format!("s{i}")).collect();
    for o in &origins {
        vg.lvm(&format!("lvcreate -q -y -L 16M -n {o}"));
    }
    let v = VolumeGroup::open(&vg.name).expect("open VG");
    // `lvcreate -s -L` makes writable snapshots; match it.
    let opts = SnapshotOptions::default()
        .snapsize(SnapSize::Bytes(Bytes(u128::from(4 * MIB))))
        .writable(true);
    let items: Vec<(&str, &str)> = origins
        .iter()
        .zip(&snaps)
        .map(|(o, s)| (o.as_str(), s.as_str()))
        .collect();
    let delete_all = || {
        for s in &snaps {
            v.delete_snapshot(s).unwrap();
        }
    };

    let mut g = c.benchmark_group("group_create");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("lvsnap create_group", N), |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || {
                    v.create_group(&items, &opts).unwrap();
                },
                delete_all,
            )
        })
    });
    g.bench_function(BenchmarkId::new("lvsnap create_snapshot x N", N), |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || {
                    for &(o, s) in &items {
                        v.create_snapshot(o, s, &opts).unwrap();
                    }
                },
                delete_all,
            )
        })
    });
    g.bench_function(BenchmarkId::new("lvcreate -s x N", N), |b| {
        b.iter_custom(|n| {
            clocked(
                n,
                || {
                    for &(o, s) in &items {
                        let origin = format!("{}/{o}", vg.name);
                        run(&["lvcreate", "-q", "-s", "-L", "4M", "-n", s, &origin]);
                    }
                },
                || {
                    for s in &snaps {
                        run(&["lvremove", "-q", "-f", &format!("{}/{s}", vg.name)]);
                    }
                },
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(1));
    targets = group_create
}
criterion_main!(benches);
