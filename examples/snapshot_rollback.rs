//! Snapshot, overwrite, roll back by merging: lvsnap's device-mapper layer on
//! two loop devices, no LVM involved.
//!
//! Run it where the kernel has device-mapper (as root), or on any machine
//! through the VM runner: `./vm/setup && cargo run --example snapshot_rollback`.
//!
//! Loop devices are made with the loop ioctls, so nothing from util-linux
//! is needed at run time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devicemapper::Device;
use lvsnap::dm::{
    ChunkSize, CowSnapshot, CowSnapshotSpec, DmControl, TableLine, check_dm_name, node_path,
};
use lvsnap::units::Sectors;

const MIB: u64 = 1 << 20;
const DATA_SIZE: u64 = 64 * MIB;
const COW_SIZE: u64 = 16 * MIB;
const TOUCHED: u64 = 8 * MIB;

// From <linux/loop.h>.
const LOOP_SET_FD: u64 = 0x4C00;
const LOOP_CLR_FD: u64 = 0x4C01;
const LOOP_CTL_GET_FREE: u64 = 0x4C82;

/// A loop device over a sparse file; detached and deleted on drop.
struct Loop {
    dev: PathBuf,
    file: PathBuf,
}

impl Loop {
    fn new(tag: &str, size: u64) -> io::Result<Loop> {
        let file =
            std::env::temp_dir().join(format!("lvsnap-example-{}-{tag}.img", std::process::id()));
        let backing = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&file)?;
        let mut me = Loop {
            dev: PathBuf::new(),
            file,
        };
        backing.set_len(size)?;
        let ctl = File::open("/dev/loop-control")?;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns an index.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let loopdev = OpenOptions::new().read(true).write(true).open(&dev)?;
        // SAFETY: LOOP_SET_FD takes the backing file's descriptor by value.
        if unsafe { libc::ioctl(loopdev.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        me.dev = dev;
        Ok(me)
    }

    fn device(&self) -> io::Result<Device> {
        let rdev = std::fs::metadata(&self.dev)?.rdev();
        Ok(Device {
            major: libc::major(rdev),
            minor: libc::minor(rdev),
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Ok(f) = File::open(&self.dev) {
            // SAFETY: LOOP_CLR_FD takes no argument.
            unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _) };
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Removes the demo's devices, whatever state a failure left them in.
struct Devices(Vec<String>);

impl Drop for Devices {
    fn drop(&mut self) {
        let Ok(dm) = DmControl::open() else { return };
        for n in &self.0 {
            if let Ok(n) = check_dm_name(n) {
                if dm.exists(&n).unwrap_or(false) {
                    let _ = dm.resume(&n);
                    let _ = dm.remove(&n);
                }
            }
        }
    }
}

fn write(dev: &Path, seed: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(dev)?;
    // A cheap pseudo-random stream, different for each seed.
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let buf: Vec<u8> = (0..TOUCHED)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all_at(&buf, 0)?;
    f.sync_all()
}

fn checksum(dev: &Path) -> io::Result<u64> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)?;
    // O_DIRECT wants an aligned buffer.
    let mut raw = vec![0u8; (MIB + 4096) as usize];
    let off = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[off..off + MIB as usize];
    let mut h = 0xcbf29ce484222325u64; // FNV-1a
    for i in 0..TOUCHED / MIB {
        f.read_exact_at(buf, i * MIB)?;
        for &b in buf.iter() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
    }
    Ok(h)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dm = DmControl::open()?;
    let data = Loop::new("data", DATA_SIZE)?;
    let cow = Loop::new("cow", COW_SIZE)?;
    let origin = check_dm_name("lvsnap-demo")?;
    let snap = check_dm_name("lvsnap-demo-snap")?;
    let _devices = Devices(
        [
            "lvsnap-demo-snap",
            "lvsnap-demo-snap-cow",
            "lvsnap-demo",
            "lvsnap-demo-real",
        ]
        .map(String::from)
        .to_vec(),
    );
    println!(
        "data on {}, COW store on {}",
        data.dev.display(),
        cow.dev.display()
    );

    let whole = |d: Device, size: u64| {
        [TableLine::linear(
            Sectors(0),
            Sectors(size / 512),
            d,
            Sectors(0),
        )]
    };
    dm.create(&origin, None, &whole(data.device()?, DATA_SIZE), false)?;
    let origin_node = node_path(&origin);
    write(&origin_node, 1)?;
    let before = checksum(&origin_node)?;
    println!(
        "origin {} written: checksum {before:016x}",
        origin_node.display()
    );

    let t = Instant::now();
    let cow_table = whole(cow.device()?, COW_SIZE);
    let s = CowSnapshot::create(
        &dm,
        &CowSnapshotSpec {
            origin: &origin,
            snapshot: &snap,
            snapshot_uuid: None,
            cow: &cow_table,
            chunk: ChunkSize::default(),
            read_only: true,
        },
    )?;
    println!(
        "snapshot {} taken in {:?}",
        node_path(&snap).display(),
        t.elapsed()
    );

    write(&origin_node, 2)?;
    let overwritten = checksum(&origin_node)?;
    let in_snapshot = checksum(&node_path(&snap))?;
    println!(
        "origin overwritten: checksum {overwritten:016x}; snapshot still {in_snapshot:016x}, COW {}% full",
        s.status(&dm)?
            .data_percent()
            .map(|p| p.to_string())
            .unwrap_or_default()
    );

    let t = Instant::now();
    let merge = s.start_merge(&dm)?;
    merge
        .wait(
            &dm,
            Duration::from_secs(600),
            Duration::from_millis(50),
            |p| {
                println!(
                    "  merging: {}% done, {} sectors to go",
                    p.percent, *p.remaining
                )
            },
        )?
        .ok_or("merge did not finish in 10 minutes")?;
    merge.finish(&dm)?;
    println!("rolled back by merging in {:?}", t.elapsed());

    let after = checksum(&origin_node)?;
    println!("snapshot-time checksum {before:016x}");
    println!("origin after rollback  {after:016x}");
    dm.remove(&origin)?;
    if after != before || in_snapshot != before || overwritten == before {
        return Err("the rollback did not restore the snapshot-time data".into());
    }
    println!("rollback verified: the origin holds the snapshot-time data again");
    Ok(())
}
