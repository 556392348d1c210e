//! The LVM on-disk layer against LVM2 itself: volume groups that `lvm`
//! builds are read exactly, lvsnap's commits are accepted by `vgck`, `vgs`,
//! `lvs` and `pvck`, the circular buffer wraps as LVM's does, and the VG
//! lock keeps `lvm` and lvsnap from losing each other's updates.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{LoopDev, read_at, require_dm, sh, write_pattern};
use lvsnap::ErrorKind;
use lvsnap::lvm::scan::{candidate_devices, scan, volume_groups};
use lvsnap::lvm::{ScanOptions, VgDisk};
use serial_test::{parallel, serial};

const MIB: u64 = 1 << 20;

/// A VG made by `lvm` on fresh loop devices; removed (before the loop
/// devices go) when dropped.
struct TestVg {
    name: String,
    // Field order: the VG is removed in Drop before the loops detach.
    loops: Vec<LoopDev>,
}

impl TestVg {
    /// `pvcreate <pv_args[i]>` on one loop device per entry, then `vgcreate`.
    fn new(name: &str, pv_args: &[&str], vg_args: &str) -> TestVg {
        let loops: Vec<LoopDev> = pv_args.iter().map(|_| LoopDev::new(64 * MIB)).collect();
        for (l, a) in loops.iter().zip(pv_args) {
            sh(&format!("pvcreate -q {a} {}", l.path.display()));
        }
        sh(&format!("vgcreate -q {vg_args} {name} {}", paths(&loops)));
        TestVg {
            name: name.to_string(),
            loops,
        }
    }

    fn devices(&self) -> Vec<PathBuf> {
        self.loops.iter().map(|l| l.path.clone()).collect()
    }

    fn opts(&self) -> ScanOptions {
        ScanOptions::devices(self.devices())
    }

    fn open(&self) -> VgDisk {
        VgDisk::open(&self.name, &self.opts()).expect("open VG")
    }

    fn vgs(&self, field: &str) -> String {
        sh(&format!("vgs --noheadings -o {field} {}", self.name))
            .trim()
            .to_string()
    }

    fn seqno(&self) -> u64 {
        self.vgs("seqno").parse().expect("seqno")
    }
}

impl Drop for TestVg {
    fn drop(&mut self) {
        let _ = Command::new("vgremove")
            .args(["-ff", "-q", &self.name])
            .output();
        for l in &self.loops {
            let _ = Command::new("pvremove")
                .args(["-ff", "-q", "-y"])
                .arg(&l.path)
                .output();
        }
    }
}

