//! Thin edits: thin LVs and snapshots, their pool messages, thin rollback.

use super::*;

/// LVM2's largest thin device id (`DM_THIN_MAX_DEVICE_ID`, 24 bits).
pub(super) const MAX_THIN_DEVICE_ID: u32 = (1 << 24) - 1;

/// A thin LV or thin snapshot for [`Metadata::add_thin_lv`].
#[derive(Debug, Clone, Copy)]
pub struct NewThinLv<'a> {
    /// Its name.
    pub name: &'a str,
    /// The thin pool LV.
    pub pool: &'a str,
    /// Its size.
    pub extents: Extents,
    /// The thin LV it is a snapshot of.
    pub origin: Option<&'a str>,
    /// Flag it `ACTIVATION_SKIP`, as LVM does thin snapshots.
    pub activation_skip: bool,
    /// Other thin LVs of the pool were added by this same edit: its
    /// message joins theirs, under the pool's one transaction id step
    /// (several thin snapshots in one commit), and it records the
    /// transaction id they all were made in.
    pub batched: bool,
}

impl Metadata {
    pub(super) fn pool_segment(&self, pool: &str) -> Result<(u64, Vec<ThinMessage>)> {
        let lv = self
            .vg
            .lv(pool)
            .ok_or_else(|| ModelError::NotFound(pool.into()))?;
        match lv.segments.first().map(|s| &s.kind) {
            Some(SegmentKind::ThinPool {
                transaction_id,
                messages,
                ..
            }) if lv.segments.len() == 1 => Ok((*transaction_id, messages.clone())),
            _ => Err(ModelError::Refused(format!("{pool} is not a thin pool"))),
        }
    }

    /// Adds thin LV `lv.name` of `lv.extents` in `lv.pool`, or a thin
    /// snapshot of `lv.origin`, as LVM's first commit of `lvcreate` writes
    /// it: a `thin` segment with the next free device id and the pool's
    /// transaction id, and in the pool a queued `create` message with
    /// `transaction_id + 1`. After the kernel pool has the device,
    /// [`Metadata::clear_thin_messages`] gives the final metadata. Returns
    /// the device id.
    pub fn add_thin_lv(&mut self, lv: &NewThinLv<'_>, creation: &Creation) -> Result<u32> {
        let &NewThinLv {
            name,
            pool,
            extents,
            origin,
            activation_skip,
            batched,
        } = lv;
        self.check_new_lv_name(name)?;
        let (mut tid, messages) = self.pool_segment(pool)?;
        if !messages.is_empty() {
            if !batched {
                return Err(ModelError::Refused(format!(
                    "Thin pool {pool} has queued messages: finish or clear them first"
                )));
            }
            tid = tid.checked_sub(1).ok_or_else(|| {
                ModelError::Refused(format!("thin pool {pool}: transaction_id 0 with messages"))
            })?;
        }
        if let Some(o) = origin {
            if self.vg.thin_pool_of(o) != Some(pool) {
                return Err(ModelError::Refused(format!(
                    "{o} is not a thin volume of pool {pool}"
                )));
            }
        }
        if extents.0 == 0 {
            return Err(ModelError::Refused("thin LV of no extents".into()));
        }
        let device_id = self
            .vg
            .lvs
            .iter()
            .filter_map(|l| l.thin().filter(|t| t.0 == pool).map(|t| t.1))
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .filter(|&n| n <= MAX_THIN_DEVICE_ID)
            .ok_or(ModelError::NoSpace { needed: 1, free: 0 })?;
        let flags = if activation_skip {
            LvFlags::ACTIVATION_SKIP
        } else {
            LvFlags::empty()
        };
        let mut lv = lv_head(
            name,
            &LvId::random().map_err(ModelError::Id)?,
            LvFlags::READ | LvFlags::WRITE | LvFlags::VISIBLE,
            flags,
            creation,
            1,
        );
        let mut seg = segment_head(1, 0, extents.as_u64(), "thin");
        let b = &mut seg.body;
        b.push("thin_pool", Value::str(pool));
        b.push("transaction_id", uint(tid));
        b.push("device_id", uint(device_id.into()));
        if let Some(o) = origin {
            b.push("origin", Value::str(o));
        }
        lv.body.entries.push(Entry::Section(seg));
        self.change(&[pool], |doc| {
            insert_lv(doc, lv)?;
            queue_thin_message(doc, pool, "create", Value::str(name))
        })?;
        Ok(device_id)
    }

