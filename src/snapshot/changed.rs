//! Changed-block export for incremental backup: which byte ranges of an
//! origin changed since a snapshot, or between two snapshots, read natively
//! from COW exception stores and thin-pool metadata (CSI SnapshotMetadata's
//! BlockMetadata).
//!
//! # The guarantee: never under-report
//!
//! Every byte that differs is inside a reported range. Ranges are whole
//! blocks (COW chunks, thin data blocks), so a range may hold bytes that did
//! not change; the result is exact at block granularity.
//!
//! - COW, no base: the chunks in SNAP's exception store, the origin chunks
//!   written since SNAP was taken. The kernel completes an origin write only
//!   after the exception it caused is committed to the store, so every
//!   write completed before the call is covered (read without suspending
//!   anything: see [`crate::dm::exception_store`]). A write still in flight
//!   may or may not be; it could as well complete after the call returns.
//!   ("Completed" is the device's completion: a buffered write once
//!   flushed, by `fsync` or otherwise.)
//! - COW with a base SNAP0 (older, same origin): only chunks SNAP0 saved can
//!   differ (the others were not written since SNAP0, so not between the
//!   two); each is compared, block by block, with SNAP's view of it (read
//!   through SNAP's device: SNAP's saved copy if it saved one, else the
//!   origin, which then has not been written since SNAP). So the result
//!   is exact at block level, whatever was written after SNAP, and works
//!   when the chunk sizes differ: the block is then the smaller one.
//! - Thin: the blocks whose mappings differ between SNAP and SNAP0 (or
//!   SNAP's origin when there is no base), read under a metadata snapshot
//!   that the pool commits when taking it, so it holds every write completed
//!   before the call. A block shared (same data block) is unchanged.
//!
//! Refused: an invalid COW snapshot (its store stopped recording: changes
//! since are unknown), a merging one (its changes are being rolled back
//! into the origin, so "changed since" is dissolving: run `changed` before
//! the rollback or after it completes against a new snapshot), and inactive
//! ones (the store or pool metadata is read through the kernel's devices).

use std::collections::HashSet;

use super::Error as SnapError;
use super::vg::{Session, VolumeGroup};
use crate::activate::{self, Layer, SnapshotLive, ThinPool, UnreadableStatus};
use crate::dm::exception_store::{self, Exception};
use crate::dm::thin_metadata::{BlockRun, ThinMetadata};
use crate::dm::{self, DirectReader, DmControl, ReadAt, ThinPoolMessage};
use crate::error::Result;
use crate::lvm::vg::{CowSnapshot, Lv};
use crate::units::{SectorBytes, Sectors};
use crate::{Error, ErrorKind};

/// One changed byte range (CSI BlockMetadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangedRange {
    /// Where it starts, in bytes from the start of the volume.
    pub byte_offset: u64,
    /// Its length in bytes (a multiple of the block size, but at the
    /// volume's end).
    pub size_bytes: u64,
}

/// What [`VolumeGroup::changed_blocks`] returns: sorted, disjoint,
/// non-adjacent ranges of whole blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedBlocks {
    /// The granularity in bytes: a COW chunk, or a thin pool's data block.
    pub block_size: u64,
    /// The ranges.
    pub ranges: Vec<ChangedRange>,
}

impl ChangedBlocks {
    /// The bytes the ranges cover.
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.size_bytes).sum()
    }

    /// Whether `[offset, offset + len)` lies wholly inside the ranges.
    pub fn covers(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        let mut at = offset;
        for r in &self.ranges {
            let r_end = r.byte_offset.saturating_add(r.size_bytes);
            if r_end <= at {
                continue;
            }
            if r.byte_offset > at {
                return false;
            }
            at = r_end;
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// From sorted, distinct block numbers of `block_size` bytes, clipped to
    /// a volume of `limit` bytes.
    fn from_blocks(block_size: u64, blocks: impl IntoIterator<Item = u64>, limit: u64) -> Self {
        let runs = blocks.into_iter().map(|b| BlockRun { start: b, len: 1 });
        ChangedBlocks::from_runs(block_size, runs, limit)
    }

    /// From sorted, disjoint runs of blocks, merged and clipped to `limit`.
    fn from_runs(block_size: u64, runs: impl IntoIterator<Item = BlockRun>, limit: u64) -> Self {
        let mut ranges: Vec<ChangedRange> = Vec::new();
        for r in runs {
            let start = r.start.saturating_mul(block_size);
            let end = r
                .start
                .saturating_add(r.len)
                .saturating_mul(block_size)
                .min(limit);
            if start >= end {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.byte_offset + last.size_bytes == start => {
                    last.size_bytes = end - last.byte_offset;
                }
                _ => ranges.push(ChangedRange {
                    byte_offset: start,
                    size_bytes: end - start,
                }),
            }
        }
        ChangedBlocks { block_size, ranges }
    }
}

/// An exception store read from an active snapshot's store layer.
struct OpenStore {
    reader: DirectReader,
    chunk_bytes: u64,
    exceptions: Vec<Exception>,
}

impl OpenStore {
    fn read(&self, chunk: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let off = chunk
            .checked_mul(self.chunk_bytes)
            .and_then(|o| o.checked_add(within))
            .ok_or_else(|| SnapError::InvalidArgument("chunk offset overflows".into()))?;
        self.reader
            .read_exact_at(buf, off)
            .map_err(|e| Error::io(format!("read {}", self.reader.path().display()), e))
    }
}

/// A pool metadata snapshot, released on drop (even on error).
struct HeldMetadata<'a> {
    dm: &'a DmControl,
    pool: &'a ThinPool,
    held: bool,
}

