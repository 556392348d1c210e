//! The pure planner: which device-mapper devices LVM has for an LV, with
//! their names, UUIDs, tables, read-only flags, and the order LVM creates,
//! resumes and removes them in (seen with `lvchange -ay -vvvv`, LVM 2.03).

use std::collections::HashMap;

use devicemapper::{DataBlocks, Device, DmName, DmNameBuf, ThinDevId};

use super::error::{Error, Result};
use super::layer::Layer;
use crate::dm::{LvmDmName, LvmDmUuid, LvmId, TableLine, ThinPoolFeatures};
use crate::lvm::flags::LvFlags;
use crate::lvm::vg::{Lv, Segment, SegmentKind, Vg};
use crate::units::{Extents, Sectors};

/// Block devices of a VG's PVs by their metadata key (`pv0`), from a PV scan.
pub type PvMap = HashMap<String, Device>;

/// A device a table refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevRef {
    /// A PV, by its metadata key; resolved through a [`PvMap`].
    Pv(String),
    /// Another device of the plan (or an active one), by name.
    Dm(DmNameBuf),
}

/// Where a line's data lies: a device and the sector it starts at; on a
/// PV counted from its first extent (`pe_start`), which only the metadata
/// knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// The device.
    pub dev: DevRef,
    /// The first sector, past `pe_start` on a PV.
    pub start: Sectors,
}

/// A planned target, resolved into the `dm` params type of its target
/// once the devices are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedTarget {
    /// `linear` ([`LinearTargetParams`](crate::dm::LinearTargetParams)).
    Linear(Area),
    /// `striped` ([`StripedTargetParams`](crate::dm::StripedTargetParams)).
    Striped {
        /// The stripe size.
        chunk: Sectors,
        /// The stripes, in order.
        stripes: Vec<Area>,
    },
    /// `snapshot-origin` over the origin's `-real`
    /// ([`SnapshotOriginTargetParams`](crate::dm::SnapshotOriginTargetParams)).
    SnapshotOrigin {
        /// The origin's data device.
        real: DevRef,
    },
    /// `snapshot`, or with `merge` `snapshot-merge`
    /// ([`SnapshotTargetParams`](crate::dm::SnapshotTargetParams)).
    Snapshot {
        /// The origin's data device.
        real: DevRef,
        /// The exception store.
        cow: DevRef,
        /// The chunk size, as the metadata gives it (checked into a
        /// [`ChunkSize`](crate::dm::ChunkSize) when the line is resolved, as the kernel checks it
        /// when the table is loaded).
        chunk: Sectors,
        /// Merging into the origin.
        merge: bool,
    },
    /// `error`: every I/O fails.
    Error,
    /// `thin-pool` ([`ThinPoolTargetParams`](crate::dm::ThinPoolTargetParams)).
    ThinPool {
        /// The metadata device (`_tmeta`).
        metadata: DevRef,
        /// The data device (`_tdata`).
        data: DevRef,
        /// The data block size, as the metadata gives it (checked into a
        /// [`ThinPoolBlockSize`](crate::dm::ThinPoolBlockSize) when the line is resolved).
        block_size: Sectors,
        /// The low water mark.
        low_water_mark: DataBlocks,
        /// Feature arguments.
        features: ThinPoolFeatures,
    },
    /// `thin` ([`ThinTargetParams`](crate::dm::ThinTargetParams)).
    Thin {
        /// The pool (`-tpool`).
        pool: DevRef,
        /// The thin device's id in the pool.
        id: ThinDevId,
    },
}

/// A table line whose devices are not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLine {
    /// First sector.
    pub start: Sectors,
    /// Length.
    pub length: Sectors,
    /// What it maps to.
    pub target: PlannedTarget,
}

/// What a device is to the LV it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A device users open (`vg-lv`, a snapshot, a thin LV, the pool's `vg-pool`):
    /// deactivation is refused while it is open.
    Top,
    /// A layer (`-real`, `-cow`, `-tpool`, `_tmeta`, `_tdata`): kept on
    /// deactivation while another LV still uses it.
    Layer,
}

/// One device of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDevice {
    /// Its name (`vg-lv[-layer]`).
    pub name: LvmDmName,
    /// Its UUID (`LVM-<vgid><lvid>[-layer]`).
    pub uuid: LvmDmUuid,
    /// The LV it is made from.
    pub lv: String,
    /// The layer, if any.
    pub layer: Option<Layer>,
    /// Its table.
    pub table: Vec<PlannedLine>,
    /// Whether the table is loaded read-only.
    pub read_only: bool,
    /// Its role.
    pub role: Role,
    /// The `/dev/<vg>/<lv>` link LVM makes for it, if any (the LV name).
    pub link: Option<String>,
}

