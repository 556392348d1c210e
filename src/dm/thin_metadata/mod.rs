//! A thin pool's metadata (`dm-thin-metadata.c`), read-only and natively:
//! the superblock, the device details tree (dev id -> details) and the
//! two-level mapping tree (dev id -> (virtual block -> data block, time)),
//! enough to tell which blocks two thin devices map differently, as
//! `thin_delta` does. Space maps are not read.
//!
//! A live pool's metadata is only stable under a metadata snapshot
//! (`reserve_metadata_snap`): [`ThinMetadata::open_held`] reads the held
//! superblock copy that message leaves, whose trees the kernel neither
//! changes nor frees until `release_metadata_snap`. The kernel commits its
//! transaction when it takes the snapshot, so the copy holds every mapping
//! inserted before the message, which includes every completed write.
//!
//! Every read is bounded: blocks past the metadata's size are refused,
//! node counts are capped by it, tree depth is capped, keys are checked to
//! lie in their parent's range, and no on-disk byte can cause a panic.

mod btree;

pub use btree::{BLOCK_SIZE, BTREE_CSUM_XOR, Node, block_checksum};

use btree::{corrupt, le32, le64};

use super::direct_io::ReadAt;
use super::error::{Error, Result};
use crate::ErrorKind;
use crate::units::Sectors;

/// The thin superblock's magic.
pub const THIN_MAGIC: u64 = 27_022_010;
/// XORed into the superblock's checksum.
pub const SUPERBLOCK_CSUM_XOR: u32 = 160_774;
/// Deepest btree read (a 4 KiB-node tree of depth 8 holds far more than
/// 2^64 keys).
const MAX_DEPTH: usize = 8;
/// Bytes of a device details value.
const DETAILS_BYTES: usize = 24;

/// The fields of a thin superblock lvsnap uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// The metadata version (1 or 2).
    pub version: u32,
    /// The pool's current time (snapshot counter).
    pub time: u32,
    /// The pool's transaction id.
    pub transaction_id: u64,
    /// The held metadata snapshot's superblock copy, 0 if none.
    pub held_root: u64,
    /// Root of the two-level mapping tree.
    pub data_mapping_root: u64,
    /// Root of the device details tree.
    pub device_details_root: u64,
    /// The pool's data block size.
    pub data_block_size: Sectors,
    /// Metadata blocks the metadata device has.
    pub metadata_nr_blocks: u64,
}

/// Parses and checks the superblock in `block`, read from block `location`.
pub fn parse_superblock(block: &[u8], location: u64) -> Result<Superblock> {
    if block.len() != BLOCK_SIZE {
        return Err(corrupt(format!("superblock of {} bytes", block.len())));
    }
    let csum = le32(block, 0);
    let want = block_checksum(&block[4..], SUPERBLOCK_CSUM_XOR);
    if csum != want {
        return Err(corrupt(format!(
            "superblock at {location}: checksum {csum:#010x}, computed {want:#010x}"
        )));
    }
    if le64(block, 8) != location {
        return Err(corrupt(format!(
            "superblock at {location} says it is block {}",
            le64(block, 8)
        )));
    }
    if le64(block, 32) != THIN_MAGIC {
        return Err(corrupt(format!("superblock at {location}: bad magic")));
    }
    let version = le32(block, 40);
    if !(1..=2).contains(&version) {
        return Err(Error::state(
            "thin-pool metadata",
            ErrorKind::Unsupported,
            format!("metadata version {version}"),
        ));
    }
    if le32(block, 340) != 8 {
        return Err(corrupt(format!(
            "metadata block size of {} sectors, not 8",
            le32(block, 340)
        )));
    }
    let dbs = u64::from(le32(block, 336));
    if dbs == 0 {
        return Err(corrupt("data block size 0"));
    }
    Ok(Superblock {
        version,
        time: le32(block, 44),
        transaction_id: le64(block, 48),
        held_root: le64(block, 56),
        data_mapping_root: le64(block, 320),
        device_details_root: le64(block, 328),
        data_block_size: Sectors(dbs),
        metadata_nr_blocks: le64(block, 344),
    })
}

/// A run of virtual blocks: `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRun {
    /// The first block.
    pub start: u64,
    /// How many blocks.
    pub len: u64,
}

/// Appends block `b` (in increasing order) to `runs`, merging with the last.
fn push_block(runs: &mut Vec<BlockRun>, b: u64) {
    if let Some(last) = runs.last_mut() {
        if last.start.checked_add(last.len) == Some(b) {
            last.len += 1;
            return;
        }
    }
    runs.push(BlockRun { start: b, len: 1 });
}

