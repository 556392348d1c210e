//! Planner tests on metadata captured from LVM (tests/fixtures), with the
//! tables LVM loads for the same LVs (seen with `dmsetup table`).

use super::*;
use crate::lvm::vg::Metadata;

fn vg(fixture: &str) -> Vg {
    let path = format!("{}/tests/fixtures/{fixture}.vg", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Metadata::parse(&text).unwrap().vg().clone()
}

fn pvs() -> PvMap {
    [("pv0", 0), ("pv1", 1)]
        .into_iter()
        .map(|(k, m)| (k.to_owned(), Device { major: 7, minor: m }))
        .collect()
}

/// Each device as `name uuid-suffix ro|rw: table`, the plan's devices
/// numbered 254:0, 254:1, ... in creation order.
fn render(vg: &Vg, p: &Plan) -> Vec<String> {
    let minors: HashMap<String, u32> = p
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.to_string(), i as u32))
        .collect();
    let lookup = |n: &DmName| {
        minors.get(&n.to_string()).map(|m| Device {
            major: 254,
            minor: *m,
        })
    };
    p.devices
        .iter()
        .map(|d| {
            let lines: Vec<String> = d
                .table
                .iter()
                .map(|l| l.resolve(vg, &pvs(), &lookup).unwrap().to_string())
                .collect();
            let uuid = d.uuid.to_string();
            let prefix = format!("LVM-{}", vg.id.as_str());
            let lvid = vg.lv(&d.lv).unwrap().id.as_str();
            let suffix = uuid
                .strip_prefix(&prefix)
                .and_then(|u| u.strip_prefix(lvid))
                .unwrap();
            let ro = if d.read_only { "ro" } else { "rw" };
            format!("{} {}{suffix} {ro}: {}", d.name, d.lv, lines.join("; "))
        })
        .collect()
}

#[test]
fn linear_multi_segment_and_striped() {
    let vg = vg("cow");
    let p = plan(&vg, "lin").unwrap();
    // pe_start 2048 + extent 6 * 8192 sectors.
    assert_eq!(
        render(&vg, &p),
        ["vg-lin lin rw: 0 32768 linear 7:0 2048; 32768 16384 linear 7:0 51200"]
    );
    assert_eq!(p.steps, [Step::Create(0), Step::Resume(0)]);
    assert_eq!(p.devices[0].link.as_deref(), Some("lin"));
    assert_eq!(
        render(&vg, &plan(&vg, "striped").unwrap()),
        ["vg-striped striped rw: 0 32768 striped 2 128 7:0 67584 7:1 2048"]
    );
    assert_eq!(
        lv_table(&vg, "striped", &pvs()).unwrap()[0].params,
        "2 128 7:0 67584 7:1 2048"
    );
}

#[test]
fn uuids_are_lvm_ids_without_dashes() {
    let vg = vg("cow");
    let u = dm_uuid(&vg, "lin", Some(Layer::Real)).unwrap().to_string();
    assert_eq!(
        u,
        "LVM-sOgc39il3A8rChqPHyrznZIHRN33MXVxi0i6yXhqt5rHSKLqS5XDOJSOd4yoTu1r-real"
    );
}

