//! Changed-block export against what a backup tool does without it: on a
//! 1 GiB origin with 1% of it written since a COW snapshot, lvsnap's
//! `changed_blocks` (reading the exception store) against reading the whole
//! origin and the snapshot and comparing them (what `cmp` of the two does),
//! both measured in the same run. Run with
//! `./vm/setup && cargo bench --bench changed`.
//!
//! Set-up (the VG, the snapshot, the writes) runs once, outside the clock;
//! before timing, both ways must find the same blocks. In criterion's test
//! mode the origin is 64 MiB, not 1 GiB.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

use common::lvm::ScratchVg;
use common::require_dm;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use lvsnap::snapshot::{SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::units::Bytes;

const MIB: u64 = 1 << 20;
const CHUNK: u64 = 4096;

/// The origin's size: 1 GiB, or 64 MiB when each benchmark only runs once.
fn origin_bytes() -> u64 {
    (if support::test_mode() { 64 } else { 1024 }) * MIB
}

/// 1% of the origin's chunks, spread pseudo-randomly.
fn chunks_to_write(origin: u64) -> BTreeSet<u64> {
    let total = origin / CHUNK;
    let want = (total / 100) as usize;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut set = BTreeSet::new();
    while set.len() < want {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        set.insert(x % total);
    }
    set
}

fn open_direct(path: &str) -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .expect("open for O_DIRECT reads")
}

/// Reads both devices whole (`len` bytes), 1 MiB at a time, and lists the
/// 4 KiB blocks that differ.
fn compare_whole(a: &File, b: &File, len: u64) -> BTreeSet<u64> {
    let mut ra = vec![0u8; (MIB + 4096) as usize];
    let mut rb = vec![0u8; (MIB + 4096) as usize];
    let (ia, ib) = (
        ra.as_ptr().align_offset(4096),
        rb.as_ptr().align_offset(4096),
    );
    let ba = &mut ra[ia..ia + MIB as usize];
    let bb = &mut rb[ib..ib + MIB as usize];
    let mut out = BTreeSet::new();
    for i in 0..len / MIB {
        a.read_exact_at(ba, i * MIB).expect("read origin");
        b.read_exact_at(bb, i * MIB).expect("read snapshot");
        for (j, (x, y)) in ba
            .chunks(CHUNK as usize)
            .zip(bb.chunks(CHUNK as usize))
            .enumerate()
        {
            if x != y {
                out.insert(i * MIB / CHUNK + j as u64);
            }
        }
    }
    out
}

fn changed(c: &mut Criterion) {
    require_dm();
    let origin_len = origin_bytes();
    // The origin, the 32 MiB store and room for the metadata.
    let vg = ScratchVg::new("benchchg", 1, origin_len / MIB + 76, "");
    vg.lvm(&format!("lvcreate -q -y -L {}M -n data", origin_len / MIB));
    let v = VolumeGroup::open("benchchg").expect("open vg");
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(u128::from(32 * MIB))));
    v.create_snapshot("data", "s0", &opts).expect("snapshot");
    let written = chunks_to_write(origin_len);
    {
        let f = OpenOptions::new()
            .write(true)
            .open("/dev/benchchg/data")
            .expect("open origin");
        let block = vec![0x5Au8; CHUNK as usize];
        for &ch in &written {
            f.write_all_at(&block, ch * CHUNK).expect("write");
        }
        f.sync_all().expect("fsync");
    }
    let origin = open_direct("/dev/benchchg/data");
    let snap = open_direct("/dev/benchchg/s0");
    // One timed pass of each, printed: on a loaded host criterion's full
    // run of the slow side can take very long.
    let t = std::time::Instant::now();
    let found = v.changed_blocks("s0", None).expect("changed_blocks");
    eprintln!("one pass: changed_blocks {:?}", t.elapsed());
    let listed: BTreeSet<u64> = found
        .ranges
        .iter()
        .flat_map(|r| r.byte_offset / CHUNK..(r.byte_offset + r.size_bytes) / CHUNK)
        .collect();
    assert_eq!(listed, written, "changed_blocks lists the written chunks");
    let t = std::time::Instant::now();
    let compared = compare_whole(&origin, &snap, origin_len);
    eprintln!(
        "one pass: read and compare the whole origin {:?}",
        t.elapsed()
    );
    assert_eq!(compared, written, "the comparison agrees");

    // Named for the measured run's 1 GiB, which filters and reports know.
    let mut g = c.benchmark_group("changed_1GiB_1pct");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(origin_len));
    g.bench_function("lvsnap_changed_blocks", |b| {
        b.iter(|| black_box(v.changed_blocks("s0", None).expect("changed_blocks")))
    });
    g.bench_function("read_and_compare_whole_origin", |b| {
        b.iter(|| black_box(compare_whole(&origin, &snap, origin_len)))
    });
    g.finish();
}

fn config() -> Criterion {
    // Reading 2 GiB takes seconds under TCG: few samples, short windows;
    // 10 000 bootstrap resamples, as in benches/lvm2.rs (criterion's
    // 100 000 took minutes of analysis per benchmark under TCG).
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = changed
}
criterion_main!(benches);