/// A leaf to read, with the key range its parent gives it.
#[derive(Debug, Clone, Copy)]
struct LeafRef {
    block: u64,
    lo: u64,
    hi: Option<u64>,
}

/// A pool's metadata, as of one superblock.
#[derive(Debug)]
pub struct ThinMetadata<'a, R: ReadAt + ?Sized> {
    dev: &'a R,
    blocks: u64,
    sb: Superblock,
}

impl<'a, R: ReadAt + ?Sized> ThinMetadata<'a, R> {
    /// The metadata as of the superblock at `location` (0 is the live one).
    pub fn open_at(dev: &'a R, location: u64) -> Result<Self> {
        let mut me = ThinMetadata {
            dev,
            blocks: dev.size() / BLOCK_SIZE as u64,
            sb: Superblock {
                version: 0,
                time: 0,
                transaction_id: 0,
                held_root: 0,
                data_mapping_root: 0,
                device_details_root: 0,
                data_block_size: Sectors(0),
                metadata_nr_blocks: 0,
            },
        };
        let block = me.read_block(location)?;
        me.sb = parse_superblock(&block, location)?;
        me.blocks = me.blocks.min(me.sb.metadata_nr_blocks.max(1));
        Ok(me)
    }

    /// The metadata as of the held metadata snapshot: reads the live
    /// superblock for its `held_root`. Fails with [`ErrorKind::NotFound`]
    /// if no snapshot is held; a live superblock torn by a commit fails as
    /// [`ErrorKind::Corrupt`] (a caller may read again).
    pub fn open_held(dev: &'a R) -> Result<Self> {
        let live = Self::open_at(dev, 0)?;
        if live.sb.held_root == 0 {
            return Err(Error::state(
                "thin-pool metadata",
                ErrorKind::NotFound,
                "no metadata snapshot is held",
            ));
        }
        Self::open_at(dev, live.sb.held_root)
    }

    /// The superblock read.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    fn read_block(&self, b: u64) -> Result<Vec<u8>> {
        if b >= self.blocks {
            return Err(corrupt(format!(
                "block {b} is past the metadata's {} blocks",
                self.blocks
            )));
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.dev
            .read_exact_at(&mut buf, b * BLOCK_SIZE as u64)
            .map_err(|e| Error::io(format!("read thin metadata block {b}"), e))?;
        Ok(buf)
    }

    /// Looks `key` up in the tree at `root` with leaf values of
    /// `value_size` bytes.
    fn lookup(&self, root: u64, key: u64, value_size: usize) -> Result<Option<Vec<u8>>> {
        let mut at = root;
        for _ in 0..=MAX_DEPTH {
            let block = self.read_block(at)?;
            let node = Node::parse(&block, at, value_size)?;
            let Some(i) = node.lower_bound(key) else {
                return Ok(None);
            };
            if node.leaf {
                return Ok((node.key(i) == key).then(|| node.value(i).to_vec()));
            }
            at = node.value_u64(i);
        }
        Err(corrupt(format!("btree at {root} deeper than {MAX_DEPTH}")))
    }

    /// Whether thin device `dev` exists (is in the device details tree).
    pub fn has_device(&self, dev: u64) -> Result<bool> {
        Ok(self
            .lookup(self.sb.device_details_root, dev, DETAILS_BYTES)?
            .is_some())
    }

    /// The pool's transaction id when thin device `dev` was created (its
    /// details' `transaction_id`, which the kernel never changes later);
    /// `None` if there is no such device.
    pub fn created_in_transaction(&self, dev: u64) -> Result<Option<u64>> {
        Ok(self
            .lookup(self.sb.device_details_root, dev, DETAILS_BYTES)?
            .map(|v| le64(&v, 8)))
    }

    /// The root of thin device `dev`'s mapping tree.
    pub fn mapping_root(&self, dev: u64) -> Result<u64> {
        match self.lookup(self.sb.data_mapping_root, dev, 8)? {
            Some(v) => Ok(le64(&v, 0)),
            None => Err(Error::state(
                format!("thin device {dev}"),
                ErrorKind::NotFound,
                "not in the pool's mapping tree",
            )),
        }
    }

