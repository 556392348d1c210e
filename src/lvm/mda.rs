//! The metadata area: its 512-byte header, the two `raw_locn` slots, and the
//! circular buffer of metadata text after the header.
//!
//! Pure functions over byte slices (host-testable); [`super::disk`] does the I/O.
//! Header layout (little-endian): checksum u32 (over bytes 4..512), magic `[u8; 16]`,
//! version u32 (1), start u64 (absolute byte offset of the header), size u64
//! (of the whole area), then `raw_locn` slots {offset u64 (from the area
//! start), size u64, checksum u32, flags u32}: slot 0 = committed text,
//! slot 1 = precommitted text. Text is written after the previous copy,
//! 512-aligned, wrapping to just after the header; a copy may be split in
//! two at the end of the area, and its `size` covers both pieces (the
//! trailing NUL that LVM writes included). LVM2's `format-text.c`
//! (`_vg_write_raw`, `_vg_commit_raw_rlocn`) is the reference.

use super::crc::{INITIAL_CRC, calc_crc, crc};
use super::error::{Error, Result};
use super::label::{to_u64, u32_at, u64_at};
use crate::units::Bytes;

/// Bytes in a metadata area header; text starts after it.
pub const MDA_HEADER_SIZE: u64 = 512;
/// The header's magic.
pub const FMTT_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// The only header version.
pub const FMTT_VERSION: u32 = 1;
/// `raw_locn` flag: this metadata area is ignored (`pvchange --metadataignore`).
pub const RAW_LOCN_IGNORED: u32 = 0x1;
/// Text alignment inside the circular buffer.
pub const MDA_ALIGN: u64 = 512;
/// Largest metadata text lvsnap will read or write (LVM itself is bounded by
/// `u32`); a bigger size in a header is taken as corruption.
pub const MAX_TEXT_SIZE: u64 = 256 << 20;

const SLOT0: usize = 40;
const SLOT1: usize = 64;
const RAW_LOCN_SIZE: usize = 24;

/// A `raw_locn`: where a copy of the text is, relative to the area start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawLocn {
    /// Offset from the start of the metadata area (so at least 512).
    pub offset: Bytes,
    /// Length in bytes, including LVM's trailing NUL, across both pieces.
    pub size: Bytes,
    /// LVM checksum of the `size` bytes.
    pub checksum: u32,
    /// Flags ([`RAW_LOCN_IGNORED`]).
    pub flags: u32,
}

impl RawLocn {
    /// Both offset and size zero: the slot points nowhere.
    pub fn is_empty(&self) -> bool {
        *self.offset == 0 && *self.size == 0
    }

    /// The metadata area is marked ignored.
    pub fn is_ignored(&self) -> bool {
        self.flags & RAW_LOCN_IGNORED != 0
    }

    fn read(b: &[u8; 512], at: usize) -> RawLocn {
        let q = |i| u64_at(b, i).unwrap_or(0);
        RawLocn {
            offset: Bytes(u128::from(q(at))),
            size: Bytes(u128::from(q(at + 8))),
            checksum: u32_at(b, at + 16).unwrap_or(0),
            flags: u32_at(b, at + 20).unwrap_or(0),
        }
    }

    fn write(&self, b: &mut [u8; 512], at: usize) -> Result<()> {
        b[at..at + 8].copy_from_slice(&to_u64(self.offset)?.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&to_u64(self.size)?.to_le_bytes());
        b[at + 16..at + 20].copy_from_slice(&self.checksum.to_le_bytes());
        b[at + 20..at + 24].copy_from_slice(&self.flags.to_le_bytes());
        Ok(())
    }
}

/// A parsed metadata area header. Bytes past the slot list's terminator are
/// kept so a rewrite changes only what LVM would change.
#[derive(Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// Absolute byte offset of this header on the device.
    pub start: Bytes,
    /// Size of the whole area, header included.
    pub size: Bytes,
    /// Slot 0: the committed text.
    pub committed: RawLocn,
    /// Slot 1: the precommitted text (empty unless a commit is in flight).
    pub precommitted: RawLocn,
    extra: Vec<u8>,
}

