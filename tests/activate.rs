//! Activation against the real kernel, with LVM2 as the oracle: what lvsnap
//! activates must be the devices `lvchange -ay` makes (names, UUIDs, tables,
//! read-only flags), and either tool must take down what the other made.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::lvm::ScratchVg;
use common::{dm_names, dm_names_of, read_at, require_dm, sh, write_pattern};
use lvsnap::ErrorKind;
use lvsnap::activate::{
    self, ActivateOptions, Activation, PvMap, activate, deactivate, is_active, live_devices,
};
use lvsnap::dm::DmControl;
use lvsnap::lvm::ScanOptions;
use lvsnap::lvm::VgDisk;
use lvsnap::lvm::text::Style;
use lvsnap::lvm::vg::{Creation, Metadata, SegmentKind, Vg};
use lvsnap::units::Sectors;
use serial_test::parallel;

/// The VG's metadata and PV devices as lvsnap reads them (lock released).
fn load(vg: &ScratchVg) -> (Vg, PvMap) {
    let paths: Vec<_> = vg.pvs.iter().map(|p| p.path.clone()).collect();
    let disk = VgDisk::open(&vg.name, &ScanOptions::devices(paths)).expect("open VG");
    let md = Metadata::parse(disk.text()).expect("parse metadata");
    let pvs = activate::pv_map(md.vg(), &disk).expect("PV map");
    (md.vg().clone(), pvs)
}

/// The VG's devices as the kernel has them (what `dmsetup info` and
/// `dmsetup table` show, read by ioctl: each dmsetup exec costs ~0.1 s in
/// the VM): name -> "uuid flags: table", with device numbers in tables
/// replaced by device names.
fn dm_state(vg: &str) -> BTreeMap<String, String> {
    use devicemapper::{DM, DevId, DmFlags, DmOptions};
    let dm = DM::new().expect("open /dev/mapper/control");
    let devs = dm.list_devices().expect("list dm devices");
    let by_dev: BTreeMap<String, String> = devs
        .iter()
        .map(|(n, d, _)| (d.to_string(), n.to_string()))
        .collect();
    let mut out = BTreeMap::new();
    for (n, _, _) in &devs {
        let name = n.to_string();
        if !name.starts_with(&format!("{vg}-")) {
            continue;
        }
        let id = DevId::Name(n);
        let info = dm.device_info(&id).expect("device info");
        let f = info.flags();
        let flags = format!(
            "{}{}{}{}",
            if f.contains(DmFlags::DM_SUSPEND) {
                's'
            } else {
                '-'
            },
            if f.contains(DmFlags::DM_ACTIVE_PRESENT) {
                'L'
            } else {
                '-'
            },
            if f.contains(DmFlags::DM_INACTIVE_PRESENT) {
                'I'
            } else {
                '-'
            },
            if f.contains(DmFlags::DM_READONLY) {
                'r'
            } else {
                'w'
            },
        );
        let uuid = info.uuid().map(|u| u.to_string()).unwrap_or_default();
        let (_, table) = dm
            .table_status(
                &id,
                DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
            )
            .expect("table");
        // The node as LVM makes it where udev does not: owner, group, mode.
        let node = match std::fs::metadata(format!("/dev/mapper/{name}")) {
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{} {:o}", m.uid(), m.gid(), m.mode() & 0o7777)
            }
            Err(e) => format!("no node ({e})"),
        };
        let mut e = format!("{uuid} {flags} {node}:");
        for (start, len, target, params) in table {
            let params: Vec<String> = params
                .split_whitespace()
                .map(|w| by_dev.get(w).cloned().unwrap_or_else(|| w.to_string()))
                .collect();
            e.push_str(&format!(" {start} {len} {target} {}", params.join(" ")));
        }
        out.insert(name, e);
    }
    out
}

fn attr(vg: &ScratchVg, lv: &str) -> String {
    vg.lvs("lv_attr")[lv]["lv_attr"].clone()
}

fn link_exists(vg: &str, lv: &str) -> bool {
    activate::lv_link(vg, lv).symlink_metadata().is_ok()
}

