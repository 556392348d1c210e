//! Sizes as users write them, and the COW sizing they feed, with any
//! origin, extent and chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvsnap::snapshot::{SnapSize, check_chunk_size, cow_max_extents, parse_size, plan_cow_extents};
use lvsnap::units::{Extents, Sectors};

fuzz_target!(|input: (&str, u64, u64, u64, bool)| {
    let (s, origin, ext, chunk, leaky) = input;
    let _ = parse_size(s);
    let _ = parse_size(s).and_then(check_chunk_size);
    let want = s.parse::<SnapSize>().unwrap_or_default();
    // Extents is a u32, as LVM's counts: results stay in LVM's range by type.
    let _ = cow_max_extents(Sectors(origin), Sectors(chunk), Sectors(ext), leaky);
    let _ = plan_cow_extents(want, Extents(origin as u32), Sectors(ext), Sectors(chunk), leaky);
});
