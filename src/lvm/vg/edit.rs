//! Edits of plain LVs: linear LVs, extending, tags, permissions, removal
//! and the history LVM keeps of removed thin LVs.

use super::*;

impl Metadata {
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
        let id = LvId::random().map_err(ModelError::Id)?;
        let sec = self.striped_lv_section(
            name,
            &id,
            LvFlags::READ | LvFlags::WRITE | LvFlags::VISIBLE,
            LvFlags::empty(),
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
        // lv_manip.c: the LV's extents stay below LVM's MAX_EXTENT_COUNT.
        if extents.0 >= u32::MAX - lv.extents().0 {
            return Err(ModelError::Refused(format!(
                "Unable to extend {}/{name} by {} logical extents: exceeds limit ({}).",
                self.vg.name,
                extents.0,
                u32::MAX
            )));
        }
        let mut free = self.free_space();
        let want = extents.as_u64();
        if want > free.total() {
            return Err(ModelError::NoSpace {
                needed: want,
                free: free.total(),
            });
        }
        let pv = self
            .vg
            .pvs
            .iter()
            .position(|p| p.key == last.0.pv)
            .ok_or_else(|| invalid(format!("{name}: segment on unknown {}", last.0.pv)))?;
        // In u64: two uint32_t never overflow it; past u32 the new LV's
        // parse refuses it.
        let end = last.0.start.as_u64() + last.1.as_u64();
        // Contiguous round: the run right after the LV's end, as far as it goes.
        let mut grow = 0;
        if let Some(p) = free.pvs.get_mut(pv).filter(|p| p.allocatable) {
            if let Some(r) = p.runs.iter_mut().find(|r| r.start == end) {
                grow = r.count.min(want);
                r.start += grow;
                r.count -= grow;
            }
        }
        let rest = want - grow;
        let mut areas = Vec::new();
        if rest > 0 {
            let cling = FreeSpace {
                pvs: free
                    .pvs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if i == pv {
                            p.clone()
                        } else {
                            PvFree::default()
                        }
                    })
                    .collect(),
            };
            areas = alloc::allocate_linear(&cling, rest)
                .or_else(|| alloc::allocate_linear(&free, rest))
                .ok_or(ModelError::NoSpace {
                    needed: want,
                    free: free.total() + grow,
                })?;
        }
        let first_new = lv.extents().as_u64() + grow;
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
                seg.body.set("extent_count", uint(last.1.as_u64() + grow));
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

    pub(super) fn pv_key(&self, index: usize) -> String {
        self.vg
            .pvs
            .get(index)
            .map_or_else(|| format!("pv{index}"), |p| p.key.clone())
    }

    pub(super) fn striped_lv_section(
        &self,
        name: &str,
        id: &LvId,
        status: LvFlags,
        flags: LvFlags,
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

    pub(super) fn remove_lv_unchecked(&mut self, name: &str) -> Result<()> {
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
            // LVM refuses metadata whose history names an LV that is gone.
            if let Some(h) = vg.section_mut("historical_logical_volumes") {
                unlink_history(&mut h.body, name);
            }
            for child in &thin_children {
                if let Some(seg) = lv_section_mut(doc, child)?.body.section_mut("segment1") {
                    seg.body.remove("origin");
                }
            }
            // The pool's kernel device goes with a queued `delete` message.
            if let Some((pool, id)) = &thin {
                queue_thin_message(doc, pool, "delete", uint((*id).into()))?;
            }
            Ok(())
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
        b.push("id", Value::str(lv.id.to_string()));
        if let Some(t) = lv.creation_time {
            b.push("creation_time", Value::int(t));
        }
        b.push("removal_time", Value::int(removal_time));
        // A live origin, or the historical LV that lists this one among
        // its descendants.
        let origin = match lv.thin_origin() {
            Some(o) => Some(o.to_owned()),
            None => historical_parent(&self.doc, name),
        };
        if let Some(o) = origin {
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
            // Historical LVs that came from the live one now come from
            // its record, as LVM relinks them (`origin = "-NAME"`).
            let hist_name = format!("-{name}");
            for s in h.body.sections_mut() {
                if s.body.str("origin") == Some(name) {
                    s.body.set("origin", Value::str(&hist_name));
                }
            }
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
        if lv.has_status(LvFlags::WRITE) == writable {
            return Ok(());
        }
        let status = if writable {
            lv.status.with(LvFlags::WRITE)
        } else {
            lv.status.without(LvFlags::WRITE)
        };
        self.change(&[name], |doc| {
            lv_section_mut(doc, name)?
                .body
                .set("status", status.to_value());
            Ok(())
        })
    }
}

/// `-NAME` of the historical LV whose `descendants` lists live LV `name`.
fn historical_parent(doc: &Document, name: &str) -> Option<String> {
    doc.vg_section()?
        .body
        .section("historical_logical_volumes")?
        .body
        .sections()
        .find(|h| {
            h.body
                .strings("descendants")
                .is_some_and(|d| d.contains(&name))
        })
        .map(|h| format!("-{}", h.name))
}

/// Drops live LV `name` from the historical LVs' links: as their origin,
/// and from their `descendants`.
fn unlink_history(h: &mut Body, name: &str) {
    for s in h.sections_mut() {
        if s.body.str("origin") == Some(name) {
            s.body.remove("origin");
        }
        let Some(d) = s.body.strings("descendants") else {
            continue;
        };
        if !d.contains(&name) {
            continue;
        }
        let rest: Vec<String> = d
            .into_iter()
            .filter(|x| *x != name)
            .map(str::to_owned)
            .collect();
        if rest.is_empty() {
            s.body.remove("descendants");
        } else {
            s.body.set("descendants", Value::strings(&rest));
        }
    }
}
