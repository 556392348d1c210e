//! LVM's rules for volume group and logical volume names, and new LVM ids.
//!
//! The checks and their wording follow lvm2's `_validate_name`
//! (lib/misc/lvm-string.c), the messages of tools/toollib.c, and
//! `apply_lvname_restrictions` (reserved prefixes and substrings).

use crate::error::ErrorKind;

/// Longest VG or LV name LVM accepts (`NAME_LEN` is 128 with the NUL).
pub const MAX_NAME_LEN: usize = 127;

/// Why a name was refused; the message says it as LVM does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("Name is zero length.")]
    Empty,
    /// The name starts with `-`.
    #[error("Name \"{0}\" is invalid. It cannot start with '-'.")]
    Hyphen(String),
    /// The name is `.` or `..`.
    #[error("Name \"{0}\" is invalid. It cannot be '.' or '..'.")]
    Dots(String),
    /// A character outside `[a-zA-Z0-9+_.-]`.
    #[error("Name \"{0}\" contains invalid character, valid set includes: [a-zA-Z0-9.-_+].")]
    Charset(String),
    /// Longer than [`MAX_NAME_LEN`].
    #[error("Name \"{0}\" length is too long.")]
    Length(String),
    /// An LV name with a prefix LVM keeps for itself.
    #[error("Names starting \"{prefix}\" are reserved. Please choose a different LV name.")]
    ReservedPrefix {
        /// The offending name.
        name: String,
        /// `snapshot` or `pvmove`.
        prefix: &'static str,
    },
    /// An LV name containing a suffix LVM gives to component LVs.
    #[error("Names including \"{part}\" are reserved. Please choose a different LV name.")]
    ReservedString {
        /// The offending name.
        name: String,
        /// The reserved part, as `_tmeta`.
        part: &'static str,
    },
}

impl NameError {
    /// The kind of this error: always [`ErrorKind::InvalidArgument`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

const RESERVED_PREFIXES: [&str; 2] = ["pvmove", "snapshot"];
const RESERVED_STRINGS: [&str; 17] = [
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog", "_rimage",
    "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare", "_vorigin",
];

/// LVM's basic name check, shared by VG and LV names.
///
/// ```
/// use lvsnap::lvm::names::validate_name;
/// assert!(validate_name("pvc-1").is_ok());
/// assert_eq!(
///     validate_name("-x").unwrap_err().to_string(),
///     "Name \"-x\" is invalid. It cannot start with '-'."
/// );
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.starts_with('-') {
        return Err(NameError::Hyphen(name.into()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots(name.into()));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+'))
    {
        return Err(NameError::Charset(name.into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::Length(name.into()));
    }
    Ok(())
}

/// Checks a volume group name.
pub fn validate_vg_name(name: &str) -> Result<(), NameError> {
    validate_name(name)
}

/// Checks a name a user may give a new logical volume: the basic rules,
/// then LVM's reserved prefixes (`snapshot`, `pvmove`) and the substrings
/// of component LVs (`_tmeta`, `_rimage`, `_pmspare`, ...).
///
/// ```
/// use lvsnap::lvm::names::validate_lv_name;
/// assert!(validate_lv_name("snapcontent-1").is_ok());
/// assert!(validate_lv_name("snapshot0").is_err());
/// assert!(validate_lv_name("data_tmeta").is_err());
/// ```
pub fn validate_lv_name(name: &str) -> Result<(), NameError> {
    validate_name(name)?;
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(NameError::ReservedPrefix {
            name: name.into(),
            prefix,
        });
    }
    // LVM looks for the substrings from the first '_' on.
    if let Some(tail) = name.find('_').and_then(|i| name.get(i..)) {
        if let Some(part) = RESERVED_STRINGS.iter().find(|s| tail.contains(**s)) {
            return Err(NameError::ReservedString {
                name: name.into(),
                part,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_rules() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(validate_name("."), Err(NameError::Dots(_))));
        assert!(matches!(validate_name(".."), Err(NameError::Dots(_))));
        assert!(validate_name("...").is_ok());
        assert!(validate_name("a+b_c.d-e9").is_ok());
        assert!(matches!(validate_name("a/b"), Err(NameError::Charset(_))));
        assert!(matches!(validate_name("a b"), Err(NameError::Charset(_))));
        assert!(matches!(validate_name("é"), Err(NameError::Charset(_))));
        assert!(validate_name(&"a".repeat(127)).is_ok());
        assert!(matches!(
            validate_name(&"a".repeat(128)),
            Err(NameError::Length(_))
        ));
        assert_eq!(
            validate_name("a:b").unwrap_err().to_string(),
            "Name \"a:b\" contains invalid character, valid set includes: [a-zA-Z0-9.-_+]."
        );
    }

    #[test]
    fn lv_reserved_names() {
        assert_eq!(
            validate_lv_name("snapshot7").unwrap_err().to_string(),
            "Names starting \"snapshot\" are reserved. Please choose a different LV name."
        );
        assert!(validate_lv_name("pvmove0").is_err());
        assert!(validate_lv_name("mysnapshot").is_ok());
        assert_eq!(
            validate_lv_name("lvol0_pmspare").unwrap_err().to_string(),
            "Names including \"_pmspare\" are reserved. Please choose a different LV name."
        );
        assert!(validate_lv_name("x_rimage_0").is_err());
        assert!(validate_lv_name("x_vorigin").is_err());
        // Only from the first underscore: "tmeta" alone is fine.
        assert!(validate_lv_name("tmeta").is_ok());
        assert!(validate_lv_name("a_b").is_ok());
        assert_eq!(
            validate_lv_name("-a").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}
