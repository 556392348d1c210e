//! The PV label (`LABELONE` sector) and the `pv_header` it carries.
//!
//! Pure functions over byte slices; reading the device is [`super::disk`]'s job.
//! Layout (all little-endian): `label_header` {id "LABELONE", sector u64,
//! crc u32, offset u32, type "LVM2 001"}, then at `offset` the `pv_header`
//! {uuid `[u8; 32]`, device_size u64, data areas, 0, metadata areas, 0}, each area a
//! `disk_locn` {offset u64, size u64}, then the extension {version u32,
//! flags u32, bootloader areas, 0}. The crc covers bytes 20..512.

use super::crc::crc;
use super::error::{Error, Result};
use super::id::PvId;
use crate::units::Bytes;

/// Bytes in a label sector.
pub const LABEL_SIZE: usize = 512;
/// LVM looks for a label in the first this many sectors.
pub const LABEL_SCAN_SECTORS: usize = 4;
/// The label's magic.
pub const LABEL_ID: &[u8; 8] = b"LABELONE";
/// The label type of LVM2's text format.
pub const LVM2_LABEL: &[u8; 8] = b"LVM2 001";
/// The pv_header extension version LVM writes today.
pub const PV_HEADER_EXTENSION_VSN: u32 = 2;
/// Extension flag: the PV belongs to a VG (`PV_EXT_USED`).
pub const PV_EXT_USED: u32 = 0x1;

const LABEL_HEADER_SIZE: usize = 32;
const PV_HEADER_SIZE: usize = 40;
const DISK_LOCN_SIZE: usize = 16;
const ID_LEN: usize = 32;

/// One area of a PV: `offset` from the start of the device, `size` bytes
/// (0 for a data area means "to the end of the device").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLocn {
    /// Start, in bytes from the start of the device.
    pub offset: Bytes,
    /// Length in bytes.
    pub size: Bytes,
}

/// The pv_header extension (absent on PVs written by very old LVM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvHeaderExtension {
    /// Extension version (LVM writes 2).
    pub version: u32,
    /// Flags ([`PV_EXT_USED`]).
    pub flags: u32,
    /// Bootloader areas (version 1 and later).
    pub bootloader_areas: Vec<DiskLocn>,
}

/// A parsed PV label and pv_header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// The sector (0..4) the label sits in.
    pub sector: u64,
    /// The PV's id (32 characters on disk, without dashes).
    pub pv_uuid: PvId,
    /// The device size recorded at pvcreate time.
    pub device_size: Bytes,
    /// Data areas (LVM writes one: pe_start, size 0).
    pub data_areas: Vec<DiskLocn>,
    /// Metadata areas (zero, one or two).
    pub metadata_areas: Vec<DiskLocn>,
    /// The extension, when the sector has room for one and it is present.
    pub extension: Option<PvHeaderExtension>,
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

/// Reads a NUL-terminated `disk_locn` list starting at `at`, bounded by the
/// sector; returns the list and the offset just past its terminator.
fn read_locns(sector: &[u8], mut at: usize, what: &str) -> Result<(Vec<DiskLocn>, usize)> {
    let mut v = Vec::new();
    loop {
        let (Some(offset), Some(size)) = (u64_at(sector, at), u64_at(sector, at + 8)) else {
            return Err(Error::corrupt(
                "PV header",
                format!("{what} list runs past the end of the label sector"),
            ));
        };
        at += DISK_LOCN_SIZE;
        if offset == 0 {
            return Ok((v, at));
        }
        v.push(DiskLocn {
            offset: Bytes(u128::from(offset)),
            size: Bytes(u128::from(size)),
        });
    }
}

