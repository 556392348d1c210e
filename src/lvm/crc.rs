//! LVM2's checksum: a reflected CRC-32 (polynomial 0xEDB88320) seeded with
//! [`INITIAL_CRC`] and without the final inversion, so it differs from zlib's.

/// The seed LVM uses for every checksum it stores on disk.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

#[cfg(test)]
const TABLE: [u32; 256] = make_table();

#[cfg(test)]
const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Continue an LVM checksum `crc` over `data`.
///
/// Feeding a buffer in pieces gives the same result as feeding it whole,
/// which is how a metadata text split by the circular buffer is checked.
///
/// ```
/// use lvsnap::lvm::crc::{calc_crc, INITIAL_CRC};
/// let whole = calc_crc(INITIAL_CRC, b"vg0 {\n}\n");
/// let split = calc_crc(calc_crc(INITIAL_CRC, b"vg0 "), b"{\n}\n");
/// assert_eq!(whole, split);
/// assert_eq!(calc_crc(INITIAL_CRC, b""), INITIAL_CRC);
/// ```
pub fn calc_crc(crc: u32, data: &[u8]) -> u32 {
    // crc32fast inverts on the way in and out (zlib's convention); undo
    // both to get LVM's plain register. It uses the CPU's carry-less
    // multiply where there is one: metadata texts run to megabytes.
    let mut h = crc32fast::Hasher::new_with_initial(!crc);
    h.update(data);
    !h.finalize()
}

/// The same checksum, a byte at a time from a table: the reference the
/// fast one is tested against.
#[cfg(test)]
fn calc_crc_bytewise(crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// The checksum of `data` from the initial seed.
pub fn crc(data: &[u8]) -> u32 {
    calc_crc(INITIAL_CRC, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_zlib_crc32_when_seeded_and_inverted_like_it() {
        // zlib's CRC-32 of "123456789" is 0xCBF43926: seed !0, final inversion.
        assert_eq!(!calc_crc(!0, b"123456789"), 0xcbf4_3926);
    }

    proptest::proptest! {
        #[test]
        fn fast_matches_bytewise(seed: u32, data: Vec<u8>, split in 0usize..64) {
            proptest::prop_assert_eq!(calc_crc(seed, &data), calc_crc_bytewise(seed, &data));
            let at = split.min(data.len());
            let (a, b) = data.split_at(at);
            proptest::prop_assert_eq!(calc_crc(calc_crc(seed, a), b), calc_crc_bytewise(seed, &data));
        }
    }
}
