//! persistent-data btree nodes (`drivers/md/persistent-data/dm-btree*`),
//! read-only, and the checksum every metadata block carries.
//!
//! ```text
//! node header (32 bytes, LE): csum u32, flags u32 (1 internal, 2 leaf), blocknr u64,
//!                             nr_entries u32, max_entries u32, value_size u32, padding u32
//! keys:   max_entries u64s
//! values: max_entries values of value_size bytes (internal: u64 child block)
//! ```
//! All leaves are at the same depth. Internal key `i` is at most every key
//! of child `i`, and every key of child `i` is below internal key `i + 1`.

use crate::ErrorKind;

use super::super::error::{Error, Result};

/// The size of a metadata block.
pub const BLOCK_SIZE: usize = 4096;
const HEADER: usize = 32;
const INTERNAL_NODE: u32 = 1;
const LEAF_NODE: u32 = 2;
/// XORed into a btree node's checksum.
pub const BTREE_CSUM_XOR: u32 = 121_107;

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C: [u32; 256] = crc32c_table();

/// The checksum persistent-data puts on a block: CRC-32C from an all-ones
/// seed, without the final inversion, XORed with a per-structure constant
/// (`dm_bm_checksum`).
pub fn block_checksum(data: &[u8], xor: u32) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c ^ xor
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

pub(crate) fn corrupt(msg: impl Into<String>) -> Error {
    Error::state("thin-pool metadata", ErrorKind::Corrupt, msg)
}

/// A parsed node: borrowed from its block.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// A leaf (values are the tree's values) or internal (child blocks).
    pub leaf: bool,
    nr: usize,
    max: usize,
    value_size: usize,
    block: &'a [u8],
}

impl<'a> Node<'a> {
    /// Checks and parses the node in `block`, which was read from block
    /// `location`; leaves must have values of `leaf_value_size` bytes.
    pub fn parse(block: &'a [u8], location: u64, leaf_value_size: usize) -> Result<Node<'a>> {
        if block.len() != BLOCK_SIZE {
            return Err(corrupt(format!("node of {} bytes", block.len())));
        }
        let csum = le32(block, 0);
        let want = block_checksum(&block[4..], BTREE_CSUM_XOR);
        if csum != want {
            return Err(corrupt(format!(
                "btree node {location}: checksum {csum:#010x}, computed {want:#010x}"
            )));
        }
        let blocknr = le64(block, 8);
        if blocknr != location {
            return Err(corrupt(format!(
                "btree node at block {location} says it is block {blocknr}"
            )));
        }
        let leaf = match le32(block, 4) {
            INTERNAL_NODE => false,
            LEAF_NODE => true,
            f => return Err(corrupt(format!("btree node {location}: flags {f:#x}"))),
        };
        let nr = le32(block, 16) as usize;
        let max = le32(block, 20) as usize;
        let value_size = le32(block, 24) as usize;
        let want_vs = if leaf { leaf_value_size } else { 8 };
        if value_size != want_vs {
            return Err(corrupt(format!(
                "btree node {location}: values of {value_size} bytes, expected {want_vs}"
            )));
        }
        let room = (BLOCK_SIZE - HEADER) / (8 + value_size);
        if nr > max || max > room {
            return Err(corrupt(format!(
                "btree node {location}: {nr} of {max} entries, room for {room}"
            )));
        }
        let node = Node {
            leaf,
            nr,
            max,
            value_size,
            block,
        };
        for i in 1..nr {
            if node.key(i - 1) >= node.key(i) {
                return Err(corrupt(format!(
                    "btree node {location}: keys out of order at entry {i}"
                )));
            }
        }
        Ok(node)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.nr
    }

    /// Whether the node has no entries (only an empty root may).
    pub fn is_empty(&self) -> bool {
        self.nr == 0
    }

    /// Key `i` (`i < len()`).
    pub fn key(&self, i: usize) -> u64 {
        le64(self.block, HEADER + 8 * i)
    }

    /// Value `i`'s bytes (`i < len()`).
    pub fn value(&self, i: usize) -> &'a [u8] {
        let at = HEADER + 8 * self.max + self.value_size * i;
        &self.block[at..at + self.value_size]
    }

    /// Value `i` as a u64 (a child block, or an 8-byte leaf value).
    pub fn value_u64(&self, i: usize) -> u64 {
        le64(self.value(i), 0)
    }

