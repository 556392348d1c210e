//! A typed view of a volume group's metadata, and changes made through the
//! lossless tree so that whatever lvsnap does not model survives.
//!
//! [`Metadata`] owns the [`Document`] and a [`Vg`] view updated by every
//! change. Changes write what LVM2 itself writes for the same operation
//! (checked against `vgcfgbackup` of LVM 2.03): a new LV goes after the last
//! visible LV, hidden LVs (`snapshotN`, pool components, merging COW LVs)
//! after all visible ones, as LVM's exporter orders them.

use std::collections::HashMap;

use crate::error::ErrorKind;
use crate::lvm::alloc::{self, Area, FreeSpace};
use crate::lvm::names::{self, NameError};
use crate::lvm::text::{Array, Body, Document, Entry, ParseError, Scalar, Section, Style, Value};
use crate::units::{Extents, Sectors};

/// Why the metadata could not be read as a volume group, or a change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The text does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The text parses but is not valid volume group metadata.
    #[error("metadata: {0}")]
    Invalid(String),
    /// A named LV (or PV) is not in the volume group.
    #[error("logical volume \"{0}\" not found in volume group")]
    NotFound(String),
    /// A name is refused by LVM's rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An LV of that name exists already.
    #[error("Logical Volume \"{0}\" already exists in volume group")]
    Exists(String),
    /// The change does not make sense for these LVs.
    #[error("{0}")]
    Refused(String),
    /// Not enough free extents.
    #[error("Insufficient free space: {needed} extents needed, but only {free} available")]
    NoSpace {
        /// Extents asked for.
        needed: u64,
        /// Free extents there are.
        free: u64,
    },
    /// LVM metadata that lvsnap does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Reading random bytes for a new id failed.
    #[error("cannot create an LVM id: {0}")]
    Id(#[source] std::io::Error),
    /// The volume group fails the checks LVM2 makes before using or writing
    /// one (`vg_validate`, the importer's): lvsnap writes nothing to it.
    #[error("volume group {vg} is damaged, LVM refuses it and lvsnap changes nothing: {problem}")]
    Damaged {
        /// The VG's name.
        vg: String,
        /// The first problem found, as one line.
        problem: String,
    },
}

impl ModelError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModelError::Parse(e) => e.kind(),
            ModelError::Invalid(_) | ModelError::Damaged { .. } => ErrorKind::Corrupt,
            ModelError::NotFound(_) => ErrorKind::NotFound,
            ModelError::Name(e) => e.kind(),
            ModelError::Exists(_) | ModelError::Refused(_) => ErrorKind::InvalidArgument,
            ModelError::NoSpace { .. } => ErrorKind::NoSpace,
            ModelError::Unsupported(_) => ErrorKind::Unsupported,
            ModelError::Id(_) => ErrorKind::Io,
        }
    }
}

type Result<T> = std::result::Result<T, ModelError>;

fn invalid(what: impl Into<String>) -> ModelError {
    ModelError::Invalid(what.into())
}

/// A physical volume as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    /// Its key in the metadata (`pv0`), which segments refer to.
    pub key: String,
    /// The PV's LVM id (with dashes).
    pub id: String,
    /// The device path LVM last saw it at (a hint only).
    pub device: Option<String>,
    /// `status` flags (`ALLOCATABLE`, ...).
    pub status: Vec<String>,
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
        self.status.iter().any(|s| s == "ALLOCATABLE")
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
    /// Delete this device id.
    Delete(u64),
}

/// What a segment maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// `striped` (linear when there is one stripe).
    Striped {
        /// Stripe size, absent for linear.
        stripe_size: Option<Sectors>,
        /// The areas, one per stripe.
        stripes: Vec<Stripe>,
    },
    /// `snapshot`: the segment of an LVM `snapshotN` LV.
    Snapshot {
        /// COW chunk size.
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
        /// Pool chunk size.
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
        /// The thin device id in the pool.
        device_id: u64,
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
    /// Its LVM id (with dashes).
    pub id: String,
    /// `status` flags (`READ`, `WRITE`, `VISIBLE`, ...).
    pub status: Vec<String>,
    /// `flags` (`ACTIVATION_SKIP`, ...).
    pub flags: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Seconds since the epoch, if recorded.
    pub creation_time: Option<i64>,
    /// Host that created it, if recorded.
    pub creation_host: Option<String>,
    /// Segments in logical order.
    pub segments: Vec<Segment>,
}

impl Lv {
    /// Whether `status` holds `flag`.
    pub fn has_status(&self, flag: &str) -> bool {
        self.status.iter().any(|s| s == flag)
    }

    /// Whether `flags` holds `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|s| s == flag)
    }

    /// Its length in extents (sum of its segments).
    pub fn extents(&self) -> Extents {
        Extents(self.segments.iter().map(|s| s.extent_count.0).sum())
    }

    /// The snapshot segment, if this is an LVM `snapshotN` LV.
    fn snapshot_segment(&self) -> Option<(&Sectors, &str, &str, bool)> {
        match self.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::Snapshot {
                chunk_size,
                origin,
                cow,
                merging,
            }) => Some((chunk_size, origin, cow, *merging)),
            _ => None,
        }
    }

    /// The COW snapshot this `snapshotN` LV carries, if it is one.
    fn as_cow_snapshot(&self) -> Option<CowSnapshot> {
        let (chunk, origin, cow, merging) = self.snapshot_segment()?;
        Some(CowSnapshot {
            name: cow.to_owned(),
            snapshot_lv: self.name.clone(),
            origin: origin.to_owned(),
            chunk_size: *chunk,
            merging,
        })
    }

    /// The pool and device id, if this is a thin LV.
    pub fn thin(&self) -> Option<(&str, u64)> {
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

/// The thin device ids of a rollback [`Metadata::thin_rollback`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinRollback {
    /// The pool.
    pub pool: String,
    /// The origin's device before, queued for `delete`.
    pub old_origin_id: u64,
    /// The snapshot's device, now the origin's.
    pub snap_id: u64,
    /// The kept snapshot's new device (`create_snap <new> <snap_id>`).
    pub new_snap_id: Option<u64>,
}