    /// The leaves of the mapping tree at `root`, in key order, without
    /// reading them (all leaves are at one depth: the leftmost path tells it).
    fn leaves(&self, root: u64) -> Result<Vec<LeafRef>> {
        // Depth: internal levels above the leaves.
        let mut depth = 0usize;
        let mut at = root;
        loop {
            let block = self.read_block(at)?;
            let node = Node::parse(&block, at, 8)?;
            if node.leaf {
                break;
            }
            if node.is_empty() {
                return Err(corrupt(format!("empty internal node {at}")));
            }
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(corrupt(format!("btree at {root} deeper than {MAX_DEPTH}")));
            }
            at = node.value_u64(0);
        }
        let mut out = Vec::new();
        if depth == 0 {
            out.push(LeafRef {
                block: root,
                lo: 0,
                hi: None,
            });
            return Ok(out);
        }
        let mut budget = self.blocks;
        self.collect(root, 0, None, depth, &mut out, &mut budget)?;
        Ok(out)
    }

    fn collect(
        &self,
        at: u64,
        lo: u64,
        hi: Option<u64>,
        levels: usize,
        out: &mut Vec<LeafRef>,
        budget: &mut u64,
    ) -> Result<()> {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| corrupt("mapping tree has more nodes than the metadata has blocks"))?;
        let block = self.read_block(at)?;
        let node = Node::parse(&block, at, 8)?;
        if node.leaf || node.is_empty() {
            return Err(corrupt(format!(
                "btree node {at}: a leaf or empty node above the leaf level"
            )));
        }
        node.check_bounds(lo, hi, at)?;
        for i in 0..node.len() {
            let child = node.value_u64(i);
            let clo = node.key(i);
            let chi = if i + 1 < node.len() {
                Some(node.key(i + 1))
            } else {
                hi
            };
            if levels == 1 {
                out.push(LeafRef {
                    block: child,
                    lo: clo,
                    hi: chi,
                });
                if out.len() as u64 > self.blocks {
                    return Err(corrupt("more leaves than metadata blocks"));
                }
            } else {
                self.collect(child, clo, chi, levels - 1, out, budget)?;
            }
        }
        Ok(())
    }

    fn leaf_entries(&self, leaf: &LeafRef) -> Result<Vec<(u64, u64)>> {
        let block = self.read_block(leaf.block)?;
        let node = Node::parse(&block, leaf.block, 8)?;
        if !node.leaf {
            return Err(corrupt(format!(
                "btree node {}: internal at the leaf level",
                leaf.block
            )));
        }
        node.check_bounds(leaf.lo, leaf.hi, leaf.block)?;
        Ok((0..node.len())
            .map(|i| (node.key(i), node.value_u64(i)))
            .collect())
    }

    /// Every mapping of thin device `dev`: (virtual block, data block).
    pub fn mappings(&self, dev: u64) -> Result<Vec<(u64, u64)>> {
        let root = self.mapping_root(dev)?;
        let mut out = Vec::new();
        for leaf in self.leaves(root)? {
            out.extend(
                self.leaf_entries(&leaf)?
                    .into_iter()
                    .map(|(k, v)| (k, v >> 24)),
            );
        }
        Ok(out)
    }

    /// The virtual blocks that thin devices `a` and `b` map differently: to
    /// different data blocks, or mapped in one only. Leaves the two trees
    /// share (same block) are skipped unread.
    pub fn delta(&self, a: u64, b: u64) -> Result<Vec<BlockRun>> {
        let la = self.leaves(self.mapping_root(a)?)?;
        let lb = self.leaves(self.mapping_root(b)?)?;
        let mut ca = Cursor::new(&la);
        let mut cb = Cursor::new(&lb);
        let mut runs = Vec::new();
        loop {
            if ca.at_leaf_start() && cb.at_leaf_start() {
                if let (Some(x), Some(y)) = (ca.leaf(), cb.leaf()) {
                    if x.block == y.block {
                        ca.skip_leaf();
                        cb.skip_leaf();
                        continue;
                    }
                }
            }
            let ka = ca.peek(self)?;
            let kb = cb.peek(self)?;
            match (ka, kb) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    push_block(&mut runs, k);
                    ca.advance();
                }
                (None, Some((k, _))) => {
                    push_block(&mut runs, k);
                    cb.advance();
                }
                (Some((k1, v1)), Some((k2, v2))) => {
                    if k1 < k2 {
                        push_block(&mut runs, k1);
                        ca.advance();
                    } else if k2 < k1 {
                        push_block(&mut runs, k2);
                        cb.advance();
                    } else {
                        // Same data block: shared, same contents (the time
                        // half of the value does not matter).
                        if v1 >> 24 != v2 >> 24 {
                            push_block(&mut runs, k1);
                        }
                        ca.advance();
                        cb.advance();
                    }
                }
            }
        }
        Ok(runs)
    }
}

/// A position in a tree's leaves, loading each leaf when first needed.
struct Cursor<'l> {
    leaves: &'l [LeafRef],
    li: usize,
    entries: Option<Vec<(u64, u64)>>,
    ei: usize,
}

