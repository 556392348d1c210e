//! The life of a COW snapshot at the device-mapper level, laid out as LVM
//! lays it out: create, status, wait, merge back, tear down.
//!
//! ```text
//! origin          snapshot-origin <origin-real>          (was: the origin's table)
//! origin-real     the origin's former table
//! snap            snapshot <origin-real> <snap-cow> P <chunk>
//! snap-cow        the COW store's table
//! ```
//!
//! Every call either completes or undoes what it made.

use std::time::{Duration, Instant};

use devicemapper::{DmName, DmNameBuf, DmUuid, Sectors};

use super::layer::Layer;
use super::merge::CowMerge;
use crate::ErrorKind;
use crate::dm::{
    ChunkSize, DmControl, Error, Percent, Result, SNAPSHOT, SNAPSHOT_MERGE, SNAPSHOT_ORIGIN,
    SnapshotOriginTargetParams, SnapshotTargetParams, SnapshotTargetStatus, Suspend, TableLine,
    Undo, check_dm_uuid, ensure_node, layer_name, layer_uuid, node_path, table_size,
};
use crate::units::SectorBytes;

/// What to snapshot, and with what.
#[derive(Debug, Clone)]
pub struct CowSnapshotSpec<'a> {
    /// The origin: an active device-mapper device (e.g. a linear LV).
    pub origin: &'a DmName,
    /// Name of the snapshot device; its COW layer is `<snapshot>-cow`.
    pub snapshot: &'a DmName,
    /// UUID of the snapshot device; the COW layer gets `<uuid>-cow`.
    /// The origin's `-real` layer gets `<origin uuid>-real` if it has one.
    pub snapshot_uuid: Option<&'a DmUuid>,
    /// The table of the COW layer (e.g. linear over the COW LV's extents).
    pub cow: &'a [TableLine],
    /// The chunk size.
    pub chunk: ChunkSize,
    /// Make the snapshot read-only.
    pub read_only: bool,
}

/// A COW snapshot's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CowDevices {
    /// The origin device (`snapshot-origin`, or `snapshot-merge` while merging).
    pub origin: DmNameBuf,
    /// The origin's data layer, `<origin>-real`.
    pub real: DmNameBuf,
    /// The snapshot device.
    pub snapshot: DmNameBuf,
    /// The exception store layer, `<snapshot>-cow`.
    pub cow: DmNameBuf,
    /// Devices and chunk size of the snapshot table.
    pub params: SnapshotTargetParams,
    /// Size of the origin (and of the snapshot).
    pub size: Sectors,
}

/// What [`CowDevices::wait`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    /// The snapshot turns invalid (its COW overflowed).
    Invalid,
    /// The snapshot turns invalid or its data_percent reaches a threshold.
    InvalidOrPercent(Percent),
}

fn table_line(dm: &DmControl, name: &DmName) -> Result<TableLine> {
    let mut t = dm.table(name)?;
    match (t.pop(), t.is_empty()) {
        (Some(l), true) => Ok(l),
        _ => Err(Error::state(
            name,
            ErrorKind::Busy,
            "expected a table of exactly one target",
        )),
    }
}

/// A COW snapshot made but not yet live: see [`CowDevices::prepare`].
/// Dropped without [`PreparedCow::activate`], it removes its devices and
/// the origin's waiting table.
#[must_use = "dropping a PreparedCow undoes it"]
pub struct PreparedCow<'a> {
    dm: &'a DmControl,
    undo: Undo<'a>,
    origin: &'a DmName,
    snapshot: &'a DmName,
    real: DmNameBuf,
    real_dev: devicemapper::Device,
    new_real: bool,
    cow: DmNameBuf,
    params: SnapshotTargetParams,
    size: Sectors,
}

