//! Growing a COW snapshot's exception store, as `lvextend` of a snapshot
//! does: the primitive auto-extension uses.

use super::Error as SnapError;
use super::cow_max_extents;
use super::vg::VolumeGroup;
use crate::activate::{CowDevices, Layer};
use crate::dm::DmControl;
use crate::error::{Error, Result};
use crate::units::{Bytes, Extents};

/// How much to grow a store: to a size, or by one (`lvextend -L N` and
/// `-L +N`). Both round up to whole extents, as LVM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendSize {
    /// To this size.
    To(Bytes),
    /// By this much.
    By(Bytes),
    /// By this many percent of the store's current size, rounded up to
    /// whole extents (`lvextend -l +N%LV`, what `--use-policies` asks).
    ByPercent(u32),
}

impl std::str::FromStr for ExtendSize {
    type Err = Error;

    /// `16M` is a size to grow to, `+4M` an amount to grow by (as
    /// [`parse_size`](super::parse_size) reads them).
    ///
    /// ```
    /// use lvsnap::snapshot::ExtendSize;
    /// use lvsnap::units::Bytes;
    /// assert_eq!("+4M".parse::<ExtendSize>().unwrap(), ExtendSize::By(Bytes(4 << 20)));
    /// assert_eq!("1G".parse::<ExtendSize>().unwrap(), ExtendSize::To(Bytes(1 << 30)));
    /// assert!("-4M".parse::<ExtendSize>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<ExtendSize> {
        match s.trim().strip_prefix('+') {
            Some(by) => Ok(ExtendSize::By(super::parse_size(by)?)),
            None => Ok(ExtendSize::To(super::parse_size(s)?)),
        }
    }
}

/// What [`VolumeGroup::extend_snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    /// The store's size before.
    pub old_size: Bytes,
    /// Its size now (equal to `old_size` when it was at its cap already).
    pub size: Bytes,
    /// The request went past the largest store the origin can fill
    /// (LVM's "Reached maximum COW size"), so the store got that size.
    pub capped: bool,
}

