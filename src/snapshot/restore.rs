//! Restoring a snapshot into a new volume: a full copy from a COW snapshot,
//! a thin snapshot of a thin one.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::Error as SnapError;
use super::vg::{Session, VolumeGroup};
use crate::activate;
use crate::blockio;
use crate::dm::exception_store;
use crate::dm::{self, DirectReader, DmControl, ReadAt};
use crate::error::{Error, Result};
use crate::lvm::names::validate_lv_name;
use crate::lvm::vg::Creation;
use crate::units::{Bytes, Extents, SectorBytes};

/// The LV tag a COW restore's target carries until its copy is complete
/// and synced: such an LV is never shown Ready, a re-run of the restore
/// starts over, `delete` removes it, and the next lvsnap operation on the
/// VG removes it if no restore is still copying into it.
pub const RESTORE_INCOMPLETE_TAG: &str = "lvsnap_restore_incomplete";

/// Default copy buffer: 4 MiB, one LVM extent.
const DEFAULT_BUFFER: usize = 4 << 20;

/// How to restore. The default makes the new volume as large as the
/// snapshot (a COW snapshot's origin size, a thin snapshot's size).
///
/// ```
/// use lvsnap::snapshot::RestoreOptions;
/// use lvsnap::units::Bytes;
/// let o = RestoreOptions::default().size(Bytes(1 << 30));
/// assert_eq!(o.requested_size(), Some(Bytes(1 << 30)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    size: Option<Bytes>,
    buffer: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            size: None,
            buffer: DEFAULT_BUFFER,
        }
    }
}

impl RestoreOptions {
    /// The new volume's size (rounded up to whole extents); it may not be
    /// below the snapshot's size.
    pub fn size(mut self, size: Bytes) -> Self {
        self.size = Some(size);
        self
    }

    /// The copy buffer, rounded up to 4 KiB (default 4 MiB).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(blockio::ALIGN).div_ceil(blockio::ALIGN) * blockio::ALIGN;
        self
    }

    /// The requested size, if any.
    pub fn requested_size(&self) -> Option<Bytes> {
        self.size
    }
}

/// How far a restore has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreProgress {
    /// Bytes copied so far (for a thin restore: all, at once).
    pub copied: Bytes,
    /// Bytes to copy: the snapshot's size.
    pub total: Bytes,
    /// `copied / total` in percent; 100 at the end.
    pub percent: f64,
}

/// What [`VolumeGroup::restore`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The new LV.
    pub name: String,
    /// Its size.
    pub size: Bytes,
    /// A thin LV (thin snapshot of the thin snapshot) rather than a copy.
    pub thin: bool,
}