/// A typed volume group, built from the metadata tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    /// The VG's name.
    pub name: String,
    /// The VG's LVM id.
    pub id: String,
    /// The metadata sequence number.
    pub seqno: u64,
    /// `status` flags (`RESIZEABLE`, `READ`, `WRITE`).
    pub status: Vec<String>,
    /// `flags`.
    pub flags: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Size of one extent.
    pub extent_size: Sectors,
    /// Maximum number of LVs (0: no limit).
    pub max_lv: u64,
    /// Maximum number of PVs (0: no limit).
    pub max_pv: u64,
    /// Metadata copies to keep (0: unmanaged).
    pub metadata_copies: u64,
    /// PVs in metadata order.
    pub pvs: Vec<Pv>,
    /// LVs in metadata order (including hidden ones).
    pub lvs: Vec<Lv>,
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
            .filter(|l| l.snapshot_segment().is_some_and(|s| s.2 == name))
            .find_map(Lv::as_cow_snapshot)
    }

    /// Snapshots of origin `origin`.
    pub fn snapshots_of(&self, origin: &str) -> Vec<CowSnapshot> {
        self.lvs
            .iter()
            .filter(|l| l.snapshot_segment().is_some_and(|s| s.1 == origin))
            .filter_map(Lv::as_cow_snapshot)
            .collect()
    }

    /// Whether `name` is an origin of COW snapshots.
    pub fn is_origin(&self, name: &str) -> bool {
        self.lvs
            .iter()
            .any(|l| l.snapshot_segment().is_some_and(|s| s.1 == name))
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
            return !s.merging && self.lv(&s.origin).is_some_and(|o| o.has_status("VISIBLE"));
        }
        lv.has_status("VISIBLE")
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
    fn visibility(&self) -> Vec<bool> {
        let mut by_name: HashMap<&str, &Lv> = HashMap::with_capacity(self.lvs.len());
        let mut cows: HashMap<&str, (&str, bool)> = HashMap::new();
        // Per LV, the first LV of its name (itself unless a duplicate), found
        // while the map is built rather than by a second lookup.
        let mut first: Vec<&Lv> = Vec::with_capacity(self.lvs.len());
        for l in &self.lvs {
            first.push(by_name.entry(&l.name).or_insert(l));
            if let Some((_, origin, cow, merging)) = l.snapshot_segment() {
                cows.entry(cow).or_insert((origin, merging));
            }
        }
        let visible = |lv: &Lv| {
            if lv.snapshot_segment().is_some() {
                return false;
            }
            match cows.get(lv.name.as_str()) {
                Some((origin, merging)) => {
                    !merging && by_name.get(origin).is_some_and(|o| o.has_status("VISIBLE"))
                }
                None => lv.has_status("VISIBLE"),
            }
        };
        first.into_iter().map(visible).collect()
    }

    /// Free extents of every allocatable PV (PV order), after subtracting
    /// every area any segment uses.
    pub(crate) fn free_space(&self, doc_vg: &Body) -> FreeSpace {
        let mut used: Vec<(usize, u64, u64)> = Vec::new();
        let pv_index = |key: &str| self.pvs.iter().position(|p| p.key == key);
        for (lv, lvsec) in self.lvs.iter().zip(lv_sections(doc_vg)) {
            for (seg, segsec) in lv.segments.iter().zip(segment_sections(&lvsec.body)) {
                match &seg.kind {
                    SegmentKind::Striped { stripes, .. } => {
                        let n = stripes.len().max(1) as u64;
                        for s in stripes {
                            if let Some(i) = pv_index(&s.pv) {
                                used.push((i, s.start.0, seg.extent_count.0 / n));
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
                                        used.push((i, pe, seg.extent_count.0));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        alloc::free_space(
            self.pvs
                .iter()
                .map(|p| (p.allocatable(), p.pe_count.0))
                .collect(),
            &used,
        )
    }
}

fn lv_sections(vg: &Body) -> impl Iterator<Item = &Section> {
    vg.section("logical_volumes")
        .into_iter()
        .flat_map(|s| s.body.sections())
}

fn lvs_body_mut(doc: &mut Document) -> Option<&mut Body> {
    doc.vg_section_mut()?
        .body
        .section_mut("logical_volumes")
        .map(|s| &mut s.body)
}

/// LV sections (with their typed LVs) moved out of the tree during an edit.
#[derive(Default)]
struct Parked {
    /// `(index among the LV sections, section, LV)`, in index order.
    lvs: Vec<(usize, Section, Lv)>,
    /// The typed LVs of the sections left in place, with their indices.
    kept: Vec<(usize, Lv)>,
}

/// A parked section's stand-in: the parser never gives an empty name.
fn is_stand_in(s: &Section) -> bool {
    s.name.is_empty() && s.body.entries.is_empty()
}

fn segment_sections(lv: &Body) -> impl Iterator<Item = &Section> {
    lv.sections().filter(|s| s.name.starts_with("segment"))
}

fn req_str<'a>(b: &'a Body, key: &str, ctx: &str) -> Result<&'a str> {
    b.str(key)
        .ok_or_else(|| invalid(format!("{ctx}: missing string \"{key}\"")))
}

fn req_u64(b: &Body, key: &str, ctx: &str) -> Result<u64> {
    let i = b
        .int(key)
        .ok_or_else(|| invalid(format!("{ctx}: missing integer \"{key}\"")))?;
    u64::try_from(i).map_err(|_| invalid(format!("{ctx}: \"{key}\" is negative")))
}

fn opt_strings(b: &Body, key: &str, ctx: &str) -> Result<Vec<String>> {
    match b.get(key) {
        None => Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .and_then(Array::strings)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .ok_or_else(|| invalid(format!("{ctx}: \"{key}\" is not a list of strings"))),
    }
}

fn parse_pv(s: &Section) -> Result<Pv> {
    let ctx = format!("physical volume {}", s.name);
    let b = &s.body;
    Ok(Pv {
        key: s.name.clone(),
        id: req_str(b, "id", &ctx)?.to_owned(),
        device: b.str("device").map(str::to_owned),
        status: opt_strings(b, "status", &ctx)?,
        dev_size: Sectors(req_u64(b, "dev_size", &ctx)?),
        pe_start: Sectors(req_u64(b, "pe_start", &ctx)?),
        pe_count: Extents(req_u64(b, "pe_count", &ctx)?),
    })
}

fn parse_segment(s: &Section, ctx: &str) -> Result<Segment> {
    let ctx = format!("{ctx} {}", s.name);
    let b = &s.body;
    let ty = req_str(b, "type", &ctx)?;
    let kind = match ty {
        "striped" => {
            let arr = b
                .array("stripes")
                .ok_or_else(|| invalid(format!("{ctx}: missing \"stripes\"")))?;
            let mut stripes = Vec::new();
            for pair in arr.items.chunks(2) {
                match pair {
                    [Scalar::Str(pv), Scalar::Int(pe)] => stripes.push(Stripe {
                        pv: pv.clone(),
                        start: Extents(
                            u64::try_from(*pe)
                                .map_err(|_| invalid(format!("{ctx}: negative extent")))?,
                        ),
                    }),
                    _ => return Err(invalid(format!("{ctx}: malformed \"stripes\""))),
                }
            }
            let count = req_u64(b, "stripe_count", &ctx)?;
            if count != stripes.len() as u64 || stripes.is_empty() {
                return Err(invalid(format!(
                    "{ctx}: stripe_count {count} but {} stripes",
                    stripes.len()
                )));
            }
            Segment::striped_kind(b.int("stripe_size"), stripes)
        }
        "snapshot" => {
            let (cow, merging) = match (b.str("cow_store"), b.str("merging_store")) {
                (Some(c), None) => (c, false),
                (None, Some(m)) => (m, true),
                _ => {
                    return Err(invalid(format!(
                        "{ctx}: needs one of \"cow_store\" or \"merging_store\""
                    )));
                }
            };
            SegmentKind::Snapshot {
                chunk_size: Sectors(req_u64(b, "chunk_size", &ctx)?),
                origin: req_str(b, "origin", &ctx)?.to_owned(),
                cow: cow.to_owned(),
                merging,
            }
        }
        "thin-pool" => {
            let mut messages = Vec::new();
            for m in b.sections().filter(|s| s.name.starts_with("message")) {
                if let Some(lv) = m.body.str("create") {
                    messages.push(ThinMessage::Create(lv.to_owned()));
                } else if let Some(id) = m.body.int("delete") {
                    messages.push(ThinMessage::Delete(u64::try_from(id).map_err(|_| {
                        invalid(format!("{ctx}: negative device id in {}", m.name))
                    })?));
                } else {
                    return Err(invalid(format!("{ctx}: unknown message in {}", m.name)));
                }
            }
            SegmentKind::ThinPool {
                metadata: req_str(b, "metadata", &ctx)?.to_owned(),
                pool: req_str(b, "pool", &ctx)?.to_owned(),
                transaction_id: req_u64(b, "transaction_id", &ctx)?,
                chunk_size: Sectors(req_u64(b, "chunk_size", &ctx)?),
                discards: b.str("discards").map(str::to_owned),
                zero_new_blocks: b.int("zero_new_blocks").unwrap_or(0) != 0,
                messages,
            }
        }
        "thin" => SegmentKind::Thin {
            thin_pool: req_str(b, "thin_pool", &ctx)?.to_owned(),
            transaction_id: req_u64(b, "transaction_id", &ctx)?,
            device_id: req_u64(b, "device_id", &ctx)?,
            origin: b.str("origin").map(str::to_owned),
        },
        other => SegmentKind::Other {
            type_name: other.to_owned(),
        },
    };
    Ok(Segment {
        start_extent: Extents(req_u64(b, "start_extent", &ctx)?),
        extent_count: Extents(req_u64(b, "extent_count", &ctx)?),
        kind,
    })
}

impl Segment {
    fn striped_kind(stripe_size: Option<i64>, stripes: Vec<Stripe>) -> SegmentKind {
        SegmentKind::Striped {
            stripe_size: stripe_size.and_then(|s| u64::try_from(s).ok()).map(Sectors),
            stripes,
        }
    }
}

fn parse_lv(s: &Section) -> Result<Lv> {
    let ctx = format!("logical volume {}", s.name);
    let b = &s.body;
    let segments = segment_sections(b)
        .map(|seg| parse_segment(seg, &ctx))
        .collect::<Result<Vec<_>>>()?;
    let count = req_u64(b, "segment_count", &ctx)?;
    if count != segments.len() as u64 {
        return Err(invalid(format!(
            "{ctx}: segment_count {count} but {} segments",
            segments.len()
        )));
    }
    let mut next = 0u64;
    for seg in &segments {
        if seg.start_extent.0 != next {
            return Err(invalid(format!("{ctx}: segments are not contiguous")));
        }
        next = next
            .checked_add(seg.extent_count.0)
            .ok_or_else(|| invalid(format!("{ctx}: extent count overflows")))?;
    }
    Ok(Lv {
        name: s.name.clone(),
        id: req_str(b, "id", &ctx)?.to_owned(),
        status: opt_strings(b, "status", &ctx)?,
        flags: opt_strings(b, "flags", &ctx)?,
        tags: opt_strings(b, "tags", &ctx)?,
        creation_time: b.int("creation_time"),
        creation_host: b.str("creation_host").map(str::to_owned),
        segments,
    })
}

fn parse_vg(doc: &Document) -> Result<Vg> {
    parse_vg_with(doc, |b| lv_sections(b).map(parse_lv).collect())
}

/// The VG with its LVs from `lvs` (given the VG section's body).
fn parse_vg_with(doc: &Document, lvs: impl FnOnce(&Body) -> Result<Vec<Lv>>) -> Result<Vg> {
    let s = doc
        .vg_section()
        .ok_or_else(|| invalid("no volume group section"))?;
    let ctx = format!("volume group {}", s.name);
    let b = &s.body;
    let pvs = b
        .section("physical_volumes")
        .map(|p| p.body.sections().map(parse_pv).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let lvs = lvs(b)?;
    // 0 is nonsense LVM still reads: the checks refuse to write it.
    let extent_size = Sectors(req_u64(b, "extent_size", &ctx)?);
    Ok(Vg {
        name: s.name.clone(),
        id: req_str(b, "id", &ctx)?.to_owned(),
        seqno: req_u64(b, "seqno", &ctx)?,
        status: opt_strings(b, "status", &ctx)?,
        flags: opt_strings(b, "flags", &ctx)?,
        tags: opt_strings(b, "tags", &ctx)?,
        extent_size,
        max_lv: b
            .int("max_lv")
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or(0),
        max_pv: b
            .int("max_pv")
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or(0),
        metadata_copies: b
            .int("metadata_copies")
            .and_then(|i| u64::try_from(i).ok())
            .unwrap_or(0),
        pvs,
        lvs,
    })
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
    /// Now, on this host (as `uname -n` gives it).
    pub fn now() -> Creation {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Creation { time, host }
    }
}

/// A volume group's metadata: the lossless tree plus its typed view.
#[derive(Debug, Clone)]
pub struct Metadata {
    doc: Document,
    vg: Vg,
    generation: u64,
    /// Why LVM2 would refuse the metadata as read, if it would: every
    /// change is refused then.
    damage: Option<String>,
}

/// A number no other metadata edit has had, in this process.
fn new_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Metadata {
    /// Parses a metadata text (as found in a metadata area or a backup file).
    ///
    /// ```
    /// use lvsnap::lvm::vg::Metadata;
    /// let text = std::fs::read_to_string("tests/fixtures/cow.vg").unwrap();
    /// let md = Metadata::parse(&text)?;
    /// let snap = md.vg().cow_snapshot("snap1").unwrap();
    /// assert_eq!(snap.origin, "origin");
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Metadata> {
        Metadata::from_document(Document::parse(text)?)
    }

    /// Builds the typed view over a parsed tree.
    pub fn from_document(doc: Document) -> Result<Metadata> {
        let vg = parse_vg(&doc)?;
        let damage = check::problem(&vg, doc.vg_section().map(|s| &s.body));
        Ok(Metadata {
            doc,
            vg,
            generation: new_generation(),
            damage,
        })
    }

    /// Why LVM2 would refuse this metadata as it was read (a segment on a
    /// PV the VG does not have, extents beyond a PV or used twice, a name or
    /// id used twice, a reference to an LV that is not there, values out
    /// of LVM's ranges), as one line; `None` if it passes. Read-only
    /// callers can still use the view; every change is refused.
    ///
    /// ```
    /// use lvsnap::lvm::vg::{Creation, Metadata};
    /// use lvsnap::units::Extents;
    /// let text = std::fs::read_to_string("tests/fixtures/linear.vg").unwrap();
    /// assert_eq!(Metadata::parse(&text)?.damage(), None);
    /// let bad = text.replacen("\"pv0\", 0", "\"pv7\", 0", 1);
    /// let mut md = Metadata::parse(&bad)?;
    /// assert!(md.damage().unwrap().contains("pv7"));
    /// let e = md.add_linear_lv("new", Extents(1), &Creation::now()).unwrap_err();
    /// assert_eq!(e.kind(), lvsnap::ErrorKind::Corrupt);
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// Checks the metadata as it is now (after any changes) as LVM2 does
    /// before it writes: the error names the first problem.
    pub fn validate(&self) -> Result<()> {
        match check::problem(&self.vg, self.doc.vg_section().map(|s| &s.body)) {
            None => Ok(()),
            Some(problem) => Err(self.damaged(problem)),
        }
    }

    fn damaged(&self, problem: String) -> ModelError {
        ModelError::Damaged {
            vg: self.vg.name.clone(),
            problem,
        }
    }

    /// Refuses any change to metadata that was damaged when read.
    fn writable(&self) -> Result<()> {
        match &self.damage {
            None => Ok(()),
            Some(p) => Err(self.damaged(p.clone())),
        }
    }

    /// A number that changes with every edit, unique in the process: two
    /// values (a clone's included) with the same generation hold the same
    /// metadata, so a caller can tell cheaply whether it changed since.
    ///
    /// ```
    /// use lvsnap::lvm::vg::{Creation, Metadata};
    /// let mut md = Metadata::parse(&std::fs::read_to_string("tests/fixtures/cow.vg").unwrap())?;
    /// let copy = md.clone();
    /// assert_eq!(copy.generation(), md.generation());
    /// md.bump_seqno()?;
    /// assert_ne!(copy.generation(), md.generation());
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The typed view.
    pub fn vg(&self) -> &Vg {
        &self.vg
    }

    /// The tree.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// The text in `style` ([`Style::Raw`] for a metadata area).
    pub fn to_text(&self, style: Style) -> String {
        self.doc.to_text(style)
    }

    /// Free extents per PV.
    pub fn free_space(&self) -> FreeSpace {
        match self.doc.vg_section() {
            Some(s) => self.vg.free_space(&s.body),
            None => FreeSpace::default(),
        }
    }

    fn vg_body(&mut self) -> Result<&mut Body> {
        self.generation = new_generation();
        self.doc
            .vg_section_mut()
            .map(|s| &mut s.body)
            .ok_or_else(|| invalid("no volume group section"))
    }

    /// Applies a change to the tree and updates the view; on failure the
    /// metadata is left as it was.
    ///
    /// `f` may add LV sections and edit anything outside `logical_volumes`,
    /// but may read, edit or remove only the existing LVs named in
    /// `touched`. The others are moved aside while it runs (empty,
    /// nameless stand-ins keep their places), so the copy kept for undoing
    /// a failure holds only the rest of the tree, and their typed LVs are
    /// reused instead of parsed again: a change costs O(LVs) moves, not a
    /// copy and two parses of the whole VG. An edit that removes or
    /// changes a stand-in is refused and undone.
    fn change(
        &mut self,
        touched: &[&str],
        f: impl FnOnce(&mut Document) -> Result<()>,
    ) -> Result<()> {
        self.writable()?;
        self.generation = new_generation();
        let parked = self.park(touched);
        let backup = self.doc.clone();
        match f(&mut self.doc).and_then(|()| self.fresh_lvs(parked.lvs.len())) {
            Ok((vg, fresh)) => {
                self.vg = vg;
                self.unpark_edited(fresh, parked.lvs);
                self.order_lvs();
                #[cfg(test)]
                assert_eq!(Ok(&self.vg), parse_vg(&self.doc).as_ref().map_err(|_| ()));
                Ok(())
            }
            Err(e) => {
                self.doc = backup;
                self.unpark_unchanged(parked);
                Err(e)
            }
        }
    }

    /// Moves every LV section not named in `touched` out of the tree, with
    /// its typed LV, leaving a stand-in.
    fn park(&mut self, touched: &[&str]) -> Parked {
        let lvs = std::mem::take(&mut self.vg.lvs);
        let mut p = Parked::default();
        match lvs_body_mut(&mut self.doc) {
            // The view holds one LV per section, in order (it is built so).
            Some(body) if body.sections().count() == lvs.len() => {
                for (i, (sec, lv)) in body.sections_mut().zip(lvs).enumerate() {
                    if touched.contains(&sec.name.as_str()) {
                        p.kept.push((i, lv));
                    } else {
                        p.lvs.push((i, std::mem::take(sec), lv));
                    }
                }
            }
            _ => p.kept = lvs.into_iter().enumerate().collect(),
        }
        p
    }

    /// After an edit: the new view's VG and, per LV section, its LV parsed
    /// (`None` for a stand-in). Fails if the edit broke the VG or an LV,
    /// or if `stand_ins` stand-ins are not all still there.
    fn fresh_lvs(&self, stand_ins: usize) -> Result<(Vg, Vec<Option<Lv>>)> {
        let vg = parse_vg_with(&self.doc, |_| Ok(Vec::new()))?;
        let fresh = self
            .doc
            .vg_section()
            .map(|s| lv_sections(&s.body))
            .into_iter()
            .flatten()
            .map(|s| (!is_stand_in(s)).then(|| parse_lv(s)).transpose())
            .collect::<Result<Vec<_>>>()?;
        if fresh.iter().filter(|l| l.is_none()).count() != stand_ins {
            return Err(invalid("an edit touched an LV it did not name"));
        }
        Ok((vg, fresh))
    }

    /// Puts the parked sections back in place of their stand-ins (in order,
    /// as [`Metadata::fresh_lvs`] checked) and builds the view's LVs.
    fn unpark_edited(&mut self, fresh: Vec<Option<Lv>>, parked: Vec<(usize, Section, Lv)>) {
        let mut parked = parked.into_iter();
        let mut lvs = Vec::with_capacity(fresh.len());
        if let Some(body) = lvs_body_mut(&mut self.doc) {
            for (sec, lv) in body.sections_mut().zip(fresh) {
                match lv {
                    Some(lv) => lvs.push(lv),
                    None => {
                        if let Some((_, s, lv)) = parked.next() {
                            *sec = s;
                            lvs.push(lv);
                        }
                    }
                }
            }
        }
        self.vg.lvs = lvs;
    }

    /// Puts the parked sections back into the tree as it was before the
    /// edit (stand-ins at their old indices) and the view's LVs in order.
    fn unpark_unchanged(&mut self, parked: Parked) {
        let Parked { lvs: parked, kept } = parked;
        let mut lvs = kept;
        let mut parked = parked.into_iter().peekable();
        if let Some(body) = lvs_body_mut(&mut self.doc) {
            for (i, sec) in body.sections_mut().enumerate() {
                if let Some((_, s, lv)) = parked.next_if(|p| p.0 == i) {
                    *sec = s;
                    lvs.push((i, lv));
                }
            }
        }
        lvs.sort_by_key(|l| l.0);
        self.vg.lvs = lvs.into_iter().map(|l| l.1).collect();
    }

    /// Increments `seqno`, as every metadata write does.
    pub fn bump_seqno(&mut self) -> Result<u64> {
        self.writable()?;
        let next = self
            .vg
            .seqno
            .checked_add(1)
            .ok_or_else(|| invalid("seqno overflows"))?;
        let v = i64::try_from(next).map_err(|_| invalid("seqno overflows"))?;
        self.vg_body()?.set("seqno", Value::int(v));
        self.vg.seqno = next;
        Ok(next)
    }

    /// Sets the top-level `description`, `creation_host` and `creation_time`
    /// LVM writes with each copy of the metadata.
    pub fn set_header(&mut self, description: &str, creation: &Creation) {
        self.generation = new_generation();
        let r = &mut self.doc.root;
        r.set("description", Value::str(description));
        r.set("creation_host", Value::str(&creation.host));
        r.set("creation_time", Value::int(creation.time));
    }

    /// Puts visible LVs first and hidden ones after, each group in its
    /// current order, as LVM's exporter writes them (the view's LVs move
    /// with their sections).
    fn order_lvs(&mut self) {
        let visible = self.vg.visibility();
        if visible.windows(2).all(|w| !matches!(w, [false, true])) {
            return;
        }
        let Some(body) = lvs_body_mut(&mut self.doc) else {
            return;
        };
        if body.sections().count() != self.vg.lvs.len() {
            return;
        }
        // Sized up front: a VG may hold hundreds of LVs, each a large entry.
        let n = self.vg.lvs.len();
        let mut others = Vec::new();
        let (mut vis, mut hid) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut lvs = std::mem::take(&mut self.vg.lvs).into_iter().zip(visible);
        for e in std::mem::take(&mut body.entries) {
            match e {
                Entry::Section(s) => match lvs.next() {
                    Some((lv, true)) => vis.push((s, lv)),
                    Some((lv, false)) => hid.push((s, lv)),
                    None => {}
                },
                Entry::Blank => {}
                other => others.push(other),
            }
        }
        let mut entries = Vec::with_capacity(others.len() + 2 * n);
        entries.append(&mut others);
        let mut view = Vec::with_capacity(n);
        for (s, lv) in vis.into_iter().chain(hid) {
            entries.push(Entry::Blank);
            entries.push(Entry::Section(s));
            view.push(lv);
        }
        body.entries = entries;
        self.vg.lvs = view;
    }

    fn check_new_lv_name(&self, name: &str) -> Result<()> {
        self.writable()?;
        names::validate_lv_name(name)?;
        if self.vg.lv(name).is_some() {
            return Err(ModelError::Exists(name.into()));
        }
        if self.vg.max_lv != 0 && self.vg.visible_lvs().len() as u64 >= self.vg.max_lv {
            return Err(ModelError::Refused(format!(
                "Maximum number of logical volumes ({}) reached in volume group {}",
                self.vg.max_lv, self.vg.name
            )));
        }
        Ok(())
    }

    /// Allocates `extents` as LVM's `normal` policy would, as linear segments.
    pub fn allocate(&self, extents: Extents) -> Result<Vec<Area>> {
        let free = self.free_space();
        alloc::allocate_linear(&free, extents.0).ok_or(ModelError::NoSpace {
            needed: extents.0,
            free: free.total(),
        })
    }

    /// Adds a linear LV of `extents` with extents allocated as LVM would;
    /// returns where it was placed.
    pub fn add_linear_lv(
        &mut self,
        name: &str,
        extents: Extents,
        creation: &Creation,
    ) -> Result<Vec<Area>> {
        self.check_new_lv_name(name)?;
        if extents.0 == 0 {
            return Err(ModelError::Refused(
                "Unable to create new logical volume with no extents".into(),
            ));
        }
        let areas = self.allocate(extents)?;
        let id = names::new_id().map_err(ModelError::Id)?;
        let sec = self.striped_lv_section(
            name,
            &id,
            &["READ", "WRITE", "VISIBLE"],
            &[],
            creation,
            &areas,
        );
        self.change(&[], |doc| insert_lv(doc, sec))?;
        Ok(areas)
    }

    /// Grows linear LV `name` by `extents`, placed as `lvextend` places them
    /// (checked in the VM against LVM 2.03): first the free extents right
    /// after its last extent on the same PV, which join its last segment;
    /// the rest as LVM's `normal` policy places a new area, on the last
    /// segment's PV if it holds it all (LVM clings to it), else anywhere.
    /// Returns the areas added.
    pub fn extend_lv(&mut self, name: &str, extents: Extents) -> Result<Vec<Area>> {
        let lv = self
            .vg
            .lv(name)
            .ok_or_else(|| ModelError::NotFound(name.into()))?;
        let last = match lv.segments.last() {
            Some(Segment {
                kind: SegmentKind::Striped { stripes, .. },
                extent_count,
                ..
            }) if stripes.len() == 1 => (stripes[0].clone(), *extent_count),
            _ => {
                return Err(ModelError::Unsupported(format!(
                    "extending {name}, whose last segment is not linear"
                )));
            }
        };
        if extents.0 == 0 {
            return Err(ModelError::Refused(format!(
                "New size for {name} matches its existing size"
            )));
        }
        let mut free = self.free_space();
        if extents.0 > free.total() {
            return Err(ModelError::NoSpace {
                needed: extents.0,
                free: free.total(),
            });
        }
        let pv = self
            .vg
            .pvs
            .iter()
            .position(|p| p.key == last.0.pv)
            .ok_or_else(|| invalid(format!("{name}: segment on unknown {}", last.0.pv)))?;
        let end = last
            .0
            .start
            .0
            .checked_add(last.1.0)
            .ok_or_else(|| invalid(format!("{name}: extent overflow")))?;
        // Contiguous round: the run right after the LV's end, as far as it goes.
        let mut grow = 0;
        if let Some((true, runs)) = free.pvs.get_mut(pv) {
            if let Some(r) = runs.iter_mut().find(|r| r.0 == end) {
                grow = r.1.min(extents.0);
                r.0 += grow;
                r.1 -= grow;
            }
        }
        let rest = extents.0 - grow;
        let mut areas = Vec::new();
        if rest > 0 {
            let cling = FreeSpace {
                pvs: free
                    .pvs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| if i == pv { p.clone() } else { (false, vec![]) })
                    .collect(),
            };
            areas = alloc::allocate_linear(&cling, rest)
                .or_else(|| alloc::allocate_linear(&free, rest))
                .ok_or(ModelError::NoSpace {
                    needed: extents.0,
                    free: free.total() + grow,
                })?;
        }
        let first_new = lv.extents().0 + grow;
        let segs_before = lv.segments.len();
        let new_areas = areas.clone();
        let keys: Vec<String> = areas.iter().map(|a| self.pv_key(a.pv)).collect();
        self.change(&[name], |doc| {
            let sec = lv_section_mut(doc, name)?;
            let b = &mut sec.body;
            if grow > 0 {
                let seg = b
                    .section_mut(&format!("segment{segs_before}"))
                    .ok_or_else(|| invalid(format!("{name}: no segment{segs_before}")))?;
                seg.body
                    .set("extent_count", uint(last.1.0.saturating_add(grow)));
            }
            let mut le = first_new;
            for (i, (a, key)) in new_areas.iter().zip(&keys).enumerate() {
                let mut seg = segment_head(segs_before + i + 1, le, a.count, "striped");
                let sb = &mut seg.body;
                sb.push("stripe_count", Value::int(1));
                sb.entries.push(Entry::Blank);
                sb.push(
                    "stripes",
                    Value::Array(Array::multiline(
                        vec![Scalar::Str(key.clone()), Scalar::Int(clamp(a.start))],
                        2,
                    )),
                );
                b.entries.push(Entry::Section(seg));
                le += a.count;
            }
            b.set(
                "segment_count",
                uint((segs_before + new_areas.len()) as u64),
            );
            Ok(())
        })?;
        let mut out = Vec::new();
        if grow > 0 {
            out.push(Area {
                pv,
                start: end,
                count: grow,
            });
        }
        out.extend(areas);
        Ok(out)
    }

    fn pv_key(&self, index: usize) -> String {
        self.vg
            .pvs
            .get(index)
            .map_or_else(|| format!("pv{index}"), |p| p.key.clone())
    }

    fn striped_lv_section(
        &self,
        name: &str,
        id: &str,
        status: &[&str],
        flags: &[&str],
        creation: &Creation,
        areas: &[Area],
    ) -> Section {
        let mut lv = lv_head(name, id, status, flags, creation, areas.len());
        let mut le = 0u64;
        for (i, a) in areas.iter().enumerate() {
            let mut seg = segment_head(i + 1, le, a.count, "striped");
            let b = &mut seg.body;
            b.push("stripe_count", Value::int(1));
            b.entries.push(Entry::Blank);
            b.push(
                "stripes",
                Value::Array(Array::multiline(
                    vec![Scalar::Str(self.pv_key(a.pv)), Scalar::Int(clamp(a.start))],
                    2,
                )),
            );
            lv.body.entries.push(Entry::Section(seg));
            le += a.count;
        }
        lv
    }

    /// Adds a COW snapshot of `origin` as `lvcreate -s` writes it: the COW LV
    /// `name` over `cow_extents` newly allocated extents (status READ/WRITE,
    /// or READ when `read_only`, not VISIBLE) and a `snapshotN` LV (N one
    /// above the highest in use) with one `snapshot` segment.
    /// Returns the `snapshotN` name.
    pub fn add_cow_snapshot(
        &mut self,
        origin: &str,
        name: &str,
        cow_extents: Extents,
        chunk_size: Sectors,
        read_only: bool,
        creation: &Creation,
    ) -> Result<String> {
        self.check_new_lv_name(name)?;
        let o = self
            .vg
            .lv(origin)
            .ok_or_else(|| ModelError::NotFound(origin.into()))?;
        if cow_extents.0 == 0 {
            return Err(ModelError::Refused(
                "A snapshot needs at least one extent of COW space".into(),
            ));
        }
        if !self.vg.is_visible(origin) && self.vg.cow_snapshot(origin).is_none() {
            return Err(ModelError::Refused(format!(
                "Snapshots of hidden LV {origin} are not supported"
            )));
        }
        if self.vg.cow_snapshot(origin).is_some() {
            return Err(ModelError::Refused(format!(
                "Snapshots of snapshots are not supported: {origin} is a snapshot"
            )));
        }
        if !o
            .segments
            .iter()
            .all(|s| matches!(s.kind, SegmentKind::Striped { .. }))
        {
            return Err(ModelError::Unsupported(format!(
                "COW snapshot of {origin}, which is not a linear or striped LV"
            )));
        }
        if self.vg.snapshots_of(origin).iter().any(|s| s.merging) {
            return Err(ModelError::Refused(format!(
                "Cannot create snapshot of origin {origin} while a snapshot is merging into it"
            )));
        }
        if crate::dm::ChunkSize::new(chunk_size).is_err() {
            return Err(ModelError::Refused(format!(
                "Chunk size {} sectors must be a power of 2 from 4 KiB to 512 KiB",
                chunk_size.0
            )));
        }
        let origin_extents = o.extents();
        let areas = self.allocate(cow_extents)?;
        let status: &[&str] = if read_only {
            &["READ"]
        } else {
            &["READ", "WRITE"]
        };
        let cow = self.striped_lv_section(
            name,
            &names::new_id().map_err(ModelError::Id)?,
            status,
            &[],
            creation,
            &areas,
        );
        let snap_name = self.next_snapshot_name();
        let mut snap = lv_head(
            &snap_name,
            &names::new_id().map_err(ModelError::Id)?,
            &["READ", "WRITE", "VISIBLE"],
            &[],
            creation,
            1,
        );
        let mut seg = segment_head(1, 0, origin_extents.0, "snapshot");
        let b = &mut seg.body;
        b.push("chunk_size", uint(chunk_size.0));
        b.push("origin", Value::str(origin));
        b.push("cow_store", Value::str(name));
        snap.body.entries.push(Entry::Section(seg));
        self.change(&[], |doc| {
            insert_lv(doc, cow)?;
            insert_lv(doc, snap)
        })?;
        Ok(snap_name)
    }

    /// `snapshotN` with N one above the highest in use (LVM's
    /// `generate_lv_name`, which also counts historical LVs).
    fn next_snapshot_name(&self) -> String {
        let hist = self
            .doc
            .vg_section()
            .and_then(|s| s.body.section("historical_logical_volumes"))
            .into_iter()
            .flat_map(|s| s.body.sections().map(|s| s.name.as_str()));
        let high = self
            .vg
            .lvs
            .iter()
            .map(|l| l.name.as_str())
            .chain(hist)
            .filter_map(|n| scanf_number(n.strip_prefix("snapshot")?))
            .max();
        format!("snapshot{}", high.map_or(0, |h| h + 1))
    }

    /// Records a merge of COW snapshot `name` into its origin, as
    /// `lvconvert --merge` does before (or instead of, when the origin is
    /// open) starting it: the `snapshotN` LV loses VISIBLE and `cow_store`
    /// becomes `merging_store`.
    pub fn start_merge(&mut self, name: &str) -> Result<()> {
        self.writable()?;
        let snap = self
            .vg
            .cow_snapshot(name)
            .ok_or_else(|| ModelError::Refused(format!("\"{name}\" is not a COW snapshot")))?;
        if snap.merging {
            return Ok(());
        }
        if self.vg.snapshots_of(&snap.origin).iter().any(|s| s.merging) {
            return Err(ModelError::Refused(format!(
                "Cannot merge snapshot {name} into the origin {} with merging snapshot",
                snap.origin
            )));
        }
        if self
            .vg
            .lv(&snap.origin)
            .is_some_and(|o| !o.has_status("WRITE"))
        {
            return Err(ModelError::Refused(format!(
                "Unable to merge snapshot {name} into read-only origin {}",
                snap.origin
            )));
        }
        self.change(&[&snap.snapshot_lv], |doc| {
            let lv = lv_section_mut(doc, &snap.snapshot_lv)?;
            set_strings_without(&mut lv.body, "status", "VISIBLE");
            let seg = lv
                .body
                .section_mut("segment1")
                .ok_or_else(|| invalid("snapshot LV without segment1"))?;
            rename_key(&mut seg.body, "cow_store", "merging_store");
            Ok(())
        })
    }

    /// Adds (`on`) or removes tag `tag` of LV `name`, as `lvchange
    /// --addtag`/`--deltag` do; the `tags` key goes after `flags`, where
    /// LVM writes it, and goes away with its last tag.
    pub fn set_lv_tag(&mut self, name: &str, tag: &str, on: bool) -> Result<()> {
        let valid = !tag.is_empty()
            && tag.len() <= 1024
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+.-/=!:&#".contains(c));
        if !valid {
            return Err(ModelError::Refused(format!("Invalid tag \"{tag}\"")));
        }
        let lv = self
            .vg
            .lv(name)
            .ok_or_else(|| ModelError::Refused(format!("no logical volume \"{name}\"")))?;
        let mut tags = lv.tags.clone();
        let has = tags.iter().any(|t| t == tag);
        if has == on {
            return Ok(());
        }
        if on {
            tags.push(tag.to_owned());
        } else {
            tags.retain(|t| t != tag);
        }
        self.change(&[name], |doc| {
            let lv = lv_section_mut(doc, name)?;
            let b = &mut lv.body;
            if tags.is_empty() {
                b.remove("tags");
            } else if b.get("tags").is_some() {
                b.set("tags", Value::strings(&tags));
            } else {
                let at = b
                    .entries
                    .iter()
                    .position(|e| matches!(e, Entry::Assign(a) if a.key == "flags"))
                    .map_or(0, |i| i + 1);
                b.entries.insert(
                    at,
                    Entry::Assign(crate::lvm::text::Assign {
                        key: "tags".into(),
                        value: Value::strings(&tags),
                        comment: None,
                    }),
                );
            }
            Ok(())
        })
    }

    /// Removes LV `name`. A COW snapshot is removed with its `snapshotN`
    /// LV; an origin with snapshots, a thin pool with thin LVs, or an LV
    /// another LV's segments use is refused.
    pub fn remove_lv(&mut self, name: &str) -> Result<()> {
        if self.vg.cow_snapshot(name).is_some_and(|s| s.merging) {
            return Err(ModelError::Refused(format!(
                "Can't remove merging snapshot logical volume \"{name}\""
            )));
        }
        self.remove_lv_unchecked(name)
    }

    /// Drops COW snapshot `name` once its merge into the origin is complete,
    /// as LVM does when it finishes a merge: the origin stays as a plain LV.
    pub fn finish_merge(&mut self, name: &str) -> Result<()> {
        match self.vg.cow_snapshot(name) {
            Some(s) if s.merging => self.remove_lv_unchecked(name),
            _ => Err(ModelError::Refused(format!(
                "\"{name}\" is not a merging snapshot"
            ))),
        }
    }

    fn remove_lv_unchecked(&mut self, name: &str) -> Result<()> {
        self.writable()?;
        let lv = self
            .vg
            .lv(name)
            .ok_or_else(|| ModelError::NotFound(name.into()))?;
        let mut remove = vec![name.to_owned()];
        if let Some(s) = self.vg.cow_snapshot(name) {
            remove.push(s.snapshot_lv);
        } else if lv.snapshot_segment().is_some() {
            return Err(ModelError::Refused(format!(
                "{name} is an internal snapshot LV: remove its COW LV instead"
            )));
        } else if self.vg.is_origin(name) {
            return Err(ModelError::Refused(format!(
                "Can't remove logical volume {name} with snapshots"
            )));
        }
        // Thin snapshots outlive their origin (LVM drops their `origin`).
        let thin_children: Vec<String> = self
            .vg
            .lvs
            .iter()
            .filter(|l| l.thin_origin() == Some(name))
            .map(|l| l.name.clone())
            .collect();
        let thin = lv.thin().map(|(pool, id)| (pool.to_owned(), id));
        let sections = self.doc.vg_section().map(|s| lv_sections(&s.body));
        if let Some(user) = sections.into_iter().flatten().find(|s| {
            !remove.contains(&s.name) && !thin_children.contains(&s.name) && refers_to(s, name)
        }) {
            return Err(ModelError::Refused(format!(
                "Can't remove logical volume {name} used by {}",
                user.name
            )));
        }
        let mut touched: Vec<&str> = remove
            .iter()
            .chain(&thin_children)
            .map(String::as_str)
            .collect();
        touched.extend(thin.as_ref().map(|t| t.0.as_str()));
        self.change(&touched, |doc| {
            let vg = &mut doc
                .vg_section_mut()
                .ok_or_else(|| invalid("no volume group section"))?
                .body;
            let lvs = vg
                .section_mut("logical_volumes")
                .ok_or_else(|| invalid("no logical_volumes section"))?;
            for n in &remove {
                lvs.body.remove_section(n);
            }
            if lvs.body.sections().next().is_none() {
                remove_section_and_following_blank(vg, "logical_volumes");
            }
            for child in &thin_children {
                if let Some(seg) = lv_section_mut(doc, child)?.body.section_mut("segment1") {
                    seg.body.remove("origin");
                }
            }
            // The pool's kernel device goes with a queued `delete` message.
            if let Some((pool, id)) = &thin {
                queue_thin_message(doc, pool, "delete", uint(*id))?;
            }
            Ok(())
        })
    }

    fn pool_segment(&self, pool: &str) -> Result<(u64, Vec<ThinMessage>)> {
        let lv = self
            .vg
            .lv(pool)
            .ok_or_else(|| ModelError::NotFound(pool.into()))?;
        match lv.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::ThinPool {
                transaction_id,
                messages,
                ..
            }) if lv.segments.len() == 1 => Ok((*transaction_id, messages.clone())),
            _ => Err(ModelError::Refused(format!("{pool} is not a thin pool"))),
        }
    }

    /// Adds a thin LV `name` of `extents` in `pool`, or a thin snapshot of
    /// `origin`, as LVM's first commit of `lvcreate` writes it: a `thin`
    /// segment with the next free device id and the pool's transaction id,
    /// and in the pool a queued `create` message with `transaction_id + 1`.
    /// After the kernel pool has the device, [`Metadata::clear_thin_messages`]
    /// gives the final metadata. Returns the device id.
    pub fn add_thin_lv(
        &mut self,
        name: &str,
        pool: &str,
        extents: Extents,
        origin: Option<&str>,
        activation_skip: bool,
        creation: &Creation,
    ) -> Result<u64> {
        let args = (name, pool, extents, origin);
        self.add_thin_lv_queued(args, activation_skip, creation, false)
    }

    /// As [`Metadata::add_thin_lv`], after other thin LVs of the pool were
    /// added by this same edit: its message joins theirs, under the pool's
    /// one transaction id step (several thin snapshots in one commit). The
    /// new LV records the transaction id they all were made in.
    pub fn add_thin_lv_batched(
        &mut self,
        name: &str,
        pool: &str,
        extents: Extents,
        origin: Option<&str>,
        activation_skip: bool,
        creation: &Creation,
    ) -> Result<u64> {
        let args = (name, pool, extents, origin);
        self.add_thin_lv_queued(args, activation_skip, creation, true)
    }

    fn add_thin_lv_queued(
        &mut self,
        (name, pool, extents, origin): (&str, &str, Extents, Option<&str>),
        activation_skip: bool,
        creation: &Creation,
        batched: bool,
    ) -> Result<u64> {
        self.check_new_lv_name(name)?;
        let (mut tid, messages) = self.pool_segment(pool)?;
        if !messages.is_empty() {
            if !batched {
                return Err(ModelError::Refused(format!(
                    "Thin pool {pool} has queued messages: finish or clear them first"
                )));
            }
            tid = tid.checked_sub(1).ok_or_else(|| {
                ModelError::Refused(format!("thin pool {pool}: transaction_id 0 with messages"))
            })?;
        }
        if let Some(o) = origin {
            if self.vg.thin_pool_of(o) != Some(pool) {
                return Err(ModelError::Refused(format!(
                    "{o} is not a thin volume of pool {pool}"
                )));
            }
        }
        if extents.0 == 0 {
            return Err(ModelError::Refused("thin LV of no extents".into()));
        }
        let device_id = self
            .vg
            .lvs
            .iter()
            .filter_map(|l| l.thin().filter(|t| t.0 == pool).map(|t| t.1))
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        if device_id > (1 << 24) - 1 {
            return Err(ModelError::NoSpace { needed: 1, free: 0 });
        }
        let flags: &[&str] = if activation_skip {
            &["ACTIVATION_SKIP"]
        } else {
            &[]
        };
        let mut lv = lv_head(
            name,
            &names::new_id().map_err(ModelError::Id)?,
            &["READ", "WRITE", "VISIBLE"],
            flags,
            creation,
            1,
        );
        let mut seg = segment_head(1, 0, extents.0, "thin");
        let b = &mut seg.body;
        b.push("thin_pool", Value::str(pool));
        b.push("transaction_id", uint(tid));
        b.push("device_id", uint(device_id));
        if let Some(o) = origin {
            b.push("origin", Value::str(o));
        }
        lv.body.entries.push(Entry::Section(seg));
        self.change(&[pool], |doc| {
            insert_lv(doc, lv)?;
            queue_thin_message(doc, pool, "create", Value::str(name))
        })?;
        Ok(device_id)
    }

    /// Records a rollback of thin LV `origin` to its thin snapshot `snap`
    /// with the pool's work queued, as LVM queues it (one transaction:
    /// `transaction_id` + 1 and `messageN` entries LVM replays itself if the
    /// kernel pool never got them): `origin` keeps its name and id but takes
    /// `snap`'s thin device; with `keep`, `snap` gets a new device that is a
    /// snapshot of that one (`create = snap`, which replays as `create_snap
    /// <new> <origin's id>`), else its LV goes (thin snapshots of it lose
    /// their `origin`, as `lvremove` leaves them); the origin's old device
    /// is queued for `delete`. Other snapshots of `origin` keep their own
    /// devices and their `origin` link. Call [`Metadata::clear_thin_messages`]
    /// once the kernel pool has done it.
    pub fn thin_rollback(&mut self, origin: &str, snap: &str, keep: bool) -> Result<ThinRollback> {
        let s = self
            .vg
            .lv(snap)
            .ok_or_else(|| ModelError::NotFound(snap.into()))?;
        let (pool, snap_id) = s
            .thin()
            .map(|(p, id)| (p.to_owned(), id))
            .ok_or_else(|| ModelError::Refused(format!("{snap} is not a thin volume")))?;
        if s.thin_origin() != Some(origin) {
            return Err(ModelError::Refused(format!(
                "{snap} is not a thin snapshot of {origin}"
            )));
        }
        let origin_id = self
            .vg
            .lv(origin)
            .and_then(Lv::thin)
            .filter(|(p, _)| *p == pool)
            .map(|(_, id)| id)
            .ok_or_else(|| {
                ModelError::Refused(format!("{origin} is not a thin volume of {pool}"))
            })?;
        let (_, messages) = self.pool_segment(&pool)?;
        if !messages.is_empty() {
            return Err(ModelError::Refused(format!(
                "Thin pool {pool} has queued messages: finish or clear them first"
            )));
        }
        let new_id = if keep {
            let high = self
                .vg
                .lvs
                .iter()
                .filter_map(|l| l.thin().filter(|t| t.0 == pool).map(|t| t.1))
                .max()
                .unwrap_or(0);
            let n = high + 1;
            if n > (1 << 24) - 1 {
                return Err(ModelError::NoSpace { needed: 1, free: 0 });
            }
            Some(n)
        } else {
            None
        };
        let children: Vec<String> = if keep {
            Vec::new()
        } else {
            self.vg
                .lvs
                .iter()
                .filter(|l| l.thin_origin() == Some(snap))
                .map(|l| l.name.clone())
                .collect()
        };
        let mut touched: Vec<&str> = vec![origin, snap, &pool];
        touched.extend(children.iter().map(String::as_str));
        self.change(&touched, |doc| {
            lv_section_mut(doc, origin)?
                .body
                .section_mut("segment1")
                .ok_or_else(|| invalid(format!("{origin} without segment1")))?
                .body
                .set("device_id", uint(snap_id));
            match new_id {
                Some(n) => {
                    lv_section_mut(doc, snap)?
                        .body
                        .section_mut("segment1")
                        .ok_or_else(|| invalid(format!("{snap} without segment1")))?
                        .body
                        .set("device_id", uint(n));
                    queue_thin_message(doc, &pool, "create", Value::str(snap))?;
                }
                None => {
                    lvs_body_mut(doc)
                        .ok_or_else(|| invalid("no logical_volumes section"))?
                        .remove_section(snap);
                    for c in &children {
                        if let Some(seg) = lv_section_mut(doc, c)?.body.section_mut("segment1") {
                            seg.body.remove("origin");
                        }
                    }
                }
            }
            queue_thin_message(doc, &pool, "delete", uint(origin_id))
        })?;
        Ok(ThinRollback {
            pool,
            old_origin_id: origin_id,
            snap_id,
            new_snap_id: new_id,
        })
    }

    /// Records thin LV `name`, about to be removed, as LVM does with
    /// `metadata/record_lvs_history`: an entry in `historical_logical_volumes`
    /// with its id, creation and removal times, its origin and the thin LVs
    /// made from it, so `lvs -H -o full_ancestors` keeps the chain. Other
    /// LVs are not recorded (LVM records thin LVs only).
    pub fn record_history(&mut self, name: &str, removal_time: i64) -> Result<()> {
        let lv = self
            .vg
            .lv(name)
            .ok_or_else(|| ModelError::NotFound(name.into()))?;
        if lv.thin().is_none() {
            return Ok(());
        }
        let mut sec = Section::new(name);
        let b = &mut sec.body;
        b.push("id", Value::str(&lv.id));
        if let Some(t) = lv.creation_time {
            b.push("creation_time", Value::int(t));
        }
        b.push("removal_time", Value::int(removal_time));
        if let Some(o) = lv.thin_origin() {
            b.push("origin", Value::str(o));
        }
        let children: Vec<&str> = self
            .vg
            .lvs
            .iter()
            .filter(|l| l.thin_origin() == Some(name))
            .map(|l| l.name.as_str())
            .collect();
        if !children.is_empty() {
            b.push("descendants", Value::strings(&children));
        }
        self.change(&[], |doc| {
            let vg = &mut doc
                .vg_section_mut()
                .ok_or_else(|| invalid("no volume group section"))?
                .body;
            if vg.section("historical_logical_volumes").is_none() {
                let at = vg
                    .entries
                    .iter()
                    .position(|e| matches!(e, Entry::Section(s) if s.name == "logical_volumes"))
                    .map_or(vg.entries.len(), |i| i + 1);
                vg.entries.insert(
                    at,
                    Entry::Section(Section::new("historical_logical_volumes")),
                );
            }
            let h = vg
                .section_mut("historical_logical_volumes")
                .ok_or_else(|| invalid("no historical_logical_volumes"))?;
            h.body.remove_section(name);
            h.body.entries.push(Entry::Blank);
            h.body.entries.push(Entry::Section(sec));
            Ok(())
        })
    }

    /// Gives LV `name` LVM's permission `rw` (status READ, WRITE) or `r`
    /// (READ only), as `lvcreate -p` or `lvchange -p` write it.
    pub fn set_writable(&mut self, name: &str, writable: bool) -> Result<()> {
        let lv = self
            .vg
            .lv(name)
            .ok_or_else(|| ModelError::NotFound(name.into()))?;
        if lv.has_status("WRITE") == writable {
            return Ok(());
        }
        let status: Vec<String> = if writable {
            let mut v = lv.status.clone();
            let at = v.iter().position(|s| s == "READ").map_or(0, |i| i + 1);
            v.insert(at, "WRITE".into());
            v
        } else {
            lv.status
                .iter()
                .filter(|s| *s != "WRITE")
                .cloned()
                .collect()
        };
        self.change(&[name], |doc| {
            lv_section_mut(doc, name)?
                .body
                .set("status", Value::strings(&status));
            Ok(())
        })
    }

    /// A thin snapshot of thin LV `origin` (same size, same pool).
    pub fn add_thin_snapshot(
        &mut self,
        origin: &str,
        name: &str,
        activation_skip: bool,
        creation: &Creation,
    ) -> Result<u64> {
        let o = self
            .vg
            .lv(origin)
            .ok_or_else(|| ModelError::NotFound(origin.into()))?;
        let pool = o
            .thin()
            .map(|t| t.0.to_owned())
            .ok_or_else(|| ModelError::Refused(format!("{origin} is not a thin volume")))?;
        let extents = o.extents();
        self.add_thin_lv(
            name,
            &pool,
            extents,
            Some(origin),
            activation_skip,
            creation,
        )
    }

    /// Drops the messages queued in thin pool `pool` (LVM's second commit
    /// once the kernel pool carried them out).
    pub fn clear_thin_messages(&mut self, pool: &str) -> Result<()> {
        self.writable()?;
        self.pool_segment(pool)?;
        self.change(&[pool], |doc| {
            let seg = pool_segment_mut(doc, pool)?;
            seg.entries
                .retain(|e| !matches!(e, Entry::Section(s) if s.name.starts_with("message")));
            while matches!(seg.entries.last(), Some(Entry::Blank)) {
                seg.entries.pop();
            }
            Ok(())
        })
    }
}

/// What `sscanf(name, "snapshot%d")` reads after the prefix.
fn scanf_number(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(s.len(), |(i, _)| i);
    s.get(..end)?.parse::<i32>().ok().map(i64::from)
}

fn uint(v: u64) -> Value {
    Value::int(clamp(v))
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn lv_head(
    name: &str,
    id: &str,
    status: &[&str],
    flags: &[&str],
    creation: &Creation,
    segments: usize,
) -> Section {
    let mut lv = Section::new(name);
    let b = &mut lv.body;
    b.push("id", Value::str(id));
    b.push("status", Value::strings(status));
    b.push("flags", Value::strings(flags));
    b.push("creation_time", Value::int(creation.time));
    b.push("creation_host", Value::str(&creation.host));
    b.push("segment_count", uint(segments as u64));
    b.entries.push(Entry::Blank);
    lv
}

/// `segmentN { start_extent, extent_count, <blank>, type }` as LVM starts one.
fn segment_head(n: usize, start: u64, count: u64, ty: &str) -> Section {
    let mut seg = Section::new(format!("segment{n}"));
    let b = &mut seg.body;
    b.push("start_extent", uint(start));
    b.push("extent_count", uint(count));
    b.entries.push(Entry::Blank);
    b.push("type", Value::str(ty));
    seg
}

/// Appends an LV section (ordering is fixed afterwards by `order_lvs`),
/// creating `logical_volumes` after `physical_volumes` if there is none.
fn insert_lv(doc: &mut Document, lv: Section) -> Result<()> {
    let vg = &mut doc
        .vg_section_mut()
        .ok_or_else(|| invalid("no volume group section"))?
        .body;
    if vg.section("logical_volumes").is_none() {
        let at = vg
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Section(s) if s.name == "physical_volumes"))
            .map_or(vg.entries.len(), |i| i + 1);
        // LVM writes a blank line after physical_volumes and after logical_volumes.
        let at = if matches!(vg.entries.get(at), Some(Entry::Blank)) {
            at + 1
        } else {
            vg.entries.insert(at, Entry::Blank);
            at + 1
        };
        vg.entries
            .insert(at, Entry::Section(Section::new("logical_volumes")));
        if !matches!(vg.entries.get(at + 1), Some(Entry::Blank)) {
            vg.entries.insert(at + 1, Entry::Blank);
        }
    }
    let lvs = vg
        .section_mut("logical_volumes")
        .ok_or_else(|| invalid("no logical_volumes section"))?;
    lvs.body.entries.push(Entry::Blank);
    lvs.body.entries.push(Entry::Section(lv));
    Ok(())
}

