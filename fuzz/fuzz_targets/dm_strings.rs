//! Strings the kernel hands back: linear, striped, snapshot,
//! snapshot-origin, thin-pool and thin tables and statuses, thin-pool
//! messages, and the LVM names and ids of dm devices.
#![no_main]

use std::str::FromStr;

use devicemapper::ThinStatus;
use libfuzzer_sys::fuzz_target;
use lvsnap::dm::{
    LinearTargetParams, LvmDmName, LvmId, SnapshotOriginTargetParams, SnapshotTargetParams,
    SnapshotTargetStatus, StripedTargetParams, ThinPoolMessage, ThinPoolTargetParams,
    ThinTargetParams,
};

/// A parsed value prints as text that parses back to it.
fn round_trips<T: FromStr + ToString + PartialEq + std::fmt::Debug>(s: &str) {
    if let Ok(t) = T::from_str(s) {
        assert_eq!(T::from_str(&t.to_string()).ok(), Some(t));
    }
}

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
    round_trips::<LinearTargetParams>(s);
    round_trips::<StripedTargetParams>(s);
    round_trips::<ThinPoolTargetParams>(s);
    round_trips::<ThinTargetParams>(s);
    round_trips::<ThinPoolMessage>(s);
    let _ = lvsnap::dm::parse_thin_pool_status(s);
    let _ = ThinStatus::from_str(s);
    let _ = LvmId::parse(s);
    let _ = LvmDmName::split(s);
    if let Some((vg, lv)) = s.split_once('/') {
        let _ = LvmDmName::new(vg, lv, None);
    }
});
