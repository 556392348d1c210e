//! What the typed targets share: device numbers and target type names as
//! the kernel's tables spell them, read without panicking.

use devicemapper::{Device, TargetTypeBuf};

use super::error::{Error, Result};
use crate::units::Sectors;

/// Parses `major:minor` without panicking.
pub(crate) fn parse_device(s: &str) -> Option<Device> {
    let (ma, mi) = s.split_once(':')?;
    Some(Device {
        major: ma.parse().ok()?,
        minor: mi.parse().ok()?,
    })
}

/// The type name of one of our targets.
pub(super) fn target_type(s: &'static str) -> TargetTypeBuf {
    // Only called with our constant names (at most 15 bytes), which
    // TargetTypeBuf always takes: neither branch can fail.
    TargetTypeBuf::new(s.to_string()).unwrap_or_else(|_| {
        TargetTypeBuf::new("error".to_string()).unwrap_or_else(|_| unreachable!())
    })
}

/// The fields of a table line, `<type> <params>...`, checked to be of
/// target `ty`; errors name `what` and carry the whole line.
pub(super) struct Fields<'a> {
    line: &'a str,
    what: &'static str,
    it: std::str::SplitWhitespace<'a>,
}

impl<'a> Fields<'a> {
    /// The parameters of `line` if its target type is `ty`.
    pub(super) fn of(line: &'a str, ty: &str, what: &'static str) -> Result<Fields<'a>> {
        let mut f = Fields {
            line,
            what,
            it: line.split_whitespace(),
        };
        if f.it.next() != Some(ty) {
            return Err(f.bad());
        }
        Ok(f)
    }

    /// The error for this line.
    pub(super) fn bad(&self) -> Error {
        Error::parse(self.what, self.line)
    }

    /// The next field, which must be there.
    pub(super) fn next(&mut self) -> Result<&'a str> {
        self.it.next().ok_or_else(|| self.bad())
    }

    /// The next field as `major:minor`.
    pub(super) fn device(&mut self) -> Result<Device> {
        let s = self.next()?;
        parse_device(s).ok_or_else(|| self.bad())
    }

    /// The next field as a decimal number.
    pub(super) fn number<T: std::str::FromStr>(&mut self) -> Result<T> {
        let s = self.next()?;
        s.parse().map_err(|_| self.bad())
    }

    /// The next field as a count of sectors.
    pub(super) fn sectors(&mut self) -> Result<Sectors> {
        self.number().map(Sectors)
    }

    /// The next field if there is one.
    pub(super) fn maybe(&mut self) -> Option<&'a str> {
        self.it.next()
    }

    /// Checks that nothing follows.
    pub(super) fn end(mut self) -> Result<()> {
        match self.it.next() {
            Some(_) => Err(self.bad()),
            None => Ok(()),
        }
    }
}