impl std::fmt::Debug for PreparedCow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCow")
            .field("origin", &self.origin)
            .field("snapshot", &self.snapshot)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PreparedCow<'_> {
    /// Makes the snapshot live, in LVM's order: the origin frozen and
    /// flushed; `-real`, the snapshot and the origin resumed. On failure
    /// everything is undone.
    pub fn activate(mut self) -> Result<CowDevices> {
        let (dm, origin) = (self.dm, self.origin);
        self.undo.suspend(origin, Suspend::FREEZE)?;
        self.resume_layers()?;
        // The origin's resume swaps in snapshot-origin: from here on, writes COW.
        dm.resume(origin)?;
        Ok(self.into_live())
    }

    /// The origin this snapshot is of.
    pub fn origin(&self) -> &DmName {
        self.origin
    }

    /// For a caller that suspends the origin itself (several snapshots taken
    /// at one instant): with the origin suspended, resumes `-real` and the
    /// snapshot. The origin's resume, which makes the snapshot live, is the
    /// caller's, then [`PreparedCow::into_live`]. Until then, dropping this
    /// still removes everything and drops the origin's waiting table; the
    /// caller then resumes the origin unchanged.
    pub fn resume_layers(&mut self) -> Result<()> {
        if self.new_real {
            self.dm.resume(&self.real)?;
            ensure_node(&self.real, self.real_dev)?;
        }
        self.dm.resume(self.snapshot)
    }

    /// Once the origin is resumed with its new table: the live snapshot,
    /// whose devices are kept from now on.
    pub fn into_live(self) -> CowDevices {
        let PreparedCow {
            dm,
            undo,
            origin,
            snapshot,
            real,
            cow,
            params,
            size,
            ..
        } = self;
        undo.done();
        match dm.info(snapshot) {
            Ok(i) => {
                if let Err(e) = ensure_node(snapshot, i.device) {
                    log::warn!("snapshot {snapshot} works but has no node: {e}");
                }
            }
            Err(e) => log::warn!("snapshot {snapshot}: {e}"),
        }
        CowDevices {
            origin: origin.to_owned(),
            real,
            snapshot: snapshot.to_owned(),
            cow,
            params,
            size,
        }
    }
}

impl CowDevices {
    /// Snapshots `spec.origin`: creates `-real` (the origin's table) and
    /// `-cow` (zeroing the store's header chunk) and resumes them, loads the
    /// snapshot, suspends the origin with a filesystem freeze and flush,
    /// resumes the snapshot, then the origin with `snapshot-origin`. Writes
    /// in flight before the suspend are in the snapshot; later ones are
    /// copied-on-write. On error everything made is removed and the origin
    /// keeps its table.
    ///
    /// ```no_run
    /// use lvsnap::activate::{CowDevices, CowSnapshotSpec};
    /// use lvsnap::dm::{check_dm_name, ChunkSize, DmControl, TableLine};
    /// use lvsnap::units::Sectors;
    /// use devicemapper::Device;
    /// let dm = DmControl::open()?;
    /// let (origin, snap) = (check_dm_name("demo")?, check_dm_name("demo-snap")?);
    /// let cow = [TableLine::linear(Sectors(0), Sectors(16384), Device { major: 7, minor: 1 }, Sectors(0))];
    /// let s = CowDevices::create(&dm, &CowSnapshotSpec {
    ///     origin: &origin, snapshot: &snap, snapshot_uuid: None, cow: &cow,
    ///     chunk: ChunkSize::default(), read_only: false,
    /// })?;
    /// println!("{}% used", s.status(&dm)?.data_percent().unwrap());
    /// # Ok::<(), lvsnap::dm::Error>(())
    /// ```
    pub fn create(dm: &DmControl, spec: &CowSnapshotSpec<'_>) -> Result<CowDevices> {
        CowDevices::prepare(dm, spec)?.activate()
    }

