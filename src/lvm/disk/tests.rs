use super::*;
use crate::ErrorKind;
use crate::lvm::label::{DiskLocn, PV_EXT_USED, PvHeaderExtension, PvLabel};
use std::os::unix::fs::FileExt;

const PV_UUID: &str = "1EP5Yk7MNl5TKmEFLxPtJsndAJeenL1m";
const AREA: u64 = 65536 - 4096;

fn text(seqno: u64, pad: usize) -> String {
    format!(
        "img_vg {{\nid = \"vgid01-AbCd-EfGh-IjKl-MnOp-QrSt-UvWxYz\"\nseqno = {seqno}\nphysical_volumes {{\npv0 {{\n\
         id = \"1EP5Yk-7MNl-5TKm-EFLx-PtJs-ndAJ-eenL1m\"\n}}\n}}\n}}\n\
         description = \"{}\"\n",
        "p".repeat(pad)
    )
}

/// A one-PV image made with this module's own writers, seqno 1 committed.
fn image(dir: &Path) -> PathBuf {
    let path = dir.join("pv.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(4 << 20).unwrap();
    let label = PvLabel {
        sector: 1,
        pv_uuid: PV_UUID.parse().unwrap(),
        device_size: Bytes(4 << 20),
        data_areas: vec![DiskLocn {
            offset: Bytes(65536),
            size: Bytes(0),
        }],
        metadata_areas: vec![DiskLocn {
            offset: Bytes(4096),
            size: Bytes(AREA.into()),
        }],
        extension: Some(PvHeaderExtension {
            version: 2,
            flags: PV_EXT_USED,
            bootloader_areas: vec![],
        }),
    };
    f.write_all_at(&label.to_sector().unwrap(), 512).unwrap();
    let h = MdaHeader::new(Bytes(4096), Bytes(AREA.into()));
    let plan = h.plan_write(&text(1, 0)).unwrap();
    for (off, b) in &plan.writes {
        f.write_all_at(b, *off).unwrap();
    }
    f.write_all_at(&h.commit(&plan.locn).to_sector().unwrap(), 4096)
        .unwrap();
    path
}

fn opts(dir: &Path, img: &Path) -> ScanOptions {
    ScanOptions {
        devices: Some(vec![img.to_path_buf()]),
        lock_dir: dir.join("lock"),
        wait: false,
        known: None,
        hints: None,
    }
}

#[test]
fn commits_on_an_image_file_wrap_and_reread() {
    let dir = std::env::temp_dir().join(format!("lvsnap-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = image(&dir);
    let o = opts(&dir, &img);
    for n in 1..120u64 {
        let mut d = VgDisk::open("img_vg", &o).unwrap();
        assert_eq!(d.seqno(), n);
        assert_eq!(
            d.pvs()[0].pv_id.to_string(),
            "1EP5Yk-7MNl-5TKm-EFLx-PtJs-ndAJ-eenL1m"
        );
        assert_eq!(d.pvs()[0].pe_start, Bytes(65536));
        // Held lock: a second opener is Busy.
        let e = VgDisk::open("img_vg", &o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy);
        let next = text(n + 1, (n as usize * 577) % 9000);
        if n % 3 == 0 {
            d.precommit(&next).unwrap();
            d.revert().unwrap();
            assert_eq!(d.seqno(), n);
        }
        // Wrong VG, wrong seqno: refused, nothing written.
        let wrong = text(n + 2, 0);
        assert_eq!(
            d.commit(&wrong).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        d.commit(&next).unwrap();
        d.verify().unwrap();
        assert_eq!(d.text(), next);
        assert_eq!(d.source().locn, d.pvs()[0].areas[0].header.committed);
    }
    let e = VgDisk::open("other_vg", &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Too big for the area: NoSpace before anything is written.
    let mut d = VgDisk::open("img_vg", &o).unwrap();
    let e = d.commit(&text(121, 40000)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace);
    d.verify().unwrap();
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
