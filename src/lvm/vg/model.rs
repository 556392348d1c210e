//! The typed view of a volume group: PVs, LVs, segments, COW snapshots.

use super::*;

/// A physical volume as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    /// Its key in the metadata (`pv0`), which segments refer to.
    pub key: String,
    /// The PV's LVM id.
    pub id: PvId,
    /// The device path LVM last saw it at (a hint only).
    pub device: Option<String>,
    /// `status` flags (`ALLOCATABLE`, ...).
    pub status: FlagList<PvFlags>,
    /// Size of the device.
    pub dev_size: Sectors,
    /// Where the first extent starts.
    pub pe_start: Sectors,
    /// How many extents the PV holds.
    pub pe_count: Extents,
}

impl Pv {
    /// Whether new extents may be allocated here.
    pub fn allocatable(&self) -> bool {
        self.status.contains(PvFlags::ALLOCATABLE)
    }
}

/// One area of a striped segment: extents on a PV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    /// The PV's key (`pv0`).
    pub pv: String,
    /// First physical extent on that PV.
    pub start: Extents,
}

/// A thin-pool message queued in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThinMessage {
    /// Create the thin device of this LV (a thin LV or thin snapshot).
    Create(String),
    /// Delete this device id (`uint32_t` in LVM).
    Delete(u32),
}

/// What a segment maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// `striped` (linear when there is one stripe).
    Striped {
        /// Stripe size, absent for linear (a `uint32_t` of sectors in LVM).
        stripe_size: Option<Sectors>,
        /// The areas, one per stripe.
        stripes: Vec<Stripe>,
    },
    /// `snapshot`: the segment of an LVM `snapshotN` LV.
    Snapshot {
        /// COW chunk size (a `uint32_t` of sectors in LVM).
        chunk_size: Sectors,
        /// The origin LV's name.
        origin: String,
        /// The COW LV's name (the snapshot as users name it).
        cow: String,
        /// True when recorded as `merging_store` (a merge is pending or running).
        merging: bool,
    },
    /// `thin-pool`.
    ThinPool {
        /// The metadata LV (`pool_tmeta`).
        metadata: String,
        /// The data LV (`pool_tdata`).
        pool: String,
        /// The pool's transaction id.
        transaction_id: u64,
        /// Pool chunk size (a `uint32_t` of sectors in LVM).
        chunk_size: Sectors,
        /// `passdown`, `nopassdown` or `ignore`.
        discards: Option<String>,
        /// Whether new blocks are zeroed.
        zero_new_blocks: bool,
        /// Messages queued for the kernel pool.
        messages: Vec<ThinMessage>,
    },
    /// `thin`: a thin LV or thin snapshot.
    Thin {
        /// The pool LV's name.
        thin_pool: String,
        /// The pool's transaction id when this LV was created.
        transaction_id: u64,
        /// The thin device id in the pool (`uint32_t` in LVM, which
        /// refuses more than 24 bits).
        device_id: u32,
        /// The origin of a thin snapshot.
        origin: Option<String>,
    },
    /// Any other segment type, kept as it is (raid, cache, mirror, ...).
    Other {
        /// The `type` string.
        type_name: String,
    },
}

/// One segment of an LV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First logical extent.
    pub start_extent: Extents,
    /// Length in extents.
    pub extent_count: Extents,
    /// What it maps to.
    pub kind: SegmentKind,
}

/// A logical volume as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    /// Its name.
    pub name: String,
    /// Its LVM id.
    pub id: LvId,
    /// `status` flags (`READ`, `WRITE`, `VISIBLE`, ...).
    pub status: FlagList<LvFlags>,
    /// `flags` (`ACTIVATION_SKIP`, ...).
    pub flags: FlagList<LvFlags>,
    /// Tags.
    pub tags: Vec<String>,
    /// Seconds since the epoch, if recorded.
    pub creation_time: Option<i64>,
    /// Host that created it, if recorded.
    pub creation_host: Option<String>,
    /// Segments in logical order.
    pub segments: Vec<Segment>,
    /// The first field of its segments read past the range of LVM's type
    /// for it (held as LVM holds it, its low bits): damage.
    pub(super) out_of_range: Option<String>,
}

impl Lv {
    /// Whether `status` holds `flag`.
    pub fn has_status(&self, flag: LvFlags) -> bool {
        self.status.contains(flag)
    }