/// Bytes after the terminating slot (kept as read).
const EXTRA: usize = SLOT1 + 2 * RAW_LOCN_SIZE;

impl std::fmt::Debug for MdaHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdaHeader")
            .field("start", &self.start)
            .field("size", &self.size)
            .field("committed", &self.committed)
            .field("precommitted", &self.precommitted)
            .finish_non_exhaustive()
    }
}

impl MdaHeader {
    /// A fresh header as `pvcreate` writes it: both slots empty.
    pub fn new(start: Bytes, size: Bytes) -> MdaHeader {
        MdaHeader {
            start,
            size,
            committed: RawLocn::default(),
            precommitted: RawLocn::default(),
            extra: vec![0; 512 - EXTRA],
        }
    }

    /// Parses and checks the header sector read from `area_start`, an area
    /// whose pv_header size is `area_size` (the header may not claim more).
    pub fn parse(sector: &[u8], area_start: Bytes, area_size: Bytes) -> Result<MdaHeader> {
        let what = format!("metadata area header at byte {area_start}");
        let bad = |d: String| Error::corrupt(what.clone(), d);
        let raw: [u8; 512] = sector
            .try_into()
            .map_err(|_| bad(format!("{} bytes, not 512", sector.len())))?;
        let stored = u32_at(&raw, 0).unwrap_or(0);
        let computed = crc(&raw[4..]);
        if stored != computed {
            return Err(bad(format!(
                "checksum {stored:#010x} does not match contents ({computed:#010x})"
            )));
        }
        if &raw[4..20] != FMTT_MAGIC {
            return Err(bad("wrong magic".into()));
        }
        let version = u32_at(&raw, 20).unwrap_or(0);
        if version != FMTT_VERSION {
            return Err(bad(format!("version {version}, not {FMTT_VERSION}")));
        }
        let start = Bytes(u128::from(u64_at(&raw, 24).unwrap_or(0)));
        let size = Bytes(u128::from(u64_at(&raw, 32).unwrap_or(0)));
        if start != area_start {
            return Err(bad(format!("records start {start}")));
        }
        if *size < u128::from(MDA_HEADER_SIZE) * 2 || size > area_size {
            return Err(bad(format!(
                "size {size} outside 1024..={area_size} (the area's size)"
            )));
        }
        Ok(MdaHeader {
            start,
            size,
            committed: RawLocn::read(&raw, SLOT0),
            precommitted: RawLocn::read(&raw, SLOT1),
            extra: raw[EXTRA..].to_vec(),
        })
    }

    /// Serialises the header with a fresh checksum, keeping unknown bytes.
    pub fn to_sector(&self) -> Result<[u8; 512]> {
        let mut b = [0u8; 512];
        let n = self.extra.len().min(512 - EXTRA);
        b[EXTRA..EXTRA + n].copy_from_slice(&self.extra[..n]);
        b[4..20].copy_from_slice(FMTT_MAGIC);
        b[20..24].copy_from_slice(&FMTT_VERSION.to_le_bytes());
        b[24..32].copy_from_slice(&to_u64(self.start)?.to_le_bytes());
        b[32..40].copy_from_slice(&to_u64(self.size)?.to_le_bytes());
        self.committed.write(&mut b, SLOT0)?;
        self.precommitted.write(&mut b, SLOT1)?;
        // Bytes SLOT1 + 24 .. EXTRA stay zero: LVM's list terminator.
        let c = crc(&b[4..]);
        b[..4].copy_from_slice(&c.to_le_bytes());
        Ok(b)
    }

    /// The area is marked ignored: LVM neither reads nor writes text here.
    pub fn is_ignored(&self) -> bool {
        self.committed.is_ignored()
    }