impl VolumeGroup {
    /// Restores snapshot `snapshot` into a new, active LV `new_lv`, as
    /// HwameiStor does, and returns when done: from a COW snapshot a linear
    /// LV filled by a copy (O_DIRECT, `opts` buffer, fsync at the end; the
    /// part beyond the snapshot's size zeroed with BLKZEROOUT, so no bytes
    /// of an earlier LV show through); from a thin snapshot, a thin snapshot
    /// of it of the requested size (which reads zeros past the snapshot).
    /// `on_progress` is called after each buffer copied, and with 100% at
    /// the end. An inactive COW snapshot's origin is activated for the copy
    /// (with its snapshots, as `lvchange -ay` does) and deactivated after.
    ///
    /// Refused before anything changes: a size below the snapshot's, a
    /// taken name, an invalid or merging snapshot, not enough space. A
    /// failure midway removes the new LV (devices and metadata).
    ///
    /// ```no_run
    /// use lvsnap::snapshot::{RestoreOptions, VolumeGroup};
    /// let vg = VolumeGroup::open("vg0")?;
    /// let made = vg.restore("snapcontent-1", "pvc-2", &RestoreOptions::default(), |p| {
    ///     eprintln!("{:.1}%", p.percent)
    /// })?;
    /// println!("{} bytes", made.size);
    /// # Ok::<(), lvsnap::Error>(())
    /// ```
    pub fn restore(
        &self,
        snapshot: &str,
        new_lv: &str,
        opts: &RestoreOptions,
        mut on_progress: impl FnMut(&RestoreProgress),
    ) -> Result<Restored> {
        validate_lv_name(new_lv).map_err(|e| SnapError::InvalidArgument(e.to_string()))?;
        let full = format!("{}/{snapshot}", self.name());
        let mut s = self.write_session()?;
        if s.md
            .vg()
            .lv(new_lv)
            .is_some_and(|l| l.tags.iter().any(|t| t == RESTORE_INCOMPLETE_TAG))
        {
            // An earlier restore into it never completed: start over.
            let dm = DmControl::shared().ok();
            self.remove_restore_target(&mut s, dm.as_ref(), new_lv)?;
        }
        let vg = s.md.vg();
        if vg.lv(new_lv).is_some() {
            return Err(SnapError::InvalidArgument(format!(
                "logical volume \"{new_lv}\" already exists in volume group \"{}\"",
                self.name()
            ))
            .into());
        }
        let ext_bytes = *vg.extent_size.bytes();
        let (thin, snap_extents) = if let Some(c) = vg.cow_snapshot(snapshot) {
            if c.merging {
                return Err(SnapError::Busy(format!("{full} is merging into {}", c.origin)).into());
            }
            let o = vg
                .lv(&c.origin)
                .ok_or_else(|| SnapError::NotFound(format!("origin of {full}")))?;
            (false, o.extents())
        } else {
            match vg.lv(snapshot) {
                Some(lv) if lv.thin_origin().is_some() => (true, lv.extents()),
                Some(_) => {
                    return Err(SnapError::not_a_snapshot(vg, snapshot).into());
                }
                None => return Err(SnapError::NotFound(format!("snapshot {full}")).into()),
            }
        };
        let snap_bytes = Bytes(u128::from(snap_extents.0) * ext_bytes);
        let want = opts.size.unwrap_or(snap_bytes);
        if want < snap_bytes {
            return Err(SnapError::InvalidArgument(format!(
                "size {want} is below the size of snapshot {full} ({snap_bytes})"
            ))
            .into());
        }
        // As lvcreate: more than MAX_EXTENT_COUNT extents is "too large".
        let extents = u64::try_from(want.0.div_ceil(ext_bytes))
            .ok()
            .filter(|&n| n <= super::MAX_EXTENT_COUNT)
            .and_then(Extents::from_u64)
            .ok_or_else(|| {
                SnapError::InvalidArgument(format!(
                    "size {want} is too large for extent size {ext_bytes} bytes"
                ))
            })?;
        let size = Bytes(u128::from(extents.0) * ext_bytes);
        if thin {
            self.restore_thin(&mut s, snapshot, new_lv, extents)?;
            on_progress(&RestoreProgress {
                copied: snap_bytes,
                total: snap_bytes,
                percent: 100.0,
            });
            return Ok(Restored {
                name: new_lv.to_owned(),
                size,
                thin: true,
            });
        }
        self.restore_cow(
            s,
            snapshot,
            new_lv,
            extents,
            snap_bytes,
            opts,
            &mut on_progress,
        )?;
        Ok(Restored {
            name: new_lv.to_owned(),
            size,
            thin: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_cow(
        &self,
        s: Session,
        snapshot: &str,
        new_lv: &str,
        extents: Extents,
        total: Bytes,
        opts: &RestoreOptions,
        on_progress: &mut dyn FnMut(&RestoreProgress),
    ) -> Result<()> {
        let full = format!("{}/{snapshot}", self.name());
        let dm = DmControl::shared()?;
        let snap_dev = self.dm_name(snapshot, None)?;
        let snap =
            s.md.vg()
                .cow_snapshot(snapshot)
                .ok_or_else(|| SnapError::NotFound(format!("snapshot {full}")))?;
        // An inactive snapshot: its origin's tree is activated for the copy,
        // as `lvchange -ay` would, and deactivated again afterwards.
        let woke = !dm.exists(&snap_dev)? && {
            let vg = s.md.vg();
            let tags: Vec<String> = vg
                .tags
                .iter()
                .chain(vg.lv(&snap.origin).into_iter().flat_map(|l| &l.tags))
                .cloned()
                .collect();
            let conf = crate::lvm::config::LvmConfig::load_or_default();
            if !conf.volume_allowed(self.name(), &snap.origin, &tags) {
                return Err(SnapError::InvalidArgument(format!(
                    "snapshot {full} is inactive and lvm.conf's activation/volume_list does \
                     not let its origin {} be activated for the copy",
                    snap.origin
                ))
                .into());
            }
            let pvs = activate::pv_map(s.md.vg(), &s.disk)?;
            let opts = activate::ActivateOptions::default();
            matches!(
                activate::activate(&dm, s.md.vg(), &pvs, &snap.origin, &opts)?,
                activate::Activation::Activated(_)
            )
        };
        let r = self.restore_cow_live(s, &snap, new_lv, extents, total, opts, on_progress);
        if woke {
            let back = self
                .session()
                .and_then(|s| Ok(activate::deactivate(&dm, s.md.vg(), &snap.origin)?));
            if let Err(e) = back {
                log::warn!(
                    "{}/{}: activated for the restore, but deactivating it again failed: {e}",
                    self.name(),
                    snap.origin
                );
            }
        }
        r
    }

    /// [`VolumeGroup::restore_cow`] once the snapshot is active.
    #[allow(clippy::too_many_arguments)]
    fn restore_cow_live(
        &self,
        mut s: Session,
        snap: &crate::lvm::vg::CowSnapshot,
        new_lv: &str,
        extents: Extents,
        total: Bytes,
        opts: &RestoreOptions,
        on_progress: &mut dyn FnMut(&RestoreProgress),
    ) -> Result<()> {
        let snapshot = snap.name.as_str();
        let full = format!("{}/{snapshot}", self.name());
        let size = u128::from(extents.0)
            .checked_mul(*s.md.vg().extent_size.bytes())
            .and_then(|b| u64::try_from(b).ok())
            .unwrap_or(u64::MAX);
        let dm = DmControl::shared()?;
        let snap_dev = self.dm_name(snapshot, None)?;
        if self.cow_status(&s, snap, Some(&dm))?.invalid {
            return Err(SnapError::InvalidArgument(format!(
                "snapshot {full} is invalid (its COW store overflowed): nothing to restore"
            ))
            .into());
        }
        // Opened before the new LV exists: the snapshot cannot go away
        // (delete refuses an open snapshot) while we copy without the lock.
        let src = open_direct(&dm::node_path(&snap_dev), false)?;
        let layers = self.snapshot_layers(&dm, snap, &snap_dev);

        // The target is committed marked incomplete, and only loses the
        // mark once its copy is complete and synced: a run that dies in
        // between leaves an LV nobody takes for a finished volume.
        s.md.add_linear_lv(new_lv, extents, &Creation::now())?;
        s.md.set_lv_tag(new_lv, RESTORE_INCOMPLETE_TAG, true)?;
        s.precommit(&format!("restore {full} into {new_lv}"))?;
        let new_dev = self.dm_name(new_lv, None)?;
        let made = self.activate_lv(&s, new_lv);
        if let Err(e) = made {
            s.revert();
            return Err(e);
        }
        if let Err(e) = s.commit() {
            dm.remove_quietly(&new_dev);
            self.remove_link(new_lv);
            s.revert();
            return Err(e);
        }
        // Opened before the lock goes: an open target tells recovery in
        // other processes that a copy is still running.
        let dst = match open_direct(&dm::node_path(&new_dev), true) {
            Ok(f) => f,
            Err(e) => {
                self.fail_restore(&mut s, &dm, &full, new_lv, &e);
                return Err(e);
            }
        };
        drop(s);

        let copied = zero_tail(&dst, total, size).and_then(|()| match &layers {
            Some(l) => copy_by_layers(l, &dm, &snap_dev, &dst, total, opts.buffer, on_progress),
            None => copy(&src, &dst, total, opts.buffer, on_progress),
        });
        // Locked with the target still open, so no recovery takes it.
        let s = self.session();
        drop(dst);
        let mut s = s?;
        if let Err(e) = copied {
            self.fail_restore(&mut s, &dm, &full, new_lv, &e);
            return Err(e);
        }
        let done = (|| -> Result<()> {
            s.md.set_lv_tag(new_lv, RESTORE_INCOMPLETE_TAG, false)?;
            s.precommit(&format!("restore {full} into {new_lv} complete"))?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = done {
            self.fail_restore(&mut s, &dm, &full, new_lv, &e);
            return Err(e);
        }
        Ok(())
    }

    /// The snapshot's `-real` and `-cow` layers, opened and checked to be
    /// the devices its live table maps, for [`copy_by_layers`]; `None`
    /// (the copy then reads the snapshot device) where they cannot be.
    fn snapshot_layers(
        &self,
        dm: &DmControl,
        snap: &crate::lvm::vg::CowSnapshot,
        snap_dev: &dm::LvmDmName,
    ) -> Option<Layers> {
        let opened = (|| -> Result<Layers> {
            let origin_dev = self.dm_name(&snap.origin, None)?;
            let devs = activate::CowDevices::open(dm, &origin_dev, snap_dev)?;
            let real_info = dm.info(&devs.real)?;
            let cow_info = dm.info(&devs.cow)?;
            let real = open_direct(&dm::ensure_node(&devs.real, real_info.device)?, false)?;
            let cow = DirectReader::open(&dm::ensure_node(&devs.cow, cow_info.device)?)?;
            // The files opened are the table's devices (no rename between).
            let same = |f: &File, d: devicemapper::Device| {
                f.metadata().is_ok_and(|m| {
                    m.rdev() == nix::sys::stat::makedev(d.major.into(), d.minor.into())
                })
            };
            if devs.params.merge
                || !same(&real, devs.params.real)
                || !same(cow.file(), devs.params.cow)
            {
                return Err(SnapError::Busy("snapshot layers changed while opened".into()).into());
            }
            Ok(Layers {
                real,
                cow,
                chunk: devs.params.chunk.sectors(),
            })
        })();
        match opened {
            Ok(l) => Some(l),
            Err(e) => {
                log::debug!("restore reads {}/{} itself: {e}", self.name(), snap.name);
                None
            }
        }
    }

    /// A restore failed: its target goes (as much as can go now; the next
    /// operation's recovery removes the rest).
    fn fail_restore(&self, s: &mut Session, dm: &DmControl, full: &str, new_lv: &str, e: &Error) {
        log::error!("restore of {full} into {new_lv} failed: {e}; removing {new_lv}");
        if s.md.vg().lv(new_lv).is_none() {
            return;
        }
        if let Err(u) = self.remove_restore_target(s, Some(dm), new_lv) {
            log::error!("removing the half-restored {new_lv}: {u}");
        }
    }

    /// Removes a restore target that never completed: device, link and
    /// metadata, in session `s`. Refused while its device is open.
    pub(super) fn remove_restore_target(
        &self,
        s: &mut Session,
        dm: Option<&DmControl>,
        new_lv: &str,
    ) -> Result<()> {
        let new_dev = self.dm_name(new_lv, None)?;
        if let Some(dm) = dm {
            if dm.exists(&new_dev)? {
                let open_count = activate::open_count_settled(dm, &dm.info(&new_dev)?)?;
                if open_count > 0 {
                    return Err(SnapError::Busy(format!(
                        "{}/{new_lv} is open ({open_count} opener(s))",
                        self.name()
                    ))
                    .into());
                }
                dm.remove(&new_dev)?;
            }
        }
        self.remove_link(new_lv);
        s.md.remove_lv(new_lv)?;
        s.precommit(&format!("remove incomplete restore target {new_lv}"))?;
        if let Err(e) = s.commit() {
            s.revert();
            return Err(e);
        }
        Ok(())
    }

    /// A thin snapshot of thin snapshot `snapshot`, `extents` large, made
    /// active (no ACTIVATION_SKIP: it is a volume to use).
    fn restore_thin(
        &self,
        s: &mut Session,
        snapshot: &str,
        new_lv: &str,
        extents: Extents,
    ) -> Result<()> {
        self.create_thin_lv(s, snapshot, new_lv, Some(extents), false, true)?;
        let activated = self.activate_lv(s, new_lv);
        if let Err(e) = activated {
            if let Err(u) = self.delete_thin(s, new_lv) {
                log::error!("removing the half-restored thin {new_lv}: {u}");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Activates LV `new_lv` of the session's metadata as LVM would (its
    /// device, layers below it such as a thin pool's, and its /dev link).
    fn activate_lv(&self, s: &Session, new_lv: &str) -> Result<()> {
        let dm = DmControl::shared()?;
        let pvs = activate::pv_map(s.md.vg(), &s.disk)?;
        let opts = activate::ActivateOptions {
            ignore_activation_skip: true,
            ..Default::default()
        };
        activate::activate(&dm, s.md.vg(), &pvs, new_lv, &opts)?;
        Ok(())
    }
}

fn open_direct(path: &Path, write: bool) -> Result<File> {
    blockio::open(path, write).map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Zeroes `dst` from `from` to `to` (the part of a new LV beyond the
/// snapshot's size, which may hold an old LV's data).
fn zero_tail(dst: &File, from: Bytes, to: u64) -> Result<()> {
    let from = u64::try_from(from.0).unwrap_or(u64::MAX);
    blockio::zero_range(dst, from, to, DEFAULT_BUFFER)
        .map_err(|e| Error::io("zero the new volume past the snapshot's size", e))
}

/// A live COW snapshot's layers: what the snapshot device reads from.
struct Layers {
    /// The origin's data (`-real`), opened for reading.
    real: File,
    /// The exception store (`-cow`).
    cow: DirectReader,
    /// The snapshot table's chunk size.
    chunk: crate::units::Sectors,
}

/// Copies the first `total` bytes of the snapshot's view to `dst` from its
/// layers, as the kernel composes that view: the origin's `-real` in whole
/// buffers, then each chunk the exception store holds over it, then
/// fsyncs `dst`. Reading the snapshot device instead splits every read
/// into chunk-sized pieces (the kernel maps a snapshot chunk by chunk).
///
/// The same bytes as reading the snapshot: the kernel writes a chunk of
/// `-real` (an origin write) only after that chunk's old data is in the
/// store and its exception committed there, so any chunk read from `-real`
/// after such a write has its exception in the store read afterwards, and
/// is overwritten with the saved data. A snapshot the kernel invalidates
/// (its store full) stops saving chunks: its status is read after the
/// store, and an invalid one fails the restore, as reading it would.
#[allow(clippy::too_many_arguments)]
fn copy_by_layers(
    l: &Layers,
    dm: &DmControl,
    snap_dev: &dm::LvmDmName,
    dst: &File,
    total: Bytes,
    buf_len: usize,
    on_progress: &mut dyn FnMut(&RestoreProgress),
) -> Result<()> {
    let total_u64 = total_bytes(total)?;
    copy_range(&l.real, dst, total, buf_len, on_progress)?;
    let store = exception_store::read_exception_store(&l.cow)?;
    let chunk = l
        .chunk
        .bytes_u64()
        .filter(|&c| c > 0)
        .ok_or_else(|| SnapError::InvalidArgument("snapshot chunk size".into()))?;
    match store.header {
        Some(h) if h.valid && h.chunk_size == l.chunk => {}
        Some(h) if !h.valid => return Err(turned_invalid(snap_dev, "its store says invalid")),
        h => {
            return Err(dm::Error::state(
                snap_dev,
                crate::ErrorKind::Corrupt,
                format!(
                    "exception store header {h:?} does not match the table's chunk size {}",
                    *l.chunk
                ),
            )
            .into());
        }
    }
    let mut saved = store.exceptions;
    saved.sort_unstable_by_key(|e| e.old_chunk);
    let mut buf = blockio::AlignedBuf::new(buf_len.max(blockio::ALIGN));
    let per_buf = (buf.len() as u64 / chunk).max(1);
    let mut i = 0;
    while i < saved.len() {
        let first = saved[i];
        let n = run_len(&saved[i..], per_buf);
        i += n as usize;
        let at = first
            .old_chunk
            .checked_mul(chunk)
            .filter(|&a| a < total_u64);
        let Some(at) = at else {
            return Err(dm::Error::state(
                snap_dev,
                crate::ErrorKind::Corrupt,
                format!(
                    "exception for origin chunk {} past the origin's end",
                    first.old_chunk
                ),
            )
            .into());
        };
        let len = (n * chunk).min(total_u64 - at);
        let piece = &mut buf[..usize::try_from(len).unwrap_or(0)];
        l.cow
            .read_exact_at(piece, first.new_chunk.saturating_mul(chunk))
            .map_err(|e| Error::io(format!("read chunk {} of the store", first.new_chunk), e))?;
        dst.write_all_at(piece, at)
            .map_err(|e| Error::io(format!("write the new volume at byte {at}"), e))?;
    }
    match activate::snapshot_live(dm, snap_dev)? {
        activate::SnapshotLive::Snapshot(dm::SnapshotTargetStatus::Active(_)) => {}
        other => return Err(turned_invalid(snap_dev, &format!("{other:?}"))),
    }
    finish_copy(dst, total, on_progress)
}

/// How many of `saved` (sorted by origin chunk), from its first, form one
/// run of chunks consecutive both in the origin and in the store, at most
/// `max`: read and written as one piece. At least 1 for a non-empty slice.
/// The chunk numbers come from disk, so a run ends where one would overflow.
fn run_len(saved: &[exception_store::Exception], max: u64) -> u64 {
    let Some(first) = saved.first() else {
        return 0;
    };
    let mut n = 1;
    for e in saved.iter().skip(1) {
        let next = |c: u64| c.checked_add(n);
        if n >= max
            || next(first.old_chunk) != Some(e.old_chunk)
            || next(first.new_chunk) != Some(e.new_chunk)
        {
            break;
        }
        n += 1;
    }
    n
}

fn turned_invalid(snap_dev: &dm::LvmDmName, what: &str) -> Error {
    SnapError::InvalidArgument(format!(
        "snapshot /dev/mapper/{} turned invalid during the copy ({what}): its COW store \
         overflowed, so the restore cannot hold its content",
        &**snap_dev
    ))
    .into()
}

fn total_bytes(total: Bytes) -> Result<u64> {
    Ok(u64::try_from(total.0)
        .map_err(|_| SnapError::InvalidArgument("snapshot too large".into()))?)
}

fn progress(off: u64, total: Bytes, on_progress: &mut dyn FnMut(&RestoreProgress)) {
    let total_u64 = u64::try_from(total.0).unwrap_or(u64::MAX);
    let percent = if total_u64 == 0 {
        100.0
    } else {
        off as f64 * 100.0 / total_u64 as f64
    };
    on_progress(&RestoreProgress {
        copied: Bytes(u128::from(off)),
        total,
        percent,
    });
}

/// Fsyncs `dst` and reports the copy complete.
fn finish_copy(
    dst: &File,
    total: Bytes,
    on_progress: &mut dyn FnMut(&RestoreProgress),
) -> Result<()> {
    dst.sync_all()
        .map_err(|e| Error::io("fsync the new volume", e))?;
    progress(total_bytes(total)?, total, on_progress);
    Ok(())
}

/// Copies the first `total` bytes of `src` to `dst` through an aligned
/// buffer of `buf_len` bytes, then fsyncs `dst`.
fn copy(
    src: &File,
    dst: &File,
    total: Bytes,
    buf_len: usize,
    on_progress: &mut dyn FnMut(&RestoreProgress),
) -> Result<()> {
    copy_range(src, dst, total, buf_len, on_progress)?;
    finish_copy(dst, total, on_progress)
}

/// [`copy`] without the fsync and the final report.
fn copy_range(
    src: &File,
    dst: &File,
    total: Bytes,
    buf_len: usize,
    on_progress: &mut dyn FnMut(&RestoreProgress),
) -> Result<()> {
    let total_u64 = total_bytes(total)?;
    let mut buf = blockio::AlignedBuf::new(buf_len);
    let mut off = 0u64;
    while off < total_u64 {
        let n = usize::try_from((total_u64 - off).min(buf_len as u64)).unwrap_or(buf_len);
        let chunk = &mut buf[..n];
        src.read_exact_at(chunk, off)
            .map_err(|e| Error::io(format!("read the snapshot at byte {off}"), e))?;
        crate::fault::point("restore copy write");
        dst.write_all_at(chunk, off)
            .map_err(|e| Error::io(format!("write the new volume at byte {off}"), e))?;
        off += n as u64;
        if off < total_u64 {
            progress(off, total, on_progress);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn runs_join_consecutive_chunks_and_never_overflow() {
        use exception_store::Exception;
        let e = |old_chunk, new_chunk| Exception {
            old_chunk,
            new_chunk,
        };
        let saved = [e(4, 2), e(5, 3), e(6, 4), e(8, 5), e(9, 7)];
        assert_eq!(run_len(&saved, 16), 3);
        assert_eq!(run_len(&saved, 2), 2);
        assert_eq!(run_len(&saved[3..], 16), 1, "the store is not consecutive");
        assert_eq!(run_len(&[], 16), 0);
        // Origin chunks from a corrupt store at the end of u64.
        let saved = [e(u64::MAX, 2), e(u64::MAX, 3)];
        assert_eq!(run_len(&saved, 16), 1);
        let saved = [e(u64::MAX - 1, 2), e(u64::MAX, 3)];
        assert_eq!(run_len(&saved, 16), 2);
    }

    #[test]
    fn buffer_rounds_to_alignment() {
        assert_eq!(RestoreOptions::default().buffer, 4 << 20);
        assert_eq!(RestoreOptions::default().buffer_size(1).buffer, 4096);
        assert_eq!(RestoreOptions::default().buffer_size(5000).buffer, 8192);
    }

    /// The copy moves exactly `total` bytes, through a buffer smaller than
    /// the data and a short last piece, and reports up to 100%.
    #[test]
    fn copies_all_with_progress() {
        let dir = std::env::temp_dir();
        let (a, b) = (
            dir.join(format!("lvsnap-copy-src-{}", std::process::id())),
            dir.join(format!("lvsnap-copy-dst-{}", std::process::id())),
        );
        let data: Vec<u8> = (0..(3 * 4096 + 512)).map(|i| (i * 7 % 251) as u8).collect();
        File::create(&a).unwrap().write_all(&data).unwrap();
        File::create(&b).unwrap();
        let src = File::open(&a).unwrap();
        let dst = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
        let mut seen = Vec::new();
        copy(
            &src,
            &dst,
            Bytes(data.len() as u128),
            4096,
            &mut |p: &RestoreProgress| seen.push(p.percent),
        )
        .unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), data);
        assert_eq!(seen.len(), 4);
        assert_eq!(seen.last(), Some(&100.0));
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        // A source shorter than promised is an error, not a short copy.
        let e = copy(&src, &dst, Bytes(1 << 20), 4096, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
    }
}
