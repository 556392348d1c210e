//! Reading the typed view out of the metadata tree, as LVM's importer does.

use super::*;

pub(super) fn lv_sections(vg: &Body) -> impl Iterator<Item = &Section> {
    vg.section("logical_volumes")
        .into_iter()
        .flat_map(|s| s.body.sections())
}

pub(super) fn lvs_body_mut(doc: &mut Document) -> Option<&mut Body> {
    doc.vg_section_mut()?
        .body
        .section_mut("logical_volumes")
        .map(|s| &mut s.body)
}

/// A parked section's stand-in: the parser never gives an empty name.
pub(super) fn is_stand_in(s: &Section) -> bool {
    s.name.is_empty() && s.body.entries.is_empty()
}

pub(super) fn segment_sections(lv: &Body) -> impl Iterator<Item = &Section> {
    lv.sections().filter(|s| s.name.starts_with("segment"))
}

pub(super) fn req_str<'a>(b: &'a Body, key: &str, ctx: &str) -> Result<&'a str> {
    b.str(key)
        .ok_or_else(|| invalid(format!("{ctx}: missing string \"{key}\"")))
}

/// An id, read as LVM reads one: a bad one makes the metadata unreadable.
pub(super) fn req_id<T: std::str::FromStr<Err = IdError>>(
    b: &Body,
    key: &str,
    ctx: &str,
) -> Result<T> {
    req_str(b, key, ctx)?
        .parse()
        .map_err(|e: IdError| invalid(format!("{ctx}: {e}")))
}

pub(super) fn req_u64(b: &Body, key: &str, ctx: &str) -> Result<u64> {
    let i = b
        .int(key)
        .ok_or_else(|| invalid(format!("{ctx}: missing integer \"{key}\"")))?;
    u64::try_from(i).map_err(|_| invalid(format!("{ctx}: \"{key}\" is negative")))
}

/// A `uint32_t` field as LVM's `_read_int32` reads it: a value past the
/// type's range is held as LVM holds it (the low 32 bits), and the first
/// such field is recorded in `range` as damage, naming it.
pub(super) fn req_u32(b: &Body, key: &str, ctx: &str, range: &mut Option<String>) -> Result<u32> {
    let v = req_u64(b, key, ctx)?;
    Ok(low_u32(v, range, || format!("{ctx}: {key}")))
}

/// `v` as LVM's `uint32_t` holds it; past the range, the low 32 bits, with
/// the field (`what`) recorded in `range` if nothing was before.
pub(super) fn low_u32(v: u64, range: &mut Option<String>, what: impl FnOnce() -> String) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| {
        range.get_or_insert_with(|| {
            format!("{} {v} is larger than LVM's limit {}", what(), u32::MAX)
        });
        v as u32
    })
}

/// An extent count or number (`uint32_t` in LVM), as [`req_u32`].
pub(super) fn req_extents(
    b: &Body,
    key: &str,
    ctx: &str,
    range: &mut Option<String>,
) -> Result<Extents> {
    req_u32(b, key, ctx, range).map(Extents)
}

/// An optional `uint32_t` field, 0 when absent or not a count.
pub(super) fn opt_u32(b: &Body, key: &str) -> u32 {
    b.int(key).and_then(|i| u32::try_from(i).ok()).unwrap_or(0)
}

pub(super) fn opt_flags<F: bitflags::Flags + Copy>(
    b: &Body,
    key: &str,
    ctx: &str,
) -> Result<FlagList<F>> {
    opt_strings(b, key, ctx).map(FlagList::from_words)
}

pub(super) fn opt_strings(b: &Body, key: &str, ctx: &str) -> Result<Vec<String>> {
    match b.get(key) {
        None => Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .and_then(Array::strings)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .ok_or_else(|| invalid(format!("{ctx}: \"{key}\" is not a list of strings"))),
    }
}

pub(super) fn parse_pv(s: &Section, range: &mut Option<String>) -> Result<Pv> {
    let ctx = format!("physical volume {}", s.name);
    let b = &s.body;
    Ok(Pv {
        key: s.name.clone(),
        id: req_id(b, "id", &ctx)?,
        device: b.str("device").map(str::to_owned),
        status: opt_flags(b, "status", &ctx)?,
        dev_size: Sectors(req_u64(b, "dev_size", &ctx)?),
        pe_start: Sectors(req_u64(b, "pe_start", &ctx)?),
        pe_count: req_extents(b, "pe_count", &ctx, range)?,
    })
}