    /// Where the text of `locn` lies on the device: one or two
    /// `(absolute offset, length)` pieces, bounds-checked against the area.
    pub fn text_pieces(&self, locn: &RawLocn) -> Result<Vec<(u64, u64)>> {
        let bad = |d: String| {
            Error::corrupt(
                format!("metadata location in area at byte {}", self.start),
                d,
            )
        };
        let size = to_u64(self.size)?;
        let start = to_u64(self.start)?;
        let off = u64::try_from(*locn.offset).unwrap_or(u64::MAX);
        let len = u64::try_from(*locn.size).unwrap_or(u64::MAX);
        if off < MDA_HEADER_SIZE || off >= size {
            return Err(bad(format!(
                "text offset {off} outside {MDA_HEADER_SIZE}..{size}"
            )));
        }
        if len == 0 || len > size - MDA_HEADER_SIZE || len > MAX_TEXT_SIZE {
            return Err(bad(format!(
                "text size {len} out of range for area size {size}"
            )));
        }
        let first = len.min(size - off);
        let mut v = vec![(start + off, first)];
        if first < len {
            v.push((start + MDA_HEADER_SIZE, len - first));
        }
        Ok(v)
    }

    /// Plans writing `text` as the next copy after the committed one, the
    /// way `_vg_write_raw` does: returns the new location (not yet in any
    /// slot) and the writes to make, each 512-aligned and zero-padded.
    pub fn plan_write(&self, text: &str) -> Result<WritePlan> {
        let size = to_u64(self.size)?;
        let area = to_u64(self.start)?;
        // LVM stores the text with its terminating NUL.
        let mut buf = Vec::with_capacity(text.len() + 1 + MDA_ALIGN as usize * 2);
        buf.extend_from_slice(text.as_bytes());
        buf.push(0);
        let new_size = buf.len() as u64;
        let max_size = ((size - MDA_HEADER_SIZE) / 2).saturating_sub(512);
        if new_size > max_size || new_size > MAX_TEXT_SIZE {
            return Err(Error::NoSpace(format!(
                "metadata text of {new_size} bytes exceeds the {max_size} bytes a \
                 metadata area of {size} bytes holds"
            )));
        }
        let old = &self.committed;
        let old_span = if old.is_ignored() || old.is_empty() {
            None
        } else {
            let off = to_u64(old.offset)?;
            let len = to_u64(old.size)?;
            // Checked like a read, so arithmetic below cannot overflow.
            self.text_pieces(old)?;
            let (wrap, last) = if off + len > size {
                let w = off + len - size;
                (w, w + MDA_HEADER_SIZE - 1)
            } else {
                (0, off + len - 1)
            };
            Some((off, last, wrap))
        };
        let new_start = match old_span {
            None => MDA_HEADER_SIZE,
            Some((_, old_last, _)) => {
                if size - old_last < MDA_ALIGN {
                    MDA_HEADER_SIZE
                } else {
                    let n = (old_last + 1).next_multiple_of(MDA_ALIGN);
                    if n > size - MDA_ALIGN {
                        MDA_HEADER_SIZE
                    } else {
                        n
                    }
                }
            }
        };
        let (new_wrap, new_last) = if new_start + new_size > size {
            let w = new_start + new_size - size;
            (w, w + MDA_HEADER_SIZE - 1)
        } else {
            (0, new_start + new_size - 1)
        };
        if let Some((old_start, old_last, old_wrap)) = old_span {
            let clear = match (old_wrap > 0, new_wrap > 0) {
                (true, true) => false,
                (false, false) => {
                    (new_start > old_last && new_last > new_start)
                        || (new_start < old_start && new_last < old_start)
                }
                (true, false) => {
                    old_last < new_start && new_start < new_last && new_last < old_start
                }
                (false, true) => {
                    new_last < old_start && old_start < old_last && old_last < new_start
                }
            };
            if !clear {
                return Err(Error::NoSpace(format!(
                    "metadata text of {new_size} bytes would overlap the committed copy \
                     in the circular buffer of {} bytes",
                    size - MDA_HEADER_SIZE
                )));
            }
        }
        let checksum = crc(&buf);
        let first_len = new_size - new_wrap;
        let mut first = buf.get(..first_len as usize).unwrap_or_default().to_vec();
        let mut writes = Vec::with_capacity(2);
        if new_wrap == 0 {
            first.resize(first.len().next_multiple_of(MDA_ALIGN as usize), 0);
            writes.push((area + new_start, first));
        } else {
            writes.push((area + new_start, first));
            let mut second = buf.get(first_len as usize..).unwrap_or_default().to_vec();
            second.resize(second.len().next_multiple_of(MDA_ALIGN as usize), 0);
            writes.push((area + MDA_HEADER_SIZE, second));
        }
        Ok(WritePlan {
            locn: RawLocn {
                offset: Bytes(u128::from(new_start)),
                size: Bytes(u128::from(new_size)),
                checksum,
                flags: 0,
            },
            writes,
        })
    }