/// The layouts LVM makes, on 2 PVs.
fn make_layouts(name: &str) -> ScratchVg {
    let vg = ScratchVg::new(name, 2, 96, "");
    let a = vg.pvs[0].path.display().to_string();
    let b = vg.pvs[1].path.display().to_string();
    let n = &vg.name;
    sh(&format!(
        "lvcreate -q -L 8M -n lin {n} {a} && lvcreate -q -L 8M -n multi {n} {a} && \
         lvcreate -q -L 4M -n gap {n} {a} && lvextend -q -L 16M {n}/multi {b} && \
         lvcreate -q -i 2 -I 64k -L 16M -n str {n} && \
         lvcreate -q -L 12M -n orig {n} && lvcreate -q -s -L 8M -n s1 {n}/orig && \
         lvcreate -q -s -p r -L 8M -n s2 {n}/orig && \
         lvcreate -q -p r -L 4M -n ro {n} && \
         lvcreate -q -L 16M -T {n}/pool && lvcreate -q -V 16M -T {n}/pool -n thin1 && \
         lvcreate -q -s -n tsnap {n}/thin1 && vgchange -q -an {n}"
    ));
    vg
}

/// The layouts on a fresh VG, all inactive, and lvsnap's view of them.
fn setup(name: &str) -> (ScratchVg, DmControl, Vg, PvMap) {
    require_dm();
    let vg = make_layouts(name);
    let (v, pvs) = load(&vg);
    (vg, DmControl::open().unwrap(), v, pvs)
}

fn opts_k() -> ActivateOptions {
    ActivateOptions {
        ignore_activation_skip: true,
        ..Default::default()
    }
}

#[test]
#[parallel]
fn activation_matches_lvm_and_interoperates() {
    require_dm();
    let vg = make_layouts("actcmp");
    let n = vg.name.clone();
    let dm = DmControl::open().unwrap();
    // (LV, extra lvchange flag, LVs whose lv_attr must show active)
    let cases: [(&str, &str, &[&str]); 8] = [
        ("lin", "", &["lin"]),
        ("multi", "", &["multi"]),
        ("str", "", &["str"]),
        ("orig", "", &["orig", "s1", "s2"]),
        ("s2", "-y", &["orig", "s1", "s2"]),
        ("ro", "", &["ro"]),
        ("thin1", "", &["thin1"]),
        ("tsnap", "-K", &["tsnap"]),
    ];
    for (lv, flag, active) in cases {
        let (v, pvs) = load(&vg);
        assert!(dm_state(&n).is_empty(), "{lv}: VG not inactive");
        let t = Instant::now();
        sh(&format!("lvchange -ay {flag} {n}/{lv}"));
        let t_lvm = t.elapsed();
        let by_lvm = dm_state(&n);
        assert!(!by_lvm.is_empty(), "{lv}: lvm activated nothing");
        sh(&format!("lvchange -an {flag} {n}/{lv}"));
        assert!(dm_state(&n).is_empty(), "{lv}: lvm left devices");

        let t = Instant::now();
        let r = activate(&dm, &v, &pvs, lv, &opts_k()).unwrap();
        let t_ours = t.elapsed();
        assert!(matches!(r, Activation::Activated(_)), "{lv}: {r:?}");
        assert_eq!(
            dm_state(&n),
            by_lvm,
            "{lv}: lvsnap's devices differ from lvm's"
        );
        eprintln!("{lv}: lvchange -ay {t_lvm:?}, lvsnap {t_ours:?}");
        let rows = vg.lvs("lv_attr");
        for a in active {
            assert_eq!(
                rows[*a]["lv_attr"].as_bytes()[4],
                b'a',
                "{lv}: lvs shows {a} inactive"
            );
            assert!(is_active(&dm, &v, a).unwrap(), "{lv}: is_active({a})");
            assert!(link_exists(&n, a), "{lv}: no /dev/{n}/{a}");
        }
        assert!(!live_devices(&dm, &v, lv).unwrap().is_empty());
        // Activating again is a no-op.
        assert_eq!(
            activate(&dm, &v, &pvs, lv, &opts_k()).unwrap(),
            Activation::AlreadyActive
        );
        // lvm takes down what lvsnap made...
        sh(&format!("lvchange -an {flag} {n}/{lv}"));
        assert!(dm_state(&n).is_empty(), "{lv}: lvm left lvsnap's devices");
        for a in active {
            assert!(!link_exists(&n, a), "{lv}: /dev/{n}/{a} left");
        }
        // ... and lvsnap what lvm made.
        sh(&format!("lvchange -ay {flag} {n}/{lv}"));
        deactivate(&dm, &v, lv).unwrap();
        assert!(dm_state(&n).is_empty(), "{lv}: lvsnap left lvm's devices");
        assert!(!is_active(&dm, &v, lv).unwrap());
        let rows = vg.lvs("lv_attr");
        for a in active {
            assert!(!link_exists(&n, a), "{lv}: /dev/{n}/{a} left by lvsnap");
            assert_eq!(
                rows[*a]["lv_attr"].as_bytes()[4],
                b'-',
                "{lv}: lvs shows {a} active"
            );
        }
    }
    vg.vgck();
}