impl<'l> Cursor<'l> {
    fn new(leaves: &'l [LeafRef]) -> Self {
        Cursor {
            leaves,
            li: 0,
            entries: None,
            ei: 0,
        }
    }

    fn at_leaf_start(&self) -> bool {
        self.entries.is_none()
    }

    fn leaf(&self) -> Option<&LeafRef> {
        self.leaves.get(self.li)
    }

    fn skip_leaf(&mut self) {
        self.li += 1;
        self.entries = None;
        self.ei = 0;
    }

    /// The current entry, loading leaves (and passing empty ones) as needed.
    fn peek<R: ReadAt + ?Sized>(&mut self, md: &ThinMetadata<'_, R>) -> Result<Option<(u64, u64)>> {
        loop {
            let Some(leaf) = self.leaves.get(self.li) else {
                return Ok(None);
            };
            if self.entries.is_none() {
                self.entries = Some(md.leaf_entries(leaf)?);
                self.ei = 0;
            }
            if let Some(e) = self.entries.as_ref().and_then(|v| v.get(self.ei)) {
                return Ok(Some(*e));
            }
            self.skip_leaf();
        }
    }

    fn advance(&mut self) {
        self.ei += 1;
        if self.entries.as_ref().is_some_and(|v| self.ei >= v.len()) {
            self.skip_leaf();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::btree::tests::node;
    use super::*;
    use proptest::prelude::*;

    /// A metadata image: superblock at 0 (held copy at `held`, if any),
    /// and trees built from `devs` (dev id -> mappings), leaves of at most
    /// `fanout` entries, one internal level when more than one leaf.
    struct Image {
        blocks: Vec<Vec<u8>>,
    }

    impl Image {
        fn alloc(&mut self, b: Vec<u8>) -> u64 {
            self.blocks.push(b);
            (self.blocks.len() - 1) as u64
        }

        /// A tree of leaves with 8-byte values; returns its root.
        fn tree(&mut self, entries: &[(u64, u64)], fanout: usize) -> u64 {
            let leaves: Vec<(u64, u64)> = entries
                .chunks(fanout.max(1))
                .map(|c| {
                    let at = self.blocks.len() as u64;
                    let e: Vec<(u64, Vec<u8>)> = c
                        .iter()
                        .map(|&(k, v)| (k, v.to_le_bytes().to_vec()))
                        .collect();
                    (c[0].0, self.alloc(node(at, true, 8, &e)))
                })
                .collect();
            if leaves.is_empty() {
                let at = self.blocks.len() as u64;
                return self.alloc(node(at, true, 8, &[]));
            }
            // Internal levels until one root is left: a node holds at most
            // 252 entries with 8-byte values, and at least 4 keep the depth
            // of 600 single-entry leaves within what the reader accepts.
            let per_node = fanout.clamp(4, 252);
            let mut level = leaves;
            while level.len() > 1 {
                level = level
                    .chunks(per_node)
                    .map(|c| {
                        let at = self.blocks.len() as u64;
                        let e: Vec<(u64, Vec<u8>)> = c
                            .iter()
                            .map(|&(k, b)| (k, b.to_le_bytes().to_vec()))
                            .collect();
                        (c[0].0, self.alloc(node(at, false, 8, &e)))
                    })
                    .collect();
            }
            level[0].1
        }

        fn build(devs: &[(u64, Vec<(u64, u64)>)], fanout: usize) -> Vec<u8> {
            let mut img = Image {
                blocks: vec![vec![0u8; BLOCK_SIZE]],
            };
            let mut top = Vec::new();
            let mut details = Vec::new();
            for (id, maps) in devs {
                let vals: Vec<(u64, u64)> = maps.iter().map(|&(k, d)| (k, d << 24 | 1)).collect();
                top.push((*id, img.tree(&vals, fanout)));
                details.push((*id, vec![0u8; DETAILS_BYTES]));
            }
            let top_root = img.tree(&top, 200);
            let at = img.blocks.len() as u64;
            let det_root = img.alloc(node(at, true, DETAILS_BYTES, &details));
            let nr = img.blocks.len() as u64 + 1;
            let sb = |loc: u64, held: u64| {
                let mut b = vec![0u8; BLOCK_SIZE];
                b[8..16].copy_from_slice(&loc.to_le_bytes());
                b[32..40].copy_from_slice(&THIN_MAGIC.to_le_bytes());
                b[40..44].copy_from_slice(&2u32.to_le_bytes());
                b[56..64].copy_from_slice(&held.to_le_bytes());
                b[320..328].copy_from_slice(&top_root.to_le_bytes());
                b[328..336].copy_from_slice(&det_root.to_le_bytes());
                b[336..340].copy_from_slice(&128u32.to_le_bytes());
                b[340..344].copy_from_slice(&8u32.to_le_bytes());
                b[344..352].copy_from_slice(&nr.to_le_bytes());
                let c = block_checksum(&b[4..], SUPERBLOCK_CSUM_XOR);
                b[0..4].copy_from_slice(&c.to_le_bytes());
                b
            };
            let held = img.blocks.len() as u64;
            img.blocks.push(sb(held, 0));
            img.blocks[0] = sb(0, held);
            img.blocks.concat()
        }
    }

    fn naive(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<u64> {
        use std::collections::BTreeMap;
        let ma: BTreeMap<u64, u64> = a.iter().copied().collect();
        let mb: BTreeMap<u64, u64> = b.iter().copied().collect();
        let mut keys: Vec<u64> = ma.keys().chain(mb.keys()).copied().collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| ma.get(k) != mb.get(k))
            .collect()
    }

    fn expand(runs: &[BlockRun]) -> Vec<u64> {
        runs.iter().flat_map(|r| r.start..r.start + r.len).collect()
    }

    #[test]
    fn delta_of_two_devices() {
        let a: Vec<(u64, u64)> = (0..1000).map(|k| (k, k + 10)).collect();
        let mut b = a.clone();
        b[5].1 = 5000;
        b[6].1 = 5001;
        b.remove(700);
        b.push((2000, 7));
        let img = Image::build(&[(1, a.clone()), (2, b.clone())], 50);
        let md = ThinMetadata::open_held(img.as_slice()).unwrap();
        assert_eq!(md.superblock().data_block_size, Sectors(128));
        assert!(md.has_device(1).unwrap() && !md.has_device(3).unwrap());
        assert_eq!(
            md.delta(1, 2).unwrap(),
            vec![
                BlockRun { start: 5, len: 2 },
                BlockRun { start: 700, len: 1 },
                BlockRun {
                    start: 2000,
                    len: 1
                }
            ]
        );
        assert_eq!(md.mappings(2).unwrap().len(), 1000);
        assert_eq!(md.mapping_root(9).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn no_held_snapshot_is_not_found() {
        let mut img = Image::build(&[(1, vec![(0, 1)])], 10);
        let mut sb = img[..BLOCK_SIZE].to_vec();
        sb[56..64].fill(0);
        let c = block_checksum(&sb[4..], SUPERBLOCK_CSUM_XOR);
        sb[0..4].copy_from_slice(&c.to_le_bytes());
        img[..BLOCK_SIZE].copy_from_slice(&sb);
        assert_eq!(
            ThinMetadata::open_held(img.as_slice()).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn delta_matches_a_naive_diff(
            a in proptest::collection::btree_map(0u64..3000, 0u64..40, 0..600),
            b in proptest::collection::btree_map(0u64..3000, 0u64..40, 0..600),
            fanout in 1usize..80,
        ) {
            let a: Vec<(u64, u64)> = a.into_iter().collect();
            let b: Vec<(u64, u64)> = b.into_iter().collect();
            let img = Image::build(&[(3, a.clone()), (4, b.clone())], fanout);
            let md = ThinMetadata::open_held(img.as_slice()).unwrap();
            prop_assert_eq!(expand(&md.delta(3, 4).unwrap()), naive(&a, &b));
            prop_assert_eq!(expand(&md.delta(3, 3).unwrap()), Vec::<u64>::new());
        }

        /// Random corruption of a valid image: an error or an answer, never
        /// a panic or a hang.
        #[test]
        fn corrupted_images_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..20),
            fix_csums in any::<bool>(),
        ) {
            let a: Vec<(u64, u64)> = (0..300).map(|k| (k * 2, k)).collect();
            let b: Vec<(u64, u64)> = (0..300).map(|k| (k * 3, k)).collect();
            let mut img = Image::build(&[(1, a), (2, b)], 20);
            for (at, x) in flips {
                let i = at % img.len();
                img[i] ^= x | 1;
            }
            if fix_csums {
                for blk in img.chunks_mut(BLOCK_SIZE) {
                    let xor = if le64(blk, 32) == THIN_MAGIC { SUPERBLOCK_CSUM_XOR } else { BTREE_CSUM_XOR };
                    let c = block_checksum(&blk[4..], xor);
                    blk[0..4].copy_from_slice(&c.to_le_bytes());
                }
            }
            if let Ok(md) = ThinMetadata::open_held(img.as_slice()) {
                let _ = md.delta(1, 2);
                let _ = md.has_device(2);
            }
        }
    }
}
