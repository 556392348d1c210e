//! LVM-compatible device-mapper names and UUIDs, as checked newtypes.
//!
//! LVM names a device `vg-lv[-layer]` with every `-` inside the VG, LV and
//! layer names doubled (so the name splits back unambiguously), and gives it
//! the UUID `LVM-<vgid><lvid>[-layer]`, the ids being LVM's 32-character ids
//! without dashes.

use std::fmt;

use devicemapper::{DmName, DmNameBuf, DmUuid, DmUuidBuf};

use super::error::{Error, Result};

/// Longest device-mapper name or UUID the kernel takes (128 bytes with the NUL).
pub const DM_NAME_MAX: usize = 127;

/// LVM's limit on a VG or LV name.
pub const LVM_NAME_MAX: usize = 127;

/// Checks a VG, LV or layer name the way LVM does: not empty, at most
/// [`LVM_NAME_MAX`] bytes, only `a-z A-Z 0-9 + _ . -`, not starting with `-`,
/// and not `.` or `..`.
pub fn check_lvm_name(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "{what} name {name:?} {why}"
        )))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > LVM_NAME_MAX {
        return bad(&format!("is longer than {LVM_NAME_MAX} bytes"));
    }
    if name.starts_with('-') {
        return bad("starts with '-'");
    }
    if name == "." || name == ".." {
        return bad("is reserved");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-')))
    {
        return bad(&format!("contains {c:?} (allowed: a-z A-Z 0-9 + _ . -)"));
    }
    Ok(())
}

fn dm_name(s: String) -> Result<DmNameBuf> {
    if s.len() > DM_NAME_MAX {
        return Err(Error::InvalidArgument(format!(
            "device-mapper name {s:?} is longer than {DM_NAME_MAX} bytes"
        )));
    }
    DmNameBuf::new(s.clone())
        .map_err(|e| Error::InvalidArgument(format!("device-mapper name {s:?}: {e}")))
}

fn dm_uuid(s: String) -> Result<DmUuidBuf> {
    if s.len() > DM_NAME_MAX {
        return Err(Error::InvalidArgument(format!(
            "device-mapper uuid {s:?} is longer than {DM_NAME_MAX} bytes"
        )));
    }
    DmUuidBuf::new(s.clone())
        .map_err(|e| Error::InvalidArgument(format!("device-mapper uuid {s:?}: {e}")))
}

/// A checked device-mapper name in LVM's `vg-lv[-layer]` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LvmDmName(DmNameBuf);

impl LvmDmName {
    /// The name LVM gives LV `lv` of VG `vg`, with an optional layer
    /// (`real`, `cow`, `tpool`, ...). A layer starting with `_` is appended
    /// without a hyphen, as LVM does.
    ///
    /// ```
    /// use lvsnap::dm::LvmDmName;
    /// let n = LvmDmName::new("vg-0", "my-lv", Some("real")).unwrap();
    /// assert_eq!(n.to_string(), "vg--0-my--lv-real");
    /// assert!(LvmDmName::new("vg", "a/b", None).is_err());
    /// ```
    pub fn new(vg: &str, lv: &str, layer: Option<&str>) -> Result<LvmDmName> {
        check_lvm_name("VG", vg)?;
        check_lvm_name("LV", lv)?;
        let mut s = format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"));
        if let Some(layer) = layer {
            check_lvm_name("layer", layer)?;
            if !layer.starts_with('_') {
                s.push('-');
            }
            s.push_str(&layer.replace('-', "--"));
        }
        dm_name(s).map(LvmDmName)
    }

    /// Splits a name back into VG, LV and layer, if it has LVM's form.
    ///
    /// ```
    /// use lvsnap::dm::LvmDmName;
    /// assert_eq!(
    ///     LvmDmName::split("vg--0-my--lv-real"),
    ///     Some(("vg-0".into(), "my-lv".into(), Some("real".into())))
    /// );
    /// assert_eq!(LvmDmName::split("nohyphen"), None);
    /// ```
    pub fn split(name: &str) -> Option<(String, String, Option<String>)> {
        let mut parts: Vec<String> = vec![String::new()];
        let mut chars = name.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '-' {
                if chars.peek() == Some(&'-') {
                    chars.next();
                    parts.last_mut()?.push('-');
                } else {
                    parts.push(String::new());
                }
            } else {
                parts.last_mut()?.push(c);
            }
        }
        let mut it = parts.into_iter();
        let vg = it.next()?;
        let lv = it.next()?;
        let layer = it.next();
        if it.next().is_some() || vg.is_empty() || lv.is_empty() {
            return None;
        }
        Some((vg, lv, layer))
    }

    /// The name for the devicemapper crate.
    pub fn as_dm_name(&self) -> &DmName {
        &self.0
    }

    /// The owned name for the devicemapper crate.
    pub fn into_dm_name(self) -> DmNameBuf {
        self.0
    }
}