/// One step of activation, in LVM's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create device `n` of [`Plan::devices`] and load its table (not resumed).
    Create(usize),
    /// Resume device `n`, making its table live.
    Resume(usize),
}

/// The device-mapper tree of an LV, as LVM activates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The VG's name.
    pub vg: String,
    /// The LV asked for.
    pub lv: String,
    /// The devices, in creation order.
    pub devices: Vec<PlannedDevice>,
    /// Activation steps.
    pub steps: Vec<Step>,
    /// Deactivation order (indexes into `devices`), users before what they use.
    pub remove_order: Vec<usize>,
}

impl Plan {
    /// The device called `name`.
    pub fn device(&self, name: &DmName) -> Option<&PlannedDevice> {
        self.devices.iter().find(|d| *d.name == *name)
    }
}

fn lv<'a>(vg: &'a Vg, name: &str) -> Result<&'a Lv> {
    vg.lv(name)
        .ok_or_else(|| Error::NotFound(format!("logical volume {}/{name}", vg.name)))
}

fn sectors(vg: &Vg, lv: &str, e: Extents) -> Result<Sectors> {
    e.sectors(vg.extent_size)
        .ok_or_else(|| Error::invalid(lv, "size overflows"))
}

/// The DM name LVM gives LV `lv` of `vg`, with `layer` if it is one that
/// names carry ([`Layer::in_name`]).
pub fn dm_name(vg: &Vg, lv: &str, layer: Option<Layer>) -> Result<LvmDmName> {
    dm_name_in(&vg.name, lv, layer)
}

/// The DM name LVM gives LV `lv` of the VG called `vg`, with `layer` if it
/// is one that names carry ([`Layer::in_name`]).
pub fn dm_name_in(vg: &str, lv: &str, layer: Option<Layer>) -> Result<LvmDmName> {
    let layer = layer.filter(|l| l.in_name()).map(Layer::as_str);
    Ok(LvmDmName::new(vg, lv, layer)?)
}

/// The DM UUID LVM gives LV `lv` of `vg`, with an optional layer suffix.
pub fn dm_uuid(vg: &Vg, lv: &str, layer: Option<Layer>) -> Result<LvmDmUuid> {
    let l = self::lv(vg, lv)?;
    let vgid = LvmId::parse(vg.id.as_str())?;
    let lvid = LvmId::parse(l.id.as_str())?;
    Ok(LvmDmUuid::new(&vgid, &lvid, layer.map(Layer::as_str))?)
}

/// The table of an LV's own segments (linear or striped over PVs), as LVM
/// loads it into `vg-lv`, `vg-lv-real` or `vg-snap-cow`.
///
/// ```
/// use lvsnap::activate::{lv_table, PvMap};
/// use lvsnap::lvm::vg::Metadata;
/// use devicemapper::Device;
/// let md = Metadata::parse(&std::fs::read_to_string("tests/fixtures/linear.vg").unwrap()).unwrap();
/// let vg = md.vg();
/// let pvs: PvMap = vg.pvs.iter().map(|p| (p.key.clone(), Device { major: 7, minor: 0 })).collect();
/// let lv = &vg.visible_lvs()[0];
/// let table = lv_table(vg, lv, &pvs)?;
/// assert_eq!(table[0].target_type, "linear");
/// # Ok::<(), lvsnap::activate::Error>(())
/// ```
pub fn lv_table(vg: &Vg, lv: &str, pvs: &PvMap) -> Result<Vec<TableLine>> {
    segment_lines(vg, self::lv(vg, lv)?)?
        .iter()
        .map(|l| l.resolve(vg, pvs, &|_| None))
        .collect()
}

/// The planned lines of an LV's striped segments.
fn segment_lines(vg: &Vg, lv: &Lv) -> Result<Vec<PlannedLine>> {
    if lv.segments.is_empty() {
        return Err(Error::invalid(&lv.name, "no segments"));
    }
    lv.segments
        .iter()
        .map(|s| segment_line(vg, lv, s))
        .collect()
}