fn remove_section_and_following_blank(body: &mut Body, name: &str) {
    if let Some(i) = body
        .entries
        .iter()
        .position(|e| matches!(e, Entry::Section(s) if s.name == name))
    {
        body.entries.remove(i);
        if matches!(body.entries.get(i), Some(Entry::Blank)) {
            body.entries.remove(i);
        }
    }
}

fn lv_section_mut<'a>(doc: &'a mut Document, name: &str) -> Result<&'a mut Section> {
    doc.vg_section_mut()
        .and_then(|s| s.body.section_mut("logical_volumes"))
        .and_then(|s| s.body.section_mut(name))
        .ok_or_else(|| ModelError::NotFound(name.into()))
}

/// Queues `messageN { key = value }` in thin pool `pool`; the first queued
/// message raises the pool's `transaction_id` (thin_manip.c).
fn queue_thin_message(doc: &mut Document, pool: &str, key: &str, value: Value) -> Result<()> {
    let seg = pool_segment_mut(doc, pool)?;
    let queued = seg
        .sections()
        .filter(|s| s.name.starts_with("message"))
        .count();
    if queued == 0 {
        let tid = seg
            .int("transaction_id")
            .and_then(|t| t.checked_add(1))
            .ok_or_else(|| invalid(format!("thin pool {pool}: bad transaction_id")))?;
        seg.set("transaction_id", Value::int(tid));
        seg.entries.push(Entry::Blank);
    }
    let mut msg = Section::new(format!("message{}", queued + 1));
    msg.body.push(key, value);
    seg.entries.push(Entry::Section(msg));
    Ok(())
}

