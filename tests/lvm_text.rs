//! The metadata text layer against LVM2 itself, in the VM: lvsnap's typed
//! view must agree with `lvs`/`vgs`, and texts lvsnap changes must be
//! accepted by `vgcfgrestore`, `vgck` and activation, with data landing in
//! the extents lvsnap allocated. (Metadata is read with `vgcfgbackup -f` and
//! written with `vgcfgrestore -f` until the on-disk half lands.)

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{LoopDev, read_at, require_dm, sh, write_pattern};
use lvsnap::lvm::text::Style;
use lvsnap::lvm::vg::{Creation, Metadata, SegmentKind};
use lvsnap::units::{Extents, Sectors};
use serial_test::parallel;

/// A volume group on fresh loop devices, removed on drop.
struct TestVg {
    name: String,
    devs: Vec<LoopDev>,
}

impl TestVg {
    fn new(name: &str, pvs: usize, mib: u64) -> TestVg {
        require_dm();
        let devs: Vec<LoopDev> = (0..pvs).map(|_| LoopDev::new(mib << 20)).collect();
        let paths: Vec<String> = devs.iter().map(|d| d.path.display().to_string()).collect();
        sh(&format!("pvcreate -q {}", paths.join(" ")));
        sh(&format!("vgcreate -q {name} {}", paths.join(" ")));
        TestVg {
            name: name.into(),
            devs,
        }
    }

    /// A VG holding an inactive 8 MiB LV `origin`, and its metadata.
    fn with_origin(name: &str, pvs: usize, mib: u64) -> (TestVg, Metadata) {
        let vg = TestVg::new(name, pvs, mib);
        sh(&format!("lvcreate -q -an -Zn -L 8M -n origin {name}"));
        let md = vg.metadata();
        (vg, md)
    }

    fn file(&self, what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{what}.vg", self.name))
    }

    /// The metadata as `vgcfgbackup` writes it.
    fn backup_text(&self) -> String {
        let f = self.file("backup");
        sh(&format!("vgcfgbackup -q -f {} {}", f.display(), self.name));
        std::fs::read_to_string(&f).expect("read backup")
    }

    fn metadata(&self) -> Metadata {
        Metadata::parse(&self.backup_text()).expect("lvsnap parses LVM's metadata")
    }

    /// Bumps seqno and writes `md`, as a metadata commit does.
    fn commit(&self, md: &mut Metadata) {
        md.bump_seqno().expect("seqno");
        self.restore(md);
    }

    /// Writes `md` with LVM's restore path (our commit's stand-in).
    fn restore(&self, md: &Metadata) {
        let f = self.file("restore");
        std::fs::write(&f, md.to_text(Style::File)).expect("write restore file");
        sh(&format!(
            "vgcfgrestore -q --force -f {} {}",
            f.display(),
            self.name
        ));
        sh(&format!("vgck {}", self.name));
    }

    fn json(&self, cmd: &str, key: &str) -> Vec<BTreeMap<String, String>> {
        let out = sh(&format!(
            "{cmd} --reportformat json --units s {}",
            self.name
        ));
        let v: serde_json::Value = serde_json::from_str(&out).expect("lvm json");
        let rows = v["report"][0][key].as_array().cloned().unwrap_or_default();
        rows.into_iter()
            .map(|r| {
                r.as_object()
                    .expect("row")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .collect()
    }
}

impl Drop for TestVg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("vgremove")
            .args(["-q", "-ff", &self.name])
            .output();
        let paths: Vec<String> = self
            .devs
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        let _ = std::process::Command::new("pvremove")
            .args(["-q", "-ff", "-y"])
            .args(&paths)
            .output();
    }
}

fn creation() -> Creation {
    Creation::now()
}

fn sectors(s: &str) -> u64 {
    s.trim_end_matches('S').parse().expect("size in sectors")
}

