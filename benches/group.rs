//! Group snapshots: one `create_group` of N COW origins against N
//! `create_snapshot` calls and N `lvcreate -s` calls, in the same run.
//! Only the group create takes the N snapshots at one instant; the other
//! two are what a caller without it does. And the monitor's reaction time:
//! from the write that takes a store over the threshold to the extension
//! told. Set-up and tear-down (removing the snapshots) run outside the
//! clock.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::lvm::ScratchVg;
use common::write_pattern;
use common::{require_dm, run};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use lvsnap::snapshot::{
    Monitor, MonitorEvent, MonitorOptions, SnapSize, SnapshotOptions, VolumeGroup,
};
use lvsnap::units::Bytes;

const MIB: u64 = 1 << 20;

/// Origins per group: 4, or 2 when each benchmark only runs once (criterion's
/// test mode; each origin costs LVM commands in the VM).
fn origins_per_group() -> usize {
    if support::test_mode() { 2 } else { 4 }
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
    let n = origins_per_group();
    let origins: Vec<String> = (0..n).map(|i| format!("o{i}")).collect();
    let snaps: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
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
    g.bench_function(BenchmarkId::new("lvsnap create_group", n), |b| {
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
    g.bench_function(BenchmarkId::new("lvsnap create_snapshot x N", n), |b| {
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
    g.bench_function(BenchmarkId::new("lvcreate -s x N", n), |b| {
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

/// A monitor at its default one-second interval, threshold 50%: the time
/// from the write that takes a 4 MiB store to 56% to the Extended event
/// (the status read that sees it, then the extension's commit and table
/// swap). The phase of the write against the interval is whatever it is.
fn monitor_reaction(c: &mut Criterion) {
    require_dm();
    let vg = ScratchVg::new("lvsnapbenchm", 1, 256, "-s 1M");
    vg.lvm("lvcreate -q -y -L 16M -n o");
    let v = VolumeGroup::open(&vg.name).expect("open VG");
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(u128::from(4 * MIB))));
    let origin = std::path::PathBuf::from(format!("/dev/mapper/{}-o", vg.name));
    let mut m = Monitor::new(MonitorOptions {
        vgs: vec![vg.name.clone()],
        threshold: 50,
        percent: 20,
        ..MonitorOptions::default()
    })
    .expect("monitor");
    let mut g = c.benchmark_group("monitor");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.bench_function("reaction (threshold crossed -> extended)", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for i in 0..n {
                v.create_snapshot("o", "s", &opts).unwrap();
                // Let the monitor learn of it before the write.
                while m.next_event(Duration::from_millis(1100)).unwrap().is_some() {}
                let start = Instant::now();
                write_pattern(&origin, 0, (2 * MIB + 256 * 1024) as usize, i as u8);
                loop {
                    match m.next_event(Duration::from_secs(30)).unwrap() {
                        Some(MonitorEvent::Extended { .. }) => break,
                        Some(_) => {}
                        None => panic!("no extension within 30 s"),
                    }
                }
                total += start.elapsed();
                v.delete_snapshot("s").unwrap();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // 10 000 bootstrap resamples, as in benches/lvm2.rs: criterion's
    // 100 000 took minutes of analysis per benchmark under TCG.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(1))
        .nresamples(10_000);
    targets = group_create, monitor_reaction
}
criterion_main!(benches);