impl HeldMetadata<'_> {
    fn release(mut self) -> Result<()> {
        self.held = false;
        dm_release(self.dm, self.pool)
    }
}

impl Drop for HeldMetadata<'_> {
    fn drop(&mut self) {
        if self.held {
            if let Err(e) = dm_release(self.dm, self.pool) {
                let pool = self.pool.dm_name();
                log::error!("releasing the metadata snapshot of {pool}: {e}");
            }
        }
    }
}

fn dm_release(dm: &DmControl, pool: &ThinPool) -> Result<()> {
    pool.send(dm, &ThinPoolMessage::ReleaseMetadataSnap)?;
    Ok(())
}

impl VolumeGroup {
    /// The byte ranges that changed: without `base`, the ranges of
    /// `snapshot`'s origin written since `snapshot` was taken; with `base`
    /// (an older snapshot of the same origin, or a thin LV of the same
    /// pool), the ranges whose contents differ between `base` and
    /// `snapshot`. Never misses a changed byte (see the module docs for the
    /// guarantee and what is refused).
    pub fn changed_blocks(&self, snapshot: &str, base: Option<&str>) -> Result<ChangedBlocks> {
        let s = self.session()?;
        let vg = s.md.vg();
        if let Some(snap) = vg.cow_snapshot(snapshot) {
            return self.cow_changed(&s, &snap, base);
        }
        match vg.lv(snapshot) {
            Some(lv) if lv.thin().is_some() => self.thin_changed(&s, lv, base),
            Some(_) => Err(SnapError::not_a_snapshot(vg, snapshot).into()),
            None => Err(SnapError::NotFound(format!("snapshot {}/{snapshot}", self.name())).into()),
        }
    }