/// Every LV `lvs -a` lists, every visible one `lvs` lists, and what
/// vgs says, checked against the typed view.
fn check_view_against_lvs(vg: &TestVg, md: &Metadata) {
    let v = md.vg();
    let vgs = &vg.json(
        "vgs -o vg_name,vg_extent_size,vg_seqno,pv_count,lv_count,vg_uuid",
        "vg",
    )[0];
    assert_eq!(vgs["vg_name"], v.name);
    assert_eq!(sectors(&vgs["vg_extent_size"]), *v.extent_size.sectors());
    assert_eq!(vgs["vg_seqno"], v.seqno.to_string());
    assert_eq!(vgs["pv_count"], v.pvs.len().to_string());
    assert_eq!(vgs["vg_uuid"], v.id.to_string());
    assert_eq!(vgs["lv_count"], v.visible_lvs().len().to_string());

    let rows = vg.json(
        "lvs -a -o lv_name,lv_size,origin,segtype,pool_lv,lv_attr,lv_uuid",
        "lv",
    );
    let mut seen: Vec<String> = Vec::new();
    for r in &rows {
        let name = r["lv_name"].trim_matches(|c| c == '[' || c == ']');
        // `segtype` makes lvs print one row per segment: check the first.
        if seen.iter().any(|s| s == name) {
            continue;
        }
        seen.push(name.to_owned());
        let lv = v
            .lv(name)
            .unwrap_or_else(|| panic!("lvs lists {name}, lvsnap does not"));
        assert_eq!(r["lv_uuid"], lv.id.to_string(), "{name}");
        assert_eq!(
            sectors(&r["lv_size"]),
            *v.lv_size(name).expect("size"),
            "{name} size"
        );
        let cow = v.cow_snapshot(name);
        let origin = cow
            .as_ref()
            .map(|s| s.origin.clone())
            .or_else(|| lv.thin_origin().map(str::to_owned))
            .unwrap_or_default();
        assert_eq!(r["origin"], origin, "{name} origin");
        assert_eq!(
            r["pool_lv"],
            v.thin_pool_of(name).unwrap_or(""),
            "{name} pool"
        );
        let segtype = match &lv.segments[0].kind {
            SegmentKind::Striped { stripes, .. } if stripes.len() == 1 => "linear".to_owned(),
            SegmentKind::Striped { .. } => "striped".to_owned(),
            SegmentKind::Thin { .. } => "thin".to_owned(),
            SegmentKind::ThinPool { .. } => "thin-pool".to_owned(),
            SegmentKind::Snapshot { .. } => "snapshot".to_owned(),
            SegmentKind::Other { type_name } => type_name.clone(),
        };
        assert_eq!(r["segtype"], segtype, "{name} segtype");
        let attr0 = r["lv_attr"].chars().next().expect("attr");
        let merging_origin = v.snapshots_of(name).iter().any(|s| s.merging);
        let want = match &cow {
            Some(s) if s.merging => Some('S'),
            Some(_) => Some('s'),
            None if merging_origin => Some('O'),
            None if v.is_origin(name) => Some('o'),
            None if lv.thin().is_some() => Some('V'),
            None if lv.is_thin_pool() => Some('t'),
            None => None,
        };
        if let Some(w) = want {
            assert_eq!(attr0, w, "{name} lv_attr {}", r["lv_attr"]);
        }
    }
    // lvs -a lists every LV but LVM's internal snapshotN ones.
    let mut ours: Vec<String> = v
        .lvs
        .iter()
        .filter(|l| !matches!(l.segments[0].kind, SegmentKind::Snapshot { .. }))
        .map(|l| l.name.clone())
        .collect();
    ours.sort();
    seen.sort();
    assert_eq!(seen, ours);
    // `lvs` lists the visible ones, which `lvs -a` prints without brackets
    // (both ask LVM's lv_is_visible): no second lvs run.
    let mut visible: Vec<String> = rows
        .iter()
        .map(|r| r["lv_name"].clone())
        .filter(|n| !n.starts_with('['))
        .collect();
    visible.sort();
    visible.dedup();
    let mut our_visible: Vec<&str> = v.visible_lvs();
    our_visible.sort();
    assert_eq!(visible, our_visible);
}

