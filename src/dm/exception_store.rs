//! The kernel's persistent COW exception store (`dm-snap-persistent.c`),
//! read-only: which origin chunks a snapshot has saved, and where.
//!
//! ```text
//! chunk 0            header: magic "SnAp", valid, version 1, chunk size (sectors), LE u32s
//! chunk 1            metadata area 0: {old_chunk u64, new_chunk u64} LE pairs
//! chunks 2..=E+1     its data chunks (E = chunk bytes / 16 exceptions per area)
//! chunk E+2          metadata area 1, and so on
//! ```
//!
//! The kernel reads areas in order and stops at the first exception whose
//! `new_chunk` is 0 (the area is then "not full"); whatever follows it in
//! that area is ignored, and so are later areas. Before it writes the
//! exception that fills an area it zeroes the next area on disk, and it
//! commits an area (with a flush and FUA) before it completes the origin
//! writes that caused its new exceptions. Committed exceptions never move
//! or change (a merge removes them from the end, and merging stores are not
//! read here). So a read of the areas in order, started after an origin write
//! completed, sees that write's exception, without suspending anything; a
//! torn read of the area being written only loses exceptions still in flight.

use super::direct_io::ReadAt;
use super::error::{Error, Result};
use crate::ErrorKind;
use crate::units::{SectorBytes, Sectors};

/// `SnAp`, little-endian.
pub const COW_MAGIC: u32 = 0x7041_6e53;
/// The only on-disk version the kernel reads.
pub const COW_VERSION: u32 = 1;
/// One exception on disk: two little-endian u64s.
const EXCEPTION_BYTES: u64 = 16;
/// The largest chunk size read (8 MiB): LVM's largest is 512 KiB, and each
/// area is read whole into memory.
pub const MAX_CHUNK_SECTORS: u64 = 1 << 14;

/// The store's header (chunk 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CowHeader {
    /// False once the kernel invalidated the snapshot (the store overflowed
    /// or an I/O failed).
    pub valid: bool,
    /// The on-disk version.
    pub version: u32,
    /// The chunk size.
    pub chunk_size: Sectors,
}

/// One saved chunk: origin chunk `old_chunk`'s data, as it was when the
/// snapshot was taken, is in chunk `new_chunk` of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exception {
    /// The origin chunk.
    pub old_chunk: u64,
    /// Where its saved data is in the store.
    pub new_chunk: u64,
}

/// A whole exception store as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionStore {
    /// The header; `None` if the store was never initialized (all zero):
    /// the kernel treats it as a new snapshot with no exceptions.
    pub header: Option<CowHeader>,
    /// The exceptions in store order (not sorted; an origin chunk appears
    /// at most once in a store the kernel wrote).
    pub exceptions: Vec<Exception>,
}

impl ExceptionStore {
    /// The chunk size, if the store has a header.
    pub fn chunk_size(&self) -> Option<Sectors> {
        self.header.map(|h| h.chunk_size)
    }
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::state("COW exception store", ErrorKind::Corrupt, msg)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Parses the header from the store's first 16 (or more) bytes. `Ok(None)`
/// is a store never initialized (magic 0), as the kernel sees it.
pub fn parse_header(b: &[u8]) -> Result<Option<CowHeader>> {
    if b.len() < 16 {
        return Err(corrupt(format!("header of {} bytes", b.len())));
    }
    let magic = le32(b, 0);
    if magic == 0 {
        return Ok(None);
    }
    if magic != COW_MAGIC {
        return Err(corrupt(format!("bad magic {magic:#010x}, not SnAp")));
    }
    let version = le32(b, 8);
    if version != COW_VERSION {
        return Err(Error::state(
            "COW exception store",
            ErrorKind::Unsupported,
            format!("on-disk version {version}, not {COW_VERSION}"),
        ));
    }
    let chunk = u64::from(le32(b, 12));
    if chunk == 0 || !chunk.is_power_of_two() || chunk > MAX_CHUNK_SECTORS {
        return Err(corrupt(format!("chunk size of {chunk} sectors")));
    }
    Ok(Some(CowHeader {
        valid: le32(b, 4) != 0,
        version,
        chunk_size: Sectors(chunk),
    }))
}

/// The geometry of a store: chunk size and how many chunks the device has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Chunk size in bytes (a power of two).
    pub chunk_bytes: u64,
    /// Whole chunks in the COW device.
    pub chunks: u64,
}

impl Geometry {
    /// Exceptions per metadata area.
    pub fn per_area(&self) -> u64 {
        self.chunk_bytes / EXCEPTION_BYTES
    }

    /// The chunk holding metadata area `area`, if it is inside the device.
    pub fn area_location(&self, area: u64) -> Option<u64> {
        let loc = self
            .per_area()
            .checked_add(1)?
            .checked_mul(area)?
            .checked_add(1)?;
        (loc < self.chunks).then_some(loc)
    }

