//! On-disk integers past the range of LVM2's type for them: read as LVM
//! reads them (a `uint32_t` keeps its low 32 bits), named as damage, and
//! every change refused with ErrorKind::Corrupt; never a panic.

use super::*;

/// The linear fixture as written by LVM.
fn linear_text() -> String {
    fixture("linear").to_text(Style::File)
}

/// The fixture `name` as LVM wrote it.
fn raw_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}.vg", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// `from` replaced once by `to` in `text` (which must hold it).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?}");
    text.replacen(from, to, 1)
}

/// Asserts `text` reads, is damage naming `field` (and `place`), and
/// refuses validation and every change, leaving the text as it was.
fn assert_refused(text: &str, field: &str, place: &str) -> Metadata {
    let md = Metadata::parse(text).unwrap_or_else(|e| panic!("{field}: {e}"));
    let d = md.damage().unwrap_or_else(|| panic!("{field}: no damage"));
    assert!(
        d.contains(field) && d.contains(place) && d.contains("LVM's limit 4294967295"),
        "{field}: {d}"
    );
    assert!(!d.contains('\n'), "{d}");
    let e = md.validate().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{field}");
    assert!(e.to_string().contains(field), "{e}");
    let mut m = md.clone();
    let c = creation();
    // Every fixture has a linear LV lin.
    for r in [
        m.add_linear_lv("new", Extents(1), &c).map(|_| ()),
        m.extend_lv("lin", Extents(1)).map(|_| ()),
        m.bump_seqno().map(|_| ()),
        m.remove_lv("lin"),
    ] {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt, "{field}");
    }
    assert_eq!(m.to_text(Style::Raw), md.to_text(Style::Raw), "{field}");
    md
}

#[test]
fn extent_fields_past_u32_are_damage_named() {
    let text = linear_text();
    let seg = "start_extent = 0\n\t\t\t\textent_count = 2";
    // 2^32 + 2: LVM's uint32_t holds 2, as the view does.
    let md = assert_refused(
        &edit(
            &text,
            seg,
            "start_extent = 0\n\t\t\t\textent_count = 4294967298",
        ),
        "extent_count 4294967298",
        "logical volume lin segment1",
    );
    assert_eq!(
        md.vg().lv("lin").unwrap().segments[0].extent_count,
        Extents(2)
    );
    let md = assert_refused(
        &edit(
            &text,
            seg,
            "start_extent = 4294967296\n\t\t\t\textent_count = 2",
        ),
        "start_extent 4294967296",
        "logical volume lin segment1",
    );
    assert_eq!(
        md.vg().lv("lin").unwrap().segments[0].start_extent,
        Extents(0)
    );
    let md = assert_refused(
        &edit(&text, "\"pv0\", 0\n", "\"pv0\", 4294967297\n"),
        "extent of pv0 4294967297",
        "logical volume lin segment1",
    );
    match &md.vg().lv("lin").unwrap().segments[0].kind {
        SegmentKind::Striped { stripes, .. } => assert_eq!(stripes[0].start, Extents(1)),
        k => panic!("{k:?}"),
    }
    let md = assert_refused(
        &edit(&text, "pe_count = 63", "pe_count = 4294967359"),
        "pe_count 4294967359",
        "physical volume pv0",
    );
    assert_eq!(md.vg().pvs[0].pe_count, Extents(63));
}