/// Backup text without what every write changes.
fn normalized(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !(l.trim_start().starts_with("seqno")
                || l.starts_with("# Generated")
                || l.starts_with("description")
                || l.starts_with("creation_time")
                || l.starts_with("creation_host"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[parallel]
fn typed_view_agrees_with_lvs_on_every_layout() {
    let vg = TestVg::new("lvsnap_view", 2, 256);
    let n = &vg.name;
    let step = |cmd: &str| {
        sh(cmd);
        let md = vg.metadata();
        check_view_against_lvs(&vg, &md);
        md
    };
    step(&format!("lvcreate -q -an -Zn -L 8M -n lin {n}"));
    sh(&format!("lvcreate -q -an -Zn -L 8M -n gap {n}"));
    step(&format!("lvextend -q -L 24M {n}/lin"));
    step(&format!("lvcreate -q -an -Zn -L 300M -n big {n}"));
    sh(&format!("lvremove -q -y {n}/big"));
    step(&format!(
        "lvcreate -q -an -Zn -i2 -I64k -L 16M -n striped {n}"
    ));
    step(&format!("lvchange -q --addtag t1 {n}/lin"));
    step(&format!("lvcreate -q -an -Zn -L 8M -n origin {n}"));
    step(&format!("lvcreate -q -s -L 8M -n snap1 {n}/origin"));
    step(&format!("lvcreate -q -s -pr -L 4M -n snapro {n}/origin"));
    step(&format!("lvcreate -q -an -Zn -L 16M -T {n}/pool"));
    step(&format!("lvcreate -q -V 32M -n thin1 --thinpool {n}/pool"));
    step(&format!("lvcreate -q -s -n tsnap {n}/thin1"));
    step(&format!("lvcreate -q -s -kn -n tsnap2 {n}/thin1"));

    // A rewrite without changes (seqno + 1) restores to the same backup.
    let before = vg.backup_text();
    sh(&format!("vgchange -q -an {n}"));
    let mut md = vg.metadata();
    vg.commit(&mut md);
    let after = vg.backup_text();
    assert_eq!(normalized(&after), normalized(&before));
    // vgcfgrestore writes the file's VG with its own seqno + 1.
    assert_eq!(vg.metadata().vg().seqno, md.vg().seqno + 1);

    // The text as it sits in the metadata area round-trips byte for byte
    // in LVM's raw layout.
    let dump = sh(&format!(
        "pvck -q --dump metadata {}",
        vg.devs[0].path.display()
    ));
    let raw = dump
        .split("  ---\n")
        .nth(1)
        .expect("pvck prints the text between ---");
    assert!(raw.contains("seqno = "), "{dump}");
    let doc = lvsnap::lvm::text::Document::parse(raw).expect("parse on-disk text");
    assert_eq!(doc.to_text(Style::Raw), raw);

    // A deferred merge (origin open) as LVM records it.
    sh(&format!("lvchange -q -ay {n}/origin"));
    let hold = std::fs::File::open(format!("/dev/mapper/{n}-origin")).expect("open origin");
    sh(&format!("lvconvert -q --merge {n}/snap1 || true"));
    let md = vg.metadata();
    assert!(md.vg().cow_snapshot("snap1").expect("snap1").merging);
    check_view_against_lvs(&vg, &md);
    drop(hold);
    sh(&format!("vgchange -q -an {n}"));
}

/// The extents `lvs` shows for `lv`: (pv device, first pe, count) per segment.
fn pe_ranges(vg: &TestVg, lv: &str) -> Vec<(String, u64, u64)> {
    let out = sh(&format!(
        "lvs --noheadings --segments -o seg_pe_ranges {}/{lv}",
        vg.name
    ));
    out.split_whitespace()
        .map(|r| {
            let (dev, range) = r.rsplit_once(':').expect("dev:range");
            let (a, b) = range.split_once('-').expect("a-b");
            let (a, b): (u64, u64) = (a.parse().expect("pe"), b.parse().expect("pe"));
            (dev.to_owned(), a, b - a + 1)
        })
        .collect()
}

#[test]
#[parallel]
fn restored_linear_lv_is_where_lvsnap_allocated_it() {
    let vg = TestVg::new("lvsnap_lin", 2, 128);
    let n = &vg.name;
    // Fragment free space on both PVs.
    let pv: Vec<String> = vg
        .devs
        .iter()
        .map(|d| d.path.display().to_string())
        .collect();
    for (lv, size, dev) in [
        ("a", 4, 0),
        ("b", 1, 0),
        ("c", 8, 0),
        ("d", 1, 0),
        ("e", 2, 1),
        ("f", 3, 1),
    ] {
        sh(&format!(
            "lvcreate -q -an -Zn -l {size} -n {lv} {n} {}",
            pv[dev]
        ));
    }
    sh(&format!("lvremove -q -y {n}/a {n}/c {n}/e"));

    for want in [3u64, 9, 40] {
        // LVM's own choice on this state is the oracle for ours.
        sh(&format!("lvcreate -q -an -Zn -l {want} -n probe {n}"));
        let lvm_choice = pe_ranges(&vg, "probe");
        sh(&format!("lvremove -q -y {n}/probe"));

        let mut md = vg.metadata();
        let areas = md
            .add_linear_lv("new", Extents::from_u64(want).unwrap(), &creation())
            .expect("allocate");
        let v = md.vg().clone();
        let ours: Vec<(String, u64, u64)> = areas
            .iter()
            .map(|a| {
                (
                    v.pvs[a.pv].device.clone().expect("device hint"),
                    a.start,
                    a.count,
                )
            })
            .collect();
        assert_eq!(ours, lvm_choice, "{want} extents: lvsnap vs lvcreate");
        vg.commit(&mut md);

        let lvs = &vg.json("lvs -o lv_name,lv_size", "lv");
        let row = lvs
            .iter()
            .find(|r| r["lv_name"] == "new")
            .expect("lvs shows new");
        assert_eq!(sectors(&row["lv_size"]), want * *v.extent_size.sectors());
        assert_eq!(pe_ranges(&vg, "new"), ours);

        // Data written through the LV lands in the extents we allocated.
        sh(&format!("lvchange -q -ay {n}/new"));
        let dev = PathBuf::from(format!("/dev/mapper/{n}-new"));
        let ext_bytes = *v.extent_size.sectors() * 512;
        let mut le = 0u64;
        for (i, a) in areas.iter().enumerate() {
            let byte = 0x41 + i as u8;
            write_pattern(&dev, le * ext_bytes + 4096, 4096, byte);
            let p = &v.pvs[a.pv];
            let at = *p.pe_start * 512 + a.start * ext_bytes + 4096;
            let got = read_at(Path::new(p.device.as_deref().expect("device")), at, 4096);
            assert!(
                got.iter().all(|&b| b == byte),
                "area {i} of {want}: data not at PE {}",
                a.start
            );
            le += a.count;
        }
        sh(&format!("lvchange -q -an {n}/new"));
        sh(&format!("lvremove -q -y {n}/new"));
    }
}

#[test]
#[parallel]
fn restored_cow_pair_is_a_snapshot_for_lvm() {
    let (vg, mut md) = TestVg::with_origin("lvsnap_cow", 1, 128);
    let n = &vg.name;
    let snap_lv = md
        .add_cow_snapshot(
            "origin",
            "snapcontent-1",
            Extents(1),
            Sectors(8),
            true,
            &creation(),
        )
        .expect("add snapshot");
    assert_eq!(snap_lv, "snapshot0");
    vg.commit(&mut md);
    let md = vg.metadata();
    check_view_against_lvs(&vg, &md);
    let rows = vg.json("lvs -o lv_name,lv_attr,origin,lv_size", "lv");
    let snap = rows
        .iter()
        .find(|r| r["lv_name"] == "snapcontent-1")
        .expect("lvs shows the snapshot");
    assert!(snap["lv_attr"].starts_with("sr"), "{}", snap["lv_attr"]);
    assert_eq!(snap["origin"], "origin");
    assert_eq!(sectors(&snap["lv_size"]), 8192);

    // LVM activates it as a snapshot, and it works as one.
    sh(&format!("lvchange -q -ay {n}/origin"));
    let table = sh(&format!("dmsetup table {n}-snapcontent--1"));
    assert!(table.contains(" snapshot "), "{table}");
    assert!(table.trim_end().ends_with("P 8"), "{table}");
    let origin = PathBuf::from(format!("/dev/mapper/{n}-origin"));
    write_pattern(&origin, 0, 4096, 0x5a);
    let status = sh(&format!("dmsetup status {n}-snapcontent--1"));
    assert!(!status.contains("Invalid"), "{status}");
    let snapdev = PathBuf::from(format!("/dev/mapper/{n}-snapcontent--1"));
    assert!(
        read_at(&snapdev, 0, 4096).iter().all(|&b| b == 0),
        "snapshot keeps the old data"
    );
    sh(&format!("vgchange -q -an {n}"));

    // A merge lvsnap records is one LVM starts at the next activation.
    let mut md = vg.metadata();
    md.start_merge("snapcontent-1").expect("record merge");
    vg.commit(&mut md);
    let md = vg.metadata();
    assert!(md.vg().cow_snapshot("snapcontent-1").expect("snap").merging);
    check_view_against_lvs(&vg, &md);
    sh(&format!("lvchange -q -ay {n}/origin"));
    // LVM's background poller may finish the merge at any moment: take the
    // table between two equal listings (the poller holds the VG lock from
    // its commit to its resume), so both describe the same state.
    let lv_names = || -> Vec<String> {
        vg.json("lvs -a -o lv_name", "lv")
            .iter()
            .map(|r| r["lv_name"].clone())
            .collect()
    };
    let (table, names) = loop {
        let before = lv_names();
        let table = sh(&format!("dmsetup table {n}-origin"));
        if lv_names() == before {
            break (table, before);
        }
    };
    if names.iter().any(|l| l.contains("snapcontent-1")) {
        // Still merging in the kernel.
        assert!(table.contains(" snapshot-merge "), "{table}");
    } else {
        // LVM merged the one changed chunk at activation and dropped the
        // snapshot: the origin is rolled back to what the snapshot held.
        assert!(table.contains(" linear "), "{table}");
        assert!(
            read_at(&origin, 0, 4096).iter().all(|&b| b == 0),
            "origin rolled back"
        );
        let md = vg.metadata();
        assert!(md.vg().cow_snapshots().is_empty());
        check_view_against_lvs(&vg, &md);
    }
    sh(&format!("vgchange -q -an {n} || true"));
}

#[test]
#[parallel]
/// 100 snapshots written by lvsnap read back as lvs lists them. The times
/// are printed, not asserted: benches/lvm2.rs measures them.
fn status_of_100_snapshots_reads_as_lvs_lists_them() {
    let (vg, mut md) = TestVg::with_origin("lvsnap_many", 2, 256);
    for i in 0..100 {
        md.add_cow_snapshot(
            "origin",
            &format!("snap{i}"),
            Extents(1),
            Sectors(8),
            true,
            &creation(),
        )
        .expect("add snapshot");
    }
    vg.commit(&mut md);

    let t = Instant::now();
    let rows = vg.json("lvs -a -o lv_name,lv_attr,origin,lv_size", "lv");
    let lvs_time = t.elapsed();
    assert_eq!(
        rows.iter()
            .filter(|r| r["lv_attr"].starts_with('s'))
            .count(),
        100
    );

    let text = vg.backup_text();
    let t = Instant::now();
    let md = Metadata::parse(&text).expect("parse");
    let snaps = md.vg().cow_snapshots();
    let sizes: Vec<_> = snaps.iter().map(|s| md.vg().lv_size(&s.name)).collect();
    let ours = t.elapsed();
    assert_eq!(snaps.len(), 100);
    assert!(sizes.iter().all(|s| *s == Some(Sectors(8192))));
    eprintln!(
        "100 snapshots: lvs {:?}, lvsnap parse+view {:?} ({} bytes of text)",
        lvs_time,
        ours,
        text.len()
    );
}

#[test]
#[parallel]
fn thin_snapshot_in_two_commits_is_accepted_by_lvm_and_the_kernel() {
    let vg = TestVg::new("lvsnap_thin", 1, 256);
    let n = &vg.name;
    sh(&format!("lvcreate -q -Zn -L 16M -T {n}/pool"));
    sh(&format!("lvcreate -q -V 32M -n thin1 --thinpool {n}/pool"));
    let thin1 = PathBuf::from(format!("/dev/mapper/{n}-thin1"));
    write_pattern(&thin1, 0, 4096, 0x77);
    sh(&format!("vgchange -q -an {n}"));

    let mut md = vg.metadata();
    let id = md
        .add_thin_snapshot("thin1", "tsnap", false, &creation())
        .expect("add thin snapshot");
    assert_eq!(id, 2);
    vg.commit(&mut md);
    let queued = vg.metadata();
    check_view_against_lvs(&vg, &queued);

    // What the activation layer will do between the two commits: send the
    // queued message to the kernel pool, then commit the metadata without it.
    let (old_tid, new_tid) = match &queued.vg().lv("pool").expect("pool").segments[0].kind {
        SegmentKind::ThinPool { transaction_id, .. } => (*transaction_id - 1, *transaction_id),
        k => panic!("{k:?}"),
    };
    sh(&format!("lvchange -q -ay {n}/pool"));
    let tpool = format!("{n}-pool-tpool");
    sh(&format!("dmsetup message {tpool} 0 'create_snap {id} 1'"));
    sh(&format!(
        "dmsetup message {tpool} 0 'set_transaction_id {old_tid} {new_tid}'"
    ));
    sh(&format!("vgchange -q -an {n}"));
    let mut md = queued.clone();
    md.clear_thin_messages("pool").expect("clear messages");
    vg.commit(&mut md);
    sh(&format!("lvchange -q -ay {n}/tsnap"));
    let snap = PathBuf::from(format!("/dev/mapper/{n}-tsnap"));
    assert!(
        read_at(&snap, 0, 4096).iter().all(|&b| b == 0x77),
        "the thin snapshot holds thin1's data"
    );
    let table = sh(&format!("dmsetup table {n}-tsnap"));
    assert!(
        table.contains(" thin ") && table.trim_end().ends_with(" 2"),
        "{table}"
    );
    let status = sh(&format!("dmsetup status {n}-pool-tpool"));
    let kernel_tid: u64 = status
        .split_whitespace()
        .nth(3)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("pool status: {status}"));
    let after = vg.metadata();
    let pool_tid = match &after.vg().lv("pool").expect("pool").segments[0].kind {
        SegmentKind::ThinPool { transaction_id, .. } => *transaction_id,
        k => panic!("{k:?}"),
    };
    assert_eq!(kernel_tid, pool_tid, "kernel pool and metadata agree");
    check_view_against_lvs(&vg, &after);
    sh(&format!("vgchange -q -an {n}"));

    // Removal the same way: a queued delete, the kernel message, cleared.
    let mut md = vg.metadata();
    md.remove_lv("tsnap").expect("remove thin snapshot");
    vg.commit(&mut md);
    sh(&format!("lvchange -q -ay {n}/pool"));
    sh(&format!("dmsetup message {tpool} 0 'delete {id}'"));
    sh(&format!(
        "dmsetup message {tpool} 0 'set_transaction_id {new_tid} {}'",
        new_tid + 1
    ));
    sh(&format!("vgchange -q -an {n}"));
    md.clear_thin_messages("pool").expect("clear");
    vg.commit(&mut md);
    sh(&format!("lvchange -q -ay {n}/thin1"));
    assert!(read_at(&thin1, 0, 4096).iter().all(|&b| b == 0x77));
    check_view_against_lvs(&vg, &vg.metadata());
    sh(&format!("vgchange -q -an {n}"));
}
