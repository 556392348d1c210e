//! LVM ids (lib/id/id.c): 32 characters of LVM's id alphabet, written
//! with dashes as 6-4-4-4-4-4-6. [`VgId`], [`PvId`] and [`LvId`] are
//! distinct types so that one is never taken for another.

use std::fmt;

/// Every character LVM accepts in an id (`_c` in id.c).
const ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";

/// Characters a new id is drawn from: LVM leaves out `!` and `#` (LVM1).
const NEW_ID_CHARS: usize = ALPHABET.len() - 2;

/// Characters of one id.
pub const ID_LEN: usize = 32;

/// Why a string is not an LVM id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an LVM id (32 characters from 0-9 a-z A-Z ! #, dashes aside)")]
pub struct IdError(pub String);

/// The 32 characters, checked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Raw([u8; ID_LEN]);

impl Raw {
    /// Reads an id as `id_read_format` does: dashes anywhere are skipped,
    /// the rest must be 32 characters of the alphabet.
    fn parse(s: &str) -> Result<Raw, IdError> {
        let mut out = [0u8; ID_LEN];
        let mut n = 0;
        for b in s.bytes().filter(|&b| b != b'-') {
            if n == ID_LEN || !ALPHABET.contains(&b) {
                return Err(IdError(s.to_owned()));
            }
            out[n] = b;
            n += 1;
        }
        if n != ID_LEN {
            return Err(IdError(s.to_owned()));
        }
        Ok(Raw(out))
    }

    fn random() -> std::io::Result<Raw> {
        let mut raw = [0u8; ID_LEN];
        crate::sys::random_bytes(&mut raw)?;
        Ok(Raw::from_random(&raw))
    }

    /// Each random byte picks one character, as `id_create` does.
    fn from_random(raw: &[u8; ID_LEN]) -> Raw {
        Raw(raw.map(|b| ALPHABET[usize::from(b) % NEW_ID_CHARS]))
    }

    fn as_str(&self) -> &str {
        // Only ASCII of the alphabet gets in.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Raw {
    /// As `id_write_format`: dashed, except an id starting `#` (as is).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        if s.starts_with('#') {
            return f.write_str(s);
        }
        let mut at = 0;
        for (i, len) in [6, 4, 4, 4, 4, 4, 6].into_iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(s.get(at..at + len).unwrap_or(""))?;
            at += len;
        }
        Ok(())
    }
}

macro_rules! lvm_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Raw);

        impl $name {
            /// Parses an id as LVM reads one: dashes skipped, 32 characters
            /// of LVM's alphabet.
            pub fn parse(s: &str) -> Result<$name, IdError> {
                Raw::parse(s).map($name)
            }

            /// A new random id, as LVM makes one.
            pub fn random() -> std::io::Result<$name> {
                Raw::random().map($name)
            }

            /// The 32 characters without dashes (as in device-mapper UUIDs).
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            /// The written form, with dashes.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                $name::parse(s)
            }
        }
    };
}

lvm_id!(
    /// A volume group's id.
    ///
    /// ```
    /// use lvsnap::lvm::id::VgId;
    /// let id = VgId::parse("1EP5Yk7MNl5TKmEFLxPtJsndAJeenL1m").unwrap();
    /// assert_eq!(id.to_string(), "1EP5Yk-7MNl-5TKm-EFLx-PtJs-ndAJ-eenL1m");
    /// assert_eq!(VgId::parse(&id.to_string()), Ok(id));
    /// assert!(VgId::parse("short").is_err());
    /// ```
    VgId
);
lvm_id!(
    /// A physical volume's id (also in its label).
    PvId
);
lvm_id!(
    /// A logical volume's id (the second half of its `lvid`).
    LvId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_as_lvm_reads() {
        let plain = "AbCdEf0123456789abcdefghij!#KLMN";
        let id = LvId::parse(plain).unwrap();
        assert_eq!(id.as_str(), plain);
        assert_eq!(id.to_string(), "AbCdEf-0123-4567-89ab-cdef-ghij-!#KLMN");
        // Dashes anywhere are skipped, as id_read_format skips them.
        assert_eq!(LvId::parse("A-bCdEf0123456789abcdefghij!#KLM--N"), Ok(id));
        for bad in [
            "",
            "AbCdEf0123456789abcdefghij!#KLM",
            "AbCdEf0123456789abcdefghij!#KLMNO",
            "AbCdEf0123456789abcdefghij!#KLM_",
            "AbCdEf0123456789abcdefghij!#KLM\u{e9}",
            "AbCdEf0123456789abcdefghij!#KL\n",
        ] {
            assert!(LvId::parse(bad).is_err(), "{bad:?}");
        }
        // Written as is when it starts with '#', as id_write_format does.
        let hash = "#abcdefghijklmnopqrstuvwxyz01234";
        assert_eq!(PvId::parse(hash).unwrap().to_string(), hash);
    }

    #[test]
    fn new_ids_skip_bang_and_hash() {
        let id = Raw::from_random(&[0xff; ID_LEN]);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        let id = VgId::random().unwrap();
        let parts: Vec<usize> = id.to_string().split('-').map(str::len).collect();
        assert_eq!(parts, [6, 4, 4, 4, 4, 4, 6]);
        assert_ne!(id, VgId::random().unwrap());
    }
}