fn segment_line(vg: &Vg, lv: &Lv, seg: &Segment) -> Result<PlannedLine> {
    let start = sectors(vg, &lv.name, seg.start_extent)?;
    let length = sectors(vg, &lv.name, seg.extent_count)?;
    let SegmentKind::Striped {
        stripe_size,
        stripes,
    } = &seg.kind
    else {
        return Err(unsupported(lv, &seg.kind));
    };
    let area = |pv: &str, pe: Extents| -> Result<Area> {
        Ok(Area {
            dev: DevRef::Pv(pv.to_owned()),
            start: sectors(vg, &lv.name, pe)?,
        })
    };
    let target = match stripes.as_slice() {
        [] => return Err(Error::invalid(&lv.name, "segment without stripes")),
        [one] => PlannedTarget::Linear(area(&one.pv, one.start)?),
        many => {
            let size = stripe_size
                .ok_or_else(|| Error::invalid(&lv.name, "striped segment without stripe_size"))?;
            let n = many.len() as u64;
            if !seg.extent_count.as_u64().is_multiple_of(n) {
                return Err(Error::invalid(
                    &lv.name,
                    "extent_count is not a multiple of stripe_count",
                ));
            }
            let stripes = many
                .iter()
                .map(|s| area(&s.pv, s.start))
                .collect::<Result<_>>()?;
            PlannedTarget::Striped {
                chunk: size,
                stripes,
            }
        }
    };
    Ok(PlannedLine::typed(start, length, target))
}

fn unsupported(lv: &Lv, kind: &SegmentKind) -> Error {
    let t = match kind {
        SegmentKind::Striped { .. } => "striped",
        SegmentKind::Snapshot { .. } => "snapshot",
        SegmentKind::ThinPool { .. } => "thin-pool",
        SegmentKind::Thin { .. } => "thin",
        SegmentKind::Other { type_name } => type_name,
    };
    Error::Unsupported {
        lv: lv.name.clone(),
        segment_type: t.to_owned(),
    }
}

/// A device just added to a plan.
struct Added {
    i: usize,
    name: DmNameBuf,
}

/// Builds a plan step by step.
struct Builder<'a> {
    vg: &'a Vg,
    plan: Plan,
}

impl<'a> Builder<'a> {
    fn add(
        &mut self,
        lv: &Lv,
        layer: Option<Layer>,
        table: Vec<PlannedLine>,
        read_only: bool,
        role: Role,
        link: bool,
    ) -> Result<Added> {
        let d = PlannedDevice {
            name: dm_name(self.vg, &lv.name, layer)?,
            uuid: dm_uuid(self.vg, &lv.name, layer)?,
            lv: lv.name.clone(),
            layer,
            table,
            read_only,
            role,
            link: link.then(|| lv.name.clone()),
        };
        let name = d.name.clone().into_dm_name();
        self.plan.devices.push(d);
        Ok(Added {
            i: self.plan.devices.len() - 1,
            name,
        })
    }

    /// A reference to device `d` for another device's table.
    fn dev(d: &Added) -> DevRef {
        DevRef::Dm(d.name.clone())
    }

    fn steps(&mut self, steps: impl IntoIterator<Item = Step>) {
        self.plan.steps.extend(steps);
    }

    /// Creates, loads and resumes `d` at once (most devices, as LVM does).
    fn now(&mut self, d: Added) -> Added {
        self.steps([Step::Create(d.i), Step::Resume(d.i)]);
        d
    }
}

fn writable(lv: &Lv) -> bool {
    lv.has_status(LvFlags::WRITE)
}

