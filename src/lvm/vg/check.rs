//! The checks LVM2 makes of a volume group before it uses or writes one
//! (`vg_validate` in lib/metadata/metadata.c and the text importer in
//! lib/format_text/import_vsn1.c): a VG that fails them is one LVM refuses,
//! and lvsnap writes nothing to it.

use std::collections::{HashMap, HashSet};

use super::thin::MAX_THIN_DEVICE_ID;
use super::{Lv, SegmentKind, Vg, lv_sections, segment_sections};
use crate::lvm::text::{Body, Entry};

/// LVM2 holds extent counts, extent sizes and seqno in `uint32_t`.
const U32: u64 = u32::MAX as u64;

/// Keys of segment types lvsnap does not model whose arrays name areas: PVs
/// (with a start extent) or LVs.
const AREA_ARRAYS: &[&str] = &["stripes", "mirrors", "raids"];

/// An extent range of a PV that a segment uses.
struct Used<'a> {
    start: u64,
    end: u64,
    lv: &'a str,
}

/// The first problem LVM2 would refuse the VG for, as one line, or `None`.
///
/// `body` is the VG section's body (for the areas of segment types the
/// typed view does not model).
pub(super) fn problem(vg: &Vg, body: Option<&Body>) -> Option<String> {
    check(vg, body).err()
}

