//! LVM's fixed-point percentages (`dm_percent_t`).

use std::fmt;

/// A percentage as LVM computes and prints it: millionths of a percent,
/// never rounded to 0 or 100 unless exactly so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    /// 0 %.
    pub const ZERO: Percent = Percent(0);
    /// 100 %.
    pub const HUNDRED: Percent = Percent(100_000_000);

    /// `numerator/denominator` as libdevmapper's `dm_make_percent`: 100 for
    /// a zero denominator, exact 0 and 100 only when exact, otherwise the
    /// truncated value kept strictly between them.
    ///
    /// ```
    /// use lvsnap::dm::Percent;
    /// assert_eq!(Percent::from_ratio(1, 3).to_string(), "33.33");
    /// assert_eq!(Percent::from_ratio(0, 0), Percent::HUNDRED);
    /// ```
    pub fn from_ratio(numerator: u64, denominator: u64) -> Percent {
        if denominator == 0 {
            return Self::HUNDRED;
        }
        if numerator == 0 {
            return Self::ZERO;
        }
        if numerator == denominator {
            return Self::HUNDRED;
        }
        // The same double arithmetic and truncation as libdevmapper.
        let p = (f64::from(Self::HUNDRED.0) * (numerator as f64 / denominator as f64)) as u32;
        match p {
            p if p >= Self::HUNDRED.0 => Percent(Self::HUNDRED.0 - 1),
            0 => Percent(1),
            p => Percent(p),
        }
    }

    /// The value in millionths of a percent.
    pub fn millionths(self) -> u32 {
        self.0
    }

    /// The value as a float, e.g. `42.5`.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }

    /// The value LVM prints with `digits` decimals (`dm_percent_to_round_float`):
    /// values just above 0 or just below 100 are pushed to the nearest
    /// printable value that is not 0 or 100.
    pub fn rounded(self, digits: u32) -> f32 {
        let digits = digits.min(10);
        let step = 10f32.powi(-(digits as i32));
        let r = 1_000_000.0 * step;
        let p = self.0 as f32;
        if p < r && self.0 > 0 {
            step
        } else if p > (Self::HUNDRED.0 as f32 - r) && self.0 < Self::HUNDRED.0 {
            (Self::HUNDRED.0 as f32 - r) / 1_000_000.0
        } else {
            p / 1_000_000.0
        }
    }
}

impl fmt::Display for Percent {
    /// Two decimals, exactly as `lvs -o data_percent` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", f64::from(self.rounded(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libdevmapper_edges() {
        assert_eq!(Percent::from_ratio(0, 5), Percent::ZERO);
        assert_eq!(Percent::from_ratio(5, 5), Percent::HUNDRED);
        assert_eq!(Percent::from_ratio(1, u64::MAX), Percent(1));
        assert_eq!(
            Percent::from_ratio(u64::MAX - 1, u64::MAX),
            Percent(99_999_999)
        );
        assert_eq!(Percent::from_ratio(7, 5), Percent(99_999_999));
        assert_eq!(Percent::from_ratio(1, 2).to_string(), "50.00");
        assert_eq!(Percent::from_ratio(1, 100_000).to_string(), "0.01");
        assert_eq!(Percent::from_ratio(99_999, 100_000).to_string(), "99.99");
        assert_eq!(Percent::ZERO.to_string(), "0.00");
        assert_eq!(Percent::HUNDRED.to_string(), "100.00");
    }
}