/// The device-mapper tree LVM activates for LV `name` of `vg`: its own
/// devices and everything under them; for a COW snapshot or origin, the
/// origin with all its snapshots; for a thin LV, its pool's layers.
///
/// ```
/// use lvsnap::activate::plan;
/// use lvsnap::lvm::vg::Metadata;
/// let md = Metadata::parse(&std::fs::read_to_string("tests/fixtures/cow.vg").unwrap()).unwrap();
/// let p = plan(md.vg(), "snap1")?;
/// let names: Vec<String> = p.devices.iter().map(|d| d.name.to_string()).collect();
/// assert!(names.contains(&"vg-origin-real".to_string()));
/// # Ok::<(), lvsnap::activate::Error>(())
/// ```
pub fn plan(vg: &Vg, name: &str) -> Result<Plan> {
    let asked = lv(vg, name)?;
    // A snapshot (its COW LV or its snapshotN LV) is activated with its origin.
    let root = match vg.cow_snapshot(name) {
        Some(s) => s.origin,
        None => match asked.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::Snapshot { origin, .. }) => origin.clone(),
            _ => name.to_owned(),
        },
    };
    let root_lv = lv(vg, &root)?;
    let mut b = Builder {
        vg,
        plan: Plan {
            vg: vg.name.clone(),
            lv: name.to_owned(),
            devices: Vec::new(),
            steps: Vec::new(),
            remove_order: Vec::new(),
        },
    };
    let first = root_lv.segments.first().map(|s| &s.kind);
    if vg.is_origin(&root) {
        plan_origin(&mut b, root_lv)?;
    } else if root_lv.is_thin_pool() {
        let tpool = plan_pool(&mut b, root_lv)?;
        let size = sectors(vg, &root, root_lv.extents())?;
        let area = Area {
            dev: Builder::dev(&tpool),
            start: Sectors(0),
        };
        let table = vec![PlannedLine::typed(
            Sectors(0),
            size,
            PlannedTarget::Linear(area),
        )];
        // LVM loads the pool's public device read-only and links no /dev entry.
        b.add(root_lv, Some(Layer::Pool), table, true, Role::Top, false)
            .map(|d| b.now(d))?;
    } else if let Some(SegmentKind::Thin { .. }) = first {
        plan_thin(&mut b, root_lv)?;
    } else {
        let table = segment_lines(vg, root_lv)?;
        let link = vg.is_visible(&root);
        b.add(root_lv, None, table, !writable(root_lv), Role::Top, link)
            .map(|d| b.now(d))?;
    }
    if b.plan.remove_order.is_empty() {
        b.plan.remove_order = (0..b.plan.devices.len()).rev().collect();
    }
    Ok(b.plan)
}

/// An origin with its COW snapshots; a merging one is activated as LVM does:
/// `snapshot-merge` on the origin and an `error` table on the snapshot.
fn plan_origin(b: &mut Builder<'_>, origin: &Lv) -> Result<()> {
    let vg = b.vg;
    let size = sectors(vg, &origin.name, origin.extents())?;
    let ro = !writable(origin);
    let mut snaps = vg.snapshots_of(&origin.name);
    // The merging snapshot is the origin's dependency: LVM makes it first.
    snaps.sort_by_key(|s| !s.merging);
    let merging = snaps.iter().find(|s| s.merging).cloned();
    let real = b.add(
        origin,
        Some(Layer::Real),
        segment_lines(vg, origin)?,
        ro,
        Role::Layer,
        false,
    )?;
    let real_ref = DevRef::Dm(real.name.clone());
    let mut late = vec![];
    let origin_table = |merging: Option<(DmNameBuf, Sectors)>| {
        let target = match merging {
            Some((cow, chunk)) => PlannedTarget::Snapshot {
                real: real_ref.clone(),
                cow: DevRef::Dm(cow),
                chunk,
                merge: true,
            },
            None => PlannedTarget::SnapshotOrigin {
                real: real_ref.clone(),
            },
        };
        PlannedLine::typed(Sectors(0), size, target)
    };
    let mut top = None;
    if merging.is_none() {
        b.steps([Step::Create(real.i)]);
        late.push(real.i);
        top = Some(
            b.add(
                origin,
                None,
                vec![origin_table(None)],
                ro,
                Role::Top,
                vg.is_visible(&origin.name),
            )?
            .i,
        );
        b.steps(top.map(Step::Create));
    } else {
        b.steps([Step::Create(real.i), Step::Resume(real.i)]);
    }
    let mut snap_devs = vec![];
    for s in &snaps {
        let cow_lv = lv(vg, &s.name)?;
        let chunk = s.chunk_size;
        let cow = b
            .add(
                cow_lv,
                Some(Layer::Cow),
                segment_lines(vg, cow_lv)?,
                false,
                Role::Layer,
                false,
            )
            .map(|d| b.now(d))?;
        if s.merging {
            top = Some(
                b.add(
                    origin,
                    None,
                    vec![origin_table(Some((cow.name.clone(), chunk)))],
                    ro,
                    Role::Top,
                    vg.is_visible(&origin.name),
                )?
                .i,
            );
            b.steps(top.map(Step::Create));
        }
        let target = if s.merging {
            PlannedTarget::Error
        } else {
            PlannedTarget::Snapshot {
                real: real_ref.clone(),
                cow: DevRef::Dm(cow.name.clone()),
                chunk,
                merge: false,
            }
        };
        let table = PlannedLine::typed(Sectors(0), size, target);
        let link = vg.is_visible(&s.name);
        let snap = b.add(
            cow_lv,
            None,
            vec![table],
            !writable(cow_lv),
            Role::Top,
            link,
        )?;
        b.steps([Step::Create(snap.i)]);
        late.push(snap.i);
        snap_devs.push((snap.i, cow.i));
    }
    let top = top.ok_or_else(|| Error::invalid(&origin.name, "origin without a device"))?;
    late.push(top);
    b.steps(late.into_iter().map(Step::Resume));
    let mut order = vec![top];
    for (snap, cow) in snap_devs {
        order.extend([snap, cow]);
    }
    order.push(real.i);
    b.plan.remove_order = order;
    Ok(())
}