#[test]
#[parallel]
fn thin_pool_and_shared_pool_layers() {
    let (vg, dm, v, pvs) = setup("actpool");
    let n = vg.name.clone();
    sh(&format!("lvchange -ay {n}/pool"));
    let by_lvm = dm_state(&n);
    sh(&format!("lvchange -an {n}/pool"));
    assert!(dm_state(&n).is_empty());
    activate(&dm, &v, &pvs, "pool", &ActivateOptions::default()).unwrap();
    assert_eq!(dm_state(&n), by_lvm);
    assert_eq!(attr(&vg, "pool").as_bytes()[4], b'a');
    assert!(is_active(&dm, &v, "pool").unwrap());
    // A thin LV on the active pool reuses its layers; taking it down keeps them.
    activate(&dm, &v, &pvs, "thin1", &ActivateOptions::default()).unwrap();
    deactivate(&dm, &v, "thin1").unwrap();
    assert_eq!(dm_state(&n), by_lvm);
    // Without -K a thin snapshot is skipped, as lvchange -ay does.
    let r = activate(&dm, &v, &pvs, "tsnap", &ActivateOptions::default()).unwrap();
    assert_eq!(r, Activation::Skipped);
    assert_eq!(dm_state(&n), by_lvm);
    sh(&format!("lvchange -an {n}/pool"));
    assert!(dm_state(&n).is_empty());
}

#[test]
#[parallel]
fn data_written_by_lvm_reads_back_through_lvsnap() {
    let (vg, dm, v, pvs) = setup("actdata");
    let n = vg.name.clone();
    for (i, lv) in ["lin", "multi", "str", "orig", "thin1"]
        .into_iter()
        .enumerate()
    {
        sh(&format!("lvchange -ay {n}/{lv}"));
        let node = activate::lv_link(&n, lv);
        // Across multi's segment boundary (8 MiB), over several stripes.
        let off = if lv == "multi" { 8 << 20 } else { 4 << 20 } - 65536;
        write_pattern(&node, off, 131072, 0x40 + i as u8);
        sh(&format!("lvchange -an {n}/{lv}"));
        activate(&dm, &v, &pvs, lv, &ActivateOptions::default()).unwrap();
        assert_eq!(
            read_at(&node, off, 131072),
            vec![0x40 + i as u8; 131072],
            "{lv}: data differs"
        );
        deactivate(&dm, &v, lv).unwrap();
    }
}

#[test]
#[parallel]
fn busy_and_failures_leave_everything_as_it_was() {
    let (vg, dm, v, pvs) = setup("actbusy");
    let n = vg.name.clone();
    let before = dm_names_of(&n);

    // Open origin or snapshot: deactivation refused, nothing changed.
    activate(&dm, &v, &pvs, "orig", &ActivateOptions::default()).unwrap();
    let active = dm_state(&n);
    for (open, dev) in [("orig", "orig"), ("s1", "s1")] {
        let f = std::fs::File::open(activate::lv_link(&n, open)).unwrap();
        let e = deactivate(&dm, &v, "orig").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy);
        assert!(e.to_string().contains(&format!("{n}-{dev}")), "{e}");
        assert_eq!(dm_state(&n), active);
        drop(f);
    }
    // A table that differs from the metadata is reported, not replaced.
    let mut other = v.clone();
    for l in other.lvs.iter_mut().filter(|l| l.name == "s1") {
        if let Some(SegmentKind::Striped { stripes, .. }) =
            l.segments.first_mut().map(|s| &mut s.kind)
        {
            stripes[0].start.0 += 1;
        }
    }
    let e = activate(&dm, &other, &pvs, "orig", &ActivateOptions::default()).unwrap_err();
    assert!(matches!(e, activate::Error::Mismatch { .. }), "{e}");
    assert_eq!(dm_state(&n), active);
    deactivate(&dm, &v, "orig").unwrap();
    assert_eq!(dm_names_of(&n), before);

    // The kernel refuses the second snapshot (chunk of 3 sectors) after four
    // devices were made: all of them are removed.
    let mut bad = v.clone();
    for l in bad.lvs.iter_mut() {
        if let Some(SegmentKind::Snapshot {
            chunk_size, cow, ..
        }) = l.segments.first_mut().map(|s| &mut s.kind)
            && cow == "s2"
        {
            *chunk_size = Sectors(3);
        }
    }
    let e = activate(&dm, &bad, &pvs, "orig", &ActivateOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        dm_names_of(&n),
        before,
        "stray devices after a failed activation"
    );
    assert!(!link_exists(&n, "orig"));

    // A PV the scan did not find: NotFound, nothing left.
    let mut some = pvs.clone();
    some.remove("pv1");
    let e = activate(&dm, &v, &some, "multi", &ActivateOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(dm_names_of(&n), before);
}