    /// Whether `chunk` can hold saved data: past the header, not a metadata
    /// area, inside the device.
    pub fn is_data_chunk(&self, chunk: u64) -> bool {
        let stride = self.per_area() + 1;
        chunk >= 2 && chunk < self.chunks && !(chunk - 1).is_multiple_of(stride)
    }
}

/// Parses one metadata area: its exceptions up to the end mark, and whether
/// it is full (no end mark: the next area follows).
pub fn parse_area(area: &[u8], geo: &Geometry) -> Result<(Vec<Exception>, bool)> {
    if area.len() as u64 != geo.chunk_bytes {
        return Err(corrupt(format!(
            "metadata area of {} bytes, chunk is {}",
            area.len(),
            geo.chunk_bytes
        )));
    }
    let mut out = Vec::new();
    for e in area.chunks_exact(EXCEPTION_BYTES as usize) {
        let (old_chunk, new_chunk) = (le64(e, 0), le64(e, 8));
        if new_chunk == 0 {
            return Ok((out, false));
        }
        if !geo.is_data_chunk(new_chunk) {
            return Err(corrupt(format!(
                "exception {old_chunk} -> {new_chunk}: not a data chunk of a {}-chunk store",
                geo.chunks
            )));
        }
        out.push(Exception {
            old_chunk,
            new_chunk,
        });
    }
    Ok((out, true))
}

