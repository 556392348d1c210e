//! Creating snapshots, as `lvcreate -s` does.

use super::vg::{Session, VolumeGroup};
use super::{
    Error as SnapError, SnapSize, SnapshotOptions, SnapshotStatus, check_chunk_size,
    plan_cow_extents,
};
use crate::dm::{
    ChunkSize, CowSnapshot, CowSnapshotSpec, DmControl, LvmDmName, LvmDmUuid, LvmId, TableLine,
};
use crate::error::Result;
use crate::lvm::names::validate_lv_name;
use crate::lvm::vg::Creation;
use crate::units::{Bytes, Sectors};

/// LVM's default COW chunk: 4 KiB.
const DEFAULT_CHUNK: Sectors = Sectors(8);

/// What [`VolumeGroup::create_snapshot`] made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new snapshot's status.
    pub status: SnapshotStatus,
    /// The origin was thin, so the snapshot is thin and the requested
    /// snapsize was not used.
    pub snapsize_ignored: bool,
}

impl VolumeGroup {
    /// Creates snapshot `name` of LV `origin`: a COW snapshot whose store is
    /// sized by `opts` as `lvcreate -s` sizes it, or a thin snapshot when
    /// `origin` is thin. Works whether the origin is active or not; an active
    /// origin gets the snapshot's devices at once, with LVM's names and
    /// layers. Refused before anything changes: a snapshot of a snapshot, an
    /// origin being merged, a taken or invalid name, a store that does not
    /// fit in the free space.
    pub fn create_snapshot(
        &self,
        origin: &str,
        name: &str,
        opts: &SnapshotOptions,
    ) -> Result<Created> {
        validate_lv_name(name).map_err(|e| SnapError::InvalidArgument(e.to_string()))?;
        let chunk = match opts.chunk_size {
            Some(c) => check_chunk_size(c)?,
            None => DEFAULT_CHUNK,
        };
        let mut s = self.session()?;
        let vg = s.md.vg();
        let full = format!("{}/{origin}", self.name());
        let o = vg
            .lv(origin)
            .ok_or_else(|| SnapError::NotFound(format!("logical volume {full}")))?;
        if vg.cow_snapshot(origin).is_some() {
            return Err(SnapError::InvalidArgument(format!(
                "{full} is a snapshot: snapshots of snapshots are not supported"
            ))
            .into());
        }
        if !vg.is_visible(origin) {
            return Err(SnapError::InvalidArgument(format!(
                "{full} is a hidden LV and cannot be snapshotted"
            ))
            .into());
        }
        if vg.snapshots_of(origin).iter().any(|s| s.merging) {
            return Err(SnapError::Busy(format!(
                "{full} has a snapshot merging into it; wait for the merge to finish"
            ))
            .into());
        }
        if vg.lv(name).is_some() {
            return Err(SnapError::InvalidArgument(format!(
                "logical volume \"{name}\" already exists in volume group \"{}\"",
                self.name()
            ))
            .into());
        }
        // The status comes from the session's own, now committed, metadata:
        // reading the VG again would double the cost of a create.
        if o.thin().is_some() {
            self.create_thin(&mut s, origin, name, opts.writable)?;
            return Ok(Created {
                status: self.status_in(&s, name)?,
                snapsize_ignored: opts.snapsize != SnapSize::OriginSize,
            });
        }
        if o.is_thin_pool() {
            return Err(SnapError::Unsupported(format!(
                "{full} is a thin pool; snapshots of pools are not supported"
            ))
            .into());
        }
        self.create_cow(&mut s, origin, name, opts, chunk)?;
        Ok(Created {
            status: self.status_in(&s, name)?,
            snapsize_ignored: false,
        })
    }