#[test]
fn origin_with_two_snapshots_in_lvm_order() {
    let vg = vg("cow");
    let snaps: Vec<String> = vg
        .snapshots_of("origin")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(snaps, ["snap1", "snapro"]);
    // Asking for a snapshot gives the same tree as asking for its origin.
    let p = plan(&vg, "snapro").unwrap();
    assert_eq!(p.devices, plan(&vg, "origin").unwrap().devices);
    let size = 2 * 8192;
    assert_eq!(
        render(&vg, &p),
        [
            format!("vg-origin-real origin-real rw: 0 {size} linear 7:0 83968"),
            format!("vg-origin origin rw: 0 {size} snapshot-origin 254:0"),
            "vg-snap1-cow snap1-cow rw: 0 16384 linear 7:0 100352".to_string(),
            format!("vg-snap1 snap1 rw: 0 {size} snapshot 254:0 254:2 P 8"),
            format!(
                "vg-snapro-cow snapro-cow rw: 0 16384 linear 7:0 {}",
                2048 + 14 * 8192
            ),
            format!("vg-snapro snapro ro: 0 {size} snapshot 254:0 254:4 P 8"),
        ]
    );
    use Step::*;
    // As `lvchange -ay -vvvv`: COW layers resumed at once; -real, the
    // snapshots and the origin last.
    assert_eq!(
        p.steps,
        [
            Create(0),
            Create(1),
            Create(2),
            Resume(2),
            Create(3),
            Create(4),
            Resume(4),
            Create(5),
            Resume(0),
            Resume(3),
            Resume(5),
            Resume(1)
        ]
    );
    assert_eq!(p.remove_order, [1, 3, 2, 5, 4, 0]);
    let links: Vec<_> = p.devices.iter().filter_map(|d| d.link.clone()).collect();
    assert_eq!(links, ["origin", "snap1", "snapro"]);
}

#[test]
fn merging_origin_gets_snapshot_merge_and_an_error_snapshot() {
    let vg = vg("merging");
    let p = plan(&vg, "origin").unwrap();
    let r = render(&vg, &p);
    assert_eq!(
        r[0],
        "vg-origin-real origin-real rw: 0 16384 linear 7:0 83968"
    );
    assert_eq!(r[1], "vg-snap1-cow snap1-cow rw: 0 16384 linear 7:0 100352");
    assert_eq!(
        r[2],
        "vg-origin origin rw: 0 16384 snapshot-merge 254:0 254:1 P 8"
    );
    assert_eq!(r[3], "vg-snap1 snap1 rw: 0 16384 error ");
    assert!(r[5].starts_with("vg-snapro snapro ro: 0 16384 snapshot 254:0 254:4 P 8"));
    use Step::*;
    assert_eq!(
        p.steps,
        [
            Create(0),
            Resume(0),
            Create(1),
            Resume(1),
            Create(2),
            Create(3),
            Create(4),
            Resume(4),
            Create(5),
            Resume(3),
            Resume(5),
            Resume(2)
        ]
    );
    // A merging snapshot is not visible: no /dev link.
    assert_eq!(p.devices[3].link, None);
}

#[test]
fn thin_lv_over_its_pool_layers() {
    let vg = vg("thinsnap");
    let p = plan(&vg, "tsnap").unwrap();
    let r = render(&vg, &p);
    assert_eq!(r.len(), 4);
    assert!(
        r[0].starts_with("vg-pool_tmeta pool_tmeta-tmeta rw: 0 "),
        "{}",
        r[0]
    );
    assert!(
        r[1].starts_with("vg-pool_tdata pool_tdata-tdata rw: 0 "),
        "{}",
        r[1]
    );
    // zero_new_blocks is absent (0) in this pool: LVM adds skip_block_zeroing.
    assert!(
        r[2].ends_with("thin-pool 254:0 254:1 128 0 1 skip_block_zeroing"),
        "{}",
        r[2]
    );
    assert!(r[2].starts_with("vg-pool-tpool pool-tpool rw: "));
    assert!(r[3].starts_with("vg-tsnap tsnap rw: 0 "));
    assert!(r[3].ends_with(" thin 254:2 2"), "{}", r[3]);
    assert_eq!(p.remove_order, [3, 2, 1, 0]);
    assert!(
        p.steps
            .chunks(2)
            .enumerate()
            .all(|(i, s)| s == [Step::Create(i), Step::Resume(i)])
    );
}

#[test]
fn pool_itself_gets_a_read_only_public_device() {
    let vg = vg("thinpool");
    let p = plan(&vg, "pool").unwrap();
    let r = render(&vg, &p);
    assert_eq!(r.len(), 4);
    assert!(r[3].starts_with("vg-pool pool-pool ro: 0 "), "{}", r[3]);
    assert!(r[3].ends_with(" linear 254:2 0"), "{}", r[3]);
    assert_eq!(p.devices[3].link, None);
}

