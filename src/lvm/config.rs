//! The lvm.conf settings that change what lvsnap writes or where it locks,
//! read with the metadata-text parser (lvm.conf has the same grammar).
//!
//! The file is `$LVM_SYSTEM_DIR/lvm.conf` (default `/etc/lvm/lvm.conf`), as
//! LVM finds it. A missing file gives LVM's defaults. Not read: profiles,
//! `lvmlocal.conf`, `--config` and tags sections.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::lock::DEFAULT_LOCK_DIR;
use super::text::Document;

/// What lvsnap takes from lvm.conf, with LVM's defaults for what is unset
/// (`lvm dumpconfig --type default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvmConfig {
    /// `global/locking_dir`: where the VG lock files are.
    pub locking_dir: PathBuf,
    /// `metadata/record_lvs_history`: keep a record of removed thin LVs
    /// (`historical_logical_volumes`), so `lvs -H -o full_ancestors` keeps
    /// the chain.
    pub record_lvs_history: bool,
    /// `activation/snapshot_autoextend_threshold`: extend a COW store once
    /// it is this full, in percent (100: never).
    pub snapshot_autoextend_threshold: u32,
    /// `activation/snapshot_autoextend_percent`: by how much of its size.
    pub snapshot_autoextend_percent: u32,
    /// `activation/volume_list`: when set, only matching LVs are activated.
    pub volume_list: Option<Vec<String>>,
    /// `activation/auto_activation_volume_list`: the same for `-aay`.
    pub auto_activation_volume_list: Option<Vec<String>>,
    /// `global/thin_check_executable` (empty: no check).
    pub thin_check_executable: String,
    /// `global/thin_check_options`.
    pub thin_check_options: Vec<String>,
}

impl Default for LvmConfig {
    fn default() -> Self {
        LvmConfig {
            locking_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            record_lvs_history: false,
            snapshot_autoextend_threshold: 100,
            snapshot_autoextend_percent: 20,
            volume_list: None,
            auto_activation_volume_list: None,
            thin_check_executable: "/usr/sbin/thin_check".into(),
            thin_check_options: vec!["-q".into()],
        }
    }
}