    /// Whether `flags` holds `flag`.
    pub fn has_flag(&self, flag: LvFlags) -> bool {
        self.flags.contains(flag)
    }

    /// Its length in extents (sum of its segments). A sum past LVM's
    /// `uint32_t` is held at `u32::MAX`: such metadata is damage
    /// ([`Metadata::damage`] names it) and nothing is written to it.
    pub fn extents(&self) -> Extents {
        let n: u64 = self.segments.iter().map(|s| s.extent_count.as_u64()).sum();
        Extents(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The snapshot segment, if this is an LVM `snapshotN` LV.
    pub(super) fn snapshot_segment(&self) -> Option<SnapshotSegment<'_>> {
        match self.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::Snapshot {
                chunk_size,
                origin,
                cow,
                merging,
            }) => Some(SnapshotSegment {
                chunk_size: *chunk_size,
                origin,
                cow,
                merging: *merging,
            }),
            _ => None,
        }
    }

    /// The COW snapshot this `snapshotN` LV carries, if it is one.
    pub(super) fn as_cow_snapshot(&self) -> Option<CowSnapshot> {
        let s = self.snapshot_segment()?;
        Some(CowSnapshot {
            name: s.cow.to_owned(),
            snapshot_lv: self.name.clone(),
            origin: s.origin.to_owned(),
            chunk_size: s.chunk_size,
            merging: s.merging,
        })
    }

    /// The pool and device id, if this is a thin LV.
    pub fn thin(&self) -> Option<(&str, u32)> {
        match self.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::Thin {
                thin_pool,
                device_id,
                ..
            }) => Some((thin_pool, *device_id)),
            _ => None,
        }
    }

    /// The origin of a thin snapshot.
    pub fn thin_origin(&self) -> Option<&str> {
        match self.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::Thin { origin, .. }) => origin.as_deref(),
            _ => None,
        }
    }

    /// Whether this LV is a thin pool.
    pub fn is_thin_pool(&self) -> bool {
        matches!(
            self.segments.first().map(|s| &s.kind),
            Some(SegmentKind::ThinPool { .. })
        )
    }
}

/// What a `snapshotN` LV's snapshot segment links.
pub(super) struct SnapshotSegment<'a> {
    /// COW chunk size.
    pub(super) chunk_size: Sectors,
    /// The origin LV.
    pub(super) origin: &'a str,
    /// The COW LV.
    pub(super) cow: &'a str,
    /// A merge into the origin is pending or running.
    pub(super) merging: bool,
}

/// A COW snapshot as users see it: the COW LV, named by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CowSnapshot {
    /// The COW LV's name (the snapshot's name for users, `lvs` and HwameiStor).
    pub name: String,
    /// The hidden `snapshotN` LV that carries the snapshot segment.
    pub snapshot_lv: String,
    /// The origin LV's name.
    pub origin: String,
    /// COW chunk size.
    pub chunk_size: Sectors,
    /// A merge into the origin is pending or running.
    pub merging: bool,
}

/// A VG's COW links indexed by origin and by COW LV ([`Vg::cow_links`]):
/// the answers of [`Vg::is_origin`], [`Vg::snapshots_of`] and
/// [`Vg::cow_snapshot`], each in one lookup.
#[derive(Debug)]
pub struct CowLinks<'a> {
    vg: &'a Vg,
    /// The `snapshotN` LVs of each origin, in LV order.
    by_origin: HashMap<&'a str, Vec<&'a Lv>>,
    /// The first `snapshotN` LV (in LV order) of each COW LV.
    by_cow: HashMap<&'a str, &'a Lv>,
}

impl<'a> CowLinks<'a> {
    /// The VG indexed.
    pub fn vg(&self) -> &'a Vg {
        self.vg
    }

    /// [`Vg::is_origin`].
    pub fn is_origin(&self, name: &str) -> bool {
        self.by_origin.contains_key(name)
    }

    /// [`Vg::snapshots_of`].
    pub fn snapshots_of(&self, origin: &str) -> Vec<CowSnapshot> {
        self.by_origin
            .get(origin)
            .map(|ls| ls.iter().filter_map(|l| l.as_cow_snapshot()).collect())
            .unwrap_or_default()
    }

    /// [`Vg::cow_snapshot`].
    pub fn cow_snapshot(&self, name: &str) -> Option<CowSnapshot> {
        self.by_cow.get(name).and_then(|l| l.as_cow_snapshot())
    }
}

