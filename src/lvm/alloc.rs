//! Extent allocation for a new linear LV, as LVM's `normal` policy places it.
//!
//! LVM (lib/metadata/lv_manip.c, `_allocate`) tries its policies in turn:
//! a first round that takes, on each PV, the smallest free area that holds
//! the whole request (or the largest one if none does), then keeps the
//! candidate that gives most; then `cling` rounds that take the first
//! area of a PV already used; then `normal` rounds, clinging to used PVs
//! first. Its per-PV area lists are kept sorted by size and re-sorted while
//! being walked, which decides which of several fitting areas wins; this
//! module replays those list operations (pv_map.c) so it picks the same
//! extents LVM would (checked against `lvcreate` on fragmented PVs).

/// A run of physical extents on one PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Index of the PV in the volume group's PV order.
    pub pv: usize,
    /// First physical extent.
    pub start: u64,
    /// Number of extents.
    pub count: u64,
}

/// A run of free extents on one PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeRun {
    /// First physical extent.
    pub start: u64,
    /// Number of extents.
    pub count: u64,
}

/// One PV's free extents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PvFree {
    /// Whether new extents may be allocated on it.
    pub allocatable: bool,
    /// Its free runs, in address order.
    pub runs: Vec<FreeRun>,
}

/// Free extents of a volume group, per PV in PV order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeSpace {
    /// Each PV's free extents.
    pub pvs: Vec<PvFree>,
}

impl FreeSpace {
    /// Free extents on allocatable PVs.
    pub fn total(&self) -> u64 {
        self.pvs
            .iter()
            .filter(|p| p.allocatable)
            .flat_map(|p| p.runs.iter().map(|r| r.count))
            .sum()
    }
}

/// What allocation needs to know of one PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PvExtents {
    /// Whether new extents may be allocated on it.
    pub allocatable: bool,
    /// How many extents it holds.
    pub pe_count: u64,
}

/// Free runs of each PV (in PV order) given the used areas (overlaps and
/// areas past the end are tolerated).
pub fn free_space(pvs: &[PvExtents], used: &[Area]) -> FreeSpace {
    let mut out = Vec::with_capacity(pvs.len());
    for (
        i,
        &PvExtents {
            allocatable,
            pe_count,
        },
    ) in pvs.iter().enumerate()
    {
        let mut u: Vec<(u64, u64)> = used
            .iter()
            .filter(|a| a.pv == i)
            .map(|a| (a.start, a.start.saturating_add(a.count)))
            .collect();
        u.sort_unstable();
        let mut runs = Vec::new();
        let mut at = 0u64;
        for (s, e) in u {
            if s > at {
                runs.push(FreeRun {
                    start: at,
                    count: s.min(pe_count) - at.min(s),
                });
            }
            at = at.max(e);
            if at >= pe_count {
                break;
            }
        }
        if at < pe_count {
            runs.push(FreeRun {
                start: at,
                count: pe_count - at,
            });
        }
        runs.retain(|r| r.count > 0);
        out.push(PvFree { allocatable, runs });
    }
    FreeSpace { pvs: out }
}

struct PvArea {
    start: u64,
    count: u64,
    unreserved: u64,
}

struct Maps {
    areas: Vec<PvArea>,
    /// Per PV (allocatable ones, in PV order): its PV index and area ids.
    lists: Vec<(usize, Vec<usize>)>,
}

impl Maps {
    /// pv_map.c `_insert_area`: before the first area whose count is smaller.
    fn insert(&mut self, l: usize, id: usize, reduced: bool) {
        let Some(a) = self.areas.get(id) else { return };
        let c = if reduced { a.unreserved } else { a.count };
        let areas = &self.areas;
        if let Some((_, list)) = self.lists.get_mut(l) {
            let pos = list
                .iter()
                .position(|&o| areas.get(o).is_some_and(|o| c > o.count))
                .unwrap_or(list.len());
            list.insert(pos, id);
        }
    }

    fn remove(&mut self, l: usize, id: usize) {
        if let Some((_, list)) = self.lists.get_mut(l) {
            list.retain(|&o| o != id);
        }
    }

    fn reinsert_changed(&mut self, l: usize, id: usize) {
        self.remove(l, id);
        self.insert(l, id, true);
    }

    fn first(&self, l: usize) -> Option<usize> {
        self.lists.get(l)?.1.first().copied()
    }

    /// The element after `id` now: what `dm_list_iterate_items` moves to.
    fn next_after(&self, l: usize, id: usize) -> Option<usize> {
        let list = &self.lists.get(l)?.1;
        let pos = list.iter().position(|&o| o == id)?;
        list.get(pos + 1).copied()
    }