/// Values at the top of LVM's range read whole (other checks may still
/// refuse them), and the largest integer the text holds never panics.
#[test]
fn extent_fields_at_u32_max_read_whole() {
    let text = linear_text();
    let md = Metadata::parse(&edit(&text, "pe_count = 63", "pe_count = 4294967295")).unwrap();
    assert_eq!(md.vg().pvs[0].pe_count, Extents(u32::MAX));
    assert_eq!(md.damage(), None);
    for big in ["9223372036854775807", "18446744073709551615"] {
        for (from, to) in [
            ("extent_count = 2", format!("extent_count = {big}")),
            ("\"pv0\", 0\n", format!("\"pv0\", {big}\n")),
            ("pe_count = 63", format!("pe_count = {big}")),
        ] {
            let t = edit(&text, from, &to);
            match Metadata::parse(&t) {
                Ok(md) => assert!(md.damage().is_some(), "{to}"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{to}: {e}"),
            }
        }
    }
}

/// Sums of on-disk extent counts are checked: an LV's extents past LVM's
/// limit are damage, and an extension past it is refused as lvextend does.
#[test]
fn extent_sums_past_u32_are_refused() {
    let text = linear_text();
    // Two PVs of u32::MAX extents (LVM reads a pe_count past dev_size).
    let big = edit(&text, "pe_count = 63", "pe_count = 4294967295");
    let big = edit(&big, "pe_count = 63", "pe_count = 4294967295");
    // lin: u32::MAX - 1 extents on pv0.
    let full = edit(&big, "extent_count = 2", "extent_count = 4294967294");
    let mut md = Metadata::parse(&full).unwrap();
    assert_eq!(md.damage(), None);
    let before = md.to_text(Style::Raw);
    let e = md.extend_lv("lin", Extents(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("exceeds limit (4294967295)"), "{e}");
    assert_eq!(md.to_text(Style::Raw), before);
    // Two segments whose sum passes u32::MAX: damage, nothing written.
    let two = edit(
        &full,
        "\t\t\t\t]\n\t\t\t}\n\t\t}",
        "\t\t\t\t]\n\t\t\t}\n\t\t\tsegment2 {\n\t\t\t\tstart_extent = 4294967294\n\
         \t\t\t\textent_count = 2\n\t\t\t\ttype = \"striped\"\n\t\t\t\tstripe_count = 1\n\
         \t\t\t\tstripes = [\n\t\t\t\t\t\"pv1\", 0\n\t\t\t\t]\n\t\t\t}\n\t\t}",
    );
    let two = edit(&two, "segment_count = 1", "segment_count = 2");
    let md = Metadata::parse(&two).unwrap();
    assert_eq!(md.vg().lv("lin").unwrap().extents(), Extents(u32::MAX));
    let d = md.damage().unwrap();
    assert!(d.contains("more extents than LVM's limit"), "{d}");
    assert_eq!(md.validate().unwrap_err().kind(), ErrorKind::Corrupt);
}

/// Chunk sizes, stripe sizes and thin device ids are `uint32_t` in LVM;
/// a thin device id also fits 24 bits, as LVM's importer refuses more.
#[test]
fn chunk_stripe_and_thin_fields_past_their_range_are_damage_named() {
    let (cow, thin) = (raw_fixture("cow"), raw_fixture("thinsnap"));
    // 2^32 + 8: the view holds 8, as LVM does.
    let md = assert_refused(
        &edit(&cow, "chunk_size = 8", "chunk_size = 4294967304"),
        "chunk_size 4294967304",
        "logical volume snapshot0 segment1",
    );
    assert_eq!(md.vg().cow_snapshots()[0].chunk_size, Sectors(8));
    assert_refused(
        &edit(&cow, "stripe_size = 128", "stripe_size = 4294967424"),
        "stripe_size 4294967424",
        "segment1",
    );
    assert_refused(
        &edit(&thin, "chunk_size = 128", "chunk_size = 4294967424"),
        "chunk_size 4294967424",
        "logical volume pool segment1",
    );
    let md = assert_refused(
        &edit(&thin, "device_id = 1", "device_id = 4294967297"),
        "device_id 4294967297",
        "logical volume thin1 segment1",
    );
    assert_eq!(md.vg().lv("thin1").unwrap().thin(), Some(("pool", 1)));
    // Within uint32_t but past 24 bits: LVM refuses to read it.
    let md = Metadata::parse(&edit(&thin, "device_id = 1", "device_id = 16777216")).unwrap();
    let d = md.damage().unwrap();
    assert!(d.contains("device_id 16777216 is too large"), "{d}");
    // A queued delete's device id.
    let mut md = fixture("thinsnap2");
    md.remove_lv("tsnap").unwrap();
    let queued = md.to_text(Style::Raw);
    let md = assert_refused(
        &edit(&queued, "delete = 2\n", "delete = 4294967298\n"),
        "message1 delete 4294967298",
        "logical volume pool segment1",
    );
    match &md.vg().lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool { messages, .. } => {
            assert_eq!(messages, &[ThinMessage::Delete(2)]);
        }
        k => panic!("{k:?}"),
    }
    // A negative one is no count at all.
    let e = Metadata::parse(&edit(&queued, "delete = 2\n", "delete = -2\n")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let e = Metadata::parse(&edit(&cow, "stripe_size = 128", "stripe_size = -128")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("stripe_size"), "{e}");
}

/// transaction_id is a `uint64_t` in LVM: any count reads whole.
#[test]
fn transaction_id_is_u64() {
    let thin = raw_fixture("thinsnap");
    let md = Metadata::parse(&edit(
        &thin,
        "transaction_id = 2",
        "transaction_id = 1099511627776",
    ))
    .unwrap();
    match &md.vg().lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool { transaction_id, .. } => {
            assert_eq!(*transaction_id, 1 << 40);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(md.damage(), None);
}
