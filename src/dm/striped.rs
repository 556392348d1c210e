//! The `striped` target (RAID-0): `striped <num> <chunk> [<dev> <offset>]+`,
//! consecutive chunks rotating over the stripes.

use std::fmt;
use std::str::FromStr;

use devicemapper::{Device, TargetParams, TargetTypeBuf};

use super::error::{Error, Result};
use super::target::{Fields, target_type};
use crate::units::Sectors;

/// Target type of data striped over several devices.
pub const STRIPED: &str = "striped";

/// One stripe: a device from sector `offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripe {
    /// The device.
    pub dev: Device,
    /// Its first sector used.
    pub offset: Sectors,
}

/// Parameters of `striped <num> <chunk> [<dev> <offset>]+`: at least one
/// stripe and a chunk of at least one sector, as the kernel requires.
///
/// ```
/// use lvsnap::dm::StripedTargetParams;
/// let p: StripedTargetParams = "striped 2 128 7:0 67584 7:1 2048".parse()?;
/// assert_eq!(p.stripes().len(), 2);
/// assert_eq!(p.to_string(), "striped 2 128 7:0 67584 7:1 2048");
/// assert!("striped 3 128 7:0 67584 7:1 2048".parse::<StripedTargetParams>().is_err());
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripedTargetParams {
    chunk: Sectors,
    stripes: Vec<Stripe>,
}

impl StripedTargetParams {
    /// Chunks of `chunk` sectors over `stripes`, if there is at least one
    /// stripe and the chunk is not empty.
    pub fn new(chunk: Sectors, stripes: Vec<Stripe>) -> Result<StripedTargetParams> {
        if stripes.is_empty() || *chunk == 0 {
            return Err(Error::InvalidArgument(format!(
                "striped target of {} stripe(s) with chunks of {} sectors",
                stripes.len(),
                *chunk
            )));
        }
        Ok(StripedTargetParams { chunk, stripes })
    }

    /// The chunk size.
    pub fn chunk(&self) -> Sectors {
        self.chunk
    }

    /// The stripes, in order.
    pub fn stripes(&self) -> &[Stripe] {
        &self.stripes
    }
}

impl fmt::Display for StripedTargetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STRIPED} {}", self.param_str())
    }
}

impl FromStr for StripedTargetParams {
    type Err = Error;
    /// Parses `striped <num> <chunk> [<maj:min> <offset>]+` as the kernel's
    /// table shows it; the number of stripes must match the count.
    fn from_str(s: &str) -> Result<Self> {
        let mut f = Fields::of(s, STRIPED, "striped table")?;
        let n: usize = f.number()?;
        let chunk = f.sectors()?;
        // Never trust the count for an allocation: each stripe is read.
        let mut stripes = Vec::new();
        while let Some(dev) = f.maybe() {
            let dev = super::target::parse_device(dev).ok_or_else(|| f.bad())?;
            stripes.push(Stripe {
                dev,
                offset: f.sectors()?,
            });
        }
        if stripes.len() != n {
            return Err(f.bad());
        }
        StripedTargetParams::new(chunk, stripes).map_err(|_| f.bad())
    }
}

impl TargetParams for StripedTargetParams {
    fn param_str(&self) -> String {
        let mut s = format!("{} {}", self.stripes.len(), *self.chunk);
        for st in &self.stripes {
            s.push_str(&format!(" {} {}", st.dev, *st.offset));
        }
        s
    }
    fn target_type(&self) -> TargetTypeBuf {
        target_type(STRIPED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_refuses_bad_lines() {
        let dev = |minor| Device { major: 7, minor };
        let p = StripedTargetParams::new(
            Sectors(128),
            vec![
                Stripe {
                    dev: dev(0),
                    offset: Sectors(67584),
                },
                Stripe {
                    dev: dev(1),
                    offset: Sectors(2048),
                },
            ],
        )
        .unwrap();
        assert_eq!(p.param_str(), "2 128 7:0 67584 7:1 2048");
        assert_eq!(p.to_string().parse::<StripedTargetParams>().unwrap(), p);
        assert!(StripedTargetParams::new(Sectors(128), vec![]).is_err());
        assert!(StripedTargetParams::new(Sectors(0), p.stripes().to_vec()).is_err());
        for bad in [
            "",
            "striped",
            "striped 2",
            "striped 2 128",
            "striped 0 128",
            "striped 1 0 7:0 0",
            "striped 2 128 7:0 67584",
            "striped 1 128 7:0 67584 7:1 2048",
            "striped 2 128 7:0 67584 7:1",
            "striped 2 128 7:0 67584 7 2048",
            "striped x 128 7:0 0",
            "striped 18446744073709551616 128 7:0 0",
            "linear 1 128 7:0 0",
        ] {
            let e = bad.parse::<StripedTargetParams>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "(striped)? ?[0-9: a-z]{0,40}") {
            if let Ok(p) = s.parse::<StripedTargetParams>() {
                prop_assert_eq!(p.to_string().parse::<StripedTargetParams>().unwrap(), p);
            }
        }
    }
}