/// Looks for a label in the first [`LABEL_SCAN_SECTORS`] sectors of a device
/// (`head` holds them; a shorter slice is scanned as far as it goes).
///
/// `Ok(None)`: no `LABELONE` here, not a PV. A sector that says `LABELONE`
/// for its own sector number but fails the checks is an error, as for LVM.
///
/// ```
/// use lvsnap::lvm::label::find_label;
/// assert_eq!(find_label(&[0u8; 2048]).unwrap(), None);
/// ```
pub fn find_label(head: &[u8]) -> Result<Option<PvLabel>> {
    for (n, sector) in head
        .chunks_exact(LABEL_SIZE)
        .take(LABEL_SCAN_SECTORS)
        .enumerate()
    {
        if sector.get(..8) == Some(&LABEL_ID[..]) && u64_at(sector, 8) == Some(n as u64) {
            return parse_label_sector(sector, n as u64).map(Some);
        }
    }
    Ok(None)
}

/// Parses the label in `sector` (512 bytes), found at sector number `n`.
pub fn parse_label_sector(sector: &[u8], n: u64) -> Result<PvLabel> {
    let bad = |d: String| Error::corrupt(format!("PV label in sector {n}"), d);
    if sector.len() != LABEL_SIZE {
        return Err(bad(format!("{} bytes, not {LABEL_SIZE}", sector.len())));
    }
    if sector.get(..8) != Some(&LABEL_ID[..]) {
        return Err(bad("no LABELONE magic".into()));
    }
    let recorded_sector = u64_at(sector, 8).unwrap_or(u64::MAX);
    if recorded_sector != n {
        return Err(bad(format!("records sector {recorded_sector}")));
    }
    let stored = u32_at(sector, 16).unwrap_or(0);
    let computed = crc(sector.get(20..).unwrap_or_default());
    if stored != computed {
        return Err(bad(format!(
            "checksum {stored:#010x} does not match contents ({computed:#010x})"
        )));
    }
    if sector.get(24..32) != Some(&LVM2_LABEL[..]) {
        return Err(Error::Unsupported(format!(
            "label type {:?} is not LVM2 001",
            String::from_utf8_lossy(sector.get(24..32).unwrap_or_default())
        )));
    }
    let off = u32_at(sector, 20).unwrap_or(u32::MAX) as usize;
    if !(LABEL_HEADER_SIZE..=LABEL_SIZE - PV_HEADER_SIZE).contains(&off) {
        return Err(bad(format!("pv_header offset {off} out of range")));
    }
    let uuid_bytes = sector.get(off..off + ID_LEN).unwrap_or_default();
    // LVM cannot use a PV whose id it cannot read: damage, never a guess.
    let pv_uuid = PvId::parse(&String::from_utf8_lossy(uuid_bytes))
        .map_err(|e| bad(format!("PV uuid: {e}")))?;
    let device_size = u64_at(sector, off + ID_LEN).unwrap_or(0);
    let (data_areas, at) = read_locns(sector, off + PV_HEADER_SIZE, "data area")?;
    let (metadata_areas, at) = read_locns(sector, at, "metadata area")?;
    let extension = match (u32_at(sector, at), u32_at(sector, at + 4)) {
        (Some(version), Some(flags)) if version != 0 => {
            let bootloader_areas = if version >= 1 {
                read_locns(sector, at + 8, "bootloader area")?.0
            } else {
                Vec::new()
            };
            Some(PvHeaderExtension {
                version,
                flags,
                bootloader_areas,
            })
        }
        _ => None,
    };
    Ok(PvLabel {
        sector: n,
        pv_uuid,
        device_size: Bytes(u128::from(device_size)),
        data_areas,
        metadata_areas,
        extension,
    })
}

impl PvLabel {
    /// The PV id (written with dashes, as in metadata text and `pvs`).
    pub fn pv_id(&self) -> PvId {
        self.pv_uuid
    }

