//! What the kernel has live for a COW snapshot and its origin, typed, and
//! the repairs of an origin's top table: the snapshot layer asks here and
//! never reads a target type or spells a layer itself.

use devicemapper::{Device, DmName, DmNameBuf, Sectors};

use super::layer::Layer;
use super::plan::dm_name;
use crate::dm::{
    DmControl, Error, Result, SNAPSHOT, SNAPSHOT_MERGE, SNAPSHOT_ORIGIN,
    SnapshotOriginTargetParams, SnapshotTargetStatus, Suspend, TableLine, layer_name, table_size,
};
use crate::lvm::vg::{CowLinks, SegmentKind, Vg};

/// A `snapshot` or `snapshot-merge` status the kernel printed that does
/// not parse (its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableStatus(pub String);

impl UnreadableStatus {
    /// The parse error, as parsing the text gives it.
    pub fn error(&self) -> Error {
        Error::parse("snapshot status", &self.0)
    }
}

/// What a COW snapshot's own device has live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotLive {
    /// No such device, or one whose table is not one target.
    Absent,
    /// A `snapshot` target, with its status (working, invalid, overflowed).
    Snapshot(SnapshotTargetStatus),
    /// A `snapshot` target whose status does not parse.
    Unreadable(UnreadableStatus),
    /// Another target (while merging, say): its type as the kernel names it.
    Other(String),
}

/// What a COW origin's device has live, by its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginLive {
    /// No such device.
    Absent,
    /// `snapshot-origin`: its snapshots are live.
    Origin,
    /// `snapshot-merge`: a snapshot merges into it; the merge's status.
    Merging(SnapshotTargetStatus),
    /// `snapshot-merge` whose status does not parse.
    Unreadable(UnreadableStatus),
    /// Any other table: its one target's type as the kernel names it, or
    /// `""` for a table of several lines (a plain LV of several segments).
    Other(String),
}

impl std::fmt::Display for OriginLive {
    /// The table's target type, as messages name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginLive::Absent => f.write_str("no"),
            OriginLive::Origin => f.write_str(SNAPSHOT_ORIGIN),
            OriginLive::Merging(_) | OriginLive::Unreadable(_) => f.write_str(SNAPSHOT_MERGE),
            OriginLive::Other(t) => f.write_str(t),
        }
    }
}

/// What the snapshot device `snap` has live (one status ioctl).
pub fn snapshot_live(dm: &DmControl, snap: &DmName) -> Result<SnapshotLive> {
    Ok(SnapshotLive::of(dm.status_if_exists(snap)?))
}

impl SnapshotLive {
    /// What a snapshot device has live, from its status lines (`None`: no
    /// such device).
    pub fn of(status: Option<Vec<TableLine>>) -> SnapshotLive {
        let Some(mut lines) = status else {
            return SnapshotLive::Absent;
        };
        let (Some(l), true) = (lines.pop(), lines.is_empty()) else {
            return SnapshotLive::Absent;
        };
        if l.target_type != SNAPSHOT {
            return SnapshotLive::Other(l.target_type);
        }
        match l.params.parse() {
            Ok(st) => SnapshotLive::Snapshot(st),
            Err(_) => SnapshotLive::Unreadable(UnreadableStatus(l.params)),
        }
    }
}

/// What the origin device `origin` has live (one status ioctl).
pub fn origin_live(dm: &DmControl, origin: &DmName) -> Result<OriginLive> {
    Ok(OriginLive::of(dm.status_if_exists(origin)?))
}

impl OriginLive {
    /// What an origin device has live, from its status lines (`None`: no
    /// such device).
    pub fn of(status: Option<Vec<TableLine>>) -> OriginLive {
        let Some(mut lines) = status else {
            return OriginLive::Absent;
        };
        let (Some(l), true) = (lines.pop(), lines.is_empty()) else {
            return OriginLive::Other(String::new());
        };
        match l.target_type.as_str() {
            SNAPSHOT_ORIGIN => OriginLive::Origin,
            SNAPSHOT_MERGE => match l.params.parse() {
                Ok(st) => OriginLive::Merging(st),
                Err(_) => OriginLive::Unreadable(UnreadableStatus(l.params)),
            },
            _ => OriginLive::Other(l.target_type),
        }
    }
}