impl LvmConfig {
    /// Where LVM looks for lvm.conf: `$LVM_SYSTEM_DIR/lvm.conf`, by default
    /// `/etc/lvm/lvm.conf`.
    pub fn path() -> PathBuf {
        let dir = std::env::var_os("LVM_SYSTEM_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/etc/lvm"), PathBuf::from);
        dir.join("lvm.conf")
    }

    /// Reads lvm.conf from [`LvmConfig::path`]; LVM's defaults if there is none.
    pub fn load() -> Result<LvmConfig> {
        LvmConfig::load_from(&LvmConfig::path())
    }

    /// As [`LvmConfig::load`], but where it cannot be read or parsed,
    /// logs why and gives LVM's defaults.
    pub fn load_or_default() -> LvmConfig {
        LvmConfig::load().unwrap_or_else(|e| {
            log::warn!("{e}; using LVM's defaults");
            LvmConfig::default()
        })
    }

    /// Reads the lvm.conf at `path`; LVM's defaults if it does not exist.
    pub fn load_from(path: &Path) -> Result<LvmConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => LvmConfig::parse(&text).map_err(|e| match e {
                Error::Corrupt { detail, .. } => Error::Corrupt {
                    what: path.display().to_string(),
                    detail,
                },
                e => e,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LvmConfig::default()),
            Err(e) => Err(Error::io_path("read", path, e)),
        }
    }

    /// The settings in an lvm.conf text.
    ///
    /// ```
    /// use lvsnap::lvm::config::LvmConfig;
    /// let c = LvmConfig::parse("metadata {\n record_lvs_history = 1\n}\n\
    ///     activation {\n volume_list = [ \"vg0\", \"vg1/lv\" ]\n}\n")?;
    /// assert!(c.record_lvs_history);
    /// assert!(c.volume_allowed("vg0", "x", &[]));
    /// assert!(!c.volume_allowed("vg1", "other", &[]));
    /// # Ok::<(), lvsnap::lvm::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<LvmConfig> {
        let doc = Document::parse_values(text).map_err(|e| Error::Corrupt {
            what: "lvm.conf".into(),
            detail: e.to_string(),
        })?;
        let d = LvmConfig::default();
        // A section may come more than once (LVM merges them): the last
        // setting of a key wins.
        let find = |sec: &str, key: &str| {
            doc.root
                .sections()
                .filter(|s| s.name == sec)
                .filter_map(|s| s.body.get(key))
                .last()
        };
        let int = |sec: &str, k: &str| find(sec, k).and_then(|v| v.as_scalar()?.as_int());
        let string = |sec: &str, k: &str| {
            find(sec, k)
                .and_then(|v| v.as_scalar()?.as_str())
                .map(str::to_owned)
        };
        let pct = |v: Option<i64>, def: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .map_or(def, |v| v.min(100))
        };
        let strings = |sec: &str, k: &str| {
            find(sec, k).map(|v| match v.as_array() {
                Some(a) => a
                    .items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                None => v
                    .as_scalar()
                    .and_then(|s| s.as_str())
                    .map(|s| vec![s.to_owned()])
                    .unwrap_or_default(),
            })
        };
        Ok(LvmConfig {
            locking_dir: string("global", "locking_dir")
                .filter(|s| !s.is_empty())
                .map_or(d.locking_dir, PathBuf::from),
            record_lvs_history: int("metadata", "record_lvs_history")
                .map_or(d.record_lvs_history, |v| v != 0),
            snapshot_autoextend_threshold: pct(
                int("activation", "snapshot_autoextend_threshold"),
                d.snapshot_autoextend_threshold,
            ),
            snapshot_autoextend_percent: int("activation", "snapshot_autoextend_percent")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(d.snapshot_autoextend_percent),
            volume_list: strings("activation", "volume_list"),
            auto_activation_volume_list: strings("activation", "auto_activation_volume_list"),
            thin_check_executable: string("global", "thin_check_executable")
                .unwrap_or(d.thin_check_executable),
            thin_check_options: strings("global", "thin_check_options")
                .unwrap_or(d.thin_check_options),
        })
    }

    /// Whether `activation/volume_list` lets LV `vg/lv` (with `tags`, its
    /// own and its VG's) be activated, as LVM matches it: `vg`, `vg/lv`,
    /// `@tag`, or `@*` (any tag). No list: everything may be.
    pub fn volume_allowed(&self, vg: &str, lv: &str, tags: &[String]) -> bool {
        list_allows(self.volume_list.as_deref(), vg, lv, tags)
    }
}

fn list_allows(list: Option<&[String]>, vg: &str, lv: &str, tags: &[String]) -> bool {
    let Some(list) = list else { return true };
    list.iter().any(|item| {
        if let Some(tag) = item.strip_prefix('@') {
            return if tag == "*" {
                !tags.is_empty()
            } else {
                tags.iter().any(|t| t == tag)
            };
        }
        match item.split_once('/') {
            Some((v, l)) => v == vg && l == lv,
            None => item == vg,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_settings() {
        let c = LvmConfig::parse("# nothing\n").unwrap();
        assert_eq!(c, LvmConfig::default());
        let c = LvmConfig::parse(
            "global {\n\tlocking_dir = \"/tmp/locks\"\n\tthin_check_options = [ \"-q\", \"--skip-mappings\" ]\n}\n\
             activation {\n\tsnapshot_autoextend_threshold = 70\n\tsnapshot_autoextend_percent = 30\n\
             \tvolume_list = [ \"@keep\" ]\n}\n",
        )
        .unwrap();
        assert_eq!(c.locking_dir, PathBuf::from("/tmp/locks"));
        assert_eq!(c.snapshot_autoextend_threshold, 70);
        assert_eq!(c.snapshot_autoextend_percent, 30);
        assert_eq!(c.thin_check_options, ["-q", "--skip-mappings"]);
        assert!(!c.volume_allowed("vg", "lv", &[]));
        assert!(c.volume_allowed("vg", "lv", &["keep".into()]));
        assert!(LvmConfig::parse("global {").is_err());
        // Repeated sections merge; the last setting wins.
        let c = LvmConfig::parse(
            "activation {\n\tudev_sync = 0\n}\nactivation {\n\tvolume_list = [ \"a\" ]\n}\n",
        )
        .unwrap();
        assert_eq!(c.volume_list, Some(vec!["a".to_string()]));
        let missing = LvmConfig::load_from(Path::new("/nonexistent/lvm.conf")).unwrap();
        assert_eq!(missing, LvmConfig::default());
    }
}