    /// Serialises this label into its 512-byte sector with a fresh checksum.
    ///
    /// ```
    /// use lvsnap::lvm::label::{parse_label_sector, DiskLocn, PvLabel};
    /// use lvsnap::units::Bytes;
    /// let l = PvLabel {
    ///     sector: 1,
    ///     pv_uuid: "1EP5Yk7MNl5TKmEFLxPtJsndAJeenL1m".parse().unwrap(),
    ///     device_size: Bytes(64 << 20),
    ///     data_areas: vec![DiskLocn { offset: Bytes(1 << 20), size: Bytes(0) }],
    ///     metadata_areas: vec![DiskLocn { offset: Bytes(4096), size: Bytes(1044480) }],
    ///     extension: None,
    /// };
    /// assert_eq!(parse_label_sector(&l.to_sector().unwrap(), 1).unwrap(), l);
    /// ```
    pub fn to_sector(&self) -> Result<[u8; LABEL_SIZE]> {
        let mut s = [0u8; LABEL_SIZE];
        let uuid = self.pv_uuid.as_str().as_bytes();
        if uuid.len() != ID_LEN {
            return Err(Error::InvalidArgument(format!(
                "PV uuid {:?} is not {ID_LEN} characters",
                self.pv_uuid
            )));
        }
        let ext_len = self
            .extension
            .as_ref()
            .map_or(0, |e| 8 + (e.bootloader_areas.len() + 1) * DISK_LOCN_SIZE);
        let need = LABEL_HEADER_SIZE
            + PV_HEADER_SIZE
            + (self.data_areas.len() + self.metadata_areas.len() + 2) * DISK_LOCN_SIZE
            + ext_len;
        if need > LABEL_SIZE {
            return Err(Error::InvalidArgument(format!(
                "PV header needs {need} bytes, more than a sector"
            )));
        }
        s[..8].copy_from_slice(LABEL_ID);
        s[8..16].copy_from_slice(&self.sector.to_le_bytes());
        s[20..24].copy_from_slice(&(LABEL_HEADER_SIZE as u32).to_le_bytes());
        s[24..32].copy_from_slice(LVM2_LABEL);
        s[32..64].copy_from_slice(uuid);
        s[64..72].copy_from_slice(&to_u64(self.device_size)?.to_le_bytes());
        let mut at = LABEL_HEADER_SIZE + PV_HEADER_SIZE;
        put_locns(&mut s, &mut at, &self.data_areas)?;
        put_locns(&mut s, &mut at, &self.metadata_areas)?;
        if let Some(e) = &self.extension {
            s[at..at + 4].copy_from_slice(&e.version.to_le_bytes());
            s[at + 4..at + 8].copy_from_slice(&e.flags.to_le_bytes());
            at += 8;
            put_locns(&mut s, &mut at, &e.bootloader_areas)?;
        }
        let c = crc(&s[20..]);
        s[16..20].copy_from_slice(&c.to_le_bytes());
        Ok(s)
    }
}

pub(crate) fn to_u64(b: Bytes) -> Result<u64> {
    u64::try_from(*b).map_err(|_| Error::InvalidArgument(format!("{b} does not fit in 64 bits")))
}