fn paths(loops: &[LoopDev]) -> String {
    loops
        .iter()
        .map(|l| l.path.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text with its VG-section `seqno = N` line replaced by N+1 (the tree
/// parser is another layer's; this is the minimal change LVM accepts).
fn bumped(text: &str, seqno: u64) -> String {
    let old = format!("\nseqno = {seqno}\n");
    assert_eq!(text.matches(&old).count(), 1, "one seqno line in:\n{text}");
    text.replacen(&old, &format!("\nseqno = {}\n", seqno + 1), 1)
}

/// Replaces the value of the top-level `description = "..."` line.
fn with_description(text: &str, desc: &str) -> String {
    let start = text.find("\ndescription = \"").expect("description line") + 1;
    let end = start + text[start..].find('\n').expect("line end");
    format!("{}description = \"{desc}\"{}", &text[..start], &text[end..])
}

/// `pvck --dump headers` facts per metadata area: (text offset on disk,
/// committed slot size, seqno, precommit slot offset).
#[derive(Debug, PartialEq)]
struct PvckArea {
    text_at: u64,
    size: u64,
    seqno: u64,
    precommit_offset: u64,
}

fn pvck_areas(dev: &Path) -> Vec<PvckArea> {
    let out = sh(&format!("pvck --dump headers {}", dev.display()));
    let field = |prefix: &str| -> Vec<u64> {
        out.lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.trim().parse().expect("number"))
            .collect()
    };
    let mut v = Vec::new();
    for n in 1..=2 {
        let sizes = field(&format!("mda_header_{n}.raw_locn[0].size "));
        let pre = field(&format!("mda_header_{n}.raw_locn[1].offset "));
        let Some(&size) = sizes.first() else { continue };
        let line = out
            .lines()
            .filter(|l| l.contains("metadata text at"))
            .nth(n - 1)
            .unwrap_or_else(|| panic!("no text line for mda {n}:\n{out}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "at").expect("at") + 1;
        let sq = words.iter().position(|w| *w == "seqno").expect("seqno") + 1;
        v.push(PvckArea {
            text_at: words[at].parse().expect("offset"),
            size,
            seqno: words[sq].parse().expect("seqno"),
            precommit_offset: pre[0],
        });
    }
    v
}

fn vgck(vg: &str) {
    let out = Command::new("vgck").arg(vg).output().expect("run vgck");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vgck {vg} failed:\n{all}");
    let noisy: Vec<&str> = all
        .lines()
        .filter(|l| !l.contains("NOT backed up") && !l.trim().is_empty())
        .collect();
    assert!(noisy.is_empty(), "vgck {vg} complained:\n{all}");
}

/// Checks a VgDisk's reading against LVM's own view. LVM is asked first:
/// its commands wait while a VgDisk holds the VG lock.
fn check_read(vg: &TestVg) {
    let vgs = vg.vgs("seqno,vg_uuid");
    let (seqno, uuid) = vgs.split_once(char::is_whitespace).expect("seqno uuid");
    let (seqno, uuid): (u64, &str) = (seqno.parse().expect("seqno"), uuid.trim());
    let pvs = sh(&format!(
        "pvs --noheadings --units b -o pv_name,pv_uuid,pe_start -S vg_name={}",
        vg.name
    ));
    let mut lvm_pvs: Vec<(String, String, String)> = pvs
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].to_string(),
                w[1].to_string(),
                w[2].trim_end_matches('B').to_string(),
            )
        })
        .collect();
    lvm_pvs.sort();
    let d = vg.open();
    assert_eq!(d.name(), vg.name);
    assert_eq!(d.seqno(), seqno, "seqno as vgs reports it");
    assert_eq!(d.id().to_string(), uuid);
    assert!(
        d.text().starts_with(&format!("{} {{\n", vg.name)),
        "{}",
        d.text()
    );
    assert!(d.text().contains(&format!("id = \"{}\"", d.id())));
    // Every PV LVM lists for the VG, found, with its pe_start.
    let mut ours: Vec<(String, String, String)> = d
        .pvs()
        .iter()
        .map(|p| {
            (
                p.path.display().to_string(),
                p.pv_id.to_string(),
                (*p.pe_start).to_string(),
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, lvm_pvs);
    // The bytes at the place pvck reports are the text we returned.
    for pv in d.pvs() {
        let areas = pvck_areas(&pv.path);
        assert_eq!(
            areas.len(),
            pv.areas.len(),
            "metadata areas of {}",
            pv.path.display()
        );
        for (a, p) in pv.areas.iter().zip(&areas) {
            assert_eq!(p.seqno, d.seqno());
            assert_eq!(a.header.committed.size.0, u128::from(p.size));
            // O_DIRECT reads want 512-aligned offsets and lengths.
            let a = p.text_at / 512 * 512;
            let n = (p.text_at + p.size).next_multiple_of(512) - a;
            let block = read_at(&pv.path, a, n as usize);
            let raw = &block[(p.text_at - a) as usize..(p.text_at - a + p.size) as usize];
            assert_eq!(raw.last(), Some(&0), "LVM's text ends with NUL");
            assert_eq!(&raw[..raw.len() - 1], d.text().as_bytes());
        }
    }
    d.verify().expect("every area holds the text");
}

#[test]
#[parallel]
fn reads_the_metadata_lvm_writes() {
    require_dm();
    let layouts: &[(&str, &[&str], &str)] = &[
        ("rd_one", &[""], ""),
        ("rd_two", &["", ""], ""),
        ("rd_copies2", &["--metadatacopies 2"], ""),
        ("rd_nomda", &["", "--metadatacopies 0"], ""),
        (
            "rd_sizes",
            &[
                "--metadatasize 32k --dataalignment 64k",
                "--metadatasize 2m",
            ],
            "",
        ),
    ];
    for (name, pv_args, vg_args) in layouts {
        let vg = TestVg::new(name, pv_args, vg_args);
        sh(&format!("lvcreate -q -an -Zn -L 8M -n lv1 {name}"));
        check_read(&vg);
        let d = vg.open();
        let counts: Vec<usize> = d.pvs().iter().map(|p| p.areas.len()).collect();
        match *name {
            "rd_copies2" => assert_eq!(counts, [2]),
            "rd_nomda" => assert_eq!(counts.iter().sum::<usize>(), 1, "{counts:?}"),
            _ => assert!(counts.iter().all(|&c| c == 1), "{counts:?}"),
        }
    }
}

#[test]
#[serial]
fn scanning_the_system_finds_vgs_and_skips_lvs() {
    require_dm();
    let vg = TestVg::new("scan_vg", &["", "--metadatacopies 0"], "");
    sh("lvcreate -q -Zn -L 8M -n active scan_vg");
    let cands = candidate_devices().expect("candidates");
    for l in &vg.loops {
        assert!(cands.contains(&l.path), "{cands:?}");
    }
    let lv_dm = sh("dmsetup info -c --noheadings -o blkdevname scan_vg-active");
    let lv_dev = PathBuf::from("/dev").join(lv_dm.trim());
    assert!(!cands.contains(&lv_dev), "an LV is not scanned: {cands:?}");
    let pvs = scan(&ScanOptions::default()).expect("scan");
    let vgs = volume_groups(&pvs);
    let seen = vgs.iter().find(|v| v.name == "scan_vg").expect("VG seen");
    assert_eq!(seen.seqno, vg.seqno());
    assert_eq!(seen.id.to_string(), vg.vgs("vg_uuid"));
    let mut p = seen.pv_paths.clone();
    p.sort();
    assert_eq!(p, vg.devices(), "both PVs, the one without metadata too");
    let lvm_seqno = vg.seqno();
    let d = VgDisk::open("scan_vg", &ScanOptions::default()).expect("open by scanning");
    assert_eq!(d.seqno(), lvm_seqno);
    assert_eq!(d.pvs().len(), 2);
    drop(d);
    sh("lvchange -q -an scan_vg/active");
}

#[test]
#[parallel]
fn a_rewrite_is_accepted_by_lvm_on_every_area() {
    require_dm();
    let vg = TestVg::new("rw_vg", &["", "--metadatacopies 2"], "");
    sh("lvcreate -q -an -Zn -L 8M -n lv1 rw_vg");
    let before = vg.seqno();
    let lvs_before = sh("lvs --noheadings -o lv_name,lv_size,lv_uuid rw_vg");
    let mut d = vg.open();
    let t0 = Instant::now();
    let text = bumped(d.text(), before);
    d.commit(&text).expect("commit");
    let commit_time = t0.elapsed();
    assert_eq!(d.seqno(), before + 1);
    drop(d);
    assert_eq!(vg.seqno(), before + 1);
    vgck("rw_vg");
    assert_eq!(
        sh("lvs --noheadings -o lv_name,lv_size,lv_uuid rw_vg"),
        lvs_before
    );
    for l in &vg.loops {
        for a in pvck_areas(&l.path) {
            assert_eq!(a.seqno, before + 1, "pvck on {}", l.path.display());
            assert_eq!(a.precommit_offset, 0, "precommit slot cleared");
        }
    }
    // And LVM keeps writing on top of ours.
    sh("lvcreate -q -an -Zn -L 4M -n lv2 rw_vg");
    assert_eq!(vg.seqno(), before + 2);
    vgck("rw_vg");
    let t0 = Instant::now();
    let d = vg.open();
    let open_time = t0.elapsed();
    assert!(d.text().contains("lv2 {"));
    d.verify().expect("verify");
    drop(d);
    let t0 = Instant::now();
    sh("lvchange -q --addtag timing rw_vg/lv1");
    let lvm_commit = t0.elapsed();
    let t0 = Instant::now();
    vg.seqno();
    let lvm_vgs = t0.elapsed();
    eprintln!(
        "figures: VgDisk::open (lock+scan+read, 2 PVs, 3 areas) {open_time:?}, commit \
         {commit_time:?}; lvm for comparison: vgs {lvm_vgs:?}, lvchange --addtag {lvm_commit:?}"
    );
}

#[test]
#[parallel]
fn precommit_then_commit_or_revert() {
    require_dm();
    let vg = TestVg::new("pc_vg", &["", ""], "");
    let n = vg.seqno();
    let mut d = vg.open();
    d.precommit(&bumped(d.text(), n)).expect("precommit");
    assert!(d.has_precommit());
    for l in &vg.loops {
        let a = &pvck_areas(&l.path)[0];
        assert_ne!(a.precommit_offset, 0, "precommit slot set");
        assert_eq!(a.seqno, n, "committed slot unchanged");
    }
    d.revert().expect("revert");
    assert_eq!(d.seqno(), n);
    drop(d);
    assert_eq!(vg.seqno(), n, "LVM ignores precommitted metadata");
    vgck("pc_vg");
    for l in &vg.loops {
        assert_eq!(
            pvck_areas(&l.path)[0].precommit_offset,
            0,
            "cleared by revert"
        );
    }
    let mut d = vg.open();
    d.precommit(&bumped(d.text(), n)).expect("precommit");
    // The wrong next seqno and a second precommit are refused.
    assert_eq!(
        d.precommit(&bumped(d.text(), n)).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    d.commit_precommitted().expect("commit");
    assert_eq!(d.seqno(), n + 1);
    let stale = bumped(&bumped(d.text(), n + 1), n + 2); // skips a number
    assert_eq!(
        d.commit(&stale).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    drop(d);
    assert_eq!(vg.seqno(), n + 1);
    vgck("pc_vg");
    // A precommit dropped without commit or revert is reverted.
    let mut d = vg.open();
    d.precommit(&bumped(d.text(), n + 1)).expect("precommit");
    drop(d);
    assert_eq!(pvck_areas(&vg.loops[0].path)[0].precommit_offset, 0);
    assert_eq!(vg.seqno(), n + 1);
}

#[test]
#[parallel]
fn two_hundred_commits_wrap_a_small_area() {
    require_dm();
    let vg = TestVg::new("wrap_vg", &["--metadatasize 32k --dataalignment 64k"], "");
    sh("lvcreate -q -an -Zn -L 4M -n lv1 wrap_vg");
    let (mut wraps, mut splits) = (0, 0);
    let mut last_offset = 0u128;
    let mut split_checked = false;
    let t0 = Instant::now();
    for i in 0..200u64 {
        let mut d = vg.open();
        let n = d.seqno();
        // Vary the size so copies land at many places, some across the end.
        let desc = format!(
            "lvsnap commit {i} {}",
            "x".repeat((i as usize * 397) % 6000)
        );
        let text = with_description(&bumped(d.text(), n), &desc);
        d.commit(&text).expect("commit");
        let h = &d.pvs()[0].areas[0].header;
        let c = h.committed;
        if c.offset.0 < last_offset {
            wraps += 1;
        }
        last_offset = c.offset.0;
        let split = c.offset.0 + c.size.0 > h.size.0;
        if split {
            splits += 1;
        }
        drop(d);
        if (split && !split_checked) || i % 50 == 49 {
            split_checked |= split;
            assert_eq!(vg.seqno(), n + 1, "LVM reads commit {i} (split: {split})");
            vgck("wrap_vg");
        }
    }
    eprintln!(
        "figures: 200 commits in {:?}; {wraps} wraps, {splits} split copies",
        t0.elapsed()
    );
    assert!(wraps >= 2, "the buffer wrapped ({wraps})");
    assert!(splits >= 1, "some copy was split across the end ({splits})");
    assert!(split_checked, "LVM read a split copy");
    let lvm_seqno = vg.seqno();
    vgck("wrap_vg");
    let d = vg.open();
    assert_eq!(lvm_seqno, d.seqno());
    d.verify().expect("verify");
    drop(d);
    // LVM continues from where we left off.
    sh("lvcreate -q -an -Zn -L 4M -n lv2 wrap_vg");
    vgck("wrap_vg");
    assert!(vg.open().text().contains("lv2 {"));
}

#[test]
#[parallel]
fn lvm_waits_for_our_lock() {
    require_dm();
    let vg = TestVg::new("lk_vg", &[""], "");
    sh("lvcreate -q -an -Zn -L 4M -n lv1 lk_vg");
    let d = vg.open();
    let mut child = Command::new("lvchange")
        .args(["-q", "--addtag", "waited", "lk_vg/lv1"])
        .spawn()
        .expect("spawn lvchange");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "lvchange waits for the VG lock"
    );
    drop(d);
    assert!(child.wait().expect("wait").success());
    assert!(sh("lvs --noheadings -o tags lk_vg/lv1").contains("waited"));
    // And a VG lock held elsewhere the way LVM holds it (flock on V_<vg>)
    // makes a non-blocking open Busy.
    let marker = std::env::temp_dir().join("lk_vg.locked");
    let _ = std::fs::remove_file(&marker);
    let mut holder = Command::new("flock")
        .arg("/run/lock/lvm/V_lk_vg")
        .arg("sh")
        .arg("-c")
        .arg(format!("touch {} && sleep 4", marker.display()))
        .spawn()
        .expect("spawn flock");
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "flock never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut opts = vg.opts();
    opts.wait = false;
    let e = VgDisk::open("lk_vg", &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    // Waiting, it gets the lock once the holder is gone.
    opts.wait = true;
    VgDisk::open("lk_vg", &opts).expect("open after waiting");
    assert!(holder.wait().expect("wait").success());
}

#[test]
#[parallel]
fn lvm_and_lvsnap_committing_together_lose_nothing() {
    require_dm();
    let vg = TestVg::new("cc_vg", &["", ""], "");
    sh("lvcreate -q -an -Zn -L 4M -n lv1 cc_vg");
    // What one lvm command adds to seqno, measured alone.
    let s0 = vg.seqno();
    sh("lvchange -q --addtag t_solo cc_vg/lv1");
    let per_tag = vg.seqno() - s0;
    let s0 = vg.seqno();
    sh("lvcreate -q -an -Zn -L 4M -n l_solo cc_vg");
    let per_lv = vg.seqno() - s0;
    let start = vg.seqno();
    const OURS: u64 = 40;
    const TAGS: u64 = 12;
    const LVS: u64 = 4;
    let opts = vg.opts();
    let ours = std::thread::spawn(move || {
        for _ in 0..OURS {
            let mut d = VgDisk::open("cc_vg", &opts).expect("open");
            let text = bumped(d.text(), d.seqno());
            d.commit(&text).expect("commit");
        }
    });
    for i in 0..TAGS {
        sh(&format!("lvchange -q --addtag t{i} cc_vg/lv1"));
        if i % 3 == 0 {
            sh(&format!("lvcreate -q -an -Zn -L 4M -n l{i} cc_vg"));
        }
    }
    ours.join().expect("our thread");
    let tags = sh("lvs --noheadings -o tags cc_vg/lv1");
    for i in 0..TAGS {
        assert!(tags.contains(&format!("t{i}")), "tag t{i} lost: {tags}");
    }
    let lvs = sh("lvs --noheadings -o lv_name cc_vg");
    for i in (0..TAGS).step_by(3) {
        assert!(lvs.contains(&format!("l{i}")), "LV l{i} lost: {lvs}");
    }
    assert_eq!(vg.seqno(), start + OURS + TAGS * per_tag + LVS * per_lv);
    vgck("cc_vg");
}

#[test]
#[serial]
fn damaged_metadata_gives_clear_errors() {
    require_dm();
    let vg = TestVg::new("bad_vg", &["--metadatacopies 2"], "");
    let dev = vg.loops[0].path.clone();
    assert_eq!(
        VgDisk::open("no_such_vg", &vg.opts()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Second area's header damaged: as lvcreate, reading and committing use
    // the first area, and the damaged one is left alone.
    let areas = pvck_areas(&dev);
    assert_eq!(areas.len(), 2);
    let second_hdr = sh(&format!("pvck --dump headers {}", dev.display()))
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("mda_header_2 at ").map(|r| {
                r.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .parse::<u64>()
                    .unwrap()
            })
        })
        .expect("second header");
    write_pattern(&dev, second_hdr + 100, 1, 0x55);
    let mut d = vg.open();
    let n = d.seqno();
    d.commit(&bumped(d.text(), n))
        .expect("commit through the good area");
    drop(d);
    assert_eq!(vg.seqno(), n + 1, "LVM reads the commit");
    assert_eq!(read_at(&dev, second_hdr, 512)[100], 0x55, "left alone");
    // Label checksum damaged: the device is no PV to us, and says why.
    write_pattern(&dev, 512 + 200, 1, 0x55);
    let e = lvsnap::lvm::scan::read_pv(&dev).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("checksum"), "{e}");
    let e = VgDisk::open("bad_vg", &vg.opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[test]
#[parallel]
fn ignored_metadata_areas_are_left_alone() {
    require_dm();
    let vg = TestVg::new("ign_vg", &["", ""], "");
    sh(&format!(
        "pvchange -q --metadataignore y {}",
        vg.loops[1].path.display()
    ));
    let n = vg.seqno();
    let ignored_before = read_at(&vg.loops[1].path, 4096, 512);
    let mut d = vg.open();
    let counts: Vec<usize> = d.pvs().iter().map(|p| p.areas.len()).collect();
    assert_eq!(counts, [1, 0], "the ignored area is not written");
    d.commit(&bumped(d.text(), n)).expect("commit");
    drop(d);
    assert_eq!(read_at(&vg.loops[1].path, 4096, 512), ignored_before);
    assert_eq!(vg.seqno(), n + 1);
    vgck("ign_vg");
    assert_eq!(pvck_areas(&vg.loops[0].path)[0].seqno, n + 1);
}
