//! Writing sections into the tree as LVM's exporter lays them out.

use super::*;

/// What `sscanf(name, "snapshot%d")` reads after the prefix.
pub(super) fn scanf_number(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(s.len(), |(i, _)| i);
    s.get(..end)?.parse::<i32>().ok().map(i64::from)
}

pub(super) fn uint(v: u64) -> Value {
    Value::int(clamp(v))
}

pub(super) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn lv_head(
    name: &str,
    id: &LvId,
    status: LvFlags,
    flags: LvFlags,
    creation: &Creation,
    segments: usize,
) -> Section {
    let mut lv = Section::new(name);
    let b = &mut lv.body;
    b.push("id", Value::str(id.to_string()));
    b.push("status", FlagList::from_flags(status).to_value());
    b.push("flags", FlagList::from_flags(flags).to_value());
    b.push("creation_time", Value::int(creation.time));
    b.push("creation_host", Value::str(&creation.host));
    b.push("segment_count", uint(segments as u64));
    b.entries.push(Entry::Blank);
    lv
}

/// `segmentN { start_extent, extent_count, <blank>, type }` as LVM starts one.
pub(super) fn segment_head(n: usize, start: u64, count: u64, ty: &str) -> Section {
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
pub(super) fn insert_lv(doc: &mut Document, lv: Section) -> Result<()> {
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

pub(super) fn remove_section_and_following_blank(body: &mut Body, name: &str) {
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

pub(super) fn lv_section_mut<'a>(doc: &'a mut Document, name: &str) -> Result<&'a mut Section> {
    doc.vg_section_mut()
        .and_then(|s| s.body.section_mut("logical_volumes"))
        .and_then(|s| s.body.section_mut(name))
        .ok_or_else(|| ModelError::NotFound(name.into()))
}

/// Queues `messageN { key = value }` in thin pool `pool`; the first queued
/// message raises the pool's `transaction_id` (thin_manip.c).
pub(super) fn queue_thin_message(
    doc: &mut Document,
    pool: &str,
    key: &str,
    value: Value,
) -> Result<()> {
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

pub(super) fn pool_segment_mut<'a>(doc: &'a mut Document, pool: &str) -> Result<&'a mut Body> {
    lv_section_mut(doc, pool)?
        .body
        .section_mut("segment1")
        .map(|s| &mut s.body)
        .ok_or_else(|| invalid(format!("thin pool {pool} without segment1")))
}

/// Whether any string in the segments of LV section `lv` names LV `target`.
pub(super) fn refers_to(lv: &Section, target: &str) -> bool {
    pub(super) fn walk(b: &Body, target: &str) -> bool {
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

pub(super) fn rename_key(b: &mut Body, from: &str, to: &str) {
    for e in &mut b.entries {
        if let Entry::Assign(a) = e {
            if a.key == from {
                a.key = to.to_owned();
            }
        }
    }
}
