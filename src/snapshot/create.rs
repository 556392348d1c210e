//! Creating snapshots, as `lvcreate -s` does.

use super::vg::{Session, VolumeGroup};
use super::{
    Error as SnapError, SnapSize, SnapshotOptions, SnapshotStatus, check_chunk_size,
    plan_cow_extents,
};
use crate::dm::{ChunkSize, CowSnapshot, CowSnapshotSpec, DmControl, LvmDmUuid, LvmId};
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
            self.create_thin(&mut s, origin, name)?;
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
        let cow_lv =
            s.md.vg()
                .lv(name)
                .cloned()
                .ok_or_else(|| SnapError::NotFound(format!("new COW LV {name}")))?;
        // The new extents were free in the committed metadata, so zeroing
        // them before the commit harms nothing if we stop here.
        s.zero_lv_start(&cow_lv, (*chunk * 512) as usize)?;
        s.precommit(&format!(
            "create snapshot {}/{name} of {origin}",
            self.name()
        ))?;

        let made = match self.activate_cow(s, origin, name, chunk, !opts.writable) {
            Ok(made) => made,
            Err(e) => {
                s.revert();
                return Err(e);
            }
        };
        if let Err(e) = s.commit() {
            if let Some((dm, snap)) = made {
                if let Err(u) = snap.remove(&dm) {
                    log::error!("undoing snapshot devices of {name}: {u}");
                }
                self.remove_link(name);
            }
            s.revert();
            return Err(e);
        }
        Ok(())
    }

    /// If the origin is active, gives the new snapshot its devices.
    fn activate_cow(
        &self,
        s: &Session,
        origin: &str,
        name: &str,
        chunk: Sectors,
        read_only: bool,
    ) -> Result<Option<(DmControl, CowSnapshot)>> {
        let origin_dev = self.dm_name(origin, None)?;
        let dm = match DmControl::open() {
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
        let table = s.lv_table(cow_lv)?;
        let uuid = LvmDmUuid::new(&LvmId::parse(&vg.id)?, &LvmId::parse(&cow_lv.id)?, None)?;
        let snap_dev = self.dm_name(name, None)?;
        let spec = CowSnapshotSpec {
            origin: &origin_dev,
            snapshot: &snap_dev,
            snapshot_uuid: Some(uuid.as_dm_uuid()),
            cow: &table,
            chunk: ChunkSize::new(chunk)?,
            read_only,
        };
        let snap = CowSnapshot::create(&dm, &spec)?;
        self.make_link(name);
        Ok(Some((dm, snap)))
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
