//! Snapshots of several origins taken at one instant and committed in one
//! metadata write: all or none.
//!
//! The order, for every origin at once: the new metadata precommitted while
//! the COW devices are made (LVM's `vg_write` and preload); every active
//! origin suspended with a filesystem freeze and flush; the COW layers
//! resumed and the thin pools sent their `create_snap` messages; the
//! metadata committed while the origins are still suspended (LVM's
//! `lv_update_and_reload` order); then every origin resumed. Until the
//! commit lands, any failure undoes every step and the committed metadata
//! keeps its seqno. A thin pool's queued messages are dropped by a second
//! commit, as LVM's thin create does. A run killed after the messages but
//! before the commit leaves the pool ahead of the committed metadata; the
//! next operation's recovery undoes that from the precommitted text.

use devicemapper::{DmNameBuf, ThinDevId, ThinPoolStatus, ThinPoolStatusSummary};

use super::vg::{Session, VolumeGroup};
use super::{
    Created, Error as SnapError, SnapSize, SnapshotOptions, check_chunk_size, plan_cow_extents,
};
use crate::activate::{CowDevices, PreparedCow, ThinPool};
use crate::dm::{self, DmControl, Suspend};
use crate::error::Result;
use crate::lvm::names::validate_lv_name;
use crate::lvm::vg::{Creation, NewThinLv, Vg};
use crate::units::{Bytes, SectorBytes, Sectors};

use super::create::{DEFAULT_CHUNK, LiveCow};

/// What kind of snapshot an origin takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Cow,
    Thin,
}

/// The thin snapshots one pool makes in a group.
struct PoolPlan {
    pool: String,
    tpool: ThinPool,
    old_tid: u64,
    /// (snapshot id, origin id).
    snaps: Vec<(ThinDevId, ThinDevId)>,
}

impl VolumeGroup {
    /// Creates one snapshot of each `(origin, name)`, all of this VG, at one
    /// instant: every active origin is suspended (filesystem frozen, I/O
    /// flushed) before any is resumed, so the snapshots hold the same
    /// moment of all origins, as a crash would have left them. COW and thin
    /// origins may be mixed; COW stores are sized by `opts` as
    /// [`VolumeGroup::create_snapshot`] sizes them. All snapshots go into
    /// the metadata in one commit: if any is refused or any step fails,
    /// none is made, no device is left and the metadata is as it was.
    /// The result is in the order of `items`.
    ///
    /// ```no_run
    /// use lvsnap::snapshot::{SnapshotOptions, VolumeGroup};
    /// let vg = VolumeGroup::open("vg0")?;
    /// let made = vg.create_group(&[("db", "db-snap"), ("wal", "wal-snap")], &SnapshotOptions::default())?;
    /// assert_eq!(made.len(), 2);
    /// # Ok::<(), lvsnap::Error>(())
    /// ```
    pub fn create_group<O: AsRef<str>, N: AsRef<str>>(
        &self,
        items: &[(O, N)],
        opts: &SnapshotOptions,
    ) -> Result<Vec<Created>> {
        let items: Vec<(&str, &str)> = items
            .iter()
            .map(|(o, n)| (o.as_ref(), n.as_ref()))
            .collect();
        if items.is_empty() {
            return Err(SnapError::InvalidArgument("no snapshot to create".into()).into());
        }
        for (i, &(o, n)) in items.iter().enumerate() {
            validate_lv_name(n).map_err(|e| SnapError::InvalidArgument(e.to_string()))?;
            for &(o2, n2) in &items[..i] {
                if n == n2 {
                    return Err(SnapError::InvalidArgument(format!(
                        "snapshot name \"{n}\" is given twice"
                    ))
                    .into());
                }
                if o == o2 {
                    return Err(SnapError::InvalidArgument(format!(
                        "origin {}/{o} is given twice",
                        self.name()
                    ))
                    .into());
                }
            }
        }
        let chunk = match opts.chunk_size {
            Some(c) => check_chunk_size(c)?,
            None => DEFAULT_CHUNK,
        };
        let mut s = self.write_session()?;
        let kinds = items
            .iter()
            .map(|&(o, n)| self.check_snapshot_of(s.md.vg(), o, n))
            .collect::<Result<Vec<Kind>>>()?;
        self.create_many(&mut s, &items, &kinds, opts, chunk)?;
        // The statuses come from the session's own, now committed, metadata.
        items
            .iter()
            .zip(&kinds)
            .map(|(&(_, n), &k)| {
                Ok(Created {
                    status: self.status_in(&s, n)?,
                    snapsize_ignored: k == Kind::Thin && opts.snapsize != SnapSize::OriginSize,
                })
            })
            .collect()
    }