    /// The header after precommitting `locn` (slot 1), as `_vg_precommit_raw`.
    pub fn precommit(&self, locn: &RawLocn) -> MdaHeader {
        let mut h = self.cleared_if_unused();
        h.precommitted = RawLocn {
            flags: h.precommitted.flags,
            ..*locn
        };
        h
    }

    /// The header after committing `locn` (slot 0; slot 1 cleared), as `_vg_commit_raw`.
    pub fn commit(&self, locn: &RawLocn) -> MdaHeader {
        let mut h = self.cleared_if_unused();
        h.committed = RawLocn {
            flags: h.committed.flags & !RAW_LOCN_IGNORED,
            ..*locn
        };
        h.precommitted = RawLocn {
            flags: h.precommitted.flags,
            ..RawLocn::default()
        };
        h
    }

    /// The header with the precommit slot cleared and slot 0 untouched, as `_vg_revert_raw`.
    pub fn revert(&self) -> MdaHeader {
        let mut h = self.cleared_if_unused();
        h.precommitted = RawLocn {
            flags: h.precommitted.flags,
            ..RawLocn::default()
        };
        h
    }

    fn cleared_if_unused(&self) -> MdaHeader {
        let mut h = self.clone();
        if h.committed.is_ignored() || h.committed.is_empty() {
            for s in [&mut h.committed, &mut h.precommitted] {
                *s = RawLocn {
                    flags: s.flags,
                    ..RawLocn::default()
                };
            }
        }
        h
    }
}

/// What [`MdaHeader::plan_write`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// The new text's location, checksum included.
    pub locn: RawLocn,
    /// `(absolute byte offset, bytes)` to write, in order; each 512-aligned.
    pub writes: Vec<(u64, Vec<u8>)>,
}

