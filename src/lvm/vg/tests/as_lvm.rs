use super::*;

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
        let mut used: Vec<(String, u32)> = Vec::new();
        for lv in &again.vg().lvs {
            for seg in &lv.segments {
                if let SegmentKind::Striped { stripes, .. } = &seg.kind {
                    let per = seg.extent_count.0 / stripes.len() as u32;
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