    fn cow_changed(
        &self,
        s: &Session,
        snap: &CowSnapshot,
        base: Option<&str>,
    ) -> Result<ChangedBlocks> {
        let vg = s.md.vg();
        let origin = vg
            .lv(&snap.origin)
            .ok_or_else(|| SnapError::NotFound(format!("origin {}", snap.origin)))?;
        let limit = lv_bytes(s, origin)?;
        let dm = DmControl::shared()?;
        let Some(base) = base else {
            let st = self.open_store(&dm, snap, limit)?;
            let mut olds: Vec<u64> = st.exceptions.iter().map(|e| e.old_chunk).collect();
            olds.sort_unstable();
            olds.dedup();
            self.still_valid(&dm, snap)?;
            return Ok(ChangedBlocks::from_blocks(st.chunk_bytes, olds, limit));
        };
        let full0 = format!("{}/{base}", self.name());
        let snap0 = vg.cow_snapshot(base).ok_or_else(|| -> Error {
            if vg.lv(base).is_some() {
                SnapError::InvalidArgument(format!(
                    "base {full0} is not a COW snapshot of {}",
                    snap.origin
                ))
                .into()
            } else {
                SnapError::NotFound(format!("snapshot {full0}")).into()
            }
        })?;
        if snap0.origin != snap.origin {
            return Err(SnapError::InvalidArgument(format!(
                "base {full0} is a snapshot of {}, {}/{} of {}",
                snap0.origin,
                self.name(),
                snap.name,
                snap.origin
            ))
            .into());
        }
        if snap0.name == snap.name {
            return Ok(ChangedBlocks {
                block_size: chunk_bytes(snap.chunk_size)?,
                ranges: Vec::new(),
            });
        }
        let t = |n: &str| vg.lv(n).and_then(|l| l.creation_time);
        if let (Some(t0), Some(t1)) = (t(&snap0.name), t(&snap.name)) {
            if t0 > t1 {
                return Err(SnapError::InvalidArgument(format!(
                    "base {full0} was taken after {}/{}: give the older snapshot as the base",
                    self.name(),
                    snap.name
                ))
                .into());
            }
        }
        // The newer store first: an exception it has, the older one has
        // too (committed at the same origin write, at most a moment later).
        let new = self.open_store(&dm, snap, limit)?;
        let mut old = self.open_store(&dm, &snap0, limit)?;
        if let Some(c) = not_in_older(&new, &old) {
            std::thread::sleep(std::time::Duration::from_millis(200));
            old = self.open_store(&dm, &snap0, limit)?;
            if not_in_older(&new, &old) == Some(c) {
                return Err(SnapError::InvalidArgument(format!(
                    "base {full0} is not older than {}/{}: that saved origin chunk {c}, {full0} did not",
                    self.name(),
                    snap.name
                ))
                .into());
            }
        }
        let view = self.snapshot_view(&dm, snap)?;
        let g = old.chunk_bytes.min(new.chunk_bytes);
        let blocks = compare_stores(&old, &view, g, limit)?;
        self.still_valid(&dm, snap)?;
        self.still_valid(&dm, &snap0)?;
        Ok(ChangedBlocks::from_blocks(g, blocks, limit))
    }

    /// Opens and reads an active, valid, non-merging snapshot's store;
    /// checks every origin chunk is inside the origin (`limit` bytes).
    fn open_store(&self, dm: &DmControl, snap: &CowSnapshot, limit: u64) -> Result<OpenStore> {
        let full = format!("{}/{}", self.name(), snap.name);
        if snap.merging {
            return Err(SnapError::Busy(format!(
                "snapshot {full} is merging into {}: its changes are being rolled back, \
                 so there is no change set to export",
                snap.origin
            ))
            .into());
        }
        self.still_valid(dm, snap)?;
        let cow = self.dm_name(&snap.name, Some(Layer::Cow))?;
        let info = dm.info(&cow)?;
        let path = dm::ensure_node(&cow, info.device)?;
        let reader = DirectReader::open(&path)?;
        let store = exception_store::read_exception_store(&reader)?;
        let chunk_bytes = match store.header {
            None => chunk_bytes(snap.chunk_size)?,
            Some(h) if !h.valid => return Err(invalid(&full)),
            Some(h) => chunk_bytes(h.chunk_size)?,
        };
        if chunk_bytes == 0 {
            return Err(SnapError::InvalidArgument(format!("{full} has chunk size 0")).into());
        }
        for e in &store.exceptions {
            if e.old_chunk >= limit.div_ceil(chunk_bytes) {
                return Err(dm::Error::state(
                    &cow,
                    ErrorKind::Corrupt,
                    format!(
                        "exception for origin chunk {} past the origin's end",
                        e.old_chunk
                    ),
                )
                .into());
            }
        }
        Ok(OpenStore {
            reader,
            chunk_bytes,
            exceptions: store.exceptions,
        })
    }

    /// The snapshot's device, opened to read its frozen view.
    fn snapshot_view(&self, dm: &DmControl, snap: &CowSnapshot) -> Result<DirectReader> {
        let dev = self.dm_name(&snap.name, None)?;
        let path = dm::ensure_node(&dev, dm.info(&dev)?.device)?;
        Ok(DirectReader::open(&path)?)
    }

    /// Refuses a snapshot that is not active or that the kernel invalidated.
    fn still_valid(&self, dm: &DmControl, snap: &CowSnapshot) -> Result<()> {
        let full = format!("{}/{}", self.name(), snap.name);
        let dev = self.dm_name(&snap.name, None)?;
        match activate::snapshot_live(dm, &dev)? {
            SnapshotLive::Absent => Err(SnapError::Unsupported(format!(
                "snapshot {full} is not active: activate its origin (lvchange -ay) first"
            ))
            .into()),
            SnapshotLive::Snapshot(dm::SnapshotTargetStatus::Active(_)) => Ok(()),
            SnapshotLive::Snapshot(_) => Err(invalid(&full)),
            SnapshotLive::Unreadable(UnreadableStatus(params)) => Err(dm::Error::state(
                &dev,
                ErrorKind::Corrupt,
                format!("snapshot status {params:?} does not parse"),
            )
            .into()),
            SnapshotLive::Other(ty) => Err(SnapError::Busy(format!(
                "snapshot {full} has a {ty} target, not a snapshot (merging?)"
            ))
            .into()),
        }
    }