#[test]
fn other_segment_types_are_unsupported_by_name() {
    let vg = vg("cachepool");
    let e = plan(&vg, "cpool").unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    assert!(e.to_string().contains("cache-pool"), "{e}");
}

#[test]
fn missing_lv_or_pv_is_not_found() {
    let vg = vg("cow");
    assert_eq!(
        plan(&vg, "nope").unwrap_err().kind(),
        crate::ErrorKind::NotFound
    );
    let e = lv_table(&vg, "striped", &PvMap::new()).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    assert!(e.to_string().contains("pv0"), "{e}");
}

proptest::proptest! {
    /// Any LV of any fixture plans or fails with an error, never panics,
    /// and every planned dependency is a device planned earlier.
    #[test]
    fn plans_are_well_formed(f in 0usize..6, i in 0usize..16) {
        let names = ["cow", "merging", "thin", "thinpool", "thinsnap", "cachepool"];
        let vg = vg(names[f]);
        if let Some(lv) = vg.lvs.get(i) {
            if let Ok(p) = plan(&vg, &lv.name) {
                for (n, d) in p.devices.iter().enumerate() {
                    for dep in d.table.iter().flat_map(|l| l.dm_deps()) {
                        let pos = p.devices.iter().position(|x| *x.name == *dep);
                        proptest::prop_assert!(pos.is_some_and(|q| q < n));
                    }
                }
                let mut r = p.remove_order.clone();
                r.sort();
                proptest::prop_assert_eq!(r, (0..p.devices.len()).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn typed_lines_show_their_devices_by_name() {
    let vg = vg("cow");
    let p = plan(&vg, "origin").unwrap();
    let shown = |n: &str| {
        p.devices
            .iter()
            .find(|d| d.name.to_string() == n)
            .unwrap()
            .table[0]
            .to_string()
    };
    assert_eq!(
        shown("vg-origin"),
        "0 16384 snapshot-origin <vg-origin-real>"
    );
    assert_eq!(
        shown("vg-snap1"),
        "0 16384 snapshot <vg-origin-real> <vg-snap1-cow> P 8"
    );
    let vg = self::vg("merging");
    let p = plan(&vg, "origin").unwrap();
    assert_eq!(
        p.devices[2].table[0].to_string(),
        "0 16384 snapshot-merge <vg-origin-real> <vg-snap1-cow> P 8"
    );
    assert_eq!(p.devices[3].table[0].to_string(), "0 16384 error");
}

#[test]
fn linear_striped_and_thin_lines_show_their_devices_by_name() {
    let vg = vg("cow");
    let p = plan(&vg, "lin").unwrap();
    assert_eq!(
        p.devices[0].table[1].to_string(),
        "32768 16384 linear <pv0> <pv0.pe_start+49152>"
    );
    let p = plan(&vg, "striped").unwrap();
    assert_eq!(
        p.devices[0].table[0].to_string(),
        "0 32768 striped 2 128 <pv0> <pv0.pe_start+65536> <pv1> <pv1.pe_start+0>"
    );
    let vg = self::vg("thinsnap");
    let p = plan(&vg, "tsnap").unwrap();
    assert!(
        p.devices[2].table[0]
            .to_string()
            .ends_with(" thin-pool <vg-pool_tmeta> <vg-pool_tdata> 128 0 1 skip_block_zeroing"),
        "{}",
        p.devices[2].table[0]
    );
    assert!(
        p.devices[3].table[0]
            .to_string()
            .ends_with(" thin <vg-pool-tpool> 2"),
        "{}",
        p.devices[3].table[0]
    );
    // A block size the kernel refuses is an error when resolved, as the
    // kernel refuses it when loaded; never a panic.
    let mut bad = p.devices[2].table[0].clone();
    if let PlannedTarget::ThinPool { block_size, .. } = &mut bad.target {
        *block_size = Sectors(100);
    }
    let e = bad
        .resolve(&vg, &pvs(), &|_| Some(Device { major: 1, minor: 1 }))
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
}
