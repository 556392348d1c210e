//! The metadata-area header, the text slots it points at, and the text
//! those slots cut out of the area's circular buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvsnap::lvm::mda::{MdaHeader, decode_text};
use lvsnap::units::Bytes;

fuzz_target!(|data: &[u8]| {
    if data.len() < 520 {
        return;
    }
    let size = u64::from_le_bytes(data[512..520].try_into().unwrap_or_default());
    let area = Bytes(u128::from(size));
    for start in [Bytes(4096), Bytes(0)] {
        let Ok(h) = MdaHeader::parse(&data[..512], start, area) else {
            continue;
        };
        for locn in [h.committed, h.precommitted] {
            let _ = h.text_pieces(&locn);
            let _ = decode_text(&data[520..], &locn);
        }
        if let Ok(plan) = h.plan_write("vg {\nid = \"x\"\nseqno = 2\n}\n") {
            let _ = h.precommit(&plan.locn).to_sector();
            let _ = h.commit(&plan.locn).to_sector();
        }
        let _ = h.revert().to_sector();
    }
});