fn pool_segment_mut<'a>(doc: &'a mut Document, pool: &str) -> Result<&'a mut Body> {
    lv_section_mut(doc, pool)?
        .body
        .section_mut("segment1")
        .map(|s| &mut s.body)
        .ok_or_else(|| invalid(format!("thin pool {pool} without segment1")))
}

/// Whether any string in the segments of LV section `lv` names LV `target`.
fn refers_to(lv: &Section, target: &str) -> bool {
    fn walk(b: &Body, target: &str) -> bool {
        b.entries.iter().any(|e| match e {
            Entry::Assign(a) => match &a.value {
                Value::Scalar(s) => s.as_str() == Some(target),
                Value::Array(arr) => arr.items.iter().any(|s| s.as_str() == Some(target)),
            },
            Entry::Section(s) => walk(&s.body, target),
            _ => false,
        })
    }
    segment_sections(&lv.body).any(|s| walk(&s.body, target))
}

fn set_strings_without(b: &mut Body, key: &str, drop: &str) {
    let kept: Vec<String> = b
        .strings(key)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| *s != drop)
        .map(str::to_owned)
        .collect();
    b.set(key, Value::strings(&kept));
}

fn rename_key(b: &mut Body, from: &str, to: &str) {
    for e in &mut b.entries {
        if let Entry::Assign(a) = e {
            if a.key == from {
                a.key = to.to_owned();
            }
        }
    }
}

mod check;
#[cfg(test)]
mod tests;