impl fmt::Display for LvmDmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::ops::Deref for LvmDmName {
    type Target = DmName;
    fn deref(&self) -> &DmName {
        &self.0
    }
}

/// An LVM id (of a VG or LV): 32 characters from `[A-Za-z0-9!#]`, kept
/// without the dashes LVM shows (`xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LvmId([u8; 32]);

impl LvmId {
    /// Parses an id with or without LVM's dashes.
    ///
    /// ```
    /// use lvsnap::dm::LvmId;
    /// let id = LvmId::parse("AbCdEf-0123-4567-89ab-cdef-0123-456789").unwrap();
    /// assert_eq!(id.as_str(), "AbCdEf0123456789abcdef0123456789");
    /// assert!(LvmId::parse("short").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<LvmId> {
        let plain: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let dashes = s.len() - plain.len();
        let ok_chars = plain
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'!' || *b == b'#');
        let arr: Option<[u8; 32]> = plain.try_into().ok();
        match arr {
            Some(a) if ok_chars && (dashes == 0 || dashes == 6) => Ok(LvmId(a)),
            _ => Err(Error::InvalidArgument(format!(
                "{s:?} is not an LVM id (32 characters from A-Z a-z 0-9 ! #, optionally dashed)"
            ))),
        }
    }

    /// The 32 characters.
    pub fn as_str(&self) -> &str {
        // Only ASCII was admitted by `parse`.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for LvmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked device-mapper UUID in LVM's `LVM-<vgid><lvid>[-layer]` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LvmDmUuid(DmUuidBuf);

impl LvmDmUuid {
    /// The UUID LVM gives LV `lvid` of VG `vgid`, with an optional layer.
    ///
    /// ```
    /// use lvsnap::dm::{LvmDmUuid, LvmId};
    /// let vg = LvmId::parse("AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAAA").unwrap();
    /// let lv = LvmId::parse("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB").unwrap();
    /// let u = LvmDmUuid::new(&vg, &lv, Some("cow")).unwrap();
    /// assert_eq!(u.to_string(), format!("LVM-{}{}-cow", "A".repeat(32), "B".repeat(32)));
    /// ```
    pub fn new(vgid: &LvmId, lvid: &LvmId, layer: Option<&str>) -> Result<LvmDmUuid> {
        let mut s = format!("LVM-{vgid}{lvid}");
        if let Some(layer) = layer {
            check_lvm_name("layer", layer)?;
            s.push('-');
            s.push_str(layer);
        }
        dm_uuid(s).map(LvmDmUuid)
    }

    /// The UUID for the devicemapper crate.
    pub fn as_dm_uuid(&self) -> &DmUuid {
        &self.0
    }

    /// The owned UUID for the devicemapper crate.
    pub fn into_dm_uuid(self) -> DmUuidBuf {
        self.0
    }
}

impl fmt::Display for LvmDmUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// The name of a layer device under `name`: `name-layer`, which is exactly
/// the LVM name of that layer when `name` is an LVM name.
pub fn layer_name(name: &DmName, layer: &str) -> Result<DmNameBuf> {
    check_lvm_name("layer", layer)?;
    dm_name(format!("{name}-{layer}"))
}

/// The UUID of a layer device under `uuid`: `uuid-layer`, as LVM does.
pub fn layer_uuid(uuid: &DmUuid, layer: &str) -> Result<DmUuidBuf> {
    check_lvm_name("layer", layer)?;
    dm_uuid(format!("{uuid}-{layer}"))
}

/// Checks a plain device-mapper name (what `dmsetup create` would take).
///
/// ```
/// use lvsnap::dm::check_dm_name;
/// assert!(check_dm_name("demo-origin").is_ok());
/// assert!(check_dm_name("a/b").is_err());
/// assert!(check_dm_name(&"x".repeat(200)).is_err());
/// ```
pub fn check_dm_name(name: &str) -> Result<DmNameBuf> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::InvalidArgument(format!(
            "device-mapper name {name:?} is not allowed"
        )));
    }
    if name.contains(|c: char| c == '/' || c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidArgument(format!(
            "device-mapper name {name:?} contains '/', whitespace or a control character"
        )));
    }
    dm_name(name.to_string())
}