    fn thin_changed(&self, s: &Session, lv: &Lv, base: Option<&str>) -> Result<ChangedBlocks> {
        let vg = s.md.vg();
        let full = format!("{}/{}", self.name(), lv.name);
        let Some((pool, id_b)) = lv.thin() else {
            return Err(SnapError::InvalidArgument(format!("{full} is not thin")).into());
        };
        let other = match base {
            Some(b) => b.to_owned(),
            None => lv.thin_origin().map(str::to_owned).ok_or_else(|| {
                SnapError::InvalidArgument(format!(
                    "{full} is not a thin snapshot (no origin): give a base"
                ))
            })?,
        };
        let other_lv = vg
            .lv(&other)
            .ok_or_else(|| SnapError::NotFound(format!("thin LV {}/{other}", self.name())))?;
        let id_a = match other_lv.thin() {
            Some((p, id)) if p == pool => id,
            _ => {
                return Err(SnapError::InvalidArgument(format!(
                    "{}/{other} is not a thin LV of pool {pool}, as {full} is",
                    self.name()
                ))
                .into());
            }
        };
        let limit = lv_bytes(s, lv)?.max(lv_bytes(s, other_lv)?);
        let dm = DmControl::shared()?;
        let tpool = ThinPool::new(self.name(), pool)?;
        let tmeta = activate::pool_metadata_name(s.md.vg(), pool)?;
        if !tpool.is_active(&dm)? || !dm.exists(&tmeta)? {
            return Err(SnapError::Unsupported(format!(
                "thin pool {}/{pool} is not active: activate it (lvchange -ay) first",
                self.name()
            ))
            .into());
        }
        if let devicemapper::ThinPoolStatus::Fail = tpool.status(&dm)? {
            return Err(
                SnapError::Busy(format!("thin pool {}/{pool} has failed", self.name())).into(),
            );
        }
        let path = dm::ensure_node(&tmeta, dm.info(&tmeta)?.device)?;
        let reader = DirectReader::open(&path)?;
        let reserve = ThinPoolMessage::ReserveMetadataSnap;
        let release = ThinPoolMessage::ReleaseMetadataSnap;
        tpool.send(&dm, &reserve).map_err(|e| -> Error {
            if e.kind() == ErrorKind::Busy {
                SnapError::Busy(format!(
                    "thin pool {}/{pool} already holds a metadata snapshot (another \
                     thin_delta, thin_ls or changed running, or one left behind: \
                     `dmsetup message {} 0 {release}` releases it)",
                    self.name(),
                    tpool.dm_name()
                ))
                .into()
            } else {
                e.into()
            }
        })?;
        let held = HeldMetadata {
            dm: &dm,
            pool: &tpool,
            held: true,
        };
        let runs = thin_delta(&reader, id_a.into(), id_b.into())?;
        let (block, runs) = runs;
        held.release()?;
        Ok(ChangedBlocks::from_runs(block, runs, limit))
    }
}

