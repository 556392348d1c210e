//! The layers LVM stacks under an LV's device-mapper device. Their names
//! are spelt here only: every other module says [`Layer`].

use std::fmt;

/// A layer of an LV's device-mapper tree, as LVM names it: the suffix of
/// the device's UUID (`LVM-<vgid><lvid>-<layer>`), and for some layers of
/// its name too (`<vg>-<lv>-<layer>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// `-real`: a COW origin's own data, under its `snapshot-origin`.
    Real,
    /// `-cow`: a COW snapshot's exception store.
    Cow,
    /// `-tpool`: a thin pool's `thin-pool` target, used by its thin LVs.
    Tpool,
    /// A thin pool's own device (`<vg>-<pool>`; in the UUID only).
    Pool,
    /// A thin pool's metadata LV (`<vg>-<pool>_tmeta`; in the UUID only).
    Tmeta,
    /// A thin pool's data LV (`<vg>-<pool>_tdata`; in the UUID only).
    Tdata,
}

impl Layer {
    /// Every layer.
    pub const ALL: [Layer; 6] = [
        Layer::Real,
        Layer::Cow,
        Layer::Tpool,
        Layer::Pool,
        Layer::Tmeta,
        Layer::Tdata,
    ];

    /// The suffix LVM writes, without its dash: `real`, `cow`, `tpool`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Real => "real",
            Layer::Cow => "cow",
            Layer::Tpool => "tpool",
            Layer::Pool => "pool",
            Layer::Tmeta => "tmeta",
            Layer::Tdata => "tdata",
        }
    }

    /// The layer a UUID or name suffix (without its dash) names, if any.
    ///
    /// ```
    /// use lvsnap::activate::Layer;
    /// assert_eq!(Layer::parse("real"), Some(Layer::Real));
    /// assert_eq!(Layer::parse("pmspare"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Whether the layer is part of the device's name as well as of its
    /// UUID: a pool's own device and its `_tmeta`/`_tdata` LVs carry their
    /// layer in the UUID only.
    pub const fn in_name(self) -> bool {
        matches!(self, Layer::Real | Layer::Cow | Layer::Tpool)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
