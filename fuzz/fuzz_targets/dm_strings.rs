//! Strings the kernel hands back: snapshot, snapshot-origin and thin
//! tables and statuses, and the LVM names and ids of dm devices.
#![no_main]

use std::str::FromStr;

use devicemapper::ThinStatus;
use libfuzzer_sys::fuzz_target;
use lvsnap::dm::{LvmDmName, LvmId, SnapshotOriginTargetParams, SnapshotTargetStatus, SnapshotTargetParams};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(st) = SnapshotTargetStatus::from_str(s) {
        let _ = (st.data_percent(), st.is_invalid(), st.merge_done());
    }
    if let Ok(t) = SnapshotTargetParams::from_str(s) {
        assert_eq!(SnapshotTargetParams::from_str(&t.to_string()).ok(), Some(t));
    }
    if let Ok(t) = SnapshotOriginTargetParams::from_str(s) {
        assert_eq!(SnapshotOriginTargetParams::from_str(&t.to_string()).ok(), Some(t));
    }
    let _ = lvsnap::dm::parse_thin_pool_status(s);
    let _ = ThinStatus::from_str(s);
    let _ = LvmId::parse(s);
    let _ = LvmDmName::split(s);
    if let Some((vg, lv)) = s.split_once('/') {
        let _ = LvmDmName::new(vg, lv, None);
    }
});
