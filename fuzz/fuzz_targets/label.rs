//! The PV label: any bytes where the first sectors of a device are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvsnap::lvm::label::{find_label, parse_label_sector};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(label)) = find_label(data) {
        // What parses writes back and parses the same.
        if let Ok(sector) = label.to_sector() {
            let again = parse_label_sector(&sector, label.sector).expect("own label");
            assert_eq!(again, label);
        }
        let _ = label.pv_id();
    }
    if data.len() >= 512 {
        let _ = parse_label_sector(&data[..512], 1);
    }
});
