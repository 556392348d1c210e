//! [`Metadata`]: the tree and its view, and how every change is made:
//! checked, applied to the tree, the view rebuilt, undone on failure.

use super::*;

/// LV sections (with their typed LVs) moved out of the tree during an edit.
#[derive(Default)]
pub(super) struct Parked {
    /// `(index among the LV sections, section, LV)`, in index order.
    pub(super) lvs: Vec<(usize, Section, Lv)>,
    /// The typed LVs of the sections left in place, with their indices.
    pub(super) kept: Vec<(usize, Lv)>,
}

/// A volume group's metadata: the lossless tree plus its typed view.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(super) doc: Document,
    pub(super) vg: Vg,
    generation: u64,
    /// Why LVM2 would refuse the metadata as read, if it would: every
    /// change is refused then.
    damage: Option<String>,
}

/// A number no other metadata edit has had, in this process.
pub(super) fn new_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Metadata {
    /// Parses a metadata text (as found in a metadata area or a backup file).
    ///
    /// ```
    /// use lvsnap::lvm::vg::Metadata;
    /// let text = std::fs::read_to_string("tests/fixtures/cow.vg").unwrap();
    /// let md = Metadata::parse(&text)?;
    /// let snap = md.vg().cow_snapshot("snap1").unwrap();
    /// assert_eq!(snap.origin, "origin");
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Metadata> {
        Metadata::from_document(Document::parse(text)?)
    }

    /// Builds the typed view over a parsed tree.
    pub fn from_document(doc: Document) -> Result<Metadata> {
        let vg = parse_vg(&doc)?;
        let damage = check::problem(&vg, doc.vg_section().map(|s| &s.body));
        Ok(Metadata {
            doc,
            vg,
            generation: new_generation(),
            damage,
        })
    }

    /// Why LVM2 would refuse this metadata as it was read (a segment on a
    /// PV the VG does not have, extents beyond a PV or used twice, a name or
    /// id used twice, a reference to an LV that is not there, values out
    /// of LVM's ranges), as one line; `None` if it passes. Read-only
    /// callers can still use the view; every change is refused.
    ///
    /// ```
    /// use lvsnap::lvm::vg::{Creation, Metadata};
    /// use lvsnap::units::Extents;
    /// let text = std::fs::read_to_string("tests/fixtures/linear.vg").unwrap();
    /// assert_eq!(Metadata::parse(&text)?.damage(), None);
    /// let bad = text.replacen("\"pv0\", 0", "\"pv7\", 0", 1);
    /// let mut md = Metadata::parse(&bad)?;
    /// assert!(md.damage().unwrap().contains("pv7"));
    /// let e = md.add_linear_lv("new", Extents(1), &Creation::now()).unwrap_err();
    /// assert_eq!(e.kind(), lvsnap::ErrorKind::Corrupt);
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// Checks the metadata as it is now (after any changes) as LVM2 does
    /// before it writes: the error names the first problem.
    pub fn validate(&self) -> Result<()> {
        match check::problem(&self.vg, self.doc.vg_section().map(|s| &s.body)) {
            None => Ok(()),
            Some(problem) => Err(self.damaged(problem)),
        }
    }

    pub(super) fn damaged(&self, problem: String) -> ModelError {
        ModelError::Damaged {
            vg: self.vg.name.clone(),
            problem,
        }
    }

    /// Refuses any change to metadata that was damaged when read.
    pub(super) fn writable(&self) -> Result<()> {
        match &self.damage {
            None => Ok(()),
            Some(p) => Err(self.damaged(p.clone())),
        }
    }

    /// A number that changes with every edit, unique in the process: two
    /// values (a clone's included) with the same generation hold the same
    /// metadata, so a caller can tell cheaply whether it changed since.
    ///
    /// ```
    /// use lvsnap::lvm::vg::{Creation, Metadata};
    /// let mut md = Metadata::parse(&std::fs::read_to_string("tests/fixtures/cow.vg").unwrap())?;
    /// let copy = md.clone();
    /// assert_eq!(copy.generation(), md.generation());
    /// md.bump_seqno()?;
    /// assert_ne!(copy.generation(), md.generation());
    /// # Ok::<(), lvsnap::lvm::vg::ModelError>(())
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The typed view.
    pub fn vg(&self) -> &Vg {
        &self.vg
    }

    /// The tree.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// The text in `style` ([`Style::Raw`] for a metadata area).
    pub fn to_text(&self, style: Style) -> String {
        self.doc.to_text(style)
    }

    /// Free extents per PV.
    pub fn free_space(&self) -> FreeSpace {
        match self.doc.vg_section() {
            Some(s) => self.vg.free_space(&s.body),
            None => FreeSpace::default(),
        }
    }

    pub(super) fn vg_body(&mut self) -> Result<&mut Body> {
        self.generation = new_generation();
        self.doc
            .vg_section_mut()
            .map(|s| &mut s.body)
            .ok_or_else(|| invalid("no volume group section"))
    }

    /// Applies a change to the tree and updates the view; on failure the
    /// metadata is left as it was.
    ///
    /// `f` may add LV sections and edit anything outside `logical_volumes`,
    /// but may read, edit or remove only the existing LVs named in
    /// `touched`. The others are moved aside while it runs (empty,
    /// nameless stand-ins keep their places), so the copy kept for undoing
    /// a failure holds only the rest of the tree, and their typed LVs are
    /// reused instead of parsed again: a change costs O(LVs) moves, not a
    /// copy and two parses of the whole VG. An edit that removes or
    /// changes a stand-in is refused and undone.
    pub(super) fn change(
        &mut self,
        touched: &[&str],
        f: impl FnOnce(&mut Document) -> Result<()>,
    ) -> Result<()> {
        self.writable()?;
        self.generation = new_generation();
        let parked = self.park(touched);
        let backup = self.doc.clone();
        match f(&mut self.doc).and_then(|()| self.fresh_lvs(parked.lvs.len())) {
            Ok((vg, fresh)) => {
                self.vg = vg;
                self.unpark_edited(fresh, parked.lvs);
                self.order_lvs();
                #[cfg(test)]
                assert_eq!(Ok(&self.vg), parse_vg(&self.doc).as_ref().map_err(|_| ()));
                Ok(())
            }
            Err(e) => {
                self.doc = backup;
                self.unpark_unchanged(parked);
                Err(e)
            }
        }
    }

    /// Moves every LV section not named in `touched` out of the tree, with
    /// its typed LV, leaving a stand-in.
    pub(super) fn park(&mut self, touched: &[&str]) -> Parked {
        let lvs = std::mem::take(&mut self.vg.lvs);
        let mut p = Parked::default();
        match lvs_body_mut(&mut self.doc) {
            // The view holds one LV per section, in order (it is built so).
            Some(body) if body.sections().count() == lvs.len() => {
                for (i, (sec, lv)) in body.sections_mut().zip(lvs).enumerate() {
                    if touched.contains(&sec.name.as_str()) {
                        p.kept.push((i, lv));
                    } else {
                        p.lvs.push((i, std::mem::take(sec), lv));
                    }
                }
            }
            _ => p.kept = lvs.into_iter().enumerate().collect(),
        }
        p
    }

    /// After an edit: the new view's VG and, per LV section, its LV parsed
    /// (`None` for a stand-in). Fails if the edit broke the VG or an LV,
    /// or if `stand_ins` stand-ins are not all still there.
    pub(super) fn fresh_lvs(&self, stand_ins: usize) -> Result<(Vg, Vec<Option<Lv>>)> {
        let vg = parse_vg_with(&self.doc, |_| Ok(Vec::new()))?;
        let fresh = self
            .doc
            .vg_section()
            .map(|s| lv_sections(&s.body))
            .into_iter()
            .flatten()
            .map(|s| (!is_stand_in(s)).then(|| parse_lv(s)).transpose())
            .collect::<Result<Vec<_>>>()?;
        if fresh.iter().filter(|l| l.is_none()).count() != stand_ins {
            return Err(invalid("an edit touched an LV it did not name"));
        }
        // The others were read before, without damage (or no edit runs).
        if let Some(p) = fresh.iter().flatten().find_map(|l| l.out_of_range.as_ref()) {
            return Err(ModelError::Refused(format!("the change would need {p}")));
        }
        Ok((vg, fresh))
    }

    /// Puts the parked sections back in place of their stand-ins (in order,
    /// as [`Metadata::fresh_lvs`] checked) and builds the view's LVs.
    pub(super) fn unpark_edited(
        &mut self,
        fresh: Vec<Option<Lv>>,
        parked: Vec<(usize, Section, Lv)>,
    ) {
        let mut parked = parked.into_iter();
        let mut lvs = Vec::with_capacity(fresh.len());
        if let Some(body) = lvs_body_mut(&mut self.doc) {
            for (sec, lv) in body.sections_mut().zip(fresh) {
                match lv {
                    Some(lv) => lvs.push(lv),
                    None => {
                        if let Some((_, s, lv)) = parked.next() {
                            *sec = s;
                            lvs.push(lv);
                        }
                    }
                }
            }
        }
        self.vg.lvs = lvs;
    }

    /// Puts the parked sections back into the tree as it was before the
    /// edit (stand-ins at their old indices) and the view's LVs in order.
    pub(super) fn unpark_unchanged(&mut self, parked: Parked) {
        let Parked { lvs: parked, kept } = parked;
        let mut lvs = kept;
        let mut parked = parked.into_iter().peekable();
        if let Some(body) = lvs_body_mut(&mut self.doc) {
            for (i, sec) in body.sections_mut().enumerate() {
                if let Some((_, s, lv)) = parked.next_if(|p| p.0 == i) {
                    *sec = s;
                    lvs.push((i, lv));
                }
            }
        }
        lvs.sort_by_key(|l| l.0);
        self.vg.lvs = lvs.into_iter().map(|l| l.1).collect();
    }

    /// Increments `seqno`, as every metadata write does.
    pub fn bump_seqno(&mut self) -> Result<u32> {
        self.writable()?;
        let next = self
            .vg
            .seqno
            .checked_add(1)
            .ok_or_else(|| invalid("seqno overflows"))?;
        self.vg_body()?.set("seqno", Value::int(i64::from(next)));
        self.vg.seqno = next;
        Ok(next)
    }

    /// Sets the top-level `description`, `creation_host` and `creation_time`
    /// LVM writes with each copy of the metadata.
    pub fn set_header(&mut self, description: &str, creation: &Creation) {
        self.generation = new_generation();
        let r = &mut self.doc.root;
        r.set("description", Value::str(description));
        r.set("creation_host", Value::str(&creation.host));
        r.set("creation_time", Value::int(creation.time));
    }

    /// Puts visible LVs first and hidden ones after, each group in its
    /// current order, as LVM's exporter writes them (the view's LVs move
    /// with their sections).
    pub(super) fn order_lvs(&mut self) {
        let visible = self.vg.visibility();
        if visible.windows(2).all(|w| !matches!(w, [false, true])) {
            return;
        }
        let Some(body) = lvs_body_mut(&mut self.doc) else {
            return;
        };
        if body.sections().count() != self.vg.lvs.len() {
            return;
        }
        // Sized up front: a VG may hold hundreds of LVs, each a large entry.
        let n = self.vg.lvs.len();
        let mut others = Vec::new();
        let (mut vis, mut hid) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut lvs = std::mem::take(&mut self.vg.lvs).into_iter().zip(visible);
        for e in std::mem::take(&mut body.entries) {
            match e {
                Entry::Section(s) => match lvs.next() {
                    Some((lv, true)) => vis.push((s, lv)),
                    Some((lv, false)) => hid.push((s, lv)),
                    None => {}
                },
                Entry::Blank => {}
                other => others.push(other),
            }
        }
        let mut entries = Vec::with_capacity(others.len() + 2 * n);
        entries.append(&mut others);
        let mut view = Vec::with_capacity(n);
        for (s, lv) in vis.into_iter().chain(hid) {
            entries.push(Entry::Blank);
            entries.push(Entry::Section(s));
            view.push(lv);
        }
        body.entries = entries;
        self.vg.lvs = view;
    }

    pub(super) fn check_new_lv_name(&self, name: &str) -> Result<()> {
        self.writable()?;
        names::validate_lv_name(name)?;
        if self.vg.lv(name).is_some() {
            return Err(ModelError::Exists(name.into()));
        }
        if self.vg.max_lv != 0 && self.vg.visible_lvs().len() as u64 >= u64::from(self.vg.max_lv) {
            return Err(ModelError::Refused(format!(
                "Maximum number of logical volumes ({}) reached in volume group {}",
                self.vg.max_lv, self.vg.name
            )));
        }
        Ok(())
    }

    /// Allocates `extents` as LVM's `normal` policy would, as linear segments.
    pub fn allocate(&self, extents: Extents) -> Result<Vec<Area>> {
        let free = self.free_space();
        alloc::allocate_linear(&free, extents.as_u64()).ok_or(ModelError::NoSpace {
            needed: extents.as_u64(),
            free: free.total(),
        })
    }
}