/// Checks a plain device-mapper UUID.
pub fn check_dm_uuid(uuid: &str) -> Result<DmUuidBuf> {
    if uuid.is_empty() || uuid.contains(|c: char| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidArgument(format!(
            "device-mapper uuid {uuid:?} is empty or contains whitespace"
        )));
    }
    dm_uuid(uuid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_double_inner_hyphens() {
        let n = LvmDmName::new("vg", "lv", None).unwrap();
        assert_eq!(n.to_string(), "vg-lv");
        let n = LvmDmName::new("a-b", "c--d", Some("cow")).unwrap();
        assert_eq!(n.to_string(), "a--b-c----d-cow");
        assert_eq!(
            LvmDmName::split(&n.to_string()),
            Some(("a-b".into(), "c--d".into(), Some("cow".into())))
        );
        let n = LvmDmName::new("vg", "pool", Some("_tmeta")).unwrap();
        assert_eq!(n.to_string(), "vg-pool_tmeta");
    }

    #[test]
    fn bad_names_are_refused() {
        for (vg, lv) in [
            ("", "lv"),
            ("vg", ""),
            ("-vg", "lv"),
            ("vg", ".."),
            ("vg", "a b"),
            ("vg", "a/b"),
            ("vg", "ü"),
        ] {
            let e = LvmDmName::new(vg, lv, None).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{vg}/{lv}");
        }
        // Each part fits, but doubled hyphens push the whole over 127 bytes.
        let long = "-".repeat(0) + &"a-".repeat(40);
        assert!(LvmDmName::new(&long, &long, None).is_err());
        assert!(LvmDmName::new("vg", &"x".repeat(128), None).is_err());
    }

    #[test]
    fn ids_and_uuids() {
        let vg = LvmId::parse("qwerty-1234-5678-9012-3456-7890-abcdef").unwrap();
        let lv = LvmId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
        assert_eq!(
            LvmDmUuid::new(&vg, &lv, None).unwrap().to_string(),
            "LVM-qwerty12345678901234567890abcdefZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert!(LvmId::parse("qwerty-1234-5678-9012-3456-7890-abcde").is_err());
        assert!(LvmId::parse("qwerty-1234-5678-9012-3456-7890-abcd%f").is_err());
        assert!(LvmId::parse("").is_err());
        assert!(LvmId::parse("q-w-e-r-t-y-u-i-o-p1234567890123456789012").is_err());
    }

    proptest::proptest! {
        #[test]
        fn names_split_back(
            vg in "[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]{0,30}",
            lv in "[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]{0,30}",
            layer in proptest::option::of("[a-z][a-z-]{0,6}"),
        ) {
            proptest::prop_assume!(vg != "." && vg != ".." && lv != "." && lv != "..");
            let n = LvmDmName::new(&vg, &lv, layer.as_deref()).unwrap();
            proptest::prop_assert_eq!(LvmDmName::split(&n.to_string()), Some((vg, lv, layer)));
        }

        #[test]
        fn name_checks_never_panic(s in ".*", t in ".*") {
            let _ = LvmDmName::new(&s, &t, Some(&s));
            let _ = LvmDmName::split(&s);
            let _ = LvmId::parse(&s);
            let _ = check_dm_name(&s);
            let _ = check_dm_uuid(&t);
        }
    }

    #[test]
    fn split_rejects_non_lvm_names() {
        assert_eq!(LvmDmName::split("a-b-c-d"), None);
        assert_eq!(LvmDmName::split("-lv"), None);
        assert_eq!(LvmDmName::split("vg-"), None);
    }
}