impl VolumeGroup {
    /// Grows COW snapshot `name`'s store as `lvextend` of the snapshot
    /// does: the new size rounded up to whole extents and capped at the
    /// largest store the origin can ever fill ([`cow_max_extents`]); the new
    /// extents placed as LVM places them; live devices swapped to the grown
    /// table while the origin tree is suspended, so the snapshot stays
    /// intact. At the cap already, nothing changes and it succeeds, as LVM.
    ///
    /// Refused before anything changes: a size not above the current one,
    /// more than the free extents, a thin snapshot (it has no store), an LV
    /// that is not a snapshot, a merging snapshot.
    ///
    /// ```no_run
    /// use lvsnap::snapshot::{ExtendSize, VolumeGroup};
    /// use lvsnap::units::Bytes;
    /// let vg = VolumeGroup::open("vg0")?;
    /// let e = vg.extend_snapshot("snapcontent-1", ExtendSize::By(Bytes(1 << 30)))?;
    /// println!("{} -> {}", e.old_size, e.size);
    /// # Ok::<(), lvsnap::Error>(())
    /// ```
    pub fn extend_snapshot(&self, name: &str, size: ExtendSize) -> Result<Extended> {
        let full = format!("{}/{name}", self.name());
        let mut s = self.write_session()?;
        let vg = s.md.vg();
        let Some(snap) = vg.cow_snapshot(name) else {
            return Err(match vg.lv(name) {
                Some(lv) if lv.thin_origin().is_some() => SnapError::Unsupported(format!(
                    "{full} is a thin snapshot: it has no COW store to extend"
                )),
                Some(_) => SnapError::not_a_snapshot(vg, name),
                None => SnapError::NotFound(format!("snapshot {full}")),
            }
            .into());
        };
        if snap.merging {
            return Err(SnapError::Busy(format!(
                "{full} is merging into {}: its store cannot be resized",
                snap.origin
            ))
            .into());
        }
        let ext = vg.extent_size.sectors();
        let (cow_lv, origin) = match (vg.lv(name), vg.lv(&snap.origin)) {
            (Some(c), Some(o)) => (c, o),
            _ => return Err(SnapError::NotFound(format!("origin of {full}")).into()),
        };
        let cur = cow_lv.extents();
        let ext_bytes = *ext.bytes();
        let bytes = |e: Extents| Bytes(u128::from(e.0) * ext_bytes);
        let to_extents = |b: Bytes| {
            u64::try_from(b.0.div_ceil(ext_bytes))
                .map_err(|_| SnapError::InvalidArgument(format!("size {b} is too large")))
        };
        let wanted = match size {
            ExtendSize::To(b) => to_extents(b)?,
            ExtendSize::By(b) => cur
                .as_u64()
                .checked_add(to_extents(b)?)
                .ok_or_else(|| SnapError::InvalidArgument(format!("size +{b} is too large")))?,
            // LVM's percent_of_extents, rounding up.
            ExtendSize::ByPercent(p) => u64::from(p)
                .checked_mul(cur.as_u64())
                .and_then(|n| n.checked_add(99))
                .map(|n| n / 100)
                .and_then(|n| cur.as_u64().checked_add(n))
                .ok_or_else(|| SnapError::InvalidArgument(format!("+{p}% is too large")))?,
        };
        let origin_size = origin
            .extents()
            .sectors(ext)
            .ok_or_else(|| SnapError::InvalidArgument(format!("origin of {full} is too large")))?;
        let max = cow_max_extents(origin_size, snap.chunk_size, ext, false);
        let capped = wanted > max.as_u64();
        let want = wanted.min(max.as_u64());
        if want <= cur.as_u64() {
            if capped {
                log::info!("{full}: reached maximum COW size ({} extents)", max.0);
                return Ok(Extended {
                    old_size: bytes(cur),
                    size: bytes(cur),
                    capped,
                });
            }
            let why = if want == cur.as_u64() {
                format!(
                    "New size ({want} extents) matches existing size ({} extents)",
                    cur.0
                )
            } else {
                format!(
                    "New size given ({want} extents) not larger than existing size ({} extents)",
                    cur.0
                )
            };
            return Err(SnapError::InvalidArgument(format!("{full}: {why}")).into());
        }
        let need = want - cur.as_u64();
        // Both within max, an extent count of LVM's uint32_t.
        let too_large =
            || SnapError::InvalidArgument(format!("{full}: {want} extents is too large"));
        let (need_e, want_e) = (
            Extents::from_u64(need).ok_or_else(too_large)?,
            Extents::from_u64(want).ok_or_else(too_large)?,
        );
        let free = s.md.free_space().total();
        if need > free {
            return Err(SnapError::NoSpace(format!(
                "Insufficient free space: {need} extents needed, but only {free} available \
                 in volume group \"{}\"",
                self.name()
            ))
            .into());
        }
        s.md.extend_lv(name, need_e)?;
        let what = format!("extend snapshot {full} to {want} extents");
        let done = Extended {
            old_size: bytes(cur),
            size: bytes(want_e),
            capped,
        };
        let cow_dev = self.dm_name(name, Some(Layer::Cow))?;
        let live = match DmControl::shared() {
            Ok(dm) if dm.exists(&cow_dev)? => Some(dm),
            _ => None,
        };
        let Some(dm) = live else {
            s.precommit(&what)?;
            if let Err(e) = s.commit() {
                s.revert();
                return Err(e);
            }
            return Ok(done);
        };
        let grown = {
            let lv =
                s.md.vg()
                    .lv(name)
                    .ok_or_else(|| SnapError::NotFound(format!("COW LV {full}")))?;
            s.lv_table(lv)?
        };
        let origin_dev = self.dm_name(&snap.origin, None)?;
        let snap_dev = self.dm_name(name, None)?;
        let devs = CowDevices::open(&dm, &origin_dev, &snap_dev)?;
        s.precommit(&what)?;
        let mut committed = false;
        let r = devs.grow_cow_then(&dm, &grown, || {
            s.commit()?;
            committed = true;
            Ok::<(), Error>(())
        });
        if !committed {
            s.revert();
        }
        r?;
        Ok(done)
    }
}