    /// Records a rollback of thin LV `origin` to its thin snapshot `snap`
    /// with the pool's work queued, as LVM queues it (one transaction:
    /// `transaction_id` + 1 and `messageN` entries LVM replays itself if the
    /// kernel pool never got them): `origin` keeps its name and id but takes
    /// `snap`'s thin device; with `keep`, `snap` gets a new device that is a
    /// snapshot of that one (`create = snap`, which replays as `create_snap
    /// <new> <origin's id>`), else its LV goes (thin snapshots of it lose
    /// their `origin`, as `lvremove` leaves them); the origin's old device
    /// is queued for `delete`. Other snapshots of `origin` keep their own
    /// devices and their `origin` link. Call [`Metadata::clear_thin_messages`]
    /// once the kernel pool has done it.
    pub fn thin_rollback(&mut self, origin: &str, snap: &str, keep: bool) -> Result<ThinRollback> {
        let s = self
            .vg
            .lv(snap)
            .ok_or_else(|| ModelError::NotFound(snap.into()))?;
        let (pool, snap_id) = s
            .thin()
            .map(|(p, id)| (p.to_owned(), id))
            .ok_or_else(|| ModelError::Refused(format!("{snap} is not a thin volume")))?;
        if s.thin_origin() != Some(origin) {
            return Err(ModelError::Refused(format!(
                "{snap} is not a thin snapshot of {origin}"
            )));
        }
        let origin_id = self
            .vg
            .lv(origin)
            .and_then(Lv::thin)
            .filter(|(p, _)| *p == pool)
            .map(|(_, id)| id)
            .ok_or_else(|| {
                ModelError::Refused(format!("{origin} is not a thin volume of {pool}"))
            })?;
        let (_, messages) = self.pool_segment(&pool)?;
        if !messages.is_empty() {
            return Err(ModelError::Refused(format!(
                "Thin pool {pool} has queued messages: finish or clear them first"
            )));
        }
        let new_id = if keep {
            let high = self
                .vg
                .lvs
                .iter()
                .filter_map(|l| l.thin().filter(|t| t.0 == pool).map(|t| t.1))
                .max()
                .unwrap_or(0);
            let n = high
                .checked_add(1)
                .filter(|&n| n <= MAX_THIN_DEVICE_ID)
                .ok_or(ModelError::NoSpace { needed: 1, free: 0 })?;
            Some(n)
        } else {
            None
        };
        let children: Vec<String> = if keep {
            Vec::new()
        } else {
            self.vg
                .lvs
                .iter()
                .filter(|l| l.thin_origin() == Some(snap))
                .map(|l| l.name.clone())
                .collect()
        };
        let mut touched: Vec<&str> = vec![origin, snap, &pool];
        touched.extend(children.iter().map(String::as_str));
        self.change(&touched, |doc| {
            lv_section_mut(doc, origin)?
                .body
                .section_mut("segment1")
                .ok_or_else(|| invalid(format!("{origin} without segment1")))?
                .body
                .set("device_id", uint(snap_id.into()));
            match new_id {
                Some(n) => {
                    lv_section_mut(doc, snap)?
                        .body
                        .section_mut("segment1")
                        .ok_or_else(|| invalid(format!("{snap} without segment1")))?
                        .body
                        .set("device_id", uint(n.into()));
                    queue_thin_message(doc, &pool, "create", Value::str(snap))?;
                }
                None => {
                    lvs_body_mut(doc)
                        .ok_or_else(|| invalid("no logical_volumes section"))?
                        .remove_section(snap);
                    for c in &children {
                        if let Some(seg) = lv_section_mut(doc, c)?.body.section_mut("segment1") {
                            seg.body.remove("origin");
                        }
                    }
                }
            }
            queue_thin_message(doc, &pool, "delete", uint(origin_id.into()))
        })?;
        Ok(ThinRollback {
            pool,
            old_origin_id: origin_id,
            snap_id,
            new_snap_id: new_id,
        })
    }

    /// A thin snapshot of thin LV `origin` (same size, same pool).
    pub fn add_thin_snapshot(
        &mut self,
        origin: &str,
        name: &str,
        activation_skip: bool,
        creation: &Creation,
    ) -> Result<u32> {
        let o = self
            .vg
            .lv(origin)
            .ok_or_else(|| ModelError::NotFound(origin.into()))?;
        let pool = o
            .thin()
            .map(|t| t.0.to_owned())
            .ok_or_else(|| ModelError::Refused(format!("{origin} is not a thin volume")))?;
        let extents = o.extents();
        let lv = NewThinLv {
            name,
            pool: &pool,
            extents,
            origin: Some(origin),
            activation_skip,
            batched: false,
        };
        self.add_thin_lv(&lv, creation)
    }

    /// Drops the messages queued in thin pool `pool` (LVM's second commit
    /// once the kernel pool carried them out).
    pub fn clear_thin_messages(&mut self, pool: &str) -> Result<()> {
        self.writable()?;
        self.pool_segment(pool)?;
        self.change(&[pool], |doc| {
            let seg = pool_segment_mut(doc, pool)?;
            seg.entries
                .retain(|e| !matches!(e, Entry::Section(s) if s.name.starts_with("message")));
            while matches!(seg.entries.last(), Some(Entry::Blank)) {
                seg.entries.pop();
            }
            Ok(())
        })
    }
}