fn check(vg: &Vg, body: Option<&Body>) -> Result<(), String> {
    // A field past LVM's type for it: the VG's first, then the LVs'.
    let mut range = (vg.out_of_range.iter()).chain(vg.lvs.iter().flat_map(|l| &l.out_of_range));
    if let Some(p) = range.next() {
        return Err(p.clone());
    }
    if vg.extent_size.0 == 0 {
        return Err("extent_size is 0".into());
    }
    let mut pv_ids = HashSet::new();
    let mut pv_keys = HashMap::new();
    for (i, pv) in vg.pvs.iter().enumerate() {
        if pv_keys.insert(pv.key.as_str(), i).is_some() {
            return Err(format!("physical volume {} is listed twice", pv.key));
        }
        if !pv_ids.insert(pv.id) {
            return Err(format!("duplicate PV id {} (on {})", pv.id, pv.key));
        }
        // pe_count is a uint32_t, as LVM's: past it is damage found above.
        // LVM reads and writes a pe_count past the recorded dev_size: so does lvsnap.
    }
    let mut names: HashMap<&str, &Lv> = HashMap::with_capacity(vg.lvs.len());
    let mut ids = HashSet::with_capacity(vg.lvs.len());
    for lv in &vg.lvs {
        if names.insert(lv.name.as_str(), lv).is_some() {
            return Err(format!("duplicate LV name {}", lv.name));
        }
        if !ids.insert(lv.id) {
            return Err(format!("duplicate LV id {} (LV {})", lv.id, lv.name));
        }
    }
    let mut used: Vec<Vec<Used>> = vg.pvs.iter().map(|_| Vec::new()).collect();
    // The view holds one LV per section and one segment per segment
    // section, in order: the raw sections give what the view does not model.
    let mut sections = body.into_iter().flat_map(lv_sections);
    for lv in &vg.lvs {
        let sec = sections.next();
        let mut segs = sec.into_iter().flat_map(|s| segment_sections(&s.body));
        let mut le = 0u64;
        for seg in &lv.segments {
            // Named only when there is a problem: a VG may have thousands.
            let at = Where(seg.start_extent.as_u64(), &lv.name);
            let raw = segs.next();
            let len = seg.extent_count.as_u64();
            le = le
                .checked_add(len)
                .filter(|&n| n <= U32)
                .ok_or_else(|| format!("LV {}: more extents than LVM's limit {U32}", lv.name))?;
            if len == 0 {
                return Err(format!("{at}: extent_count is 0"));
            }
            match &seg.kind {
                SegmentKind::Striped { stripes, .. } => {
                    let n = stripes.len() as u64;
                    if n == 0 || len % n != 0 {
                        return Err(format!(
                            "{at}: {len} extents do not divide into {n} stripes"
                        ));
                    }
                    let area = len / n;
                    for s in stripes {
                        let Some(&pi) = pv_keys.get(s.pv.as_str()) else {
                            if names.contains_key(s.pv.as_str()) {
                                continue; // an area on an LV (stacked)
                            }
                            return Err(format!("couldn't find volume '{}' for {at}", s.pv));
                        };
                        let pv = &vg.pvs[pi];
                        // In u64: a start and count of uint32_t never overflow it.
                        let start = s.start.as_u64();
                        let end = start + area;
                        if end > pv.pe_count.as_u64() {
                            return Err(format!(
                                "{at}: extents {start}..{end} lie beyond the {} extents of PV {}",
                                pv.pe_count.0, pv.key
                            ));
                        }
                        used[pi].push(Used {
                            start,
                            end,
                            lv: &lv.name,
                        });
                    }
                }
                SegmentKind::Snapshot {
                    chunk_size,
                    origin,
                    cow,
                    merging,
                } => {
                    if !names.contains_key(origin.as_str()) {
                        return Err(format!(
                            "unknown origin LV '{origin}' for snapshot {}",
                            lv.name
                        ));
                    }
                    let store = if *merging {
                        "merging_store"
                    } else {
                        "cow_store"
                    };
                    if !names.contains_key(cow.as_str()) {
                        return Err(format!(
                            "unknown {store} LV '{cow}' for snapshot {}",
                            lv.name
                        ));
                    }
                    if origin == cow {
                        return Err(format!(
                            "snapshot {}: origin and {store} are both {cow}",
                            lv.name
                        ));
                    }
                    // Past uint32_t it is damage found above.
                    if **chunk_size == 0 {
                        return Err(format!("snapshot {}: chunk_size 0", lv.name));
                    }
                }
                SegmentKind::ThinPool {
                    metadata,
                    pool,
                    chunk_size,
                    ..
                } => {
                    for (what, name) in [("metadata", metadata), ("pool", pool)] {
                        if !names.contains_key(name.as_str()) {
                            return Err(format!(
                                "unknown {what} LV '{name}' for thin pool {}",
                                lv.name
                            ));
                        }
                    }
                    if **chunk_size == 0 {
                        return Err(format!("thin pool {}: chunk_size 0", lv.name));
                    }
                }
                SegmentKind::Thin {
                    thin_pool,
                    device_id,
                    origin,
                    ..
                } => {
                    if !names
                        .get(thin_pool.as_str())
                        .is_some_and(|p| p.is_thin_pool())
                    {
                        return Err(format!(
                            "unknown thin pool '{thin_pool}' for thin LV {}",
                            lv.name
                        ));
                    }
                    if let Some(o) = origin {
                        if !names.contains_key(o.as_str()) {
                            return Err(format!("unknown origin LV '{o}' for thin LV {}", lv.name));
                        }
                    }
                    if *device_id > MAX_THIN_DEVICE_ID {
                        return Err(format!(
                            "thin LV {}: device_id {device_id} is too large",
                            lv.name
                        ));
                    }
                }
                SegmentKind::Other { .. } => {
                    let Some(raw) = raw else { continue };
                    for e in &raw.body.entries {
                        let Entry::Assign(a) = e else { continue };
                        if !AREA_ARRAYS.contains(&a.key.as_str()) {
                            continue;
                        }
                        let Some(arr) = a.value.as_array() else {
                            continue;
                        };
                        for name in arr.items.iter().filter_map(|s| s.as_str()) {
                            if !pv_keys.contains_key(name) && !names.contains_key(name) {
                                return Err(format!("couldn't find volume '{name}' for {at}"));
                            }
                        }
                    }
                }
            }
        }
    }
    for (pv, areas) in vg.pvs.iter().zip(&mut used) {
        areas.sort_unstable_by_key(|u| u.start);
        if let Some(w) = areas.windows(2).find(|w| w[1].start < w[0].end) {
            return Err(format!(
                "PV {}: extent {} is used by both LV {} and LV {}",
                pv.key, w[1].start, w[0].lv, w[1].lv
            ));
        }
    }
    Ok(())
}

/// A segment, as a problem names it.
struct Where<'a>(u64, &'a str);

impl std::fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment at extent {} of LV {}", self.0, self.1)
    }
}
