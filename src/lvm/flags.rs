//! The `status` and `flags` words of VGs, PVs and LVs, as LVM2's tables in
//! lib/format_text/flags.c name them (bit values from
//! lib/metadata/metadata-exported.h).
//!
//! A [`FlagList`] keeps the words as written, in their order, and words it
//! does not know verbatim: a rewrite that changes nothing writes the same
//! bytes, and a word a newer LVM wrote survives an edit by lvsnap.

use bitflags::{Flags, bitflags};

use crate::lvm::text::Value;

bitflags! {
    /// VG status and flag words, in the order of LVM's `_vg_flags` table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct VgFlags: u64 {
        /// `EXPORTED` (`vgexport`).
        const EXPORTED = 0x0000_0000_0000_0002;
        /// `RESIZEABLE`.
        const RESIZEABLE = 0x0000_0000_0000_0004;
        /// `PVMOVE`: a pvmove is in progress.
        const PVMOVE = 0x0000_0000_0000_2000;
        /// `READ`.
        const READ = 0x0000_0000_0000_0100;
        /// `WRITE`.
        const WRITE = 0x0000_0000_0000_0200;
        /// `WRITE_LOCKED` (a `flags` word: older LVMs refuse to write).
        const WRITE_LOCKED = 0x0020_0000_0000_0000;
        /// `NOAUTOACTIVATE` (a `flags` word).
        const NOAUTOACTIVATE = 0x0000_0000_0000_0010;
        /// `CLUSTERED`.
        const CLUSTERED = 0x0000_0000_0000_0400;
        /// `SHARED` (lvmlockd).
        const SHARED = 0x0000_0000_0000_0800;
    }
}

bitflags! {
    /// PV status words, in the order of LVM's `_pv_flags` table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PvFlags: u64 {
        /// `ALLOCATABLE`: new extents may be placed here.
        const ALLOCATABLE = 0x0000_0000_0000_0008;
        /// `EXPORTED`.
        const EXPORTED = 0x0000_0000_0000_0002;
        /// `MISSING`: the device was not found.
        const MISSING = 0x0000_0000_0080_0000;
    }
}

bitflags! {
    /// LV status and flag words, in the order of LVM's `_lv_flags` table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct LvFlags: u64 {
        /// `READ`.
        const READ = 0x0000_0000_0000_0100;
        /// `WRITE`.
        const WRITE = 0x0000_0000_0000_0200;
        /// `WRITE_LOCKED` (a `flags` word).
        const WRITE_LOCKED = 0x0020_0000_0000_0000;
        /// `FIXED_MINOR`.
        const FIXED_MINOR = 0x0000_0000_0000_0080;
        /// `VISIBLE`: `lvs` lists it without `-a`.
        const VISIBLE = 0x0000_0000_0000_0040;
        /// `PVMOVE`.
        const PVMOVE = 0x0000_0000_0000_2000;
        /// `LOCKED`.
        const LOCKED = 0x0000_0000_0000_4000;
        /// `NOTSYNCED`.
        const NOTSYNCED = 0x0000_0000_0008_0000;
        /// `REBUILD`.
        const REBUILD = 0x0000_0000_0010_0000;
        /// `RESHAPE` (a segment type word).
        const RESHAPE = 0x1000_0000_0000_0000;
        /// `RESHAPE_DATA_OFFSET` (a segment type word).
        const RESHAPE_DATA_OFFSET = 0x2000_0000_0000_0000;
        /// `RESHAPE_DELTA_DISKS_PLUS` (a segment type word).
        const RESHAPE_DELTA_DISKS_PLUS = 0x0100_0000_0000_0000;
        /// `RESHAPE_DELTA_DISKS_MINUS` (a segment type word).
        const RESHAPE_DELTA_DISKS_MINUS = 0x0200_0000_0000_0000;
        /// `REMOVE_AFTER_RESHAPE` (a segment type word).
        const REMOVE_AFTER_RESHAPE = 0x0400_0000_0000_0000;
        /// `WRITEMOSTLY`.
        const WRITEMOSTLY = 0x0000_0200_0000_0000;
        /// `ACTIVATION_SKIP` (a `flags` word): not activated unless asked.
        const ACTIVATION_SKIP = 0x0000_0400_0000_0000;
        /// `NOAUTOACTIVATE` (a `flags` word).
        const NOAUTOACTIVATE = 0x0000_0000_0000_0010;
        /// `ERROR_WHEN_FULL` (a `flags` word of thin pools).
        const ERROR_WHEN_FULL = 0x0008_0000_0000_0000;
        /// `METADATA_FORMAT` (a segment type word).
        const METADATA_FORMAT = 0x0800_0000_0000_0000;
        /// `CROP_METADATA` (a segment type word).
        const CROP_METADATA = 0x0000_0000_0000_0400;
        /// `CACHE_VOL` (a `flags` word).
        const CACHE_VOL = 0x0010_0000_0000_0000;
        /// `CACHE_USES_CACHEVOL` (a segment type word).
        const CACHE_USES_CACHEVOL = 0x4000_0000_0000_0000;
    }
}

