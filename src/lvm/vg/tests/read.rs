use super::*;

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
fn cow_links_answer_as_the_walks_do() {
    for name in ["cow", "merging", "thinsnap2"] {
        let md = fixture(name);
        let vg = md.vg();
        let links = vg.cow_links();
        for lv in vg.lvs.iter().map(|l| l.name.as_str()).chain(["none", ""]) {
            assert_eq!(links.is_origin(lv), vg.is_origin(lv), "{name}: {lv}");
            assert_eq!(links.snapshots_of(lv), vg.snapshots_of(lv), "{name}: {lv}");
            assert_eq!(links.cow_snapshot(lv), vg.cow_snapshot(lv), "{name}: {lv}");
        }
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