pub(super) fn parse_segment(s: &Section, ctx: &str, range: &mut Option<String>) -> Result<Segment> {
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
                    [Scalar::Str(pv), Scalar::Int(pe)] => {
                        let pe = u64::try_from(*pe)
                            .map_err(|_| invalid(format!("{ctx}: negative extent")))?;
                        // LVM casts the area's first extent to uint32_t.
                        let start = low_u32(pe, range, || format!("{ctx}: extent of {pv}"));
                        stripes.push(Stripe {
                            pv: pv.clone(),
                            start: Extents(start),
                        })
                    }
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
            let stripe_size = match b.int("stripe_size") {
                None => None,
                Some(v) => {
                    let v = u64::try_from(v)
                        .map_err(|_| invalid(format!("{ctx}: \"stripe_size\" is negative")))?;
                    Some(low_u32(v, range, || format!("{ctx}: stripe_size")))
                }
            };
            Segment::striped_kind(stripe_size, stripes)
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
                chunk_size: Sectors(req_u32(b, "chunk_size", &ctx, range)?.into()),
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
                    let id = u64::try_from(id)
                        .map_err(|_| invalid(format!("{ctx}: negative device id in {}", m.name)))?;
                    let what = || format!("{ctx}: {} delete", m.name);
                    messages.push(ThinMessage::Delete(low_u32(id, range, what)));
                } else {
                    return Err(invalid(format!("{ctx}: unknown message in {}", m.name)));
                }
            }
            SegmentKind::ThinPool {
                metadata: req_str(b, "metadata", &ctx)?.to_owned(),
                pool: req_str(b, "pool", &ctx)?.to_owned(),
                transaction_id: req_u64(b, "transaction_id", &ctx)?,
                chunk_size: Sectors(req_u32(b, "chunk_size", &ctx, range)?.into()),
                discards: b.str("discards").map(str::to_owned),
                zero_new_blocks: b.int("zero_new_blocks").unwrap_or(0) != 0,
                messages,
            }
        }
        "thin" => SegmentKind::Thin {
            thin_pool: req_str(b, "thin_pool", &ctx)?.to_owned(),
            transaction_id: req_u64(b, "transaction_id", &ctx)?,
            device_id: req_u32(b, "device_id", &ctx, range)?,
            origin: b.str("origin").map(str::to_owned),
        },
        other => SegmentKind::Other {
            type_name: other.to_owned(),
        },
    };
    Ok(Segment {
        start_extent: req_extents(b, "start_extent", &ctx, range)?,
        extent_count: req_extents(b, "extent_count", &ctx, range)?,
        kind,
    })
}

impl Segment {
    pub(super) fn striped_kind(stripe_size: Option<u32>, stripes: Vec<Stripe>) -> SegmentKind {
        SegmentKind::Striped {
            stripe_size: stripe_size.map(|s| Sectors(s.into())),
            stripes,
        }
    }
}

pub(super) fn parse_lv(s: &Section) -> Result<Lv> {
    let ctx = format!("logical volume {}", s.name);
    let b = &s.body;
    let mut out_of_range = None;
    let segments = segment_sections(b)
        .map(|seg| parse_segment(seg, &ctx, &mut out_of_range))
        .collect::<Result<Vec<_>>>()?;
    let count = req_u64(b, "segment_count", &ctx)?;
    if count != segments.len() as u64 {
        return Err(invalid(format!(
            "{ctx}: segment_count {count} but {} segments",
            segments.len()
        )));
    }
    // In u64: a sum past LVM's uint32_t is damage the checks name.
    let mut next = 0u64;
    for seg in &segments {
        if seg.start_extent.as_u64() != next {
            return Err(invalid(format!("{ctx}: segments are not contiguous")));
        }
        next += seg.extent_count.as_u64();
    }
    Ok(Lv {
        name: s.name.clone(),
        id: req_id(b, "id", &ctx)?,
        status: opt_flags(b, "status", &ctx)?,
        flags: opt_flags(b, "flags", &ctx)?,
        tags: opt_strings(b, "tags", &ctx)?,
        creation_time: b.int("creation_time"),
        creation_host: b.str("creation_host").map(str::to_owned),
        segments,
        out_of_range,
    })
}

pub(super) fn parse_vg(doc: &Document) -> Result<Vg> {
    parse_vg_with(doc, |b| lv_sections(b).map(parse_lv).collect())
}

/// The VG with its LVs from `lvs` (given the VG section's body).
pub(super) fn parse_vg_with(
    doc: &Document,
    lvs: impl FnOnce(&Body) -> Result<Vec<Lv>>,
) -> Result<Vg> {
    let s = doc
        .vg_section()
        .ok_or_else(|| invalid("no volume group section"))?;
    let ctx = format!("volume group {}", s.name);
    let b = &s.body;
    let mut out_of_range = None;
    let pvs = b
        .section("physical_volumes")
        .map(|p| {
            p.body
                .sections()
                .map(|s| parse_pv(s, &mut out_of_range))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let lvs = lvs(b)?;
    // 0 is nonsense LVM still reads: the checks refuse to write it.
    let extent_size = ExtentSize(req_u32(b, "extent_size", &ctx, &mut out_of_range)?);
    Ok(Vg {
        name: s.name.clone(),
        id: req_id(b, "id", &ctx)?,
        seqno: req_u32(b, "seqno", &ctx, &mut out_of_range)?,
        status: opt_flags(b, "status", &ctx)?,
        flags: opt_flags(b, "flags", &ctx)?,
        tags: opt_strings(b, "tags", &ctx)?,
        extent_size,
        max_lv: opt_u32(b, "max_lv"),
        max_pv: opt_u32(b, "max_pv"),
        metadata_copies: opt_u32(b, "metadata_copies"),
        pvs,
        lvs,
        out_of_range,
    })
}