    /// The index of the entry whose key is the greatest at most `key`.
    pub fn lower_bound(&self, key: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.nr);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Checks that every key is in `[lo, hi)` (the parent's bounds).
    pub fn check_bounds(&self, lo: u64, hi: Option<u64>, location: u64) -> Result<()> {
        if self.nr == 0 {
            return Ok(());
        }
        let (first, last) = (self.key(0), self.key(self.nr - 1));
        if first < lo || hi.is_some_and(|h| last >= h) {
            return Err(corrupt(format!(
                "btree node {location}: keys {first}..={last} outside its parent's range"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // CRC-32C("123456789") = 0xE3069283; persistent-data omits the final
        // inversion.
        assert_eq!(!block_checksum(b"123456789", 0), 0xE306_9283);
    }

    /// A node block at `location` with `entries` (key, value bytes).
    pub fn node(
        location: u64,
        leaf: bool,
        value_size: usize,
        entries: &[(u64, Vec<u8>)],
    ) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_SIZE];
        let max = (BLOCK_SIZE - HEADER) / (8 + value_size) / 3 * 3;
        b[4..8].copy_from_slice(&(if leaf { LEAF_NODE } else { INTERNAL_NODE }).to_le_bytes());
        b[8..16].copy_from_slice(&location.to_le_bytes());
        b[16..20].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(max as u32).to_le_bytes());
        b[24..28].copy_from_slice(&(value_size as u32).to_le_bytes());
        for (i, (k, v)) in entries.iter().enumerate() {
            b[HEADER + 8 * i..HEADER + 8 * i + 8].copy_from_slice(&k.to_le_bytes());
            let at = HEADER + 8 * max + value_size * i;
            b[at..at + value_size].copy_from_slice(v);
        }
        let c = block_checksum(&b[4..], BTREE_CSUM_XOR);
        b[0..4].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn parses_a_leaf_and_checks_it() {
        let e: Vec<(u64, Vec<u8>)> = (0..10u64)
            .map(|k| (k * 3, (k * 100).to_le_bytes().to_vec()))
            .collect();
        let b = node(7, true, 8, &e);
        let n = Node::parse(&b, 7, 8).unwrap();
        assert!(n.leaf);
        assert_eq!(n.len(), 10);
        assert_eq!(n.key(4), 12);
        assert_eq!(n.value_u64(4), 400);
        assert_eq!(n.lower_bound(13), Some(4));
        assert_eq!(n.lower_bound(0), Some(0));
        assert_eq!(
            Node::parse(&b, 8, 8).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            Node::parse(&b, 7, 24).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let mut flip = b.clone();
        flip[100] ^= 1;
        assert_eq!(
            Node::parse(&flip, 7, 8).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let unordered = node(7, true, 8, &[(5, vec![0; 8]), (5, vec![0; 8])]);
        assert!(Node::parse(&unordered, 7, 8).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any block, even with a right checksum and plausible header:
        /// no panic, and every accessor of an accepted node is in bounds.
        #[test]
        fn any_node_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), BLOCK_SIZE..=BLOCK_SIZE),
            leaf in any::<bool>(),
            nr in 0u32..600,
            max in 0u32..600,
            vs in prop::sample::select(vec![0u32, 8, 24, 4000, u32::MAX]),
            fix in any::<bool>(),
        ) {
            if fix {
                b[4..8].copy_from_slice(&(if leaf { LEAF_NODE } else { INTERNAL_NODE }).to_le_bytes());
                b[8..16].copy_from_slice(&3u64.to_le_bytes());
                b[16..20].copy_from_slice(&nr.to_le_bytes());
                b[20..24].copy_from_slice(&max.to_le_bytes());
                b[24..28].copy_from_slice(&vs.to_le_bytes());
                let c = block_checksum(&b[4..], BTREE_CSUM_XOR);
                b[0..4].copy_from_slice(&c.to_le_bytes());
            }
            for want in [8usize, 24] {
                if let Ok(n) = Node::parse(&b, 3, want) {
                    for i in 0..n.len() {
                        let _ = (n.key(i), n.value(i));
                    }
                    let _ = n.lower_bound(u64::MAX);
                    let _ = n.check_bounds(0, Some(1), 3);
                }
            }
        }
    }
}