#[test]
#[parallel]
fn merging_origin_is_activated_as_lvm_does() {
    require_dm();
    let vg = ScratchVg::new("actmerge", 1, 96, "");
    let n = vg.name.clone();
    sh(&format!(
        "lvcreate -q -L 12M -n orig {n} && lvcreate -q -s -L 8M -n s1 {n}/orig && \
         lvcreate -q -s -p r -L 8M -n s2 {n}/orig"
    ));
    // Merge deferred while the origin is open, then taken down.
    let f = std::fs::File::open(activate::lv_link(&n, "orig")).unwrap();
    sh(&format!("lvconvert -q --merge {n}/s1 2>&1"));
    drop(f);
    sh(&format!("lvchange -an {n}/orig"));
    let (v, pvs) = load(&vg);
    assert!(v.cow_snapshot("s1").unwrap().merging);
    let dm = DmControl::open().unwrap();
    sh(&format!("lvchange -ay --poll n {n}/orig"));
    let by_lvm = dm_state(&n);
    sh(&format!("lvchange -an {n}/orig"));
    activate(&dm, &v, &pvs, "orig", &ActivateOptions::default()).unwrap();
    assert_eq!(dm_state(&n), by_lvm);
    assert!(by_lvm[&format!("{n}-orig")].contains("snapshot-merge"));
    assert!(!link_exists(&n, "s1"));
    deactivate(&dm, &v, "orig").unwrap();
    assert!(dm_state(&n).is_empty());
}

#[test]
#[parallel]
fn queued_thin_messages_are_sent_on_activation() {
    require_dm();
    let vg = ScratchVg::new("actmsg", 1, 96, "");
    let n = vg.name.clone();
    sh(&format!(
        "lvcreate -q -L 16M -T {n}/pool && lvcreate -q -V 16M -T {n}/pool -n thin1"
    ));
    write_pattern(&activate::lv_link(&n, "thin1"), 0, 4096, 0x5a);
    sh(&format!("vgchange -q -an {n}"));
    // A thin snapshot committed with its create message still queued, as
    // lvcreate leaves it before it activates the new LV.
    {
        let paths: Vec<_> = vg.pvs.iter().map(|p| p.path.clone()).collect();
        let mut disk = VgDisk::open(&n, &ScanOptions::devices(paths)).unwrap();
        let mut md = Metadata::parse(disk.text()).unwrap();
        md.add_thin_snapshot("thin1", "tsnap2", false, &Creation::now())
            .unwrap();
        md.bump_seqno().unwrap();
        disk.commit(&md.to_text(Style::Raw)).unwrap();
    }
    let (v, pvs) = load(&vg);
    let tid = match &v.lv("pool").unwrap().segments[0].kind {
        SegmentKind::ThinPool {
            transaction_id,
            messages,
            ..
        } => {
            assert_eq!(messages.len(), 1);
            *transaction_id
        }
        k => panic!("{k:?}"),
    };
    let dm = DmControl::open().unwrap();
    for _ in 0..2 {
        // The second time the kernel is at the metadata's id: nothing is resent.
        activate(&dm, &v, &pvs, "tsnap2", &ActivateOptions::default()).unwrap();
        let status = sh(&format!("dmsetup status {n}-pool-tpool"));
        assert_eq!(
            status.split_whitespace().nth(3),
            Some(tid.to_string().as_str())
        );
        let data = read_at(&activate::lv_link(&n, "tsnap2"), 0, 4096);
        assert!(
            data.iter().all(|&b| b == 0x5a),
            "snapshot lacks thin1's data"
        );
        deactivate(&dm, &v, "tsnap2").unwrap();
        assert!(dm_state(&n).is_empty());
    }
    // LVM agrees: the kernel pool is where its metadata says.
    sh(&format!("lvchange -ay {n}/tsnap2 && vgchange -an {n}"));
    vg.vgck();
}

