//! The ground every other test stands on: a real kernel device-mapper and
//! LVM2's tools, reached through vm/run.

mod common;

use common::{LoopDev, dm_names_of, dm_names_with, read_at, require_dm, sh, write_pattern};
use devicemapper::{DM, DevId, DmFlags, DmName, DmOptions};
use serial_test::parallel;

const MIB: u64 = 1 << 20;

/// Device-mapper devices made by a test, removed (last first) when it ends,
/// even when it fails.
#[derive(Default)]
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        if let Ok(dm) = DM::new() {
            for n in self.0.iter().rev() {
                let _ =
                    dm.device_remove(&DevId::Name(DmName::new(n).unwrap()), DmOptions::default());
            }
        }
    }
}

/// Creates and resumes a device; returns its `major:minor` for other tables
/// (no /dev/mapper links without udev).
fn create(dm: &DM, made: &mut Made, name: &str, table: &[(u64, u64, &str, String)]) -> String {
    let dmname = DmName::new(name).expect("valid name");
    let info = dm
        .device_create(dmname, None, DmOptions::default())
        .expect("create");
    made.0.push(name.to_string());
    let name = dmname;
    let t: Vec<_> = table
        .iter()
        .map(|(s, l, ty, p)| (*s, *l, ty.to_string(), p.clone()))
        .collect();
    dm.table_load(&DevId::Name(name), &t, DmOptions::default())
        .expect("load table");
    dm.device_suspend(&DevId::Name(name), DmOptions::default())
        .expect("resume");
    info.device().to_string()
}

/// The device node of a dm device, found through sysfs (no udev here).
fn node(dev: &str) -> std::path::PathBuf {
    let minor = dev.split(':').nth(1).expect("major:minor");
    std::path::PathBuf::from(format!("/dev/dm-{minor}"))
}

fn status(dm: &DM, name: &str) -> String {
    let name = DmName::new(name).expect("valid name");
    let (_, lines) = dm
        .table_status(&DevId::Name(name), DmOptions::default())
        .expect("status");
    lines[0].3.clone()
}

/// A COW snapshot built by hand with the devicemapper crate keeps the bytes
/// the origin had when it was taken.
#[test]
#[parallel]
fn dm_cow_snapshot_keeps_old_bytes() {
    require_dm();
    let before = dm_names_with(&["lvsnap--t-base", "lvsnap--t-snap", "lvsnap--t-origin"]);
    let data = LoopDev::new(64 * MIB);
    let cow = LoopDev::new(16 * MIB);
    write_pattern(&data.path, 0, MIB as usize, 0xAA);
    // A fresh persistent exception store starts with a zeroed header chunk.
    write_pattern(&cow.path, 0, 4096, 0);

    let dm = DM::new().expect("open control");
    let mut made = Made::default();
    let sectors = 64 * MIB / 512;
    let linear = format!("{} 0", data.path.display());
    let real = create(
        &dm,
        &mut made,
        "lvsnap--t-base",
        &[(0, sectors, "linear", linear)],
    );
    let snap_table = format!("{real} {} P 8", cow.path.display());
    let snap = create(
        &dm,
        &mut made,
        "lvsnap--t-snap",
        &[(0, sectors, "snapshot", snap_table)],
    );
    let origin_table = real.clone();
    let origin = create(
        &dm,
        &mut made,
        "lvsnap--t-origin",
        &[(0, sectors, "snapshot-origin", origin_table)],
    );
    let (origin, snap) = (node(&origin), node(&snap));

    write_pattern(&origin, 0, MIB as usize, 0x55);
    assert!(read_at(&origin, 0, MIB as usize).iter().all(|&b| b == 0x55));
    assert!(
        read_at(&snap, 0, MIB as usize).iter().all(|&b| b == 0xAA),
        "the snapshot must still read the bytes from before the write"
    );
    // 1 MiB of 4 KiB chunks copied: used/total counts them (plus metadata).
    let st = status(&dm, "lvsnap--t-snap");
    let used: u64 = st.split('/').next().unwrap().parse().expect("used sectors");
    assert!(used >= MIB / 512, "status {st} shows less than 1 MiB used");

    drop(made);
    assert_eq!(
        dm_names_with(&["lvsnap--t-base", "lvsnap--t-snap", "lvsnap--t-origin"]),
        before,
        "no device-mapper device left behind"
    );
}

/// Suspending and resuming through the crate works and is visible in the flags.
#[test]
#[parallel]
fn dm_suspend_resume_flags() {
    require_dm();
    let data = LoopDev::new(8 * MIB);
    let dm = DM::new().expect("open control");
    let mut made = Made::default();
    let name = "lvsnap--t-susp";
    create(
        &dm,
        &mut made,
        name,
        &[(
            0,
            8 * MIB / 512,
            "linear",
            format!("{} 0", data.path.display()),
        )],
    );
    let id = DevId::Name(DmName::new(name).unwrap());
    let info = dm
        .device_suspend(&id, DmOptions::default().set_flags(DmFlags::DM_SUSPEND))
        .expect("suspend");
    assert!(info.flags().contains(DmFlags::DM_SUSPEND));
    let info = dm
        .device_suspend(&id, DmOptions::default())
        .expect("resume");
    assert!(!info.flags().contains(DmFlags::DM_SUSPEND));
}

/// LVM2's tools work in this kernel: a VG and LV made by lvm read back as JSON.
#[test]
#[parallel]
fn lvm_tools_work() {
    require_dm();
    let before = dm_names_of("lvsnap-t-vg");
    let pv = LoopDev::new(128 * MIB);
    let p = pv.path.display();
    sh(&format!("pvcreate -q {p} && vgcreate -q lvsnap-t-vg {p}"));
    sh("lvcreate -q -y -L 16M -n lv0 lvsnap-t-vg");
    let out =
        sh("lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,lv_attr lvsnap-t-vg");
    let v: serde_json::Value = serde_json::from_str(&out).expect("lvs json");
    let lv = &v["report"][0]["lv"][0];
    assert_eq!(lv["lv_name"], "lv0");
    assert_eq!(lv["lv_size"], "16777216");
    assert!(lv["lv_attr"].as_str().unwrap().starts_with("-wi-a"));
    assert!(dm_names_of("lvsnap-t-vg").contains(&"lvsnap--t--vg-lv0".to_string()));
    sh("vgremove -f -q lvsnap-t-vg");
    assert_eq!(dm_names_of("lvsnap-t-vg"), before);
}