/// The thin device ids of a rollback [`Metadata::thin_rollback`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinRollback {
    /// The pool.
    pub pool: String,
    /// The origin's device before, queued for `delete`.
    pub old_origin_id: u32,
    /// The snapshot's device, now the origin's.
    pub snap_id: u32,
    /// The kept snapshot's new device (`create_snap <new> <snap_id>`).
    pub new_snap_id: Option<u32>,
}

/// A typed volume group, built from the metadata tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    /// The VG's name.
    pub name: String,
    /// The VG's LVM id.
    pub id: VgId,
    /// The metadata sequence number.
    pub seqno: u32,
    /// `status` flags (`RESIZEABLE`, `READ`, `WRITE`).
    pub status: FlagList<VgFlags>,
    /// `flags`.
    pub flags: FlagList<VgFlags>,
    /// Tags.
    pub tags: Vec<String>,
    /// Size of one extent.
    pub extent_size: ExtentSize,
    /// Maximum number of LVs (0: no limit).
    pub max_lv: u32,
    /// Maximum number of PVs (0: no limit).
    pub max_pv: u32,
    /// Metadata copies to keep (0: unmanaged).
    pub metadata_copies: u32,
    /// PVs in metadata order.
    pub pvs: Vec<Pv>,
    /// LVs in metadata order (including hidden ones).
    pub lvs: Vec<Lv>,
    /// The first field read past the range of LVM's type for it: kept as
    /// LVM keeps it (its low bits) for reading, and damage.
    pub(super) out_of_range: Option<String>,
}