    /// The first half of [`CowDevices::create`]: every device made and
    /// loaded, the origin's new table waiting in its inactive slot, nothing
    /// live changed yet. The caller can do other work (LVM's precommit)
    /// before [`PreparedCow::activate`]; dropping the result undoes it all.
    pub fn prepare<'a>(dm: &'a DmControl, spec: &CowSnapshotSpec<'a>) -> Result<PreparedCow<'a>> {
        let origin = spec.origin;
        let chunk = spec.chunk;
        let cow_size = table_size(spec.cow);
        if *cow_size < 3 * *chunk.sectors() {
            return Err(Error::InvalidArgument(format!(
                "COW store of {} sectors holds fewer than 3 chunks of {} sectors",
                *cow_size,
                *chunk.sectors()
            )));
        }
        let real = layer_name(origin, Layer::Real.as_str())?;
        let cow = layer_name(spec.snapshot, Layer::Cow.as_str())?;
        let cow_uuid = spec
            .snapshot_uuid
            .map(|u| layer_uuid(u, Layer::Cow.as_str()))
            .transpose()?;
        let info = dm.info(origin)?;
        let real_uuid = match &info.uuid {
            Some(u) if !u.is_empty() => Some(check_dm_uuid(&format!("{u}-{}", Layer::Real))?),
            _ => None,
        };
        if !info.live_table || info.suspended || info.inactive_table {
            return Err(Error::state(
                origin,
                ErrorKind::Busy,
                "is suspended, has no live table, or has a table waiting to load",
            ));
        }
        let origin_table = dm.table(origin)?;
        let size = table_size(&origin_table);
        // An origin that already has snapshots keeps its -real: the new
        // snapshot joins them.
        let shared_real = match origin_table.as_slice() {
            [l] if l.target_type == SNAPSHOT_ORIGIN => {
                let p: SnapshotOriginTargetParams =
                    format!("{SNAPSHOT_ORIGIN} {}", l.params).parse()?;
                if dm.info(&real)?.device != p.real {
                    return Err(Error::state(
                        origin,
                        ErrorKind::Corrupt,
                        format!("has a {SNAPSHOT_ORIGIN} target not over {}", &*real),
                    ));
                }
                Some(p.real)
            }
            _ => None,
        };
        if let Some(l) = origin_table.iter().find(|l| {
            (shared_real.is_none() && l.target_type == SNAPSHOT_ORIGIN)
                || l.target_type == SNAPSHOT_MERGE
                || l.target_type == SNAPSHOT
        }) {
            return Err(Error::state(
                origin,
                ErrorKind::Unsupported,
                format!(
                    "has a {} target: it cannot be snapshotted now",
                    l.target_type
                ),
            ));
        }
        // One info ioctl per new name, not a list of every device.
        let mut new_names = vec![cow.clone(), spec.snapshot.to_owned()];
        if shared_real.is_none() {
            new_names.push(real.clone());
        }
        for n in &new_names {
            if dm.exists(n)? {
                return Err(Error::state(&**n, ErrorKind::Busy, "already exists"));
            }
        }
        // LVM's order: -real loaded but left suspended, the origin's new
        // table loaded, -cow live (and zeroed), the snapshot loaded; then the
        // origin frozen and flushed; -real, snapshot and origin resumed.
        // With a shared -real, only -cow and the snapshot are new.
        let mut undo = Undo::new(dm);
        let real_dev = match shared_real {
            Some(d) => d,
            None => {
                let d = dm.create_inactive(&real, real_uuid.as_deref(), &origin_table, false)?;
                let r = real.clone();
                undo.push(format!("remove {}", &*r), move |dm| dm.remove(&r));
                let origin_line = [TableLine::target(
                    Sectors(0),
                    size,
                    &SnapshotOriginTargetParams { real: d },
                )];
                undo.load(origin, &origin_line, info.read_only)?;
                d
            }
        };
        let cow_dev = dm.create(&cow, cow_uuid.as_deref(), spec.cow, false)?;
        let c = cow.clone();
        undo.push(format!("remove {}", &*c), move |dm| dm.remove(&c));
        zero_header(&cow, chunk)?;

        let params = SnapshotTargetParams {
            real: real_dev,
            cow: cow_dev,
            chunk,
            merge: false,
        };
        let snap_table = [TableLine::target(Sectors(0), size, &params)];
        dm.create_inactive(
            spec.snapshot,
            spec.snapshot_uuid,
            &snap_table,
            spec.read_only,
        )?;
        let s = spec.snapshot.to_owned();
        undo.push("remove snapshot", move |dm| dm.remove(&s));
        Ok(PreparedCow {
            dm,
            undo,
            origin,
            snapshot: spec.snapshot,
            real,
            real_dev,
            new_real: shared_real.is_none(),
            cow,
            params,
            size,
        })
    }

