//! Incremental backup with changed-block export: a full copy of snapshot
//! S0, then, after the volume changed and snapshot S1 was taken, only the
//! ranges lvsnap reports as changed between S0 and S1 are copied onto the
//! full copy, which then equals S1 byte for byte.
//!
//! Run it where the kernel has device-mapper and LVM2's tools are installed
//! (as root), or on any machine through the VM runner:
//! `./vm/setup && cargo run --example incremental_backup`.
//!
//! Setup and cleanup use LVM's own `pvcreate`, `vgcreate`, `lvcreate` and
//! `vgremove`; the PV is a loop device over a sparse file in the temp dir,
//! and the "backup" is a plain file there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lvsnap::snapshot::{SnapSize, SnapshotOptions, VolumeGroup};
use lvsnap::sys::LoopDevice;
use lvsnap::units::Bytes;

const MIB: u64 = 1 << 20;
const PV_SIZE: u64 = 128 * MIB;
const LV_SIZE: u64 = 32 * MIB;
const VG: &str = "lvsnapbackup";

/// A file in the temp dir, deleted on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(tag: &str, size: u64) -> io::Result<TempFile> {
    let path = std::env::temp_dir().join(format!("lvsnap-backup-{}-{tag}.img", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?
        .set_len(size)?;
    Ok(TempFile(path))
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

/// Removes the demo VG whatever state a failure left it in.
struct DemoVg;

impl Drop for DemoVg {
    fn drop(&mut self) {
        let _ = Command::new("vgremove").args(["-f", "-q", VG]).output();
    }
}

/// Writes `len` pseudo-random bytes (seeded) at `off` of `dev`, synced.
fn scribble(dev: &Path, off: u64, len: usize, seed: u64) -> io::Result<()> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let buf: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let f = OpenOptions::new().write(true).open(dev)?;
    f.write_all_at(&buf, off)?;
    f.sync_all()
}

/// A device opened for reads that bypass the page cache.
fn open_direct(dev: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
}

/// Copies `[off, off + len)` of `src` to the same place in `dst`, in
/// aligned pieces of at most 1 MiB (ranges are whole chunks: aligned).
fn copy_range(src: &File, dst: &File, off: u64, len: u64) -> io::Result<()> {
    let mut raw = vec![0u8; (MIB + 4096) as usize];
    let at = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[at..at + MIB as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(MIB) as usize;
        src.read_exact_at(&mut buf[..n], off + done)?;
        dst.write_all_at(&buf[..n], off + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Whether the first `len` bytes of `a` and `b` are equal.
fn same(a: &File, b: &File, len: u64) -> io::Result<bool> {
    let mut ra = vec![0u8; (MIB + 4096) as usize];
    let mut rb = vec![0u8; (MIB + 4096) as usize];
    let (ia, ib) = (
        ra.as_ptr().align_offset(4096),
        rb.as_ptr().align_offset(4096),
    );
    let (ba, bb) = (
        &mut ra[ia..ia + MIB as usize],
        &mut rb[ib..ib + MIB as usize],
    );
    for i in 0..len / MIB {
        a.read_exact_at(ba, i * MIB)?;
        b.read_exact_at(bb, i * MIB)?;
        if ba != bb {
            return Ok(false);
        }
    }
    Ok(true)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pv_file = temp_file("pv", PV_SIZE)?;
    let pv = LoopDevice::attach(&pv_file.0)?;
    let pv_path = pv.path().to_string_lossy().into_owned();
    lvm(&["pvcreate", "-q", &pv_path])?;
    lvm(&["vgcreate", "-q", VG, &pv_path])?;
    let _vg_guard = DemoVg;
    lvm(&["lvcreate", "-q", "-y", "-L", "32M", "-n", "data", VG])?;
    let origin = PathBuf::from(format!("/dev/{VG}/data"));
    scribble(&origin, 0, 8 * MIB as usize, 1)?;

    let vg = VolumeGroup::open(VG)?;
    let opts = SnapshotOptions::default().snapsize(SnapSize::Bytes(Bytes(u128::from(16 * MIB))));
    vg.create_snapshot("data", "s0", &opts)?;

    // Full backup of S0.
    let backup = temp_file("backup", LV_SIZE)?;
    let out = OpenOptions::new().write(true).open(&backup.0)?;
    let s0 = open_direct(Path::new(&format!("/dev/{VG}/s0")))?;
    copy_range(&s0, &out, 0, LV_SIZE)?;
    out.sync_all()?;
    println!("full backup of {VG}/s0: {} MiB", LV_SIZE / MIB);

    // The volume changes: small writes, one across a chunk boundary, a
    // large one; then S1.
    for (i, &(off, len)) in [
        (4096 * 3 + 10, 100),
        (MIB - 50, 100),
        (5 * MIB, 2 * MIB as usize),
        (20 * MIB + 1, 1),
    ]
    .iter()
    .enumerate()
    {
        scribble(&origin, off, len, 100 + i as u64)?;
    }
    vg.create_snapshot("data", "s1", &opts)?;
    // Written after S1: must not matter for the S0 -> S1 increment.
    scribble(&origin, 0, MIB as usize, 999)?;

    let t = Instant::now();
    let changed = vg.changed_blocks("s1", Some("s0"))?;
    let took = t.elapsed();
    println!(
        "changed between s0 and s1: {} range(s), {} bytes in {}-byte blocks (found in {took:?})",
        changed.ranges.len(),
        changed.total_bytes(),
        changed.block_size
    );
    let s1 = open_direct(Path::new(&format!("/dev/{VG}/s1")))?;
    for r in &changed.ranges {
        println!("  copy {:>10} +{}", r.byte_offset, r.size_bytes);
        copy_range(&s1, &out, r.byte_offset, r.size_bytes)?;
    }
    out.sync_all()?;

    let check = File::open(&backup.0)?;
    if !same(&check, &s1, LV_SIZE)? {
        return Err("the incremental backup differs from s1".into());
    }
    println!(
        "backup equals {VG}/s1 byte for byte after copying {} of {} bytes ({:.2}%)",
        changed.total_bytes(),
        LV_SIZE,
        100.0 * changed.total_bytes() as f64 / LV_SIZE as f64
    );
    drop(vg);
    Ok(())
}