/// lvsnap run with `LVM_SYSTEM_DIR` at an lvm.conf whose `global` section
/// has `thin` (the VM's locking_dir kept, so LVM and lvsnap share locks).
fn lvsnap_with_conf(thin: &str, args: &[&str]) -> (i32, String) {
    let dir = std::env::temp_dir().join("lvsnap-thin-check-conf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("lvm.conf"),
        format!("global {{\n\tlocking_dir = \"/run/lock/lvm\"\n\t{thin}\n}}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lvsnap"))
        .args(args)
        .env("LVM_SYSTEM_DIR", &dir)
        .output()
        .expect("run lvsnap");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Before it makes a pool's `thin-pool` device, lvsnap runs lvm.conf's
/// thin_check with its options on the pool's metadata, as LVM does: a pool
/// whose metadata fails the check is refused with LVM's message, nothing
/// left active or suspended and nothing written; "" turns the check off, a
/// missing checker is skipped with LVM's warning. LVM refuses the same
/// pool for the same reason.
#[test]
#[parallel]
fn thin_check_runs_before_pool_activation() {
    require_dm();
    let vg = ScratchVg::new("tck", 1, 64, "");
    sh("lvcreate -q -y -L 16M -T tck/pool -V 8M -n o && vgchange -q -an tck");
    let log = std::env::temp_dir().join("lvsnap-thin-check.log");
    let wrapper = std::env::temp_dir().join("lvsnap-thin-check.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec /usr/sbin/thin_check \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&format!(
        "chmod +x {}; rm -f {}",
        wrapper.display(),
        log.display()
    ));
    let conf = format!(
        "thin_check_executable = \"{}\"\n\tthin_check_options = [ \"-q\", \"--clear-needs-check-flag\" ]",
        wrapper.display()
    );

    // Healthy metadata: checked, and the snapshot made through the pool.
    let (code, err) = lvsnap_with_conf(&conf, &["create", "tck/o", "s1"]);
    assert_eq!(code, 0, "{err}");
    // (Once per activation of the pool: the check from the committed
    // metadata before the first commit, and the one that sends the message.)
    let ran = std::fs::read_to_string(&log).expect("thin_check was not run");
    assert!(
        ran.lines().count() >= 1
            && ran
                .lines()
                .all(|l| l == "-q --clear-needs-check-flag /dev/mapper/tck-pool_tmeta"),
        "{ran}"
    );
    vg.vgck();
    assert!(vg.lvs("lv_name").contains_key("s1"));
    assert!(
        dm_names().iter().all(|d| !d.starts_with("tck-")),
        "{:?}",
        dm_names()
    );

    // The superblock's magic overwritten: the check fails.
    // (Component activation is read-only: written through the PV.)
    let table = sh("lvchange -q -ay -y tck/pool_tmeta && dmsetup table tck-pool_tmeta");
    sh("lvchange -q -an tck/pool_tmeta");
    let line = table.lines().last().unwrap_or_default();
    let start: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    sh(&format!(
        "printf '\\377\\377\\377\\377\\377\\377\\377\\377' | dd of={} bs=1 seek={} \
         conv=notrunc,fsync status=none",
        vg.pvs[0].path.display(),
        start * 512 + 32
    ));
    let seq = vg.seqno();
    let (code, err) = lvsnap_with_conf(&conf, &["create", "tck/o", "s2"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Check of pool tck/pool failed") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        vg.seqno(),
        seq,
        "metadata written although the pool was refused"
    );
    assert!(
        dm_names().iter().all(|d| !d.starts_with("tck-")),
        "{:?}",
        dm_names()
    );
    // The library says Corrupt, with lvm.conf's defaults (the real thin_check).
    let v = lvsnap::snapshot::VolumeGroup::open("tck").unwrap();
    let e = v
        .create_snapshot("o", "s2", &lvsnap::snapshot::SnapshotOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("Check of pool"), "{e}");
    assert!(
        dm_names().iter().all(|d| !d.starts_with("tck-")),
        "{:?}",
        dm_names()
    );
    // LVM refuses this pool for the same reason.
    let out = std::process::Command::new("lvchange")
        .args(["-ay", "tck/o"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Check of pool tck/pool failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sh("dmsetup ls | grep -q '^tck-' && vgchange -q -an tck || true");

    // A missing checker: skipped with LVM's warning (the kernel then
    // refuses the bad superblock itself: no "Check of pool").
    let (code, err) = lvsnap_with_conf(
        "thin_check_executable = \"/nonexistent/thin_check\"",
        &["create", "tck/o", "s2"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Check is skipped"), "{err}");
    assert!(!err.contains("Check of pool"), "{err}");
    // Set to "": no check at all.
    let (code, err) = lvsnap_with_conf("thin_check_executable = \"\"", &["create", "tck/o", "s2"]);
    assert_ne!(code, 0);
    assert!(!err.contains("Check"), "{err}");
    assert_eq!(vg.seqno(), seq);
    assert!(
        dm_names().iter().all(|d| !d.starts_with("tck-")),
        "{:?}",
        dm_names()
    );
}
