use super::*;

fn fixture(name: &str) -> Metadata {
    let path = format!("{}/tests/fixtures/{name}.vg", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Metadata::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn creation() -> Creation {
    Creation {
        time: 1_700_000_000,
        host: "testhost".into(),
    }
}

#[test]
fn typed_view_of_cow_fixture() {
    let md = fixture("cow");
    let vg = md.vg();
    assert_eq!(vg.name, "vg");
    assert_eq!(vg.seqno, 16);
    assert_eq!(vg.extent_size.sectors(), Sectors(8192));
    assert_eq!(vg.pvs.len(), 2);
    assert_eq!(vg.pvs[0].pe_count, Extents(63));
    assert!(vg.pvs[0].allocatable());
    let snaps = vg.cow_snapshots();
    assert_eq!(snaps.len(), 2);
    let s = vg.cow_snapshot("snap1").unwrap();
    assert_eq!(
        (s.origin.as_str(), s.snapshot_lv.as_str()),
        ("origin", "snapshot0")
    );
    assert_eq!(s.chunk_size, Sectors(8));
    assert!(!s.merging);
    assert!(vg.is_origin("origin"));
    assert_eq!(
        vg.visible_lvs(),
        vec!["lin", "gap2", "striped", "origin", "snap1", "snapro"]
    );
    assert_eq!(vg.lv_size("snap1"), Some(Sectors(2 * 8192)));
    match &vg.lv("striped").unwrap().segments[0].kind {
        SegmentKind::Striped {
            stripe_size,
            stripes,
        } => {
            assert_eq!(*stripe_size, Some(Sectors(128)));
            assert_eq!(stripes.len(), 2);
            assert_eq!(stripes[1].pv, "pv1");
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn merging_fixture() {
    let md = fixture("merging");
    let s = md.vg().cow_snapshot("snap1").unwrap();
    assert!(s.merging);
    assert!(!md.vg().is_visible("snap1"));
    assert!(md.vg().is_visible("snapro"));
}

#[test]
fn thin_fixtures() {
    let md = fixture("thinsnap2");
    let vg = md.vg();
    assert_eq!(vg.thin_pool_of("thin1"), Some("pool"));
    assert_eq!(vg.lv("tsnap").unwrap().thin_origin(), Some("thin1"));
    assert!(vg.lv("tsnap").unwrap().has_flag(LvFlags::ACTIVATION_SKIP));
    assert!(!vg.lv("tsnap2").unwrap().has_flag(LvFlags::ACTIVATION_SKIP));
    assert!(vg.lv("pool").unwrap().is_thin_pool());
    assert!(!vg.is_visible("pool_tmeta"));
    match &vg.lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool {
            transaction_id,
            chunk_size,
            messages,
            ..
        } => {
            assert_eq!(*transaction_id, 3);
            assert_eq!(*chunk_size, Sectors(128));
            assert!(messages.is_empty());
        }
        k => panic!("{k:?}"),
    }
}

/// Strips what every write changes (seqno, header times/description) so
/// texts can be compared.
fn normalize(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("seqno")
                || t.starts_with("# Generated")
                || t.starts_with("description")
                || (l.starts_with("creation_")))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays LVM's own changes between two fixtures: what lvsnap writes must
/// be what LVM wrote, apart from ids and times.
fn same_apart_from_ids_and_times(ours: &str, lvm: &str) {
    let strip = |t: &str| -> String {
        normalize(t)
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t.starts_with("id =")
                    || t.starts_with("creation_time")
                    || t.starts_with("creation_host"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (a, b) = (strip(ours), strip(lvm));
    if a != b {
        for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
            assert_eq!(x, y, "first difference at line {i}");
        }
        assert_eq!(a.lines().count(), b.lines().count());
    }
}

fn raw_lvm(name: &str) -> String {
    fixture(name).to_text(Style::Raw)
}

#[test]
fn thin_lv_as_lvm_writes_it() {
    let mut md = fixture("thinpool");
    let id = md
        .add_thin_lv(
            &NewThinLv {
                name: "thin1",
                pool: "pool",
                extents: Extents(8),
                origin: None,
                activation_skip: false,
                batched: false,
            },
            &creation(),
        )
        .unwrap();
    assert_eq!(id, 1);
    let queued = md.to_text(Style::Raw);
    assert!(
        queued.contains("message1 {\ncreate = \"thin1\"\n}"),
        "{queued}"
    );
    md.clear_thin_messages("pool").unwrap();
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("thin"));
}

#[test]
fn thin_snapshots_as_lvm_writes_them() {
    let mut md = fixture("thin");
    assert_eq!(
        md.add_thin_snapshot("thin1", "tsnap", true, &creation())
            .unwrap(),
        2
    );
    md.clear_thin_messages("pool").unwrap();
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("thinsnap"));
    md.add_thin_snapshot("thin1", "tsnap2", false, &creation())
        .unwrap();
    md.clear_thin_messages("pool").unwrap();
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("thinsnap2"));
}

#[test]
fn merge_as_lvm_writes_it() {
    let mut md = fixture("cow");
    md.start_merge("snap1").unwrap();
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("merging"));
    // A second merge into the same origin is refused.
    let e = md.start_merge("snapro").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn cow_snapshot_pair_as_lvm_writes_it() {
    // tags.vg is the state right before `lvcreate origin; lvcreate -s snap1; -s snapro`.
    let mut md = fixture("tags");
    md.add_linear_lv("origin", Extents(2), &creation()).unwrap();
    let n = md
        .add_cow_snapshot(
            "origin",
            "snap1",
            Extents(2),
            Sectors(8),
            false,
            &creation(),
        )
        .unwrap();
    assert_eq!(n, "snapshot0");
    let n = md
        .add_cow_snapshot(
            "origin",
            "snapro",
            Extents(2),
            Sectors(8),
            true,
            &creation(),
        )
        .unwrap();
    assert_eq!(n, "snapshot1");
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("cow"));
}

#[test]
fn linear_lv_in_a_fragmented_vg_as_lvm_places_it() {
    // multiseg -> twopv: `lvcreate -L 300M -n big` (75 extents).
    let mut md = fixture("multiseg");
    let areas = md.add_linear_lv("big", Extents(75), &creation()).unwrap();
    assert_eq!(areas.len(), 2);
    same_apart_from_ids_and_times(&md.to_text(Style::Raw), &raw_lvm("twopv"));
}

#[test]
fn remove_restores_the_previous_text() {
    let before = fixture("tags");
    let mut md = before.clone();
    md.add_linear_lv("origin", Extents(2), &creation()).unwrap();
    md.add_cow_snapshot("origin", "s", Extents(1), Sectors(16), false, &creation())
        .unwrap();
    assert_eq!(
        md.remove_lv("origin").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(md.remove_lv("snapshot0").is_err());
    md.remove_lv("s").unwrap();
    md.remove_lv("origin").unwrap();
    assert_eq!(md.to_text(Style::File), before.to_text(Style::File));
    // Removing every LV drops logical_volumes as LVM does, and adding one back restores it.
    for lv in ["lin", "gap2", "striped"] {
        md.remove_lv(lv).unwrap();
    }
    let empty = md.to_text(Style::Raw);
    assert!(!empty.contains("logical_volumes"));
    assert!(empty.contains("}\n\n}\n"), "{empty}");
    md.add_linear_lv("x", Extents(1), &creation()).unwrap();
    assert!(
        md.to_text(Style::Raw)
            .contains("}\n\nlogical_volumes {\n\nx {\n")
    );
}

#[test]
fn refusals_leave_metadata_unchanged() {
    let mut md = fixture("cow");
    let before = md.to_text(Style::File);
    let c = creation();
    let cases: Vec<(ModelError, ErrorKind)> = vec![
        (
            md.add_linear_lv("lin", Extents(1), &c).unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_linear_lv("snapshot9", Extents(1), &c).unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_linear_lv("x", Extents(10_000), &c).unwrap_err(),
            ErrorKind::NoSpace,
        ),
        (
            md.add_linear_lv("bad/name", Extents(1), &c).unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_cow_snapshot("nope", "s", Extents(1), Sectors(8), false, &c)
                .unwrap_err(),
            ErrorKind::NotFound,
        ),
        (
            md.add_cow_snapshot("snap1", "s", Extents(1), Sectors(8), false, &c)
                .unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_cow_snapshot("origin", "s", Extents(1), Sectors(12), false, &c)
                .unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_thin_snapshot("origin", "t", false, &c).unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (md.remove_lv("missing").unwrap_err(), ErrorKind::NotFound),
        (
            md.add_cow_snapshot("origin", "s", Extents(0), Sectors(8), false, &c)
                .unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
        (
            md.add_cow_snapshot("snapshot0", "s", Extents(1), Sectors(8), false, &c)
                .unwrap_err(),
            ErrorKind::InvalidArgument,
        ),
    ];
    for (e, k) in cases {
        assert_eq!(e.kind(), k, "{e}");
    }
    assert_eq!(md.to_text(Style::File), before);
}

#[test]
fn seqno_and_header() {
    let mut md = fixture("linear");
    let text = md.to_text(Style::File);
    assert_eq!(md.bump_seqno().unwrap(), md.vg().seqno);
    md.set_header("lvsnap test", &creation());
    let out = md.to_text(Style::File);
    assert_eq!(normalize(&out), normalize(&text));
    assert!(out.contains("description = \"lvsnap test\"\n"));
    assert!(out.contains("creation_time = 1700000000\n"));
    assert_eq!(Metadata::parse(&out).unwrap().vg().seqno, md.vg().seqno);
}

/// Fields LVM holds in `uint32_t`: the last seqno cannot be bumped, and a
/// value past the type reads as LVM reads it (its low bits) and is damage.
#[test]
fn u32_fields_hold_lvm_range() {
    let text = fixture("linear").to_text(Style::File);
    let seq = format!("seqno = {}\n", fixture("linear").vg().seqno);
    let mut md = Metadata::parse(&text.replacen(&seq, "seqno = 4294967295\n", 1)).unwrap();
    assert_eq!((md.vg().seqno, md.damage()), (u32::MAX, None));
    assert_eq!(md.bump_seqno().unwrap_err().kind(), ErrorKind::Corrupt);
    let md = Metadata::parse(&text.replacen(&seq, "seqno = 4294967297\n", 1)).unwrap();
    assert_eq!(md.vg().seqno, 1);
    assert!(md.damage().unwrap().contains("seqno 4294967297"));
    assert_eq!(md.validate().unwrap_err().kind(), ErrorKind::Corrupt);
}

#[test]
fn snapshot_names_follow_the_highest() {
    let mut md = fixture("cow");
    md.remove_lv("snap1").unwrap(); // frees snapshot0; LVM still picks 2
    let n = md
        .add_cow_snapshot("lin", "s2", Extents(1), Sectors(8), false, &creation())
        .unwrap();
    assert_eq!(n, "snapshot2");
}

#[test]
fn model_errors_on_bad_metadata() {
    const VG: &str = "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa";
    const LV: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let fill = |t: &str| t.replace("{VG}", VG).replace("{LV}", LV);
    let lin = fixture("linear").to_text(Style::File);
    let vg_id = fixture("linear").vg().id.to_string();
    for bad in [
        "vg { }",
        "x = 1",
        "vg { id = \"{VG}\" seqno = -1 extent_size = 8 }",
        "vg { id = \"{VG}\" seqno = 1 extent_size = 8 logical_volumes { l { id = \"{LV}\" segment_count = 2 segment1 { start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] } } } }",
        "vg { id = \"{VG}\" seqno = 1 extent_size = 8 logical_volumes { l { id = \"{LV}\" segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 2 stripes = [\"pv0\", 0] } } } }",
        "vg { id = \"{VG}\" seqno = 1 extent_size = 8 logical_volumes { l { id = \"{LV}\" segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = \"snapshot\" chunk_size = 8 origin = \"o\" } } } }",
        // Ids LVM cannot read: too short, too long, outside its alphabet.
        "vg { id = \"a\" seqno = 1 extent_size = 8 }",
        &lin.replacen(&vg_id, &format!("{vg_id}x"), 1),
        &lin.replacen(&vg_id, &format!("_{}", &vg_id[1..]), 1),
    ]
    .map(fill)
    {
        let bad = bad.as_str();
        let e = Metadata::parse(bad).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{bad}: {e}");
    }
}

/// Text of LV `name`'s section, as written.
fn lv_text(md: &Metadata, name: &str) -> String {
    let s = md
        .document()
        .vg_section()
        .and_then(|v| v.body.section("logical_volumes"))
        .and_then(|l| l.body.section(name))
        .unwrap_or_else(|| panic!("no LV {name}"));
    let doc = Document {
        root: Body {
            entries: vec![Entry::Section(s.clone())],
        },
    };
    doc.to_text(Style::File)
}

#[test]
fn unmodelled_content_survives_changes() {
    for (fx, keep) in [
        (
            "cachepool",
            &[
                "cpool",
                "cpool_cdata",
                "cpool_cmeta",
                "lvol0_pmspare",
                "data",
            ][..],
        ),
        ("lvattrs", &["data"][..]),
    ] {
        let mut md = fixture(fx);
        let before: Vec<String> = keep.iter().map(|n| lv_text(&md, n)).collect();
        let cp = md.vg().lv(keep[0]).unwrap();
        if fx == "cachepool" {
            assert!(
                matches!(&cp.segments[0].kind, SegmentKind::Other { type_name } if type_name == "cache-pool")
            );
        }
        let areas = md.add_linear_lv("new", Extents(3), &creation()).unwrap();
        md.add_cow_snapshot("new", "newsnap", Extents(1), Sectors(8), false, &creation())
            .unwrap();
        md.bump_seqno().unwrap();
        let again = Metadata::parse(&md.to_text(Style::File)).unwrap();
        for (n, b) in keep.iter().zip(&before) {
            assert_eq!(&lv_text(&again, n), b, "{fx}: {n}");
        }
        // The new extents are free ones: no PV extent is used twice.
        let mut used: Vec<(String, u64)> = Vec::new();
        for lv in &again.vg().lvs {
            for seg in &lv.segments {
                if let SegmentKind::Striped { stripes, .. } = &seg.kind {
                    let per = seg.extent_count.0 / stripes.len() as u64;
                    for s in stripes {
                        used.extend((s.start.0..s.start.0 + per).map(|e| (s.pv.clone(), e)));
                    }
                }
            }
        }
        let n = used.len();
        used.sort();
        used.dedup();
        assert_eq!(
            used.len(),
            n,
            "{fx}: overlapping extents after allocating {areas:?}"
        );
    }
}

/// A metadata text of about `lvs` LVs of two segments each, as LVM writes it.
/// The linear fixture with `lvs` more copies of LV `lin`, each with its own
/// id and its own extents on a PV made large enough for them all.
fn big_text(lvs: usize) -> String {
    let md = fixture("linear");
    let pe_count = 63 + 2 * lvs;
    let base = md.to_text(Style::File).replacen(
        "dev_size = 524288\t# 256 Megabytes\n\t\t\tpe_start = 2048\n\t\t\tpe_count = 63\t# 252 Megabytes\n\t\t}\n\t}",
        &format!(
            "dev_size = {}\n\t\t\tpe_start = 2048\n\t\t\tpe_count = {pe_count}\n\t\t}}\n\t}}",
            2048 + 8192 * pe_count
        ),
        1,
    );
    assert!(base.contains(&format!("pe_count = {pe_count}\n")), "{base}");
    let lv = lv_text(&md, "lin");
    let mut extra = String::new();
    for i in 0..lvs {
        extra.push('\n');
        extra.push_str(
            &lv.replacen("lin {", &format!("lv{i} {{"), 1)
                .replacen("SOd4-yoTu1r", &format!("SOd4-{i:06}"), 1)
                .replacen("\"pv0\", 0", &format!("\"pv1\", {}", 2 * i), 1),
        );
    }
    // Before the closing brace of logical_volumes, the last "\t}\n".
    let at = base.rfind("\t}\n").unwrap();
    format!("{}{extra}{}", &base[..at], &base[at..])
}

#[test]
fn a_megabyte_of_metadata_parses_and_writes() {
    let text = big_text(3000);
    assert!(text.len() > 1 << 20, "{}", text.len());
    let t = std::time::Instant::now();
    let doc = Document::parse(&text).unwrap();
    let tree = t.elapsed();
    let md = Metadata::from_document(doc).unwrap();
    let parse = t.elapsed();
    let t = std::time::Instant::now();
    let out = md.to_text(Style::Raw);
    let write = t.elapsed();
    assert_eq!(md.vg().lvs.len(), 3001);
    assert!(!out.is_empty());
    eprintln!(
        "{} bytes: tree {tree:?}, tree+view {parse:?}, write {write:?}",
        text.len()
    );
}

#[test]
fn merging_snapshot_is_removed_only_by_finishing_the_merge() {
    let mut md = fixture("merging");
    let e = md.remove_lv("snap1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(md.finish_merge("snapro").is_err());
    md.finish_merge("snap1").unwrap();
    let vg = md.vg();
    assert!(vg.lv("snap1").is_none() && vg.lv("snapshot0").is_none());
    assert_eq!(vg.snapshots_of("origin").len(), 1);
    assert!(vg.lv("origin").unwrap().has_status(LvFlags::VISIBLE));
}

#[test]
fn removing_thin_lvs_queues_deletes() {
    let mut md = fixture("thinsnap2");
    md.remove_lv("tsnap").unwrap();
    md.remove_lv("thin1").unwrap();
    let vg = md.vg();
    assert_eq!(
        vg.lv("tsnap2").unwrap().thin_origin(),
        None,
        "origin dropped"
    );
    match &vg.lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool {
            transaction_id,
            messages,
            ..
        } => {
            assert_eq!(*transaction_id, 4, "raised once for the queue");
            assert_eq!(messages, &[ThinMessage::Delete(2), ThinMessage::Delete(1)]);
        }
        k => panic!("{k:?}"),
    }
    let text = md.to_text(Style::Raw);
    assert!(
        text.contains("message1 {\ndelete = 2\n}\nmessage2 {\ndelete = 1\n}"),
        "{text}"
    );
    md.clear_thin_messages("pool").unwrap();
    assert!(!md.to_text(Style::Raw).contains("message"));
    // The pool itself is still used by tsnap2.
    assert!(md.remove_lv("pool").is_err());
}

/// Edits on a VG of 2000 LVs (each edit is linear in the LVs: with the
/// quadratic ordering of old, this test took seconds in a debug build).
#[test]
fn edits_on_a_large_vg_place_and_undo_like_small_ones() {
    let c = creation();
    let mut md = Metadata::parse(&big_text(2000)).unwrap();
    for i in (0..2000).step_by(400) {
        md.add_cow_snapshot(
            &format!("lv{i}"),
            &format!("s{i}"),
            Extents(1),
            Sectors(16),
            false,
            &c,
        )
        .unwrap();
    }
    let before = md.to_text(Style::File);
    assert_eq!(md.vg().lvs.len(), 2001 + 10);
    assert_eq!(md.vg().visible_lvs().len(), 2001 + 5);
    md.add_linear_lv("new", Extents(1), &c).unwrap();
    let snap = md
        .add_cow_snapshot("lv1999", "s_last", Extents(1), Sectors(16), false, &c)
        .unwrap();
    assert_eq!(snap, "snapshot5");
    let text = md.to_text(Style::File);
    let at = |name: &str| text.find(&format!("\n\t\t{name} {{\n")).unwrap();
    // Visible LVs in creation order, then the hidden snapshotN LVs.
    assert!(at("lv1999") < at("s0") && at("s0") < at("s1600"));
    assert!(at("s1600") < at("new") && at("new") < at("s_last"));
    assert!(at("s_last") < at("snapshot0") && at("snapshot4") < at("snapshot5"));
    let names: Vec<&str> = md.vg().lvs.iter().map(|l| l.name.as_str()).collect();
    let n = names.len();
    assert_eq!(&names[n - 8..n - 6], ["new", "s_last"]);
    assert_eq!(Metadata::parse(&text).unwrap().vg(), md.vg());
    md.remove_lv("s_last").unwrap();
    md.remove_lv("new").unwrap();
    assert_eq!(md.to_text(Style::File), before);
}

/// A failing edit leaves the tree and the view as they were, whether it
/// fails in the edit, in the new LV's parse, or by touching an LV it did
/// not name.
#[test]
fn failed_edits_inside_change_are_undone() {
    let mut md = fixture("cow");
    let (text, vg) = (md.to_text(Style::File), md.vg().clone());
    let unchanged = |md: &Metadata| {
        assert_eq!(md.to_text(Style::File), text);
        assert_eq!(md.vg(), &vg);
    };
    let e = md
        .change(&["origin"], |doc| {
            insert_lv(
                doc,
                lv_head(
                    "x",
                    &LvId::parse("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").unwrap(),
                    LvFlags::READ,
                    LvFlags::empty(),
                    &creation(),
                    0,
                ),
            )?;
            lv_section_mut(doc, "origin")?.body.remove("status");
            Err(ModelError::Refused("late failure".into()))
        })
        .unwrap_err();
    assert!(matches!(e, ModelError::Refused(_)));
    unchanged(&md);
    // An LV section without id: refused when the view is updated.
    let e = md
        .change(&[], |doc| insert_lv(doc, Section::new("broken")))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    unchanged(&md);
    // Removing an LV not named is caught and undone; editing one finds nothing.
    let e = md
        .change(&[], |doc| {
            let lvs = doc
                .vg_section_mut()
                .and_then(|s| s.body.section_mut("logical_volumes"))
                .ok_or_else(|| invalid("no LVs"))?;
            lvs.body.remove_section("");
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    unchanged(&md);
    for name in vg.lvs.iter().map(|l| &l.name) {
        let e = md.change(&[], |doc| lv_section_mut(doc, name).map(|_| ()));
        assert!(matches!(e, Err(ModelError::NotFound(_))), "{name}");
        unchanged(&md);
    }
    // A change naming what it touches works.
    let snap = md.vg().cow_snapshot("snap1").unwrap().snapshot_lv;
    md.change(&[&snap], |doc| {
        lv_section_mut(doc, &snap)?.body.push("x", Value::int(1));
        Ok(())
    })
    .unwrap();
    assert!(lv_text(&md, &snap).contains("x = 1"));
}

/// Thin rollback in the metadata: the origin takes the snapshot's device,
/// a kept snapshot a new one (queued as `create`), the old origin device is
/// queued for `delete`, with the pool's transaction id one up; without
/// keep the snapshot goes. The text parses back to the same view.
#[test]
fn thin_rollback_records_the_pool_work() {
    let base = fixture("thinsnap");
    let tid = |md: &Metadata| match &md.vg().lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool {
            transaction_id,
            messages,
            ..
        } => (*transaction_id, messages.clone()),
        _ => panic!("not a pool"),
    };
    let (t0, _) = tid(&base);
    let mut md = base.clone();
    let ids = md.thin_rollback("thin1", "tsnap", true).unwrap();
    assert_eq!(
        (ids.old_origin_id, ids.snap_id, ids.new_snap_id),
        (1, 2, Some(3))
    );
    assert_eq!(md.vg().lv("thin1").unwrap().thin(), Some(("pool", 2)));
    assert_eq!(md.vg().lv("tsnap").unwrap().thin(), Some(("pool", 3)));
    assert_eq!(md.vg().lv("tsnap").unwrap().thin_origin(), Some("thin1"));
    let (t1, msgs) = tid(&md);
    assert_eq!(t1, t0 + 1);
    assert_eq!(
        msgs,
        [ThinMessage::Create("tsnap".into()), ThinMessage::Delete(1)]
    );
    let again = Metadata::parse(&md.to_text(Style::Raw)).unwrap();
    assert_eq!(again.vg(), md.vg());
    md.clear_thin_messages("pool").unwrap();
    assert!(tid(&md).1.is_empty());

    let mut md = base.clone();
    md.thin_rollback("thin1", "tsnap", false).unwrap();
    assert!(md.vg().lv("tsnap").is_none());
    assert_eq!(md.vg().lv("thin1").unwrap().thin(), Some(("pool", 2)));
    assert_eq!(tid(&md).1, [ThinMessage::Delete(1)]);
    // Not a snapshot of that origin, or the origin itself: refused, unchanged.
    let mut md = base.clone();
    assert!(md.thin_rollback("tsnap", "thin1", true).is_err());
    assert_eq!(md.vg(), base.vg());
}

/// extend_lv: the free run right after the LV joins its last segment, the
/// rest goes in a new segment; beyond the free space is refused.
#[test]
fn extend_lv_places_as_lvextend() {
    let mut md = fixture("linear");
    md.add_linear_lv("a", Extents(2), &creation()).unwrap();
    md.add_linear_lv("b", Extents(1), &creation()).unwrap();
    let before = md.vg().lv("a").unwrap().clone();
    let areas = md.extend_lv("b", Extents(3)).unwrap();
    let b = md.vg().lv("b").unwrap();
    assert_eq!(b.extents(), Extents(4));
    assert_eq!(b.segments.len(), 1, "contiguous growth joins the segment");
    assert_eq!(areas.iter().map(|a| a.count).sum::<u64>(), 3);
    assert_eq!(md.vg().lv("a").unwrap(), &before);
    let again = Metadata::parse(&md.to_text(Style::Raw)).unwrap();
    assert_eq!(again.vg(), md.vg());
    let free = md.free_space().total();
    assert!(matches!(
        md.extend_lv("b", Extents(free + 1)),
        Err(ModelError::NoSpace { .. })
    ));
}

/// Every fixture (all written by LVM2) passes LVM's checks; each way of
/// damaging one that LVM refuses is found, named in one line, and refuses
/// every change with ErrorKind::Corrupt.
#[test]
fn damaged_metadata_is_found_and_refuses_changes() {
    for name in [
        "cachepool",
        "cow",
        "linear",
        "lvattrs",
        "merging",
        "multiseg",
        "tags",
        "thin",
        "thinpool",
        "thinsnap",
        "thinsnap2",
        "twopv",
    ] {
        let md = fixture(name);
        assert_eq!(md.damage(), None, "{name}");
        md.validate().unwrap();
    }
    let read = |name: &str| {
        let path = format!("{}/tests/fixtures/{name}.vg", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    };
    let (cow, thin) = (read("cow"), read("thinsnap"));
    let edit = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "{from:?}");
        text.replacen(from, to, 1)
    };
    let cases = [
        (edit(&cow, "\"pv0\", 0", "\"pv7\", 0"), "'pv7'"),
        (edit(&cow, "\"pv0\", 6", "\"pv0\", 62"), "beyond"),
        (edit(&cow, "\"pv0\", 6", "\"pv0\", 1"), "used by both"),
        (
            edit(&cow, "\n\t\tgap2 {", "\n\t\tlin {"),
            "duplicate LV name",
        ),
        (edit(&cow, "SOd4-yoTu1r", "SOd4-zzzzzz"), ""),
        (
            edit(&cow, "cow_store = \"snap1\"", "cow_store = \"gone\""),
            "cow_store",
        ),
        (
            edit(&cow, "origin = \"origin\"", "origin = \"gone\""),
            "origin",
        ),
        (
            edit(&cow, "extent_size = 8192", "extent_size = 0"),
            "extent_size",
        ),
        (
            edit(&cow, "extent_size = 8192", "extent_size = 1099511627776"),
            "extent_size",
        ),
        (
            edit(&cow, "pe_count = 63", "pe_count = 4294967296"),
            "pe_count",
        ),
        (edit(&cow, "seqno = 16", "seqno = 4294967296"), "seqno"),
        (
            edit(&thin, "thin_pool = \"pool\"", "thin_pool = \"gone\""),
            "thin pool",
        ),
        (
            edit(&thin, "metadata = \"pool_tmeta\"", "metadata = \"gone\""),
            "metadata",
        ),
        (
            edit(&thin, "pool = \"pool_tdata\"", "pool = \"gone\""),
            "pool",
        ),
        (
            edit(&thin, "origin = \"thin1\"", "origin = \"gone\""),
            "origin",
        ),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let md = Metadata::parse(text).unwrap_or_else(|e| panic!("case {i}: {e}"));
        if says.is_empty() {
            // Not damage: an edit that only makes an id unique.
            assert_eq!(md.damage(), None, "case {i}");
            continue;
        }
        let d = md.damage().unwrap_or_else(|| panic!("case {i} not found"));
        assert!(d.contains(says) && !d.contains('\n'), "case {i}: {d}");
        let e = md.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "case {i}");
        assert!(e.to_string().contains("damaged"), "{e}");
        let c = creation();
        let mut m = md.clone();
        let first = md.vg().lvs[0].name.clone();
        let refusals = [
            m.add_linear_lv("new", Extents(1), &c).map(|_| ()),
            m.bump_seqno().map(|_| ()),
            m.remove_lv(&first),
        ];
        for r in refusals {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt, "case {i}");
        }
        assert_eq!(m.to_text(Style::Raw), md.to_text(Style::Raw), "case {i}");
    }
    // A duplicate id in the cow fixture.
    let lin_id = "i0i6yX-hqt5-rHSK-LqS5-XDOJ-SOd4-yoTu1r";
    let gap2_id = Metadata::parse(&cow).unwrap().vg().lv("gap2").unwrap().id;
    let md = Metadata::parse(&edit(&cow, &gap2_id.to_string(), lin_id)).unwrap();
    assert!(md.damage().unwrap().contains("duplicate LV id"));
}
