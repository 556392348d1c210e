//! Raw I/O at an LV's first extent, straight on its PV: a new COW store's
//! header is zeroed (and an inactive one's read) before any device maps it.

use std::path::PathBuf;

use super::disk::VgDisk;
use super::error::{Error, Result};
use super::vg::{Lv, SegmentKind, Vg};
use crate::blockio;
use crate::units::{SectorBytes, Sectors};

impl VgDisk {
    /// Writes zeros over the first `len` bytes of LV `lv` of `vg` (the
    /// metadata this disk holds), straight to its PV, and syncs them.
    pub fn zero_lv_start(&self, vg: &Vg, lv: &Lv, len: usize) -> Result<()> {
        let (path, off) = self.lv_start(vg, lv)?;
        let what = || format!("zero the start of LV {} on {}", lv.name, path.display());
        let f = blockio::open(&path, true).map_err(|e| Error::io(what(), e))?;
        let (_, block) = blockio::geometry(&f).map_err(|e| Error::io(what(), e))?;
        blockio::write_at(&f, &vec![0u8; len], off, block)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(what(), e))
    }

    /// Reads the first 512 bytes of LV `lv` of `vg` straight from its PV.
    pub fn read_lv_start(&self, vg: &Vg, lv: &Lv) -> Result<Vec<u8>> {
        let (path, off) = self.lv_start(vg, lv)?;
        let what = || format!("read the start of LV {} on {}", lv.name, path.display());
        let f = blockio::open(&path, false).map_err(|e| Error::io(what(), e))?;
        let (_, block) = blockio::geometry(&f).map_err(|e| Error::io(what(), e))?;
        let mut head = vec![0u8; 512];
        blockio::read_at(&f, &mut head, off, block).map_err(|e| Error::io(what(), e))?;
        Ok(head)
    }

    /// The PV device and byte offset where LV `lv` starts.
    fn lv_start(&self, vg: &Vg, lv: &Lv) -> Result<(PathBuf, u64)> {
        let first = lv.segments.first().and_then(|s| match &s.kind {
            SegmentKind::Striped { stripes, .. } => stripes.first(),
            _ => None,
        });
        let Some(stripe) = first else {
            return Err(Error::Unsupported(format!(
                "LV {} has no linear start",
                lv.name
            )));
        };
        let not_found = || Error::NotFound(format!("PV {} of LV {}", stripe.pv, lv.name));
        let pv = vg
            .pvs
            .iter()
            .find(|p| p.key == stripe.pv)
            .ok_or_else(not_found)?;
        let found = self
            .pvs()
            .iter()
            .find(|p| p.pv_id == pv.id)
            .ok_or_else(not_found)?;
        let off = stripe
            .start
            .sectors(vg.extent_size)
            .and_then(|o| Sectors((*o).checked_add(*pv.pe_start)?).bytes_u64())
            .ok_or_else(|| Error::Unsupported(format!("LV {} is too large", lv.name)))?;
        Ok((found.path.clone(), off))
    }
}