    /// The other snapshots (not merging) over this one's `-real`.
    pub fn siblings(&self, dm: &DmControl) -> Result<Vec<DmNameBuf>> {
        let mut out = Vec::new();
        for (n, _) in dm.list()? {
            if n == self.snapshot {
                continue;
            }
            // A device may vanish between list and table: skip it.
            let Ok(t) = dm.table(&n) else { continue };
            if let [l] = t.as_slice() {
                if l.target_type == SNAPSHOT {
                    let p = format!("{SNAPSHOT} {}", l.params).parse::<SnapshotTargetParams>();
                    if p.is_ok_and(|p| p.real == self.params.real) {
                        out.push(n);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Finds the COW snapshot `snapshot` of `origin` from the kernel's tables
    /// (merging or not).
    pub fn open(dm: &DmControl, origin: &DmName, snapshot: &DmName) -> Result<CowDevices> {
        let real = layer_name(origin, Layer::Real.as_str())?;
        let cow = layer_name(snapshot, Layer::Cow.as_str())?;
        let o = table_line(dm, origin)?;
        let (real_dev, merging) = match o.target_type.as_str() {
            SNAPSHOT_ORIGIN => {
                let p: SnapshotOriginTargetParams =
                    format!("{SNAPSHOT_ORIGIN} {}", o.params).parse()?;
                (p.real, false)
            }
            SNAPSHOT_MERGE => {
                let p: SnapshotTargetParams = format!("{SNAPSHOT_MERGE} {}", o.params).parse()?;
                (p.real, true)
            }
            t => {
                return Err(Error::state(
                    origin,
                    ErrorKind::NotFound,
                    format!("has a {t} target, no snapshot"),
                ));
            }
        };
        if dm.info(&real)?.device != real_dev {
            return Err(Error::state(
                origin,
                ErrorKind::Corrupt,
                format!("does not map {}", &*real),
            ));
        }
        let cow_dev = dm.info(&cow)?.device;
        let params = if merging {
            let p: SnapshotTargetParams = format!("{SNAPSHOT_MERGE} {}", o.params).parse()?;
            SnapshotTargetParams { merge: false, ..p }
        } else {
            let s = table_line(dm, snapshot)?;
            let p: SnapshotTargetParams = format!("{} {}", s.target_type, s.params).parse()?;
            if p.real != real_dev || p.cow != cow_dev {
                return Err(Error::state(
                    snapshot,
                    ErrorKind::Corrupt,
                    format!("is not a snapshot of {origin}"),
                ));
            }
            p
        };
        if params.cow != cow_dev {
            return Err(Error::state(
                snapshot,
                ErrorKind::Corrupt,
                format!("does not use {}", &*cow),
            ));
        }
        Ok(CowDevices {
            origin: origin.to_owned(),
            real,
            snapshot: snapshot.to_owned(),
            cow,
            params,
            size: o.length,
        })
    }

    /// The snapshot's status (not while merging: see [`CowMerge::progress`]).
    pub fn status(&self, dm: &DmControl) -> Result<SnapshotTargetStatus> {
        dm.status_of(&self.snapshot, SNAPSHOT, ErrorKind::Busy)?
            .parse()
    }

    /// Whether the origin is merging this snapshot.
    pub fn is_merging(&self, dm: &DmControl) -> Result<bool> {
        Ok(dm.single_status(&self.origin)?.0 == SNAPSHOT_MERGE)
    }

    /// Blocks until `until` holds or `timeout` passes; returns the status
    /// that satisfied it, or `None` on timeout. Invalidation wakes the wait
    /// at once (a device-mapper event); a fill threshold is checked on
    /// events and every `recheck`, as the kernel raises no event for it.
    pub fn wait(
        &self,
        dm: &DmControl,
        until: WaitUntil,
        timeout: Duration,
        recheck: Duration,
    ) -> Result<Option<SnapshotTargetStatus>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let since = dm.event_nr(&self.snapshot)?;
            let st = self.status(dm)?;
            let reached = match until {
                WaitUntil::Invalid => st.is_invalid(),
                WaitUntil::InvalidOrPercent(p) => {
                    st.is_invalid() || st.data_percent().is_some_and(|d| d >= p)
                }
            };
            if reached {
                return Ok(Some(st));
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(None);
            }
            let step = match until {
                WaitUntil::Invalid => left,
                WaitUntil::InvalidOrPercent(_) => left.min(recheck),
            };
            dm.wait_event(&self.snapshot, since, step)?;
        }
    }

    /// Starts merging the snapshot back into the origin, as LVM does: the
    /// origin gets `snapshot-merge`, the snapshot device an `error` table.
    /// Refused for an invalid snapshot or one whose merge failed.
    pub fn start_merge(self, dm: &DmControl) -> Result<CowMerge> {
        self.start_merge_then(dm, || Ok::<(), Error>(()))
    }

    /// As [`CowDevices::start_merge`], running `while_suspended` once both
    /// devices are suspended with their new tables loaded, before the
    /// resume: where LVM commits its metadata. If it fails, the devices go
    /// back to their old tables and the merge does not start.
    pub fn start_merge_then<E: From<Error>>(
        self,
        dm: &DmControl,
        while_suspended: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<CowMerge, E> {
        let st = self.status(dm)?;
        let start = match st {
            SnapshotTargetStatus::Active(u) => {
                Sectors(u.used.saturating_sub(*u.metadata.unwrap_or_default()))
            }
            SnapshotTargetStatus::Invalid => {
                return Err(Error::state(
                    &*self.snapshot,
                    ErrorKind::InvalidArgument,
                    "is invalid (its COW overflowed); it cannot be merged",
                )
                .into());
            }
            other => {
                return Err(Error::state(
                    &*self.snapshot,
                    ErrorKind::Busy,
                    format!("cannot be merged in state {other:?}"),
                )
                .into());
            }
        };
        dm.status_of(&self.origin, SNAPSHOT_ORIGIN, ErrorKind::Busy)?;
        let merge = SnapshotTargetParams {
            merge: true,
            ..self.params
        };
        let origin_table = [TableLine::target(Sectors(0), self.size, &merge)];
        let snap_table = [TableLine::error(Sectors(0), self.size)];
        let (o, s) = (self.origin.as_ref(), self.snapshot.as_ref());
        // LVM's order: both tables loaded, origin then snapshot suspended
        // (freeze and flush), origin resumed first: the kernel hands the
        // exceptions over from the suspended snapshot to the merging origin.
        // The guards resume both devices on every path: with their old
        // tables until `while_suspended` has succeeded, with the new ones after.
        let mut undo = Undo::new(dm);
        undo.load(o, &origin_table, false)?;
        undo.load(s, &snap_table, false)?;
        let mut go = dm.suspend_guard(o, Suspend::FREEZE)?;
        go.undo_on_drop();
        let mut gs = dm.suspend_guard(s, Suspend::FREEZE)?;
        gs.undo_on_drop();
        while_suspended()?;
        go.keep_on_drop();
        gs.keep_on_drop();
        undo.done();
        let ro = go.resume();
        let rs = gs.resume();
        if let Err(e) = ro.and(rs) {
            log::error!("merge of {s} into {o} committed, but: {e}");
            return Err(e.into());
        }
        Ok(CowMerge::new(self, start))
    }

    /// Removes the snapshot; the last one gives the origin back its own
    /// table and removes `-real`.
    pub fn remove(self, dm: &DmControl) -> Result<()> {
        dm.status_of(&self.origin, SNAPSHOT_ORIGIN, ErrorKind::Busy)?;
        if self.siblings(dm)?.is_empty() {
            return self.collapse(dm);
        }
        // Others stay: with the origin frozen and flushed (as LVM does
        // here), drop this one.
        let g = dm.suspend_guard(self.origin.as_ref(), Suspend::FREEZE)?;
        dm.remove(&self.snapshot)?;
        let r = dm.remove(&self.cow);
        g.resume()?;
        r
    }

    /// Grows the exception store live to `cow_table` (larger than its
    /// table now), as `lvextend` of a snapshot does: with the origin tree
    /// suspended (origin and snapshots frozen and flushed, then `-real` and
    /// every `-cow`), `while_suspended` runs (where LVM commits) and the
    /// grown table is swapped in on the resume, which goes `-real`, the
    /// `-cow` layers, the snapshots, the origin. LVM resumes the grown `-cow`
    /// before its commit; here it is resumed only after, so the kernel
    /// never writes exceptions into extents the committed metadata does not
    /// give the store. If `while_suspended` fails, every device resumes
    /// with its old table. The resume goes on past a failing device, so
    /// none is left suspended that can be resumed.
    pub fn grow_cow_then<E: From<Error>>(
        &self,
        dm: &DmControl,
        cow_table: &[TableLine],
        while_suspended: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let old = table_size(&dm.table(&self.cow)?);
        let new = table_size(cow_table);
        if new <= old {
            return Err(Error::InvalidArgument(format!(
                "new table of {} ({} sectors) does not grow it ({} sectors)",
                &*self.cow, *new, *old
            ))
            .into());
        }
        dm.status_of(&self.origin, SNAPSHOT_ORIGIN, ErrorKind::Busy)?;
        let mut snaps = vec![self.snapshot.clone()];
        snaps.extend(self.siblings(dm)?);
        let cows = snaps
            .iter()
            .map(|s| layer_name(s, Layer::Cow.as_str()))
            .collect::<Result<Vec<_>>>()?;
        let mut undo = Undo::new(dm);
        undo.load(&self.cow, cow_table, false)?;
        undo.suspend(&self.origin, Suspend::FREEZE)?;
        for s in &snaps {
            undo.suspend(s, Suspend::FREEZE)?;
        }
        undo.suspend(&self.real, Suspend::FLUSH)?;
        for c in &cows {
            undo.suspend(c, Suspend::FLUSH)?;
        }
        while_suspended()?;
        undo.done();
        let order = std::iter::once(&self.real)
            .chain(&cows)
            .chain(&snaps)
            .chain(std::iter::once(&self.origin));
        let mut first = None;
        for n in order {
            if let Err(e) = dm.resume(n) {
                log::error!("resuming {} after growing {}: {e}", &**n, &*self.cow);
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Origin back to the `-real` table, then the layers removed.
    fn collapse(&self, dm: &DmControl) -> Result<()> {
        self.detach(dm, false, || Ok::<(), Error>(()))
    }

    /// Gives the origin a plain table again (the one `-real` has), or, with
    /// `keep_real` (other snapshots stay), `snapshot-origin` over `-real`;
    /// then removes this snapshot's devices.
    pub(super) fn detach<E: From<Error>>(
        &self,
        dm: &DmControl,
        keep_real: bool,
        while_suspended: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let table = if keep_real {
            let p = SnapshotOriginTargetParams {
                real: self.params.real,
            };
            vec![TableLine::target(Sectors(0), self.size, &p)]
        } else {
            dm.table(&self.real)?
        };
        let o = self.origin.as_ref();
        let ro = dm.info(o)?.read_only;
        // LVM suspends without a filesystem freeze when the origin goes back
        // to plain (after a merge, or removing its last snapshot): the data
        // it shows does not change.
        let mut undo = Undo::new(dm);
        undo.load(o, &table, ro)?;
        let mut g = dm.suspend_guard(o, Suspend::FLUSH)?;
        g.undo_on_drop();
        while_suspended()?;
        g.keep_on_drop();
        undo.done();
        g.resume()?;
        let mut first = None;
        let layers = [&self.snapshot, &self.cow, &self.real];
        for n in &layers[..if keep_real { 2 } else { 3 }] {
            if let Err(e) = dm.remove(n) {
                log::error!("{e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Writes zeros over the first chunk of a fresh exception store, so the
/// kernel starts an empty one (as LVM does).
fn zero_header(cow: &DmName, chunk: ChunkSize) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let path = node_path(cow);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let len = chunk.sectors().bytes_usize().ok_or_else(|| {
        Error::InvalidArgument(format!("chunk size of {} sectors", *chunk.sectors()))
    })?;
    crate::fault::point("zero the COW header");
    f.write_all_at(&vec![0u8; len], 0)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("zero the header of {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicemapper::Device;

    #[test]
    fn origin_params_match_table_line() {
        let d = Device {
            major: 253,
            minor: 4,
        };
        assert_eq!(
            format!("{SNAPSHOT_ORIGIN} {d}")
                .parse::<SnapshotOriginTargetParams>()
                .unwrap()
                .real,
            d
        );
    }
}