    /// Why `origin` cannot take snapshot `name`, as `lvcreate -s` refuses;
    /// else whether the snapshot is COW or thin.
    pub(super) fn check_snapshot_of(&self, vg: &Vg, origin: &str, name: &str) -> Result<Kind> {
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
        if o.thin().is_some() {
            return Ok(Kind::Thin);
        }
        if o.is_thin_pool() {
            return Err(SnapError::Unsupported(format!(
                "{full} is a thin pool; snapshots of pools are not supported"
            ))
            .into());
        }
        Ok(Kind::Cow)
    }

    /// Plans and makes the snapshots `items` (checked, of `kinds`) in
    /// session `s`: see the module's documentation for the order.
    pub(super) fn create_many(
        &self,
        s: &mut Session,
        items: &[(&str, &str)],
        kinds: &[Kind],
        opts: &SnapshotOptions,
        chunk: Sectors,
    ) -> Result<()> {
        let dm = match DmControl::shared() {
            Ok(dm) => Some(dm),
            Err(e) if !kinds.contains(&Kind::Thin) => {
                log::debug!("no device-mapper ({e}); metadata only");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut pools = self.plan_pools(s, dm.as_ref(), items, kinds)?;

        // The new metadata, one snapshot after the other: each COW store is
        // taken from what the ones before left free.
        let now = Creation::now();
        for (&(origin, name), &kind) in items.iter().zip(kinds) {
            match kind {
                Kind::Cow => self.plan_cow(s, origin, name, opts, chunk, &now)?,
                Kind::Thin => self.plan_thin(s, &mut pools, (origin, name), opts.writable, &now)?,
            }
        }

        // What must be live: COW snapshots of active origins, and the
        // active thin origins. A store of an inactive origin is zeroed
        // straight on its PV (its extents were free in the committed
        // metadata, so this harms nothing if we stop here).
        let mut lives: Vec<LiveCow> = Vec::new();
        let mut thin_live: Vec<DmNameBuf> = Vec::new();
        for (&(origin, name), &kind) in items.iter().zip(kinds) {
            let live = match (kind, &dm) {
                (Kind::Cow, Some(dm)) => {
                    self.live_cow(s, dm, origin, name, chunk, !opts.writable)?
                }
                (Kind::Cow, None) => None,
                (Kind::Thin, Some(dm)) => {
                    let d = self.dm_name(origin, None)?.into_dm_name();
                    if dm.exists(&d)? {
                        let i = dm.info(&d)?;
                        if i.suspended || i.inactive_table || !i.live_table {
                            return Err(SnapError::Busy(format!(
                                "{}/{origin} is suspended or has a table waiting to load",
                                self.name()
                            ))
                            .into());
                        }
                        thin_live.push(d);
                    }
                    continue;
                }
                (Kind::Thin, None) => continue,
            };
            match live {
                Some(l) => lives.push(l),
                None => {
                    let cow_lv =
                        s.md.vg()
                            .lv(name)
                            .cloned()
                            .ok_or_else(|| SnapError::NotFound(format!("new COW LV {name}")))?;
                    let len = chunk.bytes_usize().ok_or_else(|| {
                        SnapError::InvalidArgument(format!("chunk size {} sectors", *chunk))
                    })?;
                    s.zero_lv_start(&cow_lv, len)?;
                }
            }
        }
        let names: Vec<&str> = items.iter().map(|i| i.1).collect();
        let what = format!(
            "create snapshot{} {}/{}",
            if items.len() > 1 { "s" } else { "" },
            self.name(),
            names.join(",")
        );
        let Some(dm) = dm
            .as_ref()
            .filter(|_| !lives.is_empty() || !pools.is_empty())
        else {
            // Nothing live: the metadata alone.
            s.precommit(&what)?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            return Ok(());
        };

        let specs: Vec<_> = lives.iter().map(LiveCow::spec).collect();
        // Declared first, dropped last: on any error or panic, thin
        // snapshots are deleted, then COW devices removed (and waiting
        // tables dropped), then the origins resumed unchanged (the guards).
        let mut suspended: Vec<dm::Suspended<'_>> = Vec::new();
        // With a second CPU, the devices (which zero each store through its
        // store layer) are made while the metadata is precommitted on another
        // thread: neither needs the other until the origins are suspended.
        // On one CPU the thread would only add its own start-up.
        let prepare_all = || {
            specs
                .iter()
                .map(|sp| CowDevices::prepare(dm, sp))
                .collect::<dm::Result<Vec<PreparedCow<'_>>>>()
        };
        let (prepared, pre) = if overlap_pays() {
            std::thread::scope(|sc| {
                let pre = sc.spawn(|| s.precommit(&what));
                let prepared = prepare_all();
                let pre = pre.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (prepared, pre)
            })
        } else {
            s.precommit(&what)?;
            (prepare_all(), Ok(()))
        };
        let mut prepared = match (prepared, pre) {
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
        let mut thin_made = ThinMade {
            dm,
            pools: Vec::new(),
        };
        let step = (|| -> Result<()> {
            // Frozen and flushed, as LVM suspends an origin before a snapshot.
            let origins = specs.iter().map(|sp| sp.origin);
            for o in origins.chain(thin_live.iter().map(|t| &**t)) {
                let mut g = dm.suspend_guard(o, Suspend::FREEZE)?;
                g.undo_on_drop();
                suspended.push(g);
            }
            // The instant: every origin is suspended.
            for p in &mut prepared {
                p.resume_layers()?;
            }
            for p in &pools {
                let tid = Some((p.old_tid, p.new_tid()?));
                p.tpool.create_snaps(dm, &p.snaps, tid)?;
                thin_made.pools.push(p);
            }
            s.commit()
        })();
        if let Err(e) = step {
            drop(thin_made);
            drop(prepared);
            drop(suspended);
            s.revert();
            return Err(e);
        }
        // Committed: from here on nothing is undone.
        thin_made.pools.clear();
        // Every origin resumed with what it has loaded (the snapshots go
        // live); all are tried, the first failure reported. A guard whose
        // resume fails retries, then falls back to the live table.
        let mut resumed = Ok(());
        for mut g in suspended.drain(..) {
            g.keep_on_drop();
            if let Err(e) = g.resume() {
                log::error!("{what}: resuming an origin: {e}");
                if resumed.is_ok() {
                    resumed = Err(e);
                }
            }
        }
        for p in prepared {
            p.into_live();
        }
        for l in &lives {
            self.make_link(&l.name);
        }
        if !pools.is_empty() {
            let cleared = (|| -> Result<()> {
                for p in &pools {
                    s.md.clear_thin_messages(&p.pool)?;
                }
                s.precommit(&format!("{what}: made in the pool"))?;
                if let Err(e) = s.commit() {
                    s.revert();
                    return Err(e);
                }
                Ok(())
            })();
            // The snapshots are made and the metadata says so; messages left
            // queued match the pool's transaction id, which LVM skips.
            if let Err(e) = cleared {
                log::warn!("{what}: dropping the thin pool messages: {e}");
            }
        }
        resumed.map_err(|e| {
            SnapError::Busy(format!(
                "{what}: the snapshots are made, but an origin could not be resumed: {e}"
            ))
            .into()
        })
    }

    fn plan_thin(
        &self,
        s: &mut Session,
        pools: &mut [PoolPlan],
        (origin, name): (&str, &str),
        writable: bool,
        now: &Creation,
    ) -> Result<()> {
        let vg = s.md.vg();
        let o = vg
            .lv(origin)
            .ok_or_else(|| SnapError::NotFound(format!("thin LV {origin}")))?;
        let (pool, origin_id) = o
            .thin()
            .ok_or_else(|| SnapError::NotFound(format!("thin LV {origin}")))?;
        let extents = o.extents();
        let plan = pools
            .iter_mut()
            .find(|p| p.pool == pool)
            .ok_or_else(|| SnapError::NotFound(format!("thin pool of {origin}")))?;
        // LVM's thin snapshots skip activation.
        let lv = NewThinLv {
            name,
            pool: &plan.pool,
            extents,
            origin: Some(origin),
            activation_skip: true,
            batched: !plan.snaps.is_empty(),
        };
        let id = s.md.add_thin_lv(&lv, now)?;
        // Read-only unless asked, as `lvcreate -s -p r|rw`.
        s.md.set_writable(name, writable)?;
        plan.snaps.push((thin_id(id)?, thin_id(origin_id)?));
        Ok(())
    }

    fn plan_cow(
        &self,
        s: &mut Session,
        origin: &str,
        name: &str,
        opts: &SnapshotOptions,
        chunk: Sectors,
        now: &Creation,
    ) -> Result<()> {
        let vg = s.md.vg();
        let o = vg
            .lv(origin)
            .ok_or_else(|| SnapError::NotFound(format!("logical volume {origin}")))?;
        let ext = vg.extent_size.sectors();
        let cow = plan_cow_extents(opts.snapsize, o.extents(), ext, chunk, false)?;
        let free = s.md.free_space().total();
        if cow.as_u64() > free {
            let bytes = |n: u64| Bytes((*ext.bytes()).saturating_mul(u128::from(n)));
            return Err(SnapError::NoSpace(format!(
                "volume group \"{}\" has insufficient free space ({} extents, {}): \
                 {} extents ({}) required",
                self.name(),
                free,
                bytes(free),
                cow.0,
                bytes(cow.as_u64())
            ))
            .into());
        }
        s.md.add_cow_snapshot(origin, name, cow, chunk, !opts.writable, now)?;
        Ok(())
    }

    /// The pools the thin items need, each checked as LVM checks before it
    /// queues a message: active, healthy, no messages pending, the kernel's
    /// transaction id the metadata's.
    fn plan_pools(
        &self,
        s: &Session,
        dm: Option<&DmControl>,
        items: &[(&str, &str)],
        kinds: &[Kind],
    ) -> Result<Vec<PoolPlan>> {
        let mut out: Vec<PoolPlan> = Vec::new();
        for (&(origin, _), &kind) in items.iter().zip(kinds) {
            if kind != Kind::Thin {
                continue;
            }
            let pool =
                s.md.vg()
                    .thin_pool_of(origin)
                    .ok_or_else(|| SnapError::NotFound(format!("thin pool of {origin}")))?
                    .to_owned();
            if out.iter().any(|p| p.pool == pool) {
                continue;
            }
            let Some(dm) = dm else {
                return Err(SnapError::Unsupported("no device-mapper".into()).into());
            };
            let old_tid = super::thin::pool_transaction(s, &pool)?;
            let tpool = ThinPool::new(self.name(), &pool)?;
            if !tpool.is_active(dm)? {
                return Err(SnapError::Unsupported(format!(
                    "thin pool {}/{pool} is not active: activate it, or snapshot its \
                     volumes alone",
                    self.name()
                ))
                .into());
            }
            match tpool.status(dm)? {
                ThinPoolStatus::Working(w)
                    if w.summary == ThinPoolStatusSummary::Good && !w.needs_check =>
                {
                    if w.transaction_id != old_tid {
                        return Err(SnapError::Busy(format!(
                            "thin pool {}/{pool} transaction_id is {}, while expected {old_tid}",
                            self.name(),
                            w.transaction_id
                        ))
                        .into());
                    }
                }
                st => {
                    return Err(SnapError::Busy(format!(
                        "cannot send messages to thin pool {}/{pool} in state {st:?}",
                        self.name()
                    ))
                    .into());
                }
            }
            out.push(PoolPlan {
                pool,
                tpool,
                old_tid,
                snaps: Vec::new(),
            });
        }
        Ok(out)
    }
}

fn thin_id(id: u32) -> Result<ThinDevId> {
    ThinDevId::new_u64(id.into())
        .map_err(|_| SnapError::InvalidArgument(format!("thin device id {id} out of range")).into())
}

/// Thin snapshots sent to their pools, deleted again on drop unless the
/// group committed.
struct ThinMade<'a, 'p> {
    dm: &'a DmControl,
    pools: Vec<&'p PoolPlan>,
}

impl Drop for ThinMade<'_, '_> {
    fn drop(&mut self) {
        for p in self.pools.drain(..).rev() {
            let ids: Vec<ThinDevId> = p.snaps.iter().map(|s| s.0).collect();
            let tid = p.new_tid().ok().map(|n| (p.old_tid, n));
            if let Err(e) = p.tpool.undo_snaps(self.dm, &ids, tid) {
                log::error!("undo: thin snapshots in {}: {e}", p.tpool.dm_name());
            }
        }
    }
}

impl PoolPlan {
    /// LVM moves a pool's transaction id one step for all messages of one commit.
    fn new_tid(&self) -> Result<u64> {
        self.old_tid.checked_add(1).ok_or_else(|| {
            SnapError::InvalidArgument(format!("thin pool {}: transaction id overflows", self.pool))
                .into()
        })
    }
}

/// Whether this process may run on more than one CPU (asked once, with
/// one sched_getaffinity(2); std's available_parallelism also reads the
/// cgroup files, which a yes-or-no does not need).
fn overlap_pays() -> bool {
    use nix::sched::{CpuSet, sched_getaffinity};
    use nix::unistd::Pid;
    static MANY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MANY.get_or_init(|| {
        sched_getaffinity(Pid::from_raw(0)).is_ok_and(|set| {
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .nth(1)
                .is_some()
        })
    })
}