/// Writes a `disk_locn` list and its terminator at `*at` (the caller checked
/// that it fits in the sector).
fn put_locns(s: &mut [u8; LABEL_SIZE], at: &mut usize, list: &[DiskLocn]) -> Result<()> {
    for l in list {
        if *l.offset == 0 {
            return Err(Error::InvalidArgument(
                "an area at offset 0 would end the list".into(),
            ));
        }
        s[*at..*at + 8].copy_from_slice(&to_u64(l.offset)?.to_le_bytes());
        s[*at + 8..*at + 16].copy_from_slice(&to_u64(l.size)?.to_le_bytes());
        *at += DISK_LOCN_SIZE;
    }
    *at += DISK_LOCN_SIZE;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sector 1 of a PV that `pvcreate` made (in the test VM).
    const REAL: &[u8; 512] = include_bytes!("../../tests/fixtures/label-sector.bin");

    fn real_head() -> Vec<u8> {
        let mut head = vec![0u8; 2048];
        head[512..1024].copy_from_slice(REAL);
        head
    }

    #[test]
    fn parses_a_label_pvcreate_wrote() {
        let l = find_label(&real_head()).unwrap().unwrap();
        assert_eq!(l.sector, 1);
        assert_eq!(l.pv_uuid.as_str().len(), 32);
        assert_eq!(l.device_size, Bytes(64 << 20));
        assert_eq!(
            l.data_areas,
            [DiskLocn {
                offset: Bytes(1 << 20),
                size: Bytes(0)
            }]
        );
        assert_eq!(
            l.metadata_areas,
            [DiskLocn {
                offset: Bytes(4096),
                size: Bytes(1_044_480)
            }]
        );
        let e = l.extension.as_ref().unwrap();
        assert_eq!((e.version, e.flags), (2, PV_EXT_USED));
        assert!(e.bootloader_areas.is_empty());
        // Our writer reproduces LVM's sector byte for byte.
        assert_eq!(&l.to_sector().unwrap(), REAL);
    }

    #[test]
    fn rejects_bad_labels_clearly() {
        let kind = |s: &[u8]| find_label(s).unwrap_err().kind();
        let mut h = real_head();
        h[512 + 300] ^= 1;
        assert_eq!(kind(&h), crate::ErrorKind::Corrupt);
        assert!(find_label(&h).unwrap_err().to_string().contains("checksum"));
        // A label recording another sector is not a label here.
        let mut h = real_head();
        h[512 + 8] = 2;
        assert_eq!(find_label(&h).unwrap(), None);
        // Another label type.
        let mut h = real_head();
        h[512 + 31] = b'2';
        let c = crc(&h[512 + 20..1024]);
        h[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
        assert_eq!(kind(&h), crate::ErrorKind::Unsupported);
        // pv_header offset past the sector.
        let mut h = real_head();
        h[512 + 20..512 + 24].copy_from_slice(&500u32.to_le_bytes());
        let c = crc(&h[512 + 20..1024]);
        h[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
        assert_eq!(kind(&h), crate::ErrorKind::Corrupt);
        // Truncated input: no label, no panic.
        assert_eq!(find_label(&real_head()[..700]).unwrap(), None);
        assert!(parse_label_sector(&REAL[..100], 1).is_err());
    }

    #[test]
    fn an_id_lvm_cannot_read_is_corrupt() {
        for bad in [b'_', b'-', 0xff, 0] {
            let mut h = real_head();
            h[512 + 40] = bad;
            let c = crc(&h[512 + 20..1024]);
            h[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
            let e = find_label(&h).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:#x}");
            assert!(e.to_string().contains("PV uuid"), "{e}");
        }
    }

    #[test]
    fn area_lists_without_terminator_are_corrupt() {
        let mut s = [0u8; 512];
        s[..8].copy_from_slice(LABEL_ID);
        s[8] = 1;
        s[20] = 32;
        s[24..32].copy_from_slice(LVM2_LABEL);
        s[32..64].copy_from_slice(&[b'a'; 32]);
        for at in (72..512).step_by(8) {
            s[at] = 1; // every u64 non-zero: no list ends
        }
        let c = crc(&s[20..]);
        s[16..20].copy_from_slice(&c.to_le_bytes());
        let e = parse_label_sector(&s, 1).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
    }

    proptest! {
        #[test]
        fn mutated_labels_never_panic(
            flips in proptest::collection::vec((0usize..512, any::<u8>()), 1..8),
            fix_crc in any::<bool>(),
        ) {
            let mut h = real_head();
            for (at, b) in flips {
                h[512 + at] = b;
            }
            if fix_crc {
                let c = crc(&h[512 + 20..1024]);
                h[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
            }
            if let Ok(Some(l)) = find_label(&h) {
                // Whatever parses, re-serialises into something that parses the same.
                if let Ok(s) = l.to_sector() {
                    prop_assert_eq!(parse_label_sector(&s, l.sector).unwrap(), l);
                }
            }
        }

        #[test]
        fn random_sectors_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2100)) {
            let _ = find_label(&bytes);
            let _ = parse_label_sector(&bytes, 0);
        }
    }
}