/// The delta of two thin devices under the held metadata snapshot: the
/// data block size in bytes and the differing block runs.
fn thin_delta<R: ReadAt + ?Sized>(reader: &R, a: u64, b: u64) -> Result<(u64, Vec<BlockRun>)> {
    // The live superblock may be torn by a commit running as we read it.
    let mut tries = 0;
    let md = loop {
        match ThinMetadata::open_held(reader) {
            Ok(md) => break md,
            Err(e) if e.kind() == ErrorKind::Corrupt && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    for id in [a, b] {
        if !md.has_device(id)? {
            return Err(
                SnapError::NotFound(format!("thin device {id} in the pool's metadata")).into(),
            );
        }
    }
    let block = chunk_bytes(md.superblock().data_block_size)?;
    Ok((block, md.delta(a, b)?))
}

/// An origin chunk of the newer store no exception of the older one
/// overlaps (there should be none if `old` is older).
fn not_in_older(new: &OpenStore, old: &OpenStore) -> Option<u64> {
    let olds: HashSet<u64> = old.exceptions.iter().map(|e| e.old_chunk).collect();
    let (c0, c1) = (old.chunk_bytes, new.chunk_bytes);
    new.exceptions
        .iter()
        .find(|e| {
            let start = e.old_chunk.saturating_mul(c1);
            let first = start / c0;
            let last = (start.saturating_add(c1) - 1) / c0;
            !(first..=last).any(|c| olds.contains(&c))
        })
        .map(|e| e.old_chunk)
}

/// The blocks of `g` bytes that differ between the older snapshot's saved
/// data (its exceptions) and the newer snapshot's view (`view`, its device:
/// the origin as it was when it was taken, whatever is written since),
/// sorted. Blocks the older snapshot did not save are the same in both.
fn compare_stores(old: &OpenStore, view: &DirectReader, g: u64, limit: u64) -> Result<Vec<u64>> {
    /// Chunks read at once where both the origin chunks and their saved
    /// copies are consecutive (the kernel allocates copies in order).
    const RUN_BYTES: u64 = 1 << 20;
    let c0 = old.chunk_bytes;
    let mut ex: Vec<Exception> = old.exceptions.clone();
    ex.sort_unstable();
    ex.dedup_by_key(|e| e.old_chunk);
    let max_run = (RUN_BYTES / c0).max(1);
    let cap = usize::try_from(max_run * c0)
        .map_err(|_| SnapError::InvalidArgument("chunk size".into()))?;
    let (mut a, mut b) = (vec![0u8; cap], vec![0u8; cap]);
    let gs = usize::try_from(g).map_err(|_| SnapError::InvalidArgument("chunk size".into()))?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < ex.len() {
        let first = ex[i];
        let mut n = 1u64;
        while (i as u64 + n) < ex.len() as u64 && n < max_run {
            let e = ex[i + n as usize];
            if e.old_chunk != first.old_chunk + n || e.new_chunk != first.new_chunk + n {
                break;
            }
            n += 1;
        }
        i += n as usize;
        let start = first.old_chunk.saturating_mul(c0);
        // The origin's last chunk may be partial.
        let len = usize::try_from((n * c0).min(limit.saturating_sub(start))).unwrap_or(cap);
        old.read(first.new_chunk, 0, &mut a[..len])?;
        view.read_exact_at(&mut b[..len], start)
            .map_err(|err| Error::io(format!("read {}", view.path().display()), err))?;
        for (k, (x, y)) in a[..len].chunks(gs).zip(b[..len].chunks(gs)).enumerate() {
            if x != y {
                out.push(start / g + k as u64);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn invalid(full: &str) -> Error {
    SnapError::InvalidArgument(format!(
        "snapshot {full} is invalid (its COW store overflowed): the kernel stopped \
         recording its changes, so they cannot be exported"
    ))
    .into()
}

/// A chunk or block size in bytes (the unit of the ranges reported).
fn chunk_bytes(c: Sectors) -> Result<u64> {
    c.bytes_u64().ok_or_else(|| {
        SnapError::InvalidArgument(format!("chunk size of {} sectors is too large", *c)).into()
    })
}

fn lv_bytes(s: &Session, lv: &Lv) -> Result<u64> {
    lv.extents()
        .sectors(s.md.vg().extent_size)
        .and_then(SectorBytes::bytes_u64)
        .ok_or_else(|| SnapError::InvalidArgument(format!("LV {} is too large", lv.name)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_clip() {
        let c = ChangedBlocks::from_blocks(4096, [0, 1, 2, 5, 9], 9 * 4096 + 100);
        assert_eq!(
            c.ranges,
            vec![
                ChangedRange {
                    byte_offset: 0,
                    size_bytes: 3 * 4096
                },
                ChangedRange {
                    byte_offset: 5 * 4096,
                    size_bytes: 4096
                },
                ChangedRange {
                    byte_offset: 9 * 4096,
                    size_bytes: 100
                },
            ]
        );
        assert!(c.covers(0, 3 * 4096));
        assert!(c.covers(100, 200));
        assert!(!c.covers(3 * 4096 - 1, 2));
        assert!(c.covers(5 * 4096, 4096));
        assert!(!c.covers(9 * 4096, 101));
        assert_eq!(c.total_bytes(), 4 * 4096 + 100);
        let r = ChangedBlocks::from_runs(
            65536,
            [BlockRun { start: 1, len: 2 }, BlockRun { start: 3, len: 1 }],
            u64::MAX,
        );
        assert_eq!(
            r.ranges,
            vec![ChangedRange {
                byte_offset: 65536,
                size_bytes: 3 * 65536
            }]
        );
    }
}