/// The pool's `_tmeta`, `_tdata` and `-tpool` devices; returns the `-tpool`.
fn plan_pool(b: &mut Builder<'_>, pool: &Lv) -> Result<Added> {
    let vg = b.vg;
    let Some(SegmentKind::ThinPool {
        metadata,
        pool: data,
        chunk_size,
        discards,
        zero_new_blocks,
        ..
    }) = pool.segments.first().map(|s| &s.kind)
    else {
        return Err(Error::invalid(&pool.name, "not a thin pool"));
    };
    if pool.segments.len() != 1 {
        return Err(Error::invalid(
            &pool.name,
            "thin pool with several segments",
        ));
    }
    let mut layers = vec![];
    for (name, layer) in [(metadata, Layer::Tmeta), (data, Layer::Tdata)] {
        let l = lv(vg, name)?;
        let table = segment_lines(vg, l)?;
        let d = b.add(l, Some(layer), table, !writable(l), Role::Layer, false)?;
        layers.push(Builder::dev(&b.now(d)));
    }
    let mut features = ThinPoolFeatures::empty();
    features.set(ThinPoolFeatures::SKIP_BLOCK_ZEROING, !zero_new_blocks);
    match discards.as_deref() {
        Some("ignore") => features.insert(ThinPoolFeatures::IGNORE_DISCARD),
        Some("nopassdown") => features.insert(ThinPoolFeatures::NO_DISCARD_PASSDOWN),
        _ => {}
    }
    features.set(
        ThinPoolFeatures::ERROR_IF_NO_SPACE,
        pool.has_flag(LvFlags::ERROR_WHEN_FULL),
    );
    let [metadata, data] = <[DevRef; 2]>::try_from(layers)
        .map_err(|_| Error::invalid(&pool.name, "thin pool without its two layers"))?;
    let target = PlannedTarget::ThinPool {
        metadata,
        data,
        block_size: *chunk_size,
        // LVM's default autoextend threshold of 100%.
        low_water_mark: DataBlocks(0),
        features,
    };
    let size = sectors(vg, &pool.name, pool.extents())?;
    let table = vec![PlannedLine::typed(Sectors(0), size, target)];
    b.add(
        pool,
        Some(Layer::Tpool),
        table,
        !writable(pool),
        Role::Layer,
        false,
    )
    .map(|d| b.now(d))
}

/// A thin LV over its pool's `-tpool`.
fn plan_thin(b: &mut Builder<'_>, thin: &Lv) -> Result<()> {
    let vg = b.vg;
    let (pool_name, device_id) = thin
        .thin()
        .ok_or_else(|| Error::invalid(&thin.name, "not a thin LV"))?;
    if thin.segments.len() != 1 {
        return Err(Error::invalid(&thin.name, "thin LV with several segments"));
    }
    let pool = lv(vg, pool_name)?;
    let tpool = plan_pool(b, pool)?;
    let size = sectors(vg, &thin.name, thin.extents())?;
    let id = ThinDevId::new_u64(device_id.into())
        .map_err(|_| Error::invalid(&thin.name, "device_id does not fit in 24 bits"))?;
    let target = PlannedTarget::Thin {
        pool: Builder::dev(&tpool),
        id,
    };
    let table = vec![PlannedLine::typed(Sectors(0), size, target)];
    let link = vg.is_visible(&thin.name);
    b.add(thin, None, table, !writable(thin), Role::Top, link)
        .map(|d| b.now(d))?;
    Ok(())
}

mod line;
#[cfg(test)]
mod tests;