/// The kernel's status of a COW snapshot, if it is active: its own
/// `snapshot` target's, or, while `merging`, its origin's `snapshot-merge`
/// target's. A status that does not parse is `None`.
pub fn cow_live_status(
    dm: &DmControl,
    snap: &DmName,
    origin: &DmName,
    merging: bool,
) -> Result<Option<SnapshotTargetStatus>> {
    cow_live_status_with(|n| dm.status_if_exists(n), snap, origin, merging)
}

/// As [`cow_live_status`], with each device's status lines from `status`
/// (`None`: no such device), so a caller that has just read them (recovery's
/// survey) need not ask the kernel again.
pub fn cow_live_status_with(
    status: impl Fn(&DmName) -> Result<Option<Vec<TableLine>>>,
    snap: &DmName,
    origin: &DmName,
    merging: bool,
) -> Result<Option<SnapshotTargetStatus>> {
    match SnapshotLive::of(status(snap)?) {
        SnapshotLive::Snapshot(st) => return Ok(Some(st)),
        SnapshotLive::Unreadable(_) => return Ok(None),
        SnapshotLive::Absent | SnapshotLive::Other(_) => {}
    }
    if merging {
        if let OriginLive::Merging(st) = OriginLive::of(status(origin)?) {
            return Ok(Some(st));
        }
    }
    Ok(None)
}

/// Whether a table is a merge's (`snapshot-merge`).
pub fn is_merge_table(table: &[TableLine]) -> bool {
    table.iter().any(|l| l.target_type == SNAPSHOT_MERGE)
}

/// The name of the `-real` layer under the origin device `origin`.
pub fn real_layer(origin: &DmName) -> Result<DmNameBuf> {
    layer_name(origin, Layer::Real.as_str())
}

/// Whether the layer device `layer` (its DM UUID suffix) of LV `lv` is
/// one the metadata has no use for, as LVM lays layers out: a `-real` of
/// an LV that is no origin, a `-cow` of an LV that is no COW store, a
/// pool's `-tmeta` or `-tdata` whose pool device is not live (`is_live`).
pub fn unwanted_layer(vg: &Vg, lv: &str, layer: &str, is_live: impl Fn(&DmName) -> bool) -> bool {
    unwanted_layer_in(&vg.cow_links(), lv, layer, is_live)
}

