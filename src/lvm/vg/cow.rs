//! COW snapshot edits: a snapshot pair, and a merge started and finished.

use super::*;

impl Metadata {
    /// Adds a COW snapshot of `origin` as `lvcreate -s` writes it: the COW LV
    /// `name` over `cow_extents` newly allocated extents (status READ/WRITE,
    /// or READ when `read_only`, not VISIBLE) and a `snapshotN` LV (N one
    /// above the highest in use) with one `snapshot` segment.
    /// Returns the `snapshotN` name.
    pub fn add_cow_snapshot(
        &mut self,
        origin: &str,
        name: &str,
        cow_extents: Extents,
        chunk_size: Sectors,
        read_only: bool,
        creation: &Creation,
    ) -> Result<String> {
        self.check_new_lv_name(name)?;
        let o = self
            .vg
            .lv(origin)
            .ok_or_else(|| ModelError::NotFound(origin.into()))?;
        if cow_extents.0 == 0 {
            return Err(ModelError::Refused(
                "A snapshot needs at least one extent of COW space".into(),
            ));
        }
        if !self.vg.is_visible(origin) && self.vg.cow_snapshot(origin).is_none() {
            return Err(ModelError::Refused(format!(
                "Snapshots of hidden LV {origin} are not supported"
            )));
        }
        if self.vg.cow_snapshot(origin).is_some() {
            return Err(ModelError::Refused(format!(
                "Snapshots of snapshots are not supported: {origin} is a snapshot"
            )));
        }
        if !o
            .segments
            .iter()
            .all(|s| matches!(s.kind, SegmentKind::Striped { .. }))
        {
            return Err(ModelError::Unsupported(format!(
                "COW snapshot of {origin}, which is not a linear or striped LV"
            )));
        }
        if self.vg.snapshots_of(origin).iter().any(|s| s.merging) {
            return Err(ModelError::Refused(format!(
                "Cannot create snapshot of origin {origin} while a snapshot is merging into it"
            )));
        }
        if crate::dm::ChunkSize::new(chunk_size).is_err() {
            return Err(ModelError::Refused(format!(
                "Chunk size {} sectors must be a power of 2 from 4 KiB to 512 KiB",
                chunk_size.0
            )));
        }
        let origin_extents = o.extents();
        let areas = self.allocate(cow_extents)?;
        let status = if read_only {
            LvFlags::READ
        } else {
            LvFlags::READ | LvFlags::WRITE
        };
        let cow = self.striped_lv_section(
            name,
            &LvId::random().map_err(ModelError::Id)?,
            status,
            LvFlags::empty(),
            creation,
            &areas,
        );
        let snap_name = self.next_snapshot_name();
        let mut snap = lv_head(
            &snap_name,
            &LvId::random().map_err(ModelError::Id)?,
            LvFlags::READ | LvFlags::WRITE | LvFlags::VISIBLE,
            LvFlags::empty(),
            creation,
            1,
        );
        let mut seg = segment_head(1, 0, origin_extents.as_u64(), "snapshot");
        let b = &mut seg.body;
        b.push("chunk_size", uint(chunk_size.0));
        b.push("origin", Value::str(origin));
        b.push("cow_store", Value::str(name));
        snap.body.entries.push(Entry::Section(seg));
        self.change(&[], |doc| {
            insert_lv(doc, cow)?;
            insert_lv(doc, snap)
        })?;
        Ok(snap_name)
    }

    /// `snapshotN` with N one above the highest in use (LVM's
    /// `generate_lv_name`, which also counts historical LVs).
    pub(super) fn next_snapshot_name(&self) -> String {
        let hist = self
            .doc
            .vg_section()
            .and_then(|s| s.body.section("historical_logical_volumes"))
            .into_iter()
            .flat_map(|s| s.body.sections().map(|s| s.name.as_str()));
        let high = self
            .vg
            .lvs
            .iter()
            .map(|l| l.name.as_str())
            .chain(hist)
            .filter_map(|n| scanf_number(n.strip_prefix("snapshot")?))
            .max();
        format!("snapshot{}", high.map_or(0, |h| h + 1))
    }

    /// Records a merge of COW snapshot `name` into its origin, as
    /// `lvconvert --merge` does before (or instead of, when the origin is
    /// open) starting it: the `snapshotN` LV loses VISIBLE and `cow_store`
    /// becomes `merging_store`.
    pub fn start_merge(&mut self, name: &str) -> Result<()> {
        self.writable()?;
        let snap = self
            .vg
            .cow_snapshot(name)
            .ok_or_else(|| ModelError::Refused(format!("\"{name}\" is not a COW snapshot")))?;
        if snap.merging {
            return Ok(());
        }
        if self.vg.snapshots_of(&snap.origin).iter().any(|s| s.merging) {
            return Err(ModelError::Refused(format!(
                "Cannot merge snapshot {name} into the origin {} with merging snapshot",
                snap.origin
            )));
        }
        if self
            .vg
            .lv(&snap.origin)
            .is_some_and(|o| !o.has_status(LvFlags::WRITE))
        {
            return Err(ModelError::Refused(format!(
                "Unable to merge snapshot {name} into read-only origin {}",
                snap.origin
            )));
        }
        let status = self
            .vg
            .lv(&snap.snapshot_lv)
            .ok_or_else(|| ModelError::NotFound(snap.snapshot_lv.clone()))?
            .status
            .without(LvFlags::VISIBLE);
        self.change(&[&snap.snapshot_lv], |doc| {
            let lv = lv_section_mut(doc, &snap.snapshot_lv)?;
            lv.body.set("status", status.to_value());
            let seg = lv
                .body
                .section_mut("segment1")
                .ok_or_else(|| invalid("snapshot LV without segment1"))?;
            rename_key(&mut seg.body, "cow_store", "merging_store");
            Ok(())
        })
    }

    /// Drops COW snapshot `name` once its merge into the origin is complete,
    /// as LVM does when it finishes a merge: the origin stays as a plain LV.
    pub fn finish_merge(&mut self, name: &str) -> Result<()> {
        match self.vg.cow_snapshot(name) {
            Some(s) if s.merging => self.remove_lv_unchecked(name),
            _ => Err(ModelError::Refused(format!(
                "\"{name}\" is not a merging snapshot"
            ))),
        }
    }
}