    fn create_cow(
        &self,
        s: &mut Session,
        origin: &str,
        name: &str,
        opts: &SnapshotOptions,
        chunk: Sectors,
    ) -> Result<()> {
        let vg = s.md.vg();
        let o = vg
            .lv(origin)
            .ok_or_else(|| SnapError::NotFound(format!("logical volume {origin}")))?;
        let ext = vg.extent_size;
        let cow = plan_cow_extents(opts.snapsize, o.extents(), ext, chunk, false)?;
        let free = s.md.free_space().total();
        if cow.0 > free {
            let bytes = |n: u64| Bytes(u128::from(n) * u128::from(*ext) * 512);
            return Err(SnapError::NoSpace(format!(
                "volume group \"{}\" has insufficient free space ({} extents, {} bytes): \
                 {} extents ({} bytes) required",
                self.name(),
                free,
                bytes(free),
                cow.0,
                bytes(cow.0)
            ))
            .into());
        }
        s.md.add_cow_snapshot(origin, name, cow, chunk, !opts.writable, &Creation::now())?;
        let what = format!("create snapshot {}/{name} of {origin}", self.name());
        let Some(live) = self.live_cow(s, origin, name, chunk, !opts.writable)? else {
            // No devices to make: the store's header is zeroed straight on
            // its PV (its extents were free in the committed metadata, so
            // this harms nothing if we stop here), then the metadata commits.
            let cow_lv =
                s.md.vg()
                    .lv(name)
                    .cloned()
                    .ok_or_else(|| SnapError::NotFound(format!("new COW LV {name}")))?;
            s.zero_lv_start(&cow_lv, (*chunk * 512) as usize)?;
            s.precommit(&what)?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            return Ok(());
        };
        let spec = live.spec();
        // The devices (which zero the store through its -cow layer) are made
        // while the metadata is precommitted on another thread: neither
        // needs the other until the origin is suspended.
        let (prepared, pre) = std::thread::scope(|sc| {
            let pre = sc.spawn(|| s.precommit(&what));
            let prepared = CowSnapshot::prepare(&live.dm, &spec);
            let pre = pre.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (prepared, pre)
        });
        let prepared = match (prepared, pre) {
            (Ok(p), Ok(())) => p,
            (Err(e), pre) => {
                if pre.is_ok() {
                    s.revert();
                }
                return Err(e.into());
            }
            // Dropping the prepared devices removes them.
            (Ok(_), Err(e)) => return Err(e),
        };
        let snap = match prepared.activate() {
            Ok(snap) => snap,
            Err(e) => {
                s.revert();
                return Err(e.into());
            }
        };
        self.make_link(name);
        if let Err(e) = s.commit() {
            if let Err(u) = snap.remove(&live.dm) {
                log::error!("undoing snapshot devices of {name}: {u}");
            }
            self.remove_link(name);
            s.revert();
            return Err(e);
        }
        Ok(())
    }

    /// What the new snapshot's devices need, if its origin is active.
    fn live_cow(
        &self,
        s: &Session,
        origin: &str,
        name: &str,
        chunk: Sectors,
        read_only: bool,
    ) -> Result<Option<LiveCow>> {
        let origin_dev = self.dm_name(origin, None)?;
        let dm = match DmControl::shared() {
            Ok(dm) => dm,
            Err(e) => {
                log::debug!("no device-mapper ({e}); metadata only");
                return Ok(None);
            }
        };
        if !dm.exists(&origin_dev)? {
            return Ok(None);
        }
        let vg = s.md.vg();
        let cow_lv = vg
            .lv(name)
            .ok_or_else(|| SnapError::NotFound(format!("new COW LV {name}")))?;
        Ok(Some(LiveCow {
            table: s.lv_table(cow_lv)?,
            uuid: LvmDmUuid::new(&LvmId::parse(&vg.id)?, &LvmId::parse(&cow_lv.id)?, None)?,
            snap_dev: self.dm_name(name, None)?,
            origin_dev,
            chunk: ChunkSize::new(chunk)?,
            read_only,
            dm,
        }))
    }

    /// `/dev/<vg>/<lv>`, as LVM links it when udev does not.
    pub(crate) fn make_link(&self, lv: &str) {
        if crate::dm::udev_running() {
            return;
        }
        let Ok(dev) = self.dm_name(lv, None) else {
            return;
        };
        let dir = std::path::Path::new("/dev").join(self.name());
        let link = dir.join(lv);
        let target = crate::dm::node_path(&dev);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            log::warn!("linking {} -> {}: {e}", link.display(), target.display());
        }
    }

    /// Removes `/dev/<vg>/<lv>` (and the VG's directory once empty).
    pub(crate) fn remove_link(&self, lv: &str) {
        if crate::dm::udev_running() {
            return;
        }
        let dir = std::path::Path::new("/dev").join(self.name());
        let _ = std::fs::remove_file(dir.join(lv));
        let _ = std::fs::remove_dir(&dir);
    }
}

/// The devices of a COW snapshot of an active origin, as planned.
struct LiveCow {
    dm: DmControl,
    origin_dev: LvmDmName,
    snap_dev: LvmDmName,
    uuid: LvmDmUuid,
    table: Vec<TableLine>,
    chunk: ChunkSize,
    read_only: bool,
}

impl LiveCow {
    fn spec(&self) -> CowSnapshotSpec<'_> {
        CowSnapshotSpec {
            origin: &self.origin_dev,
            snapshot: &self.snap_dev,
            snapshot_uuid: Some(self.uuid.as_dm_uuid()),
            cow: &self.table,
            chunk: self.chunk,
            read_only: self.read_only,
        }
    }
}