/// [`unwanted_layer`] through the VG's COW links indexed once
/// ([`Vg::cow_links`]), for a caller that asks about every device of a VG.
pub fn unwanted_layer_in(
    links: &CowLinks<'_>,
    lv: &str,
    layer: &str,
    is_live: impl Fn(&DmName) -> bool,
) -> bool {
    let vg = links.vg();
    match Layer::parse(layer) {
        Some(Layer::Real) => !links.is_origin(lv),
        Some(Layer::Cow) => links.cow_snapshot(lv).is_none(),
        // A pool's data or metadata layer left without its pool (a
        // deactivation or activation cut short): LVM counts the
        // component active and refuses to activate the pool.
        Some(Layer::Tmeta | Layer::Tdata) => {
            let pool = vg.lvs.iter().find(|p| {
                matches!(p.segments.first().map(|g| &g.kind),
                    Some(SegmentKind::ThinPool { metadata, pool: data, .. })
                        if metadata == lv || data == lv)
            });
            match pool.map(|p| dm_name(vg, &p.name, Some(Layer::Tpool))) {
                Some(Ok(t)) => !is_live(t.as_dm_name()),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The top table an origin goes back to, as the metadata gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginTop {
    /// Plain: the table its `-real` layer has (no snapshot left).
    Plain,
    /// `snapshot-origin` over `-real` (snapshots, no merge recorded).
    Origin,
}

/// Gives the origin device `origin` the top table `top` over its `-real`
/// layer `real` (device `real_dev`), then suspends (flushing) and resumes
/// it so the table goes live.
pub fn restore_origin_top(
    dm: &DmControl,
    origin: &DmName,
    real: &DmName,
    real_dev: Device,
    top: OriginTop,
    read_only: bool,
) -> Result<()> {
    let want = match top {
        OriginTop::Plain => dm.table(real)?,
        OriginTop::Origin => {
            let size = table_size(&dm.table(origin)?);
            vec![TableLine::target(
                Sectors(0),
                size,
                &SnapshotOriginTargetParams { real: real_dev },
            )]
        }
    };
    dm.load(origin, &want, read_only)?;
    let mut g = dm.suspend_guard(origin, Suspend::FLUSH)?;
    g.keep_on_drop();
    g.resume()
}

/// Removes device `name`. A `snapshot` device is removed with the origin
/// that maps the same `-real` (one of `origins`) suspended around it.
pub fn remove_snapshot_aware<'a>(
    dm: &DmControl,
    name: &DmName,
    origins: impl IntoIterator<Item = &'a DmName>,
) -> Result<()> {
    let real = match dm.table(name).ok().as_deref() {
        Some([l]) if l.target_type == SNAPSHOT => {
            l.params.split_whitespace().next().and_then(parse_dev)
        }
        _ => None,
    };
    let origin = real.and_then(|r| {
        origins.into_iter().find(|o| {
            *o != name
                && matches!(dm.table(o).ok().as_deref(),
                    Some([l]) if l.target_type == SNAPSHOT_ORIGIN
                        && l.params.split_whitespace().next().and_then(parse_dev) == Some(r))
        })
    });
    match origin {
        Some(o) => {
            let g = dm.suspend_guard(o, Suspend::FLUSH)?;
            let r = dm.remove(name);
            g.resume()?;
            r
        }
        None => dm.remove(name),
    }
}

fn parse_dev(s: &str) -> Option<Device> {
    let (a, b) = s.split_once(':')?;
    Some(Device {
        major: a.parse().ok()?,
        minor: b.parse().ok()?,
    })
}

/// Tables compared as the kernel prints them: it adds trailing spaces, and
/// a `snapshot`/`snapshot-merge` table waiting for an exception handover
/// shows chunk size 0 until its resume (dm-snap's constructor zeroes it).
pub fn same_table(want: &[TableLine], have: &[TableLine]) -> bool {
    want.len() == have.len()
        && want.iter().zip(have).all(|(x, y)| {
            let snap = x.target_type == SNAPSHOT || x.target_type == SNAPSHOT_MERGE;
            let (xs, ys): (Vec<&str>, Vec<&str>) = (
                x.params.split_whitespace().collect(),
                y.params.split_whitespace().collect(),
            );
            x.start == y.start
                && x.length == y.length
                && x.target_type == y.target_type
                && xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(&ys)
                    .enumerate()
                    .all(|(i, (a, b))| a == b || (snap && i == 3 && *b == "0"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ty: &str, params: &str) -> TableLine {
        TableLine::new(
            devicemapper::Sectors(0),
            devicemapper::Sectors(64),
            ty,
            params.to_owned(),
        )
    }

    #[test]
    fn a_table_awaiting_handover_is_the_one_wanted() {
        let want = [line(SNAPSHOT_MERGE, "254:3 254:4 P 8")];
        assert!(same_table(
            &want,
            &[line(SNAPSHOT_MERGE, "254:3 254:4 P 0 ")]
        ));
        assert!(same_table(
            &want,
            &[line(SNAPSHOT_MERGE, "254:3 254:4 P 8")]
        ));
        assert!(!same_table(
            &want,
            &[line(SNAPSHOT_MERGE, "254:3 254:5 P 0")]
        ));
        assert!(!same_table(&want, &[line(SNAPSHOT, "254:3 254:4 P 0")]));
        let lin = [line("linear", "254:1 0")];
        assert!(!same_table(&lin, &[line("linear", "254:1 8")]));
    }
}
