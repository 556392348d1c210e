//! Planned lines resolved into the `dm` params types once the devices are
//! known, and shown with their devices by name.

use std::fmt;

use devicemapper::{Device, DmName};

use super::{Area, DevRef, PlannedLine, PlannedTarget, PvMap};
use crate::activate::error::{Error, Result};
use crate::dm::{
    ChunkSize, LinearTargetParams, SnapshotOriginTargetParams, SnapshotTargetParams, Stripe,
    StripedTargetParams, TableLine, ThinPoolBlockSize, ThinPoolTargetParams, ThinTargetParams,
};
use crate::lvm::vg::Vg;
use crate::units::Sectors;

impl PlannedLine {
    /// The line with devices as `major:minor`: PVs through `pvs`, other
    /// devices through `dm` (name to device).
    pub fn resolve(
        &self,
        vg: &Vg,
        pvs: &PvMap,
        dm: &dyn Fn(&DmName) -> Option<Device>,
    ) -> Result<TableLine> {
        let dev = |r: &DevRef| match r {
            DevRef::Pv(key) => pv_device(pvs, key),
            DevRef::Dm(name) => {
                dm(name).ok_or_else(|| Error::NotFound(format!("device-mapper device {}", &**name)))
            }
        };
        let area = |a: &Area| match &a.dev {
            DevRef::Pv(key) => {
                let pv = vg
                    .pv(key)
                    .ok_or_else(|| Error::NotFound(format!("PV {key} in metadata")))?;
                pv.pe_start
                    .0
                    .checked_add(a.start.0)
                    .map(Sectors)
                    .ok_or_else(|| Error::invalid(key, "PV offset overflows"))
            }
            DevRef::Dm(_) => Ok(a.start),
        };
        self.typed_line(&dev, &area)
    }

    /// A typed target's line, its devices through `dev`, the first sector
    /// of an area through `area`.
    fn typed_line(
        &self,
        dev: &dyn Fn(&DevRef) -> Result<Device>,
        area: &dyn Fn(&Area) -> Result<Sectors>,
    ) -> Result<TableLine> {
        let (start, length) = (self.start, self.length);
        let stripe = |a: &Area| -> Result<Stripe> {
            Ok(Stripe {
                dev: dev(&a.dev)?,
                offset: area(a)?,
            })
        };
        Ok(match &self.target {
            PlannedTarget::Linear(a) => {
                let s = stripe(a)?;
                let p = LinearTargetParams {
                    dev: s.dev,
                    offset: s.offset,
                };
                TableLine::target(start, length, &p)
            }
            PlannedTarget::Striped { chunk, stripes } => {
                let stripes = stripes.iter().map(stripe).collect::<Result<_>>()?;
                let p = StripedTargetParams::new(*chunk, stripes)?;
                TableLine::target(start, length, &p)
            }
            PlannedTarget::SnapshotOrigin { real } => {
                let p = SnapshotOriginTargetParams { real: dev(real)? };
                TableLine::target(start, length, &p)
            }
            PlannedTarget::Snapshot {
                real,
                cow,
                chunk,
                merge,
            } => {
                let p = SnapshotTargetParams {
                    real: dev(real)?,
                    cow: dev(cow)?,
                    chunk: ChunkSize::new(*chunk)?,
                    merge: *merge,
                };
                TableLine::target(start, length, &p)
            }
            PlannedTarget::Error => TableLine::error(start, length),
            PlannedTarget::ThinPool {
                metadata,
                data,
                block_size,
                low_water_mark,
                features,
            } => {
                let p = ThinPoolTargetParams {
                    metadata: dev(metadata)?,
                    data: dev(data)?,
                    block_size: ThinPoolBlockSize::new(*block_size)?,
                    low_water_mark: *low_water_mark,
                    features: *features,
                };
                TableLine::target(start, length, &p)
            }
            PlannedTarget::Thin { pool, id } => {
                let p = ThinTargetParams {
                    pool: dev(pool)?,
                    id: *id,
                    external_origin: None,
                };
                TableLine::target(start, length, &p)
            }
        })
    }

    pub(super) fn typed(start: Sectors, length: Sectors, target: PlannedTarget) -> PlannedLine {
        PlannedLine {
            start,
            length,
            target,
        }
    }

    /// The devices this line refers to, in order.
    fn devs(&self) -> Vec<&DevRef> {
        match &self.target {
            PlannedTarget::SnapshotOrigin { real } => vec![real],
            PlannedTarget::Snapshot { real, cow, .. } => vec![real, cow],
            PlannedTarget::Error => vec![],
            PlannedTarget::Linear(a) => vec![&a.dev],
            PlannedTarget::Striped { stripes, .. } => stripes.iter().map(|a| &a.dev).collect(),
            PlannedTarget::ThinPool { metadata, data, .. } => vec![metadata, data],
            PlannedTarget::Thin { pool, .. } => vec![pool],
        }
    }

    /// The plan's devices this line uses.
    pub fn dm_deps(&self) -> impl Iterator<Item = &DmName> {
        self.devs().into_iter().filter_map(|d| match d {
            DevRef::Dm(n) => Some(&**n),
            DevRef::Pv(_) => None,
        })
    }
}

impl fmt::Display for DevRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevRef::Pv(k) => write!(f, "<{k}>"),
            DevRef::Dm(n) => write!(f, "<{}>", &**n),
        }
    }
}

impl fmt::Display for PlannedLine {
    /// The typed line with placeholder devices, each then written as the
    /// device it stands for; a PV's offset (the field after it in every
    /// target) as `<pvN.pe_start+sectors>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = Device { major: 0, minor: 0 };
        let l = match self.typed_line(&|_| Ok(none), &|a| Ok(a.start)) {
            Ok(l) => l,
            Err(e) => return write!(f, "{} {} <{e}>", *self.start, *self.length),
        };
        let (none, mut devs) = (none.to_string(), self.devs().into_iter());
        write!(f, "{} {} {}", *l.start, *l.length, l.target_type)?;
        let mut pv = None;
        for t in l.params.split_whitespace() {
            if let Some(k) = pv.take() {
                write!(f, " <{k}.pe_start+{t}>")?;
                continue;
            }
            match (t == none).then(|| devs.next()).flatten() {
                Some(d) => {
                    if let DevRef::Pv(k) = d {
                        pv = Some(k);
                    }
                    write!(f, " {d}")?
                }
                None => write!(f, " {t}")?,
            }
        }
        Ok(())
    }
}

fn pv_device(pvs: &PvMap, key: &str) -> Result<Device> {
    pvs.get(key)
        .copied()
        .ok_or_else(|| Error::NotFound(format!("device of PV {key}")))
}