    fn reset_unreserved(&mut self) {
        for l in 0..self.lists.len() {
            let mut cur = self.first(l);
            while let Some(id) = cur {
                if let Some(a) = self.areas.get_mut(id) {
                    if a.unreserved != a.count {
                        a.unreserved = a.count;
                        self.reinsert_changed(l, id);
                    }
                }
                cur = self.next_after(l, id);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Cling {
    No,
    /// Cling to used PVs, taking their first area (`cling` policy).
    Positional,
    /// Cling to used PVs, walking their areas (`normal` after a first find).
    Walk,
}

/// One `_find_some_parallel_space` for a single area: the chosen
/// `(list, area id, used)`, if any.
fn find_some(
    m: &mut Maps,
    cling: Cling,
    used_pvs: &[usize],
    needed: u64,
) -> Option<(usize, usize, u64)> {
    m.reset_unreserved();
    let mut cands: Vec<(usize, usize, u64)> = Vec::new();
    for l in 0..m.lists.len() {
        let pv = m.lists.get(l).map(|x| x.0)?;
        let clings = used_pvs.contains(&pv);
        if cling != Cling::No && !clings {
            continue;
        }
        if cling == Cling::Positional {
            let head = m
                .lists
                .get(l)?
                .1
                .iter()
                .copied()
                .find(|&id| m.areas.get(id).is_some_and(|a| a.unreserved > 0));
            if let Some(id) = head {
                let count = m.areas.get(id)?.count;
                return Some((l, id, count));
            }
            continue;
        }
        let mut found: Option<(usize, usize, u64)> = None;
        let mut cur = m.first(l);
        while let Some(id) = cur {
            let a = m.areas.get_mut(id)?;
            if a.unreserved > 0 {
                if cling == Cling::No && a.unreserved < needed && found.is_some() {
                    break;
                }
                let required = if needed >= a.unreserved {
                    let r = a.unreserved;
                    a.unreserved = 0;
                    r
                } else {
                    a.unreserved -= needed;
                    m.reinsert_changed(l, id);
                    needed
                };
                found = Some((l, id, required));
            }
            cur = m.next_after(l, id);
        }
        cands.extend(found);
    }
    // qsort by `used`, largest first (glibc's merge sort keeps ties in order).
    cands.sort_by_key(|c| std::cmp::Reverse(c.2));
    cands.first().copied()
}

/// Where LVM's `normal` policy puts a new linear LV of `extents` extents,
/// as areas in logical order; `None` if there is not enough free space.
///
/// ```
/// use lvsnap::lvm::alloc::{allocate_linear, free_space, Area, PvExtents};
/// // One PV of 10 extents with 2..4 in use: the hole at 0..2 is too small
/// // for 3 extents, so the LV goes at 4.
/// let pv = PvExtents { allocatable: true, pe_count: 10 };
/// let free = free_space(&[pv], &[Area { pv: 0, start: 2, count: 2 }]);
/// assert_eq!(allocate_linear(&free, 3), Some(vec![Area { pv: 0, start: 4, count: 3 }]));
/// ```
pub fn allocate_linear(free: &FreeSpace, extents: u64) -> Option<Vec<Area>> {
    if extents == 0 || free.total() < extents {
        return None;
    }
    let mut m = Maps {
        areas: Vec::new(),
        lists: Vec::new(),
    };
    for (pv, p) in free.pvs.iter().enumerate() {
        if !p.allocatable || p.runs.is_empty() {
            continue;
        }
        let l = m.lists.len();
        m.lists.push((pv, Vec::new()));
        for &FreeRun { start, count } in &p.runs {
            let id = m.areas.len();
            m.areas.push(PvArea {
                start,
                count,
                unreserved: count,
            });
            m.insert(l, id, false);
        }
    }
    let mut out: Vec<Area> = Vec::new();
    let mut used_pvs: Vec<usize> = Vec::new();
    let mut remaining = extents;
    let mut round = |m: &mut Maps, cling: Cling, remaining: &mut u64| -> bool {
        let Some((l, id, used)) = find_some(m, cling, &used_pvs, *remaining) else {
            return false;
        };
        let len = used.min(*remaining);
        let (Some(pv), Some(a)) = (m.lists.get(l).map(|x| x.0), m.areas.get_mut(id)) else {
            return false;
        };
        let start = a.start;
        // pv_map.c consume_pv_area: take from the front, re-file the rest.
        let rest = a.count > len;
        a.start += len;
        a.count -= len;
        a.unreserved = a.count;
        m.remove(l, id);
        if rest {
            m.insert(l, id, false);
        }
        match out.last_mut() {
            Some(last) if last.pv == pv && last.start.checked_add(last.count) == Some(start) => {
                last.count += len
            }
            _ => out.push(Area {
                pv,
                start,
                count: len,
            }),
        }
        if !used_pvs.contains(&pv) {
            used_pvs.push(pv);
        }
        *remaining -= len;
        len > 0
    };
    // `contiguous`: one round (new LVs have no previous segment to follow).
    round(&mut m, Cling::No, &mut remaining);
    // `cling`: first areas of the PVs already used.
    while remaining > 0 && round(&mut m, Cling::Positional, &mut remaining) {}
    // `normal`: cling to used PVs while that finds space, else anywhere.
    let mut cling = Cling::Walk;
    while remaining > 0 {
        if round(&mut m, cling, &mut remaining) {
            cling = Cling::Walk;
        } else if cling == Cling::Walk {
            cling = Cling::No;
        } else {
            break;
        }
    }
    (remaining == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(allocatable: bool, pe_count: u64) -> PvExtents {
        PvExtents {
            allocatable,
            pe_count,
        }
    }

    /// The layout of the VM experiment: pv0 (63 extents) free at 0..4,
    /// 5..13, 14..17, 58..63; pv1 (31) free at 0..2, 7..10, 20..31.
    fn fragmented() -> FreeSpace {
        free_space(
            &[pv(true, 63), pv(true, 31)],
            &[
                a(0, 4, 1),
                a(0, 13, 1),
                a(0, 17, 41),
                a(1, 2, 5),
                a(1, 10, 10),
            ],
        )
    }

    fn a(pv: usize, start: u64, count: u64) -> Area {
        Area { pv, start, count }
    }

    #[test]
    fn free_runs() {
        let f = fragmented();
        let runs = |pv: usize| -> Vec<(u64, u64)> {
            f.pvs[pv].runs.iter().map(|r| (r.start, r.count)).collect()
        };
        assert_eq!(runs(0), vec![(0, 4), (5, 8), (14, 3), (58, 5)]);
        assert_eq!(runs(1), vec![(0, 2), (7, 3), (20, 11)]);
        assert_eq!(f.total(), 36);
    }

    /// What `lvcreate -l N` chose on that layout in the VM (LVM 2.03.16).
    #[test]
    fn matches_lvm_on_fragmented_pvs() {
        let f = fragmented();
        let seen: &[(u64, &[Area])] = &[
            (1, &[a(0, 14, 1)]),
            (2, &[a(0, 58, 2)]),
            (3, &[a(0, 0, 3)]),
            (4, &[a(0, 5, 4)]),
            (5, &[a(0, 5, 5)]),
            (6, &[a(0, 5, 6)]),
            (8, &[a(0, 5, 8)]),
            (9, &[a(1, 20, 9)]),
            (11, &[a(1, 20, 11)]),
            (12, &[a(1, 20, 11), a(1, 7, 1)]),
            (13, &[a(1, 20, 11), a(1, 7, 2)]),
        ];
        for (n, want) in seen {
            assert_eq!(
                allocate_linear(&f, *n).as_deref(),
                Some(*want),
                "{n} extents"
            );
        }
    }

    #[test]
    fn whole_free_space_and_beyond() {
        let f = fragmented();
        let all = allocate_linear(&f, 36).unwrap();
        assert_eq!(all.iter().map(|a| a.count).sum::<u64>(), 36);
        let mut seen: Vec<(usize, u64)> = all
            .iter()
            .flat_map(|a| (a.start..a.start + a.count).map(move |e| (a.pv, e)))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 36, "no extent twice");
        assert_eq!(allocate_linear(&f, 37), None);
        assert_eq!(allocate_linear(&f, 0), None);
    }

    #[test]
    fn skips_unallocatable_pvs() {
        let f = free_space(&[pv(false, 10), pv(true, 10)], &[]);
        assert_eq!(allocate_linear(&f, 4), Some(vec![a(1, 0, 4)]));
        assert_eq!(allocate_linear(&f, 11), None);
    }

    #[test]
    fn empty_vg_spans_pvs_like_lvm() {
        // twopv fixture: 75 extents on two empty 63-extent PVs with pv0 0..8
        // used went to pv1 0..63 then pv0 8..20.
        let f = free_space(&[pv(true, 63), pv(true, 63)], &[a(0, 0, 8)]);
        assert_eq!(
            allocate_linear(&f, 75),
            Some(vec![a(1, 0, 63), a(0, 8, 12)])
        );
    }
}
