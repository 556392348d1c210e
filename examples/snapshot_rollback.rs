//! Snapshot, overwrite, roll back by merging, on a real LVM volume group:
//! lvsnap takes the snapshot and rolls the volume back to it, with no `lvm`
//! command involved in either.
//!
//! Run it where the kernel has device-mapper and LVM2's tools are installed
//! (as root), or on any machine through the VM runner:
//! `./vm/setup && cargo run --example snapshot_rollback`.
//!
//! Setup and cleanup use LVM's own `pvcreate`, `vgcreate`, `lvcreate` and
//! `vgremove` (lvsnap does not create volume groups or plain volumes); the
//! PV is a loop device ([`lvsnap::sys::LoopDevice`]) over a sparse file in
//! the temp dir.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lvsnap::snapshot::{RollbackState, SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::sys::LoopDevice;
use lvsnap::units::Bytes;

const MIB: u64 = 1 << 20;
const PV_SIZE: u64 = 128 * MIB;
const COW_SIZE: u64 = 16 * MIB;
const VG: &str = "lvsnapdemo";
const TOUCHED: u64 = 8 * MIB;

/// A loop device over a sparse file; detached and deleted on drop.
struct Loop {
    dev: LoopDevice,
    file: PathBuf,
}

impl Loop {
    fn new(tag: &str, size: u64) -> io::Result<Loop> {
        let file =
            std::env::temp_dir().join(format!("lvsnap-example-{}-{tag}.img", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)?
            .set_len(size)?;
        match LoopDevice::attach(&file) {
            Ok(dev) => Ok(Loop { dev, file }),
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                Err(e)
            }
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Runs an LVM command for the demo's setup or cleanup.
fn lvm(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Removes the demo VG (and everything in it) whatever state a failure
/// left it in.
struct DemoVg;

impl Drop for DemoVg {
    fn drop(&mut self) {
        let _ = Command::new("vgremove").args(["-f", "-q", VG]).output();
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
    let pv = Loop::new("pv", PV_SIZE)?;
    let pv_path = pv.dev.path().to_string_lossy().into_owned();
    println!("PV on {pv_path}");
    // Setup with LVM's tools: lvsnap does not create VGs or plain LVs.
    lvm(&["pvcreate", "-q", &pv_path])?;
    lvm(&["vgcreate", "-q", VG, &pv_path])?;
    let _vg_guard = DemoVg;
    lvm(&["lvcreate", "-q", "-y", "-L", "64M", "-n", "data", VG])?;
    let origin = PathBuf::from(format!("/dev/{VG}/data"));

    write(&origin, 1)?;
    let before = checksum(&origin)?;
    println!("{VG}/data written: checksum {before:016x}");

    let vg = VolumeGroup::open(VG)?;
    let t = Instant::now();
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(u128::from(COW_SIZE))));
    let made = vg.create_snapshot("data", "snapcontent-1", &opts)?;
    println!(
        "snapshot {VG}/{} taken in {:?} ({} of COW)",
        made.status.name,
        t.elapsed(),
        made.status.capacity
    );

    write(&origin, 2)?;
    let overwritten = checksum(&origin)?;
    let in_snapshot = checksum(&PathBuf::from(format!("/dev/{VG}/snapcontent-1")))?;
    let st = vg.snapshot_status("snapcontent-1")?;
    println!(
        "origin overwritten: checksum {overwritten:016x}; snapshot still {in_snapshot:016x}, COW {:.2}% full",
        st.data_percent.unwrap_or_default()
    );

    let t = Instant::now();
    let mut rb = vg.rollback("snapcontent-1")?;
    println!("rollback: {}", rb.state());
    let end = rb.wait_with(|st| println!("  {st}"))?;
    if end != RollbackState::Completed {
        return Err(format!("rollback ended {end}").into());
    }
    println!("rolled back by merging in {:?}", t.elapsed());

    let after = checksum(&origin)?;
    println!("snapshot-time checksum {before:016x}");
    println!("origin after rollback  {after:016x}");
    if vg.snapshot_status("snapcontent-1").is_ok() {
        return Err("the merged snapshot is still there".into());
    }
    if after != before || in_snapshot != before || overwritten == before {
        return Err("the rollback did not restore the snapshot-time data".into());
    }
    println!("rollback verified: the origin holds the snapshot-time data again");
    Ok(())
}
