//! The `linear` target: `linear <dev> <offset>`, a range of another
//! device from sector `offset` on.

use std::fmt;
use std::str::FromStr;

use devicemapper::{Device, TargetParams, TargetTypeBuf};

use super::error::{Error, Result};
use super::target::{Fields, target_type};
use crate::units::Sectors;

/// Target type of a plain range of another device.
pub const LINEAR: &str = "linear";

/// Parameters of `linear <dev> <offset>`.
///
/// ```
/// use lvsnap::dm::LinearTargetParams;
/// let p: LinearTargetParams = "linear 7:0 2048".parse()?;
/// assert_eq!(p.to_string(), "linear 7:0 2048");
/// assert!("linear 7:0".parse::<LinearTargetParams>().is_err());
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearTargetParams {
    /// The device mapped to.
    pub dev: Device,
    /// Its first sector mapped.
    pub offset: Sectors,
}

impl fmt::Display for LinearTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LINEAR} {}", self.param_str())
    }
}

impl FromStr for LinearTargetParams {
    type Err = Error;
    /// Parses `linear <maj:min> <offset>` as the kernel's table shows it.
    fn from_str(s: &str) -> Result<Self> {
        let mut f = Fields::of(s, LINEAR, "linear table")?;
        let p = LinearTargetParams {
            dev: f.device()?,
            offset: f.sectors()?,
        };
        f.end()?;
        Ok(p)
    }
}

impl TargetParams for LinearTargetParams {
    fn param_str(&self) -> String {
        format!("{} {}", self.dev, *self.offset)
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(LINEAR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_refuses_bad_lines() {
        let p = LinearTargetParams {
            dev: Device {
                major: 254,
                minor: 3,
            },
            offset: Sectors(83968),
        };
        assert_eq!(p.param_str(), "254:3 83968");
        assert_eq!(p.to_string().parse::<LinearTargetParams>().unwrap(), p);
        // The kernel's table text may end in a space.
        assert_eq!(
            "linear 254:3 83968 ".parse::<LinearTargetParams>().unwrap(),
            p
        );
        for bad in [
            "",
            "linear",
            "linear 254:3",
            "linear 254 0",
            "linear 254:3 x",
            "linear 254:3 -1",
            "linear 254:3 0 0",
            "striped 254:3 0",
            "linear 254:3 99999999999999999999",
        ] {
            let e = bad.parse::<LinearTargetParams>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "(linear)? ?[0-9: a-z]{0,24}") {
            if let Ok(p) = s.parse::<LinearTargetParams>() {
                prop_assert_eq!(p.to_string().parse::<LinearTargetParams>().unwrap(), p);
            }
        }
    }
}