/// Checks text bytes read from the pieces of `locn` against its checksum and
/// returns the text without LVM's trailing NUL.
pub fn decode_text(bytes: &[u8], locn: &RawLocn) -> Result<String> {
    let what = format!("metadata text at area offset {}", locn.offset);
    if u128::try_from(bytes.len()).ok() != Some(*locn.size) {
        return Err(Error::corrupt(
            what,
            format!("{} bytes read, slot says {}", bytes.len(), locn.size),
        ));
    }
    let c = calc_crc(INITIAL_CRC, bytes);
    if c != locn.checksum {
        return Err(Error::corrupt(
            what,
            format!("checksum {c:#010x}, slot says {:#010x}", locn.checksum),
        ));
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes.get(..end).unwrap_or_default().to_vec())
        .map_err(|e| Error::corrupt(what, format!("not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header of the metadata area at 4096 of a PV that `vgcreate` and
    /// `lvcreate` wrote (in the test VM): slot 0 at 1536, 1213 bytes.
    const REAL: &[u8; 512] = include_bytes!("../../tests/fixtures/mda-header.bin");
    const START: Bytes = Bytes(4096);
    const AREA: Bytes = Bytes(1_044_480);

    fn real() -> MdaHeader {
        MdaHeader::parse(REAL, START, AREA).unwrap()
    }

    #[test]
    fn parses_and_rewrites_a_real_header() {
        let h = real();
        assert_eq!((h.start, h.size), (START, AREA));
        assert_eq!(h.committed.offset, Bytes(1536));
        assert_eq!(h.committed.size, Bytes(1213));
        assert_eq!(h.committed.checksum, 0x7809_cba3);
        assert!(h.precommitted.is_empty());
        assert_eq!(&h.to_sector().unwrap(), REAL);
        assert_eq!(h.text_pieces(&h.committed).unwrap(), [(4096 + 1536, 1213)]);
    }

    #[test]
    fn rejects_bad_headers_clearly() {
        let msg = |b: &[u8], start: Bytes, size: Bytes| {
            MdaHeader::parse(b, start, size).unwrap_err().to_string()
        };
        let mut b = *REAL;
        b[100] ^= 1;
        assert!(msg(&b, START, AREA).contains("checksum"));
        let fix = |mut b: [u8; 512]| {
            let c = crc(&b[4..]);
            b[..4].copy_from_slice(&c.to_le_bytes());
            b
        };
        let mut b = *REAL;
        b[5] = b'X';
        assert!(msg(&fix(b), START, AREA).contains("magic"));
        let mut b = *REAL;
        b[20] = 2;
        assert!(msg(&fix(b), START, AREA).contains("version"));
        assert!(msg(REAL, Bytes(8192), AREA).contains("start"));
        assert!(msg(REAL, START, Bytes(4096)).contains("size"));
        assert!(msg(&REAL[..511], START, AREA).contains("511"));
    }

    #[test]
    fn absurd_slots_are_corrupt_not_panics() {
        let h = real();
        for (off, size) in [
            (0, 10),
            (100, 10),
            (1536, 0),
            (AREA.0, 1),
            (1536, AREA.0),
            (u64::MAX as u128, u64::MAX as u128),
        ] {
            let l = RawLocn {
                offset: Bytes(off),
                size: Bytes(size),
                ..RawLocn::default()
            };
            let e = h.text_pieces(&l).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{off} {size}");
        }
        let mut bad = h.clone();
        bad.committed.size = Bytes(AREA.0);
        assert!(bad.plan_write("x {\n}\n").is_err());
    }

    #[test]
    fn text_round_trips_with_nul_and_checksum() {
        let plan = real().plan_write("vg {\nseqno = 3\n}\n").unwrap();
        let bytes: Vec<u8> = plan.writes.iter().flat_map(|(_, b)| b.clone()).collect();
        let text = &bytes[..*plan.locn.size as usize];
        assert_eq!(text.last(), Some(&0));
        assert_eq!(
            decode_text(text, &plan.locn).unwrap(),
            "vg {\nseqno = 3\n}\n"
        );
        let mut bad = text.to_vec();
        bad[0] = b'w';
        assert!(
            decode_text(&bad, &plan.locn)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        assert!(decode_text(&text[..5], &plan.locn).is_err());
    }

    /// Follows LVM's placement over many writes on a small area: every copy
    /// 512-aligned, after the previous one or at 512, never over it, split
    /// across the end with both pieces covered by `size`.
    #[test]
    fn placement_follows_lvm_and_wraps() {
        let mut h = MdaHeader::new(Bytes(4096), Bytes(16384));
        let (mut wraps, mut splits) = (0, 0);
        let mut prev: Option<RawLocn> = None;
        for i in 0..300usize {
            let text = "x".repeat(100 + (i * 733) % 6000);
            let plan = h.plan_write(&text).unwrap();
            let l = plan.locn;
            let (off, size) = (*l.offset as u64, *l.size as u64);
            assert_eq!(off % 512, 0);
            assert!((512..16384).contains(&off));
            assert_eq!(size, text.len() as u64 + 1);
            let total: usize = plan.writes.iter().map(|(_, b)| b.len()).sum();
            assert!(total as u64 >= size && total.is_multiple_of(512));
            if let Some(p) = prev {
                let (po, ps) = (*p.offset as u64, *p.size as u64);
                let p_end = if po + ps > 16384 {
                    512 + (po + ps - 16384)
                } else {
                    po + ps
                };
                if off < po {
                    wraps += 1;
                }
                if off != 512 {
                    assert_eq!(
                        off,
                        p_end.next_multiple_of(512),
                        "right after the previous copy"
                    );
                }
            }
            if off + size > 16384 {
                splits += 1;
                assert_eq!(plan.writes.len(), 2);
                assert_eq!(plan.writes[1].0, 4096 + 512);
                assert_eq!(plan.writes[0].1.len() as u64, 16384 - off);
            }
            h = h.precommit(&l);
            assert_eq!(h.precommitted, l);
            h = h.commit(&l);
            assert_eq!(h.committed, l);
            assert!(h.precommitted.is_empty());
            let back =
                MdaHeader::parse(&h.to_sector().unwrap(), Bytes(4096), Bytes(16384)).unwrap();
            assert_eq!(back, h);
            prev = Some(l);
        }
        assert!(wraps > 10 && splits > 3, "{wraps} wraps {splits} splits");
        // Too big for half the buffer: NoSpace, as LVM refuses it.
        let e = h.plan_write(&"y".repeat(8000)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NoSpace);
    }

    /// Reads the committed text of the area in `img` as a reader would.
    fn committed_text(img: &[u8], start: u64, size: u64) -> Result<String> {
        let s = start as usize;
        let h = MdaHeader::parse(&img[s..s + 512], Bytes(start.into()), Bytes(size.into()))?;
        let mut bytes = Vec::new();
        for (off, len) in h.text_pieces(&h.committed)? {
            bytes.extend_from_slice(&img[off as usize..(off + len) as usize]);
        }
        decode_text(&bytes, &h.committed)
    }

    /// A crash after any 512-byte sector of a commit's writes leaves the old
    /// text committed, until the commit slot's sector, which gives the new.
    #[test]
    fn a_crash_at_any_sector_leaves_old_or_new() {
        let (start, size) = (4096u64, 12288u64);
        let mut img = vec![0u8; (start + size) as usize];
        let mut h = MdaHeader::new(Bytes(start.into()), Bytes(size.into()));
        let mut old: Option<String> = None;
        for i in 0..60usize {
            let text = format!("vg{i} {{\n{}\n}}\n", "#".repeat((i * 911) % 4800));
            let plan = h.plan_write(&text).unwrap();
            let pre = h.precommit(&plan.locn);
            let com = pre.commit(&plan.locn);
            let mut sectors: Vec<(u64, Vec<u8>)> = Vec::new();
            for (off, bytes) in &plan.writes {
                for (k, c) in bytes.chunks(512).enumerate() {
                    sectors.push((off + 512 * k as u64, c.to_vec()));
                }
            }
            sectors.push((start, pre.to_sector().unwrap().to_vec()));
            sectors.push((start, com.to_sector().unwrap().to_vec()));
            for (n, (off, bytes)) in sectors.iter().enumerate() {
                img[*off as usize..*off as usize + bytes.len()].copy_from_slice(bytes);
                let now = committed_text(&img, start, size);
                if n + 1 < sectors.len() {
                    match &old {
                        Some(o) => assert_eq!(now.as_ref().ok(), Some(o), "step {i}, sector {n}"),
                        None => assert!(now.is_err(), "nothing committed yet"),
                    }
                } else {
                    assert_eq!(now.unwrap(), text);
                }
            }
            h = com;
            old = Some(text);
        }
    }

    #[test]
    fn revert_clears_only_the_precommit_slot() {
        let h = real();
        let l = h.plan_write("v {\n}\n").unwrap().locn;
        let p = h.precommit(&l);
        assert_eq!(p.committed, h.committed);
        let r = p.revert();
        assert_eq!(r, h);
    }

    proptest! {
        #[test]
        fn mutated_headers_never_panic(
            flips in proptest::collection::vec((0usize..512, any::<u8>()), 1..8),
            fix_crc in any::<bool>(),
            text_len in 0usize..40000,
        ) {
            let mut b = *REAL;
            for (at, v) in flips {
                b[at] = v;
            }
            if fix_crc {
                let c = crc(&b[4..]);
                b[..4].copy_from_slice(&c.to_le_bytes());
            }
            if let Ok(h) = MdaHeader::parse(&b, START, AREA) {
                let _ = h.text_pieces(&h.committed);
                let _ = h.text_pieces(&h.precommitted);
                if let Ok(plan) = h.plan_write(&"z".repeat(text_len)) {
                    // A plan never writes outside the area or over its header.
                    for (off, bytes) in &plan.writes {
                        prop_assert!(*off >= 4096 + 512);
                        prop_assert!((*off as u128) + bytes.len() as u128 <= 4096 + h.size.0);
                    }
                }
            }
        }
    }
}