/// A `status` or `flags` list: the words as written, in order, typed where
/// LVM's table of `F` names them.
///
/// ```
/// use lvsnap::lvm::flags::{FlagList, LvFlags};
/// let s = FlagList::<LvFlags>::from_words(["READ", "VISIBLE", "NEWER_LVM"]);
/// assert!(s.contains(LvFlags::READ | LvFlags::VISIBLE));
/// assert!(!s.contains(LvFlags::WRITE));
/// assert_eq!(s.unknown().collect::<Vec<_>>(), ["NEWER_LVM"]);
/// // A new word goes where LVM's table puts it; unknown words stay.
/// assert_eq!(s.with(LvFlags::WRITE).words(), ["READ", "WRITE", "VISIBLE", "NEWER_LVM"]);
/// assert_eq!(FlagList::from_flags(LvFlags::VISIBLE | LvFlags::READ).words(), ["READ", "VISIBLE"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagList<F> {
    words: Vec<String>,
    known: F,
}

impl<F: Flags + Copy> Default for FlagList<F> {
    fn default() -> Self {
        FlagList {
            words: Vec::new(),
            known: F::empty(),
        }
    }
}

impl<F: Flags + Copy> FlagList<F> {
    /// The list as read from the metadata, every word kept.
    pub fn from_words<S: Into<String>>(words: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> = words.into_iter().map(Into::into).collect();
        let known = words
            .iter()
            .filter_map(|w| F::from_name(w))
            .fold(F::empty(), |a, b| a.union(b));
        FlagList { words, known }
    }

    /// `flags` written as LVM writes them: in its table's order.
    pub fn from_flags(flags: F) -> Self {
        let words = F::FLAGS
            .iter()
            .filter(|f| flags.contains(*f.value()))
            .map(|f| f.name().to_owned())
            .collect();
        FlagList {
            words,
            known: flags,
        }
    }

    /// Whether every flag of `flags` is in the list.
    pub fn contains(&self, flags: F) -> bool {
        self.known.contains(flags)
    }

    /// The flags the list holds that LVM's table names.
    pub fn known(&self) -> F {
        self.known
    }

    /// The words as written, in order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The words LVM's table of `F` does not name, in order.
    pub fn unknown(&self) -> impl Iterator<Item = &str> {
        self.words
            .iter()
            .map(String::as_str)
            .filter(|w| F::from_name(w).is_none())
    }

    /// The list with `flags` added: each new word right after the last word
    /// present that comes before it in LVM's table (first if none does), so
    /// a list in LVM's order stays in it and the other words stay put.
    pub fn with(&self, flags: F) -> Self {
        let mut out = self.clone();
        for (i, f) in F::FLAGS.iter().enumerate() {
            let v = *f.value();
            if !flags.contains(v) || out.known.contains(v) {
                continue;
            }
            let earlier = &F::FLAGS[..i];
            let at = out
                .words
                .iter()
                .rposition(|w| earlier.iter().any(|e| e.name() == w))
                .map_or(0, |p| p + 1);
            out.words.insert(at, f.name().to_owned());
            out.known = out.known.union(v);
        }
        out
    }

    /// The list without the words of `flags`.
    pub fn without(&self, flags: F) -> Self {
        let words = self
            .words
            .iter()
            .filter(|w| F::from_name(w).is_none_or(|f| !flags.contains(f)))
            .cloned()
            .collect();
        FlagList {
            words,
            known: self.known.difference(flags),
        }
    }

    /// The list as a metadata value (`["READ", "WRITE"]`).
    pub fn to_value(&self) -> Value {
        Value::strings(&self.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_in_their_order() {
        let w = ["VISIBLE", "WRITE", "X_NEW", "READ", "READ"];
        let l = FlagList::<LvFlags>::from_words(w);
        assert_eq!(l.words(), w);
        assert_eq!(l.known(), LvFlags::READ | LvFlags::WRITE | LvFlags::VISIBLE);
        assert_eq!(
            l.without(LvFlags::READ).words(),
            ["VISIBLE", "WRITE", "X_NEW"]
        );
        assert_eq!(l.with(LvFlags::WRITE), l);
    }

    #[test]
    fn new_words_go_where_lvm_puts_them() {
        let l = FlagList::<LvFlags>::from_words(["VISIBLE"]);
        assert_eq!(l.with(LvFlags::WRITE).words(), ["WRITE", "VISIBLE"]);
        let l = FlagList::<LvFlags>::from_words(["LOCKED", "READ"]);
        assert_eq!(l.with(LvFlags::WRITE).words(), ["LOCKED", "READ", "WRITE"]);
        let all = FlagList::<VgFlags>::from_flags(VgFlags::all());
        assert_eq!(
            all.words(),
            [
                "EXPORTED",
                "RESIZEABLE",
                "PVMOVE",
                "READ",
                "WRITE",
                "WRITE_LOCKED",
                "NOAUTOACTIVATE",
                "CLUSTERED",
                "SHARED"
            ]
        );
        let empty = FlagList::<PvFlags>::default();
        assert_eq!(
            empty.with(PvFlags::MISSING | PvFlags::ALLOCATABLE).words(),
            ["ALLOCATABLE", "MISSING"]
        );
    }
}
