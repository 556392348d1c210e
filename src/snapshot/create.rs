//! Creating snapshots, as `lvcreate -s` does.

use super::group::Kind;
use super::vg::{Session, VolumeGroup};
use super::{Error as SnapError, SnapSize, SnapshotOptions, SnapshotStatus, check_chunk_size};
use crate::activate::CowSnapshotSpec;
use crate::dm::{ChunkSize, DmControl, LvmDmName, LvmDmUuid, TableLine};
use crate::error::Result;
use crate::lvm::names::validate_lv_name;
use crate::units::Sectors;

/// LVM's default COW chunk: 4 KiB.
pub(super) const DEFAULT_CHUNK: Sectors = Sectors(8);

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
        let mut s = self.write_session()?;
        let kind = self.check_snapshot_of(s.md.vg(), origin, name)?;
        // A thin snapshot alone takes LVM's two commits around the pool
        // message; a COW one is a group of one.
        match kind {
            Kind::Thin => self.create_thin(&mut s, origin, name, opts.writable)?,
            Kind::Cow => self.create_many(&mut s, &[(origin, name)], &[kind], opts, chunk)?,
        }
        // The status comes from the session's own, now committed, metadata:
        // reading the VG again would double the cost of a create.
        Ok(Created {
            status: self.status_in(&s, name)?,
            snapsize_ignored: kind == Kind::Thin && opts.snapsize != SnapSize::OriginSize,
        })
    }

    /// What the new snapshot's devices need, if its origin is active.
    pub(super) fn live_cow(
        &self,
        s: &Session,
        dm: &DmControl,
        origin: &str,
        name: &str,
        chunk: Sectors,
        read_only: bool,
    ) -> Result<Option<LiveCow>> {
        let origin_dev = self.dm_name(origin, None)?;
        if !dm.exists(&origin_dev)? {
            return Ok(None);
        }
        let vg = s.md.vg();
        let cow_lv = vg
            .lv(name)
            .ok_or_else(|| SnapError::NotFound(format!("new COW LV {name}")))?;
        Ok(Some(LiveCow {
            name: name.to_owned(),
            table: s.lv_table(cow_lv)?,
            uuid: crate::activate::dm_uuid(vg, name, None)?,
            snap_dev: self.dm_name(name, None)?,
            origin_dev,
            chunk: ChunkSize::new(chunk)?,
            read_only,
        }))
    }

    /// `/dev/<vg>/<lv>`, as LVM links it when udev does not. Called once
    /// the change is committed, so a failure is a warning, not an error.
    pub(crate) fn make_link(&self, lv: &str) {
        let made = self
            .dm_name(lv, None)
            .and_then(|dev| Ok(crate::activate::ensure_link(self.name(), lv, &dev)?));
        if let Err(e) = made {
            log::warn!("linking /dev/{}/{lv}: {e}", self.name());
        }
    }

    /// Removes `/dev/<vg>/<lv>` (and the VG's directory once empty).
    pub(crate) fn remove_link(&self, lv: &str) {
        if let Err(e) = crate::activate::remove_link(self.name(), lv) {
            log::warn!("unlinking /dev/{}/{lv}: {e}", self.name());
        }
    }
}

/// The devices of a COW snapshot of an active origin, as planned.
pub(super) struct LiveCow {
    /// The snapshot (COW) LV.
    pub name: String,
    origin_dev: LvmDmName,
    snap_dev: LvmDmName,
    uuid: LvmDmUuid,
    table: Vec<TableLine>,
    chunk: ChunkSize,
    read_only: bool,
}

impl LiveCow {
    pub(super) fn spec(&self) -> CowSnapshotSpec<'_> {
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