impl Vg {
    /// The LV called `name`.
    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// The PV with key `key` (`pv0`).
    pub fn pv(&self, key: &str) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.key == key)
    }

    /// The size of LV `name` (its own extents).
    pub fn lv_size(&self, name: &str) -> Option<Sectors> {
        self.lv(name)?.extents().sectors(self.extent_size)
    }

    /// All COW snapshots, in LV order of their `snapshotN` LVs.
    pub fn cow_snapshots(&self) -> Vec<CowSnapshot> {
        self.lvs.iter().filter_map(Lv::as_cow_snapshot).collect()
    }

    /// The COW snapshot whose COW LV is `name`, if it is one.
    pub fn cow_snapshot(&self, name: &str) -> Option<CowSnapshot> {
        self.lvs
            .iter()
            .filter(|l| l.snapshot_segment().is_some_and(|s| s.cow == name))
            .find_map(Lv::as_cow_snapshot)
    }

    /// Snapshots of origin `origin`.
    pub fn snapshots_of(&self, origin: &str) -> Vec<CowSnapshot> {
        self.lvs
            .iter()
            .filter(|l| l.snapshot_segment().is_some_and(|s| s.origin == origin))
            .filter_map(Lv::as_cow_snapshot)
            .collect()
    }

    /// Whether `name` is an origin of COW snapshots.
    pub fn is_origin(&self, name: &str) -> bool {
        self.lvs
            .iter()
            .any(|l| l.snapshot_segment().is_some_and(|s| s.origin == name))
    }

    /// The VG's COW links indexed once, for callers that ask about many
    /// LVs or devices: each question then costs a lookup, not a walk of
    /// every LV.
    pub fn cow_links(&self) -> CowLinks<'_> {
        let mut by_origin: HashMap<&str, Vec<&Lv>> = HashMap::new();
        let mut by_cow: HashMap<&str, &Lv> = HashMap::new();
        for l in &self.lvs {
            if let Some(s) = l.snapshot_segment() {
                by_origin.entry(s.origin).or_default().push(l);
                by_cow.entry(s.cow).or_insert(l);
            }
        }
        CowLinks {
            vg: self,
            by_origin,
            by_cow,
        }
    }

    /// The thin pool of LV `name`, if it is thin.
    pub fn thin_pool_of(&self, name: &str) -> Option<&str> {
        self.lv(name)?.thin().map(|t| t.0)
    }

    /// Whether LV `name` is visible as LVM decides it (`lv_is_visible`):
    /// `snapshotN` LVs never, a COW LV as its origin unless merging, others by
    /// their `VISIBLE` flag.
    pub fn is_visible(&self, name: &str) -> bool {
        let Some(lv) = self.lv(name) else {
            return false;
        };
        if lv.snapshot_segment().is_some() {
            return false;
        }
        if let Some(s) = self.cow_snapshot(name) {
            return !s.merging
                && self
                    .lv(&s.origin)
                    .is_some_and(|o| o.has_status(LvFlags::VISIBLE));
        }
        lv.has_status(LvFlags::VISIBLE)
    }

    /// Names of the LVs `lvs` lists without `-a`.
    pub fn visible_lvs(&self) -> Vec<&str> {
        self.lvs
            .iter()
            .zip(self.visibility())
            .filter(|(_, v)| *v)
            .map(|(l, _)| l.name.as_str())
            .collect()
    }

    /// [`Vg::is_visible`] of every LV in LV order, in one pass over the LVs
    /// (name lookups by index, each finding the first match as `lv` does).
    pub(super) fn visibility(&self) -> Vec<bool> {
        let mut by_name: HashMap<&str, &Lv> = HashMap::with_capacity(self.lvs.len());
        let mut cows: HashMap<&str, (&str, bool)> = HashMap::new();
        // Per LV, the first LV of its name (itself unless a duplicate), found
        // while the map is built rather than by a second lookup.
        let mut first: Vec<&Lv> = Vec::with_capacity(self.lvs.len());
        for l in &self.lvs {
            first.push(by_name.entry(&l.name).or_insert(l));
            if let Some(SnapshotSegment {
                origin,
                cow,
                merging,
                ..
            }) = l.snapshot_segment()
            {
                cows.entry(cow).or_insert((origin, merging));
            }
        }
        let visible = |lv: &Lv| {
            if lv.snapshot_segment().is_some() {
                return false;
            }
            match cows.get(lv.name.as_str()) {
                Some((origin, merging)) => {
                    !merging
                        && by_name
                            .get(origin)
                            .is_some_and(|o| o.has_status(LvFlags::VISIBLE))
                }
                None => lv.has_status(LvFlags::VISIBLE),
            }
        };
        first.into_iter().map(visible).collect()
    }

    /// Free extents of every allocatable PV (PV order), after subtracting
    /// every area any segment uses.
    pub(crate) fn free_space(&self, doc_vg: &Body) -> FreeSpace {
        let mut used: Vec<Area> = Vec::new();
        let pv_index = |key: &str| self.pvs.iter().position(|p| p.key == key);
        for (lv, lvsec) in self.lvs.iter().zip(lv_sections(doc_vg)) {
            for (seg, segsec) in lv.segments.iter().zip(segment_sections(&lvsec.body)) {
                match &seg.kind {
                    SegmentKind::Striped { stripes, .. } => {
                        let n = stripes.len().max(1) as u64;
                        for s in stripes {
                            if let Some(i) = pv_index(&s.pv) {
                                used.push(Area {
                                    pv: i,
                                    start: s.start.as_u64(),
                                    count: seg.extent_count.as_u64() / n,
                                });
                            }
                        }
                    }
                    // Unknown types: any ("pvN", pe) pair in an array counts
                    // as an area of the whole segment's length (never less
                    // than it uses).
                    _ => {
                        for e in &segsec.body.entries {
                            let Entry::Assign(a) = e else { continue };
                            let Some(arr) = a.value.as_array() else {
                                continue;
                            };
                            for pair in arr.items.windows(2) {
                                let [pv, pe] = pair else { continue };
                                if let (Some(pv), Some(pe)) = (pv.as_str(), pe.as_int()) {
                                    if let (Some(i), Ok(pe)) = (pv_index(pv), u64::try_from(pe)) {
                                        used.push(Area {
                                            pv: i,
                                            start: pe,
                                            count: seg.extent_count.as_u64(),
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let pvs: Vec<PvExtents> = self
            .pvs
            .iter()
            .map(|p| PvExtents {
                allocatable: p.allocatable(),
                pe_count: p.pe_count.as_u64(),
            })
            .collect();
        alloc::free_space(&pvs, &used)
    }
}

/// Who creates an LV and when, as LVM records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// Seconds since the epoch.
    pub time: i64,
    /// Host name (`creation_host`).
    pub host: String,
}

impl Creation {
    /// Now, on this host (as `uname -n` gives it). The host name is read
    /// once per process, as an LVM command reads it once at start-up.
    pub fn now() -> Creation {
        static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let host = HOST
            .get_or_init(|| {
                // uname(2)'s node name, as LVM takes it.
                nix::sys::utsname::uname()
                    .map(|u| u.nodename().to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .clone();
        Creation { time, host }
    }
}