/// Reads a whole store from `dev` (a `-cow` device, or a slice), area by
/// area, as the kernel does when it loads the snapshot. Bounded by the
/// device's size; never reads past it.
pub fn read_exception_store<R: ReadAt + ?Sized>(dev: &R) -> Result<ExceptionStore> {
    let mut head = [0u8; 512];
    dev.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io("read the COW store's header", e))?;
    let Some(header) = parse_header(&head)? else {
        return Ok(ExceptionStore {
            header: None,
            exceptions: Vec::new(),
        });
    };
    let chunk_bytes = header
        .chunk_size
        .bytes_u64()
        .ok_or_else(|| corrupt(format!("chunk size of {} sectors", *header.chunk_size)))?;
    let geo = Geometry {
        chunk_bytes,
        chunks: dev.size() / chunk_bytes,
    };
    let mut exceptions = Vec::new();
    if !header.valid {
        // The kernel does not read the exceptions of an invalid snapshot.
        return Ok(ExceptionStore {
            header: Some(header),
            exceptions,
        });
    }
    let mut buf = vec![0u8; usize::try_from(chunk_bytes).map_err(|_| corrupt("chunk size"))?];
    let mut area = 0u64;
    loop {
        let Some(loc) = geo.area_location(area) else {
            // A full last area with no room for the next: the kernel could
            // not have zeroed it, so it would have invalidated the store.
            return Err(corrupt(format!(
                "area {} is full and area {area} is past the end of the store",
                area.saturating_sub(1)
            )));
        };
        dev.read_exact_at(&mut buf, loc * chunk_bytes)
            .map_err(|e| Error::io(format!("read COW metadata area {area}"), e))?;
        let (found, full) = parse_area(&buf, &geo)?;
        exceptions.extend(found);
        if !full {
            break;
        }
        area += 1;
    }
    Ok(ExceptionStore {
        header: Some(header),
        exceptions,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A store image as the kernel lays it out: `chunk` sectors per chunk,
    /// `chunks` chunks, with `exceptions` committed in order.
    pub fn image(chunk: u64, chunks: u64, valid: bool, exceptions: &[(u64, u64)]) -> Vec<u8> {
        let cb = Sectors(chunk).bytes_usize().unwrap();
        let mut v = vec![0u8; cb * chunks as usize];
        v[0..4].copy_from_slice(&COW_MAGIC.to_le_bytes());
        v[4..8].copy_from_slice(&u32::from(valid).to_le_bytes());
        v[8..12].copy_from_slice(&COW_VERSION.to_le_bytes());
        v[12..16].copy_from_slice(&(chunk as u32).to_le_bytes());
        let geo = Geometry {
            chunk_bytes: cb as u64,
            chunks,
        };
        let per = geo.per_area() as usize;
        for (i, &(o, n)) in exceptions.iter().enumerate() {
            let loc = geo.area_location((i / per) as u64).unwrap() as usize;
            let at = loc * cb + (i % per) * 16;
            v[at..at + 8].copy_from_slice(&o.to_le_bytes());
            v[at + 8..at + 16].copy_from_slice(&n.to_le_bytes());
        }
        v
    }

    /// The kernel's allocation order of data chunks: 2, 3, ... skipping
    /// metadata areas.
    pub fn data_chunks(geo: &Geometry, n: usize) -> Vec<u64> {
        (2..).filter(|&c| geo.is_data_chunk(c)).take(n).collect()
    }

    #[test]
    fn reads_exceptions_across_areas() {
        // 4 KiB chunks: 256 exceptions per area; 600 exceptions span 3 areas.
        let geo = Geometry {
            chunk_bytes: 4096,
            chunks: 1000,
        };
        let news = data_chunks(&geo, 600);
        let ex: Vec<(u64, u64)> = news
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as u64 * 7, n))
            .collect();
        let img = image(8, 1000, true, &ex);
        let st = read_exception_store(img.as_slice()).unwrap();
        assert_eq!(st.chunk_size(), Some(Sectors(8)));
        assert_eq!(st.exceptions.len(), 600);
        assert_eq!(
            st.exceptions[599],
            Exception {
                old_chunk: 599 * 7,
                new_chunk: news[599]
            }
        );
        // Area 1's metadata chunk is 258: never handed out as data.
        assert!(!news.contains(&258));
    }

    #[test]
    fn stops_at_the_first_zero_new_chunk_and_ignores_stale_entries() {
        let mut img = image(8, 100, true, &[(5, 2), (6, 3)]);
        // A stale entry after the end mark (slot 3) is not read.
        let at = 4096 + 3 * 16;
        img[at..at + 8].copy_from_slice(&9u64.to_le_bytes());
        img[at + 8..at + 16].copy_from_slice(&4u64.to_le_bytes());
        let st = read_exception_store(img.as_slice()).unwrap();
        assert_eq!(st.exceptions.len(), 2);
    }

    #[test]
    fn a_full_area_continues_into_the_next() {
        // Exactly one full area: the next area (zeroed) ends the store.
        let geo = Geometry {
            chunk_bytes: 4096,
            chunks: 600,
        };
        let news = data_chunks(&geo, 256);
        let ex: Vec<(u64, u64)> = news.iter().map(|&n| (n, n)).collect();
        let st = read_exception_store(image(8, 600, true, &ex).as_slice()).unwrap();
        assert_eq!(st.exceptions.len(), 256);
        // A full area with no next area inside the device is corrupt.
        let small = image(8, 258, true, &ex);
        assert_eq!(
            read_exception_store(small.as_slice()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }

    #[test]
    fn header_cases() {
        let zero = vec![0u8; 8192];
        let st = read_exception_store(zero.as_slice()).unwrap();
        assert_eq!(st.header, None);
        let inv = image(8, 10, false, &[(1, 2)]);
        let st = read_exception_store(inv.as_slice()).unwrap();
        assert!(!st.header.unwrap().valid);
        let mut bad = image(8, 10, true, &[]);
        bad[0] = b'X';
        assert_eq!(
            read_exception_store(bad.as_slice()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let mut v2 = image(8, 10, true, &[]);
        v2[8] = 2;
        assert_eq!(
            read_exception_store(v2.as_slice()).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        let mut odd = image(8, 10, true, &[]);
        odd[12] = 3;
        assert_eq!(
            read_exception_store(odd.as_slice()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }

    #[test]
    fn refuses_exceptions_pointing_at_metadata() {
        let img = image(8, 100, true, &[(1, 1)]);
        assert_eq!(
            read_exception_store(img.as_slice()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let img = image(8, 100, true, &[(1, 100)]);
        assert_eq!(
            read_exception_store(img.as_slice()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any bytes: no panic, and what is returned is within bounds.
        #[test]
        fn any_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..9000),
            chunk_shift in 0u32..5,
            valid in any::<bool>(),
        ) {
            if bytes.len() >= 16 && bytes[0] & 1 == 0 {
                // Often a plausible header, so the areas get parsed too.
                bytes[0..4].copy_from_slice(&COW_MAGIC.to_le_bytes());
                bytes[4..8].copy_from_slice(&u32::from(valid).to_le_bytes());
                bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
                bytes[12..16].copy_from_slice(&(1u32 << chunk_shift).to_le_bytes());
            }
            if let Ok(st) = read_exception_store(bytes.as_slice()) {
                let chunk = st.chunk_size().map_or(Some(1), SectorBytes::bytes_u64).unwrap();
                let chunks = bytes.len() as u64 / chunk;
                for e in &st.exceptions {
                    prop_assert!(e.new_chunk >= 2 && e.new_chunk < chunks);
                }
            }
        }

        /// Stores laid out as the kernel writes them read back exactly.
        #[test]
        fn kernel_layouts_round_trip(olds in proptest::collection::vec(any::<u64>(), 0..700)) {
            let geo = Geometry { chunk_bytes: 4096, chunks: 800 };
            let news = data_chunks(&geo, olds.len());
            let ex: Vec<(u64, u64)> = olds.iter().copied().zip(news).collect();
            let st = read_exception_store(image(8, 800, true, &ex).as_slice()).unwrap();
            let got: Vec<(u64, u64)> = st.exceptions.iter().map(|e| (e.old_chunk, e.new_chunk)).collect();
            prop_assert_eq!(got, ex);
        }
    }
}
