use super::*;

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
        md.extend_lv("b", Extents::from_u64(free + 1).unwrap()),
        Err(ModelError::NoSpace { .. })
    ));
}
